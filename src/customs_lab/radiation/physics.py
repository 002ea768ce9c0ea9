"""Gamma-ray physics of a radiation portal: emission lines, attenuation, solid angle, count rates.

Core module (numpy / scipy / xraydb / radioactivedecay, no ROS). SI units: m, s, Bq, cps;
energies in keV where a name says `_kev`; densities in g/cm^3 (the unit of the attenuation
tables), thicknesses in m.

Model of a panel's expected count rate from point sources (narrow beam, no scatter build-up):

    rate = sum over sources and lines with E >= panel threshold of
           A * y(E) * Omega / (4 pi) * T_air(E, r) * T_shields(E) * eps(E, theta)

with A the activity (Bq), y the line's photons per decay (progeny in equilibrium included),
Omega the exact solid angle of the panel's front face, r the distance to the panel's centre,
T = exp(-mu x) the narrow-beam transmission of the air path and of the source's shields and
eps = 1 - exp(-mu_int(E) * thickness / cos(theta)) the probability that the photon interacts in
the panel (theta: between the panel normal and the direction of the source seen from the panel
centre; the slant path is capped at the panel's diagonal). Counting every interaction above a
threshold on the *line* energy is the gross-count approximation of a plastic scintillator:
Compton events of lines above the threshold mostly deposit more than it, lines below it are
not counted at all (Am-241's 59.5 keV line is invisible with the default 60 keV threshold).

Attenuation coefficients: xraydb's Elam tables up to 800 keV (their stated limit). Above that,
per element: Compton scaled with the Klein-Nishina cross section, coherent as E^-2, the
photoelectric effect with a log-slope relaxing from its 600-800 keV value towards the E^-1
high-energy limit, and pair production from Maximon's near-threshold Bethe-Heitler formula
(nuclear plus electron field, Z(Z + 1), with a small Coulomb correction for heavy atoms). This
reproduces the NIST (Hubbell-Seltzer) total attenuation of H2O, PVT, Fe, Sn, W, Pb and U
within 1.5 % from 1 to 3 MeV (checked in tests for Pb, Fe and PVT).
"""

from dataclasses import dataclass, field
from functools import lru_cache
import json
import math
from pathlib import Path

import icrp107_database
import numpy as np
import radioactivedecay
import xraydb

# Dry air (mole fractions N2, O2, Ar, CO2) at 20 degC and 101.325 kPa.
AIR_FORMULA = '(N2)0.78084(O2)0.20946Ar0.00934(CO2)0.00041'
AIR_DENSITY = 1.205e-3  # g/cm^3

PVT_FORMULA = 'C9H10'  # polyvinyltoluene
PVT_DENSITY = 1.032  # g/cm^3

# A progeny is taken to be in equilibrium with the parent when its half-life, and that of every
# member between them, is at most this fraction of the parent's half-life.
EQUILIBRIUM_HALF_LIFE_RATIO = 0.1

_ICRP107_DIR = Path(icrp107_database.__file__).resolve().parent / 'icrp107'
_PHOTON_EMISSIONS = ('gamma', 'X', 'annihilation')
_ELAM_MAX_KEV = 800.0  # xraydb: 'Elam tables are unreliable for energies > 800 keV'
_ELECTRON_MASS_KEV = 510.99895
_FINE_STRUCTURE = 1.0 / 137.035999
_ELECTRON_RADIUS_CM = 2.8179403262e-13
_AVOGADRO = 6.02214076e23
_PHOTO_SLOPE_RELAXATION = 1.6  # exponent of the photoelectric log-slope's relaxation to -1
_PAIR_COULOMB = 0.1  # pair production enhancement (Z / 82)^2 * this, for heavy atoms
_MIN_COS = 1e-9


@dataclass(frozen=True)
class GammaLine:
    """One photon line: energy (keV) and photons emitted per decay of the parent."""

    energy_kev: float
    yield_per_decay: float


