"""Scan assembly from the scanner's frames: good streams and every kind of bad one.

And the whole chain: the simulated firmware over a Unix socket, the decoder, the assembler and
the drift monitor, with a pulled cable and a drifting tube.
"""

import pathlib
import shutil
import tempfile

import numpy as np
import pytest

from customs_lab.simulation.xray_firmware import XrayFirmware
from customs_lab.xray import calibration, protocol
from customs_lab.xray.assembly import FILL_VALUE, ScanAssembler
from customs_lab.xray.calibration import DriftMonitor
from customs_lab.xray.scan import XrayScan
from customs_lab.xray.scanner_model import ScannerModel

PIXELS = 16
MARGIN = 10
LINE_MS = 4  # 250 lines/s


class Script:
    """The frames of a scripted scanner; a test drops, repeats or corrupts what it likes."""

    def __init__(self, seed=0, pixels=PIXELS, first_line=1000, block=7):
        self.rng = np.random.default_rng(seed)
        self.pixels = pixels
        self.seq = 0
        self.line = first_line  # absolute; mod 2**32 on the wire
        self.block = block
        self.frames = []
        self.dark = np.rint(1000 + 20 * self.rng.standard_normal((3, pixels)))
        self.air = self.dark + np.array([49000.0, 48000.0, 800.0])[:, None] * (
            1 + 0.03 * self.rng.standard_normal((3, pixels)))
        self.truth = {}  # waybill -> (first line of the parcel, (3, lines, pixels) data)
        self.number = 0

    def _seq(self):
        self.seq += 1
        return self.seq - 1

    def _ticks(self, line=None):
        return ((self.line if line is None else line) * LINE_MS) % 2**32

    def status(self, pixels=None):
        self.frames.append(protocol.StatusFrame(
            self._seq(), self._ticks(), 'CL-XR-2E', 'SN-9', '1.0', pixels or self.pixels, 0.002,
            250.0, 0.5, 160.0, 1.0, xray_on=True, acquiring=True, temperature=30.0))

    def calibration(self, kind, values=None):
        values = (self.dark if kind == 'dark' else self.air) if values is None else values
        self.frames.append(protocol.CalibrationFrame(self._seq(), self._ticks(), kind, 64,
                                                     values))

    def _noisy(self, base, count):
        raw = base[:, None, :] + 3.0 * self.rng.standard_normal((3, count, base.shape[1]))
        return np.rint(raw).astype(np.uint16)

    def belt(self, *segments, events_after=False):
        """Stream segments: ('air', n), ('dark', n), ('cal', 'dark'|'air', n), ('parcel', n, w)."""
        datas, flags, events = [], [], []
        line = self.line
        for segment in segments:
            kind, count = segment[0], segment[-1] if segment[0] != 'parcel' else segment[1]
            if kind == 'air':
                datas.append(self._noisy(self.air, count))
                flags.append(np.full(count, protocol.LINE_XRAY_ON))
            elif kind == 'dark':
                datas.append(self._noisy(self.dark, count))
                flags.append(np.zeros(count))
            elif kind == 'cal':
                on = segment[1] == 'air'
                datas.append(self._noisy(self.air if on else self.dark, count))
                flags.append(np.full(count, protocol.LINE_CALIBRATION
                                      | (protocol.LINE_XRAY_ON if on else 0)))
            else:
                waybill = segment[2]
                transmission = self.rng.uniform(0.05, 0.9, size=(3, count, self.pixels))
                data = np.rint(self.dark[:, None, :] + (self.air - self.dark)[:, None, :]
                               * transmission).astype(np.uint16)
                datas.append(data)
                flags.append(np.full(count, protocol.LINE_XRAY_ON | protocol.LINE_OCCUPIED))
                self.number += 1
                self.truth[waybill] = (line, data)
                events.append((line, 'begin', self.number, waybill))
                events.append((line + count - 1, 'end', self.number, waybill))
            line += count
        data = np.concatenate(datas, axis=1)
        flag = np.concatenate(flags).astype(np.uint8)
        for start in range(0, data.shape[1], self.block):
            stop = min(start + self.block, data.shape[1])
            first, last = self.line + start, self.line + stop - 1
            due = [e for e in events if first <= e[0] <= last]
            if not events_after:
                self._events(due)
            self.frames.append(protocol.LinesFrame(
                self._seq(), self._ticks(first), first % 2**32, data[:, start:stop],
                flag[start:stop]))
            if events_after:
                self._events(due)
        self.line = line

    def _events(self, due):
        for line, kind, number, waybill in due:
            if kind == 'begin':
                frame = protocol.ParcelBegin(self._seq(), self._ticks(line), number,
                                             line % 2**32, waybill)
            else:
                frame = protocol.ParcelEnd(self._seq(), self._ticks(line), number, line % 2**32)
            self.frames.append(frame)

    def without(self, test):
        """Return the frames without those `test` picks."""
        return [f for f in self.frames if not test(f)]


