"""Dark / air references of the X-ray scanner's detectors and the monitor of their drift.

A detector pixel reads `dark + gain * signal`: the dark offset (X-rays off) and the gain both
differ from pixel to pixel and drift with temperature and age. Two references correct them
(XrayScan.calibrated): the dark reference, each channel's mean per pixel with X-rays off, and
the air reference, its mean with X-rays on and the belt empty. Both are built robustly here from
lines of the stream (`dark_reference`, `air_reference`: lines with an object or a glitch in them
are rejected, the rest averaged with a trimmed mean), or taken from the scanner's own
CALIBRATION frames (`reference_from_frame`).

`DriftMonitor` compares the air lines the scanner streams before and after every parcel and the
dark lines it streams when idle with the current references, per channel: the relative gain
change (median over pixels of (air - dark) / (air_ref - dark_ref) - 1, dark being the recent
dark lines' mean if there are enough of them, else the dark reference), the dark offset
change (median over pixels, ADU) and the fractions of dead pixels (air response below
`dead_ratio` of the reference) and hot pixels (dark offset more than `hot_offset_adu` from the
reference). It reports OK / WARN / ERROR (or STALE when it has nothing to compare) with a
message and the numbers, and says when a new air or dark calibration is due. It never raises on
bad input: shapes that do not fit, or references that are not finite, become the diagnostic.
"""

from dataclasses import dataclass, field, fields
import math

import numpy as np

from customs_lab.xray.scanner_model import CHANNELS

OK, WARN, ERROR, STALE = 0, 1, 2, 3  # diagnostic_msgs/DiagnosticStatus levels
LEVEL_NAMES = {OK: 'OK', WARN: 'WARN', ERROR: 'ERROR', STALE: 'STALE'}
TRANSMISSION = (0, 1)  # the channels with an air level (low, high); backscatter has almost none


def _lines(lines, what: str) -> np.ndarray:
    """Return lines as a (3, n, pixels) float array; ValueError if they are not."""
    array = np.asarray(lines)
    if array.ndim != 3 or array.shape[0] != len(CHANNELS) or array.shape[2] < 1:
        raise ValueError(f'{what}: expected (3, lines, pixels), got {array.shape}')
    if array.dtype.kind not in 'uif':
        raise ValueError(f'{what}: expected numbers, got {array.dtype}')
    return array.astype(float)


def trimmed_mean(values: np.ndarray, fraction: float = 0.1, axis: int = 0) -> np.ndarray:
    """Return the mean along `axis` after dropping `fraction` of the values at each end."""
    values = np.sort(values, axis=axis)
    count = values.shape[axis]
    cut = int(math.floor(fraction * count))
    if count - 2 * cut < 1:
        cut = (count - 1) // 2
    kept = np.take(values, np.arange(cut, count - cut), axis=axis)
    return kept.mean(axis=axis)


@dataclass(frozen=True, eq=False)
class Reference:
    """One reference: each channel's mean per pixel (ADU), how and when it was measured."""

    kind: str  # 'dark' or 'air'
    values: np.ndarray  # (3, pixels) float ADU, CHANNELS order
    time: float = math.nan  # s (device or ROS time) when it was measured; NaN if unknown
    lines: int = 0  # lines averaged
    source: str = 'host'  # 'firmware' (the scanner's CALIBRATION frame) or 'host' (built here)
    rejected_lines: int = 0  # lines left out (objects, glitches)

    def __post_init__(self):
        """Check kind, shape and finiteness (ValueError); store the values as float."""
        if self.kind not in ('dark', 'air'):
            raise ValueError(f'a reference is dark or air, got {self.kind!r}')
        values = np.array(self.values, dtype=float)
        if values.ndim != 2 or values.shape[0] != len(CHANNELS) or values.shape[1] < 1:
            raise ValueError(f'{self.kind} reference: expected (3, pixels), got {values.shape}')
        bad = int(np.count_nonzero(~np.isfinite(values)))
        if bad:
            raise ValueError(f'{self.kind} reference: {bad} values are not finite')
        values.setflags(write=False)
        object.__setattr__(self, 'values', values)

    @property
    def pixels(self) -> int:
        """Return the number of pixels."""
        return int(self.values.shape[1])


