"""Scenario files and the day's traffic they generate (containers, parcels, passengers).

A scenario (config/scenarios/*.yaml) says how many subjects arrive, what they declare, what they
really carry and how often they hide contraband. `generate_traffic` draws all of it from the
scenario's seed, so that a run replays exactly. The result holds both what the clearance system
sees (declarations) and the ground truth (what is really inside): the simulator publishes the
first to everyone and the second to the evaluator only.

Who hides contraband depends on the declaration, as in reality. Each scenario has a trader
population (`parties:`): declarants and consignees, each with a latent propensity u (nats). For
contraband entry e (a category with its YAML `probability`), a subject's chance is

    logit p_e = b_e + u(declarant) + u(consignee) + origin_e(country) + hs_e(HS chapter)

where b_e is calibrated so that the mean of p_e over the traffic equals the YAML probability.
Contraband declarations tend to be misdeclared (`misdeclaration:`: value and/or net mass
understated), and hidden contraband adds its mass to the weighed gross mass. history.py draws
past days from the same model (same population, another random stream).

Neutron emitters (radiation/neutron.py): a `radioactive_source` whose nuclide has spontaneous
fission data (Cf-252, Cm-244, ...) emits neutrons by its activity, and one with
`neutron_source: Am-Be` is an (alpha,n) source of its Am-241 activity (2.2e6 n/s per Ci); a
`special_nuclear_material` entry hides plutonium (a neutron.MIXTURES grade) of `mass` kg as
metal or oxide: its neutrons by neutron_emission_rate (spontaneous fission of the even isotopes,
(alpha,n) on oxygen for oxide), its gamma rays as the activity of its main isotope (Pu-239,
ICRP-107 lines) seen through the material itself: a self-absorption layer of 2/3 of the radius
of a sphere of the metal (19.84 g/cm^3, alpha-phase Pu) or oxide (11.46 g/cm^3, PuO2
theoretical density), the mean distance from a point of a sphere to its surface along a fixed
direction (exp of the mean path: it overstates the absorption of a thick source), before any
shield. Other isotopes' gamma lines (Pu-240, Pu-241's Am-241 in-growth) are left out: fresh
metal, as neutron.MIXTURES assumes.
"""

from dataclasses import dataclass, field
import math
import pathlib

import numpy as np
import yaml

from customs_lab.common import iso6346, upu_s10
from customs_lab.common.subjects import Subject, SubjectKind
from customs_lab.radiation import neutron, physics

# ISO 1496-1 internal dimensions (m): length, width, height
CONTAINER_INTERIOR = {'20ft': (5.898, 2.352, 2.393), '40ft': (12.032, 2.352, 2.393)}
CONTAINER_WALL_STEEL = 0.002  # m, corrugated steel side wall (Corten), as a steel shield
PARCEL_SIZE = (0.4, 0.3, 0.3)  # m, a typical express box
# Special nuclear material: element -> (metal density, oxide formula, oxide density), g/cm^3
# (alpha-phase plutonium metal 19.84; PuO2 11.46 theoretical)
SNM_MATERIAL = {'Pu': (19.84, 'PuO2', 11.46)}

# Random streams derived from the seed (numpy SeedSequence entropy [seed, stream]): the day's
# traffic keeps default_rng(seed); the population, its calibration and history have their own.
POPULATION_STREAM, CALIBRATION_STREAM, HISTORY_STREAM = 1, 2, 3
CALIBRATION_SAMPLES = 40_000  # Monte Carlo draws of the traffic mix used to calibrate b_e

