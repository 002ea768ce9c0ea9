"""The robot driver over DDS against the simulated motor controller on its pty.

cmd_vel drives the robot within its limits and odometry follows; a silent cmd_vel stops it (the
dead-man); the description, the fixed frames and the moving joints are published as
robot_state_publisher would; the e-stop is reported and reset through the service only once the
button is up; a bad command value is refused.
"""

import math
import pathlib
import shutil
import tempfile
import threading
import time

import pytest

pytestmark = pytest.mark.ros


@pytest.fixture
def short_dir():
    path = tempfile.mkdtemp(prefix='rb')
    yield pathlib.Path(path)
    shutil.rmtree(path, ignore_errors=True)


def test_the_driver_drives_reports_and_publishes_the_robot(harness, short_dir):
    from diagnostic_msgs.msg import DiagnosticArray
    from geometry_msgs.msg import Twist
    from nav_msgs.msg import Odometry
    from rclpy.parameter import Parameter
    from sensor_msgs.msg import JointState
    from std_msgs.msg import String
    from std_srvs.srv import Trigger
    from tf2_msgs.msg import TFMessage

    from customs_lab.common.node_support import LATCHED
    from customs_lab.robot.robot_driver_node import RobotDriver
    from customs_lab.robot.tracks import TrackModel
    from customs_lab.simulation.robot_firmware import MotorFirmware

    floor = TrackModel(0.44, 0.08, 4096, steering_efficiency=0.8, slip=0.95)
    firmware = MotorFirmware(short_dir / 'dev' / 'robot', floor, speed_noise=0.0)
    start, running = time.monotonic(), threading.Event()

    def controller():  # the controller runs on its own, as the hardware (or the simulator) does
        while not running.wait(0.01):
            firmware.advance(time.monotonic() - start)

    thread = threading.Thread(target=controller, daemon=True)
    thread.start()
    try:
        driver = harness.add(RobotDriver(context=harness.context, namespace='/robot',
                                         parameter_overrides=[
                                             Parameter('data_dir', value=str(short_dir)),
                                             Parameter('steering_efficiency', value=0.8),
                                             Parameter('slip', value=0.95)]))
        driver.trigger_configure()
        driver.trigger_activate()
        listener = harness.node('listener')
        odom, joints, tf, static, description, diagnostics = [], [], [], [], [], []
        listener.create_subscription(Odometry, '/robot/odom', odom.append, 50)
        listener.create_subscription(JointState, '/robot/joint_states', joints.append, 50)
        listener.create_subscription(TFMessage, '/tf', tf.append, 50)
        listener.create_subscription(TFMessage, '/tf_static', static.append, LATCHED)
        listener.create_subscription(String, '/robot/robot_description', description.append,
                                     LATCHED)
        listener.create_subscription(DiagnosticArray, '/diagnostics', diagnostics.append, 10)
        cmd = listener.create_publisher(Twist, '/robot/cmd_vel', 10)
        reset = listener.create_client(Trigger, '/robot/reset_estop')

        def drive(v, omega, seconds):
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                msg = Twist()
                msg.linear.x, msg.angular.z = v, omega
                cmd.publish(msg)
                harness.spin_for(0.05)

        assert harness.spin_until(lambda: description and static and odom, 10)
        assert 'inspection_robot' in description[0].data
        children = {t.child_frame_id for t in static[0].transforms}
        assert {'base_footprint', 'camera_optical_frame', 'radiation_head_front'} <= children

        drive(2.0, 0.0, 2.5)  # asks for more than the 0.6 m/s limit
        assert firmware.speed[0] == pytest.approx(0.6, abs=0.02)
        x = odom[-1].pose.pose.position.x
        assert x == pytest.approx(firmware.pose.x, abs=0.05) and x > 0.5
        assert odom[-1].header.frame_id == 'odom' and odom[-1].child_frame_id == 'base_link'
        assert odom[-1].twist.twist.linear.x == pytest.approx(0.6, abs=0.05)
        # the dead-man: cmd_vel stops coming, the robot stops within cmd_timeout + ramp
        harness.spin_for(2.5)
        assert firmware.speed == [0.0, 0.0] and not firmware.watchdog_stopped
        assert joints[-1].name == ['left_sprocket_joint', 'right_sprocket_joint', 'mast_lift']
        assert joints[-1].position[0] > 2 * math.pi  # the sprocket has turned
        moving = {t.child_frame_id for m in tf[-5:] for t in m.transforms}
        assert {'base_link', 'left_sprocket', 'mast_link'} <= moving

        # the e-stop: reported, and reset only with the button up
        firmware.press_estop()
        assert harness.spin_until(lambda: any(
            s.name == 'robot_driver: /robot' and s.level == b'\x02' and 'pressed' in s.message
            for m in diagnostics[-3:] for s in m.status), 5)
        assert reset.wait_for_service(timeout_sec=5.0)
        answer = harness.call(reset, Trigger.Request())
        assert not answer.success and 'button still pressed' in answer.message
        firmware.release_estop()
        answer = harness.call(reset, Trigger.Request())
        assert answer.success and firmware.estop == 0

        # a command that is not a number is refused (a stop), and counted
        bad = Twist()
        bad.linear.x = float('nan')
        cmd.publish(bad)
        assert harness.spin_until(lambda: driver.stats['refused_commands'] == 1, 5)
    finally:
        running.set()
        thread.join(timeout=2.0)
        firmware.close()