def calibrated_script(**kwargs):
    script = Script(**kwargs)
    script.status()
    script.calibration('dark')
    script.calibration('air')
    return script


def feed(assembler, frames):
    scans = []
    for frame in frames:
        scans += assembler.feed(frame)
    return scans


def parcel_rows(scan):
    first, last = scan.extra['parcel_lines']
    return np.stack([scan.low, scan.high, scan.back])[:, first: last + 1]


def assert_parcel(scan, script, waybill):
    line, data = script.truth[waybill]
    assert np.array_equal(parcel_rows(scan), data)
    assert (scan.first_seq + scan.extra['parcel_lines'][0]) % 2**32 == line % 2**32


# -- good streams ------------------------------------------------------------------------------


@pytest.mark.parametrize('events_after', [False, True], ids=['edges_first', 'edges_after'])
def test_a_clean_stream_gives_one_scan_per_parcel(events_after):
    script = calibrated_script()
    script.belt(('air', 40), ('parcel', 30, 'RR000000000GB'), ('air', 40), ('parcel', 20, ''),
                ('air', 40), ('parcel', 25, 'CP123456784DE'), ('air', 40),
                events_after=events_after)
    assembler = ScanAssembler('xray_1', margin_lines=MARGIN)
    scans = feed(assembler, script.frames)
    assert [s.waybill for s in scans] == ['RR000000000GB', '', 'CP123456784DE']
    for scan, waybill in zip(scans, ['RR000000000GB', '', 'CP123456784DE'], strict=True):
        assert isinstance(scan, XrayScan) and scan.device_id == 'xray_1'
        assert_parcel(scan, script, waybill)
        assert scan.lines == script.truth[waybill][1].shape[1] + 2 * MARGIN
        assert scan.extra['missing_lines'] == 0 and scan.extra['truncated'] == ''
        assert scan.extra['references'] == 'calibration'
        assert np.allclose(scan.dark, script.dark) and np.allclose(scan.air, script.air, atol=0.01)
        assert scan.start_time == pytest.approx(scan.first_seq * LINE_MS / 1000.0)
        assert scan.line_period == pytest.approx(0.004) and scan.pixel_pitch == 0.002
        assert scan.model == 'CL-XR-2E' and scan.serial == 'SN-9' and scan.kvp == 160.0
    # the margins are the empty belt: calibrated, they read a transmission near 1
    margin = scans[0].calibrated()['low'][:MARGIN]
    assert np.all(np.abs(margin - 1.0) < 0.01)
    assert assembler.stats['scans'] == 3 and assembler.stats['unread_waybills'] == 1
    assert assembler.stats['missing_lines'] == 0 and assembler.stats['frames_lost'] == 0
    assert assembler.open_parcel is None and assembler.pending == 0


def test_line_numbers_and_ticks_that_wrap_are_followed():
    script = calibrated_script(first_line=2**32 - 45)
    script.belt(('air', 30), ('parcel', 40, 'W1'), ('air', 30))
    scans = feed(ScanAssembler('xray_1', margin_lines=MARGIN), script.frames)
    assert len(scans) == 1 and scans[0].extra['missing_lines'] == 0
    assert_parcel(scans[0], script, 'W1')