# Defaults for scenario files without `parties:` / `propensity:` / `misdeclaration:` (the YAML
# files document each key). Parcels' declarants are the express carriers' brokers (few, and
# not high-risk); their consignees are individuals (Korean personal customs codes, P + 12
# digits), a few of whom order contraband repeatedly.
DEFAULT_PARTIES = {
    'container': {'declarants': {'count': 150, 'high_share': 0.05},
                  'consignees': {'count': 300, 'high_share': 0.03}},
    'parcel': {'declarants': {'count': 8, 'high_share': 0.0},
               'consignees': {'count': 3000, 'high_share': 0.02}},
}
DEFAULT_PROPENSITY = {'sigma': 0.4, 'high_mean': 3.0, 'high_sigma': 0.7, 'activity_sigma': 1.0}
DEFAULT_MISDECLARATION = {
    'undervalue_share': 0.5, 'undervalue_factor': [0.15, 0.6],
    'net_mass_share': 0.3, 'net_mass_factor': [0.6, 0.9], 'honest_undervalue_share': 0.03,
}
DEFAULT_ORIGINS = {'container': ['CN', 'VN', 'US', 'DE', 'TH', 'MY'],
                   'passenger': ['CN', 'US', 'JP', 'TH', 'VN']}
DEFAULT_UNIT_VALUE = {'container': [1.0, 6.0], 'parcel': [20.0, 200.0]}  # USD per kg
DEFAULT_PACKAGING = {'container': [0.03, 0.08], 'parcel': [0.2, 0.4]}  # mass share / box kg


@dataclass(frozen=True)
class Shield:
    """A layer between a source and the outside: xraydb formula, density g/cm3, thickness m."""

    material: str
    density: float
    thickness: float


@dataclass(frozen=True)
class TrueItem:
    """Something a subject really carries (ground truth)."""

    category: str  # 'goods', 'norm_cargo', 'radioactive_source', 'narcotics'
    description: str
    contraband: bool
    nuclide: str = ''
    activity: float = 0.0  # Bq
    position: tuple[float, float, float] = (0.0, 0.0, 0.0)  # m, subject frame
    shields: tuple[Shield, ...] = ()
    # Distributed radioactivity (NORM in bulk cargo): nuclide -> Bq per gram of cargo
    specific_activity: dict = field(default_factory=dict)
    mass: float = 0.0  # kg
    neutron_rate: float = 0.0  # n/s emitted (fission, (alpha,n)), through the same shields


@dataclass(frozen=True)
class DeclaredLine:
    """One declared line: HS code, description, quantity, net mass (kg), value and currency."""

    hs_code: str
    description: str
    quantity: int
    net_mass: float
    value: float
    currency: str = 'USD'


@dataclass(frozen=True)
class SimSubject:
    """One subject of the day, with its declaration and its truth."""

    subject: Subject
    arrival: float  # s of sim time when it reaches its device's lane
    device: str  # device name from the site file ('' for none)
    declaration_id: str
    declarant_id: str
    origin_country: str
    declared: tuple[DeclaredLine, ...]
    gross_mass: float  # kg, goods + packaging + anything hidden (weighed, not declared)
    declared_arrival: float  # s, the ETA in the declaration
    filed_at: float  # s, when the declaration was filed
    size: tuple[float, float, float]  # m, interior length, width, height (0 for passengers)
    cargo_material: str  # xraydb formula of the bulk cargo
    cargo_density: float  # g/cm3, bulk density of the cargo
    truth: tuple[TrueItem, ...]
    consignee_id: str = ''  # consignee code ('' for passengers)

    @property
    def contraband(self) -> bool:
        """Return True if the subject carries anything that makes it a seizure."""
        return any(item.contraband for item in self.truth)


@dataclass(frozen=True)
class Scenario:
    """A parsed scenario file."""

    name: str
    seed: int
    duration: float
    declaration_lead: float
    eta_error: float
    spec: dict

    @classmethod
    def load(cls, path) -> 'Scenario':
        """Read a scenario YAML file; raise ValueError naming the file on a bad or missing key."""
        path = pathlib.Path(path)
        try:
            spec = yaml.safe_load(path.read_text())
            scenario = cls(
                name=str(spec.get('name', path.stem)),
                seed=int(spec['seed']),
                duration=float(spec['duration']),
                declaration_lead=float(spec.get('declaration_lead', 0.0)),
                eta_error=float(spec.get('eta_error', 0.0)),
                spec=spec,
            )
            make_population(scenario)  # checks `parties`, `propensity`, `risk`, `contraband`
            check_neutron_entries(spec)
        except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError) as error:
            raise ValueError(f'{path}: not a valid scenario: {error!r}') from None
        if scenario.duration <= 0:
            raise ValueError(f'{path}: duration must be positive')
        return scenario


