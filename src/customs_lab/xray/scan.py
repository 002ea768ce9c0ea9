"""A parcel's raw X-ray scan: the unit the driver assembles, exports and hands to processing.

Raw means as the detectors read it: ADU of the low- and high-energy transmission layers and of
the backscatter detector, one row per line (the belt's travel), one column per detector pixel,
plus the dark (X-rays off) and air (X-rays on, belt empty) references that were current when the
parcel passed. `calibrated()` applies them; nothing else is ever done to the raw arrays, so that
the data can be exported, re-imported and processed again bit for bit.
"""

from dataclasses import dataclass, field

import numpy as np

from customs_lab.xray.scanner_model import CHANNELS


@dataclass
class XrayScan:
    """One parcel's raw scan with its references and metadata."""

    device_id: str  # the scanner's device name (site file)
    waybill: str  # as the belt's barcode reader read it ('' if unread)
    first_seq: int  # the device's sequence number of the first line
    start_time: float  # s (ROS time of the first line)
    line_period: float  # s between lines
    belt_speed: float  # m/s
    pixel_pitch: float  # m across the belt, at the belt surface
    low: np.ndarray  # (lines, pixels) uint16 ADU, front (low-energy) layer
    high: np.ndarray  # (lines, pixels) uint16 ADU, rear (high-energy) layer
    back: np.ndarray  # (lines, pixels) uint16 ADU, backscatter
    dark: np.ndarray  # (3, pixels) float ADU: each channel's mean with X-rays off
    air: np.ndarray  # (3, pixels) float ADU: each channel's mean, X-rays on, belt empty
    kvp: float = 0.0
    tube_current_ma: float = 0.0
    model: str = ''
    serial: str = ''
    extra: dict = field(default_factory=dict)  # anything else the device reported

    def __post_init__(self):
        """Check the arrays' shapes and types (ValueError)."""
        shape = np.shape(self.low)
        if len(shape) != 2 or shape[0] < 1 or shape[1] < 1:
            raise ValueError(f'a scan needs (lines, pixels) arrays, got {shape}')
        for name in CHANNELS:
            array = getattr(self, name)
            if np.shape(array) != shape or np.asarray(array).dtype != np.uint16:
                raise ValueError(f'{name}: expected uint16 {shape}, got '
                                 f'{np.asarray(array).dtype} {np.shape(array)}')
        for name in ('dark', 'air'):
            array = np.asarray(getattr(self, name), dtype=float)
            if array.shape != (len(CHANNELS), shape[1]) or not np.all(np.isfinite(array)):
                raise ValueError(f'{name}: expected finite (3, {shape[1]}), got {array.shape}')
            setattr(self, name, array)

    @property
    def lines(self) -> int:
        """Return the number of lines."""
        return int(self.low.shape[0])

    @property
    def pixels(self) -> int:
        """Return the number of detector pixels."""
        return int(self.low.shape[1])

    @property
    def line_pitch(self) -> float:
        """Return the belt's travel per line, m."""
        return self.belt_speed * self.line_period

    def raw(self, channel: str) -> np.ndarray:
        """Return one channel's raw array by name ('low', 'high', 'back')."""
        if channel not in CHANNELS:
            raise ValueError(f'unknown channel {channel!r} (known: {CHANNELS})')
        return getattr(self, channel)

    def calibrated(self) -> dict:
        """Return {'low', 'high': transmission in (0, 1], 'back': dark-subtracted ADU}.

        Transmission is (raw - dark) / (air - dark), floored at 1e-6 (a pixel the beam did not
        get through still has a finite attenuation); the backscatter channel has no air level
        (air scatters almost nothing) and is given dark-subtracted.
        """
        out = {}
        for index, name in enumerate(CHANNELS):
            signal = self.raw(name).astype(float) - self.dark[index]
            if name == 'back':
                out[name] = signal
            else:
                span = np.maximum(self.air[index] - self.dark[index], 1.0)
                out[name] = np.clip(signal / span, 1e-6, None)
        return out