def test_the_drift_monitor_gets_the_margins_and_the_references():
    script = calibrated_script()
    script.belt(('air', 40), ('parcel', 30, 'A'), ('air', 40), ('dark', 16), ('air', 20))
    drift = DriftMonitor()
    assembler = ScanAssembler('xray_1', margin_lines=MARGIN, drift=drift)
    feed(assembler, script.frames)
    report = drift.report()
    assert report.values['air_lines'] == 2 * MARGIN and report.values['dark_lines'] == 16
    assert report.level == calibration.OK, report.message
    assert drift.references is assembler.references


def test_margins_stop_at_a_dark_check_or_a_calibration_next_to_the_parcel():
    script = calibrated_script()
    script.belt(('air', 40), ('parcel', 30, 'A'), ('air', 5), ('dark', 16), ('air', 40),
                ('cal', 'air', 8), ('air', 3), ('parcel', 20, 'B'), ('air', 40))
    scans = feed(ScanAssembler('xray_1', margin_lines=MARGIN), script.frames)
    assert [s.waybill for s in scans] == ['A', 'B']
    for scan, lead, trail in ((scans[0], MARGIN, 5), (scans[1], 3, MARGIN)):
        assert_parcel(scan, script, scan.waybill)
        first, last = scan.extra['parcel_lines']
        assert (first, scan.lines - 1 - last) == (lead, trail)
        # what is left of the margins is the empty belt, not X-rays off
        calibrated = scan.calibrated()['low']
        margins = np.concatenate([calibrated[:first], calibrated[last + 1:]])
        assert np.all(np.abs(margins - 1.0) < 0.01)


# -- bad streams -------------------------------------------------------------------------------


def test_lost_lines_are_filled_counted_and_noted():
    script = calibrated_script()
    script.belt(('air', 40), ('parcel', 50, 'A'), ('air', 40))
    blocks = [f for f in script.frames if isinstance(f, protocol.LinesFrame)]
    lost = blocks[8]  # inside the parcel
    scans = feed(assembler := ScanAssembler('xray_1', margin_lines=MARGIN),
                 script.without(lambda f: f is lost))
    (scan,) = scans
    assert scan.extra['missing_lines'] == lost.lines == scan.extra['missing_parcel_lines']
    rows = np.stack([scan.low, scan.high, scan.back])
    start = (lost.first_line - scan.first_seq) % 2**32
    assert np.all(rows[:, start: start + lost.lines] == FILL_VALUE)
    line, data = script.truth['A']
    keep = np.ones(data.shape[1], dtype=bool)
    keep[start - MARGIN: start - MARGIN + lost.lines] = False
    assert np.array_equal(parcel_rows(scan)[:, keep], data[:, keep])
    assert assembler.stats['missing_lines'] == lost.lines
    assert assembler.stats['frames_lost'] == 1 and assembler.stats['scans_with_missing_lines'] == 1


def test_an_end_without_a_begin_rebuilds_the_parcel_from_the_light_curtain():
    script = calibrated_script()
    script.belt(('air', 40), ('parcel', 30, 'A'), ('air', 40), ('parcel', 22, 'B'), ('air', 40))
    frames = script.without(lambda f: isinstance(f, protocol.ParcelBegin) and f.waybill == 'B')
    assembler = ScanAssembler('xray_1', margin_lines=MARGIN)
    scans = feed(assembler, frames)
    assert [s.waybill for s in scans] == ['A', '']
    assert scans[1].extra['begin_lost'] and assembler.stats['end_without_begin'] == 1
    assert_parcel(scans[1], script, 'B')  # the occupied lines, exactly


def test_a_begin_while_a_parcel_is_open_closes_it():
    script = calibrated_script()
    script.belt(('air', 40), ('parcel', 30, 'A'), ('air', 40), ('parcel', 22, 'B'), ('air', 40))
    frames = script.without(lambda f: isinstance(f, protocol.ParcelEnd) and f.parcel == 1)
    assembler = ScanAssembler('xray_1', margin_lines=MARGIN)
    scans = feed(assembler, frames)
    assert [s.waybill for s in scans] == ['A', 'B']
    first = scans[0]
    assert first.extra['truncated'] == 'next_parcel_began' and first.extra['end_lost']
    assert_parcel(first, script, 'A')  # it ends with its last occupied line
    assert_parcel(scans[1], script, 'B') and scans[1].extra['truncated'] == ''
    assert assembler.stats['begin_while_open'] == 1


