"""The RPM serial protocol: CRC, encoding, and a decoder that survives corrupt input."""

import numpy as np
import pytest

from customs_lab.radiation import protocol

COUNTS = protocol.CountsFrame(41, 123456, 0.1, True, (210, 198, 0, 4_294_967_295))
OCCUPANCY = protocol.OccupancyFrame(42, 123500, True, 'CSQU3054383')
STATUS = protocol.StatusFrame(
    43, 124000, 'CL-RPM-4P', 'SN1', 1100.0, 24.5, ('left_lower', 'left_upper')
)


def test_crc_check_value():
    # CRC-16/CCITT-FALSE check value from the CRC catalogue
    assert protocol.crc16_ccitt(b'123456789') == 0x29B1


@pytest.mark.parametrize('frame', [COUNTS, OCCUPANCY, STATUS, protocol.StatusRequest()])
def test_round_trip(frame):
    line = protocol.encode(frame)
    assert line.startswith(b'$') and line.endswith(b'\r\n')
    assert protocol.parse_line(line) == frame


def test_encoded_counts_line_is_as_documented():
    line = protocol.encode(protocol.CountsFrame(1, 2, 0.1, False, (5, 6)))
    body = b'RPMC,1,2,100,0,5,6'
    assert line == b'$' + body + b'*' + f'{protocol.crc16_ccitt(body):04X}'.encode() + b'\r\n'


def test_every_single_bit_flip_is_detected():
    line = protocol.encode(COUNTS)
    for index in range(1, len(line) - 2):
        for bit in range(8):
            corrupted = bytearray(line)
            corrupted[index] ^= 1 << bit
            if bytes(corrupted).strip(b'\r\n') == line.strip(b'\r\n'):
                continue
            with pytest.raises(protocol.ProtocolError):
                parsed = protocol.parse_line(bytes(corrupted))
                # a flip that still parses must not silently change the frame
                if parsed == COUNTS:
                    raise protocol.ProtocolError('content', 'unchanged')


def test_bad_content_is_a_content_error():
    body = b'RPMC,1,2,100,7,5'  # occupancy flag must be 0 or 1
    line = b'$' + body + b'*' + f'{protocol.crc16_ccitt(body):04X}'.encode()
    with pytest.raises(protocol.ProtocolError) as error:
        protocol.parse_line(line)
    assert error.value.kind == 'content'
    body = b'RPMC,1,2,100,1,-5'  # negative counts
    with pytest.raises(protocol.ProtocolError):
        protocol.parse_line(b'$' + body + b'*' + f'{protocol.crc16_ccitt(body):04X}'.encode())


def test_decoder_keeps_good_frames_around_garbage_and_counts_errors():
    good = [protocol.CountsFrame(i, i * 100, 0.1, False, (i, 2 * i)) for i in range(20)]
    stream = bytearray()
    for i, frame in enumerate(good):
        line = bytearray(protocol.encode(frame))
        if i == 5:
            line[8] ^= 0x04  # corrupt: CRC error, frame lost
        stream += line
        if i == 9:
            stream += b'\x00\xffnoise'  # garbage before the next frame
        if i == 14:
            stream += b'$RPMC,trunc'  # a truncated line (cable glitch)
    decoder = protocol.LineDecoder()
    rng = np.random.default_rng(1)
    frames, position = [], 0
    while position < len(stream):  # arbitrary chunking, as a serial port delivers
        size = int(rng.integers(1, 40))
        frames += decoder.feed(bytes(stream[position : position + size]))
        position += size
    # only the corrupted frame is lost: after the truncated line the decoder resynchronises on '$'
    expected = [f for i, f in enumerate(good) if i != 5]
    assert frames == expected
    assert decoder.errors['crc'] == 1
    assert decoder.errors['framing'] >= 2
    assert (
        decoder.error_count
        == decoder.errors['crc']
        + decoder.errors['framing']
        + decoder.errors['content']
        + decoder.errors['overflow']
    )


def test_decoder_discards_endless_garbage_but_recovers():
    decoder = protocol.LineDecoder()
    assert decoder.feed(b'x' * (protocol.MAX_LINE + 10)) == []
    assert decoder.errors['overflow'] == 1
    assert decoder.feed(protocol.encode(OCCUPANCY)) == [OCCUPANCY]


def test_reserved_characters_cannot_be_encoded():
    with pytest.raises(ValueError):
        protocol.encode(protocol.OccupancyFrame(1, 1, True, 'AB,CD'))
    with pytest.raises(ValueError):
        protocol.encode(protocol.OccupancyFrame(1, 1, True, 'AB*CD'))


