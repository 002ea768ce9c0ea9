"""The firmware of a simulated X-ray parcel scanner, streaming its lines over a socket.

It speaks the scanner's stream protocol (customs_lab.xray.protocol, docs/protocols/
xray_stream.md) on a listening socket: a Unix-domain socket path (the simulator puts it in the
data directory, e.g. <data_dir>/dev/xray_1.sock) or 'host:port' for TCP. The driver connects to
it exactly as to a real scanner; it cannot tell the device is simulated.

The simulator feeds it: `queue_parcel` puts a parcel's pre-rendered raw lines (low, high, back:
uint16 (lines, pixels), as the physics module renders them) on the belt with the waybill the
barcode reader read ('' for a misread); the `air_lines` / `dark_lines` callables render empty
belt and X-rays-off lines (n -> (3, n, pixels) uint16, or a (low, high, back) tuple; by default a
`SyntheticDetector`). The simulator drives its clock: `advance(sim_time)` answers the host's
commands and produces the lines due by then (line_rate per second of sim time, however fast
the simulation runs), in LINES frames of `block_lines` lines, with a PARCEL_BEGIN / PARCEL_END
before the block that holds its line, and a STATUS every `status_period` s.

Gated (`gated=True`, as belt scanners run): lines are read only around parcels, `gap_lines`
of empty belt before and after each, and in calibration runs and dark checks; while the belt is
empty the line counter stands still (line numbers stay consecutive, ticks say the time).
Otherwise the empty belt is read continuously.

Like a real device it streams whether or not anyone listens: lines produced while no host is
connected (or while the host does not read and the send queue is full) are dropped and counted
(`dropped_lines`); a host that connects gets a STATUS, the current dark and air CALIBRATION
frames and, if lines were lost, a LINES_DROPPED fault. A new connection replaces the old one
(a cable pulled leaves a half-open connection behind; the new one wins). Parcels wait at the
tunnel entrance while the scanner is stopped or calibrating, as a belt the scanner controls does.
"""

from collections import deque
from dataclasses import dataclass
import math
import os
import pathlib
import socket
import stat

import numpy as np

from customs_lab.xray import protocol
from customs_lab.xray.scanner_model import CHANNELS, ScannerModel

MAX_CALIBRATION_LINES = 4096


class SyntheticDetector:
    """A simple stand-in for the physics: per-pixel gains and offsets, Gaussian noise.

    Each pixel reads offset + gain * level (+ noise): `gain_drift` (a factor) and
    `offset_drift` (ADU) make the detectors drift, for tests of the drift monitor.
    """

    def __init__(self, model: ScannerModel | None = None, seed: int = 0,
                 backscatter_air: float = 0.05):
        self.model = model or ScannerModel()
        self.rng = np.random.default_rng(seed)
        shape = (len(CHANNELS), self.model.pixels)
        self.gain = np.clip(1.0 + self.model.gain_spread * self.rng.standard_normal(shape),
                            0.5, 1.5)
        self.offset = self.model.dark_offset * (1.0 + 0.05 * self.rng.standard_normal(shape))
        self.air_level = np.array([self.model.air_level, self.model.air_level,
                                   backscatter_air * self.model.backscatter_level])
        self.gain_drift = 1.0
        self.offset_drift = 0.0

    def render(self, signal: np.ndarray) -> np.ndarray:
        """Return raw uint16 lines for a signal above dark, (3, n, pixels) ADU at gain 1."""
        signal = np.asarray(signal, dtype=float)
        mean = self.offset[:, None, :] + self.offset_drift + (
            self.gain[:, None, :] * self.gain_drift * signal)
        noise = np.sqrt(0.5 * np.maximum(signal, 0.0) + self.model.read_noise ** 2)
        raw = mean + noise * self.rng.standard_normal(mean.shape)
        return np.clip(np.rint(raw), 0, self.model.full_scale).astype(np.uint16)

    def transmission(self, low, high, back=None) -> np.ndarray:
        """Return raw lines for transmissions (n, pixels) in [0, 1] and backscatter (ADU)."""
        low = np.asarray(low, dtype=float)
        back = np.zeros_like(low) if back is None else np.asarray(back, dtype=float)
        signal = np.stack([low * self.air_level[0], np.asarray(high, dtype=float)
                           * self.air_level[1], self.air_level[2] + back])
        return self.render(signal)

    def air(self, count: int) -> np.ndarray:
        """Return `count` lines of the empty belt with X-rays on, (3, count, pixels)."""
        return self.render(np.broadcast_to(self.air_level[:, None, None],
                                           (len(CHANNELS), count, self.model.pixels)))

    def dark(self, count: int) -> np.ndarray:
        """Return `count` lines with X-rays off, (3, count, pixels)."""
        return self.render(np.zeros((len(CHANNELS), count, self.model.pixels)))