def test_a_parcel_longer_than_the_limit_is_cut_into_parts():
    script = calibrated_script()
    script.belt(('air', 40), ('parcel', 120, 'LONG'), ('air', 40), ('parcel', 10, 'SHORT'),
                ('air', 40))
    assembler = ScanAssembler('xray_1', margin_lines=MARGIN, max_lines=50)
    scans = feed(assembler, script.frames)
    assert [s.waybill for s in scans] == ['LONG'] * 3 + ['SHORT']
    assert [s.extra['part'] for s in scans[:3]] == [1, 2, 3]
    assert [s.extra['truncated'] for s in scans[:3]] == ['max_lines', 'max_lines', '']
    joined = np.concatenate([parcel_rows(s) for s in scans[:3]], axis=1)
    assert np.array_equal(joined, script.truth['LONG'][1])  # nothing lost, nothing twice
    assert assembler.stats['truncated_max_lines'] == 2 and assembler.stats['late_ends'] == 0
    assert_parcel(scans[3], script, 'SHORT')


def test_a_long_parcel_whose_end_is_known_early_is_cut_into_parts_too():
    script = calibrated_script()
    script.belt(('air', 40), ('parcel', 120, 'LONG'), ('air', 40))
    frames = list(script.frames)
    end = next(f for f in frames if isinstance(f, protocol.ParcelEnd))
    frames.remove(end)
    begin = next(f for f in frames if isinstance(f, protocol.ParcelBegin))
    frames.insert(frames.index(begin) + 1, end)  # the curtain saw both edges before the beam
    assembler = ScanAssembler('xray_1', margin_lines=MARGIN, max_lines=50)
    scans = feed(assembler, frames)
    assert [s.extra['part'] for s in scans] == [1, 2, 3]
    joined = np.concatenate([parcel_rows(s) for s in scans], axis=1)
    assert np.array_equal(joined, script.truth['LONG'][1])
    assert scans[-1].lines == 20 + MARGIN


def test_a_pixel_count_change_mid_scan_closes_the_parcel():
    script = calibrated_script()
    script.belt(('air', 40), ('parcel', 30, 'A'))
    wide = Script(seed=1, pixels=24, first_line=script.line)
    wide.seq = script.seq
    wide.belt(('air', 30), ('parcel', 20, 'B'), ('air', 30))  # held: no references of 24 px
    assembler = ScanAssembler('xray_1', margin_lines=MARGIN)
    opened = script.without(lambda f: isinstance(f, protocol.ParcelEnd))  # A is still passing
    scans = feed(assembler, opened + wide.frames)
    assert [s.waybill for s in scans] == ['A'] and scans[0].pixels == PIXELS
    assert_parcel(scans[0], script, 'A')
    assert scans[0].extra['truncated'] == 'pixels_changed'
    assert assembler.stats['pixel_changes'] == 1 and assembler.pending == 1
    wide.frames = []
    wide.status()
    wide.calibration('dark')
    wide.calibration('air')
    scans = feed(assembler, wide.frames)
    assert [s.waybill for s in scans] == ['B'] and scans[0].pixels == 24
    assert_parcel(scans[0], wide, 'B')


def test_scans_wait_for_references_and_then_use_them():
    script = Script()
    script.belt(('air', 40), ('parcel', 30, 'A'), ('air', 40), ('parcel', 20, 'B'), ('air', 40))
    assembler = ScanAssembler('xray_1', margin_lines=MARGIN)
    assert feed(assembler, script.frames) == []
    assert assembler.pending == 2 and assembler.stats['held_scans'] == 2
    script.frames = []
    script.status()
    script.calibration('dark')
    assert feed(assembler, script.frames) == []  # an air reference is still missing
    script.frames = []
    script.calibration('air')
    scans = feed(assembler, script.frames)
    assert [s.waybill for s in scans] == ['A', 'B']
    assert all(s.extra['references'] == 'calibration' for s in scans)
    assert np.allclose(scans[0].air, script.air, atol=0.01)


