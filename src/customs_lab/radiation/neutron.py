"""Neutron channel of a radiation portal: source emission, transport, He-3 modules, alarm.

Core module (numpy / scipy, no ROS). Units: m, s, g, Bq, n/s, cps; shields as in physics (density
g/cm^3, thickness m); areal masses in g/cm^2. Plutonium emits fission neutrons that the lead
hiding its gamma rays lets through, and legitimate cargo hardly ever emits neutrons.

Emission = mass x yield per gram. Spontaneous fission (SF): PANDA (Reilly, Ensslin, Smith,
Kreiner, "Passive Nondestructive Assay of Nuclear Materials", NUREG/CR-5550, 1991) table 11-1 and
its nu-bar; where ICRP-107 (radioactivedecay) has an SF branch (Pu-238/240/242, U-238, Cm-244,
Cf-252), specific activity x branch x nu-bar agrees within 3.5 % (`sf_yield_from_decay_data`,
tested). (alpha,n) on oxygen in oxides, per g of actinide: PANDA table 11-3. Am-Be: 2.2e6 n/s per
Ci of Am-241 (usual rating of commercial sources: 5.9e-5 n per alpha). Plutonium grades: J. C.
Mark, Science & Global Security 4 (1993) 111, table 1; fresh metal (no Am-241), no
self-multiplication (kg of metal multiply their neutrons 1.5-2 times): lower bounds.

Transport: point source; fraction Omega / 4 pi on the module's moderator face (exact,
physics.solid_angle_rectangle); shields by removal cross sections Sigma_R per element (cm^2/g):
0.598 for hydrogen (~1 b per atom), else the fits 0.19 Z^-0.743 (Z <= 8), 0.125 Z^-0.565 (Z > 8)
of Schaeffer, "Reactor Shielding for Nuclear Engineers" (TID-25951, 1973); by mass fraction:
water 0.103 /cm, polyethylene 0.121, iron 0.156, lead 0.118 (commonly tabulated: 0.103, 0.123,
0.1576, 0.1175). `removal_transmission`, exp(-sum Sigma_R x), is the fast (dose) flux. Lead, iron
remove fast neutrons by inelastic scattering only, slowing them without absorbing them, and a
moderated He-3 counter counts slowed neutrons as well: `count_transmission` counts hydrogen
only, with an attenuation of 0.264 cm^2/g of hydrogen fitted to a measurement (a He-3 system's
efficiency for Cf-252 fell exponentially from ~25 % to ~10 % behind 25.4 cm of polyethylene,
Pozzi et al., NIM A 929 (2019)), not hydrogen's fast removal (0.598, which gave 2.5 % there:
part of what hydrogen slows down is still counted). So 5 cm of lead passes all that counts (and
~0.2 % of Cs-137's gamma rays), 5 cm of polyethylene ~84 %, 1 m of cotton at 0.3 g/cm^3 ~61 %,
1 m of water ~5 %. One measured point, one spectrum (Cf-252): optimistic for tens of cm of iron
(keV neutrons partly captured); no scatter into the face; air ignored (~1 %).

He-3 module: count rate = neutrons reaching the face x intrinsic efficiency, scaled from a
reference module (4 tubes, 5.08 cm, 3 atm, 1.8 m active, face 0.30 x 1.80 m) calibrated to the
RPM benchmark of 2.5 cps per ng of Cf-252 at 2 m from the face (Kouzes et al., NIM A 623 (2010)
1035; 1 ng = 2340 n/s): 11 % of the neutrons reaching the face count. It scales with the thermal
capture probability across a tube 1 - exp(-n sigma d) (sigma = 5333 b at 0.0253 eV; n per atm at
20 degC; d: the mean chord of a long cylinder, its diameter) and with the face covered, each tube
collecting from a 7.5 cm strip (tube plus 1-2 thermal diffusion lengths of HDPE) along its active
length. Dead time: non-paralysable, m = n / (1 + n tau), tau a few us (assumed 4 us). The IEC
62484 (5.2) test source, Cf-252 of 20 000 n/s (in 4 cm of HDPE), gives ~21 cps at 2 m bare.

Background: cosmic-ray neutrons, ~0.012 n/cm^2/s at sea level over the whole spectrum (JEDEC
JESD89A: 13 n/cm^2/h above 10 MeV at New York City, taken as ~30 % of the total spectrum of
Gordon et al., IEEE TNS 51 (2004) 3427); isotropic, so 2 x flux / 4 crosses the face: ~3.5 cps
per reference module (fission efficiency assumed). Ship effect: cosmic hadrons make spallation
neutrons in heavy cargo, raising the background while it is in the lane (Kouzes et al., NIM A
587 (2008) 89: up to tens of % for steel; low-Z loads can lower it, "shadow shielding").
Approximation: factor 1 + e (1 - exp(-areal mass / lambda)), e = +0.3 for steel saturating over
iron's nuclear interaction length (132 g/cm^2, PDG); e (negative for shadowing loads) and lambda
are a site's to calibrate.

Alarm: counts summed over the passage and the modules against the background (x ship effect);
threshold: the smallest k with P(Poisson(expected) >= k) <= alpha (exact tail), so the false-alarm
probability per passage is at most alpha for a known background (learned over minutes of empty
lane, its error is small against a passage's Poisson noise). Evidence: alarm.log_bayes_factors,
the source excess log-uniform over 0.5-500 cps.
"""

