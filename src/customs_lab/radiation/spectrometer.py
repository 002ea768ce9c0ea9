"""A NaI(Tl) spectrometer's response: the pulse-height spectrum a photon line produces.

Core module (numpy / xraydb through radiation.physics, no ROS). Energies in keV, lengths in m,
rates in counts/s. Used by the simulator (the spectra the firmware reports) and by the
identification (the templates it fits): both see the same detector.

The model, for photons of energy E arriving at the crystal's face at normal incidence:

1. They interact with probability 1 - exp(-mu(E) t) (t: the crystal's depth; mu without
   coherent scattering, which deposits nothing). The first interaction is photoelectric,
   Compton or pair production in proportion to its partial coefficient
   (physics.mass_attenuation_components: xraydb's Elam tables and their extension to 3 MeV).
2. Photoelectric: the whole energy is deposited, except that below 150 keV an iodine K X-ray
   (28.6 keV, fluorescence yield 0.88, 86 % of the photoabsorptions in iodine's K shell) escapes
   with probability 1/2 (the interaction is close to the entrance face): the K-escape peak.
3. Compton: the electron's energy T follows the Klein-Nishina distribution dsigma/dT; the
   scattered photon (E - T) escapes with probability 1 / (1 + mu(E - T) l), l = 2 V / S (half
   the crystal's mean chord, Cauchy's 4 V / S; the mean of exp(-mu L) over an exponential
   distribution of distances L to the surface with mean l), depositing T alone (the Compton
   continuum up to its edge). If it interacts, it is fully absorbed when photoabsorbed or when
   its own scattered photon (at its mean energy) does not escape, and the event lands in the
   full-energy peak; otherwise it deposits part of its energy, spread evenly between T and E
   (the valley between the Compton edge and the peak). Two generations of scattering, not a
   transport calculation.
4. Pair production: E - 1022 keV is deposited; each 511 keV annihilation photon escapes with
   the probability above, giving the double-escape, single-escape and full-energy peaks.
5. The deposited energy is smeared by the resolution: FWHM(E) = sqrt(r^2 * 662 keV * E +
   noise^2) (photo-electron statistics, r = FWHM/E at 662 keV, 7 % for a good NaI(Tl) crystal;
   an electronic noise floor), then binned into channels; channels below the lower-level
   discriminator count nothing.

What it leaves out (all of second order for identification by full-energy peaks and their
continua): the backscatter peak from the surroundings, coincidence summing, the
non-proportionality of NaI's light yield, and multiple Compton scattering with escape.

`Spectrometer.response(lines)` returns the expected counts per second per channel for photon
line fluxes (photons/s crossing the face); `Spectrometer.natural_background()` the spectrum of
the terrestrial K-40, U-238 and Th-232 series seen by the detector 1 m above soil (unscattered
line flux from a uniform half-space plus a scattered continuum).
"""

from dataclasses import dataclass
from functools import lru_cache
import math

import numpy as np
from scipy.special import ndtr

from customs_lab.radiation.physics import (
    PVT_DENSITY,
    PVT_FORMULA,
    gamma_lines,
    mass_attenuation,
    mass_attenuation_components,
    transmission,
)

ELECTRON_MASS_KEV = 510.99895
IODINE_K_XRAY_KEV = 28.6
IODINE_K_BINDING_KEV = 33.17
IODINE_K_ESCAPE = 0.88 * 0.86 * 0.5  # fluorescence yield x K-shell share x out of the face
NAI_FORMULA, NAI_DENSITY = 'NaI', 3.667  # g/cm^3
FINE_KEV = 1.0  # the deposited-energy grid

# Soil, typical of the Earth's crust (UNSCEAR 2000: K 400 Bq/kg of K-40, U-238 35 Bq/kg,
# Th-232 30 Bq/kg), density-independent for a half-space; composition of average soil.
SOIL_FORMULA = '(SiO2)0.6(Al2O3)0.15(Fe2O3)0.05(CaCO3)0.1(H2O)0.1'
SOIL_ACTIVITY_BQ_PER_G = {'K-40': 0.40, 'U-238': 0.035, 'Th-232': 0.030}
SCATTERED_TO_DIRECT = 1.5  # scattered photon flux per unscattered one, for a buried source


