"""The simulated track motor controller on its pty, through pyserial as the driver will open it.

Motion from set-points with the acceleration limit, encoders that odometry can follow (with the
floor's model) and drift from (with the nominal one), the watchdog, the e-stop latch, bumper
stops, clamped set-points, and a corrupt command line that loses nothing else.
"""

import math
import pathlib
import shutil
import tempfile

import pytest
import serial

from customs_lab.robot import motor_protocol as protocol
from customs_lab.robot.tracks import EncoderOdometry, TrackModel
from customs_lab.simulation.robot_firmware import MotorFirmware

FLOOR = TrackModel(0.44, 0.08, 4096, steering_efficiency=0.72, icr_offset=0.005, slip=0.94)
NOMINAL = TrackModel(0.44, 0.08, 4096)


class Host:
    """The driver's side: pyserial on the linked path, the protocol's decoder."""

    def __init__(self, path):
        self.port = serial.Serial(str(path), 115200, timeout=0)
        self.decoder = protocol.LineDecoder()
        self.frames = []

    def send(self, frame):
        self.port.write(protocol.encode(frame))
        self.port.flush()

    def read(self):
        new = self.decoder.feed(self.port.read(65536))
        self.frames += new
        return new

    def of(self, kind):
        return [f for f in self.frames if isinstance(f, kind)]


@pytest.fixture
def rig():
    directory = pathlib.Path(tempfile.mkdtemp(prefix='trk'))
    firmware = MotorFirmware(directory / 'robot', FLOOR, speed_noise=0.0, seed=1)
    host = Host(directory / 'robot')
    clock = {'t': 0.0}

    def run(seconds, command=None, every=0.1):
        """Advance the clock, sending `command` (mm/s pair) every `every` s if given."""
        end = clock['t'] + seconds
        while clock['t'] < end - 1e-9:
            if command is not None:
                host.send(protocol.SpeedCommand(*command))
            clock['t'] = min(end, clock['t'] + every)
            firmware.advance(clock['t'])
            host.read()
    yield firmware, host, run
    host.port.close()
    firmware.close()
    shutil.rmtree(directory, ignore_errors=True)


def test_it_introduces_itself_and_drives_within_its_acceleration(rig):
    firmware, host, run = rig
    run(0.1)  # its clock starts at the first advance (0.1 s)
    ident = host.of(protocol.IdentFrame)[0]
    assert (ident.model, ident.ticks_per_rev, ident.watchdog_ms) == ('CL-TRK-1', 4096, 250)
    run(0.3, (500, 500))
    assert firmware.speed[0] == pytest.approx(0.3, abs=0.01)  # 1 m/s^2 for 0.3 s
    run(2.0, (500, 500))
    assert firmware.speed == pytest.approx([0.5, 0.5])
    assert firmware.pose.x == pytest.approx(0.5 * 2.3 - 0.125, abs=0.02)
    encoders = host.of(protocol.EncoderFrame)
    assert len(encoders) == pytest.approx(2.3 / 0.02, abs=2)  # 50 a second
    assert len(host.of(protocol.StatusFrame)) == pytest.approx(2.3 / 0.1, abs=2)


def test_odometry_follows_the_encoders_and_drifts_without_the_floor_model(rig):
    firmware, host, run = rig
    run(3.0, (400, 400))
    run(2.0, (-200, 200))  # turn left on the spot
    true, plain = EncoderOdometry(FLOOR), EncoderOdometry(NOMINAL)
    for frame in host.of(protocol.EncoderFrame):
        for odometry in (true, plain):
            odometry.update(protocol.counts_delta(0, frame.left),
                            protocol.counts_delta(0, frame.right), frame.ticks_ms / 1000.0)
    assert true.pose.x == pytest.approx(firmware.pose.x, abs=0.02)
    assert true.pose.yaw == pytest.approx(firmware.pose.yaw, abs=0.02)
    assert plain.pose.yaw > firmware.pose.yaw * 1.3 > 0  # nominal odometry over-turns


def test_the_watchdog_stops_a_robot_whose_commands_stop(rig):
    firmware, host, run = rig
    run(1.0, (500, 500))  # the last set-point goes at 0.9 s
    run(0.1)  # 200 ms later, within the 250 ms watchdog: still driving
    assert firmware.speed[0] > 0.3 and not firmware.watchdog_stopped
    run(0.8)
    assert firmware.speed == [0.0, 0.0] and firmware.watchdog_stopped
    assert host.of(protocol.StatusFrame)[-1].flags_set() == ['watchdog']
    run(0.5, (500, 500))  # the next set-point clears it
    assert not firmware.watchdog_stopped and firmware.speed[0] > 0


def test_the_estop_cuts_power_and_stays_latched_until_reset_with_the_button_up(rig):
    firmware, host, run = rig
    run(1.0, (500, 500))
    firmware.press_estop()
    run(0.2, (500, 500))
    assert firmware.speed == [0.0, 0.0]
    assert protocol.ESTOP_STATES[host.of(protocol.StatusFrame)[-1].estop] == 'pressed'
    refused = [a for a in host.of(protocol.AckFrame) if a.command == 'TRKV' and not a.ok]
    assert refused and 'e-stop pressed' in refused[-1].text
    host.send(protocol.ResetEstop())
    run(0.1)
    assert not host.of(protocol.AckFrame)[-1].ok and firmware.estop == 1
    firmware.release_estop()
    run(0.5, (500, 500))
    assert firmware.estop == 2 and firmware.speed == [0.0, 0.0]  # latched: still no power
    host.send(protocol.ResetEstop())
    run(0.1)
    assert host.of(protocol.AckFrame)[-1].ok and firmware.estop == 0
    run(0.5, (500, 500))
    assert firmware.speed[0] > 0.3


def test_a_bumper_contact_stops_until_a_command_after_it_clears(rig):
    firmware, host, run = rig
    run(1.0, (400, 400))
    firmware.set_bumpers(protocol.BUMPER_BITS['front'])
    run(0.3, (400, 400))
    assert firmware.speed == [0.0, 0.0]
    assert host.of(protocol.StatusFrame)[-1].bumpers_pressed() == ['front']
    firmware.set_bumpers(0)
    run(0.5, (-300, -300))  # backing off after the contact cleared
    assert firmware.speed[0] < -0.2


def test_set_points_beyond_the_limit_are_clamped_and_a_corrupt_line_is_ignored(rig):
    firmware, host, run = rig
    firmware.advance(0.0)
    host.port.write(b'$TRKV,100,100*0000\r\n\x00garbage\r\n')
    run(2.0, (3000, 3000))
    assert firmware.speed == pytest.approx([1.2, 1.2])
    assert any(not a.ok and 'clamped' in a.text for a in host.of(protocol.AckFrame))
    assert firmware._decoder.errors['crc'] == 1  # noqa: SLF001
    assert math.isfinite(firmware.battery_v) and 20.0 < firmware.battery_v < 27.0