from dataclasses import dataclass, field
import math

import numpy as np
import radioactivedecay
from scipy.stats import poisson
import xraydb

from customs_lab.radiation import alarm, physics

AVOGADRO = 6.02214076e23
CURIE = 3.7e10  # Bq

SF_YIELD_PER_GRAM = {  # n/s per g, PANDA table 11-1
    'U-235': 2.99e-4, 'U-238': 1.36e-2, 'Pu-238': 2.59e3, 'Pu-239': 2.18e-2, 'Pu-240': 1.02e3,
    'Pu-241': 5.0e-2, 'Pu-242': 1.72e3, 'Am-241': 1.18, 'Cm-244': 1.08e7, 'Cf-252': 2.34e12,
}
SF_NU_BAR = {  # neutrons per spontaneous fission, PANDA table 11-1
    'U-235': 1.86, 'U-238': 2.01, 'Pu-238': 2.21, 'Pu-239': 2.16, 'Pu-240': 2.156,
    'Pu-241': 2.25, 'Pu-242': 2.145, 'Am-241': 3.22, 'Cm-244': 2.72, 'Cf-252': 3.757,
}
ALPHA_N_OXIDE_PER_GRAM = {  # n/s per g of the actinide in its oxide, PANDA table 11-3
    'U-235': 7.1e-4, 'U-238': 8.3e-5, 'Pu-238': 1.34e4, 'Pu-239': 38.1, 'Pu-240': 141.0,
    'Pu-241': 1.3, 'Pu-242': 2.0, 'Am-241': 2.69e3,
}
AMBE_NEUTRONS_PER_DECAY = 2.2e6 / CURIE  # per Am-241 decay
MIXTURES = {  # mass fractions of the element, Mark (1993) table 1
    'weapons-grade Pu': {'Pu-238': 0.00012, 'Pu-239': 0.938, 'Pu-240': 0.058,
                         'Pu-241': 0.0035, 'Pu-242': 0.00022},
    'reactor-grade Pu': {'Pu-238': 0.013, 'Pu-239': 0.603, 'Pu-240': 0.243,
                         'Pu-241': 0.091, 'Pu-242': 0.050},
}
_AMBE_NAMES = {'am-be', 'ambe', 'am-241/be', 'am241be'}

HYDROGEN_REMOVAL = 0.598  # cm^2/g
# counting attenuation per g/cm^2 of hydrogen, fitted to Pozzi et al. 2019 (count_transmission)
HYDROGEN_COUNT_ATTENUATION = math.log(0.25 / 0.10) / (25.4 * 0.95 * 2 * 1.008 / 14.027)
HE3_THERMAL_CROSS_SECTION = 5333e-24  # cm^2 at 0.0253 eV
HE3_PER_CM3_ATM = 101325.0 / (1.380649e-23 * 293.15) * 1e-6  # atoms / cm^3 / atm at 20 degC
TUBE_STRIP_WIDTH = 0.075  # m of moderator face one tube collects from
CF252_PER_NG = SF_YIELD_PER_GRAM['Cf-252'] * 1e-9  # n/s
RPM_BENCHMARK_CPS_PER_NG = 2.5  # Cf-252 at 2 m from the face of one module (Kouzes et al. 2010)
COSMIC_NEUTRON_FLUX = 0.012  # n/cm^2/s at sea level, whole spectrum
SHIP_EFFECT_STEEL = 0.3  # relative background rise for saturating steel cargo
IRON_INTERACTION_LENGTH = 132.1  # g/cm^2 (PDG)


