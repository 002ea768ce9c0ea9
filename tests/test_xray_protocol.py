"""The X-ray stream protocol: frames, and a decoder that survives corrupt input.

And the simulated scanner firmware over real sockets (Unix and TCP), including a pulled cable.
"""

import pathlib
import re
import shutil
import socket
import struct
import tempfile
import zlib

import numpy as np
import pytest

from customs_lab.simulation.xray_firmware import XrayFirmware
from customs_lab.xray import protocol
from customs_lab.xray.scanner_model import ScannerModel

DOC = pathlib.Path(__file__).resolve().parents[1] / 'docs' / 'protocols' / 'xray_stream.md'
RNG = np.random.default_rng(11)
DATA = RNG.integers(0, 65536, size=(3, 5, 12), dtype=np.uint16)
DATA[0, 0, 0], DATA[2, 4, 11] = 0, 65535

STATUS = protocol.StatusFrame(
    0, 5, 'CL-XR-2E', 'SN-0042', '1.4.2', 352, 0.0018285714285714286, 250.0, 0.5, 160.0, 1.0,
    xray_on=True, interlock_ok=True, acquiring=True, temperature=31.5, lines_dropped=7,
    extra={'tube_hours': 1234.5, 'note': 'früh'})
LINES = protocol.LinesFrame(1, 4_294_967_295, 2**32 - 2, DATA,
                            np.array([0, 1, 5, 3, 255], dtype=np.uint8))
BEGIN = protocol.ParcelBegin(2, 1000, 3, 1100, 'RR123456785KR')
FRAMES = [
    STATUS,
    protocol.StatusFrame(1, 6, 'M', '', '', 1, 0.01, 1.0, 0.0, 0.0, 0.0),  # optional keys left out
    LINES,
    BEGIN,
    protocol.ParcelBegin(3, 1001, 4, 0, ''),  # unread waybill
    protocol.ParcelBegin(4, 1002, 5, 7, 'ÉTIQUETTE-Ø'),
    protocol.ParcelEnd(5, 1003, 3, 1234),
    protocol.CalibrationFrame(6, 1004, 'dark', 64, RNG.normal(1000, 20, (3, 12))),
    protocol.CalibrationFrame(7, 1005, 'air', 128, RNG.normal(50000, 900, (3, 12)),
                              protocol.FLAG_REPLY),
    protocol.FaultFrame(8, 1006, protocol.FaultCode.INTERLOCK_OPEN, 2, 'interlock open'),
    protocol.FaultFrame(9, 1007, 999, 0, ''),
    *[protocol.Command(10 + int(c), 0, c, 128 if 'CALIBRATE' in c.name else 0)
      for c in protocol.CommandCode],
    protocol.Command(20, 0, 99),  # an unknown command still decodes: the device answers it
]


def stream_of(frames) -> bytes:
    return b''.join(protocol.encode(f) for f in frames)


def feed_in_chunks(decoder, data: bytes, sizes) -> list:
    frames, position = [], 0
    for size in sizes:
        frames += decoder.feed(data[position: position + size])
        position += size
        if position >= len(data):
            break
    return frames + decoder.feed(data[position:])


# -- encoding ----------------------------------------------------------------------------------


@pytest.mark.parametrize('frame', FRAMES, ids=lambda f: type(f).__name__)
def test_every_frame_type_round_trips(frame):
    data = protocol.encode(frame)
    assert data.startswith(protocol.MAGIC)
    assert protocol.decode_frame(data) == frame


def test_header_and_crc_are_as_documented():
    data = protocol.encode(protocol.ParcelEnd(7, 1000, 3, 1234))
    magic, version, kind, flags, seq, ticks, length = struct.unpack_from('<4sBBBIII', data)
    assert (magic, version, kind, flags, seq, ticks, length) == (
        b'\xeb\x90XR', 1, 0x04, 0, 7, 1000, 8)
    assert struct.unpack_from('<II', data, 19) == (3, 1234)
    assert len(data) == 19 + 8 + 4
    assert struct.unpack_from('<I', data, 27)[0] == zlib.crc32(data[:27])
    assert zlib.crc32(b'123456789') == 0xCBF43926  # the check value the document gives


