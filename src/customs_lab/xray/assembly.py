"""Assemble the scanner's line stream into one XrayScan per parcel, keyed by waybill.

Feed `ScanAssembler.feed` the decoded frames of one scanner in order; it returns the scans they
complete. It keeps the last STATUS and the current references, and a history of recent lines;
a parcel's scan is the lines from its PARCEL_BEGIN to its PARCEL_END with `margin_lines` of the
lines either side (air, normally: the image shows the belt around the parcel, and the drift
monitor compares them with the air reference). Line numbers, not frame order, place every line,
so a PARCEL_BEGIN may come before or after the lines it names.

Nothing is lost silently and nothing raises; every case is counted in `stats` and noted in the
scan's `extra`:

* lines missing from the stream (a dropped LINES frame, a host that was disconnected) are
  filled with FILL_VALUE (0: no data; a real line never reads 0, the dark offset is above it)
  and counted (`extra['missing_lines']`);
* a PARCEL_BEGIN while a parcel is open (its PARCEL_END was lost): the open parcel ends at its
  last line the light curtain flagged occupied (or just before the new parcel) and is emitted
  with `extra['end_lost']` and `extra['truncated'] = 'next_parcel_began'`;
* a PARCEL_END without a PARCEL_BEGIN (lost): the parcel is rebuilt back from its end over the
  lines flagged occupied (or back to the previous parcel, at most `max_lines`), waybill '',
  `extra['begin_lost']`;
* a parcel longer than `max_lines` is emitted in parts of `max_lines` (`extra['truncated'] =
  'max_lines'`, `extra['part']` 1, 2, ...), all with its waybill;
* the pixel count changing, or the line numbers starting again (a restarted device), close
  the open parcels at once (`truncated` 'pixels_changed' / 'line_reset');
* an unread waybill ('') is emitted like any other (the inspection decides what to do);
* no STATUS or no dark and air references yet: scans are held, in order, and emitted as soon as
  both are known; when more than `max_pending` wait (or on `flush`), the oldest is emitted with
  references estimated from the stream (`extra['references'] = 'estimated'`: air from the
  scan's own margin lines, dark from the last dark lines, else 0) and the model's nominal
  geometry (`extra['status'] = 'nominal'`).

The driver calls `flush` at shutdown (and may after a long silence): a parcel whose trailing
margin never comes (the scanner stopped) otherwise waits; a STATUS saying the scanner stopped
acquiring sends ended parcels out at once.

References: the scanner's CALIBRATION frames (its own per-pixel means after a CALIBRATE_DARK or
CALIBRATE_AIR run). If a run's lines arrive but its CALIBRATION frame does not (it follows the
run's last line directly, before any later LINES frame), the reference is built here from the
run's lines (calibration.dark_reference / air_reference). An air reference less than
`min_span_adu` above the dark one in a transmission channel (X-rays were off) is refused.
"""

from collections import deque
from dataclasses import dataclass, field
import math

import numpy as np

from customs_lab.xray import protocol
from customs_lab.xray.calibration import (
    TRANSMISSION,
    DriftMonitor,
    Reference,
    References,
    air_reference,
    dark_reference,
    reference_from_frame,
)
from customs_lab.xray.scan import XrayScan
from customs_lab.xray.scanner_model import CHANNELS, ScannerModel

FILL_VALUE = 0  # ADU written into lines that never arrived
MAX_CALIBRATION_LINES = 4096  # lines of one calibration run kept for a host-built reference
RECENT_DARK_LINES = 256  # dark lines kept for estimated references


def _signed(delta: int) -> int:
    """Return a mod-2**32 difference as a signed number in [-2**31, 2**31)."""
    return ((delta + 2**31) % 2**32) - 2**31


@dataclass
class _Block:
    first: int  # absolute (unwrapped) line number
    data: np.ndarray  # (3, lines, pixels) uint16
    flags: np.ndarray  # (lines,) uint8
    time: float  # device s of the first line (unwrapped)

    @property
    def last(self) -> int:
        return self.first + self.data.shape[1] - 1


