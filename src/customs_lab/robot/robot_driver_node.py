"""Inspection robot driver: the track motor controller over pyserial, odometry, TF, description.

A lifecycle node (common/lifecycle_driver.py: serial I/O on its own thread). It speaks the
controller's protocol (robot/motor_protocol.py, docs/protocols/robot_motor.md) and publishes:

- `odom` (nav_msgs/Odometry, odom -> base_link) and the same transform on /tf, from the encoder
  counts through the configured track model (robot/tracks.py: track separation, sprocket
  radius, steering efficiency and slip as calibrated for the floor);
- `joint_states` (the sprockets' angles from the encoders, the mast lift's position);
- `robot_description` (std_msgs/String, transient local) and the URDF's fixed joints on
  /tf_static, the moving joints' transforms on /tf: what robot_state_publisher would publish
  (robot/description.py; there is no robot_state_publisher wheel);
- /diagnostics: the link, the battery, the e-stop, bumpers, the watchdog.

It drives with `cmd_vel` (geometry_msgs/Twist: the command multiplexer's output), within the
robot's own limits: speed (`max_speed`, `max_angular_speed`) and acceleration
(`max_acceleration`, `max_angular_acceleration`), sending track set-points `command_rate`
times a second (which feeds the controller's watchdog); a `cmd_vel` older than `cmd_timeout`
is a stop (the dead-man: a silent teleop stops the robot). `reset_estop` (std_srvs/Trigger)
asks the controller to reset a latched e-stop, which it refuses while the button is pressed
(the call waits up to 1 s for the answer, holding this node's executor: the robot is stopped
then anyway).

Lifecycle: configure (parameters, URDF, publishers), activate (open the port, read), deactivate,
cleanup; with `autostart` (default) it configures and activates itself.
"""

import math
import threading
import time

from geometry_msgs.msg import Quaternion, TransformStamped, Twist
from nav_msgs.msg import Odometry
from rclpy.lifecycle import TransitionCallbackReturn
from sensor_msgs.msg import JointState
import serial
from std_msgs.msg import Header, String
from std_srvs.srv import Trigger
from tf2_msgs.msg import TFMessage

from customs_lab.common.data_dir import serial_device, share_dir
from customs_lab.common.lifecycle_driver import ThreadedDriver, autostart, open_serial
from customs_lab.common.node_support import LATCHED, Diagnostics, declare, reliable, run_node
from customs_lab.robot import motor_protocol as protocol
from customs_lab.robot.description import RobotDescription, quaternion_from_rpy
from customs_lab.robot.tracks import EncoderOdometry, TrackModel

LOW_BATTERY_SOC = 0.2  # below: WARN
# odometry covariance per metre travelled / radian turned (slip on plywood), diagonal terms
POSITION_VARIANCE_PER_M, YAW_VARIANCE_PER_RAD = 0.02**2, 0.05**2


def transform_msg(stamp, parent: str, child: str, xyz, q) -> TransformStamped:
    """Return a TransformStamped of (x, y, z) and a quaternion (x, y, z, w)."""
    msg = TransformStamped()
    msg.header.stamp, msg.header.frame_id, msg.child_frame_id = stamp, parent, child
    msg.transform.translation.x, msg.transform.translation.y, msg.transform.translation.z = (
        float(v) for v in xyz)
    msg.transform.rotation = Quaternion(x=q[0], y=q[1], z=q[2], w=q[3])
    return msg


def ramp(current: float, target: float, step: float) -> float:
    """Return `current` moved towards `target` by at most `step`."""
    return current + max(-step, min(step, target - current))