@lru_cache(maxsize=1024)
def canonical_nuclide(nuclide: str) -> str:
    """Return the nuclide's canonical name ('cs137' -> 'Cs-137'); ValueError if unknown."""
    if not isinstance(nuclide, str) or not nuclide.strip():
        raise ValueError(f'unknown nuclide {nuclide!r}: expected a name such as "Cs-137"')
    try:
        name = radioactivedecay.Nuclide(nuclide.strip()).nuclide
    except Exception as error:  # radioactivedecay raises its own error types
        raise ValueError(
            f'unknown nuclide {nuclide!r}: not in the ICRP-107 decay data ({error})'
        ) from None
    if not (_ICRP107_DIR / f'{name}.json').exists():
        raise ValueError(f'unknown nuclide {nuclide!r}: no ICRP-107 emission data for {name}')
    return name


@lru_cache(maxsize=None)
def _own_photons(name: str) -> tuple[tuple[float, float], ...]:
    """Return (energy keV, photons per decay) of one nuclide's own decay, from ICRP-107."""
    path = _ICRP107_DIR / f'{name}.json'
    if not path.exists():
        return ()
    data = json.loads(path.read_text())
    if isinstance(data, str):  # the package stores a JSON-encoded string of the object
        data = json.loads(data)
    lines = []
    for kind in _PHOTON_EMISSIONS:
        for energy_mev, intensity in data['emissions'].get(kind, ()):
            if intensity > 0:
                lines.append((float(energy_mev) * 1000.0, float(intensity)))
    return tuple(lines)


def equilibrium_members(
    nuclide: str, equilibrium_ratio: float = EQUILIBRIUM_HALF_LIFE_RATIO
) -> dict:
    """Return {member: decays per decay of the parent} of the parent and its equilibrium progeny.

    Rule: walking down the decay chain from the parent, a progeny is included when its half-life
    is at most `equilibrium_ratio` times the parent's (and so are those of all members between
    them: the walk stops at the first longer-lived member of a branch, and at stable nuclides).
    Its activity per parent decay is the product along the path of the branching fraction times
    lambda_i / (lambda_i - lambda_parent) (the Bateman equilibrium: 1 for secular equilibrium,
    a little more for transient equilibrium), summed over the paths that reach it. This assumes
    the material is old compared with the included progeny (sealed sources, ore, NORM); for
    freshly separated material pass a smaller ratio (0 gives the parent's own lines only).
    """
    ratio = float(equilibrium_ratio)
    if not 0.0 <= ratio < 1.0:
        raise ValueError(f'equilibrium_ratio must be in [0, 1), got {equilibrium_ratio!r}')
    return dict(_equilibrium_members(canonical_nuclide(nuclide), ratio))


@lru_cache(maxsize=None)
def _equilibrium_members(parent: str, equilibrium_ratio: float) -> tuple:
    """Return ((member, decays per parent decay), ...): see equilibrium_members."""
    half_life = radioactivedecay.Nuclide(parent).half_life('s')
    parent_lambda = 0.0 if math.isinf(half_life) else math.log(2.0) / half_life
    members = {parent: 1.0}
    stack = [(parent, 1.0)]
    while stack:
        name, activity = stack.pop()
        mother = radioactivedecay.Nuclide(name)
        for daughter, fraction in zip(mother.progeny(), mother.branching_fractions(), strict=True):
            try:
                child = radioactivedecay.Nuclide(daughter)
            except Exception:  # 'SF' (spontaneous fission) and other non-nuclides
                continue
            child_half_life = child.half_life('s')
            if math.isinf(child_half_life) or child_half_life > equilibrium_ratio * half_life:
                continue
            child_lambda = math.log(2.0) / child_half_life
            share = float(activity * fraction * child_lambda / (child_lambda - parent_lambda))
            members[daughter] = members.get(daughter, 0.0) + share
            stack.append((daughter, share))
    return tuple(members.items())


@lru_cache(maxsize=4096)
def gamma_lines(
    nuclide: str,
    min_energy_kev: float = 30.0,
    min_yield: float = 1e-4,
    equilibrium_ratio: float = EQUILIBRIUM_HALF_LIFE_RATIO,
) -> tuple[GammaLine, ...]:
    """Return the photon lines (gamma, X, annihilation) per decay of `nuclide`, by energy.

    Lines of the progeny in equilibrium (see `equilibrium_members`) are included, weighted by
    their activity per parent decay; lines at the same energy (within 1 eV) are merged; lines
    below `min_energy_kev` or with a merged yield below `min_yield` are dropped. Unknown nuclide:
    ValueError.
    """
    merged = {}
    for member, activity in equilibrium_members(nuclide, equilibrium_ratio).items():
        for energy, intensity in _own_photons(member):
            key = round(energy, 3)
            merged[key] = merged.get(key, 0.0) + activity * intensity
    return tuple(
        GammaLine(float(energy), float(intensity))
        for energy, intensity in sorted(merged.items())
        if energy >= min_energy_kev and intensity >= min_yield
    )


