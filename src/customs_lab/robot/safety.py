"""The robot's own safety rules: what a velocity command may do here and now.

Core module (numpy, no ROS). Whatever the source of a command (the officer's keyboard, the
autonomous survey), the robot checks it against what it knows, before the motor controller
sees it (the controller's own watchdog, e-stop and bumper stops are the last line):

- e-stop: engaged (pressed or latched), nothing moves;
- bumpers: a bumper in contact blocks motion towards it (front: forward, rear: backward);
  turning in place and backing away stay allowed, so the robot can free itself;
- obstacles: the nearest lidar return inside the corridor the robot sweeps (its width plus a
  margin) ahead of it (or behind it when reversing) closer than the stopping distance
  (`stop_distance` plus what it needs to brake from its speed at `max_deceleration`) blocks
  that direction; nearer than `slow_distance` it is slowed in proportion;
- geofence: a polygon (the container's walls less a margin, the inspection bay of the site
  map) the robot's footprint circle must stay inside: a command whose predicted pose after
  `lookahead` s would put the footprint across it is refused, unless it brings the robot
  back in (turning in place is always allowed).

`Gate.filter(command, state)` returns the command allowed and the reasons for any change
(for /diagnostics and the officer's console).
"""

from dataclasses import dataclass, field
import math

import numpy as np


@dataclass(frozen=True)
class SafetyConfig:
    """Distances in m, speeds in m/s, decelerations in m/s^2, times in s."""

    robot_radius: float = 0.5  # circle around the footprint (0.84 x 0.56 m base)
    half_width: float = 0.3  # of the swept corridor (base width / 2 + margin)
    stop_distance: float = 0.25  # clearance kept to an obstacle at standstill
    slow_distance: float = 1.0  # below this (plus braking), speed is reduced in proportion
    max_deceleration: float = 0.5
    lookahead: float = 0.5  # for the geofence prediction

    def __post_init__(self):
        """Check the values (ValueError)."""
        for name in ('robot_radius', 'half_width', 'stop_distance', 'slow_distance',
                     'max_deceleration', 'lookahead'):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f'{name} must be a positive number, got {value!r}')
        if self.slow_distance <= self.stop_distance:
            raise ValueError('slow_distance must exceed stop_distance')


@dataclass
class RobotState:
    """What the gate knows: pose (x, y, yaw in the fence's frame), e-stop, bumpers, scan."""

    x: float = 0.0
    y: float = 0.0
    yaw: float = 0.0
    estop: bool = False
    bumpers: tuple = ()  # names in contact: 'front', 'rear', 'left', 'right'
    points: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))  # lidar, base_link xy


def inside(polygon: np.ndarray, x: float, y: float) -> bool:
    """Return whether (x, y) is inside a simple polygon (even-odd rule)."""
    xs, ys = polygon[:, 0], polygon[:, 1]
    x2, y2 = np.roll(xs, -1), np.roll(ys, -1)
    crosses = (ys > y) != (y2 > y)
    with np.errstate(divide='ignore', invalid='ignore'):
        at = xs + (y - ys) * (x2 - xs) / (y2 - ys)
    return bool(np.count_nonzero(crosses & (x < at)) % 2)


def edge_distance(polygon: np.ndarray, x: float, y: float) -> float:
    """Return the distance from (x, y) to the polygon's nearest edge."""
    a = polygon
    b = np.roll(polygon, -1, axis=0)
    ab = b - a
    t = np.clip(((x - a[:, 0]) * ab[:, 0] + (y - a[:, 1]) * ab[:, 1])
                / np.maximum((ab ** 2).sum(axis=1), 1e-12), 0.0, 1.0)
    nearest = a + t[:, None] * ab
    return float(np.min(np.hypot(nearest[:, 0] - x, nearest[:, 1] - y)))


class Gate:
    """Filter velocity commands by the safety rules (module docstring)."""

    def __init__(self, config: SafetyConfig | None = None, fence=None):
        """Keep the configuration and the geofence polygon ((n, 2), n >= 3; None: none)."""
        self.config = config or SafetyConfig()
        self.fence = None
        if fence is not None:
            polygon = np.asarray(fence, dtype=float)
            if polygon.ndim != 2 or polygon.shape[1] != 2 or len(polygon) < 3 or not np.all(
                    np.isfinite(polygon)):
                raise ValueError('the geofence must be 3 or more finite (x, y) points')
            self.fence = polygon

    def margin(self, x: float, y: float) -> float:
        """Return how far the footprint at (x, y) is inside the fence (< 0: across it)."""
        distance = edge_distance(self.fence, x, y)
        return (distance if inside(self.fence, x, y) else -distance) - self.config.robot_radius

    def clearance(self, points: np.ndarray, direction: float) -> float:
        """Return the distance to the nearest return in the corridor ahead (+1) or behind (-1)."""
        points = np.asarray(points, dtype=float).reshape(-1, 2)
        if not len(points):
            return math.inf
        along = points[:, 0] * direction
        front = self.config.robot_radius
        corridor = (along > 0) & (np.abs(points[:, 1]) <= self.config.half_width)
        if not corridor.any():
            return math.inf
        return float(max(np.min(along[corridor]) - front, 0.0))

    def filter(self, v: float, omega: float, state: RobotState) -> tuple[float, float, list]:
        """Return (v, omega) allowed for the command in `state`, and the reasons for changes."""
        if not (math.isfinite(v) and math.isfinite(omega)):
            return 0.0, 0.0, ['command not finite: stop']
        c, reasons = self.config, []
        if state.estop:
            return 0.0, 0.0, ['e-stop engaged']
        if v > 0 and 'front' in state.bumpers or v < 0 and 'rear' in state.bumpers:
            reasons.append(f'bumper {"front" if v > 0 else "rear"} in contact: no motion '
                           'towards it')
            v = 0.0
        if v != 0.0:
            direction = math.copysign(1.0, v)
            free = self.clearance(state.points, direction)
            braking = v * v / (2.0 * c.max_deceleration)
            if free <= c.stop_distance + braking:
                reasons.append(f'obstacle {free:.2f} m {"ahead" if v > 0 else "behind"}: stop')
                v = 0.0
            elif free < c.slow_distance + braking:
                scale = (free - c.stop_distance) / (c.slow_distance - c.stop_distance)
                allowed = max(0.0, min(abs(v), scale * abs(v)))
                if allowed < abs(v):
                    reasons.append(f'obstacle {free:.2f} m away: slowed to {allowed:.2f} m/s')
                v = direction * allowed
        if self.fence is not None and v != 0.0:
            yaw = state.yaw + omega * c.lookahead / 2.0
            x = state.x + v * c.lookahead * math.cos(yaw)
            y = state.y + v * c.lookahead * math.sin(yaw)
            ahead, now = self.margin(x, y), self.margin(state.x, state.y)
            if ahead < 0.0 and ahead <= now:  # leaving, or going further out: refused
                reasons.append(f'geofence: {max(now, 0.0):.2f} m to the fence, the command '
                               'would cross it')
                v = 0.0
        return v, omega, reasons