@dataclass(frozen=True)
class Party:
    """A declarant or consignee: its id, share of its kind's declarations, propensity (nats)."""

    id: str
    activity: float
    propensity: float


@dataclass(frozen=True)
class TraderPopulation:
    """The scenario's traders and the calibrated intercepts b_e of the contraband model."""

    declarants: dict  # kind name -> tuple[Party, ...]
    consignees: dict  # kind name -> tuple[Party, ...]
    intercepts: dict  # kind name -> tuple of b_e (nats), one per spec['contraband'][kind] entry


def _weights(entries) -> tuple[list, np.ndarray]:
    """Return (names, cumulative weights) of a list (uniform) or a {name: weight} mapping."""
    if isinstance(entries, dict):
        names, weights = list(entries), [float(w) for w in entries.values()]
    else:
        names, weights = list(entries), [1.0] * len(entries)
    if not names or min(weights) < 0 or sum(weights) <= 0:
        raise ValueError(f'need at least one entry with a positive weight: {entries!r}')
    return names, np.cumsum(weights)


def _pick(rng, cumulative: np.ndarray) -> int:
    return int(np.searchsorted(cumulative, rng.random() * cumulative[-1], side='right'))


def _log_uniform(rng, bounds) -> float:
    low, high = (float(b) for b in bounds)
    return float(math.exp(rng.uniform(math.log(low), math.log(high))))


def _uniform(rng, bounds) -> float:
    low, high = (float(b) for b in bounds)
    return float(rng.uniform(low, high))


def _sigmoid(x):
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(x, dtype=float)))


def _origins(spec: dict, kind: str):
    section = spec.get(kind + 's', {})
    return _weights(section.get('origins', DEFAULT_ORIGINS.get(kind, ['CN'])))


def _offsets(spec: dict, kind: str, origin: str, hs_code: str) -> np.ndarray:
    """Return origin_e + hs_e (nats) for each contraband entry of `kind`."""
    risk = spec.get('risk', {})
    return np.array([
        float(risk.get('origin', {}).get(e['category'], {}).get(origin, 0.0))
        + float(risk.get('hs_chapter', {}).get(e['category'], {}).get(hs_code[:2], 0.0))
        for e in spec.get('contraband', {}).get(kind, [])
    ])


def _draw_parties(rng, kind: str, role: str, config: dict, propensity: dict) -> tuple:
    """Draw a kind's declarants or consignees.

    Propensity is a two-component mixture: most parties are compliant, u ~ N(0, sigma^2) (mild
    differences in care); a small minority (`high_share`: front companies, a smuggling ring's
    recurring consignees) is high-risk, u ~ N(high_mean, high_sigma^2), about 20x the odds at
    the default 3 nats. Risk concentrated in a few traders is what customs risk management
    assumes (WCO Risk Management Compendium) and why trader ids are key features of targeting
    models (DATE, Kim et al. KDD 2020); the numbers themselves are assumptions. Activity (how
    many declarations a party files) is log-normal: a few large traders, a long tail of small.
    """
    count, high_share = int(config['count']), float(config.get('high_share', 0.0))
    if count < 1 or not 0.0 <= high_share <= 1.0:
        raise ValueError(f'parties.{kind}.{role}: need count >= 1 and 0 <= high_share <= 1')
    if kind == 'container' and role == 'declarants':
        if count > 900:
            raise ValueError('parties.container.declarants.count: at most 900 (TRD100-TRD999)')
        ids = [f'TRD{n}' for n in rng.choice(np.arange(100, 1000), size=count, replace=False)]
    elif kind == 'container':
        ids = [f'CNE{n:05d}' for n in rng.choice(100_000, size=count, replace=False)]
    elif role == 'declarants':
        ids = [f'EXP{n:02d}' for n in range(1, count + 1)]
    else:
        ids = [f'P{n:012d}' for n in rng.choice(10**12, size=count, replace=False)]
    high = rng.random(count) < high_share
    u = np.where(
        high,
        rng.normal(float(propensity['high_mean']), float(propensity['high_sigma']), count),
        rng.normal(0.0, float(propensity['sigma']), count),
    )
    activity = rng.lognormal(0.0, float(propensity['activity_sigma']), count)
    return tuple(Party(i, float(a), float(p)) for i, a, p in zip(ids, activity, u, strict=True))