@dataclass
class _Parcel:
    number: int
    data: np.ndarray  # (3, lines, pixels) uint16
    waybill: str
    leading: int  # rows [leading, trailing) are where the light curtain sees the parcel
    trailing: int
    gap: int  # air lines before it
    position: int = 0  # rows already through the beam


@dataclass
class _Run:
    kind: str  # 'dark' or 'air'
    remaining: int
    calibration: bool  # a calibration run (CALIBRATION frame at its end) or an idle dark check
    reply: bool  # asked for by the host
    total: int = 0
    sums: np.ndarray | None = None


def listen(address: str) -> tuple[socket.socket, str]:
    """Open a listening stream socket (Unix path or 'host:port'); return it and its address."""
    family, target = protocol.parse_address(address)
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        if family == socket.AF_UNIX:
            path = pathlib.Path(target)
            path.parent.mkdir(parents=True, exist_ok=True)
            if path.exists() and stat.S_ISSOCK(os.stat(path).st_mode):
                path.unlink()  # a stale socket of an earlier run
            sock.bind(str(path))
            bound = str(path)
        else:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(target)
            host, port = sock.getsockname()[:2]
            bound = f'[{host}]:{port}' if family == socket.AF_INET6 else f'{host}:{port}'
        sock.listen(2)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock, bound