@lru_cache(maxsize=1024)
def _line_arrays(nuclide: str) -> tuple[np.ndarray, np.ndarray]:
    """Return (energies keV, yields per decay) of a nuclide's lines as read-only arrays."""
    lines = gamma_lines(nuclide)
    energies = np.array([line.energy_kev for line in lines], dtype=float)
    yields = np.array([line.yield_per_decay for line in lines], dtype=float)
    energies.setflags(write=False)
    yields.setflags(write=False)
    return energies, yields


# ---------------------------------------------------------------------------------------------
# Attenuation


@lru_cache(maxsize=256)
def _composition(material: str) -> tuple[tuple[str, float], ...]:
    """Return ((element, mass fraction), ...) of a chemical formula or an xraydb material name."""
    if not isinstance(material, str) or not material.strip():
        raise ValueError(f'unknown material {material!r}: expected a chemical formula')
    try:
        atoms = xraydb.chemparse(material)
    except Exception:
        try:
            found = xraydb.find_material(material)
        except Exception:
            found = None
        if found is None:
            raise ValueError(
                f'unknown material {material!r}: not a chemical formula (such as "Pb", "H2O", '
                '"C6H10O5") nor an xraydb material name'
            ) from None
        atoms = xraydb.chemparse(found.formula)
    try:
        masses = {element: xraydb.atomic_mass(element) * count for element, count in atoms.items()}
    except Exception as error:
        raise ValueError(f'unknown material {material!r}: {error}') from None
    total = sum(masses.values())
    if not atoms or total <= 0:
        raise ValueError(f'unknown material {material!r}: empty formula')
    return tuple((element, mass / total) for element, mass in masses.items())


def _klein_nishina(energy_kev):
    """Return the Klein-Nishina total cross section per electron, in units of 2 pi r_e^2."""
    k = np.asarray(energy_kev, dtype=float) / _ELECTRON_MASS_KEV
    log_term = np.log1p(2.0 * k)
    return (1.0 + k) / k**2 * (2.0 * (1.0 + k) / (1.0 + 2.0 * k) - log_term / k) + (
        log_term / (2.0 * k) - (1.0 + 3.0 * k) / (1.0 + 2.0 * k) ** 2
    )


def _pair_shape(energy_kev):
    """Return Maximon's near-threshold pair cross section over alpha r_e^2 Z^2 (0 < 1022 keV)."""
    k = np.asarray(energy_kev, dtype=float) / _ELECTRON_MASS_KEV
    out = np.zeros_like(k)
    above = k > 2.0
    kk = k[above]
    eps = (2.0 * kk - 4.0) / (2.0 + kk + 2.0 * np.sqrt(2.0 * kk))
    out[above] = (
        2.0
        * math.pi
        / 3.0
        * ((kk - 2.0) / kk) ** 3
        * (1.0 + eps / 2.0 + 23.0 * eps**2 / 40.0 + 11.0 * eps**3 / 60.0 + 29.0 * eps**4 / 960.0)
    )
    return out