def _calibrate(target: float, scores: np.ndarray) -> float:
    """Return b such that mean(sigmoid(b + scores)) == target (Newton's method)."""
    if not 0.0 <= target < 1.0:
        raise ValueError(f'contraband probability must be in [0, 1): {target}')
    if target == 0.0:
        return -50.0
    b = math.log(target / (1 - target)) - float(np.mean(scores))
    for _ in range(50):
        p = _sigmoid(b + scores)
        step = (float(p.mean()) - target) / max(float(np.mean(p * (1 - p))), 1e-12)
        b -= max(-5.0, min(5.0, step))
        if abs(step) < 1e-10:
            break
    return b


def make_population(scenario: Scenario) -> TraderPopulation:
    """Draw the scenario's trader population and calibrate the contraband model's intercepts."""
    spec = scenario.spec
    rng = np.random.default_rng([scenario.seed, POPULATION_STREAM])
    propensity = {**DEFAULT_PROPENSITY, **spec.get('propensity', {})}
    declarants, consignees = {}, {}
    for kind in ('container', 'parcel'):
        given = spec.get('parties', {}).get(kind, {})
        config = {role: {**DEFAULT_PARTIES[kind][role], **given.get(role, {})}
                  for role in ('declarants', 'consignees')}
        declarants[kind] = _draw_parties(rng, kind, 'declarants', config['declarants'],
                                         propensity)
        consignees[kind] = _draw_parties(rng, kind, 'consignees', config['consignees'],
                                         propensity)
    # The mean of p_e over the traffic: a Monte Carlo sample of the traffic mix (declarant,
    # consignee, origin, goods drawn as generate_traffic draws them), from its own stream.
    mc = np.random.default_rng([scenario.seed, CALIBRATION_STREAM])
    n, intercepts = CALIBRATION_SAMPLES, {}
    for kind in ('container', 'parcel', 'passenger'):
        entries = spec.get('contraband', {}).get(kind, [])
        origins, origin_cum = _origins(spec, kind)
        goods = spec.get('goods', {}).get(kind, [{'hs_code': '', 'weight': 1.0}])
        goods_cum = np.cumsum([float(g['weight']) for g in goods])
        table = np.array([[_offsets(spec, kind, o, str(g['hs_code'])) for g in goods]
                          for o in origins]).reshape(len(origins), len(goods), len(entries))
        o = np.searchsorted(origin_cum, mc.random(n) * origin_cum[-1], side='right')
        g = np.searchsorted(goods_cum, mc.random(n) * goods_cum[-1], side='right')
        scores = table[o, g, :]
        if kind != 'passenger':
            for group in (declarants[kind], consignees[kind]):
                cum = np.cumsum([p.activity for p in group])
                u = np.array([p.propensity for p in group])
                scores = scores + u[np.searchsorted(cum, mc.random(n) * cum[-1], side='right')][
                    :, None]
        intercepts[kind] = tuple(
            _calibrate(float(e['probability']), scores[:, i]) for i, e in enumerate(entries))
    return TraderPopulation(declarants, consignees, intercepts)


def _shield(rng, entry) -> tuple[Shield, ...]:
    """Draw an entry's optional shield (material, density g/cm^3, thickness range m)."""
    spec = entry.get('shield')
    if not spec:
        return ()
    thickness = _uniform(rng, spec['thickness'])
    return (Shield(spec['material'], float(spec['density']), thickness),) if thickness > 0 else ()