def test_lines_layout_is_channel_blocks_then_flags():
    data = protocol.encode(LINES)
    payload = data[19:-4]
    assert struct.unpack_from('<IHH', payload) == (2**32 - 2, 5, 12)
    low = np.frombuffer(payload, '<u2', 60, 8).reshape(5, 12)
    back = np.frombuffer(payload, '<u2', 60, 8 + 240).reshape(5, 12)
    assert np.array_equal(low, DATA[0]) and np.array_equal(back, DATA[2])
    assert payload[-5:] == bytes([0, 1, 5, 3, 255])
    decoded = protocol.decode_frame(data)
    assert decoded.data.dtype == np.uint16 and decoded.data.flags.writeable
    assert decoded.low.shape == (5, 12) and decoded.lines == 5 and decoded.pixels == 12


def test_a_second_of_full_width_lines_round_trips():
    data = RNG.integers(0, 65536, size=(3, 250, 352), dtype=np.uint16)
    frame = protocol.LinesFrame(1, 2, 3, data, np.ones(250, dtype=np.uint8))
    encoded = protocol.encode(frame)
    assert len(encoded) == 23 + 8 + 250 * (6 * 352 + 1)  # about 0.5 MB per second of lines
    assert protocol.StreamDecoder().feed(encoded) == [frame]


def test_the_documented_examples_decode():
    text = DOC.read_text()
    blocks = re.findall(r'```hex\n(.*?)```', text, re.S)
    frames = [protocol.decode_frame(bytes.fromhex(block.replace('\n', ' '))) for block in blocks]
    assert [type(f).__name__ for f in frames] == [
        'ParcelBegin', 'LinesFrame', 'ParcelEnd', 'Command']
    begin, lines, end, command = frames
    assert (begin.parcel, begin.line, begin.waybill) == (3, 1100, 'RR123456785KR')
    assert lines.first_line == 1099 and list(lines.line_flags) == [1, 5]
    assert list(lines.low[1]) == [50000, 12000, 13000, 50001]
    assert list(lines.back[0]) == [900, 901, 902, 903]
    assert (end.parcel, end.line) == (3, 1234)
    assert command.command == protocol.CommandCode.CALIBRATE_AIR and command.argument == 128
    status = re.search(r'```json\n(.*?)\n```', text, re.S).group(1).encode()
    frame = protocol.decode_frame(protocol.pack_frame(protocol.FrameType.STATUS, 0, 0, status))
    assert frame.pixels == 352 and frame.line_rate == 250.0 and frame.xray_on


@pytest.mark.parametrize('make', [
    lambda: protocol.LinesFrame(0, 0, 0, np.full((3, 2, 4), 70000), np.zeros(2)),
    lambda: protocol.LinesFrame(0, 0, 0, np.full((3, 2, 4), 0.5), np.zeros(2)),
    lambda: protocol.LinesFrame(0, 0, 0, np.zeros((3, 2, 4097), np.uint16), np.zeros(2)),
    lambda: protocol.LinesFrame(0, 0, 0, np.zeros((2, 2, 4), np.uint16), np.zeros(2)),
    lambda: protocol.LinesFrame(0, 0, 0, np.zeros((3, 2, 4), np.uint16), np.zeros(3)),
    lambda: protocol.CalibrationFrame(0, 0, 'grey', 1, np.zeros((3, 4))),
    lambda: protocol.encode(protocol.CalibrationFrame(0, 0, 'air', 1, np.full((3, 4), np.nan))),
    lambda: protocol.encode(protocol.ParcelBegin(0, 0, 1, 2, 'W' * 256)),
    lambda: protocol.encode(protocol.ParcelEnd(0, 0, 1, 2**32)),
    lambda: protocol.encode(protocol.FaultFrame(0, 0, 1, 3, 'x')),
    lambda: protocol.encode(protocol.Command(0, 0, 256)),
    lambda: protocol.encode(protocol.StatusFrame(0, 0, 'M', 'S', 'F', 352, 0.002, float('nan'),
                                                 0.5, 160, 1)),
    lambda: protocol.encode(protocol.StatusFrame(0, 0, 'M', 'S', 'F', 0, 0.002, 250, 0.5, 160,
                                                 1)),
    lambda: protocol.encode(protocol.StatusFrame(0, 0, 'M', 'S', 'F', 1, 0.002, 250, 0.5, 160,
                                                 1, extra={'pixels': 3})),
    lambda: protocol.encode(protocol.LinesFrame(
        0, 0, 0, np.zeros((3, 400, 2000), np.uint16), np.zeros(400))),  # above MAX_PAYLOAD
])
def test_frames_that_cannot_be_sent_are_refused(make):
    with pytest.raises(ValueError):
        make()