def _positive(value, name: str, allow_zero: bool = False) -> float:
    number = float(value)
    if not math.isfinite(number) or number < 0 or (number == 0 and not allow_zero):
        bound = '>= 0' if allow_zero else '> 0'
        raise ValueError(f'{name} must be finite and {bound}, got {value!r}')
    return number


def _vector(value, name: str) -> np.ndarray:
    array = np.array(value, dtype=float).reshape(-1)
    if array.shape != (3,) or not np.all(np.isfinite(array)):
        raise ValueError(f'{name} must be a finite 3-vector, got {value!r}')
    return array


def canonical_source(name: str) -> str:
    """Return a neutron source's canonical name: a nuclide, 'Am-Be' or a MIXTURES grade."""
    return _canonical(name)


def _canonical(name: str) -> str:
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f'unknown neutron source {name!r}: expected a name such as "Cf-252"')
    for key in (*MIXTURES, *_AMBE_NAMES):
        if name.strip().lower() == key.lower():
            return 'Am-Be' if key in _AMBE_NAMES else key
    try:
        return physics.canonical_nuclide(name)
    except ValueError:
        known = ', '.join([*SF_YIELD_PER_GRAM, *MIXTURES, 'Am-Be'])
        raise ValueError(f'unknown neutron source {name!r}: known are {known}') from None


def specific_activity(nuclide: str) -> float:
    """Return Bq per g of a nuclide from its ICRP-107 half-life and atomic mass."""
    data = radioactivedecay.Nuclide(physics.canonical_nuclide(nuclide))
    return math.log(2.0) / data.half_life('s') * AVOGADRO / data.atomic_mass


def sf_yield_from_decay_data(nuclide: str) -> float:
    """Return SF n/s per g from ICRP-107 (half-life, SF branch) x PANDA's nu-bar (cross-check)."""
    name = physics.canonical_nuclide(nuclide)
    data = radioactivedecay.Nuclide(name)
    branches = dict(zip(data.progeny(), data.branching_fractions(), strict=True))
    if 'SF' not in branches or name not in SF_NU_BAR:
        raise ValueError(f'{name}: no spontaneous-fission branch or nu-bar in the data')
    return specific_activity(name) * branches['SF'] * SF_NU_BAR[name]


def neutron_emission_rate(source: str, mass_g=None, activity_bq=None, form: str = 'metal'):
    """Return n/s of a nuclide, 'Am-Be' or a MIXTURES grade, from its mass (g) or activity (Bq).

    form 'oxide' adds (alpha,n) on oxygen; mass is that of the actinide (or element for a
    grade), activity that of the nuclide (of Am-241 for Am-Be; not for grades).
    """
    name = _canonical(source)
    if (mass_g is None) == (activity_bq is None):
        raise ValueError('give exactly one of mass_g and activity_bq')
    if form not in ('metal', 'oxide'):
        raise ValueError(f"form must be 'metal' or 'oxide', got {form!r}")
    if name in MIXTURES and activity_bq is not None:
        raise ValueError(f'give the mass (g) of {name}, not an activity')
    if name not in (*MIXTURES, 'Am-Be', *SF_YIELD_PER_GRAM):
        known = ', '.join(SF_YIELD_PER_GRAM)
        raise ValueError(f'no neutron yield data for {name}: known are {known}')
    nuclide = 'Am-241' if name == 'Am-Be' else name
    if mass_g is not None:
        mass = _positive(mass_g, 'mass_g', allow_zero=True)
    else:
        mass = _positive(activity_bq, 'activity_bq', allow_zero=True) / specific_activity(nuclide)
    if name == 'Am-Be':
        return mass * specific_activity('Am-241') * AMBE_NEUTRONS_PER_DECAY
    fractions = MIXTURES.get(name, {name: 1.0})
    total = sum(fractions.values())
    return mass * sum(
        share / total * (SF_YIELD_PER_GRAM[iso]
                         + (ALPHA_N_OXIDE_PER_GRAM.get(iso, 0.0) if form == 'oxide' else 0.0))
        for iso, share in fractions.items()
    )


