"""Dual-energy material decomposition: effective atomic number per pixel and the colour coding.

Core module (numpy / scipy, no ROS). Input: the low- and high-energy transmissions of a scan
(`XrayScan.calibrated()`), nothing else. Output: per pixel the log attenuations
A_low = -ln T_low, A_high = -ln T_high, an effective atomic number Zeff, a status (material,
air, opaque, invalid), the mass thickness (g/cm^2) and the material class of the display
colours.

Method (the attenuation-ratio lookup of conveyor dual-energy scanners; e.g. Chang, Ni and Tseng,
"Calculation of effective atomic numbers using a rational polynomial approximation method with
a dual-energy X-ray imaging system", J. X-Ray Sci. Technol. 29 (2021), doi 10.3233/XST-200790,
who calibrate with twelve reference materials of Zeff 5.44-22): the ratio R = A_low / A_high
grows with Z (photoelectric absorption, ~Z^3 / E^3, weighs more in the low-energy layer) and
falls with the thickness (beam hardening). Step wedges of reference materials of known Zeff
are scanned; each wedge gives a curve R_k(A_high). For a pixel, R_k is read at its A_high for
every reference k and Zeff is interpolated (monotone cubic, PCHIP) between the references whose
R bracket the pixel's. The lookup is tabulated once on a grid of (ln A_high, R) and read with
bilinear interpolation, so a whole scan takes a few tens of ms. The same wedges give the
mass thickness of each step: the mass thickness of a pixel is interpolated alike in
(ln A_high, Zeff), which includes the beam hardening that a single mass attenuation
coefficient would miss.

Zeff is the power-law effective atomic number of the references (materials.effective_z,
Spiers' exponent 2.94): what the calibration reports for a compound is the Zeff of the
reference line its attenuation ratio falls on. With this scanner (160 kV, 0.3 mm CsI front
layer, 0.5 mm Cu filter, 4 mm CsI rear layer) R rises with Z only up to Z ~ 40: the K edges of
heavier elements (Sn 29 keV, Pb 88 keV) bring their ratio back down (thin lead reads like
aluminium). Zeff is therefore reported in the references' range (5.4 to 30 with the shipped
set), and thick heavy metal is flagged opaque, as on every conveyor scanner.

Flags: a pixel whose A_high and A_low are both below `air_attenuation` holds too little
matter for a ratio (air, the box's cardboard wall; the per-pixel noise of A in air is ~0.007);
one whose A_high exceeds `max_high_attenuation` or whose A_low exceeds `max_low_attenuation`
let too few photons through (opaque); NaN, infinite or non-positive transmissions are invalid.
Their Zeff is NaN. A pixel read as matter by its A_low alone (a thin metal foil) is looked up
at the table's lowest A_high.

Colour coding (the convention of parcel and baggage scanners; no standard fixes the band
limits, vendors' descriptions differ, e.g. polimek.com "What do the colors on the X-ray
baggage scanner mean?": organic orange, inorganic blue, mixed green, impenetrable black): here
organic Zeff < 10 orange, mixed / inorganic 10-18 green, metal > 18 blue, opaque black;
brightness follows the transmission (thin things pale, thick things dark) and the colour's
saturation the attenuation (air is white).

Calibration file (JSON, written by `DualEnergyCalibration.save`, one per scanner model; the
shipped one is made by `python -m customs_lab.simulation.xray_phantoms --write PATH`):

    {
      "format": "customs_lab.xray.dual_energy_calibration",
      "version": 1,
      "model": "CL-XR-2E",            # the ScannerModel.model it was measured on
      "kvp": 160.0,                   # tube voltage of the measurement, kV (0: unknown)
      "note": "...",                  # how it was made (free text)
      "air_attenuation": 0.03,        # A_high and A_low below this: no material (air)
      "max_high_attenuation": 6.0,    # A_high above this: opaque
      "max_low_attenuation": 7.5,     # A_low above this: opaque
      "references": [                 # at least 3, distinct Zeff
        {"name": "water", "formula": "H2O", "zeff": 7.42, "density": 1.0,
         "steps": [                   # at least 3, mass thickness increasing
           {"mass_thickness": 0.1,    # g/cm^2 of the step
            "low": 0.0254,            # mean -ln T_low over the step
            "high": 0.0193},          # mean -ln T_high over the step
           ...]},
        ...]
    }

`load` refuses (ValueError) any file that is not this format: wrong format name or version,
missing or extra keys, non-finite or non-positive numbers, fewer than 3 references or steps,
steps whose attenuation does not grow with their mass thickness.
"""