def test_the_documented_example_lines_are_valid():
    import pathlib

    doc = pathlib.Path(__file__).resolve().parents[1] / 'docs' / 'protocols' / 'rpm_serial.md'
    lines = [line for line in doc.read_text().splitlines() if line.startswith('$RPM')]
    assert len(lines) == 10
    frames = [protocol.parse_line(line.encode()) for line in lines]
    assert [type(f).__name__ for f in frames] == [
        'StatusFrame', 'DetectorStatusFrame', 'CountsFrame', 'OccupancyFrame', 'SpectrumFrame',
        'SetGain', 'StatusFrame', 'CountsFrame', 'StatusFrame', 'CountsFrame']
    assert frames[3].subject_id == 'CSQU3054383' and frames[3].speed == 2.2
    assert sum(frames[4].counts) == 23 and frames[2].windows[0] == (101, 52, 50)
    # version 3: the neutron modules named in the status line, their counts in the counts line
    assert frames[0].neutron_module_ids == ('he3_left', 'he3_right')
    assert frames[2].neutrons == (1, 0) and len(frames[2].counts) == 4
    assert frames[6].window_edges_kev == () and frames[6].neutron_module_ids == ('he3',)
    assert frames[7].neutrons == (3,) and frames[7].counts == (41, 38)
    # version 2 lines (a device without neutron modules) read as before
    assert frames[8].neutron_module_ids == () and frames[8].window_edges_kev[-1] == 3000.0
    assert frames[9].neutrons is None and frames[9].counts == frames[2].counts


SPECTRUM = protocol.SpectrumFrame(
    44, 125000, 'nai_left', 0.987, 1.0, True, tuple(range(1024)) + (4_294_967_295,)
)
V2_FRAMES = [
    protocol.CountsFrame(45, 125100, 0.1, False, (210, 198), ((100, 80, 30), (90, 70, 38))),
    protocol.OccupancyFrame(46, 125200, True, 'CSQU3054383', 2.2),
    protocol.StatusFrame(
        47, 125300, 'CL-RPM-4P', 'SN1', 1100.0, 24.5, ('l', 'r'), (60.0, 250.0, 600.0, 3000.0)
    ),
    SPECTRUM,
    protocol.DetectorStatusFrame(48, 125400, 'nai_left', 850.0, 21.25, 1.0125, 1024, 3000.0),
    protocol.SetGain('nai_left', 0.98765),
]


@pytest.mark.parametrize('frame', V2_FRAMES)
def test_version_2_round_trip(frame):
    assert protocol.parse_line(protocol.encode(frame)) == frame


def test_spectrum_line_is_compact_and_fits_a_line():
    background = np.random.default_rng(3).poisson(np.linspace(5, 0.1, 1024))
    frame = protocol.SpectrumFrame(1, 2, 'nai_left', 1.0, 1.0, False, tuple(background))
    line = protocol.encode(frame)
    assert len(line) < 2500 < protocol.MAX_LINE  # 4 KiB raw: zlib keeps a background small
    decoder = protocol.LineDecoder()
    assert decoder.feed(line[:100]) == [] and decoder.feed(line[100:]) == [frame]


@pytest.mark.parametrize(
    'body',
    [
        b'RPMC,1,2,100,0,5:3:3,6:1:1',  # window counts above the gross count
        b'RPMC,1,2,100,0,5:1:1,6:1',  # channels with different numbers of windows
        b'RPMO,1,2,1,CSQU3054383,-1.0',  # negative speed
        b'RPMO,1,2,1,CSQU3054383,nan',
        b'RPMS,1,2,M,S,1100.0,24.0,a;b,60;50',  # window edges that do not increase
        b'RPMG,1,2,nai,1000,1000,0,Z32,not-base64!',
        b'RPMG,1,2,nai,1000,1000,0,RAW,AAAA',  # unknown encoding
        b'RPMD,1,2,nai,850,21,0,1024,3000',  # zero gain
        b'RPMX,GAIN,nai,5.0',  # gain outside 0.5-2
    ],
)
def test_bad_version_2_content_is_a_content_error(body):
    line = b'$' + body + b'*' + f'{protocol.crc16_ccitt(body):04X}'.encode()
    with pytest.raises(protocol.ProtocolError) as error:
        protocol.parse_line(line)
    assert error.value.kind == 'content'


def test_a_compressed_spectrum_cannot_inflate_without_bound():
    import base64
    import zlib

    bomb = base64.b64encode(zlib.compress(bytes(4 * protocol.MAX_CHANNELS + 64))).decode()
    with pytest.raises(ValueError):
        protocol.decode_counts(bomb)
    with pytest.raises(ValueError):  # truncated stream
        protocol.decode_counts(base64.b64encode(zlib.compress(bytes(400))[:-4]).decode())


# -- version 3: neutron modules -------------------------------------------------------------