@dataclass(frozen=True)
class References:
    """The current dark and air references (either may be missing)."""

    dark: Reference | None = None
    air: Reference | None = None

    @property
    def complete(self) -> bool:
        """Return True when both references exist for the same number of pixels."""
        return (self.dark is not None and self.air is not None
                and self.dark.pixels == self.air.pixels)

    @property
    def pixels(self) -> int:
        """Return the pixel count of the references (0 if there are none)."""
        for reference in (self.dark, self.air):
            if reference is not None:
                return reference.pixels
        return 0

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """Return (dark, air), each (3, pixels) float; ValueError unless complete."""
        if not self.complete:
            raise ValueError('the dark and air references are not both known')
        return self.dark.values, self.air.values

    def replaced(self, reference: Reference) -> 'References':
        """Return these references with one replaced (a reference of another size drops both)."""
        other = self.air if reference.kind == 'dark' else self.dark
        if other is not None and other.pixels != reference.pixels:
            other = None
        if reference.kind == 'dark':
            return References(reference, other)
        return References(other, reference)


def dark_reference(lines, time: float = math.nan, min_lines: int = 8,
                   glitch_adu: float = 50.0, source: str = 'host') -> Reference:
    """Build a dark reference from lines taken with X-rays off, (3, n, pixels).

    A line whose median differs from the median line by more than `glitch_adu` in any channel
    (a stray X-ray flash, a readout glitch) is left out; the rest are averaged per pixel with a
    10 % trimmed mean. ValueError if fewer than `min_lines` lines are left.
    """
    data = _lines(lines, 'dark lines')
    line_medians = np.median(data, axis=2)  # (3, n)
    typical = np.median(line_medians, axis=1, keepdims=True)
    good = np.all(np.abs(line_medians - typical) <= glitch_adu, axis=0)
    kept = int(np.count_nonzero(good))
    if kept < min_lines:
        raise ValueError(f'only {kept} of {data.shape[1]} dark lines are usable, '
                         f'{min_lines} needed')
    values = trimmed_mean(data[:, good, :], axis=1)
    return Reference('dark', values, time, kept, source, data.shape[1] - kept)


def air_reference(lines, dark: Reference | np.ndarray | None = None, time: float = math.nan,
                  min_lines: int = 8, object_threshold: float = 0.05, object_pixels: int = 2,
                  source: str = 'host') -> Reference:
    """Build an air reference from lines taken with X-rays on and the belt empty, (3, n, pixels).

    A line is left out when, in a transmission channel, more than `object_pixels` pixels read
    below (1 - object_threshold) of the pixel's typical air signal above dark (an object, a
    hand, a flicker of the tube): the typical signal is the pixel's 75th percentile over the
    lines, so that objects in up to a quarter of them cannot hide. The rest are averaged per
    pixel with a 10 % trimmed mean. `dark` (a Reference or (3, pixels) array) is the offset the
    threshold is measured from (zero if None). ValueError if fewer than `min_lines` are left.
    """
    data = _lines(lines, 'air lines')
    pixels = data.shape[2]
    if dark is None:
        offset = np.zeros((len(CHANNELS), pixels))
    else:
        offset = np.asarray(dark.values if isinstance(dark, Reference) else dark, dtype=float)
        if offset.shape != (len(CHANNELS), pixels):
            raise ValueError(f'dark reference {offset.shape} does not fit {pixels} pixels')
    typical = np.percentile(data, 75, axis=1) - offset  # (3, pixels)
    good = np.ones(data.shape[1], dtype=bool)
    for channel in TRANSMISSION:
        signal = data[channel] - offset[channel]  # (n, pixels)
        live = typical[channel] > 0
        low = signal[:, live] < (1.0 - object_threshold) * typical[channel][live]
        good &= np.count_nonzero(low, axis=1) <= object_pixels
    kept = int(np.count_nonzero(good))
    if kept < min_lines:
        raise ValueError(f'only {kept} of {data.shape[1]} air lines are free of objects, '
                         f'{min_lines} needed')
    values = trimmed_mean(data[:, good, :], axis=1)
    return Reference('air', values, time, kept, source, data.shape[1] - kept)