from dataclasses import dataclass
import json
import math
import pathlib

import numpy as np
from scipy import ndimage
from scipy.interpolate import PchipInterpolator

FORMAT = 'customs_lab.xray.dual_energy_calibration'
VERSION = 1

# pixel status
OK, AIR, OPAQUE, INVALID = 0, 1, 2, 3
STATUS_NAMES = ('ok', 'air', 'opaque', 'invalid')

# material classes of the display (codes of `classify`)
NONE, ORGANIC, INORGANIC, METAL, IMPENETRABLE = 0, 1, 2, 3, 4
CLASS_NAMES = ('none', 'organic', 'inorganic', 'metal', 'opaque')
ORGANIC_MAX_ZEFF = 10.0  # Zeff below: organic (orange)
METAL_MIN_ZEFF = 18.0  # Zeff above: metal (blue); between: mixed / inorganic (green)
CLASS_COLOURS = {  # RGB in [0, 1] at full saturation
    ORGANIC: (1.0, 0.55, 0.05),  # orange
    INORGANIC: (0.15, 0.75, 0.15),  # green
    METAL: (0.15, 0.35, 1.0),  # blue
}

DEFAULT_AIR_ATTENUATION = 0.03
DEFAULT_MAX_HIGH_ATTENUATION = 6.0
DEFAULT_MAX_LOW_ATTENUATION = 7.5
COVERAGE = 0.75  # share of the opaque limits a wedge's thickest step must reach

_U_POINTS = 241  # grid of ln A_high of the lookup tables
_R_STEP = 0.002  # grid step of the attenuation ratio
_Z_STEP = 0.05  # grid step of Zeff in the mass-thickness table
_TOP_KEYS = {'format', 'version', 'model', 'kvp', 'note', 'air_attenuation',
             'max_high_attenuation', 'max_low_attenuation', 'references'}
_REFERENCE_KEYS = {'name', 'formula', 'zeff', 'density', 'steps'}
_STEP_KEYS = {'mass_thickness', 'low', 'high'}


def _positive(value, what: str) -> float:
    if isinstance(value, bool):
        raise ValueError(f'{what} must be a positive number, got {value!r}')
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f'{what} must be a positive number, got {value!r}') from None
    if not (math.isfinite(number) and number > 0):
        raise ValueError(f'{what} must be a positive number, got {value!r}')
    return number


@dataclass(frozen=True)
class ReferenceWedge:
    """A step wedge of one reference material as the scanner measured it.

    mass_thickness: g/cm^2 of each step (increasing); low, high: the mean -ln T_low and
    -ln T_high measured over each step; zeff: the material's effective atomic number;
    density: g/cm^3 of the wedge (for the record: the lookup uses mass thickness only).
    """

    name: str
    formula: str
    zeff: float
    density: float
    mass_thickness: tuple
    low: tuple
    high: tuple

    def __post_init__(self):
        """Check the wedge (ValueError) and store its steps as tuples of floats."""
        where = f'reference {self.name!r}'
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f'a reference needs a name, got {self.name!r}')
        if not isinstance(self.formula, str):
            raise ValueError(f'{where}: formula must be a string, got {self.formula!r}')
        object.__setattr__(self, 'zeff', _positive(self.zeff, f'{where}: zeff'))
        object.__setattr__(self, 'density', _positive(self.density, f'{where}: density'))
        columns = []
        for label in ('mass_thickness', 'low', 'high'):
            values = getattr(self, label)
            try:
                values = tuple(_positive(v, f'{where}: {label}') for v in values)
            except TypeError:
                raise ValueError(f'{where}: {label} must be a list of numbers') from None
            columns.append(values)
            object.__setattr__(self, label, values)
        if len({len(column) for column in columns}) != 1 or len(columns[0]) < 3:
            raise ValueError(f'{where}: needs at least 3 steps with mass_thickness, low and '
                             f'high each, got lengths {[len(c) for c in columns]}')
        for label, values in zip(('mass_thickness', 'low', 'high'), columns, strict=True):
            if np.any(np.diff(values) <= 0):
                raise ValueError(f'{where}: {label} must increase from step to step, got '
                                 f'{values}')

    @property
    def ratio(self) -> np.ndarray:
        """Return A_low / A_high of each step."""
        return np.asarray(self.low) / np.asarray(self.high)


