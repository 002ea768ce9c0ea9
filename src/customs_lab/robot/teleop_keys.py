"""Keyboard teleoperation with teleop_twist_keyboard's keys and behaviour.

Core module (no ROS, no terminal). The key tables and their meaning are those of
ros2/teleop_twist_keyboard (teleop_twist_keyboard.py, ros2 branch), so that an officer who has
driven a ROS robot finds the same keys:

    Moving around:        u i o        holonomic (shift):   U I O
                          j k l                             J K L
                          m , .                             M < >
    t / b: up / down (z)
    q / z: all speeds x1.1 / x0.9     w / x: linear only     e / c: angular only
    k or any other key: stop          Ctrl-C: stop and quit

A move key sets the direction (x, y, z, th) and the command is (x, y, z) x speed and th x turn;
a speed key scales speed and turn and re-sends the current direction at the new scale; any
other key stops (the direction becomes zero). Defaults: 0.5 m/s and 1.0 rad/s. ROS 1's
`speed_limit` / `turn_limit` cap what the speed keys reach; here they default to the robot's
own limits (config/robot.yaml), not 1000. The repeat and key-timeout behaviour (ROS 1's
`repeat_rate` and `key_timeout`) belongs to the node: it re-sends the last command while keys
come and stops when none has come for `key_timeout`, so the robot's dead-man is fed only while
an officer is at the keyboard.
"""

from dataclasses import dataclass
import math

MOVE_BINDINGS = {  # key -> (x, y, z, th)
    'i': (1, 0, 0, 0), 'o': (1, 0, 0, -1), 'j': (0, 0, 0, 1), 'l': (0, 0, 0, -1),
    'u': (1, 0, 0, 1), ',': (-1, 0, 0, 0), '.': (-1, 0, 0, 1), 'm': (-1, 0, 0, -1),
    'O': (1, -1, 0, 0), 'I': (1, 0, 0, 0), 'J': (0, 1, 0, 0), 'L': (0, -1, 0, 0),
    'U': (1, 1, 0, 0), '<': (-1, 0, 0, 0), '>': (-1, -1, 0, 0), 'M': (-1, 1, 0, 0),
    't': (0, 0, 1, 0), 'b': (0, 0, -1, 0),
}
SPEED_BINDINGS = {  # key -> (linear factor, angular factor)
    'q': (1.1, 1.1), 'z': (0.9, 0.9), 'w': (1.1, 1.0), 'x': (0.9, 1.0), 'e': (1.0, 1.1),
    'c': (1.0, 0.9),
}
QUIT = '\x03'  # Ctrl-C
HELP = __doc__.split('\n\n')[2]  # the key chart above


@dataclass(frozen=True)
class Command:
    """A velocity command: linear x, y, z (m/s) and angular z (rad/s)."""

    linear_x: float = 0.0
    linear_y: float = 0.0
    linear_z: float = 0.0
    angular_z: float = 0.0

    @property
    def is_stop(self) -> bool:
        """Return whether every component is zero."""
        return not any((self.linear_x, self.linear_y, self.linear_z, self.angular_z))


class KeyTeleop:
    """The keyboard's state: direction, speed and turn; `press(key)` gives the command."""

    def __init__(self, speed: float = 0.5, turn: float = 1.0, speed_limit: float = math.inf,
                 turn_limit: float = math.inf):
        """Start stopped at `speed` m/s and `turn` rad/s (ValueError if not positive)."""
        for name, value in (('speed', speed), ('turn', turn), ('speed_limit', speed_limit),
                            ('turn_limit', turn_limit)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f'{name} must be a positive number, got {value!r}')
        self.speed_limit, self.turn_limit = float(speed_limit), float(turn_limit)
        self.speed = min(float(speed), self.speed_limit)
        self.turn = min(float(turn), self.turn_limit)
        self.direction = (0, 0, 0, 0)
        self.message = ''  # what the console should print after the last key ('' if nothing)

    def command(self) -> Command:
        """Return the current command."""
        x, y, z, th = self.direction
        return Command(x * self.speed, y * self.speed, z * self.speed, th * self.turn)

    def press(self, key: str) -> Command | None:
        """Take one key; return the command to send, or None for Ctrl-C (send a stop, quit)."""
        self.message = ''
        if key == QUIT:
            self.direction = (0, 0, 0, 0)
            return None
        if key in MOVE_BINDINGS:
            self.direction = MOVE_BINDINGS[key]
        elif key in SPEED_BINDINGS:
            linear, angular = SPEED_BINDINGS[key]
            self.speed = min(self.speed * linear, self.speed_limit)
            self.turn = min(self.turn * angular, self.turn_limit)
            limits = [name for name, value, limit in (
                ('linear', self.speed, self.speed_limit), ('angular', self.turn, self.turn_limit))
                if value >= limit]
            self.message = f'currently:\tspeed {self.speed:.3g}\tturn {self.turn:.3g}' + (
                ''.join(f'\n{name.capitalize()} speed limit reached!' for name in limits))
        else:
            self.direction = (0, 0, 0, 0)
        return self.command()
