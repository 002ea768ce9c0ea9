"""Kinematics of a tracked base: track speeds to body twist and back, odometry from encoders.

Core module (no ROS). The model is the instantaneous-centre-of-rotation (ICR) approximation of
Martinez, Mandow, Morales, Pedraza and Garcia-Cerezo, "Approximating Kinematics for Tracked
Mobile Robots", Int. J. Robotics Research 24(10):867-878 (2005): on a given floor the ICRs of
the two treads stay within a small area, so constant ICR positions give a kinematic model that
accounts for the tracks' skid. Body frame per REP-103 (x forward, y left, z up); V_l, V_r are
the track surface speeds (sprocket radius x sprocket angular speed); the left and right tread
ICRs lie at lateral positions y_l > 0 > y_r, the vehicle ICR at longitudinal offset x_v:

    omega = (V_r - V_l) / (y_l - y_r)
    v_x   = (V_r y_l - V_l y_r) / (y_l - y_r)
    v_y   = -x_v omega                      (the skid sideways; 0 when x_v = 0)
    inverse: V_l = v_x - omega y_l,  V_r = v_x - omega y_r

With y_l = -y_r = B / 2 and x_v = 0 this is the differential drive of track separation B. A
symmetric skid is y_l = -y_r = B / (2 chi), chi <= 1 the steering efficiency (0.7-0.76 on
asphalt and smooth concrete for a skid-steer base, Mandow et al. IROS 2007, as summarised
secondary sources give it); longitudinal slip scales the surface speed below the sprocket's,
V = alpha r w with alpha < 1 (0.9-0.95 there). The driver computes odometry with its
configured (nominal or calibrated) ICRs; the simulator moves the robot with the floor's true
ones, so odometry drifts from the truth as a real robot's does.
"""

from dataclasses import dataclass
import math


@dataclass(frozen=True)
class TrackModel:
    """Geometry and ICR model of a tracked base (lengths in m)."""

    separation: float  # B: distance between the track centre lines
    sprocket_radius: float  # r: drive sprocket pitch radius
    ticks_per_rev: int  # encoder counts per sprocket revolution
    steering_efficiency: float = 1.0  # chi: the treads' ICRs at +-B / (2 chi)
    icr_offset: float = 0.0  # x_v: longitudinal offset of the vehicle ICR
    slip: float = 1.0  # alpha: track surface speed / sprocket speed

    def __post_init__(self):
        """Check the values (ValueError naming the bad one)."""
        for name in ('separation', 'sprocket_radius'):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f'{name} must be a positive length, got {value!r}')
        if isinstance(self.ticks_per_rev, bool) or not isinstance(self.ticks_per_rev, int) \
                or self.ticks_per_rev < 1:
            raise ValueError(f'ticks_per_rev must be a positive integer, got '
                             f'{self.ticks_per_rev!r}')
        for name in ('steering_efficiency', 'slip'):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and 0.1 <= value <= 1.0):
                raise ValueError(f'{name} must be in [0.1, 1], got {value!r}')
        if not (isinstance(self.icr_offset, (int, float)) and abs(self.icr_offset) < 1.0):
            raise ValueError(f'icr_offset must be below 1 m, got {self.icr_offset!r}')

    @property
    def icr_left(self) -> float:
        """Return y_l, m."""
        return self.separation / (2.0 * self.steering_efficiency)

    @property
    def icr_right(self) -> float:
        """Return y_r, m."""
        return -self.icr_left

    def twist(self, v_left: float, v_right: float) -> tuple[float, float, float]:
        """Return the body twist (v_x, v_y, omega) of track surface speeds (m/s)."""
        y_l, y_r = self.icr_left, self.icr_right
        omega = (v_right - v_left) / (y_l - y_r)
        v_x = (v_right * y_l - v_left * y_r) / (y_l - y_r)
        return v_x, -self.icr_offset * omega, omega

    def track_speeds(self, v_x: float, omega: float) -> tuple[float, float]:
        """Return the track surface speeds (V_l, V_r) that give (v_x, omega)."""
        return v_x - omega * self.icr_left, v_x - omega * self.icr_right

    def surface_speed(self, sprocket_rate: float) -> float:
        """Return a track's surface speed (m/s) of its sprocket's rate (rad/s), slip included."""
        return self.slip * self.sprocket_radius * sprocket_rate

    def ticks_to_distance(self, ticks: int) -> float:
        """Return the sprocket's travel (m) for encoder ticks (no slip: what the encoder sees)."""
        return 2.0 * math.pi * self.sprocket_radius * ticks / self.ticks_per_rev


@dataclass
class Pose2D:
    """A planar pose: x, y (m), yaw (rad) in the odometry frame."""

    x: float = 0.0
    y: float = 0.0
    yaw: float = 0.0

    def advance(self, v_x: float, v_y: float, omega: float, dt: float):
        """Integrate a constant body twist over dt (exact on the arc)."""
        if dt < 0:
            raise ValueError(f'dt must be >= 0, got {dt!r}')
        dyaw = omega * dt
        if abs(dyaw) < 1e-9:
            dx, dy = v_x * dt, v_y * dt
        else:  # the body's displacement along its arc, in the frame at the start
            s, c = math.sin(dyaw), math.cos(dyaw)
            dx = (v_x * s + v_y * (c - 1.0)) / omega
            dy = (v_x * (1.0 - c) + v_y * s) / omega
        cos_yaw, sin_yaw = math.cos(self.yaw), math.sin(self.yaw)
        self.x += cos_yaw * dx - sin_yaw * dy
        self.y += sin_yaw * dx + cos_yaw * dy
        self.yaw = math.atan2(math.sin(self.yaw + dyaw), math.cos(self.yaw + dyaw))


class EncoderOdometry:
    """Odometry from the two tracks' encoder counts with a configured TrackModel."""

    def __init__(self, model: TrackModel):
        """Start at the origin; the first counts only set the reference."""
        self.model = model
        self.pose = Pose2D()
        self._last = None  # (left ticks, right ticks, time s)
        self.twist = (0.0, 0.0, 0.0)
        self.distance = 0.0  # m travelled by the base's centre (absolute)

    def update(self, left_ticks: int, right_ticks: int, stamp: float) -> tuple[float, ...]:
        """Take cumulative encoder counts at `stamp` (s); return the body twist estimate."""
        if self._last is None:
            self._last = (int(left_ticks), int(right_ticks), float(stamp))
            return self.twist
        left0, right0, t0 = self._last
        dt = float(stamp) - t0
        if dt <= 0:
            raise ValueError(f'encoder counts out of order: {stamp} after {t0}')
        d_left = self.model.slip * self.model.ticks_to_distance(int(left_ticks) - left0)
        d_right = self.model.slip * self.model.ticks_to_distance(int(right_ticks) - right0)
        v_x, v_y, omega = self.model.twist(d_left / dt, d_right / dt)
        self.pose.advance(v_x, v_y, omega, dt)
        self.twist = (v_x, v_y, omega)
        self.distance += math.hypot(v_x, v_y) * dt
        self._last = (int(left_ticks), int(right_ticks), float(stamp))
        return self.twist