@dataclass(frozen=True)
class Spectrometer:
    """A scintillator and its electronics (dimensions in m); NaI(Tl) by default.

    `pvt_panel()` gives a portal's plastic panel: the same model, with polyvinyltoluene (no
    photopeak to speak of: a Compton continuum) and its poor resolution.
    """

    width: float = 0.10  # face, m (a 4 x 4 x 16 inch log seen from its side: 0.10 x 0.40 m)
    height: float = 0.40
    depth: float = 0.10
    channels: int = 1024
    max_kev: float = 3000.0
    resolution_662: float = 0.07  # FWHM / E at 662 keV
    noise_kev: float = 5.0  # FWHM of the electronic noise
    lld_kev: float = 30.0  # lower-level discriminator
    material: str = NAI_FORMULA
    density: float = NAI_DENSITY  # g/cm^3

    def __post_init__(self):
        for name in ('width', 'height', 'depth', 'max_kev', 'noise_kev'):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f'{name} must be finite and > 0, got {value!r}')
        if not (isinstance(self.channels, int) and 16 <= self.channels <= 16384):
            raise ValueError(f'channels must be an int in [16, 16384], got {self.channels!r}')
        if not 0.005 <= self.resolution_662 <= 0.5:
            raise ValueError(f'resolution_662 must be in [0.005, 0.5], got {self.resolution_662}')
        if not 0.0 <= self.lld_kev < self.max_kev:
            raise ValueError(f'lld_kev must be in [0, max_kev), got {self.lld_kev!r}')
        if not (math.isfinite(self.density) and self.density > 0):
            raise ValueError(f'density must be finite and > 0, got {self.density!r}')
        mass_attenuation_components(self.material, [662.0])  # ValueError if unknown

    @classmethod
    def pvt_panel(cls, width=0.38, height=1.5, depth=0.05, channels=256,
                  resolution_662=0.30, lld_kev=60.0) -> 'Spectrometer':
        """Return a portal's PVT panel (0.38 x 1.5 x 0.05 m by default) as a spectrometer."""
        return cls(width=width, height=height, depth=depth, channels=channels,
                   resolution_662=resolution_662, noise_kev=20.0, lld_kev=lld_kev,
                   material=PVT_FORMULA, density=PVT_DENSITY)

    @property
    def face_area_cm2(self) -> float:
        """Return the face's area, cm^2."""
        return self.width * self.height * 1e4

    @property
    def edges_kev(self) -> np.ndarray:
        """Return the channels' energy edges (channels + 1 values), keV."""
        return np.linspace(0.0, self.max_kev, self.channels + 1)

    @property
    def centres_kev(self) -> np.ndarray:
        """Return the channels' centre energies, keV."""
        edges = self.edges_kev
        return 0.5 * (edges[:-1] + edges[1:])

    def fwhm_kev(self, energy_kev) -> np.ndarray:
        """Return the full width at half maximum of a peak at `energy_kev`."""
        e = np.asarray(energy_kev, dtype=float)
        return np.sqrt(self.resolution_662**2 * 661.657 * e + self.noise_kev**2)

    def efficiency(self, energy_kev) -> np.ndarray:
        """Return the probability that a photon entering the face interacts (any energy)."""
        return _at(_tables(self), 'interact', np.asarray(energy_kev, dtype=float))

    def response(self, lines) -> np.ndarray:
        """Return counts/s per channel for lines [(energy keV, photons/s through the face)]."""
        matrix = _resolution_matrix(self)
        continuum = np.zeros(matrix.shape[0])
        peaks, peak_rates = [], []
        for energy, rate in lines:
            if not (math.isfinite(energy) and math.isfinite(rate) and energy > 0 and rate >= 0):
                raise ValueError(f'a line needs energy > 0 and rate >= 0, got {energy}, {rate}')
            if not rate or energy >= self.max_kev:
                continue
            deposits = _deposits(self, float(energy))
            n = len(deposits) - 1
            continuum[:n] += rate * deposits[:n]
            peaks.append(float(energy))
            peak_rates.append(rate * deposits[n])
        out = continuum @ matrix
        if peaks:
            out += np.asarray(peak_rates) @ _smear(self, np.asarray(peaks))
        return out

    def nuclide_response(self, nuclide: str, shields=(), min_yield: float = 1e-6) -> np.ndarray:
        """Return counts per channel per decay of `nuclide` whose photons all cross the face.

        Its lines above 20 keV (ICRP-107, progeny in equilibrium) through `shields` (narrow
        beam): the detector's response to a source of it, up to the geometry factor.
        """
        lines = gamma_lines(nuclide, min_energy_kev=20.0, min_yield=min_yield)
        energies = np.array([line.energy_kev for line in lines])
        through = np.array([line.yield_per_decay for line in lines])
        if shields:
            through = through * transmission(tuple(shields), energies)
        return self.response(zip(energies.tolist(), through.tolist(), strict=True))

    def natural_background(self) -> np.ndarray:
        """Return the terrestrial background (counts/s per channel) 1 m above average soil."""
        return _natural_background(self).copy()

    def peak_efficiency(self, energy_kev: float) -> float:
        """Return the probability that a photon entering the face lands in its full-energy peak."""
        return float(_deposits(self, float(energy_kev))[-1])