@dataclass
class _Parcel:
    number: int | None  # the device's parcel number
    waybill: str
    begin: int  # absolute line numbers
    end: int | None = None
    lead: int = 0  # margin lines before begin and after end
    trail: int = 0
    part: int = 1
    truncated: str = ''
    notes: dict = field(default_factory=dict)
    final_end: int | None = None  # the END's line of a parcel still to be cut into parts


@dataclass
class _Held:
    """A scan's lines, waiting for the STATUS and references that make it an XrayScan."""

    waybill: str
    first_line: int  # wire line number of row 0
    start: float  # device s of row 0
    data: np.ndarray  # (3, lines, pixels) uint16
    air_rows: np.ndarray  # indices of margin rows that are air (for estimated references)
    extra: dict


class ScanAssembler:
    """Turn one scanner's frames into XrayScans, one per parcel."""

    def __init__(self, device_id: str, margin_lines: int = 25, max_lines: int = 2500,
                 max_pending: int = 8, model: ScannerModel | None = None,
                 drift: DriftMonitor | None = None, clock=None, min_span_adu: float = 100.0):
        """Create an assembler.

        margin_lines: lines kept either side of a parcel; max_lines: longest parcel (lines)
        before it is cut into parts; max_pending: scans held for references before the oldest
        goes out with estimated ones; model: nominal geometry until a STATUS arrives; drift:
        a DriftMonitor fed with the margins' air lines, the dark lines and the references;
        clock: maps device time (s, unwrapped ticks) to the scans' start_time (default: as is).
        """
        if int(margin_lines) != margin_lines or not 0 <= margin_lines <= 10000:
            raise ValueError(f'margin_lines must be an integer in [0, 10000], got {margin_lines}')
        if int(max_lines) != max_lines or not 1 <= max_lines <= 10**6:
            raise ValueError(f'max_lines must be an integer in [1, 10**6], got {max_lines}')
        if int(max_pending) != max_pending or max_pending < 0:
            raise ValueError(f'max_pending must be a non-negative integer, got {max_pending}')
        if not min_span_adu > 0:
            raise ValueError(f'min_span_adu must be > 0, got {min_span_adu}')
        self.device_id = device_id
        self.margin_lines = int(margin_lines)
        self.max_lines = int(max_lines)
        self.max_pending = int(max_pending)
        self.model = model or ScannerModel()
        self.drift = drift
        self.clock = clock or (lambda t: t)
        self.min_span_adu = float(min_span_adu)
        self.status: protocol.StatusFrame | None = None
        self.references = References()
        self.last_fault: protocol.FaultFrame | None = None
        self.last_problem = ''
        self.stats = dict.fromkeys((
            'frames', 'lines', 'scans', 'parcels', 'frames_lost', 'missing_lines',
            'duplicate_lines', 'line_resets', 'pixel_changes', 'end_without_begin',
            'begin_while_open', 'late_ends', 'truncated_max_lines', 'unread_waybills',
            'scans_with_missing_lines', 'held_scans', 'estimated_references', 'calibrations',
            'host_calibrations', 'bad_calibrations', 'faults', 'ignored_frames'), 0)
        self._last_seq = None
        self._ticks_anchor = None  # (wire ticks, unwrapped ms)
        self._pending: deque[_Held] = deque()
        self._calibration_lines = {'dark': [], 'air': []}
        self._recent_dark: deque[np.ndarray] = deque()
        self._reset_lines()

    def _reset_lines(self):
        self._blocks: deque[_Block] = deque()
        self._pixels = None
        self._next = None  # absolute number of the next line expected
        self._first = None  # the first line received since the last reset
        self._anchor = None  # (wire line, absolute line) of the last line received
        self._open: _Parcel | None = None
        self._closing: list[_Parcel] = []
        self._previous_end = None
        self._finished_numbers: deque = deque(maxlen=16)
        for lines in self._calibration_lines.values():
            lines.clear()

    # -- public --------------------------------------------------------------------------------

    def feed(self, frame) -> list[XrayScan]:
        """Take one decoded frame; return the scans it completed (usually none)."""
        self.stats['frames'] += 1
        if not isinstance(frame, protocol.Command):
            self._track_seq(frame.seq)
        out = []
        if isinstance(frame, protocol.LinesFrame):
            out += self._on_lines(frame)
        elif isinstance(frame, protocol.ParcelBegin):
            out += self._on_begin(frame)
        elif isinstance(frame, protocol.ParcelEnd):
            out += self._on_end(frame)
        elif isinstance(frame, protocol.StatusFrame):
            self.status = frame
            if not frame.acquiring:  # no more lines will come: ended parcels go out as they are
                out += self._complete_closing()
        elif isinstance(frame, protocol.CalibrationFrame):
            self._on_calibration(frame)
        elif isinstance(frame, protocol.FaultFrame):
            self.stats['faults'] += 1
            self.last_fault = frame
        else:
            self.stats['ignored_frames'] += 1
        return out + self._release()

    def flush(self) -> list[XrayScan]:
        """Emit everything now: open parcels (truncated, 'flush') and held scans (shutdown)."""
        return self._close_all('flush') + self._release(force=True)

    @property
    def open_parcel(self) -> str | None:
        """Return the waybill of the parcel being scanned, None if there is none."""
        return None if self._open is None else self._open.waybill

    @property
    def pending(self) -> int:
        """Return the number of scans held for references."""
        return len(self._pending)

    # -- bookkeeping ---------------------------------------------------------------------------

    def _track_seq(self, seq: int):
        if self._last_seq is not None:
            gap = (seq - self._last_seq - 1) % 2**32
            if 0 < gap < 2**31:
                self.stats['frames_lost'] += gap
        self._last_seq = seq

    def _abs_line(self, wire: int) -> int:
        if self._anchor is None:
            self._anchor = (wire, wire)
            return wire
        anchor_wire, anchor_abs = self._anchor
        return anchor_abs + _signed(wire - anchor_wire)

    def _device_time(self, ticks: int) -> float:
        if self._ticks_anchor is None:
            self._ticks_anchor = (ticks, ticks)
        wire, absolute = self._ticks_anchor
        absolute += _signed(ticks - wire)
        self._ticks_anchor = (ticks, absolute)
        return absolute / 1000.0

    def _line_period(self) -> float:
        if self.status is not None:
            return 1.0 / self.status.line_rate
        return self.model.line_period

    # -- lines ---------------------------------------------------------------------------------

    def _on_lines(self, frame: protocol.LinesFrame) -> list[XrayScan]:
        out = []
        self.stats['lines'] += frame.lines
        if self._pixels is not None and frame.pixels != self._pixels:
            self.stats['pixel_changes'] += 1
            self.last_problem = f'pixel count changed from {self._pixels} to {frame.pixels}'
            out += self._close_all('pixels_changed')
            self._reset_lines()
        first = self._abs_line(frame.first_line)
        data, flags = frame.data, frame.line_flags
        if self._next is not None and first < self._next:
            repeated = self._repeated_rows(first, data)
            if repeated is None:  # the line numbers started again: a restarted device
                self.stats['line_resets'] += 1
                self.last_problem = (f'line numbers went back from {self._next} to {first}: '
                                     f'device restarted?')
                out += self._close_all('line_reset')
                self._reset_lines()
                first = self._abs_line(frame.first_line)
            else:
                self.stats['duplicate_lines'] += repeated
                if repeated >= data.shape[1]:
                    return out
                first, data, flags = first + repeated, data[:, repeated:], flags[repeated:]
        if self._next is not None and first > self._next:
            self.stats['missing_lines'] += first - self._next
        self._check_calibration_run(flags)
        block = _Block(first, data, flags, self._device_time(frame.ticks_ms)
                       + (first - self._abs_line(frame.first_line)) * self._line_period())
        self._blocks.append(block)
        self._pixels = frame.pixels
        self._next = block.last + 1
        if self._first is None:
            self._first = first
        self._anchor = ((frame.first_line + frame.lines - 1) % 2**32, block.last)
        self._sort_lines(block)
        out += self._check_parcels()
        self._trim()
        return out

    def _repeated_rows(self, first: int, data: np.ndarray) -> int | None:
        """Return how many leading rows repeat lines already held, None if they differ."""
        count = min(self._next - first, data.shape[1])
        held, got = self._rows(first, first + count - 1)
        if not got.all() or not np.array_equal(held, data[:, :count]):
            return None
        return count

    def _sort_lines(self, block: _Block):
        """Send dark lines to the drift monitor, keep calibration-run lines."""
        flags = block.flags
        calibration = (flags & protocol.LINE_CALIBRATION) != 0
        xray_on = (flags & protocol.LINE_XRAY_ON) != 0
        for kind, rows in (('dark', calibration & ~xray_on), ('air', calibration & xray_on)):
            if rows.any():
                kept = self._calibration_lines[kind]
                kept.append(block.data[:, rows])
                while sum(part.shape[1] for part in kept) > MAX_CALIBRATION_LINES:
                    kept.pop(0)
        dark = ~calibration & ~xray_on
        if dark.any():
            lines = block.data[:, dark]
            self._recent_dark.append(lines)
            while sum(part.shape[1] for part in self._recent_dark) > RECENT_DARK_LINES:
                self._recent_dark.popleft()
            if self.drift is not None:
                self.drift.add_dark(lines)

    def _check_calibration_run(self, flags: np.ndarray):
        """Build a reference from a finished run whose CALIBRATION frame did not come."""
        first = int(flags[0])
        for kind, lines in self._calibration_lines.items():
            if not lines:
                continue
            still = bool(first & protocol.LINE_CALIBRATION) and (
                bool(first & protocol.LINE_XRAY_ON) == (kind == 'air'))
            if still:
                continue
            data = np.concatenate(lines, axis=1)
            lines.clear()
            try:
                if kind == 'dark':
                    reference = dark_reference(data, time=math.nan)
                else:
                    reference = air_reference(data, self.references.dark, time=math.nan)
            except ValueError as error:
                self.stats['bad_calibrations'] += 1
                self.last_problem = f'{kind} calibration lines unusable: {error}'
                continue
            if self._apply_reference(reference):
                self.stats['host_calibrations'] += 1

    def _rows(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        """Return (data (3, n, pixels) filled with FILL_VALUE, received (n,)) for [start, stop]."""
        count = stop - start + 1
        pixels = self._pixels or (self.status.pixels if self.status else self.model.pixels)
        data = np.full((len(CHANNELS), count, pixels), FILL_VALUE, dtype=np.uint16)
        got = np.zeros(count, dtype=bool)
        for block in self._blocks:
            low, high = max(block.first, start), min(block.last, stop)
            if low > high:
                continue
            data[:, low - start: high - start + 1] = block.data[:, low - block.first:
                                                               high - block.first + 1]
            got[low - start: high - start + 1] = True
        return data, got

    def _flags(self, start: int, stop: int) -> np.ndarray:
        """Return the line flags of [start, stop], -1 where a line is missing."""
        flags = np.full(stop - start + 1, -1, dtype=np.int16)
        for block in self._blocks:
            low, high = max(block.first, start), min(block.last, stop)
            if low <= high:
                flags[low - start: high - start + 1] = block.flags[low - block.first:
                                                                   high - block.first + 1]
        return flags

    def _trim(self):
        keep = self._next - (self.max_lines + 2 * self.margin_lines)
        for parcel in [self._open, *self._closing]:
            if parcel is not None:
                keep = min(keep, parcel.begin - parcel.lead)
        while self._blocks and self._blocks[0].last < keep:
            self._blocks.popleft()

    # -- parcels -------------------------------------------------------------------------------

    def _new_parcel(self, number, waybill, begin, **kwargs) -> _Parcel:
        return _Parcel(number, waybill, begin, lead=self.margin_lines, trail=self.margin_lines,
                       **kwargs)

    def _on_begin(self, frame: protocol.ParcelBegin) -> list[XrayScan]:
        line = self._abs_line(frame.line)
        self.stats['parcels'] += 1
        if not frame.waybill:
            self.stats['unread_waybills'] += 1
        late = line
        if self._next is not None and line < self._next - self.max_lines:
            line = self._next_received(self._next - self.max_lines)  # begun before all we hold
        if self._open is not None:
            self.stats['begin_while_open'] += 1
            parcel = self._open
            self.last_problem = (f'parcel {parcel.number} ({parcel.waybill!r}) had no end '
                                 f'before parcel {frame.parcel} began')
            self._set_end(parcel, self._last_occupied(parcel.begin, line - 1))
            parcel.truncated = parcel.truncated or 'next_parcel_began'
            parcel.notes['end_lost'] = True
            self._closing.append(parcel)
        self._open = self._new_parcel(frame.parcel, frame.waybill, line)
        if late != line:
            self._open.notes['begin_clamped'] = True
            self.last_problem = f'parcel {frame.parcel} began {self._next - late} lines ago'
        return self._check_parcels()

    def _on_end(self, frame: protocol.ParcelEnd) -> list[XrayScan]:
        line = self._abs_line(frame.line)
        parcel = self._open
        if parcel is not None and parcel.number == frame.parcel:
            if line - parcel.begin + 1 > self.max_lines:
                parcel.final_end = line  # stays open: cut into parts as its lines arrive
            else:
                parcel.end = max(line, parcel.begin)
                self._open = None
                self._closing.append(parcel)
        elif frame.parcel in self._finished_numbers:
            self.stats['late_ends'] += 1  # its parcel was closed already (next one began)
        else:
            self.stats['end_without_begin'] += 1
            self.last_problem = f'parcel {frame.parcel} ended without a beginning'
            begin = self._reconstruct_begin(line)
            self._closing.append(self._new_parcel(frame.parcel, '', begin, end=line,
                                                  notes={'begin_lost': True}))
            self._closing.sort(key=lambda p: p.begin)
        return self._check_parcels()

    def _set_end(self, parcel: _Parcel, end: int):
        """Set a parcel's last line, at most max_lines after its first (a safeguard)."""
        parcel.end = min(max(end, parcel.begin), parcel.begin + self.max_lines - 1)
        if parcel.end < end:
            self.stats['truncated_max_lines'] += 1
            parcel.truncated = 'max_lines'
            self.last_problem = f'parcel {parcel.number} longer than {self.max_lines} lines'

    def _last_occupied(self, begin: int, stop: int) -> int:
        """Return the last line in [begin, stop] flagged occupied, else stop (or begin)."""
        stop = min(stop, begin + self.max_lines - 1)
        if stop < begin:
            return begin
        flags = self._flags(begin, stop)
        occupied = np.flatnonzero((flags >= 0) & ((flags & protocol.LINE_OCCUPIED) != 0))
        return begin + int(occupied[-1]) if occupied.size else stop

    def _reconstruct_begin(self, end: int) -> int:
        """Return where a parcel that ends at `end` began, from the occupied flags."""
        low = end - self.max_lines + 1
        if self._previous_end is not None:
            low = max(low, self._previous_end + 1)
        if self._first is not None:
            low = max(low, min(self._first, end))
        if low > end:
            return end
        flags = self._flags(low, end)
        received = flags >= 0
        occupied = received & ((flags & protocol.LINE_OCCUPIED) != 0)
        if not occupied[-1] and received[-1]:
            return low  # the device does not flag occupancy: everything since the last parcel
        clear = np.flatnonzero(received & ~occupied)
        return low + int(clear[-1]) + 1 if clear.size else low

    def _check_parcels(self) -> list[XrayScan]:
        if self._next is None:
            return []
        last = self._next - 1
        parcel = self._open
        while parcel is not None and last - parcel.begin + 1 >= self.max_lines and (
                parcel.final_end is None or parcel.final_end - parcel.begin >= self.max_lines):
            self.stats['truncated_max_lines'] += 1
            parcel.end = parcel.begin + self.max_lines - 1
            parcel.truncated = 'max_lines'
            parcel.trail = 0
            self._closing.append(parcel)
            # the next part starts with the next line that arrived (no parts of a long gap)
            parcel = _Parcel(parcel.number, parcel.waybill, self._next_received(parcel.end + 1),
                             trail=self.margin_lines, part=parcel.part + 1,
                             final_end=parcel.final_end)
            if parcel.final_end is not None and parcel.begin > parcel.final_end:
                parcel = None  # its last lines never arrived
            self._open = parcel
        if parcel is not None and parcel.final_end is not None and (
                parcel.final_end - parcel.begin < self.max_lines):
            parcel.end = parcel.final_end  # the last part: it ends where the END said
            self._open = None
            self._closing.append(parcel)
        out = []
        for parcel in sorted(self._closing, key=lambda p: p.begin):
            if last >= parcel.end + parcel.trail:
                self._closing.remove(parcel)
                out += self._emit(parcel, last)
        return out

    def _next_received(self, line: int) -> int:
        """Return the first line at or after `line` that arrived (`line` if none did yet)."""
        for block in self._blocks:
            if block.last >= line:
                return max(line, block.first)
        return line

    def _complete_closing(self) -> list[XrayScan]:
        """Emit the ended parcels with the trailing lines that arrived (acquisition stopped)."""
        if self._next is None:
            return []
        out = []
        for parcel in sorted(self._closing, key=lambda p: p.begin):
            out += self._emit(parcel, self._next - 1)
        self._closing.clear()
        return out

    def _close_all(self, reason: str) -> list[XrayScan]:
        """Close the open parcel (truncated) and emit every closing one with what arrived."""
        last = self._next - 1 if self._next is not None else None
        if self._open is not None:
            parcel = self._open
            self._open = None
            self._set_end(parcel, parcel.begin if last is None else last)
            parcel.truncated = reason
            parcel.trail = 0
            self._closing.append(parcel)
        out = []
        for parcel in sorted(self._closing, key=lambda p: p.begin):
            out += self._emit(parcel, parcel.end if last is None else last)
        self._closing.clear()
        return out

    def _emit(self, parcel: _Parcel, last: int) -> list[XrayScan]:
        """Build a parcel's lines (up to line `last`) and queue them as a scan."""
        start = parcel.begin - parcel.lead
        if self._first is not None:
            start = max(start, min(self._first, parcel.begin))  # no margin before the stream
        stop = max(parcel.end, min(parcel.end + parcel.trail, last))
        start, stop = self._belt_margins(start, stop, parcel)
        data, got = self._rows(start, stop)
        flags = self._flags(start, stop)
        self._previous_end = parcel.end
        if parcel.number is not None:
            self._finished_numbers.append(parcel.number)
        rows = np.arange(stop - start + 1)
        inside = (rows >= parcel.begin - start) & (rows <= parcel.end - start)
        flags = np.where(got, flags, 0)
        xray_on = (flags & protocol.LINE_XRAY_ON) != 0
        air = got & xray_on & ((flags & (protocol.LINE_OCCUPIED | protocol.LINE_CALIBRATION))
                               == 0) & ~inside
        air_rows = np.flatnonzero(air)
        if self.drift is not None and air_rows.size:
            self.drift.add_air(data[:, air_rows])
        missing = int(np.count_nonzero(~got))
        self.stats['scans'] += 1
        if missing:
            self.stats['scans_with_missing_lines'] += 1
        extra = {
            'parcel': parcel.number,
            'part': parcel.part,
            'parcel_lines': [int(parcel.begin - start), int(parcel.end - start)],
            'missing_lines': missing,
            'missing_parcel_lines': int(np.count_nonzero(~got & inside)),
            'missing_fill': FILL_VALUE,
            'xray_off_lines': int(np.count_nonzero(got & inside & ~xray_on)),
            'truncated': parcel.truncated,
            'begin_lost': bool(parcel.notes.get('begin_lost', False)),
            'end_lost': bool(parcel.notes.get('end_lost', False)),
            'begin_clamped': bool(parcel.notes.get('begin_clamped', False)),
        }
        held = _Held(parcel.waybill, start % 2**32, self._start_time(start), data, air_rows,
                     extra)
        if not self._ready(data.shape[2]):
            self.stats['held_scans'] += 1
        self._pending.append(held)
        return []

    def _belt_margins(self, start: int, stop: int, parcel: _Parcel) -> tuple[int, int]:
        """Return [start, stop] with the margins cut at lines that are not empty belt.

        A margin is empty belt in the beam; a dark check or a calibration run next to a parcel
        (X-rays off, or calibration lines) is not, and would read as opaque matter in the scan.
        Missing lines stay (filled and counted).
        """
        flags = self._flags(start, stop).astype(np.int32)
        received = flags >= 0
        not_belt = received & (((flags & protocol.LINE_XRAY_ON) == 0)
                               | ((flags & protocol.LINE_CALIBRATION) != 0))
        lines = np.arange(start, stop + 1)
        before = lines[not_belt & (lines < parcel.begin)]
        after = lines[not_belt & (lines > parcel.end)]
        if before.size:
            start = int(before.max()) + 1
        if after.size:
            stop = int(after.min()) - 1
        return start, stop

    def _start_time(self, line: int) -> float:
        """Return the device time (s) of an absolute line from the nearest block."""
        if not self._blocks:
            return math.nan
        block = min(self._blocks, key=lambda b: abs(b.first - line))
        return block.time + (line - block.first) * self._line_period()

    # -- references and release ----------------------------------------------------------------

    def _on_calibration(self, frame: protocol.CalibrationFrame):
        try:
            reference = reference_from_frame(frame, self.clock(self._device_time(frame.ticks_ms)))
        except ValueError as error:
            self.stats['bad_calibrations'] += 1
            self.last_problem = f'{frame.kind} calibration refused: {error}'
            return
        self._calibration_lines[frame.kind].clear()
        self._apply_reference(reference)

    def _apply_reference(self, reference: Reference) -> bool:
        dark = reference if reference.kind == 'dark' else self.references.dark
        air = reference if reference.kind == 'air' else self.references.air
        if reference.kind == 'air' and dark is not None and dark.pixels == air.pixels:
            span = np.median(air.values[list(TRANSMISSION)] - dark.values[list(TRANSMISSION)],
                             axis=1)
            if np.any(span < self.min_span_adu):
                self.stats['bad_calibrations'] += 1
                self.last_problem = (f'air reference refused: only {span.min():.0f} ADU above '
                                     f'dark (X-rays off?)')
                return False
        self.references = self.references.replaced(reference)
        self.stats['calibrations'] += 1
        if self.drift is not None:
            self.drift.set_references(self.references)
        return True

    def _ready(self, pixels: int) -> bool:
        return (self.status is not None and self.status.pixels == pixels
                and self.references.complete and self.references.pixels == pixels)

    def _release(self, force: bool = False) -> list[XrayScan]:
        out = []
        while self._pending:
            held = self._pending[0]
            if not (force or self._ready(held.data.shape[2])
                    or len(self._pending) > self.max_pending):
                break
            self._pending.popleft()
            out.append(self._finish(held))
        return out

    def _finish(self, held: _Held) -> XrayScan:
        pixels = held.data.shape[2]
        extra = dict(held.extra)
        refs = self.references
        if refs.complete and refs.pixels == pixels:
            dark, air = refs.arrays()
            extra['references'] = 'calibration'
            extra['reference_sources'] = [refs.dark.source, refs.air.source]
        else:
            dark, air = self._estimated_references(held)
            extra['references'] = 'estimated'
            self.stats['estimated_references'] += 1
        status = self.status
        if status is not None and status.pixels == pixels:
            line_period, belt_speed = 1.0 / status.line_rate, status.belt_speed
            pitch, kvp, current = status.pixel_pitch, status.kvp, status.tube_current_ma
            model, serial = status.model, status.serial
            extra['firmware'] = status.firmware
            if status.temperature is not None:
                extra['temperature'] = status.temperature
        else:
            nominal = self.model
            line_period, belt_speed = nominal.line_period, nominal.belt_speed
            pitch, kvp, current = nominal.belt_pitch, nominal.kvp, nominal.tube_current_ma
            model, serial = nominal.model, ''
            extra['status'] = 'nominal'
        start = held.start if math.isfinite(held.start) else 0.0
        return XrayScan(self.device_id, held.waybill, held.first_line, float(self.clock(start)),
                        line_period, belt_speed, pitch, held.data[0], held.data[1],
                        held.data[2], dark, air, kvp, current, model, serial, extra)

    def _estimated_references(self, held: _Held) -> tuple[np.ndarray, np.ndarray]:
        pixels = held.data.shape[2]
        refs = self.references
        if refs.dark is not None and refs.dark.pixels == pixels:
            dark = refs.dark.values
        else:
            recent = [d for d in self._recent_dark if d.shape[2] == pixels]
            dark = (np.median(np.concatenate(recent, axis=1), axis=1) if recent
                    else np.zeros((len(CHANNELS), pixels)))
        if refs.air is not None and refs.air.pixels == pixels:
            air = refs.air.values
        elif held.air_rows.size:
            air = np.median(held.data[:, held.air_rows].astype(float), axis=1)
        else:
            air = held.data.max(axis=1).astype(float)
        return dark, np.maximum(air, dark + 1.0)