def test_too_many_waiting_scans_go_out_with_estimated_references():
    script = Script()
    script.belt(('dark', 20), ('air', 40), *[s for i in range(4) for s in (
        ('parcel', 15, f'P{i}'), ('air', 30))])
    assembler = ScanAssembler('xray_1', margin_lines=MARGIN, max_pending=2)
    scans = feed(assembler, script.frames)
    assert [s.waybill for s in scans] == ['P0', 'P1']  # the third and fourth pushed them out
    assert assembler.pending == 2
    scan = scans[0]
    assert scan.extra['references'] == 'estimated' and scan.extra['status'] == 'nominal'
    assert np.allclose(scan.air, script.air, atol=5.0)  # from its own margins
    assert np.allclose(scan.dark, script.dark, atol=3.0)  # from the dark lines seen
    assert assembler.stats['estimated_references'] == 2
    rest = assembler.flush()
    assert [s.waybill for s in rest] == ['P2', 'P3']


def test_flush_emits_an_open_parcel():
    script = calibrated_script()
    script.belt(('air', 40), ('parcel', 30, 'A'))
    frames = script.without(lambda f: isinstance(f, protocol.ParcelEnd))
    assembler = ScanAssembler('xray_1', margin_lines=MARGIN)
    assert feed(assembler, frames) == [] and assembler.open_parcel == 'A'
    (scan,) = assembler.flush()
    assert scan.extra['truncated'] == 'flush' and scan.waybill == 'A'
    assert_parcel(scan, script, 'A')


def test_an_ended_parcel_goes_out_when_acquisition_stops():
    script = calibrated_script()
    script.belt(('air', 40), ('parcel', 30, 'A'), ('air', 3))
    assembler = ScanAssembler('xray_1', margin_lines=MARGIN)
    assert feed(assembler, script.frames) == []  # waiting for its trailing margin
    stopped = protocol.StatusFrame(99, 0, 'CL-XR-2E', 'SN-9', '1.0', PIXELS, 0.002, 250.0, 0.5,
                                   160.0, 1.0, acquiring=False)
    (scan,) = assembler.feed(stopped)
    assert scan.lines == MARGIN + 30 + 3 and scan.extra['missing_lines'] == 0


def test_a_lost_calibration_frame_is_rebuilt_from_its_lines():
    script = calibrated_script()
    script.belt(('air', 20), ('cal', 'air', 64))
    script.calibration('air', script.air + 1000.0)  # to be lost
    script.belt(('air', 40), ('parcel', 20, 'A'), ('air', 40))
    frames = script.without(lambda f: isinstance(f, protocol.CalibrationFrame)
                            and f.kind == 'air' and f.values[0, 0] > script.air[0, 0] + 500)
    assembler = ScanAssembler('xray_1', margin_lines=MARGIN)
    scans = feed(assembler, frames)
    assert assembler.stats['host_calibrations'] == 1
    assert assembler.references.air.source == 'host' and assembler.references.air.lines == 64
    assert np.allclose(scans[0].air, script.air, atol=2.0)
    assert scans[0].extra['reference_sources'] == ['firmware', 'host']
    # with the frame, the firmware's reference is taken and no lines are averaged here
    assembler = ScanAssembler('xray_1', margin_lines=MARGIN)
    feed(assembler, script.frames)
    assert assembler.stats['host_calibrations'] == 0
    assert assembler.references.air.values[0, 0] == pytest.approx(script.air[0, 0] + 1000.0)


def test_a_bad_air_calibration_is_refused():
    script = calibrated_script()
    script.calibration('air', script.dark + 3.0)  # taken with X-rays off
    script.belt(('air', 40), ('parcel', 20, 'A'), ('air', 40))
    nan = protocol.CalibrationFrame(0, 0, 'dark', 1, np.full((3, PIXELS), np.nan))
    assembler = ScanAssembler('xray_1', margin_lines=MARGIN)
    scans = feed(assembler, script.frames[:4] + [nan] + script.frames[4:])
    assert assembler.stats['bad_calibrations'] == 2
    assert np.allclose(scans[0].air, script.air, atol=0.01)  # the previous one is kept


