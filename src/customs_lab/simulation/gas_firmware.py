"""The firmware of the robot's gas sensor head, on a pseudo-terminal.

It speaks the head's protocol (customs_lab.robot.gas_protocol, docs/protocols/robot_gas.md)
on a pty (simulation/pty_link.py). The simulator gives it the true air at the inlet
(`air(t)` -> phosphine, methyl bromide, CO2 ppm, O2 %: the container's gas field at the robot's
position); each sensor follows it as a first-order system with its 90 % response time (T90 =
2.3 tau), adds its noise and rounds to its resolution:

| sensor | principle | T90 | noise (1 sigma) | resolution |
|---|---|---|---|---|
| PH3 | electrochemical cell | 30 s | 0.01 ppm | 0.01 ppm |
| CH3Br | photoionisation (10.6 eV lamp) | 5 s | 0.1 ppm | 0.1 ppm |
| CO2 | NDIR | 30 s | 20 ppm | 1 ppm |
| O2 | electrochemical (galvanic) cell | 15 s | 0.05 % | 0.1 % |

Typical figures of such sensors (assumptions: no datasheet was at hand). The head warms up
for `warm_up` s after power-on (flag 1, readings not valid) and measures once a second.
"""

import math

import numpy as np

from customs_lab.robot import gas_protocol as protocol
from customs_lab.simulation.pty_link import PtyLink

SENSORS = (  # field, T90 s, noise, resolution
    ('ph3_ppm', 30.0, 0.01, 0.01),
    ('ch3br_ppm', 5.0, 0.1, 0.1),
    ('co2_ppm', 30.0, 20.0, 1.0),
    ('o2_pct', 15.0, 0.05, 0.1),
)
FRESH_AIR = (0.0, 0.0, 420.0, 20.9)
PERIOD = 1.0  # s between measurements


class GasFirmware:
    """The simulated head (module docstring)."""

    def __init__(self, link_path, air=None, serial: str = 'SIM-GAS', model: str = 'CL-GAS-4',
                 warm_up: float = 30.0, seed: int = 0):
        """Open the pty at `link_path`; `air(t)` gives the true air (default: fresh air)."""
        self.air = air or (lambda t: FRESH_AIR)
        self.serial, self.model, self.warm_up = serial, model, float(warm_up)
        self.rng = np.random.default_rng(seed)
        self.state = None  # the sensors' lagged values
        self.fault = False  # set by a test or the simulator: flag 2
        self._start = self._now = self._next = None
        self._seq = 0
        self._decoder = protocol.LineDecoder()
        self._link = PtyLink(link_path)

    def _send(self, frame):
        self._link.write(protocol.encode(frame))

    def _next_seq(self) -> int:
        seq, self._seq = self._seq, (self._seq + 1) % 2**32
        return seq

    def _ticks(self) -> int:
        return int(round(self._now * 1000.0)) % 2**32

    def send_ident(self):
        """Send the identity line."""
        self._send(protocol.IdentFrame(self._next_seq(), self._ticks(), self.model, self.serial,
                                       'sim-1.0', tuple(t90 for _, t90, _, _ in SENSORS)))

    def advance(self, sim_time: float):
        """Answer the host; follow the air; send the measurements due by `sim_time` (s)."""
        if self._now is None:
            self._start = self._now = self._next = float(sim_time)
            self.state = np.array(self.air(sim_time), dtype=float)
            self.send_ident()
        for frame in self._decoder.feed(self._link.read()):
            if isinstance(frame, protocol.Query):
                self.send_ident()
        while self._now < sim_time - 1e-12:
            dt = min(0.1, sim_time - self._now)
            truth = np.array(self.air(self._now + dt), dtype=float)
            tau = np.array([t90 / math.log(10.0) for _, t90, _, _ in SENSORS])
            self.state = truth + (self.state - truth) * np.exp(-dt / tau)
            self._now += dt
            if self._now >= self._next - 1e-9:
                self._measure()
                self._next += PERIOD

    def _measure(self):
        values = []
        for (name, _, noise, resolution), value in zip(SENSORS, self.state, strict=True):
            noisy = value + noise * self.rng.standard_normal()
            clipped = min(max(noisy, 0.0), protocol.RANGES[name])
            values.append(round(round(clipped / resolution) * resolution, 6))
        flags = (protocol.FLAG_BITS['warming_up'] if self._now - self._start < self.warm_up
                 else 0) | (protocol.FLAG_BITS['sensor_fault'] if self.fault else 0)
        self._send(protocol.MeasurementFrame(self._next_seq(), self._ticks(), *values, flags))

    def close(self):
        """Remove the link and close the pty."""
        self._link.close()