class RobotDriver(ThreadedDriver):
    """Drive the tracks, publish odometry, joint states, TF and the description."""

    thread_name = 'robot_serial'

    def __init__(self, **kwargs):
        super().__init__('robot_driver', **kwargs)
        declare(self, 'port', 'robot', 'Serial device: an absolute path or a name under '
                '<data_dir>/dev/')
        declare(self, 'baudrate', 115200, 'Serial speed, bit/s', minimum=1200, maximum=4_000_000)
        declare(self, 'data_dir', '', 'Data directory for relative ports (empty: default)')
        declare(self, 'urdf', '', 'Robot description file ("": the shipped '
                'urdf/inspection_robot.urdf)')
        declare(self, 'odom_frame', 'odom', 'Odometry frame')
        declare(self, 'base_frame', 'base_link', 'Robot base frame (the URDF root)')
        for name, default, text, low, high in (
                ('track_separation', 0.44, 'Distance between the tracks, m', 0.05, 5.0),
                ('sprocket_radius', 0.08, 'Drive sprocket pitch radius, m', 0.005, 1.0),
                ('steering_efficiency', 1.0, 'Calibrated ICR factor of the floor (1: none)', 0.1,
                 1.0),
                ('slip', 1.0, 'Calibrated track speed / sprocket speed (1: none)', 0.1, 1.0),
                ('max_speed', 0.6, 'Speed limit, m/s', 0.01, 5.0),
                ('max_angular_speed', 1.0, 'Turn rate limit, rad/s', 0.01, 10.0),
                ('max_acceleration', 0.5, 'Acceleration limit, m/s^2', 0.01, 20.0),
                ('max_angular_acceleration', 1.5, 'Angular acceleration limit, rad/s^2', 0.01,
                 50.0),
                ('cmd_timeout', 0.5, 'Age of cmd_vel (s) beyond which it is a stop (dead-man)',
                 0.05, 10.0),
                ('command_rate', 20.0, 'Track set-points sent per second', 2.0, 200.0),
                ('reconnect_period', 1.0, 'Wall s between attempts to reopen a lost port', 0.05,
                 60.0),
                ('mast_height', 0.0, 'Mast lift position, m (until the mast has its controller)',
                 0.0, 1.0)):
            declare(self, name, default, text, minimum=low, maximum=high)
        declare(self, 'ticks_per_rev', 4096, 'Encoder counts per sprocket turn', minimum=1,
                maximum=2**24)
        declare(self, 'autostart', True, 'Configure and activate at start-up')
        self.diagnostics = None
        self._write_lock = threading.Lock()
        self._link = None
        self._ack = threading.Event()
        self._last_ack = None

    # lifecycle --------------------------------------------------------------------------

    def on_configure(self, state) -> TransitionCallbackReturn:
        """Read the parameters and the URDF; create publishers, subscriber and service."""
        get = lambda name: self.get_parameter(name).value  # noqa: E731
        try:
            self.robot = RobotDescription.load(
                get('urdf') or share_dir() / 'urdf' / 'inspection_robot.urdf')
            self.model = TrackModel(get('track_separation'), get('sprocket_radius'),
                                    get('ticks_per_rev'), get('steering_efficiency'),
                                    0.0, get('slip'))
        except ValueError as error:
            self.get_logger().error(f'cannot configure: {error}')
            return TransitionCallbackReturn.FAILURE
        self.port = serial_device(get('port'), get('data_dir'))
        self.odom_frame, self.base_frame = get('odom_frame'), get('base_frame')
        self.limits = {name: get(name) for name in (
            'max_speed', 'max_angular_speed', 'max_acceleration', 'max_angular_acceleration',
            'cmd_timeout', 'command_rate', 'reconnect_period', 'mast_height', 'baudrate')}
        self.odometry = EncoderOdometry(self.model)
        self._counts = None  # (left, right) last raw counts; cumulative counts below
        self.cumulative = [0, 0]
        self._device_ms = None  # unwrapped device clock, ms
        self.ident, self.status = None, None
        self.stats = {'encoder_lines': 0, 'status_lines': 0, 'lost_lines': 0, 'reconnects': 0,
                      'refused_commands': 0}
        self._expected_seq = None
        self._link_state = 'closed'
        self._cmd = (0.0, 0.0, -math.inf)  # v, omega, monotonic time received
        self._sent = (0.0, 0.0)  # the ramped command last sent
        self.odom_pub = self.create_lifecycle_publisher(Odometry, 'odom', reliable(20))
        self.joint_pub = self.create_lifecycle_publisher(JointState, 'joint_states',
                                                         reliable(20))
        self.tf_pub = self.create_lifecycle_publisher(TFMessage, '/tf', reliable(100))
        self.static_pub = self.create_publisher(TFMessage, '/tf_static', LATCHED)
        self.description_pub = self.create_publisher(String, 'robot_description', LATCHED)
        self.description_pub.publish(String(data=self.robot.text))
        stamp = self.get_clock().now().to_msg()
        self.static_pub.publish(TFMessage(transforms=[
            transform_msg(stamp, parent, child, xyz, q)
            for parent, child, xyz, q in self.robot.fixed_transforms()]))
        self.create_subscription(Twist, 'cmd_vel', self.on_cmd_vel, reliable(10))
        self.create_service(Trigger, 'reset_estop', self.on_reset_estop)
        self.diagnostics = Diagnostics(self)
        self._command_timer = self.create_timer(1.0 / self.limits['command_rate'],
                                                self._send_command)
        return super().on_configure(state)

    def on_deactivate(self, state) -> TransitionCallbackReturn:
        """Stop the tracks and reading."""
        self._cmd = (0.0, 0.0, -math.inf)
        self._stop_thread()
        return super().on_deactivate(state)

    def on_cleanup(self, state) -> TransitionCallbackReturn:
        """Release the publishers and the timer."""
        self.destroy_timer(self._command_timer)
        for publisher in (self.odom_pub, self.joint_pub, self.tf_pub):
            self.destroy_lifecycle_publisher(publisher)
        return TransitionCallbackReturn.SUCCESS

    # commands ---------------------------------------------------------------------------

    def on_cmd_vel(self, msg: Twist):
        """Keep the newest velocity command (the multiplexer's output)."""
        values = (msg.linear.x, msg.angular.z)
        if not all(math.isfinite(v) for v in values):
            self.stats['refused_commands'] += 1
            self.get_logger().warning(f'cmd_vel {values} is not finite: stopping',
                                      throttle_duration_sec=5.0)
            values = (0.0, 0.0)
        self._cmd = (*values, time.monotonic())

    def _send_command(self):
        """Send the ramped, limited command (a stop when cmd_vel is older than cmd_timeout)."""
        if self._link is None:
            return
        limits = self.limits
        v, omega, received = self._cmd
        if time.monotonic() - received > limits['cmd_timeout']:
            v, omega = 0.0, 0.0
        v = max(-limits['max_speed'], min(limits['max_speed'], v))
        omega = max(-limits['max_angular_speed'], min(limits['max_angular_speed'], omega))
        period = 1.0 / limits['command_rate']
        v = ramp(self._sent[0], v, limits['max_acceleration'] * period)
        omega = ramp(self._sent[1], omega, limits['max_angular_acceleration'] * period)
        self._sent = (v, omega)
        left, right = self.model.track_speeds(v, omega)
        self._write(protocol.SpeedCommand(int(round(left * 1000)), int(round(right * 1000))))

    def _write(self, frame) -> bool:
        with self._write_lock:
            link = self._link
            if link is None:
                return False
            try:
                link.write(protocol.encode(frame))
                return True
            except (serial.SerialException, OSError) as error:
                self._link_state = f'write failed: {error}'
                return False

    def on_reset_estop(self, request, response):
        """Ask the controller to reset a latched e-stop; answer what it said."""
        self._ack.clear()
        if not self._write(protocol.ResetEstop()):
            response.success, response.message = False, f'controller not connected ({self.port})'
            return response
        if not self._ack.wait(1.0):
            response.success, response.message = False, 'no answer from the controller in 1 s'
            return response
        ack = self._last_ack
        response.success = ack.ok
        response.message = 'e-stop reset' if ack.ok else f'refused: {ack.text}'
        self.get_logger().info(f'reset_estop: {response.message}')
        return response

    # the serial link -------------------------------------------------------------------

    def _read_loop(self):
        decoder = protocol.LineDecoder()
        self.decoder = decoder
        while not self._stop.is_set():
            if self._link is None:
                self._link = self._open()
                if self._link is None:
                    self._stop.wait(self.limits['reconnect_period'])
                    continue
            try:
                data = self._link.read(4096)
            except (serial.SerialException, OSError) as error:
                self._link_state = f'read failed: {error}'
                self._report(f'link lost ({error}); reconnecting', Diagnostics.ERROR)
                self._close()
                continue
            for frame in decoder.feed(data):
                self._handle(frame)
        self._close()

    def _open(self):
        link, problem = open_serial(self.port, self.limits['baudrate'],
                                    protocol.encode(protocol.Query('IDENT')), timeout=0.05)
        if link is None:
            self._link_state = problem
            self._report(f'{problem} (retrying)', Diagnostics.ERROR)
            return None
        self.stats['reconnects'] += 1
        self._link_state = 'open'
        self._counts, self._device_ms = None, None
        return link

    def _close(self):
        with self._write_lock:
            if self._link is not None:
                self._link.close()
                self._link = None

    def _handle(self, frame):
        seq = getattr(frame, 'seq', None)
        if seq is not None:
            if self._expected_seq is not None and seq != self._expected_seq:
                self.stats['lost_lines'] += (seq - self._expected_seq) % 2**32
            self._expected_seq = (seq + 1) % 2**32
        if isinstance(frame, protocol.EncoderFrame):
            self._on_encoders(frame)
        elif isinstance(frame, protocol.StatusFrame):
            self.status = frame
            self.stats['status_lines'] += 1
            self._report_health()
        elif isinstance(frame, protocol.IdentFrame):
            self.ident = frame
            if frame.ticks_per_rev != self.model.ticks_per_rev:
                self.get_logger().error(
                    f'the controller counts {frame.ticks_per_rev} ticks a turn, ticks_per_rev '
                    f'is {self.model.ticks_per_rev}: odometry would be wrong')
        elif isinstance(frame, protocol.AckFrame):
            if frame.command == 'TRKR':  # the answer reset_estop waits for
                self._last_ack = frame
                self._ack.set()
            if not frame.ok:
                self.get_logger().warning(f'controller refused {frame.command}: {frame.text}',
                                          throttle_duration_sec=5.0)

    def _on_encoders(self, frame: protocol.EncoderFrame):
        self.stats['encoder_lines'] += 1
        if self._counts is None:
            self._counts, self._device_ms = (frame.left, frame.right), float(frame.ticks_ms)
            self.odometry.update(*self.cumulative, self._device_ms / 1000.0)
            return
        self.cumulative[0] += protocol.counts_delta(self._counts[0], frame.left)
        self.cumulative[1] += protocol.counts_delta(self._counts[1], frame.right)
        self._counts = (frame.left, frame.right)
        elapsed = protocol.counts_delta(int(self._device_ms) % 2**32, frame.ticks_ms)
        if elapsed <= 0:
            return  # a repeated or reordered line: nothing to integrate
        self._device_ms += elapsed
        v_x, v_y, omega = self.odometry.update(*self.cumulative, self._device_ms / 1000.0)
        self._publish_state(v_x, v_y, omega)

    def _publish_state(self, v_x: float, v_y: float, omega: float):
        stamp = self.get_clock().now().to_msg()
        pose = self.odometry.pose
        q = quaternion_from_rpy(0.0, 0.0, pose.yaw)
        odom = Odometry()
        odom.header.stamp, odom.header.frame_id = stamp, self.odom_frame
        odom.child_frame_id = self.base_frame
        odom.pose.pose.position.x, odom.pose.pose.position.y = pose.x, pose.y
        odom.pose.pose.orientation = Quaternion(x=q[0], y=q[1], z=q[2], w=q[3])
        travelled = self.odometry.distance
        covariance = [0.0] * 36
        covariance[0] = covariance[7] = 1e-6 + POSITION_VARIANCE_PER_M * travelled
        covariance[14] = covariance[21] = covariance[28] = 1e6  # z, roll, pitch: not observed
        covariance[35] = 1e-6 + YAW_VARIANCE_PER_RAD * (abs(pose.yaw) + 0.1 * travelled)
        odom.pose.covariance = covariance
        odom.twist.twist.linear.x, odom.twist.twist.linear.y = v_x, v_y
        odom.twist.twist.angular.z = omega
        self.odom_pub.publish(odom)
        angles = [2.0 * math.pi * c / self.model.ticks_per_rev for c in self.cumulative]
        positions = {'left_sprocket_joint': angles[0], 'right_sprocket_joint': angles[1],
                     'mast_lift': self.limits['mast_height']}
        moving = self.robot.moving_joints
        self.joint_pub.publish(JointState(
            header=Header(stamp=stamp),
            name=[j.name for j in moving],
            position=[float(positions.get(j.name, 0.0)) for j in moving]))
        transforms = [transform_msg(stamp, self.odom_frame, self.base_frame,
                                    (pose.x, pose.y, 0.0), q)]
        for joint in moving:
            xyz, rotation = self.robot.transform(joint, positions.get(joint.name, 0.0))
            transforms.append(transform_msg(stamp, joint.parent, joint.child, xyz, rotation))
        self.tf_pub.publish(TFMessage(transforms=transforms))

    # health -------------------------------------------------------------------------------

    def _report_health(self):
        status = self.status
        level, problems = Diagnostics.OK, []
        if status.estop:
            level = Diagnostics.ERROR
            problems.append(f'e-stop {protocol.ESTOP_STATES[status.estop]}'
                            + (': call reset_estop' if status.estop == 2 else ''))
        if status.bumpers:
            level = max(level, Diagnostics.WARN)
            problems.append('bumper contact: ' + ', '.join(status.bumpers_pressed()))
        if status.flags:
            level = max(level, Diagnostics.WARN)
            problems.append('controller flags: ' + ', '.join(status.flags_set()))
        if status.soc < LOW_BATTERY_SOC:
            level = max(level, Diagnostics.WARN)
            problems.append(f'battery low ({status.soc:.0%})')
        self._report('; '.join(problems) or 'driving', level)

    def _report(self, message: str, level):
        if self.diagnostics is None:
            return
        values = {'port': self.port, 'link': self._link_state, **self.stats}
        if self.status is not None:
            values.update({'battery_v': self.status.battery_v, 'soc': self.status.soc,
                           'estop': protocol.ESTOP_STATES[self.status.estop],
                           'bumpers': ','.join(self.status.bumpers_pressed()) or 'none',
                           'motor_temp_c': self.status.temp_c})
        if self.ident is not None:
            values.update({'model': self.ident.model, 'serial': self.ident.serial})
        self.diagnostics.update(f'robot_driver: {self.get_namespace()}', self.port, level,
                                message, values)


def main(args=None):
    """Run the robot driver."""
    return run_node(RobotDriver, args, after_create=autostart)


if __name__ == '__main__':
    raise SystemExit(main())