def _shield_text(shields) -> str:
    return f', {shields[-1].thickness * 100:.1f} cm {shields[-1].material} shielding' if (
        shields) else ''


def source_neutron_rate(entry: dict, activity: float) -> float:
    """Return n/s of a radioactive_source entry's source of `activity` Bq (0 if none).

    An explicit `neutron_source` (e.g. Am-Be) is used as given (unknown: ValueError); else the
    nuclide's own spontaneous fission, if neutron.py has its yield.
    """
    given = entry.get('neutron_source')
    if given:
        return float(neutron.neutron_emission_rate(str(given), activity_bq=activity))
    nuclide = physics.canonical_nuclide(entry['nuclide'])
    if nuclide not in neutron.SF_YIELD_PER_GRAM:
        return 0.0
    return float(neutron.neutron_emission_rate(nuclide, activity_bq=activity))


def special_nuclear_material(entry: dict, mass_g: float) -> dict:
    """Return the TrueItem fields of an SNM entry's `mass_g` g (see the module docstring)."""
    material, form = str(entry['material']), str(entry.get('form', 'metal'))
    rate = neutron.neutron_emission_rate(material, mass_g=mass_g, form=form)
    name = neutron.canonical_source(material)
    fractions = neutron.MIXTURES.get(name, {name: 1.0})
    main = max(fractions, key=fractions.get)
    element = main.split('-')[0]
    if element not in SNM_MATERIAL:
        raise ValueError(f'special nuclear material {material!r}: known elements are '
                         f'{sorted(SNM_MATERIAL)}')
    metal_density, oxide, oxide_density = SNM_MATERIAL[element]
    formula, density = (element, metal_density) if form == 'metal' else (oxide, oxide_density)
    radius_cm = (3.0 * mass_g / density / (4.0 * math.pi)) ** (1.0 / 3.0)
    share = fractions[main] / sum(fractions.values())
    return dict(nuclide=main, activity=float(mass_g * share * neutron.specific_activity(main)),
                neutron_rate=float(rate), shields=(Shield(formula, density, radius_cm / 150.0),))


def check_neutron_entries(spec: dict):
    """Raise ValueError on a contraband entry whose neutron source cannot be modelled."""
    for kind, entries in (spec.get('contraband') or {}).items():
        for entry in entries or ():
            where = f'contraband.{kind} {entry.get("category")!r}'
            try:
                if entry.get('category') == 'special_nuclear_material':
                    low, high = (float(m) for m in entry['mass'])
                    if not 0 < low <= high:
                        raise ValueError(f'mass must be a range 0 < low <= high kg, got '
                                         f'{entry["mass"]}')
                    special_nuclear_material(entry, 1000.0 * low)
                elif entry.get('category') == 'radioactive_source':
                    source_neutron_rate(entry, 1.0)
            except (KeyError, TypeError, ValueError) as error:
                raise ValueError(f'{where}: {error}') from None


def _contraband(rng, entries, probabilities, size) -> list[TrueItem]:
    items = []
    for entry, probability in zip(entries, probabilities, strict=True):
        if rng.random() >= probability:
            continue
        category = entry['category']
        position = (
            tuple(float(rng.uniform(0.1 * s, 0.9 * s)) for s in size)
            if size[0]
            else (0.0, 0.0, 0.0)
        )
        if category == 'radioactive_source':
            activity = _log_uniform(rng, entry['activity'])
            shields = _shield(rng, entry)
            rate = source_neutron_rate(entry, activity)
            text = f'{entry["nuclide"]} source'
            if entry.get('neutron_source'):
                text += f' ({entry["neutron_source"]})'
            text += f', {activity:.3g} Bq'
            if entry.get('neutron_source') or rate >= 1.0:
                text += f', {rate:.3g} n/s'
            items.append(TrueItem(category, text + _shield_text(shields), True,
                                  nuclide=entry['nuclide'], activity=activity,
                                  position=position, shields=shields, neutron_rate=rate))
        elif category == 'special_nuclear_material':
            mass = _uniform(rng, entry['mass'])  # kg
            fields = special_nuclear_material(entry, 1000.0 * mass)
            shields = _shield(rng, entry)
            text = (f'{entry.get("description", entry["material"])}, {1000.0 * mass:.3g} g '
                    f'{entry.get("form", "metal")}, {fields["neutron_rate"]:.3g} n/s')
            fields['shields'] += shields
            items.append(TrueItem(category, text + _shield_text(shields), True,
                                  position=position, mass=mass, **fields))
        else:
            mass = _uniform(rng, entry.get('mass', [0.0, 0.0]))
            items.append(TrueItem(category, f'{entry.get("description", category)}, {mass:.3g} kg',
                                  True, position=position, mass=mass))
    return items