def _element_components(element: str, energy_kev: np.ndarray) -> dict:
    """Return mu/rho (cm^2/g) of one element by process: photo, incoh, coh, pair."""
    out = {name: np.zeros_like(energy_kev) for name in ('photo', 'incoh', 'coh', 'pair')}
    low = energy_kev <= _ELAM_MAX_KEV
    if np.any(low):
        energy_ev = energy_kev[low] * 1000.0
        for name in ('photo', 'incoh', 'coh'):
            out[name][low] = xraydb.mu_elam(element, energy_ev, kind=name)
    high = ~low
    if np.any(high):
        energy = energy_kev[high]
        ref = _ELAM_MAX_KEV
        ref_ev = np.array([600.0, ref]) * 1000.0
        incoherent = float(xraydb.mu_elam(element, ref_ev[1:], kind='incoh')[0])
        out['incoh'][high] = incoherent * _klein_nishina(energy) / _klein_nishina(ref)
        photo_600, photo_ref = (float(v) for v in xraydb.mu_elam(element, ref_ev, kind='photo'))
        if photo_ref > 0 and photo_600 > photo_ref:
            slope = math.log(photo_600 / photo_ref) / math.log(ref / 600.0)
            q = _PHOTO_SLOPE_RELAXATION
            out['photo'][high] = photo_ref * np.exp(
                -(np.log(energy / ref) + (slope - 1.0) / q * (1.0 - (ref / energy) ** q))
            )
        coh = float(xraydb.mu_elam(element, ref_ev[1:], kind='coh')[0])
        out['coh'][high] = coh * (ref / energy) ** 2
        z = xraydb.atomic_number(element)
        per_atom = (
            _FINE_STRUCTURE
            * _ELECTRON_RADIUS_CM**2
            * (z * z * (1.0 + _PAIR_COULOMB * (z / 82.0) ** 2) + z)
            * _pair_shape(energy)
        )
        out['pair'][high] = per_atom * _AVOGADRO / xraydb.atomic_mass(element)
    return out


def _element_mass_attenuation(element: str, energy_kev: np.ndarray, coherent: bool) -> np.ndarray:
    """Return mu/rho (cm^2/g) of one element (with or without coherent scattering)."""
    parts = _element_components(element, energy_kev)
    total = parts['incoh'] + parts['photo'] + parts['pair']
    return total + parts['coh'] if coherent else total


def mass_attenuation_components(material: str, energy_kev) -> dict:
    """Return mu/rho (cm^2/g) of a material by process: 'photo', 'incoh', 'coh', 'pair'.

    The same tables and extension as `mass_attenuation` (which is their sum): what a detector
    model needs to know how a photon's first interaction deposits its energy.
    """
    energy = _energies(energy_kev)
    out = {name: np.zeros_like(energy) for name in ('photo', 'incoh', 'coh', 'pair')}
    for element, fraction in _composition(material):
        for name, value in _element_components(element, energy).items():
            out[name] += fraction * value
    return out


@lru_cache(maxsize=4096)
def _mass_attenuation_cached(material: str, energies: tuple, coherent: bool) -> np.ndarray:
    energy_kev = np.array(energies, dtype=float)
    total = np.zeros_like(energy_kev)
    for element, fraction in _composition(material):
        total += fraction * _element_mass_attenuation(element, energy_kev, coherent)
    total.setflags(write=False)
    return total


def mass_attenuation(material: str, energy_kev, coherent: bool = True) -> np.ndarray:
    """Return the mass attenuation coefficient mu/rho (cm^2/g) of a material at energies (keV).

    `material` is a chemical formula ('Pb', 'H2O', 'C6H10O5') or an xraydb material name.
    With coherent=False, Rayleigh scattering (which deposits no energy and hardly deflects) is
    left out: the interaction coefficient used for a detector's efficiency. Energies from 1 keV
    to ~3 MeV (xraydb's tables to 800 keV, the physics extension described in the module
    docstring above; tested against NIST to 3 MeV).
    """
    energy = _energies(energy_kev)
    return np.array(_mass_attenuation_cached(material, tuple(energy.tolist()), coherent))


def _energies(energy_kev) -> np.ndarray:
    energy = np.atleast_1d(np.asarray(energy_kev, dtype=float))
    if energy.ndim != 1 or not np.all(np.isfinite(energy)) or np.any(energy < 1.0):
        raise ValueError(f'photon energies must be finite and >= 1 keV, got {energy_kev!r}')
    return energy


@dataclass(frozen=True)
class Shield:
    """A layer between a source and the outside: formula, density g/cm^3, thickness m."""

    material: str
    density: float  # g/cm^3
    thickness: float  # m

    def __post_init__(self):
        _check_shield(self)


def _check_shield(shield):
    density, thickness = float(shield.density), float(shield.thickness)
    if not (math.isfinite(density) and density > 0):
        raise ValueError(f'shield density must be positive g/cm^3, got {shield.density!r}')
    if not (math.isfinite(thickness) and thickness >= 0):
        raise ValueError(f'shield thickness must be >= 0 m, got {shield.thickness!r}')
    _composition(shield.material)


def _shield_key(shields) -> tuple:
    """Return a hashable (material, density, thickness) key of any Shield-like objects."""
    try:
        return _shield_key_cached(tuple(shields))
    except TypeError:  # unhashable shield objects
        return _make_shield_key(shields)


