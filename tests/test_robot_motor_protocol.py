"""The track motor controller's serial protocol: every frame both ways, corruption, limits."""

import pytest

from customs_lab.common.ascii_lines import crc16_ccitt, wrap
from customs_lab.robot import motor_protocol as protocol
from customs_lab.robot.motor_protocol import (
    AckFrame,
    EncoderFrame,
    IdentFrame,
    LineDecoder,
    ProtocolError,
    Query,
    ResetEstop,
    SpeedCommand,
    StatusFrame,
    counts_delta,
    encode,
    parse_line,
)

FRAMES = [
    EncoderFrame(7, 123456, 2**32 - 5, 42),
    StatusFrame(8, 123460, 25.31, 0.874, 0b0101, 2, 0b001, 41.5),
    IdentFrame(0, 10, 'CL-TRK-1', 'SIM-ROBOT_1', '1.0', 4096, 250, 1200),
    AckFrame(9, 123470, 'TRKR', False, 'e-stop button still pressed'),
    SpeedCommand(-350, 420),
    ResetEstop(),
    Query('IDENT'),
    Query('STATUS'),
]


@pytest.mark.parametrize('frame', FRAMES, ids=lambda f: type(f).__name__)
def test_every_frame_survives_the_wire(frame):
    line = encode(frame)
    assert line.startswith(b'$TRK') and line.endswith(b'\r\n')
    assert parse_line(line) == frame
    body = line[1:line.index(b'*')]
    assert line[-6:-2] == f'{crc16_ccitt(body):04X}'.encode()


def test_status_names_its_bits():
    status = FRAMES[1]
    assert status.bumpers_pressed() == ['front', 'left']
    assert status.flags_set() == ['watchdog']
    assert protocol.ESTOP_STATES[status.estop] == 'latched'


def test_a_corrupt_byte_or_a_bad_value_is_refused_by_kind():
    line = bytearray(encode(FRAMES[0]))
    line[8] ^= 0x01
    with pytest.raises(ProtocolError) as error:
        parse_line(bytes(line))
    assert error.value.kind == 'crc'
    with pytest.raises(ProtocolError) as error:
        parse_line(b'TRKE,1,2,3,4*0000\r\n')
    assert error.value.kind == 'framing'
    for body in ('TRKS,1,2,24.0,1.5,0,0,0,30.0',  # state of charge above 1
                 'TRKS,1,2,nan,0.5,0,0,0,30.0',  # battery not a number
                 'TRKS,1,2,24.0,0.5,16,0,0,30.0',  # unknown bumper bit
                 'TRKS,1,2,24.0,0.5,0,3,0,30.0',  # unknown e-stop state
                 'TRKE,1,2,3',  # a count missing
                 'TRKE,1,2,3,4294967296',  # beyond 32 bits
                 'TRKV,6000,0',  # beyond the protocol's speed range
                 'TRKV,1.5,0',  # not an integer
                 'TRKA,1,2,TRKR,MAYBE,',  # neither OK nor REFUSED
                 'TRKQ,EVERYTHING', 'TRKX,1'):
        with pytest.raises(ProtocolError) as error:
            parse_line(wrap(body))
        assert error.value.kind == 'content', body


def test_commands_that_cannot_be_sent_are_refused_before_the_wire():
    with pytest.raises(ValueError, match='speed'):
        encode(SpeedCommand(0, 6000))
    with pytest.raises(ValueError, match='speed'):
        encode(SpeedCommand(0.5, 0))
    with pytest.raises(ValueError, match='IDENT or STATUS'):
        encode(Query('ALL'))
    with pytest.raises(ValueError, match='must not contain'):
        encode(AckFrame(1, 2, 'TRKV', True, 'a,b'))


def test_the_decoder_keeps_good_lines_around_garbage_and_split_reads():
    stream = b''.join(encode(f) for f in FRAMES[:4])
    corrupt = bytearray(encode(FRAMES[0]))
    corrupt[10] ^= 0x04
    noisy = b'\x00\xffnoise' + stream[:30] + b'\r\n' + bytes(corrupt) + stream
    decoder = LineDecoder()
    frames = []
    for start in range(0, len(noisy), 7):  # a serial port returns whatever has arrived
        frames += decoder.feed(noisy[start:start + 7])
    assert frames == FRAMES[:4]
    assert decoder.errors['crc'] == 1 and decoder.error_count >= 2 and decoder.last_error


def test_counter_wrap_is_followed_both_ways():
    assert counts_delta(2**32 - 5, 42) == 47
    assert counts_delta(42, 2**32 - 5) == -47
    assert counts_delta(1000, 1000) == 0


def test_the_documented_example_lines_parse():
    import pathlib

    doc = pathlib.Path(__file__).resolve().parents[1] / 'docs' / 'protocols' / 'robot_motor.md'
    lines = [line for line in doc.read_text().splitlines() if line.startswith('$TRK')]
    assert len(lines) == 4
    frames = [parse_line(line.encode()) for line in lines]
    assert frames[2].bumpers_pressed() == ['front', 'left'] and frames[2].flags_set() == [
        'watchdog']