@lru_cache(maxsize=16)
def _tables(spectrometer: Spectrometer) -> dict:
    """Return the crystal's coefficients (1/cm) and probabilities on the fine energy grid."""
    s = spectrometer
    energies = np.arange(1.0, s.max_kev + 2.0 * FINE_KEV, FINE_KEV)
    parts = mass_attenuation_components(s.material, energies)
    mu = {k: parts[k] * s.density for k in ('photo', 'incoh', 'pair')}
    total = mu['photo'] + mu['incoh'] + mu['pair']
    volume = s.width * s.height * s.depth
    surface = 2.0 * (s.width * s.height + s.width * s.depth + s.height * s.depth)
    path_cm = 2.0 * volume / surface * 100.0  # half the mean chord (Cauchy: 4 V / S)
    # the distance from an interaction to the surface is spread widely (near-exponentially)
    # about its mean: the escape probability is the mean of exp(-mu L), not exp(-mu <L>)
    escape = 1.0 / (1.0 + total * path_cm)
    # a secondary photon that interacts is fully absorbed if it is photoabsorbed, or if it
    # Compton-scatters and that photon (mean energy) is absorbed in turn (two generations)
    mean_scattered = energies / (1.0 + energies / ELECTRON_MASS_KEV)
    escape_2 = np.interp(mean_scattered, energies, escape)
    absorbed = (mu['photo'] + mu['incoh'] * (1.0 - escape_2) + mu['pair']) / total
    return {'energies': energies, 'total': total, 'photo': mu['photo'], 'incoh': mu['incoh'],
            'pair': mu['pair'], 'escape': escape, 'absorbed': absorbed,
            'interact': 1.0 - np.exp(-total * s.depth * 100.0)}


def _at(table: dict, name: str, energy_kev):
    return np.interp(energy_kev, table['energies'], table[name])


def _klein_nishina_dt(energy_kev: float, t_kev: np.ndarray) -> np.ndarray:
    """Return dsigma/dT (arbitrary units) of Compton electrons of energy T for photons of E."""
    k = energy_kev / ELECTRON_MASS_KEV
    s = t_kev / energy_kev
    with np.errstate(divide='ignore', invalid='ignore'):
        value = 2.0 + s**2 / (k**2 * (1.0 - s) ** 2) + s / (1.0 - s) * (s - 2.0 / k)
    t_max = energy_kev * 2.0 * k / (1.0 + 2.0 * k)
    return np.where((t_kev >= 0) & (t_kev <= t_max), value, 0.0)