@lru_cache(maxsize=8192)
def _shield_key_cached(shields: tuple) -> tuple:
    return _make_shield_key(shields)


def _make_shield_key(shields) -> tuple:
    key = []
    for shield in shields:
        _check_shield(shield)
        key.append((str(shield.material), float(shield.density), float(shield.thickness)))
    return tuple(key)


def _optical_depth(key: tuple, energies: np.ndarray) -> np.ndarray:
    """Return the summed mu * x (dimensionless) of shields given by key, at the energies."""
    depth = np.zeros_like(energies)
    for material, density, thickness in key:
        if thickness > 0:
            mu = _mass_attenuation_cached(material, tuple(energies.tolist()), True)
            depth = depth + mu * density * thickness * 100.0  # 1/cm * m -> cm
    return depth


def transmission(shields, energy_kev) -> np.ndarray:
    """Return the narrow-beam transmission exp(-sum mu_i x_i) of shields at energies (keV).

    `shields` is a sequence of objects with material, density (g/cm^3), thickness (m) (Shield
    or any alike). No build-up: scattered photons are not added back (for thick high-Z shields
    this underestimates what a large detector sees: the broad-beam half-value layer of lead for
    Cs-137 is ~0.65 cm, the narrow-beam one 0.55 cm).
    """
    return np.exp(-_optical_depth(_shield_key(shields), _energies(energy_kev)))


# ---------------------------------------------------------------------------------------------
# Geometry


def _vector(value, name: str) -> np.ndarray:
    array = np.array(value, dtype=float).reshape(-1)
    if array.shape != (3,) or not math.isfinite(array[0] + array[1] + array[2]):
        raise ValueError(f'{name} must be a finite 3-vector, got {value!r}')
    array.setflags(write=False)
    return array


def _panel_axes(normal, up) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return unit (normal, width axis, height axis) of a rectangle from its normal and up."""
    normal = np.asarray(normal, dtype=float)
    norm = np.linalg.norm(normal)
    if not norm > 0:
        raise ValueError('a panel normal must be a non-zero vector')
    normal = normal / norm
    up = np.asarray(up, dtype=float)
    height_axis = up - np.dot(up, normal) * normal
    length = np.linalg.norm(height_axis)
    if not length > 1e-9 * max(np.linalg.norm(up), 1e-300):
        raise ValueError('a panel up vector must not be parallel to its normal')
    height_axis = height_axis / length
    width_axis = np.cross(height_axis, normal)
    for axis in (normal, width_axis, height_axis):
        axis.setflags(write=False)
    return normal, width_axis, height_axis


def _corner_term(x, y, d):
    """Return the signed solid angle of the rectangle [0, x] x [0, y] seen from height d."""
    return np.arctan2(x * y, d * np.sqrt(x * x + y * y + d * d))


def _solid_angle(rel, axes, width, height):
    """Return (solid angle sr, distance along the normal m) of points rel to a face's centre."""
    normal, width_axis, height_axis = axes
    d = rel @ normal
    x = rel @ width_axis
    y = rel @ height_axis
    half_w, half_h = 0.5 * float(width), 0.5 * float(height)
    front = d > 0
    ds = np.where(front, d, 1.0)
    x1, x2 = -half_w - x, half_w - x
    y1, y2 = -half_h - y, half_h - y
    omega = (
        _corner_term(x2, y2, ds)
        - _corner_term(x1, y2, ds)
        - _corner_term(x2, y1, ds)
        + _corner_term(x1, y1, ds)
    )
    return np.where(front, omega, 0.0), d


def solid_angle_rectangle(point, center, normal, width, height, up=(0.0, 0.0, 1.0)):
    """Return the exact solid angle (sr) of a rectangle's face seen from point(s).

    The rectangle is centred on `center`, faces along `normal`, its `height` side lies along
    `up` (projected onto its plane), its `width` side across. `point` is a 3-vector or an
    (n, 3) array; points behind the face or in its plane get 0. Closed form: the sum with
    signs of atan(x y / (d sqrt(x^2 + y^2 + d^2))) over the four corners (sub-rectangles from
    the foot of the perpendicular).
    """
    points = np.asarray(point, dtype=float)
    rel = np.atleast_2d(points) - np.asarray(center, dtype=float)
    omega, _ = _solid_angle(rel, _panel_axes(normal, up), width, height)
    return float(omega[0]) if points.ndim == 1 else omega