# -- decoding corrupt streams ------------------------------------------------------------------


def test_byte_by_byte_feeding_decodes_every_frame():
    decoder = protocol.StreamDecoder()
    data = stream_of(FRAMES)
    frames = []
    for index in range(len(data)):
        frames += decoder.feed(data[index: index + 1])
    assert frames == FRAMES
    assert decoder.stats['frames'] == len(FRAMES) and decoder.error_count == 0
    assert decoder.stats['skipped_bytes'] == 0 and decoder.buffered == 0


def test_garbage_before_and_between_frames_is_skipped_and_counted():
    garbage = [b'\x00\xff' * 20, b'\xeb\x90X', b'\xeb\x90XR', b'noise\xeb', b'\xeb\x90']
    data = b'garbage at power-on' + b''.join(
        protocol.encode(f) + garbage[i % len(garbage)] for i, f in enumerate(FRAMES))
    decoder = protocol.StreamDecoder()
    rng = np.random.default_rng(2)
    frames = feed_in_chunks(decoder, data, rng.integers(1, 200, size=10000))
    assert frames == FRAMES
    # a bare magic without a header is garbage too; what follows is found anyway
    skipped = decoder.stats['skipped_bytes'] + decoder.buffered  # a magic's start may follow
    assert skipped == len(data) - len(stream_of(FRAMES))
    assert decoder.stats['bad_header'] >= 1  # the bare magics, whose 'header' is the next frame


def _corrupted_cases(frame):
    data = protocol.encode(frame)
    for index in range(len(data)):
        for bit in range(8):
            corrupted = bytearray(data)
            corrupted[index] ^= 1 << bit
            yield index, bit, bytes(corrupted)


@pytest.mark.parametrize('frame', [BEGIN, protocol.LinesFrame(
    4, 5, 6, DATA[:, :2, :4], np.array([1, 5], dtype=np.uint8))], ids=['begin', 'lines'])
def test_every_single_bit_flip_drops_only_that_frame(frame):
    following = [protocol.ParcelEnd(50 + i, 2000, 3, 1234 + i) for i in range(12)]
    tail = stream_of(following)  # more than the longest length a flip can claim
    for index, bit, corrupted in _corrupted_cases(frame):
        decoder = protocol.StreamDecoder()
        frames = decoder.feed(corrupted + tail)
        assert frames == following, (index, bit, frames[:1], decoder.stats)
        assert decoder.error_count + decoder.stats['skipped_bytes'] > 0
        assert decoder.buffered == 0


def test_a_bad_crc_is_counted_and_the_next_frame_kept():
    data = bytearray(protocol.encode(LINES))
    data[40] ^= 0x10
    decoder = protocol.StreamDecoder()
    assert decoder.feed(bytes(data) + protocol.encode(BEGIN)) == [BEGIN]
    assert decoder.stats['bad_crc'] == 1 and 'CRC' in decoder.last_error