def _deposits(spectrometer: Spectrometer, energy_kev: float) -> np.ndarray:
    """Return the deposited-energy distribution per incident photon on the fine grid.

    Index i < n holds deposits in [i, i + 1) keV; the last element (index n = ceil(E)) is the
    full-energy peak's probability, placed at exactly E by the resolution step.
    """
    table = _tables(spectrometer)
    e = energy_kev
    n = int(math.ceil(e / FINE_KEV))
    out = np.zeros(n + 1)
    total = float(_at(table, 'total', e))
    interact = float(_at(table, 'interact', e))
    if total <= 0 or interact <= 0:
        return out
    photo, compton, pair = (float(_at(table, k, e)) / total for k in ('photo', 'incoh', 'pair'))
    # photoelectric: the full energy, or E - 28.6 keV when the iodine K X-ray escapes
    iodine = spectrometer.material == NAI_FORMULA
    k_escape = IODINE_K_ESCAPE if iodine and IODINE_K_BINDING_KEV < e < 150.0 else 0.0
    out[n] += interact * photo * (1.0 - k_escape)
    if k_escape:
        out[int((e - IODINE_K_XRAY_KEV) / FINE_KEV)] += interact * photo * k_escape
    # Compton: the electron's energy from Klein-Nishina; the scattered photon escapes (the
    # continuum), is fully absorbed (the peak) or deposits part of its energy (between T and E)
    t = (np.arange(n) + 0.5) * FINE_KEV
    weight = _klein_nishina_dt(e, t)
    if weight.sum() > 0:
        weight = interact * compton * weight / weight.sum()
        scattered = e - t
        escape = _at(table, 'escape', scattered)
        absorbed = (1.0 - escape) * _at(table, 'absorbed', scattered)
        partial = (1.0 - escape) - absorbed
        out[:n] += weight * escape
        out[n] += float(np.sum(weight * absorbed))
        # partial absorption: spread evenly over (T, E) -- the valley below the peak
        fill = weight * partial / np.maximum(n - np.arange(n) - 1, 1)
        out[:n] += np.cumsum(fill) - fill
    # pair production: 0, 1 or 2 annihilation photons escape
    if pair > 0 and e > 2.0 * ELECTRON_MASS_KEV:
        q = float(_at(table, 'escape', ELECTRON_MASS_KEV))
        out[int((e - 2.0 * ELECTRON_MASS_KEV) / FINE_KEV)] += interact * pair * q * q
        out[int((e - ELECTRON_MASS_KEV) / FINE_KEV)] += interact * pair * 2.0 * q * (1.0 - q)
        out[n] += interact * pair * (1.0 - q) ** 2
    return out


@lru_cache(maxsize=16)
def _resolution_matrix(spectrometer: Spectrometer) -> np.ndarray:
    """Return R[i, c]: the share of a deposit at fine-grid energy i landing in channel c."""
    fine_bins = int(math.ceil(spectrometer.max_kev / FINE_KEV))
    matrix = _smear(spectrometer, (np.arange(fine_bins) + 0.5) * FINE_KEV)
    matrix.setflags(write=False)
    return matrix


def _smear(spectrometer: Spectrometer, energies: np.ndarray) -> np.ndarray:
    """Return the channel distribution (rows) of deposits at `energies` after the resolution."""
    edges = spectrometer.edges_kev
    sigma = spectrometer.fwhm_kev(energies) / (2.0 * math.sqrt(2.0 * math.log(2.0)))
    matrix = np.diff(ndtr((edges[None, :] - energies[:, None]) / sigma[:, None]), axis=1)
    matrix[:, spectrometer.centres_kev < spectrometer.lld_kev] = 0.0
    return matrix


@lru_cache(maxsize=16)
def _natural_background(spectrometer: Spectrometer) -> np.ndarray:
    """Return the terrestrial background spectrum (see `Spectrometer.natural_background`)."""
    lines = []
    for nuclide, activity in SOIL_ACTIVITY_BQ_PER_G.items():
        for line in gamma_lines(nuclide, min_energy_kev=40.0, min_yield=5e-3):
            mu_mass = float(mass_attenuation(SOIL_FORMULA, [line.energy_kev])[0])
            # unscattered flux 1 m above a uniform half-space: S / (2 mu), photons/cm^2/s
            flux = activity * line.yield_per_decay / (2.0 * mu_mass)
            # half of it comes from below at grazing angles: count the face's projected share
            direct = flux * spectrometer.face_area_cm2 * 0.5
            lines.append((line.energy_kev, direct))
            # the scattered photons, spread uniformly in lethargy from 50 keV up to the line
            if line.energy_kev > 60.0:
                grid = np.geomspace(50.0, line.energy_kev * 0.98, 24)
                share = SCATTERED_TO_DIRECT * direct / len(grid)
                lines.extend((float(e), share) for e in grid)
    spectrum = spectrometer.response(lines)
    spectrum.setflags(write=False)
    return spectrum