def reference_from_frame(frame, time: float = math.nan) -> Reference:
    """Return the Reference of a protocol CalibrationFrame (ValueError if its values are bad)."""
    return Reference(frame.kind, frame.values, time, int(frame.lines_used), 'firmware')


# -- drift -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DriftThresholds:
    """Limits of the drift monitor (relative gains, ADU, pixel fractions)."""

    gain_warn: float = 0.02  # |relative gain change| that asks for a new air calibration
    gain_error: float = 0.10
    offset_warn_adu: float = 10.0  # |dark offset change| that asks for a new dark calibration
    offset_error_adu: float = 50.0
    bad_pixel_warn: float = 0.01  # fraction of dead or hot pixels in a channel
    bad_pixel_error: float = 0.05
    dead_ratio: float = 0.5  # a pixel whose air signal is below this fraction of its reference
    hot_offset_adu: float = 100.0  # a pixel whose dark offset moved more than this
    min_span_adu: float = 100.0  # air - dark below this: the channel has no air level to check
    min_lines: int = 16  # lines needed before a channel is judged
    window_lines: int = 512  # the most recent air (and dark) lines kept for the comparison

    def __post_init__(self):
        """Check the limits (ValueError)."""
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not math.isfinite(value):
                raise ValueError(f'drift threshold {f.name} must be a finite number, '
                                 f'got {value!r}')
        if not 0 < self.gain_warn < self.gain_error:
            raise ValueError('need 0 < gain_warn < gain_error')
        if not 0 < self.offset_warn_adu < self.offset_error_adu:
            raise ValueError('need 0 < offset_warn_adu < offset_error_adu')
        if not 0 < self.bad_pixel_warn < self.bad_pixel_error <= 1:
            raise ValueError('need 0 < bad_pixel_warn < bad_pixel_error <= 1')
        if not 0 < self.dead_ratio < 1:
            raise ValueError('dead_ratio must be in (0, 1)')
        if self.hot_offset_adu <= 0 or self.min_span_adu <= 0:
            raise ValueError('hot_offset_adu and min_span_adu must be > 0')
        if int(self.min_lines) != self.min_lines or self.min_lines < 1:
            raise ValueError('min_lines must be a positive integer')
        if int(self.window_lines) != self.window_lines or self.window_lines < self.min_lines:
            raise ValueError('window_lines must be an integer >= min_lines')


@dataclass(frozen=True)
class ChannelDrift:
    """One channel's drift since its references (NaN: not measured)."""

    channel: str
    gain_change: float = math.nan  # relative: +0.05 = 5 % more signal in air
    offset_change_adu: float = math.nan  # median dark offset minus the reference's
    dead_fraction: float = math.nan  # pixels whose air signal fell below dead_ratio
    hot_fraction: float = math.nan  # pixels whose dark offset moved beyond hot_offset_adu

    @property
    def bad_fraction(self) -> float:
        """Return the larger of the dead and hot fractions (NaN if neither was measured)."""
        known = [v for v in (self.dead_fraction, self.hot_fraction) if not math.isnan(v)]
        return max(known) if known else math.nan