def test_a_truncated_frame_loses_only_itself():
    # a cable pulled mid-frame: the next frames follow the stump
    big = protocol.encode(protocol.LinesFrame(1, 2, 3, np.zeros((3, 100, 352), np.uint16),
                                              np.zeros(100, np.uint8)))
    following = [protocol.LinesFrame(10 + i, 2, 3 + 100 * i, DATA, np.zeros(5, np.uint8))
                 for i in range(4)]
    decoder = protocol.StreamDecoder()
    # the frames after the stump are decoded at once, without waiting for the stump's length
    frames = feed_in_chunks(decoder, big[: len(big) // 2] + stream_of(following), [4096] * 100)
    assert frames == following
    assert decoder.stats['bad_length'] == 1 and 'cut short' in decoder.last_error
    assert decoder.buffered == 0 and decoder.error_count == 1


def test_reset_forgets_a_partial_frame_on_reconnection():
    decoder = protocol.StreamDecoder()
    assert decoder.feed(protocol.encode(LINES)[:100]) == []
    assert decoder.buffered == 100
    decoder.reset()
    assert decoder.feed(protocol.encode(BEGIN)) == [BEGIN] and decoder.error_count == 0


@pytest.mark.parametrize('header', [
    protocol.HEADER.pack(protocol.MAGIC, 1, protocol.FrameType.LINES, 0, 1, 2, 0xFFFFFFF0),
    protocol.HEADER.pack(protocol.MAGIC, 1, protocol.FrameType.PARCEL_END, 0, 1, 2, 9),
    protocol.HEADER.pack(protocol.MAGIC, 1, protocol.FrameType.STATUS, 0, 1, 2, 70000),
    protocol.HEADER.pack(protocol.MAGIC, 7, 0x55, 0, 1, 2, protocol.MAX_PAYLOAD + 1),
    # LINES whose length does not fit its own line and pixel counts
    protocol.HEADER.pack(protocol.MAGIC, 1, protocol.FrameType.LINES, 0, 1, 2, 1000)
    + struct.pack('<IHH', 0, 2, 4),
])
def test_an_absurd_length_is_rejected_at_once(header):
    decoder = protocol.StreamDecoder()
    assert decoder.feed(header) == []
    assert decoder.stats['bad_length'] == 1
    assert decoder.buffered < protocol.HEADER_SIZE  # it does not wait for the claimed bytes
    assert decoder.feed(protocol.encode(BEGIN)) == [BEGIN]


@pytest.mark.parametrize('kind, data', [
    ('unknown_type', protocol.pack_frame(0x42, 1, 2, protocol.encode(BEGIN))),
    ('unsupported_version', protocol.pack_frame(protocol.FrameType.LINES, 1, 2,
                                                protocol.encode(BEGIN), version=2)),
    ('bad_payload', protocol.pack_frame(protocol.FrameType.STATUS, 1, 2, b'not json')),
    ('bad_payload', protocol.pack_frame(protocol.FrameType.STATUS, 1, 2, b'[1, 2]')),
    ('bad_payload', protocol.pack_frame(protocol.FrameType.STATUS, 1, 2, b'{"model": "M"}')),
    ('bad_payload', protocol.pack_frame(
        protocol.FrameType.STATUS, 1, 2, protocol.encode(STATUS)[19:-4].replace(
            b'"line_rate":250.0', b'"line_rate":NaN'))),
    ('bad_payload', protocol.pack_frame(protocol.FrameType.PARCEL_BEGIN, 1, 2,
                                        struct.pack('<II', 1, 2) + b'\xff\xfe')),
    ('bad_payload', protocol.pack_frame(protocol.FrameType.FAULT, 1, 2, b'\x01\x00\x07')),
    ('bad_payload', protocol.pack_frame(protocol.FrameType.CALIBRATION, 1, 2,
                                        struct.pack('<BBHI', 2, 0, 1, 1) + bytes(12))),
    ('bad_payload', protocol.pack_frame(protocol.FrameType.CALIBRATION, 1, 2,
                                        struct.pack('<BBHI', 0, 0, 1, 1)
                                        + struct.pack('<3f', 1.0, float('nan'), 2.0))),
])
def test_sound_frames_this_host_cannot_read_are_skipped_whole(kind, data):
    decoder = protocol.StreamDecoder()
    # the skipped frame carries a whole valid frame inside it: it must not be decoded from there
    assert decoder.feed(data + protocol.encode(LINES)) == [LINES]
    assert decoder.stats[kind] == 1 and decoder.error_count == 1


def test_endless_garbage_never_grows_the_buffer():
    decoder = protocol.StreamDecoder(max_payload=100_000)
    rng = np.random.default_rng(5)
    largest = 0
    for _ in range(200):
        chunk = rng.integers(0, 256, size=5000, dtype=np.uint8).tobytes()
        # sprinkle magics with random headers (the worst case for a resynchronising decoder)
        chunk = chunk[:100] + protocol.MAGIC + chunk[104:]
        decoder.feed(chunk)
        largest = max(largest, decoder.buffered)
    assert largest <= protocol.HEADER_SIZE + 100_000 + protocol.CRC_SIZE + 5000
    assert decoder.feed(b'\x00' * 200_000 + protocol.encode(BEGIN)) == [BEGIN]


def test_decoder_limits_are_validated():
    with pytest.raises(ValueError):
        protocol.StreamDecoder(max_payload=10)


@pytest.mark.parametrize('address, family, target', [
    ('/run/customs_lab/dev/xray_1.sock', socket.AF_UNIX, '/run/customs_lab/dev/xray_1.sock'),
    ('unix:xray.sock', socket.AF_UNIX, 'xray.sock'),
    ('xray.sock', socket.AF_UNIX, 'xray.sock'),
    ('dev/xray:5', socket.AF_UNIX, 'dev/xray:5'),
    ('scanner.local:5600', socket.AF_INET, ('scanner.local', 5600)),
    ('tcp:10.0.0.7:5600', socket.AF_INET, ('10.0.0.7', 5600)),
    ('[::1]:5600', socket.AF_INET6, ('::1', 5600)),
])
def test_addresses(address, family, target):
    assert protocol.parse_address(address) == (family, target)


def test_a_bad_address_is_refused():
    for address in ('', 'scanner:99999'):
        with pytest.raises(ValueError):
            protocol.parse_address(address)


# -- the simulated firmware over real sockets ----------------------------------------------------

MODEL = ScannerModel(pixels=64, detector_pitch=0.0176)


@pytest.fixture
def short_dir():
    path = tempfile.mkdtemp(prefix='xr')  # a Unix socket path must stay below 108 bytes
    yield pathlib.Path(path)
    shutil.rmtree(path, ignore_errors=True)


class Host:
    """A host's side: a connection and a decoder."""

    def __init__(self, address):
        self.sock = protocol.connect(address)
        self.sock.setblocking(False)
        self.decoder = protocol.StreamDecoder()
        self.frames = []

    def read(self):
        while True:
            try:
                data = self.sock.recv(1 << 20)
            except BlockingIOError:
                return
            if not data:
                return
            self.frames += self.decoder.feed(data)

    def send(self, command, argument=0):
        self.sock.setblocking(True)
        self.sock.sendall(protocol.encode(protocol.Command(0, 0, command, argument)))
        self.sock.setblocking(False)

    def of(self, kind):
        return [f for f in self.frames if isinstance(f, kind)]

    def close(self):
        self.sock.close()


def run(firmware, hosts, start, stop, step=0.05):
    """Advance the firmware from start to stop, letting the hosts read as it goes."""
    t = start
    firmware.advance(t)
    while t < stop - 1e-9:
        t = min(t + step, stop)
        firmware.advance(t)
        for _ in range(100):
            for host in hosts:
                host.read()
            if not firmware.backlog:
                break
            firmware.advance(t)
    return t


def line_numbers(frames):
    return np.concatenate([np.arange(f.first_line, f.first_line + f.lines) for f in frames])


@pytest.fixture(params=['unix', 'tcp'])
def firmware(request, short_dir):
    address = str(short_dir / 'xray_1.sock') if request.param == 'unix' else '127.0.0.1:0'
    device = XrayFirmware(address, MODEL, serial='SIM-1', calibration_lines=32)
    yield device
    device.close()


def test_the_firmware_streams_lines_status_and_calibrations(firmware):
    host = Host(firmware.address)
    run(firmware, [host], 0.0, 2.0)
    status = host.of(protocol.StatusFrame)
    assert status[0].serial == 'SIM-1' and status[0].pixels == 64 and len(status) >= 2
    dark, air = host.of(protocol.CalibrationFrame)
    assert (dark.kind, air.kind, dark.lines_used) == ('dark', 'air', 32)
    assert np.all(air.values[:2] - dark.values[:2] > 40000)
    lines = host.of(protocol.LinesFrame)
    numbers = line_numbers(lines)
    # 2 s at 250 lines/s, none lost (the last block is still filling)
    assert np.array_equal(numbers, np.arange(len(numbers))) and len(numbers) > 475
    assert all(f.lines <= 25 for f in lines)
    flags = np.concatenate([f.line_flags for f in lines])
    assert np.all(flags[:32] == protocol.LINE_CALIBRATION)  # dark run: X-rays off
    assert np.all(flags[32:64] == protocol.LINE_CALIBRATION | protocol.LINE_XRAY_ON)
    assert np.all(flags[64:] == protocol.LINE_XRAY_ON)
    seqs = [f.seq for f in host.frames]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))  # nothing lost
    assert host.decoder.error_count == 0 and firmware.dropped_lines == 0
    host.close()


