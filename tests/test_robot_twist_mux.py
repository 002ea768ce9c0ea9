"""The command multiplexer: twist_mux's priorities, timeouts and locks, and bad configurations.

The cases follow twist_mux's own system tests (test/system_blackbox.py: an input that times out
hands over to a lower one; a lock blocks the inputs below it) and its shipped configuration
(a pause lock of the joystick's priority does not block the joystick).
"""

import pytest

from customs_lab.robot.twist_mux import Source, TwistMux

AUTONOMY = Source('survey', 'survey/cmd_vel', 0.5, 10)
TELEOP = Source('keyboard', 'key_vel', 0.5, 90)
OFFICER_PAD = Source('joystick', 'joy_vel', 0.5, 100)
E_STOP = Source('e_stop', 'e_stop', 0.0, 255)
PAUSE = Source('pause', 'pause_navigation', 0.0, 100)
HEARTBEAT = Source('console_alive', 'console/heartbeat', 1.0, 50)


def test_the_highest_priority_live_input_wins_and_a_silent_one_hands_over():
    mux = TwistMux([AUTONOMY, TELEOP])
    assert mux.winner(0.0) is None  # nothing has been received: nothing passes
    assert mux.on_velocity('survey', 0.0)
    assert mux.on_velocity('survey', 0.1)
    assert mux.on_velocity('keyboard', 0.2)  # teleop overrides autonomy at once
    assert not mux.on_velocity('survey', 0.3)
    assert not mux.on_velocity('survey', 0.7)  # keyboard's last message is 0.5 s old: still live
    assert mux.on_velocity('survey', 0.71)  # 0.51 s: expired, the survey's next message passes
    assert mux.status(0.71)['velocity keyboard'].startswith('masked')


def test_a_lock_blocks_inputs_strictly_below_it():
    mux = TwistMux([AUTONOMY, TELEOP, OFFICER_PAD], [PAUSE, E_STOP])
    mux.on_lock('pause', True, 0.0)
    assert not mux.on_velocity('survey', 0.0) and not mux.on_velocity('keyboard', 0.0)
    assert mux.on_velocity('joystick', 0.0)  # the same priority as the lock: not blocked
    mux.on_lock('pause', False, 0.1)
    assert mux.on_velocity('joystick', 0.2) and not mux.on_velocity('keyboard', 0.2)
    mux.on_lock('e_stop', True, 0.3)  # above everything, and latched while true
    assert mux.lock_priority(100.0) == 255
    assert not any(mux.on_velocity(n, 100.0) for n in ('survey', 'keyboard', 'joystick'))
    mux.on_lock('e_stop', False, 101.0)
    assert mux.on_velocity('survey', 101.0)


def test_a_heartbeat_lock_is_engaged_until_its_publisher_speaks_and_when_it_dies():
    mux = TwistMux([AUTONOMY, TELEOP], [HEARTBEAT])
    assert mux.lock_engaged('console_alive', 0.0)  # before its first message
    assert not mux.on_velocity('survey', 0.0)  # priority 10 < 50
    assert mux.on_velocity('keyboard', 0.0)  # 90 > 50: not blocked
    mux.on_lock('console_alive', False, 0.5)
    assert mux.on_velocity('survey', 1.0)
    assert not mux.on_velocity('survey', 1.6)  # the heartbeat stopped 1.1 s ago
    status = mux.status(1.6)
    assert status['lock console_alive'].startswith('locked') and status['current priority'] == 50


def test_ties_go_to_the_first_configured_input():
    first, second = Source('a', 'a', 1.0, 20), Source('b', 'b', 1.0, 20)
    mux = TwistMux([first, second])
    mux.on_velocity('b', 0.0)
    assert mux.winner(0.0) == 'b'  # 'a' has sent nothing: it is expired
    assert mux.on_velocity('a', 0.1) and not mux.on_velocity('b', 0.2)


@pytest.mark.parametrize(('inputs', 'locks', 'message'), [
    ([], [], 'at least one input'),
    ([Source('a', 'a', 0.5, 0)], [], 'priority must be an integer 1-255'),
    ([Source('a', 'a', 0.5, 256)], [], 'priority'),
    ([Source('a', 'a', 0.5, 1.5)], [], 'priority'),
    ([Source('a', 'a', 0.0, 10)], [], 'timeout 0'),
    ([Source('a', 'a', -1.0, 10)], [], 'timeout must be'),
    ([Source('a', 'a', float('nan'), 10)], [], 'timeout must be'),
    ([Source('a', '', 0.5, 10)], [], 'needs a name and a topic'),
    ([Source('a', 'a', 0.5, 10)], [Source('a', 'b', 0.0, 10)], 'unique'),
])
def test_unusable_configurations_are_refused_with_the_reason(inputs, locks, message):
    with pytest.raises(ValueError, match=message):
        TwistMux(inputs, locks)


def test_unknown_names_are_refused():
    mux = TwistMux([AUTONOMY], [E_STOP])
    with pytest.raises(ValueError, match='no input'):
        mux.on_velocity('e_stop', 0.0)
    with pytest.raises(ValueError, match='no lock'):
        mux.on_lock('survey', True, 0.0)