# ---------------------------------------------------------------------------------------------
# Sources, panels, count rates


@dataclass(frozen=True, eq=False)
class PointSource:
    """A point source: nuclide, activity (Bq), position (m, caller's frame), its shields."""

    nuclide: str
    activity: float  # Bq
    position: np.ndarray  # m
    shields: tuple = ()

    def __post_init__(self):
        activity = float(self.activity)
        if not (math.isfinite(activity) and activity >= 0):
            raise ValueError(f'source activity must be >= 0 Bq, got {self.activity!r}')
        object.__setattr__(self, 'activity', activity)
        object.__setattr__(self, 'position', _vector(self.position, 'source position'))
        object.__setattr__(self, 'shields', tuple(self.shields))


@dataclass(frozen=True, eq=False)
class DetectorPanel:
    """A rectangular detector slab (PVT by default) facing the lane along `normal`.

    center: m; normal: towards the lane (normalised here); width (across `up`) and height (along
    `up`, projected onto the face): m; thickness: m; density: g/cm^3; the threshold (keV) applies
    to line energies.
    """

    panel_id: str
    center: np.ndarray
    normal: np.ndarray
    width: float
    height: float
    thickness: float
    up: np.ndarray = field(default_factory=lambda: np.array([0.0, 0.0, 1.0]))
    material: str = PVT_FORMULA
    density: float = PVT_DENSITY
    low_energy_threshold_kev: float = 60.0

    def __post_init__(self):
        center = _vector(self.center, 'panel center')
        up = _vector(self.up, 'panel up')
        axes = _panel_axes(_vector(self.normal, 'panel normal'), up)
        object.__setattr__(self, 'center', center)
        object.__setattr__(self, 'normal', axes[0])
        object.__setattr__(self, 'up', up)
        object.__setattr__(self, '_axes', axes)
        for name in ('width', 'height', 'thickness', 'density'):
            value = float(getattr(self, name))
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f'panel {name} must be positive, got {getattr(self, name)!r}')
            object.__setattr__(self, name, value)
        threshold = float(self.low_energy_threshold_kev)
        if not (math.isfinite(threshold) and threshold >= 0):
            raise ValueError(f'panel threshold must be >= 0 keV, got {threshold!r}')
        object.__setattr__(self, 'low_energy_threshold_kev', threshold)
        _composition(self.material)

    @property
    def max_path(self) -> float:
        """Return the longest straight path through the slab (its diagonal), m."""
        return math.sqrt(self.width**2 + self.height**2 + self.thickness**2)


@lru_cache(maxsize=4096)
def _source_line_weights(nuclide: str, key: tuple) -> tuple[np.ndarray, np.ndarray]:
    """Return (energies keV, photons per decay escaping the shields) of a nuclide's lines."""
    energies, yields = _line_arrays(nuclide)
    weights = yields * np.exp(-_optical_depth(key, energies))
    weights.setflags(write=False)
    return energies, weights


@lru_cache(maxsize=1024)
def _panel_line_table(nuclide: str, material: str, density: float, threshold: float):
    """Return (line mask, air mu 1/m, panel interaction mu 1/m) at the nuclide's lines."""
    energies, _ = _line_arrays(nuclide)
    mask = energies >= threshold
    selected = tuple(energies[mask].tolist())
    if not selected:
        return mask, np.zeros(0), np.zeros(0)
    mu_air_mass = np.array(_mass_attenuation_cached(AIR_FORMULA, selected, True))
    mu_panel = np.array(_mass_attenuation_cached(material, selected, False)) * density * 100.0
    return mask, mu_air_mass * 100.0, mu_panel  # cm^2/g -> (1/m per g/cm^3), 1/cm -> 1/m


def detector_panels(panels) -> list[DetectorPanel]:
    """Return physics panels from DetectorPanel or site/layout.py PanelSpec objects."""
    return [p if isinstance(p, DetectorPanel) else
            DetectorPanel(str(p.id), np.array(p.center, dtype=float),
                          np.array(p.normal, dtype=float), p.width, p.height, p.thickness)
            for p in panels]