def test_the_firmware_answers_commands(firmware):
    host = Host(firmware.address)
    t = run(firmware, [host], 0.0, 0.6)
    host.frames.clear()
    host.send(protocol.CommandCode.STATUS)
    host.send(protocol.CommandCode.CALIBRATE_AIR, 40)
    host.send(99)
    t = run(firmware, [host], t, t + 0.4)
    replies = [f for f in host.frames if f.flags & protocol.FLAG_REPLY]
    assert isinstance(replies[0], protocol.StatusFrame)
    assert isinstance(replies[1], protocol.FaultFrame)
    assert replies[1].code == protocol.FaultCode.BAD_COMMAND
    assert isinstance(replies[2], protocol.CalibrationFrame) and replies[2].lines_used == 40
    run_lines = [f for f in host.of(protocol.LinesFrame)
                 if f.line_flags[-1] & protocol.LINE_CALIBRATION]
    assert sum(int(np.count_nonzero(f.line_flags & protocol.LINE_CALIBRATION))
               for f in run_lines) == 40
    # the CALIBRATION frame follows the run's last line before any later LINES frame
    index = host.frames.index(replies[2])
    assert host.frames[index - 1] is run_lines[-1]
    host.send(protocol.CommandCode.STOP)
    t = run(firmware, [host], t, t + 0.2)
    host.frames.clear()
    t = run(firmware, [host], t, t + 0.5)
    assert host.of(protocol.LinesFrame) == []
    host.send(protocol.CommandCode.CALIBRATE_DARK)
    t = run(firmware, [host], t, t + 0.1)
    assert host.of(protocol.FaultFrame)[-1].code == protocol.FaultCode.COMMAND_REJECTED
    host.send(protocol.CommandCode.START)
    run(firmware, [host], t, t + 0.5)
    assert len(line_numbers(host.of(protocol.LinesFrame))) >= 100
    assert firmware.commands == 6
    host.close()


