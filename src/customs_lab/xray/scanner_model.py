"""The X-ray scanner's hardware description: tube, geometry, detectors, belt.

One conveyor line scanner (the parcel scanners of express and mail centres): an X-ray tube below
the belt shoots a fan beam up through the tunnel, perpendicular to the belt, onto a straight
dual-layer line detector above it; a backscatter detector beside the tube sees what the parcel
scatters back. The belt carries the parcel through the fan; each detector readout is one image
line. Frames (right-handed): x along the belt (direction of travel), y across it, z up; the
focal spot at (0, 0, 0), the belt surface at z = source_to_belt, the detector line at
z = source_to_detector, its pixels along y centred on the focal spot.

Read from a site file's `xray_scanner` device (`model:` section) by `ScannerModel.from_dict`;
the defaults are a 160 kV parcel scanner with a 65 x 50 cm tunnel.
"""

from dataclasses import dataclass, fields
import math

CHANNELS = ('low', 'high', 'back')  # the three signals of every line, in wire and array order


@dataclass(frozen=True)
class ScannerModel:
    """A conveyor X-ray scanner (lengths m, energies keV, currents mA, rates Hz)."""

    model: str = 'CL-XR-2E'
    # tube (spekpy): tungsten anode
    kvp: float = 160.0
    tube_current_ma: float = 1.0
    anode_angle_deg: float = 12.0
    filtration: tuple = (('Al', 2.0),)  # (element, mm) of inherent plus added filtration
    # geometry
    source_to_belt: float = 0.80  # m, focal spot to belt surface
    source_to_detector: float = 1.40  # m, focal spot to the detector line
    tunnel_width: float = 0.65  # m
    tunnel_height: float = 0.50  # m above the belt
    pixels: int = 352  # detector pixels across the belt
    detector_pitch: float = 0.0032  # m, at the detector (pixel width and height)
    belt_thickness: float = 0.004  # m of rubber belt (C5H8, 0.95 g/cm3) in every ray
    # dual-layer transmission detector: front (low-energy) scintillator, filter, rear (high)
    front_layer: tuple = ('CsI', 4.51, 0.3)  # (formula, g/cm3, mm)
    interlayer_filter: tuple = ('Cu', 8.96, 0.5)
    rear_layer: tuple = ('CsI', 4.51, 4.0)
    # backscatter detector beside the tube, facing the belt
    backscatter_area: float = 0.05  # m^2 of scintillator
    backscatter_layer: tuple = ('CsI', 4.51, 1.0)
    # belt and readout
    belt_speed: float = 0.5  # m/s
    line_rate: float = 250.0  # Hz (lines per second)
    adc_bits: int = 16
    air_level: float = 50000.0  # ADU of an unobstructed transmission pixel, low and high
    backscatter_level: float = 20000.0  # ADU of the backscatter channel for 10 cm of water
    dark_offset: float = 1000.0  # ADU, mean dark offset (each pixel its own)
    read_noise: float = 3.0  # ADU rms of the readout electronics
    gain_spread: float = 0.05  # relative pixel-to-pixel gain spread (flat-fielded by air)

    @property
    def line_period(self) -> float:
        """Return the time between lines, s."""
        return 1.0 / self.line_rate

    @property
    def line_pitch(self) -> float:
        """Return the belt travel per line, m."""
        return self.belt_speed / self.line_rate

    @property
    def belt_pitch(self) -> float:
        """Return a pixel's width on the belt surface, m (the fan's magnification removed)."""
        return self.detector_pitch * self.source_to_belt / self.source_to_detector

    @property
    def full_scale(self) -> int:
        """Return the ADC's largest value."""
        return 2 ** self.adc_bits - 1

    def pixel_y(self):
        """Return each detector pixel's centre across the belt (y, m, at the detector)."""
        half = (self.pixels - 1) / 2.0
        return [(i - half) * self.detector_pitch for i in range(self.pixels)]

    @classmethod
    def from_dict(cls, entry: dict | None, where: str = 'xray scanner model') -> 'ScannerModel':
        """Build a model from a site file's `model:` mapping; ValueError naming `where`."""
        entry = dict(entry or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(entry) - known)
        if unknown:
            raise ValueError(f'{where}: unknown keys {unknown} (known: {sorted(known)})')
        values = {}
        for f in fields(cls):
            if f.name not in entry:
                continue
            value = entry[f.name]
            if f.name == 'model':
                values[f.name] = str(value)
            elif f.name == 'filtration':
                values[f.name] = tuple((str(m), float(mm)) for m, mm in value)
            elif f.name.endswith('_layer') or f.name == 'interlayer_filter':
                formula, density, mm = value
                values[f.name] = (str(formula), float(density), float(mm))
            elif f.name in ('pixels', 'adc_bits'):
                if isinstance(value, bool) or int(value) != value:
                    raise ValueError(f'{where}: {f.name} must be an integer, got {value!r}')
                values[f.name] = int(value)
            else:
                values[f.name] = float(value)
        model = cls(**values)
        model.check(where)
        return model

    def check(self, where: str = 'xray scanner model'):
        """Raise ValueError naming `where` on an impossible model."""
        positive = ('kvp', 'tube_current_ma', 'anode_angle_deg', 'source_to_belt',
                    'source_to_detector', 'tunnel_width', 'tunnel_height', 'detector_pitch',
                    'backscatter_area', 'belt_speed', 'line_rate', 'air_level',
                    'backscatter_level')
        for name in positive:
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f'{where}: {name} must be a positive number, got {value!r}')
        if not 20.0 <= self.kvp <= 450.0:
            raise ValueError(f'{where}: kvp must be in [20, 450] kV, got {self.kvp}')
        if self.source_to_belt + self.tunnel_height >= self.source_to_detector:
            raise ValueError(f'{where}: the detector must be above the tunnel '
                             f'(source_to_belt + tunnel_height < source_to_detector)')
        if not 1 <= self.pixels <= 4096:
            raise ValueError(f'{where}: pixels must be in [1, 4096], got {self.pixels}')
        if not 8 <= self.adc_bits <= 16:
            raise ValueError(f'{where}: adc_bits must be in [8, 16], got {self.adc_bits}')
        if self.air_level + self.dark_offset >= self.full_scale:
            raise ValueError(f'{where}: air_level + dark_offset must be below the ADC full '
                             f'scale {self.full_scale}')
        if not 0.0 <= self.gain_spread < 0.5 or self.read_noise < 0 or self.dark_offset < 0:
            raise ValueError(f'{where}: gain_spread must be in [0, 0.5), read_noise and '
                             f'dark_offset non-negative')
        covered = self.pixels * self.belt_pitch
        if covered < self.tunnel_width * 0.95:
            raise ValueError(f'{where}: the detector covers {covered:.3f} m of the belt, less '
                             f'than the tunnel width {self.tunnel_width} m')