V3_FRAMES = [
    protocol.CountsFrame(50, 126000, 0.1, True, (210, 198), ((100, 80, 30), (90, 70, 38)),
                         (3, 0)),
    protocol.CountsFrame(51, 126100, 0.1, False, (7, 8), (), (4_294_967_295,)),
    protocol.StatusFrame(52, 126200, 'CL-RPM-4P', 'SN1', 1100.0, 24.5, ('l', 'r'),
                         (60.0, 600.0, 3000.0), ('he3_left', 'he3_right')),
    protocol.StatusFrame(53, 126300, 'CL-RPM-1N', 'SN2', 1100.0, 24.5, ('l', 'r'), (),
                         ('he3',)),
]


@pytest.mark.parametrize('frame', V3_FRAMES)
def test_version_3_round_trip(frame):
    assert protocol.parse_line(protocol.encode(frame)) == frame


def test_version_2_lines_read_without_neutrons():
    for frame in V2_FRAMES[:3]:
        parsed = protocol.parse_line(protocol.encode(frame))
        assert getattr(parsed, 'neutrons', None) is None
        assert getattr(parsed, 'neutron_module_ids', ()) == ()
    # a v2 counts line is what a device without neutron modules still sends, byte for byte
    assert protocol.encode(V2_FRAMES[0]).startswith(b'$RPMC,45,125100,100,0,210:100:80:30,')
    assert b'N' not in protocol.encode(V2_FRAMES[0])


def test_every_single_bit_flip_of_a_neutron_line_is_detected():
    line = protocol.encode(V3_FRAMES[0])
    for index in range(1, len(line) - 2):
        for bit in range(8):
            corrupted = bytearray(line)
            corrupted[index] ^= 1 << bit
            try:
                parsed = protocol.parse_line(bytes(corrupted))
            except protocol.ProtocolError:
                continue
            # a flip that still parses (the CRC's hex letters in lower case) changes nothing
            assert parsed == V3_FRAMES[0], (index, bit, parsed)


@pytest.mark.parametrize(
    'body',
    [
        b'RPMC,1,2,100,0,5,6,N',  # a neutron field without counts
        b'RPMC,1,2,100,0,5,6,N:',
        b'RPMC,1,2,100,0,5,6,N:3:x',
        b'RPMC,1,2,100,0,5,6,N:3:-1',
        b'RPMC,1,2,100,0,5,6,N:4294967296',  # beyond 32 bits
        b'RPMC,1,2,100,0,5,6,NX:3',  # not the neutron tag
        b'RPMC,1,2,100,0,N:3,5,6',  # the neutron field must be the last one
        b'RPMC,1,2,100,0,N:3',  # neutron counts but no gamma channel
        b'RPMS,1,2,M,S,1100.0,24.0,a;b,,he3;he3',  # module ids repeat
        b'RPMS,1,2,M,S,1100.0,24.0,a;b,,he3;;x',  # an empty module id
        b'RPMS,1,2,M,S,1100.0,24.0,a;b,,',  # a module field without ids
        b'RPMS,1,2,M,S,1100.0,24.0,a;b,,he3,x',  # too many fields
    ],
)
def test_bad_version_3_content_is_a_content_error(body):
    line = b'$' + body + b'*' + f'{protocol.crc16_ccitt(body):04X}'.encode()
    with pytest.raises(protocol.ProtocolError) as error:
        protocol.parse_line(line)
    assert error.value.kind == 'content'


def test_a_corrupt_neutron_line_is_dropped_whole_and_its_neighbours_kept():
    good = [protocol.CountsFrame(i, 100 * i, 0.1, False, (i, i), (), (i % 3, 1)) for i in range(6)]
    bad = b'RPMC,99,1,100,0,5,6,N:1:oops'  # a valid CRC around a bad neutron field
    stream = b''.join(protocol.encode(f) for f in good[:3])
    stream += b'$' + bad + b'*' + f'{protocol.crc16_ccitt(bad):04X}'.encode() + b'\r\n'
    stream += b''.join(protocol.encode(f) for f in good[3:])
    decoder = protocol.LineDecoder()
    assert decoder.feed(stream) == good
    assert decoder.errors['content'] == 1 and decoder.error_count == 1
    assert 'neutron' in decoder.last_error or 'oops' in decoder.last_error


def test_neutron_fields_that_cannot_be_sent_are_refused():
    with pytest.raises(ValueError, match='at least one module'):
        protocol.encode(protocol.CountsFrame(1, 1, 0.1, False, (1,), (), ()))
    for module_id in ('he3:left', 'he3;1', ''):
        with pytest.raises(ValueError, match='neutron module id'):
            protocol.encode(protocol.StatusFrame(1, 1, 'M', 'S', 1.0, 2.0, ('a',), (),
                                                 (module_id,)))