def test_a_pulled_cable_loses_the_lines_of_the_outage_and_no_more(firmware):
    host = Host(firmware.address)
    t = run(firmware, [host], 0.0, 1.0)
    host.close()  # the cable is pulled
    t = run(firmware, [], t, t + 2.0)
    assert not firmware.connected and firmware.dropped_lines >= 400
    dropped = firmware.dropped_lines
    second = Host(firmware.address)  # plugged in again
    run(firmware, [second], t, t + 1.0)
    assert firmware.connections == 2
    first_frames = second.frames[:4]
    assert isinstance(first_frames[0], protocol.StatusFrame)
    assert [f.kind for f in first_frames[1:3]] == ['dark', 'air']
    assert first_frames[3].code == protocol.FaultCode.LINES_DROPPED
    assert str(dropped) in first_frames[3].text
    before = line_numbers(host.of(protocol.LinesFrame))
    after = line_numbers(second.of(protocol.LinesFrame))
    # the gap is exactly what the device counted (with the block that was filling at the time)
    assert after[0] - before[-1] - 1 == firmware.dropped_lines >= dropped
    assert np.array_equal(after, np.arange(after[0], after[0] + len(after)))
    second.close()


def test_a_new_connection_replaces_a_half_open_one(firmware):
    stale = Host(firmware.address)
    t = run(firmware, [stale], 0.0, 0.5)
    fresh = Host(firmware.address)  # the old one never closed (cable gone, no FIN)
    run(firmware, [stale, fresh], t, t + 0.5)
    assert firmware.connections == 2
    stale.read()
    assert stale.sock.recv(10) == b''  # the firmware closed it
    assert len(fresh.of(protocol.LinesFrame)) >= 4
    stale.close()
    fresh.close()


def test_a_fast_simulation_gets_every_line_in_blocks(short_dir):
    firmware = XrayFirmware(str(short_dir / 'x.sock'), MODEL, calibrate_on_start=False,
                            block_lines=50)
    host = Host(firmware.address)
    run(firmware, [host], 0.0, 20.0, step=2.0)  # 10x real time steps of 2 s
    numbers = line_numbers(host.of(protocol.LinesFrame))
    assert np.array_equal(numbers, np.arange(5000))
    assert max(f.lines for f in host.of(protocol.LinesFrame)) == 50
    host.close()
    firmware.close()
    assert not (short_dir / 'x.sock').exists()


def test_a_host_that_does_not_read_loses_lines_not_the_device(short_dir):
    firmware = XrayFirmware(str(short_dir / 'x.sock'), MODEL, max_queue_bytes=200_000,
                            calibrate_on_start=False)
    host = Host(firmware.address)
    for step in range(41):
        firmware.advance(step * 0.25)  # nobody reads: the socket and the queue fill up
    assert firmware.dropped_lines > 0 and firmware.backlog <= 200_000
    run(firmware, [host], 10.0, 11.0)
    numbers = line_numbers(host.of(protocol.LinesFrame))
    assert numbers[-1] == 2749 and len(numbers) + firmware.dropped_lines == 2750
    assert host.decoder.error_count == 0  # whole frames are dropped, never half ones
    host.close()
    firmware.close()


