"""The keyboard teleop node over DDS: keys to commands, repeats while keys come, one stop after.

Keys are fed to the node as the terminal reader would feed them.
"""

import time

import pytest

pytestmark = pytest.mark.ros


def test_keys_drive_repeat_while_held_and_stop_once_released(harness):
    from geometry_msgs.msg import Twist

    from customs_lab.robot.teleop_keyboard_node import TeleopKeyboard

    node = harness.add(TeleopKeyboard(read_terminal=False, context=harness.context))
    listener = harness.node('listener')
    out = []
    listener.create_subscription(Twist, '/cmd_vel', out.append, 100)
    assert harness.spin_until(lambda: node.publisher.get_subscription_count() == 1, 5)
    node.on_key('i')
    assert harness.spin_until(lambda: out and out[-1].linear.x == 0.5, 5)
    held = time.monotonic()
    while time.monotonic() - held < 1.0:  # a held key: the terminal repeats it every ~30 ms
        node.on_key('i')
        harness.spin_for(0.03)
    node.on_key('j')
    harness.spin_for(0.3)
    assert out[-1].linear.x == 0.0 and out[-1].angular.z == 1.0
    # released: within key_timeout (0.6 s) one stop is sent, then silence
    harness.spin_for(1.0)
    assert out[-1].angular.z == 0.0 and out[-1].linear.x == 0.0
    count = len(out)
    harness.spin_for(0.5)
    assert len(out) == count
    node.on_key('q')  # faster: re-sends the (stopped) direction at the new scale
    assert node.keys.speed == pytest.approx(0.55)
    node.on_key('\x03')
    assert node.quit.is_set()
    assert harness.spin_until(lambda: out[-1].linear.x == 0.0, 5)


def test_stamped_commands_and_the_frame_id_rule(harness):
    from geometry_msgs.msg import TwistStamped
    from rclpy.parameter import Parameter

    from customs_lab.robot.teleop_keyboard_node import TeleopKeyboard

    with pytest.raises(ValueError, match="'frame_id' can only be set when 'stamped' is True"):
        TeleopKeyboard(read_terminal=False, context=harness.context,
                       parameter_overrides=[Parameter('frame_id', value='base_link')])
    node = harness.add(TeleopKeyboard(read_terminal=False, context=harness.context,
                                      parameter_overrides=[
                                          Parameter('stamped', value=True),
                                          Parameter('frame_id', value='base_link')]))
    listener = harness.node('listener')
    out = []
    listener.create_subscription(TwistStamped, '/cmd_vel', out.append, 10)
    assert harness.spin_until(lambda: node.publisher.get_subscription_count() == 1, 5)
    node.on_key('l')
    assert harness.spin_until(lambda: out and out[-1].twist.angular.z == -1.0, 5)
    assert out[-1].header.frame_id == 'base_link'


def test_the_program_reads_its_terminal_and_quits_on_ctrl_c(harness, tmp_path):
    import os
    import subprocess
    import sys

    from geometry_msgs.msg import Twist

    listener = harness.node('listener')
    out = []
    listener.create_subscription(Twist, '/cmd_vel', out.append, 100)
    controller, terminal = os.openpty()  # the officer's terminal
    process = subprocess.Popen(
        [sys.executable, '-m', 'customs_lab.robot.teleop_keyboard_node'],
        stdin=terminal, stdout=terminal, stderr=subprocess.PIPE,
        env=dict(os.environ, ROS_LOG_DIR=str(tmp_path)))
    os.close(terminal)
    try:
        assert harness.spin_until(lambda: listener.count_publishers('/cmd_vel') == 1, 20)
        harness.spin_for(0.5)
        os.write(controller, b'i')
        assert harness.spin_until(lambda: out and out[-1].linear.x == 0.5, 10)
        os.write(controller, b'\x03')
        assert process.wait(timeout=10) == 0
        harness.spin_for(0.3)
        assert out[-1].linear.x == 0.0  # it sent a stop before quitting
        screen = os.read(controller, 65536).decode(errors='replace')
        assert 'u i o' in screen  # the key chart
    finally:
        if process.poll() is None:
            process.kill()
        os.close(controller)