class _Drawer:
    """Draws subjects of one kind from the scenario's generative model."""

    def __init__(self, scenario: Scenario, population: TraderPopulation, rng, kind: str):
        self.scenario, self.rng, self.kind = scenario, rng, kind
        spec = scenario.spec
        self.section = spec.get(kind + 's', {})
        self.entries = spec.get('contraband', {}).get(kind, [])
        self.intercepts = np.array(population.intercepts[kind])
        self.origins, self.origin_cum = _origins(spec, kind)
        self.goods = spec.get('goods', {}).get(kind, [])
        self.goods_cum = np.cumsum([float(g['weight']) for g in self.goods])
        self.parties = [(group, np.cumsum([p.activity for p in group]))
                        for group in (population.declarants.get(kind, ()),
                                      population.consignees.get(kind, ()))]
        self.misdeclaration = {**DEFAULT_MISDECLARATION, **spec.get('misdeclaration', {})}

    def times(self, arrival: float) -> tuple[float, float]:
        scenario, rng = self.scenario, self.rng
        eta = arrival + float(rng.normal(0.0, scenario.eta_error)) if scenario.eta_error else (
            arrival)
        return max(0.0, eta), max(0.0, arrival - scenario.declaration_lead)

    def risk(self, origin: str, hs_code: str, declarant, consignee, size) -> list[TrueItem]:
        u = (declarant.propensity if declarant else 0.0) + (consignee.propensity if consignee
                                                            else 0.0)
        offsets = _offsets(self.scenario.spec, self.kind, origin, hs_code)
        p = _sigmoid(self.intercepts + u + offsets) if len(self.entries) else []
        return _contraband(self.rng, self.entries, p, size)

    def declaration(self, goods: dict, mass: float, contraband: bool) -> tuple[float, float]:
        """Return (declared net mass, declared value) for goods of true mass `mass` kg."""
        rng, mis = self.rng, self.misdeclaration
        value = mass * _log_uniform(rng, goods.get('unit_value', DEFAULT_UNIT_VALUE[self.kind]))
        net = mass
        if rng.random() < float(mis['undervalue_share'] if contraband
                                else mis['honest_undervalue_share']):
            value *= _log_uniform(rng, mis['undervalue_factor'])
        if contraband and rng.random() < float(mis['net_mass_share']):
            net *= _uniform(rng, mis['net_mass_factor'])
        return net, value

    def subject(self, n: int, arrival: float, prefix: str, used_ids: set) -> SimSubject:
        rng, kind, section = self.rng, self.kind, self.section
        origin = self.origins[_pick(rng, self.origin_cum)]
        declarant, consignee = (group[_pick(rng, cum)] if group else None
                                for group, cum in self.parties)
        eta, filed = self.times(arrival)
        common = dict(arrival=arrival, declaration_id=f'{prefix}{n:05d}', origin_country=origin,
                      declared_arrival=eta, filed_at=filed, declarant_id='', consignee_id='')
        if kind == 'passenger':
            truth = self.risk(origin, '', None, None, (0.0, 0.0, 0.0))
            subject = Subject(SubjectKind.PASSENGER, f'trk-{n:05d}',
                              section.get('zone', 'arrival_hall'))
            return SimSubject(subject=subject, device='', declared=(), gross_mass=0.0,
                              size=(0.0, 0.0, 0.0), cargo_material='', cargo_density=0.0,
                              truth=tuple(truth), **common)
        while True:
            if kind == 'container':
                owner = str(rng.choice(section.get('owners', ['CSQU'])))
                number = iso6346.make_number(owner[:3], int(rng.integers(0, 1_000_000)), owner[3])
            else:
                services, service_cum = _weights(section.get('services', {'EE': 1.0}))
                number = upu_s10.make_identifier(
                    services[_pick(rng, service_cum)], int(rng.integers(0, 100_000_000)), origin)
            if number not in used_ids:
                used_ids.add(number)
                break
        if kind == 'container':
            types, type_cum = _weights(section.get('types', {'40ft': 1.0}))
            size = CONTAINER_INTERIOR[types[_pick(rng, type_cum)]]
        else:
            size = PARCEL_SIZE
        goods = self.goods[_pick(rng, self.goods_cum)]
        spread = (0.8, 1.1) if kind == 'container' else (0.7, 1.3)
        mass = float(goods['mass']) * float(rng.uniform(*spread))
        truth = [TrueItem('goods', goods['description'], False, mass=mass)]
        if goods.get('norm'):
            truth.append(TrueItem('norm_cargo', f'{goods["description"]} (NORM)', False,
                                  specific_activity={k: float(v)
                                                     for k, v in goods['norm'].items()},
                                  mass=mass))
        hidden = self.risk(origin, str(goods['hs_code']), declarant, consignee, size)
        truth += hidden
        net, value = self.declaration(goods, mass, bool(hidden))
        packaging = _uniform(rng, section.get('packaging', DEFAULT_PACKAGING[kind]))
        packaging = packaging * mass if kind == 'container' else packaging
        gross = mass + packaging + sum(item.mass for item in hidden)
        digits = 1 if kind == 'container' else 2
        quantity = int(rng.integers(50, 2000)) if kind == 'container' else 1
        return SimSubject(
            subject=Subject(SubjectKind[kind.upper()], number),
            device=section.get('device', ''),
            declared=(DeclaredLine(str(goods['hs_code']), goods['description'], quantity,
                                   round(net, digits), round(value, 2)),),
            gross_mass=round(gross, digits),
            size=size,
            cargo_material=goods.get('material', 'C6H10O5'),
            cargo_density=float(goods.get('bulk_density', 0.3)),
            truth=tuple(truth),
            **{**common, 'declarant_id': declarant.id, 'consignee_id': consignee.id},
        )