def test_repeated_lines_are_ignored_and_a_restart_closes_the_parcel():
    script = calibrated_script()
    script.belt(('air', 40), ('parcel', 30, 'A'), ('air', 40))
    blocks = [f for f in script.frames if isinstance(f, protocol.LinesFrame)]
    frames = list(script.frames)
    frames.insert(frames.index(blocks[7]) + 1, blocks[7])  # sent twice
    assembler = ScanAssembler('xray_1', margin_lines=MARGIN)
    scans = feed(assembler, frames)
    assert len(scans) == 1 and scans[0].extra['missing_lines'] == 0
    assert assembler.stats['duplicate_lines'] == blocks[7].lines
    assert_parcel(scans[0], script, 'A')
    # the device restarts mid-parcel: its line numbers begin again at 0
    count = len(script.frames)
    script.belt(('air', 40), ('parcel', 30, 'B'))
    passing = [f for f in script.frames[count:] if not isinstance(f, protocol.ParcelEnd)]
    restarted = Script(seed=3, first_line=0)
    restarted.belt(('air', 30))
    scans = feed(assembler, passing + restarted.frames)
    assert [s.waybill for s in scans] == ['B'] and scans[0].extra['truncated'] == 'line_reset'
    assert assembler.stats['line_resets'] == 1


def test_a_corrupted_byte_stream_never_breaks_the_assembler():
    script = calibrated_script(seed=4)
    for i in range(12):
        script.belt(('air', 25), ('parcel', int(15 + 3 * i), f'W{i:02d}'))
    script.belt(('air', 40))
    clean = b''.join(protocol.encode(f) for f in script.frames)
    for seed in range(5):
        rng = np.random.default_rng(seed)
        data = bytearray(clean)
        for index in rng.integers(0, len(data), size=30):
            data[index] ^= 1 << int(rng.integers(0, 8))
        for index in sorted(rng.integers(0, len(data), size=5), reverse=True):
            del data[index: index + int(rng.integers(1, 3000))]  # lost chunks
        decoder = protocol.StreamDecoder()
        assembler = ScanAssembler('xray_1', margin_lines=MARGIN, max_lines=200)
        scans = []
        position = 0
        while position < len(data):
            size = int(rng.integers(1, 5000))
            for frame in decoder.feed(bytes(data[position: position + size])):
                scans += assembler.feed(frame)
            position += size
        scans += assembler.flush()
        assert decoder.error_count > 0
        waybills = [s.waybill for s in scans]
        assert set(waybills) <= set(script.truth) | {''}
        assert len(set(waybills) - {''}) >= 6  # most parcels come through
        for scan in scans:
            assert scan.lines >= 1 and scan.low.dtype == np.uint16
            if scan.waybill and not scan.extra['missing_parcel_lines'] and not (
                    scan.extra['truncated'] or scan.extra['begin_lost']):
                assert_parcel(scan, script, scan.waybill)


def test_assembler_parameters_are_validated():
    for kwargs in ({'margin_lines': -1}, {'max_lines': 0}, {'max_pending': -1},
                   {'margin_lines': 2.5}, {'min_span_adu': 0.0}):
        with pytest.raises(ValueError):
            ScanAssembler('xray_1', **kwargs)


# -- the whole chain: firmware, socket, decoder, assembler, drift -------------------------------

MODEL = ScannerModel(pixels=64, detector_pitch=0.0176)


@pytest.fixture
def firmware():
    directory = pathlib.Path(tempfile.mkdtemp(prefix='xr'))
    device = XrayFirmware(str(directory / 'xray_1.sock'), MODEL, serial='SIM-1',
                          dark_interval=4.0)
    yield device
    device.close()
    shutil.rmtree(directory, ignore_errors=True)


class Driver:
    """What the driver node does, without ROS: read, decode, assemble."""

    def __init__(self, address, assembler):
        self.address = address
        self.assembler = assembler
        self.decoder = protocol.StreamDecoder()
        self.scans = []
        self.connect()

    def connect(self):
        self.sock = protocol.connect(self.address)
        self.sock.setblocking(False)
        self.decoder.reset()

    def read(self):
        while True:
            try:
                data = self.sock.recv(1 << 20)
            except BlockingIOError:
                return
            if not data:
                return
            for frame in self.decoder.feed(data):
                self.scans += self.assembler.feed(frame)

    def command(self, code, argument=0):
        self.sock.sendall(protocol.encode(protocol.Command(0, 0, code, argument)))