# ---------------------------------------------------------------------------------------------
# Transport


def mass_removal_cross_section(material: str, hydrogen_only: bool = False) -> float:
    """Return the fast-neutron mass removal cross section (cm^2/g) of a formula or material."""
    total = 0.0
    for element, fraction in physics._composition(material):  # the gamma model's parser
        z = xraydb.atomic_number(element)
        if z == 1:
            total += fraction * HYDROGEN_REMOVAL
        elif not hydrogen_only:
            total += fraction * (0.19 * z**-0.743 if z <= 8 else 0.125 * z**-0.565)
    return total


def _depth(shields, hydrogen_only: bool) -> float:
    depth = 0.0
    for shield in shields:
        density = _positive(shield.density, 'shield density')
        thickness = _positive(shield.thickness, 'shield thickness', allow_zero=True)
        depth += mass_removal_cross_section(shield.material, hydrogen_only) * density * (
            thickness * 100.0)
    return depth


def removal_transmission(shields) -> float:
    """Return the fast-neutron transmission exp(-sum Sigma_R x) of shields (physics.Shield)."""
    return math.exp(-_depth(shields, False))


def count_transmission(shields) -> float:
    """Return the fraction a moderated He-3 module still counts behind shields.

    Hydrogen only (lead and iron slow neutrons without absorbing them), with hydrogen's
    counting attenuation fitted to a measurement rather than its fast removal cross section:
    a He-3 system's efficiency for Cf-252 fell exponentially from ~25 % bare to ~10 % behind
    25.4 cm of polyethylene (Pozzi, Clarke, Paff, Di Fulvio, Kouzes, NIM A 929 (2019), PNNL's
    abstract): ln(2.5) over 25.4 cm x 0.95 g/cm^3 x 14.4 % hydrogen = 0.264 cm^2/g of hydrogen,
    where fast removal (0.598) would give 2.5 % instead of 10 %: the neutrons hydrogen slows
    down are still counted by a moderated detector, in part.
    """
    return math.exp(-_depth(shields, True) * HYDROGEN_COUNT_ATTENUATION / HYDROGEN_REMOVAL)


@dataclass(frozen=True, eq=False)
class NeutronSource:
    """A point neutron emitter: rate (n/s), position (m), shields (physics.Shield alike)."""

    emission_rate: float
    position: np.ndarray
    shields: tuple = ()

    def __post_init__(self):
        rate = _positive(self.emission_rate, 'emission_rate', allow_zero=True)
        object.__setattr__(self, 'emission_rate', rate)
        object.__setattr__(self, 'position', _vector(self.position, 'source position'))
        object.__setattr__(self, 'shields', tuple(self.shields))


def _capture(pressure_atm: float, diameter_m: float) -> float:
    sigma = HE3_PER_CM3_ATM * pressure_atm * HE3_THERMAL_CROSS_SECTION  # 1/cm
    return -math.expm1(-sigma * diameter_m * 100.0)