def _gather(sources):
    """Return (positions (n, 3), activities (n,), {nuclide: (indices, line weights (k, L))})."""
    positions, activities, groups = [], [], {}
    for source in sources:
        if source.activity <= 0:
            continue
        nuclide = canonical_nuclide(source.nuclide)
        _, weights = _source_line_weights(nuclide, _shield_key(source.shields))
        indices, rows = groups.setdefault(nuclide, ([], []))
        indices.append(len(positions))
        rows.append(weights)
        positions.append(source.position)
        activities.append(source.activity)
    positions = np.array(positions, dtype=float).reshape(-1, 3)
    groups = {nuclide: (np.array(idx), np.array(rows)) for nuclide, (idx, rows) in groups.items()}
    return positions, np.array(activities, dtype=float), groups


def _panel_rates(panels, gathered, air_density: float) -> np.ndarray:
    """Return the count rates of panels (cps), all at once: arrays over (panel, source, line)."""
    positions, activities, groups = gathered
    rates = np.zeros(len(panels))
    if not len(positions) or not len(panels):
        return rates
    centers = np.array([p.center for p in panels])
    axes = np.array([p._axes for p in panels])  # (m, 3 axes, 3)
    rel = positions[None, :, :] - centers[:, None, :]  # (m, n, 3)
    d, x, y = (np.einsum('mnk,mk->mn', rel, axes[:, k]) for k in range(3))
    half_w = np.array([0.5 * p.width for p in panels])[:, None]
    half_h = np.array([0.5 * p.height for p in panels])[:, None]
    front = d > 0
    ds = np.where(front, d, 1.0)
    x1, x2, y1, y2 = -half_w - x, half_w - x, -half_h - y, half_h - y
    omega = np.where(front, _corner_term(x2, y2, ds) - _corner_term(x1, y2, ds)
                     - _corner_term(x2, y1, ds) + _corner_term(x1, y1, ds), 0.0)
    distance = np.sqrt(np.einsum('mnk,mnk->mn', rel, rel))
    cos = np.clip(d / np.maximum(distance, 1e-300), _MIN_COS, 1.0)
    thickness = np.array([p.thickness for p in panels])[:, None]
    max_path = np.array([p.max_path for p in panels])[:, None]
    path = np.minimum(thickness / cos, max_path)  # m through the slab
    geometric = activities[None, :] * omega / (4.0 * math.pi)  # photons per decay on the face
    kinds = {}  # panels sharing a material, density and threshold share their line tables
    for index, p in enumerate(panels):
        kinds.setdefault((p.material, p.density, p.low_energy_threshold_kev), []).append(index)
    for (material, density, threshold), members in kinds.items():
        members = np.array(members)
        for nuclide, (indices, weights) in groups.items():
            mask, mu_air, mu_panel = _panel_line_table(nuclide, material, density, threshold)
            if not len(mu_air):
                continue
            picked = np.ix_(members, indices)
            air = np.exp(-air_density * distance[picked][..., None] * mu_air)
            efficiency = -np.expm1(-path[picked][..., None] * mu_panel)
            per_decay = np.einsum('nl,mnl->mn', weights[:, mask], air * efficiency)
            rates[members] += np.einsum('mn,mn->m', geometric[picked], per_decay)
    return rates


def _check_air(air_density_g_cm3: float) -> float:
    air_density = float(air_density_g_cm3)
    if not (math.isfinite(air_density) and air_density >= 0):
        raise ValueError(f'air density must be >= 0 g/cm^3, got {air_density_g_cm3!r}')
    return air_density


def expected_count_rate(panel: DetectorPanel, sources, air_density_g_cm3=AIR_DENSITY) -> float:
    """Return the expected count rate (cps) of a panel from point sources (no background).

    Sum over sources and lines at or above the panel's threshold of activity * yield *
    Omega / 4 pi * air transmission over the source-panel distance * shield transmission *
    intrinsic efficiency (see the module docstring). Sources behind the panel's face give 0.
    """
    return float(_panel_rates([panel], _gather(sources), _check_air(air_density_g_cm3))[0])


def expected_count_rates(panels, sources, air_density_g_cm3=AIR_DENSITY) -> np.ndarray:
    """Return the expected count rates (cps) of several panels from the same sources."""
    return _panel_rates(list(panels), _gather(sources), _check_air(air_density_g_cm3))
