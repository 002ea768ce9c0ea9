"""Keyboard teleoperation for officers: teleop_twist_keyboard's keys, with a dead-man built in.

Reads keys from the terminal it runs in (raw mode, one key at a time) and publishes
geometry_msgs/Twist on `cmd_vel` (remapped to the multiplexer's keyboard input,
`teleop/cmd_vel`), or TwistStamped with `stamped` and `frame_id`, as teleop_twist_keyboard
does. Keys and speed steps: robot/teleop_keys.py (the same chart is printed at start). As ROS 1
teleop_twist_keyboard with `repeat_rate` and `key_timeout`, the last command is re-sent
`repeat_rate` times a second while keys keep coming, and when no key has come for
`key_timeout` s (longer than the terminal's key-repeat delay, about 0.5 s) one stop is sent and
nothing more: a released key stops the robot, and the multiplexer hands back to the survey.
Ctrl-C sends a stop and quits.
"""

import math
import sys
import threading
import time

from geometry_msgs.msg import Twist, TwistStamped
from rclpy.node import Node

from customs_lab.common.node_support import declare, reliable, run_node
from customs_lab.robot.teleop_keys import HELP, KeyTeleop


class TeleopKeyboard(Node):
    """Turn keys into velocity commands (module docstring)."""

    def __init__(self, read_terminal: bool = True, **kwargs):
        super().__init__('teleop_keyboard', **kwargs)
        speed = declare(self, 'speed', 0.5, 'Initial linear speed, m/s', minimum=0.01,
                        maximum=5.0)
        turn = declare(self, 'turn', 1.0, 'Initial angular speed, rad/s', minimum=0.01,
                       maximum=10.0)
        speed_limit = declare(self, 'speed_limit', 0.6, 'Most the speed keys reach, m/s',
                              minimum=0.01, maximum=5.0)
        turn_limit = declare(self, 'turn_limit', 1.0, 'Most the turn keys reach, rad/s',
                             minimum=0.01, maximum=10.0)
        self.repeat_rate = declare(self, 'repeat_rate', 10.0, 'Commands re-sent a second while '
                                   'keys come', minimum=1.0, maximum=100.0)
        self.key_timeout = declare(self, 'key_timeout', 0.6, 'Seconds without a key before '
                                   'the robot is stopped', minimum=0.05, maximum=10.0)
        self.stamped = declare(self, 'stamped', False, 'Publish TwistStamped')
        self.frame_id = declare(self, 'frame_id', '', 'Frame of stamped commands')
        if self.frame_id and not self.stamped:
            raise ValueError("'frame_id' can only be set when 'stamped' is True")
        self.keys = KeyTeleop(speed, turn, speed_limit, turn_limit)
        self.publisher = self.create_publisher(TwistStamped if self.stamped else Twist,
                                               'cmd_vel', reliable(10))
        self._lock = threading.Lock()
        self._last_key = -math.inf
        self._moving = False
        self.quit = threading.Event()
        self.create_timer(1.0 / self.repeat_rate, self._repeat)
        if read_terminal:
            threading.Thread(target=self._read_terminal, name='keyboard', daemon=True).start()

    def on_key(self, key: str):
        """Take one key (from the terminal, or a test)."""
        with self._lock:
            command = self.keys.press(key)
            self._last_key = time.monotonic()
            if command is None:
                self._publish(self.keys.command())  # Ctrl-C: a stop, then quit
                self.quit.set()
                return
            self._moving = not command.is_stop
            self._publish(command)
        if self.keys.message:
            print(self.keys.message, flush=True)

    def _repeat(self):
        with self._lock:
            if not self._moving:
                return
            if time.monotonic() - self._last_key > self.key_timeout:
                self.keys.press('k')  # no key for key_timeout: stop, once
                self._moving = False
            self._publish(self.keys.command())

    def _publish(self, command):
        twist = Twist()
        twist.linear.x, twist.linear.y, twist.linear.z = (
            command.linear_x, command.linear_y, command.linear_z)
        twist.angular.z = command.angular_z
        if self.stamped:
            msg = TwistStamped(twist=twist)
            msg.header.stamp = self.get_clock().now().to_msg()
            msg.header.frame_id = self.frame_id
            self.publisher.publish(msg)
        else:
            self.publisher.publish(twist)

    def _read_terminal(self):
        if not sys.stdin.isatty():
            self.get_logger().error('the keyboard teleop needs a terminal (stdin is not one)')
            return
        import termios
        import tty

        print(HELP, flush=True)
        descriptor = sys.stdin.fileno()
        saved = termios.tcgetattr(descriptor)
        try:
            tty.setraw(descriptor)
            while not self.quit.is_set():
                key = sys.stdin.read(1)
                if not key:
                    break
                self.on_key(key)
        finally:
            termios.tcsetattr(descriptor, termios.TCSADRAIN, saved)


def main(args=None):
    """Run the keyboard teleop in this terminal."""
    import rclpy

    def spin_until_quit(node):
        while rclpy.ok(context=node.context) and not node.quit.is_set():
            rclpy.spin_once(node, timeout_sec=0.1)
        deadline = time.monotonic() + 0.3  # let the last stop reach the subscribers
        while rclpy.ok(context=node.context) and time.monotonic() < deadline:
            rclpy.spin_once(node, timeout_sec=0.05)
        raise KeyboardInterrupt  # run_node's clean shutdown

    return run_node(TeleopKeyboard, args, after_create=spin_until_quit)


if __name__ == '__main__':
    raise SystemExit(main())