def draw_day(scenario: Scenario, population: TraderPopulation, rng,
             prefixes: dict, used_ids: set | None = None) -> list[SimSubject]:
    """Draw one scenario's worth of traffic with `rng`, sorted by arrival time.

    prefixes: kind name -> declaration id prefix; used_ids: subject ids not to repeat.
    """
    used_ids = set() if used_ids is None else used_ids
    subjects = []
    for kind in ('container', 'parcel', 'passenger'):
        count = int(scenario.spec.get(kind + 's', {}).get('count', 0))
        drawer = _Drawer(scenario, population, rng, kind)
        arrivals = np.sort(rng.uniform(0.0, scenario.duration, size=count))
        subjects += [drawer.subject(n, float(t), prefixes[kind], used_ids)
                     for n, t in enumerate(arrivals)]
    return sorted(subjects, key=lambda s: (s.arrival, s.subject.key))


def generate_traffic(scenario: Scenario) -> list[SimSubject]:
    """Draw the scenario's subjects, sorted by arrival time."""
    tag = f'{scenario.seed % 10000:04d}'
    prefixes = {'container': f'IMP-{tag}-C', 'parcel': f'EXP-{tag}-P',
                'passenger': f'TRV-{tag}-'}
    return draw_day(scenario, make_population(scenario), np.random.default_rng(scenario.seed),
                    prefixes)