@dataclass(frozen=True)
class DriftReport:
    """The monitor's verdict: a diagnostic level, a message, and the numbers behind it."""

    level: int  # OK, WARN, ERROR or STALE
    message: str
    values: dict = field(default_factory=dict)  # name -> number, for diagnostic key-values
    channels: tuple = ()  # ChannelDrift per channel
    needs_air_calibration: bool = False
    needs_dark_calibration: bool = False

    @property
    def level_name(self) -> str:
        """Return 'OK', 'WARN', 'ERROR' or 'STALE'."""
        return LEVEL_NAMES[self.level]


def _same(one: Reference | None, other: Reference | None) -> bool:
    """Return True for the same reference (a device re-sends its references on reconnection)."""
    if one is None or other is None:
        return one is other
    return one is other or np.array_equal(one.values, other.values)


class DriftMonitor:
    """Compare the stream's air and dark lines with the current references."""

    def __init__(self, thresholds: DriftThresholds | None = None):
        self.thresholds = thresholds or DriftThresholds()
        self.references = References()
        self._air: list[np.ndarray] = []  # (3, n, pixels) blocks, newest last
        self._dark: list[np.ndarray] = []
        self.rejected_inputs = 0
        self._problems = {'air lines': '', 'dark lines': ''}  # why the last input was rejected

    def set_references(self, references: References):
        """Use new references; the lines gathered against a replaced reference are forgotten."""
        old = self.references
        if references is None:
            references = References()
        if not _same(references.dark, old.dark):
            self._air.clear()  # the gain is measured above the dark reference
            self._dark.clear()
        if not _same(references.air, old.air):
            self._air.clear()
        self.references = references

    def _add(self, store: list, lines, what: str):
        try:
            data = np.asarray(lines)
            if data.ndim == 2 and data.shape[0] == len(CHANNELS):
                data = data[:, None, :]
            if data.ndim != 3 or data.shape[0] != len(CHANNELS) or data.dtype.kind not in 'uif':
                raise ValueError(f'expected (3, lines, pixels) numbers, got {data.dtype} '
                                 f'{data.shape}')
            if data.shape[1] == 0:
                return
            if data.dtype.kind == 'f' and not np.all(np.isfinite(data)):
                raise ValueError('values that are not finite')
            pixels = self.references.pixels
            if pixels and data.shape[2] != pixels:
                raise ValueError(f'{data.shape[2]} pixels, the references have {pixels}')
            if store and store[-1].shape[2] != data.shape[2]:
                store.clear()
            store.append(np.array(data, dtype=float))
            total = sum(block.shape[1] for block in store)
            window = int(self.thresholds.window_lines)
            while total - store[0].shape[1] >= window:
                total -= store.pop(0).shape[1]
            self._problems[what] = ''
        except (ValueError, TypeError) as error:
            self.rejected_inputs += 1
            self._problems[what] = f'{what} rejected: {error}'

    def add_air(self, lines):
        """Add air lines (X-rays on, no object), (3, n, pixels) or one line (3, pixels)."""
        self._add(self._air, lines, 'air lines')

    def add_dark(self, lines):
        """Add dark lines (X-rays off), (3, n, pixels) or one line (3, pixels)."""
        self._add(self._dark, lines, 'dark lines')

    @staticmethod
    def _window(store: list, count: int) -> np.ndarray | None:
        if not store:
            return None
        data = np.concatenate(store, axis=1)
        return data[:, -count:, :]

    def report(self) -> DriftReport:
        """Return the current verdict (never raises)."""
        try:
            with np.errstate(all='ignore'):
                return self._report()
        except Exception as error:  # noqa: BLE001 - a diagnostic must not take the driver down
            return DriftReport(ERROR, f'drift check failed: {type(error).__name__}: {error}')

    def _report(self) -> DriftReport:
        limits = self.thresholds
        refs = self.references
        air = self._window(self._air, limits.window_lines)
        dark = self._window(self._dark, limits.window_lines)
        values = {
            'air_lines': 0 if air is None else int(air.shape[1]),
            'dark_lines': 0 if dark is None else int(dark.shape[1]),
            'rejected_inputs': self.rejected_inputs,
        }
        problems = [(WARN, text) for text in self._problems.values() if text]  # (level, text)
        if refs.dark is None or refs.air is None:
            missing = [k for k in ('dark', 'air') if getattr(refs, k) is None]
            problems.append((WARN, f'no {" or ".join(missing)} reference yet'))
            return self._verdict(problems, values, (), refs.air is None, refs.dark is None)
        dark_ref, air_ref = refs.dark.values, refs.air.values
        span = air_ref - dark_ref
        if air is not None and air.shape[2] != refs.pixels:
            air = None  # gathered before references of another size arrived
        if dark is not None and dark.shape[2] != refs.pixels:
            dark = None
        enough_air = air is not None and air.shape[1] >= limits.min_lines
        enough_dark = dark is not None and dark.shape[1] >= limits.min_lines
        channels, needs_air, needs_dark = [], False, False
        # the gain is the signal above the offset now: the measured dark if there is enough
        dark_now = dark.mean(axis=1) if enough_dark else dark_ref
        for index, name in enumerate(CHANNELS):
            gain = offset = dead = hot = math.nan
            checked = np.median(span[index]) >= limits.min_span_adu
            if enough_air and checked:
                measured = air[index].mean(axis=0)
                ratio = (measured - dark_now[index]) / np.where(span[index] > 0, span[index],
                                                               np.nan)
                dead_pixels = ~(ratio >= limits.dead_ratio)  # NaN (no span) counts as dead
                dead = float(np.mean(dead_pixels))
                alive = ratio[~dead_pixels]
                gain = float(np.median(alive) - 1.0) if alive.size else -1.0
            if enough_dark:
                shift = dark[index].mean(axis=0) - dark_ref[index]
                offset = float(np.median(shift))
                hot = float(np.mean(np.abs(shift - offset) > limits.hot_offset_adu))
            drift = ChannelDrift(name, gain, offset, dead, hot)
            channels.append(drift)
            values[f'{name}_gain_change'] = gain
            values[f'{name}_offset_change_adu'] = offset
            values[f'{name}_dead_fraction'] = dead
            values[f'{name}_hot_fraction'] = hot
            if not math.isnan(gain) and abs(gain) > limits.gain_warn:
                level = ERROR if abs(gain) > limits.gain_error else WARN
                problems.append((level, f'{name}: gain {gain * 100:+.1f} % since the air '
                                        f'calibration (limit {limits.gain_warn * 100:g} %)'))
                needs_air = True
            if not math.isnan(offset) and abs(offset) > limits.offset_warn_adu:
                level = ERROR if abs(offset) > limits.offset_error_adu else WARN
                problems.append((level, f'{name}: dark offset {offset:+.1f} ADU since the dark '
                                        f'calibration (limit {limits.offset_warn_adu:g} ADU)'))
                needs_dark = True
            bad = drift.bad_fraction
            if not math.isnan(bad) and bad > limits.bad_pixel_warn:
                level = ERROR if bad > limits.bad_pixel_error else WARN
                problems.append((level, f'{name}: {bad * 100:.1f} % dead or hot pixels '
                                        f'(limit {limits.bad_pixel_warn * 100:g} %)'))
        if not enough_air and not enough_dark and not problems:
            return DriftReport(STALE, f'fewer than {limits.min_lines} air and dark lines since '
                                      f'the calibration: nothing to compare yet', values,
                               tuple(channels))
        return self._verdict(problems, values, tuple(channels), needs_air, needs_dark)

    @staticmethod
    def _verdict(problems, values, channels, needs_air, needs_dark) -> DriftReport:
        if not problems:
            return DriftReport(OK, 'detector drift within limits', values, channels)
        level = max(level for level, _ in problems)
        message = '; '.join(text for _, text in sorted(problems, key=lambda p: -p[0]))
        return DriftReport(level, message, values, channels, needs_air, needs_dark)