@dataclass(frozen=True)
class Decomposition:
    """Per-pixel results of `DualEnergyCalibration.decompose` (arrays of the input's shape).

    a_low, a_high: -ln T (NaN where invalid); zeff: effective atomic number (NaN unless
    status == OK); status: OK, AIR, OPAQUE or INVALID (uint8); mass_thickness: g/cm^2 (0 for
    air and invalid pixels; for opaque ones the value at the opaque limit, a lower bound).
    """

    a_low: np.ndarray
    a_high: np.ndarray
    zeff: np.ndarray
    status: np.ndarray
    mass_thickness: np.ndarray

    @property
    def classes(self) -> np.ndarray:
        """Return the display class of each pixel (NONE, ORGANIC, INORGANIC, METAL, ...)."""
        return classify(self.zeff, self.status)


class DualEnergyCalibration:
    """The scanner's dual-energy lookup: Zeff and mass thickness from (T_low, T_high)."""

    def __init__(self, references, model: str = '', kvp: float = 0.0, note: str = '',
                 air_attenuation: float = DEFAULT_AIR_ATTENUATION,
                 max_high_attenuation: float = DEFAULT_MAX_HIGH_ATTENUATION,
                 max_low_attenuation: float = DEFAULT_MAX_LOW_ATTENUATION):
        """Build the lookup tables from ReferenceWedges (ValueError if they cannot make one)."""
        references = list(references)
        if len(references) < 3 or not all(isinstance(r, ReferenceWedge) for r in references):
            raise ValueError(f'a calibration needs at least 3 ReferenceWedges, got '
                             f'{len(references)}')
        references.sort(key=lambda r: r.zeff)
        zeffs = np.array([r.zeff for r in references])
        if np.any(np.diff(zeffs) <= 1e-6):
            raise ValueError(f'reference Zeff values must be distinct, got {zeffs.tolist()}')
        self.references = tuple(references)
        self.model = str(model)
        self.kvp = float(kvp) if math.isfinite(float(kvp)) and float(kvp) >= 0 else 0.0
        self.note = str(note)
        self.air_attenuation = _positive(air_attenuation, 'air_attenuation')
        self.max_high_attenuation = _positive(max_high_attenuation, 'max_high_attenuation')
        self.max_low_attenuation = _positive(max_low_attenuation, 'max_low_attenuation')
        if self.air_attenuation >= self.max_high_attenuation:
            raise ValueError('air_attenuation must be below max_high_attenuation')
        self.zeff_range = (float(zeffs[0]), float(zeffs[-1]))
        self._build_tables()

    # -----------------------------------------------------------------------------------------
    # fitting and files

    @classmethod
    def fit(cls, references, model: str = '', kvp: float = 0.0, note: str = '',
            air_attenuation: float = DEFAULT_AIR_ATTENUATION,
            max_high_attenuation: float = DEFAULT_MAX_HIGH_ATTENUATION,
            max_low_attenuation: float = DEFAULT_MAX_LOW_ATTENUATION) -> 'DualEnergyCalibration':
        """Return a calibration fitted to step-wedge measurements (ReferenceWedges).

        Steps whose A_low exceeds max_low_attenuation (too few photons in the front layer
        for a mean that means anything) are dropped. Each wedge must span the range a pixel
        of its material can be read in: its thinnest step below 2 x air_attenuation, its
        thickest within COVERAGE of max_high_attenuation or of max_low_attenuation (past its
        thickest step a reference's ratio is held constant). ValueError if a reference keeps
        fewer than 3 steps, does not span the range, or if the ratios of the references do
        not grow with their Zeff (a swapped or mislabelled wedge).
        """
        kept = []
        for ref in references:
            if not isinstance(ref, ReferenceWedge):
                raise ValueError(f'expected ReferenceWedges, got {type(ref).__name__}')
            pick = np.flatnonzero(np.asarray(ref.low) <= max_low_attenuation)
            if len(pick) < 3:
                raise ValueError(f'reference {ref.name!r}: fewer than 3 steps below A_low = '
                                 f'{max_low_attenuation}')
            ref = ReferenceWedge(ref.name, ref.formula, ref.zeff, ref.density,
                                 tuple(np.asarray(ref.mass_thickness)[pick]),
                                 tuple(np.asarray(ref.low)[pick]),
                                 tuple(np.asarray(ref.high)[pick]))
            if ref.high[0] > 2.0 * air_attenuation:
                raise ValueError(f'reference {ref.name!r}: its thinnest step (A_high '
                                 f'{ref.high[0]:.3f}) must be below 2 x air_attenuation')
            if (ref.high[-1] < COVERAGE * max_high_attenuation
                    and ref.low[-1] < COVERAGE * max_low_attenuation):
                raise ValueError(f'reference {ref.name!r}: its thickest usable step (A_high '
                                 f'{ref.high[-1]:.2f}, A_low {ref.low[-1]:.2f}) does not reach '
                                 f'{COVERAGE:.0%} of the opaque limits')
            kept.append(ref)
        calibration = cls(kept, model, kvp, note, air_attenuation, max_high_attenuation,
                          max_low_attenuation)
        calibration.check_order()
        return calibration

    def check_order(self):
        """Raise ValueError unless the references' ratios grow with Zeff (at A_high 0.1-1.5)."""
        for a_high in (0.1, 0.4, 1.5):
            ratios = np.array([curve(math.log(a_high)) for curve in self._ratio_curves])
            if np.any(np.diff(ratios) <= 0):
                names = [r.name for r in self.references]
                raise ValueError(f'the attenuation ratios of the references {names} at A_high '
                                 f'= {a_high} do not grow with Zeff: {ratios.round(3)}')

    def to_dict(self) -> dict:
        """Return the calibration as the JSON document of the module docstring."""
        return {
            'format': FORMAT, 'version': VERSION, 'model': self.model, 'kvp': self.kvp,
            'note': self.note, 'air_attenuation': self.air_attenuation,
            'max_high_attenuation': self.max_high_attenuation,
            'max_low_attenuation': self.max_low_attenuation,
            'references': [
                {'name': r.name, 'formula': r.formula, 'zeff': round(r.zeff, 4),
                 'density': r.density,
                 'steps': [{'mass_thickness': float(f'{m:.6g}'), 'low': float(f'{lo:.6g}'),
                            'high': float(f'{hi:.6g}')}
                           for m, lo, hi in zip(r.mass_thickness, r.low, r.high, strict=True)]}
                for r in self.references],
        }

    @classmethod
    def from_dict(cls, document, where: str = 'dual-energy calibration'
                  ) -> 'DualEnergyCalibration':
        """Return a calibration from its JSON document; ValueError naming `where` if bad."""
        if not isinstance(document, dict):
            raise ValueError(f'{where}: expected a JSON object, got {type(document).__name__}')
        if document.get('format') != FORMAT:
            raise ValueError(f'{where}: format must be {FORMAT!r}, got '
                             f'{document.get("format")!r}')
        if document.get('version') != VERSION:
            raise ValueError(f'{where}: unsupported version {document.get("version")!r} '
                             f'(expected {VERSION})')
        if set(document) != _TOP_KEYS:
            raise ValueError(f'{where}: keys must be {sorted(_TOP_KEYS)}, got '
                             f'{sorted(document)}')
        if not isinstance(document['references'], list):
            raise ValueError(f'{where}: references must be a list')
        references = []
        for n, entry in enumerate(document['references']):
            if not isinstance(entry, dict) or set(entry) != _REFERENCE_KEYS:
                raise ValueError(f'{where}: reference {n} must have the keys '
                                 f'{sorted(_REFERENCE_KEYS)}')
            steps = entry['steps']
            if not isinstance(steps, list) or not all(
                    isinstance(step, dict) and set(step) == _STEP_KEYS for step in steps):
                raise ValueError(f'{where}: reference {n} steps must be objects with the keys '
                                 f'{sorted(_STEP_KEYS)}')
            try:
                references.append(ReferenceWedge(
                    str(entry['name']), str(entry['formula']), entry['zeff'], entry['density'],
                    tuple(step['mass_thickness'] for step in steps),
                    tuple(step['low'] for step in steps), tuple(step['high'] for step in steps)))
            except ValueError as error:
                raise ValueError(f'{where}: {error}') from None
        try:
            kvp = document['kvp']
            if isinstance(kvp, bool) or not isinstance(kvp, (int, float)) or not (
                    math.isfinite(kvp) and kvp >= 0):
                raise ValueError(f'kvp must be a non-negative number, got {kvp!r}')
            calibration = cls(references, str(document['model']), float(kvp),
                              str(document['note']), document['air_attenuation'],
                              document['max_high_attenuation'],
                              document['max_low_attenuation'])
            calibration.check_order()
        except ValueError as error:
            raise ValueError(f'{where}: {error}') from None
        return calibration

    def save(self, path):
        """Write the calibration as JSON (the module docstring's format)."""
        path = pathlib.Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=1) + '\n')

    @classmethod
    def load(cls, path) -> 'DualEnergyCalibration':
        """Read a calibration file; ValueError if it is not a valid one (OSError if unreadable)."""
        path = pathlib.Path(path)
        text = path.read_text()
        try:
            document = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise ValueError(f'{path}: not JSON ({error})') from None
        return cls.from_dict(document, str(path))

    # -----------------------------------------------------------------------------------------
    # lookup tables

    def _build_tables(self):
        refs = self.references
        self._ratio_curves, self._kappa_curves = [], []
        for ref in refs:
            u = np.log(ref.high)
            self._ratio_curves.append(_clamped_pchip(u, ref.ratio))
            # ln(mass thickness / A_high): cm^2/g inverse of the effective mass attenuation
            self._kappa_curves.append(_clamped_pchip(u, np.log(np.asarray(ref.mass_thickness)
                                                                / np.asarray(ref.high))))
        u_lo = math.log(self.air_attenuation / 2.0)
        u_hi = math.log(self.max_high_attenuation * 1.05)
        self._u = np.linspace(u_lo, u_hi, _U_POINTS)
        ratios = np.array([curve(self._u) for curve in self._ratio_curves])  # (K, U)
        kappas = np.array([curve(self._u) for curve in self._kappa_curves])
        zeffs = np.array([r.zeff for r in refs])
        r_lo, r_hi = float(ratios.min()) - 0.05, float(ratios.max()) + 0.05
        self._r = np.arange(r_lo, r_hi + _R_STEP, _R_STEP)
        self._z = np.arange(zeffs[0], zeffs[-1] + _Z_STEP, _Z_STEP)
        z_table = np.empty((len(self._u), len(self._r)))
        kappa_table = np.empty((len(self._u), len(self._z)))
        for i in range(len(self._u)):
            column = np.maximum.accumulate(ratios[:, i]) + 1e-6 * np.arange(len(refs))
            z_table[i] = _clamped_pchip(column, zeffs)(self._r)
            kappa_table[i] = _clamped_pchip(zeffs, kappas[:, i])(self._z)
        self._z_table, self._kappa_table = z_table, kappa_table

    def _coordinates(self, values, grid) -> np.ndarray:
        return (values - grid[0]) / (grid[1] - grid[0])

    # -----------------------------------------------------------------------------------------
    # per pixel

    def decompose(self, t_low, t_high, smoothing: float = 0.0) -> Decomposition:
        """Return the per-pixel decomposition of transmission images (any equal shapes).

        t_low, t_high: transmissions in (0, 1] (values above 1 from noise are fine; NaN,
        infinite, zero or negative ones are flagged INVALID). smoothing: the sigma (pixels) of
        a Gaussian filter applied to both attenuation images before the ratio (0: none; 1 is
        what a display uses: it trades resolution for noise).
        """
        t_low = np.asarray(t_low, dtype=float)
        t_high = np.asarray(t_high, dtype=float)
        if t_low.shape != t_high.shape:
            raise ValueError(f'low and high images differ in shape: {t_low.shape} vs '
                             f'{t_high.shape}')
        if not (isinstance(smoothing, (int, float)) and math.isfinite(smoothing)
                and smoothing >= 0):
            raise ValueError(f'smoothing must be a non-negative number, got {smoothing!r}')
        valid = np.isfinite(t_low) & np.isfinite(t_high) & (t_low > 0) & (t_high > 0)
        with np.errstate(divide='ignore', invalid='ignore'):
            a_low = np.where(valid, -np.log(np.where(valid, t_low, 1.0)), np.nan)
            a_high = np.where(valid, -np.log(np.where(valid, t_high, 1.0)), np.nan)
        if smoothing > 0 and t_low.ndim >= 1 and t_low.size:
            a_low = _smooth(a_low, valid, smoothing)
            a_high = _smooth(a_high, valid, smoothing)
        status = np.full(t_low.shape, INVALID, dtype=np.uint8)
        status[valid] = OK
        air = valid & (a_high < self.air_attenuation) & (a_low < self.air_attenuation)
        opaque = valid & ~air & ((a_high > self.max_high_attenuation)
                                 | (a_low > self.max_low_attenuation))
        status[air], status[opaque] = AIR, OPAQUE
        ok = status == OK
        zeff = np.full(t_low.shape, np.nan)
        mass = np.zeros(t_low.shape)
        if np.any(ok):
            # a pixel read as matter by its A_low alone (a thin metal foil) has an A_high in
            # the noise: the lookup takes it at the table's lower end
            floor = np.maximum(a_high[ok], self.air_attenuation / 2.0)
            zeff[ok] = self._zeff(a_low[ok], floor)
            mass[ok] = self._mass_thickness(floor, zeff[ok])
        if np.any(opaque):  # a lower bound: the mass at the opaque limit, as a metal
            limit = np.minimum(a_high[opaque], self.max_high_attenuation)
            mass[opaque] = self._mass_thickness(limit, np.full(limit.shape, self.zeff_range[1]))
        return Decomposition(a_low, a_high, zeff, status, mass)

    def zeff(self, t_low, t_high, smoothing: float = 0.0) -> np.ndarray:
        """Return Zeff per pixel (NaN for air, opaque and invalid pixels)."""
        return self.decompose(t_low, t_high, smoothing).zeff

    def zeff_from_attenuation(self, a_low, a_high) -> np.ndarray:
        """Return Zeff of (-ln T_low, -ln T_high) pairs inside the calibrated range (no flags)."""
        a_low = np.asarray(a_low, dtype=float)
        a_high = np.asarray(a_high, dtype=float)
        return self._zeff(a_low, np.clip(a_high, 1e-9, None))

    def mass_thickness(self, a_high, zeff) -> np.ndarray:
        """Return the mass thickness (g/cm^2) of a material of `zeff` attenuating `a_high`."""
        a_high = np.clip(np.asarray(a_high, dtype=float), 1e-9, None)
        zeff = np.asarray(zeff, dtype=float)
        return self._mass_thickness(a_high, zeff)

    def _zeff(self, a_low, a_high):
        a_low, a_high = np.broadcast_arrays(a_low, a_high)
        u = np.log(a_high).ravel()
        ratio = (a_low / a_high).ravel()
        coords = np.stack([self._coordinates(u, self._u), self._coordinates(ratio, self._r)])
        out = ndimage.map_coordinates(self._z_table, coords, order=1, mode='nearest')
        return out.reshape(a_high.shape)

    def _mass_thickness(self, a_high, zeff):
        a_high, zeff = np.broadcast_arrays(a_high, zeff)
        u = np.log(a_high).ravel()
        z = np.clip(np.nan_to_num(zeff, nan=self.zeff_range[0]), *self.zeff_range).ravel()
        coords = np.stack([self._coordinates(u, self._u), self._coordinates(z, self._z)])
        kappa = ndimage.map_coordinates(self._kappa_table, coords, order=1, mode='nearest')
        return a_high * np.exp(kappa).reshape(a_high.shape)

    def colour_image(self, t_low, t_high, smoothing: float = 1.0) -> np.ndarray:
        """Return the display image (lines, pixels, 3) uint8 RGB of a scan's transmissions."""
        result = self.decompose(t_low, t_high, smoothing)
        return colour_image(result)