def test_the_simulator_can_insert_air_dark_and_an_open_interlock(short_dir):
    firmware = XrayFirmware(str(short_dir / 'x.sock'), MODEL, calibrate_on_start=False,
                            gap_lines=0, block_lines=10)
    host = Host(firmware.address)
    low = np.full((20, 64), 30000, np.uint16)
    firmware.emit_dark(12)
    firmware.emit_air(30)
    number = firmware.queue_parcel(low, low, low, 'W1', leading=2, trailing=18)
    t = run(firmware, [host], 0.0, 0.4)
    flags = np.concatenate([f.line_flags for f in host.of(protocol.LinesFrame)])
    assert np.all(flags[:12] == 0) and np.all(flags[12:42] == protocol.LINE_XRAY_ON)
    assert np.all(flags[44:60] == protocol.LINE_XRAY_ON | protocol.LINE_OCCUPIED)
    assert not flags[42] & protocol.LINE_OCCUPIED and not flags[60] & protocol.LINE_OCCUPIED
    begin, = host.of(protocol.ParcelBegin)
    end, = host.of(protocol.ParcelEnd)
    assert (begin.parcel, begin.line, begin.waybill, end.line) == (number, 44, 'W1', 59)
    assert host.frames.index(begin) < host.frames.index(end)
    data = np.concatenate([f.low for f in host.of(protocol.LinesFrame)])
    assert np.all(data[42:62] == 30000)  # the parcel's raw lines, as queued
    firmware.set_interlock(False)
    run(firmware, [host], t, t + 0.2)
    fault = host.of(protocol.FaultFrame)[-1]
    assert fault.code == protocol.FaultCode.INTERLOCK_OPEN and fault.severity == 2
    assert not host.of(protocol.StatusFrame)[-1].xray_on
    assert host.of(protocol.LinesFrame)[-1].line_flags[-1] == 0  # X-rays off
    with pytest.raises(ValueError):
        firmware.queue_parcel(low[:, :10], low[:, :10], low[:, :10], 'W2')
    with pytest.raises(ValueError):
        firmware.queue_parcel(low, low, low, 'W2', leading=5, trailing=5)
    host.close()
    firmware.close()


def test_lines_frames_can_be_built_from_three_channels():
    flags = np.ones(5, np.uint8)
    frame = protocol.LinesFrame.from_channels(1, 2, 3, DATA[0], DATA[1], DATA[2], flags)
    assert frame == LINES.__class__(1, 2, 3, DATA, np.ones(5, np.uint8))
    assert frame != LINES and (frame == 'x') is False


def test_a_gated_scanner_reads_lines_only_around_parcels(short_dir):
    device = XrayFirmware(str(short_dir / 'xray_1.sock'), MODEL, serial='SIM-1',
                          calibration_lines=32, gap_lines=20, dark_interval=0.0, gated=True)
    host = Host(device.address)
    try:
        t = run(device, [host], 0.0, 10.0)  # 10 s of empty belt: the calibrations, a margin
        numbers = line_numbers(host.of(protocol.LinesFrame))
        assert np.array_equal(numbers, np.arange(64 + 20))
        rows = np.full((3, 100, MODEL.pixels), 30000, dtype=np.uint16)
        device.queue_parcel(*rows, 'RR100000001GB')
        t = run(device, [host], t, t + 10.0)
        lines = host.of(protocol.LinesFrame)
        numbers = line_numbers(lines)
        assert np.array_equal(numbers, np.arange(64 + 20 + 20 + 100 + 20))  # consecutive
        begin, = host.of(protocol.ParcelBegin)
        assert begin.line == 64 + 20 + 20
        # the ticks keep the time: the parcel's lines are stamped when it came, 10 s in
        first = next(f for f in lines if f.first_line <= begin.line < f.first_line + f.lines)
        assert first.ticks_ms == pytest.approx(10_000, abs=200)
        assert device.dropped_lines == 0 and host.decoder.error_count == 0
    finally:
        host.close()
        device.close()
