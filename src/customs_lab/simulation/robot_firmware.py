"""The firmware of the inspection robot's track motor controller, on a pseudo-terminal.

It speaks the controller's serial protocol (customs_lab.robot.motor_protocol,
docs/protocols/robot_motor.md) on a pty linked at a stable path (simulation/pty_link.py), so
the robot driver opens it as it would open the real controller's USB-serial port. The
simulator drives its clock (`advance(sim_time)`): the controller answers the host, ramps each
track towards its set-point within its acceleration limit, moves the robot on the floor and
reports encoders (50 Hz) and status (10 Hz).

Physics: the floor's true track model (robot/tracks.py TrackModel: steering efficiency, ICR
offset, slip; the driver does not know them) turns the tracks' surface speeds into the body's
motion, with white noise on each track's speed (`speed_noise`, a share); the encoders count the
sprockets, whose surface speed is the track's divided by the slip, quantised to ticks. The
battery sags with the motors' current (a linear model around the pack's nominal voltage) and
drains with the energy drawn.

Safety, as the protocol specifies: the watchdog stops the tracks when no set-point has come for
`watchdog_ms` (flag 1 until the next one); the e-stop button cuts motor power at once
(`press_estop`), and released it stays latched until the host resets it ($TRKR,ESTOP; refused
while the button is pressed); a bumper contact (`set_bumpers`) stops the tracks until the host
sends a set-point after the contact has cleared. Set-points above the controller's maximum
are clamped and answered REFUSED.

What the world does to it is the simulator's: `press_estop` / `release_estop`, `set_bumpers`;
`pose` is the ground truth (the evaluator's, never the driver's).
"""

import math

import numpy as np

from customs_lab.robot import motor_protocol as protocol
from customs_lab.robot.tracks import Pose2D, TrackModel
from customs_lab.simulation.pty_link import PtyLink

ENCODER_PERIOD = 0.02  # s (50 Hz)
STATUS_PERIOD = 0.1  # s (10 Hz)
STEP = 0.005  # s: the physics' integration step
BATTERY_NOMINAL_V, BATTERY_INTERNAL_OHM, BATTERY_WH = 25.6, 0.05, 960.0  # 24 V LiFePO4 pack
IDLE_W, DRIVE_W_PER_MPS = 40.0, 260.0  # electronics and sensors; traction on a container floor