def _clamped_pchip(x, y):
    """Return f(x') = PCHIP through (x, y), constant beyond the ends (x increasing)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    spline = PchipInterpolator(x, y, extrapolate=False)
    lo, hi = x[0], x[-1]

    def curve(values):
        values = np.clip(np.asarray(values, dtype=float), lo, hi)
        return spline(values)
    return curve


def _smooth(image, valid, sigma):
    """Gaussian-filter an image over its valid pixels only (normalised convolution)."""
    weight = ndimage.gaussian_filter(valid.astype(float), sigma, mode='nearest')
    filled = ndimage.gaussian_filter(np.where(valid, image, 0.0), sigma, mode='nearest')
    with np.errstate(divide='ignore', invalid='ignore'):
        out = filled / weight
    return np.where(valid, out, np.nan)


def classify(zeff, status=None) -> np.ndarray:
    """Return the display class per pixel: NONE, ORGANIC, INORGANIC, METAL or IMPENETRABLE.

    Bands: Zeff < ORGANIC_MAX_ZEFF organic, up to METAL_MIN_ZEFF mixed / inorganic, above
    metal; NaN Zeff is NONE, or IMPENETRABLE where `status` says OPAQUE.
    """
    zeff = np.asarray(zeff, dtype=float)
    out = np.zeros(zeff.shape, dtype=np.uint8)
    finite = np.isfinite(zeff)
    out[finite & (zeff < ORGANIC_MAX_ZEFF)] = ORGANIC
    out[finite & (zeff >= ORGANIC_MAX_ZEFF) & (zeff <= METAL_MIN_ZEFF)] = INORGANIC
    out[finite & (zeff > METAL_MIN_ZEFF)] = METAL
    if status is not None:
        out[np.asarray(status) == OPAQUE] = IMPENETRABLE
    return out


def colour_image(result: Decomposition, saturation_attenuation: float = 0.3,
                 gamma: float = 0.5) -> np.ndarray:
    """Return the colour-coded RGB image (..., 3) uint8 of a Decomposition.

    Hue by class (CLASS_COLOURS); saturation 1 - exp(-A_high / saturation_attenuation) (thin
    things pale, air white); brightness T_high ** gamma (thick things dark); opaque black.
    """
    classes = result.classes
    a_high = np.nan_to_num(result.a_high, nan=0.0)
    brightness = np.exp(-gamma * np.clip(a_high, 0.0, None))
    saturation = 1.0 - np.exp(-np.clip(a_high, 0.0, None) / saturation_attenuation)
    hue = np.ones(classes.shape + (3,))
    for code, rgb in CLASS_COLOURS.items():
        hue[classes == code] = rgb
    rgb = brightness[..., None] * ((1.0 - saturation[..., None]) + saturation[..., None] * hue)
    rgb[classes == IMPENETRABLE] = 0.0
    rgb[result.status == INVALID] = 0.0
    return np.clip(np.rint(rgb * 255.0), 0, 255).astype(np.uint8)


def default_calibration_path(model: str) -> pathlib.Path:
    """Return where the shipped calibration of a scanner model is: config/xray/<model>_... ."""
    from customs_lab.common.data_dir import share_dir

    return share_dir() / 'config' / 'xray' / f'{model}_dual_energy.json'
