"""Keyboard teleop: teleop_twist_keyboard's keys, speed steps, stop and quit, and limits."""

import pytest

from customs_lab.robot.teleop_keys import (
    HELP,
    MOVE_BINDINGS,
    QUIT,
    SPEED_BINDINGS,
    Command,
    KeyTeleop,
)


def test_the_key_tables_are_teleop_twist_keyboards():
    assert len(MOVE_BINDINGS) == 18 and len(SPEED_BINDINGS) == 6
    # the reverse keys are car-like: back-right turns left and back-left right
    assert MOVE_BINDINGS['.'] == (-1, 0, 0, 1) and MOVE_BINDINGS['m'] == (-1, 0, 0, -1)
    # shifted keys are holonomic: sideways instead of turning; K is not bound (it stops)
    assert MOVE_BINDINGS['J'] == (0, 1, 0, 0) and 'K' not in MOVE_BINDINGS
    assert 'u i o' in HELP and 'Ctrl-C' in HELP


def test_move_keys_set_a_direction_at_the_current_speed_and_turn():
    keys = KeyTeleop()
    assert keys.press('i') == Command(0.5, 0.0, 0.0, 0.0)
    assert keys.press('o') == Command(0.5, 0.0, 0.0, -1.0)
    assert keys.press('L') == Command(0.0, -0.5, 0.0, 0.0)
    assert keys.press('t') == Command(0.0, 0.0, 0.5, 0.0)


def test_speed_keys_rescale_and_resend_the_current_direction():
    keys = KeyTeleop()
    keys.press('j')
    command = keys.press('q')
    assert command.angular_z == pytest.approx(1.1) and keys.speed == pytest.approx(0.55)
    assert 'currently:\tspeed 0.55\tturn 1.1' in keys.message
    keys.press('w')
    assert keys.speed == pytest.approx(0.605) and keys.turn == pytest.approx(1.1)
    keys.press('c')
    assert keys.turn == pytest.approx(0.99)


def test_any_other_key_stops_and_ctrl_c_quits():
    keys = KeyTeleop()
    keys.press('i')
    assert keys.press('k').is_stop
    keys.press('i')
    assert keys.press('a').is_stop and keys.press(' ').is_stop
    keys.press('i')
    assert keys.press(QUIT) is None and keys.command().is_stop


def test_speed_steps_stop_at_the_robots_limits():
    keys = KeyTeleop(speed=0.5, turn=1.0, speed_limit=0.6, turn_limit=1.0)
    keys.press('i')
    for _ in range(5):
        command = keys.press('q')
    assert command.linear_x == pytest.approx(0.6) and keys.turn == 1.0
    assert 'Linear speed limit reached!' in keys.message
    assert 'Angular speed limit reached!' in keys.message
    assert KeyTeleop(speed=2.0, speed_limit=0.6).speed == 0.6


@pytest.mark.parametrize('bad', [0.0, -1.0, float('nan'), 'fast', True])
def test_bad_speeds_are_refused(bad):
    with pytest.raises(ValueError, match='positive number'):
        KeyTeleop(speed=bad)