class MotorFirmware:
    """The simulated controller (module docstring)."""

    def __init__(self, link_path, floor: TrackModel, serial: str = 'SIM-ROBOT',
                 model: str = 'CL-TRK-1', watchdog_ms: int = 250, max_speed: float = 1.2,
                 acceleration: float = 1.0, speed_noise: float = 0.01, seed: int = 0):
        """Open the pty at `link_path`; the robot stands at the origin, power on, e-stop up."""
        if not 10 <= int(watchdog_ms) <= 10000:
            raise ValueError(f'watchdog_ms must be 10-10000, got {watchdog_ms!r}')
        if not (0 < max_speed <= protocol.MAX_SPEED_MMPS / 1000 and acceleration > 0
                and 0 <= speed_noise < 0.5):
            raise ValueError('need 0 < max_speed <= 5 m/s, acceleration > 0, 0 <= noise < 0.5')
        self.floor = floor
        self.serial, self.model = serial, model
        self.watchdog = int(watchdog_ms) / 1000.0
        self.max_speed, self.acceleration = float(max_speed), float(acceleration)
        self.speed_noise = float(speed_noise)
        self.rng = np.random.default_rng(seed)
        self.pose = Pose2D()  # ground truth
        self.setpoint = [0.0, 0.0]  # m/s, left and right
        self.speed = [0.0, 0.0]  # track surface speeds now, m/s
        self.angle = [0.0, 0.0]  # sprocket angles, rad
        self.soc, self.battery_v, self.temperature = 0.95, BATTERY_NOMINAL_V, 25.0
        self.bumpers = 0
        self.estop = 0  # index into protocol.ESTOP_STATES
        self.watchdog_stopped = True  # until the first set-point
        self._bumper_stopped = False
        self._last_command = -math.inf
        self._now = None
        self._next_encoder = self._next_status = 0.0
        self._seq = 0
        self._decoder = protocol.LineDecoder()
        self._link = PtyLink(link_path)
        self.commands = 0

    @property
    def link_path(self):
        """Return the path the driver opens."""
        return self._link.link_path

    @property
    def dropped_lines(self) -> int:
        """Return the lines that did not fit (the host does not read)."""
        return self._link.dropped

    def _ticks(self) -> int:
        return int(round(self._now * 1000.0)) % 2**32

    def _send(self, frame):
        self._link.write(protocol.encode(frame))

    def _next_seq(self) -> int:
        seq, self._seq = self._seq, (self._seq + 1) % 2**32
        return seq

    def write_raw(self, data: bytes):
        """Write bytes to the line as they are (tests: corrupt frames, garbage)."""
        self._link.write(data)

    # -- what the world does ------------------------------------------------------------

    def press_estop(self):
        """Press the e-stop button: motor power is cut at once."""
        self.estop = 1
        self.setpoint, self.speed = [0.0, 0.0], [0.0, 0.0]

    def release_estop(self):
        """Pull the button up: the stop stays latched until the host resets it."""
        if self.estop == 1:
            self.estop = 2

    def set_bumpers(self, mask: int):
        """Set the bumper contacts (protocol.BUMPER_BITS); a new contact stops the tracks."""
        mask = int(mask)
        if mask & ~self.bumpers:
            self._bumper_stopped = True
            self.setpoint, self.speed = [0.0, 0.0], [0.0, 0.0]
        self.bumpers = mask

    # -- the clock ----------------------------------------------------------------------

    def advance(self, sim_time: float):
        """Answer the host, move, and send what is due by `sim_time` (s)."""
        if self._now is None:
            self._now = float(sim_time)
            self._next_encoder = self._next_status = self._now
            self.send_ident()
        self._poll()
        while self._now < sim_time - 1e-12:
            dt = min(STEP, sim_time - self._now)
            self._step(dt)
            self._now += dt
            if self._now >= self._next_encoder - 1e-9:
                self._send_encoders()
                self._next_encoder += ENCODER_PERIOD
            if self._now >= self._next_status - 1e-9:
                self.send_status()
                self._next_status += STATUS_PERIOD

    def _step(self, dt: float):
        if self._now - self._last_command > self.watchdog:
            self.watchdog_stopped = True
        powered = self.estop == 0
        target = [0.0, 0.0] if (self.watchdog_stopped or self._bumper_stopped or not powered) \
            else self.setpoint
        for side in (0, 1):
            if not powered:
                self.speed[side] = 0.0
                continue
            change = target[side] - self.speed[side]
            limit = self.acceleration * dt
            self.speed[side] += max(-limit, min(limit, change))
        noisy = [v * (1.0 + self.speed_noise * self.rng.standard_normal()) for v in self.speed]
        self.pose.advance(*self.floor.twist(*noisy), dt)
        for side in (0, 1):  # the sprocket turns faster than the track moves (slip)
            self.angle[side] += noisy[side] / (self.floor.slip * self.floor.sprocket_radius) * dt
        power = IDLE_W + DRIVE_W_PER_MPS * (abs(noisy[0]) + abs(noisy[1]))
        self.soc = max(0.0, self.soc - power * dt / 3600.0 / BATTERY_WH)
        current = power / BATTERY_NOMINAL_V
        self.battery_v = BATTERY_NOMINAL_V * (0.92 + 0.1 * self.soc) - current * \
            BATTERY_INTERNAL_OHM

    def _poll(self):
        for frame in self._decoder.feed(self._link.read()):
            self.commands += 1
            if isinstance(frame, protocol.SpeedCommand):
                self._on_speed(frame)
            elif isinstance(frame, protocol.ResetEstop):
                ok = self.estop == 2 or self.estop == 0
                if ok:
                    self.estop = 0
                self._send(protocol.AckFrame(
                    self._next_seq(), self._ticks(), 'TRKR', ok,
                    '' if ok else 'e-stop button still pressed'))
            elif isinstance(frame, protocol.Query):
                if frame.what == 'IDENT':
                    self.send_ident()
                else:
                    self.send_status()

    def _on_speed(self, frame: protocol.SpeedCommand):
        self._last_command = self._now
        self.watchdog_stopped = False
        if not self.bumpers:
            self._bumper_stopped = False
        limit = self.max_speed
        wanted = [frame.left_mmps / 1000.0, frame.right_mmps / 1000.0]
        clamped = [max(-limit, min(limit, v)) for v in wanted]
        if self.estop:
            self._send(protocol.AckFrame(self._next_seq(), self._ticks(), 'TRKV', False,
                                         f'e-stop {protocol.ESTOP_STATES[self.estop]}'))
            return
        self.setpoint = clamped
        if clamped != wanted:
            self._send(protocol.AckFrame(self._next_seq(), self._ticks(), 'TRKV', False,
                                         f'clamped to {limit:g} m/s'))

    # -- lines ----------------------------------------------------------------------------

    def _send_encoders(self):
        ticks = [int(round(a / (2.0 * math.pi) * self.floor.ticks_per_rev)) for a in self.angle]
        self._send(protocol.EncoderFrame(self._next_seq(), self._ticks(), ticks[0] % 2**32,
                                         ticks[1] % 2**32))

    def send_status(self):
        """Send a status line now."""
        flags = protocol.FLAG_BITS['watchdog'] if self.watchdog_stopped else 0
        self._send(protocol.StatusFrame(
            self._next_seq(), self._ticks(), round(self.battery_v, 2), round(self.soc, 3),
            self.bumpers, self.estop, flags, self.temperature))

    def send_ident(self):
        """Send the identity line."""
        self._send(protocol.IdentFrame(
            self._next_seq(), self._ticks(), self.model, self.serial, 'sim-1.0',
            self.floor.ticks_per_rev, int(round(self.watchdog * 1000)),
            int(round(self.max_speed * 1000))))

    def close(self):
        """Remove the link and close the pty."""
        self._link.close()