def run(firmware, driver, start, stop, step=0.1):
    t = start
    firmware.advance(t)
    while t < stop - 1e-9:
        t = min(t + step, stop)
        firmware.advance(t)
        for _ in range(100):
            if driver is not None:
                driver.read()
            if not firmware.backlog or driver is None:
                break
            firmware.advance(t)
    return t


def parcel(detector, lines, seed):
    """Return a parcel's raw (low, high, back) lines and its low-energy transmission."""
    rng = np.random.default_rng(seed)
    low = np.ones((lines, MODEL.pixels))
    low[:, 10:50] = rng.uniform(0.05, 0.8, size=(lines, 40))
    return detector.transmission(low, np.sqrt(low), 2000.0 * (low < 1)), low


def test_the_simulated_scanner_end_to_end_with_a_pulled_cable(firmware):
    drift = DriftMonitor(calibration.DriftThresholds(window_lines=50))  # one parcel's margins
    driver = Driver(firmware.address, ScanAssembler('xray_1', margin_lines=25, drift=drift))
    detector = firmware.detector
    rendered = {}
    for i, waybill in enumerate(['RR100000001GB', '', 'RR100000002GB']):
        rendered[i] = parcel(detector, 150, i)
        firmware.queue_parcel(*rendered[i][0], waybill, gap_lines=100)
    t = run(firmware, driver, 0.0, 5.0)
    scans = driver.scans
    assert [s.waybill for s in scans] == ['RR100000001GB', '', 'RR100000002GB']
    for i, scan in enumerate(scans):
        assert np.array_equal(parcel_rows(scan), rendered[i][0])
        assert scan.extra['missing_lines'] == 0 and scan.extra['references'] == 'calibration'
        assert scan.extra['reference_sources'] == ['firmware', 'firmware']
        # the firmware's references flat-field the raw lines back to the true transmission
        assert np.allclose(scan.calibrated()['low'][25:-25], rendered[i][1], atol=0.02)
    report = drift.report()
    assert report.level == calibration.OK and report.values['dark_lines'] >= 16, report.message

    # the cable is pulled while a parcel is in the beam, and plugged in again
    firmware.queue_parcel(*parcel(detector, 400, 9)[0], 'RR100000003GB', gap_lines=50)
    while firmware.in_beam is None:
        t = run(firmware, driver, t, t + 0.1)
    t = run(firmware, driver, t, t + 0.3)
    driver.sock.close()
    t = run(firmware, None, t, t + 0.4)
    assert firmware.dropped_lines > 0
    driver.connect()
    t = run(firmware, driver, t, t + 3.0)
    scan = driver.scans[-1]
    assert scan.waybill == 'RR100000003GB' and scan.lines == 400 + 50
    assert scan.extra['missing_lines'] == firmware.dropped_lines
    assert driver.assembler.stats['missing_lines'] == firmware.dropped_lines
    assert driver.assembler.last_fault.code == protocol.FaultCode.LINES_DROPPED

    # the tube's output drifts up 5 %: the monitor asks for an air calibration, and it helps
    detector.gain_drift = 1.05
    firmware.queue_parcel(*parcel(detector, 100, 10)[0], 'RR100000004GB', gap_lines=60)
    t = run(firmware, driver, t, t + 2.0)
    report = drift.report()
    assert report.needs_air_calibration and report.level == calibration.WARN, report.message
    driver.command(protocol.CommandCode.CALIBRATE_AIR, 128)
    t = run(firmware, driver, t, t + 1.0)
    assert driver.assembler.references.air.lines == 128
    firmware.queue_parcel(*parcel(detector, 100, 11)[0], 'RR100000005GB', gap_lines=60)
    run(firmware, driver, t, t + 2.0)
    assert drift.report().level == calibration.OK
    assert [s.waybill for s in driver.scans][-2:] == ['RR100000004GB', 'RR100000005GB']
    assert driver.decoder.error_count == 0
    driver.sock.close()