class XrayFirmware:
    """Play an X-ray scanner's firmware on a listening socket, clocked by the simulation."""

    def __init__(self, address: str, model: ScannerModel | None = None,
                 serial: str = 'SIM-XRAY', air_lines=None, dark_lines=None,
                 block_lines: int = 25, status_period: float = 1.0,
                 calibration_lines: int = 64, gap_lines: int = 50, dark_interval: float = 60.0,
                 dark_check_lines: int = 16, max_queue_bytes: int = 8 * 2**20,
                 autostart: bool = True, calibrate_on_start: bool = True,
                 firmware: str = 'sim-1.0', seed: int = 0, gated: bool = False):
        self.model = model or ScannerModel()
        if not 1 <= block_lines <= protocol.MAX_LINES_PER_FRAME:
            raise ValueError(f'block_lines must be in [1, {protocol.MAX_LINES_PER_FRAME}]')
        if 6 * self.model.pixels * block_lines + block_lines + 8 > protocol.MAX_PAYLOAD:
            raise ValueError('block_lines x pixels exceeds the protocol maximum payload')
        if not 1 <= calibration_lines <= MAX_CALIBRATION_LINES or gap_lines < 0:
            raise ValueError(f'calibration_lines must be in [1, {MAX_CALIBRATION_LINES}] and '
                             f'gap_lines >= 0')
        if not (status_period > 0 and dark_interval >= 0 and dark_check_lines >= 1
                and max_queue_bytes > 0):
            raise ValueError('status_period and max_queue_bytes must be > 0, dark_interval '
                             '>= 0 (0: no idle dark checks), dark_check_lines >= 1')
        self.serial = serial
        self.firmware = firmware
        detector = None
        if air_lines is None or dark_lines is None:
            detector = SyntheticDetector(self.model, seed)
        self.detector = detector
        self.air_lines = air_lines or detector.air
        self.dark_lines = dark_lines or detector.dark
        self.block_lines = int(block_lines)
        self.status_period = float(status_period)
        self.calibration_lines = int(calibration_lines)
        self.gap_lines = int(gap_lines)
        self.dark_interval = float(dark_interval)
        self.dark_check_lines = int(dark_check_lines)
        self.max_queue_bytes = int(max_queue_bytes)
        self.gated = bool(gated)
        self._idle = False  # gated and the belt empty: no lines read
        self.acquiring = bool(autostart)
        self.interlock_ok = True
        self.temperature = 25.0
        self.references: dict[str, protocol.CalibrationFrame] = {}
        # counters
        self.dropped_lines = 0  # lines produced that never reached a host
        self.dropped_frames = 0
        self.connections = 0
        self.parcels_scanned = 0
        self.commands = 0
        self._listener, self.address = listen(address)
        self._conn: socket.socket | None = None
        self._queue: deque = deque()  # [encoded frame, lines in it]
        self._queued_bytes = 0
        self._sent = 0  # bytes of the first queued frame already sent
        self._decoder = protocol.StreamDecoder(max_payload=4096)
        self._dropped_reported = 0
        self._seq = 0
        self._parcel_number = 0
        self._now = None
        self._line = 0  # the next line's number (absolute; mod 2**32 on the wire)
        self._acq_start = None  # sim time of the current acquisition's line clock
        self._acq_lines = 0
        self._next_status = None
        self._next_dark = None
        self._parcels: deque[_Parcel] = deque()
        self._current: _Parcel | None = None
        self._runs: deque[_Run] = deque()
        self._since_parcel = 0  # air lines since the last parcel left the beam
        self._events: list = []  # (line, frame) to send before the block holding the line
        self._block: list = []  # (data or None, flags) segments of the block being filled
        self._block_first = 0
        self._block_time = 0.0
        self._block_lines = 0
        if calibrate_on_start:
            self._runs.append(_Run('dark', self.calibration_lines, True, False))
            self._runs.append(_Run('air', self.calibration_lines, True, False))

    # -- the simulator's side ------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """Return True while a host is connected."""
        return self._conn is not None

    @property
    def in_beam(self) -> str | None:
        """Return the waybill of the parcel in the beam, None if there is none."""
        return None if self._current is None else self._current.waybill

    @property
    def backlog(self) -> int:
        """Return the bytes queued for the host and not yet sent."""
        return self._queued_bytes - self._sent

    @property
    def line_number(self) -> int:
        """Return the number of the next line the scanner will read (mod 2**32)."""
        return self._line % 2**32

    @property
    def busy(self) -> bool:
        """Return True while parcels are on the belt or in the beam, or runs are queued."""
        return bool(self._parcels or self._current or self._runs)

    def queue_parcel(self, low, high, back, waybill: str, gap_lines: int | None = None,
                     leading: int = 0, trailing: int | None = None) -> int:
        """Put a parcel on the belt; return its device parcel number.

        low, high, back: its raw lines (lines, pixels) uint16; rows [leading, trailing) are
        where the light curtain sees it (default: all). gap_lines: air lines before it (at
        least; default `gap_lines`). waybill: as the barcode reader read it ('' if unread).
        """
        data = np.stack([np.asarray(low), np.asarray(high), np.asarray(back)])
        if data.ndim != 3 or data.shape[2] != self.model.pixels or data.shape[1] < 1:
            raise ValueError(f'a parcel needs (lines, {self.model.pixels}) arrays, got '
                             f'{data.shape[1:]}')
        if data.dtype != np.uint16:
            if data.dtype.kind not in 'iu' or data.min() < 0 or data.max() > 65535:
                raise ValueError(f'parcel lines must be uint16 ADU, got {data.dtype}')
            data = data.astype(np.uint16)
        trailing = data.shape[1] if trailing is None else int(trailing)
        if not 0 <= leading < trailing <= data.shape[1]:
            raise ValueError(f'need 0 <= leading < trailing <= {data.shape[1]}')
        if len(str(waybill).encode('utf-8')) > protocol.MAX_WAYBILL:
            raise ValueError('waybill too long')
        self._parcel_number = (self._parcel_number + 1) % 2**32
        gap = self.gap_lines if gap_lines is None else int(gap_lines)
        self._parcels.append(_Parcel(self._parcel_number, data, str(waybill), int(leading),
                                     trailing, max(gap, 0)))
        return self._parcel_number

    def emit_air(self, lines: int):
        """Make the next parcel wait for `lines` more lines of empty belt (X-rays on).

        The belt is empty whenever no parcel is in the beam: air lines need no queueing; this
        lengthens the gap before the parcels already queued.
        """
        self._since_parcel -= int(lines)

    def emit_dark(self, lines: int):
        """Queue `lines` lines with X-rays off (an idle dark check) before the next parcel."""
        self._runs.append(_Run('dark', int(lines), False, False))

    def calibrate(self, kind: str, lines: int | None = None, reply: bool = False):
        """Queue a calibration run ('dark' or 'air'), as the host's command would."""
        if kind not in ('dark', 'air'):
            raise ValueError(f'calibration kind is dark or air, got {kind!r}')
        count = min(int(lines or self.calibration_lines), MAX_CALIBRATION_LINES)
        self._runs.append(_Run(kind, count, True, reply))

    def set_interlock(self, ok: bool):
        """Open (False) or close (True) the interlock chain: X-rays off while it is open."""
        if bool(ok) == self.interlock_ok:
            return
        self.interlock_ok = bool(ok)
        self._send_block()
        if ok:
            self._fault(protocol.FaultCode.INTERLOCK_OPEN, protocol.SEVERITY_CLEARED,
                        'interlock closed')
        else:
            self._fault(protocol.FaultCode.INTERLOCK_OPEN, protocol.SEVERITY_ERROR,
                        'interlock open: X-rays off')
        self._send_status()
        self._flush()

    def advance(self, sim_time: float) -> int:
        """Answer the host, produce the lines due by sim_time, send; return lines produced."""
        if self._now is None:
            self._now = sim_time
            self._acq_start = sim_time
            self._next_status = sim_time
            self._next_dark = sim_time + self.dark_interval
        self._now = max(self._now, sim_time)
        self._poll()
        produced = 0
        if self.acquiring:
            due = int(math.floor((self._now - self._acq_start) * self.model.line_rate + 1e-9))
            count = due - self._acq_lines
            while count > 0:
                chunk = min(count, 16 * self.block_lines)
                self._produce(chunk)
                count -= chunk
                produced += chunk
                self._flush()
        if self._now >= self._next_status:
            self._send_status()
            while self._next_status <= self._now:
                self._next_status += self.status_period
        self._flush()
        return produced

    def close(self):
        """Close the connection and the listening socket; remove a Unix socket's path."""
        self._disconnect()
        family = self._listener.family
        self._listener.close()
        if family == socket.AF_UNIX:
            try:
                os.unlink(self.address)
            except FileNotFoundError:
                pass

    # -- connection ----------------------------------------------------------------------------

    def _poll(self):
        while True:
            try:
                conn, _ = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                break
            self._disconnect()  # the newest connection wins
            conn.setblocking(False)
            if conn.family in (socket.AF_INET, socket.AF_INET6):
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._conn = conn
            self.connections += 1
            self._greet()
        if self._conn is None:
            return
        while True:
            try:
                data = self._conn.recv(65536)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                self._disconnect()
                return
            if not data:
                self._disconnect()
                return
            for frame in self._decoder.feed(data):
                if isinstance(frame, protocol.Command):
                    self._command(frame)

    def _greet(self):
        self._send_status()
        for kind in ('dark', 'air'):
            if kind in self.references:
                frame = self.references[kind]
                self._send(protocol.CalibrationFrame(self._next_seq(), self._ticks(),
                                                     kind, frame.lines_used, frame.values))
        lost = self.dropped_lines - self._dropped_reported
        if lost:
            self._dropped_reported = self.dropped_lines
            self._fault(protocol.FaultCode.LINES_DROPPED, protocol.SEVERITY_WARNING,
                        f'{lost} lines dropped while no host was reading')
        self._flush()

    def _disconnect(self):
        if self._conn is not None:
            try:
                self._conn.close()
            except OSError:
                pass
        self._conn = None
        for _, lines in self._queue:  # a half-sent frame is lost to the host as well
            self.dropped_lines += lines
            self.dropped_frames += 1
        self._queue.clear()
        self._queued_bytes = 0
        self._sent = 0
        self._decoder.reset()

    def _flush(self):
        while self._conn is not None and self._queue:
            data = self._queue[0][0]
            try:
                sent = self._conn.send(memoryview(data)[self._sent:])
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self._disconnect()
                return
            self._sent += sent
            if self._sent >= len(data):
                self._queue.popleft()
                self._queued_bytes -= len(data)
                self._sent = 0

    def _next_seq(self) -> int:
        seq = self._seq
        self._seq = (self._seq + 1) % 2**32
        return seq

    def _ticks(self, t: float | None = None) -> int:
        t = self._now if t is None else t
        return int(round((t or 0.0) * 1000.0)) % 2**32

    def _send(self, frame, lines: int = 0) -> bool:
        """Queue a frame for the host; count it (and its lines) as dropped if it cannot go."""
        if self._conn is None:
            self.dropped_frames += 1
            self.dropped_lines += lines
            return False
        data = protocol.encode(frame)
        if self._queued_bytes + len(data) > self.max_queue_bytes:
            self.dropped_frames += 1  # the host does not keep up: the device's FIFO is full
            self.dropped_lines += lines
            return False
        self._queue.append([data, lines])
        self._queued_bytes += len(data)
        return True

    def _can_send(self) -> bool:
        return self._conn is not None and self._queued_bytes < self.max_queue_bytes

    def _send_status(self, reply: bool = False):
        self._send(protocol.StatusFrame(
            self._next_seq(), self._ticks(), self.model.model, self.serial, self.firmware,
            self.model.pixels, self.model.belt_pitch, self.model.line_rate,
            self.model.belt_speed, self.model.kvp, self.model.tube_current_ma,
            xray_on=self.acquiring and self.interlock_ok, interlock_ok=self.interlock_ok,
            acquiring=self.acquiring, temperature=self.temperature,
            lines_dropped=self.dropped_lines,
            flags=protocol.FLAG_REPLY if reply else 0))

    def _fault(self, code: int, severity: int, text: str, reply: bool = False):
        self._send(protocol.FaultFrame(self._next_seq(), self._ticks(), int(code), severity,
                                       text, protocol.FLAG_REPLY if reply else 0))

    def _command(self, frame: protocol.Command):
        self.commands += 1
        code = frame.command
        if code == protocol.CommandCode.START:
            if not self.acquiring:
                self.acquiring = True
                self._acq_start, self._acq_lines = self._now, 0
            self._send_status(reply=True)
        elif code == protocol.CommandCode.STOP:
            self._send_block()
            self.acquiring = False
            self._send_status(reply=True)
        elif code in (protocol.CommandCode.CALIBRATE_DARK, protocol.CommandCode.CALIBRATE_AIR):
            kind = 'dark' if code == protocol.CommandCode.CALIBRATE_DARK else 'air'
            if not self.acquiring:
                self._fault(protocol.FaultCode.COMMAND_REJECTED, protocol.SEVERITY_WARNING,
                            f'{kind} calibration refused: not acquiring (send START)', True)
            elif kind == 'air' and not self.interlock_ok:
                self._fault(protocol.FaultCode.COMMAND_REJECTED, protocol.SEVERITY_WARNING,
                            'air calibration refused: interlock open', True)
            else:
                self.calibrate(kind, frame.argument or None, reply=True)
        elif code == protocol.CommandCode.STATUS:
            self._send_status(reply=True)
        else:
            self._fault(protocol.FaultCode.BAD_COMMAND, protocol.SEVERITY_WARNING,
                        f'unknown command {int(code)}', True)
        self._flush()

    # -- lines ---------------------------------------------------------------------------------

    def _lines_of(self, source, count: int) -> np.ndarray:
        data = source(count)
        data = np.stack(data) if isinstance(data, (tuple, list)) else np.asarray(data)
        if data.shape != (len(CHANNELS), count, self.model.pixels):
            raise ValueError(f'a line source gave {data.shape}, expected '
                             f'{(len(CHANNELS), count, self.model.pixels)}')
        return data.astype(np.uint16, copy=False)

    def _produce(self, count: int):
        """Produce `count` lines in order: the parcel in the beam, runs, the next parcel, air."""
        while count > 0:
            space = self.block_lines - self._block_lines
            render = self._can_send()
            xray = self.interlock_ok
            parcel = self._current
            if not render and parcel is None and not self._runs and not self._parcels and not (
                    self.dark_interval > 0 and self._now >= self._next_dark):
                self._skip(count)  # empty belt that nobody receives: count it, render nothing
                return
            if parcel is None and not self._runs and self._parcels and (
                    self._since_parcel >= self._parcels[0].gap):
                parcel = self._current = self._parcels.popleft()
                start = self._line
                self._events.append((start + parcel.leading, protocol.ParcelBegin(
                    0, 0, parcel.number, (start + parcel.leading) % 2**32, parcel.waybill)))
                self._events.append((start + parcel.trailing - 1, protocol.ParcelEnd(
                    0, 0, parcel.number, (start + parcel.trailing - 1) % 2**32)))
            if parcel is not None:
                take = min(count, space, parcel.data.shape[1] - parcel.position)
                rows = np.arange(parcel.position, parcel.position + take)
                inside = (rows >= parcel.leading) & (rows < parcel.trailing)
                flags = np.where(inside, protocol.LINE_OCCUPIED, 0).astype(np.uint8)
                if xray:
                    flags |= protocol.LINE_XRAY_ON
                    data = parcel.data[:, parcel.position: parcel.position + take]
                else:
                    data = self._lines_of(self.dark_lines, take) if render else None
                parcel.position += take
                if parcel.position >= parcel.data.shape[1]:
                    self._current = None
                    self._since_parcel = 0
                    self.parcels_scanned += 1
                self._add(data if render else None, flags, take)
            elif self._runs or (self.dark_interval > 0 and self._now >= self._next_dark):
                if not self._runs:
                    self._runs.append(_Run('dark', self.dark_check_lines, False, False))
                    self._next_dark = self._now + self.dark_interval
                run = self._runs[0]
                take = min(count, space, run.remaining)
                on = run.kind == 'air' and xray
                source = self.air_lines if on else self.dark_lines
                data = self._lines_of(source, take) if (render or run.calibration) else None
                flags = np.full(take, (protocol.LINE_XRAY_ON if on else 0)
                                | (protocol.LINE_CALIBRATION if run.calibration else 0),
                                dtype=np.uint8)
                if run.calibration:
                    sums = data.sum(axis=1, dtype=np.float64)
                    run.sums = sums if run.sums is None else run.sums + sums
                    run.total += take
                run.remaining -= take
                self._add(data if render else None, flags, take)
                if run.remaining <= 0:
                    self._runs.popleft()
                    if run.calibration:
                        self._finish_calibration(run)
            elif self.gated and (self._idle or not self._parcels
                                 and self._since_parcel >= self.gap_lines):
                if self._parcels:  # a parcel at the light curtain: read its leading gap
                    self._idle = False
                    continue
                if not self._idle:
                    self._send_block()  # the trailing margin goes out now
                    self._idle, self._since_parcel = True, 0  # the next parcel's gap: from 0
                self._acq_lines += count  # time passes; no line is read
                return
            else:
                take = min(count, space)
                if self._parcels:
                    take = min(take, max(self._parcels[0].gap - self._since_parcel, 1))
                elif self.gated:  # the trailing margin, and no more
                    take = min(take, self.gap_lines - self._since_parcel)
                source = self.air_lines if xray else self.dark_lines
                data = self._lines_of(source, take) if render else None
                flags = np.full(take, protocol.LINE_XRAY_ON if xray else 0, dtype=np.uint8)
                self._add(data, flags, take)
                self._since_parcel += take
            count -= take

    def _skip(self, count: int):
        """Let `count` lines of empty belt pass unsent (no host, or its queue is full)."""
        self._send_block()
        self._line += count
        self._acq_lines += count
        self._since_parcel += count
        self.dropped_lines += count

    def _add(self, data, flags: np.ndarray, count: int):
        if self._block_lines == 0:
            self._block_first = self._line
            self._block_time = self._acq_start + self._acq_lines / self.model.line_rate
        self._block.append((data, flags))
        self._block_lines += count
        self._line += count
        self._acq_lines += count
        if self._block_lines >= self.block_lines:
            self._send_block()

    def _send_block(self):
        """Send the events due and the block being filled (however full it is)."""
        if self._block_lines == 0:
            return
        last = self._block_first + self._block_lines - 1
        due = [e for e in self._events if e[0] <= last]
        self._events = [e for e in self._events if e[0] > last]
        ticks = self._ticks(self._block_time)
        for _, event in sorted(due, key=lambda e: e[0]):
            if isinstance(event, protocol.ParcelBegin):
                event = protocol.ParcelBegin(self._next_seq(), ticks, event.parcel, event.line,
                                             event.waybill)
            else:
                event = protocol.ParcelEnd(self._next_seq(), ticks, event.parcel, event.line)
            self._send(event)
        segments, count = self._block, self._block_lines
        self._block, self._block_lines = [], 0
        seq = self._next_seq()
        if any(data is None for data, _ in segments) or not self._can_send():
            self._drop(count)  # not rendered, or nobody to send it to
            return
        frame = protocol.LinesFrame(seq, ticks, self._block_first % 2**32,
                                    np.concatenate([d for d, _ in segments], axis=1),
                                    np.concatenate([f for _, f in segments]))
        self._send(frame, count)

    def _drop(self, lines: int):
        self.dropped_frames += 1
        self.dropped_lines += lines

    def _finish_calibration(self, run: _Run):
        self._send_block()  # the run's last lines go before its CALIBRATION frame
        values = (run.sums / max(run.total, 1)).astype(np.float32)
        frame = protocol.CalibrationFrame(self._next_seq(), self._ticks(), run.kind, run.total,
                                          values, protocol.FLAG_REPLY if run.reply else 0)
        self.references[run.kind] = frame
        self._send(frame)