@dataclass(frozen=True, eq=False)
class NeutronModule:
    """A polyethylene-moderated He-3 module; its moderator face faces the lane along `normal`.

    width, height: m of the face (height along `up`); tubes of tube_diameter (m) at pressure_atm
    with active_length (m) along the height; dead_time: s, non-paralysable.
    """

    module_id: str
    center: np.ndarray
    normal: np.ndarray
    width: float = 0.30
    height: float = 1.80
    tubes: int = 4
    pressure_atm: float = 3.0
    tube_diameter: float = 0.0508
    active_length: float = 1.80
    dead_time: float = 4e-6
    up: np.ndarray = field(default_factory=lambda: np.array([0.0, 0.0, 1.0]))

    def __post_init__(self):
        object.__setattr__(self, 'center', _vector(self.center, 'module center'))
        object.__setattr__(self, 'normal', _vector(self.normal, 'module normal'))
        object.__setattr__(self, 'up', _vector(self.up, 'module up'))
        for name in ('width', 'height', 'pressure_atm', 'tube_diameter', 'active_length'):
            object.__setattr__(self, name, _positive(getattr(self, name), f'module {name}'))
        object.__setattr__(self, 'dead_time', _positive(self.dead_time, 'dead_time', True))
        if not (_positive(self.tubes, 'module tubes') >= 1 and int(self.tubes) == self.tubes):
            raise ValueError(f'module tubes must be a positive integer, got {self.tubes!r}')
        object.__setattr__(self, 'tubes', int(self.tubes))
        try:
            self.solid_angle(self.center + self.normal)
        except ValueError as error:  # a zero normal, or up along it
            raise ValueError(f'module normal / up: {error}') from None

    @property
    def intrinsic_efficiency(self) -> float:
        """Return counts per fission neutron reaching the face (scaled from the reference)."""
        coverage = min(1.0, self.tubes * TUBE_STRIP_WIDTH / self.width) * min(
            1.0, self.active_length / self.height)
        capture = _capture(self.pressure_atm, self.tube_diameter) / _REFERENCE_CAPTURE
        return min(1.0, REFERENCE_INTRINSIC_EFFICIENCY * capture * coverage)

    def solid_angle(self, point) -> float:
        """Return the solid angle (sr) of the moderator face seen from a point."""
        return physics.solid_angle_rectangle(point, self.center, self.normal, self.width,
                                             self.height, self.up)


_REFERENCE_CAPTURE = _capture(3.0, 0.0508)
_REFERENCE_FRACTION = physics.solid_angle_rectangle(
    (0.0, 2.0, 0.0), (0.0, 0.0, 0.0), (0.0, 1.0, 0.0), 0.30, 1.80) / (4.0 * math.pi)
REFERENCE_INTRINSIC_EFFICIENCY = RPM_BENCHMARK_CPS_PER_NG / CF252_PER_NG / _REFERENCE_FRACTION


def count_rate(module: NeutronModule, sources) -> float:
    """Return the module's true count rate (cps, before dead time) from point sources."""
    rate = 0.0
    for source in sources:
        if source.emission_rate > 0:
            fraction = module.solid_angle(source.position) / (4.0 * math.pi)
            rate += source.emission_rate * fraction * count_transmission(source.shields)
    return rate * module.intrinsic_efficiency


def measured_rate(true_rate: float, dead_time: float) -> float:
    """Return the non-paralysable measured rate n / (1 + n tau) (cps)."""
    rate = _positive(true_rate, 'true_rate', True)
    return rate / (1.0 + rate * _positive(dead_time, 'dead_time', True))


def dead_time_corrected_rate(measured: float, dead_time: float) -> float:
    """Return the true rate m / (1 - m tau) of a non-paralysable counter (cps)."""
    rate, tau = _positive(measured, 'measured', True), _positive(dead_time, 'dead_time', True)
    if rate * tau >= 1.0:
        raise ValueError(f'measured rate {rate} cps saturates a dead time of {tau} s')
    return rate / (1.0 - rate * tau)


def simulate_counts(rng, true_rate: float, live_time: float, dead_time: float = 0.0) -> int:
    """Return Poisson counts in live_time (s) at the dead-time-reduced rate."""
    mean = measured_rate(true_rate, dead_time) * _positive(live_time, 'live_time', True)
    return int(rng.poisson(mean))


def cosmic_background_rate(module: NeutronModule, flux: float = COSMIC_NEUTRON_FLUX,
                           ship_effect: float = 1.0) -> float:
    """Return cps of cosmic neutrons: 2 x flux / 4 through the face x efficiency x ship effect."""
    area = module.width * module.height * 1e4  # cm^2
    return (0.5 * _positive(flux, 'flux', True) * area * module.intrinsic_efficiency
            * _positive(ship_effect, 'ship_effect'))


def ship_effect_factor(areal_mass: float, enhancement: float = SHIP_EFFECT_STEEL,
                       interaction_length: float = IRON_INTERACTION_LENGTH) -> float:
    """Return the background factor 1 + e (1 - exp(-areal mass / lambda)) of a cargo (g/cm^2)."""
    if not (math.isfinite(enhancement) and enhancement > -1.0):
        raise ValueError(f'enhancement must be > -1, got {enhancement!r}')
    mass = _positive(areal_mass, 'areal_mass', True)
    return 1.0 + enhancement * -math.expm1(-mass / _positive(interaction_length, 'lambda'))


