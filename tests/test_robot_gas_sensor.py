"""The gas sensor head: its protocol and the simulated head on a pty.

The protocol both ways and corrupt lines; the head's warm-up, response times and noise, and a
fumigated container's phosphine reaching an alarm level.
"""

import math
import pathlib
import shutil
import tempfile

import pytest
import serial

from customs_lab.common.ascii_lines import wrap
from customs_lab.robot import gas_protocol as protocol
from customs_lab.robot.gas import GasReading, assess
from customs_lab.simulation.gas_firmware import GasFirmware

FRAMES = [
    protocol.MeasurementFrame(3, 4000, 0.42, 12.5, 1830.0, 20.4, 4),
    protocol.IdentFrame(0, 10, 'CL-GAS-4', 'SIM-GAS', '1.0', (30.0, 5.0, 30.0, 15.0)),
    protocol.Query(),
]


@pytest.mark.parametrize('frame', FRAMES, ids=lambda f: type(f).__name__)
def test_every_frame_survives_the_wire(frame):
    assert protocol.parse_line(protocol.encode(frame)) == frame


def test_bad_lines_are_refused_by_kind():
    for body in ('GASM,1,2,-0.1,0,400,20.9,0',  # negative
                 'GASM,1,2,25,0,400,20.9,0',  # above the PH3 cell's range
                 'GASM,1,2,0,0,400,nan,0', 'GASM,1,2,0,0,400,20.9,8', 'GASM,1,2,0,0,400',
                 'GASI,1,2,m,s,f,30,5,30,0', 'GASQ,ALL'):
        with pytest.raises(protocol.ProtocolError) as error:
            protocol.parse_line(wrap(body))
        assert error.value.kind == 'content', body
    line = bytearray(protocol.encode(FRAMES[0]))
    line[6] ^= 0x02
    with pytest.raises(protocol.ProtocolError) as error:
        protocol.parse_line(bytes(line))
    assert error.value.kind == 'crc'
    with pytest.raises(ValueError, match='range'):
        protocol.encode(protocol.MeasurementFrame(1, 2, 30.0, 0.0, 400.0, 20.9, 0))
    assert FRAMES[0].flags_set() == ['calibration_due'] and FRAMES[0].valid


def test_the_simulated_head_warms_up_follows_the_air_and_raises_the_alarm():
    directory = pathlib.Path(tempfile.mkdtemp(prefix='gas'))

    def fumigated(t):  # the door opens at t = 60 s onto 2 ppm of phosphine, 2 % less O2
        inside = t >= 60.0
        return (2.0 if inside else 0.0, 0.0, 3000.0 if inside else 420.0,
                18.9 if inside else 20.9)

    firmware = GasFirmware(directory / 'gas', fumigated, seed=3)
    port = serial.Serial(str(directory / 'gas'), 115200, timeout=0)
    decoder, frames = protocol.LineDecoder(), []
    try:
        for step in range(1, 241):  # 4 minutes, read every second
            firmware.advance(step * 1.0)
            frames += decoder.feed(port.read(65536))
        port.write(protocol.encode(protocol.Query()))
        firmware.advance(242.0)
        frames += decoder.feed(port.read(65536))
    finally:
        port.close()
        firmware.close()
        shutil.rmtree(directory, ignore_errors=True)
    idents = [f for f in frames if isinstance(f, protocol.IdentFrame)]
    measurements = [f for f in frames if isinstance(f, protocol.MeasurementFrame)]
    assert len(idents) == 2 and idents[0].t90 == (30.0, 5.0, 30.0, 15.0)
    assert len(measurements) == pytest.approx(241, abs=2)  # one a second
    assert not measurements[10].valid and measurements[40].valid  # a 30 s warm-up
    clean = [m for m in measurements if 35 <= m.ticks_ms / 1000 < 60]
    assert all(m.ph3_ppm < 0.05 for m in clean)
    assert sum(m.o2_pct for m in clean) / len(clean) == pytest.approx(20.9, abs=0.1)
    # 30 s after the door opens the PH3 cell reads 90 % of the 2 ppm (T90 = 30 s)
    at_t90 = next(m for m in measurements if m.ticks_ms == 90000)
    assert at_t90.ph3_ppm == pytest.approx(1.8, abs=0.1)
    early = next(m for m in measurements if m.ticks_ms == 65000)
    assert early.ph3_ppm < 1.0  # the cell has not caught up yet after 5 s
    final = measurements[-1]
    reading = GasReading(final.ph3_ppm, final.ch3br_ppm, final.co2_ppm, final.o2_pct)
    result = assess(reading)
    assert result.levels['phosphine'] == 'warning' and result.levels['oxygen'] == 'caution'
    assert result.level == 'warning'
    assert all(math.isclose(m.ph3_ppm * 100, round(m.ph3_ppm * 100)) for m in measurements)


def test_the_documented_example_lines_parse():
    doc = pathlib.Path(__file__).resolve().parents[1] / 'docs' / 'protocols' / 'robot_gas.md'
    lines = [line for line in doc.read_text().splitlines() if line.startswith('$GAS')]
    assert [type(protocol.parse_line(line.encode())) for line in lines] == [
        protocol.IdentFrame, protocol.MeasurementFrame, protocol.Query]