# ---------------------------------------------------------------------------------------------
# Alarm


@dataclass(frozen=True)
class NeutronAlarmConfig:
    """Per-passage neutron test: false-alarm probability and the Bayes factor's prior (cps)."""

    false_alarm_probability: float = 1e-3
    excess_prior_min: float = 0.5
    excess_prior_max: float = 500.0

    def __post_init__(self):
        if not 0 < self.false_alarm_probability < 1:
            raise ValueError('false_alarm_probability must be in (0, 1), '
                             f'got {self.false_alarm_probability!r}')
        if not 0 < self.excess_prior_min < self.excess_prior_max < math.inf:
            raise ValueError('need 0 < excess_prior_min < excess_prior_max (cps)')


@dataclass(frozen=True)
class NeutronAlarmResult:
    """Outcome of one passage's neutron test (counts summed over modules)."""

    alarm: bool
    counts: int
    expected: float  # background counts, ship effect included
    threshold: int
    live_time: float  # s
    p_value: float  # P(Poisson(expected) >= counts)
    log_likelihood_ratio: float  # nats, ln Bayes factor source : background
    false_alarm_probability: float
    ship_effect: float = 1.0


def neutron_threshold(expected: float, false_alarm_probability: float) -> int:
    """Return the smallest k with P(Poisson(expected) >= k) <= false_alarm_probability."""
    return alarm.passage_threshold(expected, 1, false_alarm_probability)


def detection_probability(source_rate: float, background_rate: float, live_time: float,
                          false_alarm_probability: float = 1e-3, ship_effect: float = 1.0):
    """Return P(alarm) for a source adding source_rate cps over live_time s to the background."""
    expected = (_positive(background_rate, 'background_rate', True)
                * _positive(ship_effect, 'ship_effect') * _positive(live_time, 'live_time'))
    threshold = neutron_threshold(expected, false_alarm_probability)
    mean = expected + _positive(source_rate, 'source_rate', True) * live_time
    return float(poisson.sf(threshold - 1, mean))  # threshold >= 1


def evaluate_neutron_passage(counts, live_time: float, background_rate, config=None,
                             ship_effect: float = 1.0) -> NeutronAlarmResult:
    """Test a passage: counts and background cps per module (or totals), live time s."""
    config = config or NeutronAlarmConfig()
    counts = np.asarray(counts, dtype=float)
    if not np.all(np.isfinite(counts)) or np.any(counts < 0) or np.any(counts % 1):
        raise ValueError('neutron counts must be finite non-negative integers')
    rates = np.asarray(background_rate, dtype=float)
    if not np.all(np.isfinite(rates)) or np.any(rates < 0):
        raise ValueError('background rate must be finite and >= 0 cps')
    live = _positive(live_time, 'live_time')
    total = int(counts.sum())
    expected = float(rates.sum()) * _positive(ship_effect, 'ship_effect') * live
    threshold = neutron_threshold(expected, config.false_alarm_probability)
    llr = alarm.log_bayes_factors(total, expected, live, config.excess_prior_min,
                                  config.excess_prior_max)[0]
    return NeutronAlarmResult(
        alarm=total >= threshold, counts=total, expected=expected, threshold=threshold,
        live_time=live, p_value=float(poisson.sf(total - 1, expected)) if total else 1.0,
        log_likelihood_ratio=float(llr),
        false_alarm_probability=config.false_alarm_probability, ship_effect=float(ship_effect),
    )


def explain_neutron(result: NeutronAlarmResult) -> str:
    """Return the officer's one-sentence explanation of a neutron test."""
    ship = (f' (cargo ship effect x{result.ship_effect:.2f} included)'
            if result.ship_effect != 1.0 else '')
    text = (f'neutron counts {result.counts} in {result.live_time:.1f} s against '
            f'{result.expected:.1f} expected from background{ship}: excess p={result.p_value:.1g}')
    if result.alarm:
        return (f'NEUTRON ALARM: {text}, consistent with a fission source such as plutonium '
                '(or an (alpha,n) source; lead shielding does not hide it)')
    return (f'no neutron alarm: {text}, below the threshold of {result.threshold} counts at '
            f'false-alarm probability {result.false_alarm_probability:g} per passage')
