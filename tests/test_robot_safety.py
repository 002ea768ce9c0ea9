"""The robot's safety gate: e-stop, bumpers, obstacles in the swept corridor, the geofence."""

import math

import numpy as np
import pytest

from customs_lab.robot.safety import (
    Gate,
    RobotState,
    SafetyConfig,
    edge_distance,
    inside,
)

# a 40 ft container's floor, 12.03 x 2.35 m, door at x = 0
CONTAINER = np.array([[0.0, 0.0], [12.03, 0.0], [12.03, 2.35], [0.0, 2.35]])


def test_polygon_geometry():
    assert inside(CONTAINER, 6.0, 1.0) and not inside(CONTAINER, -0.1, 1.0)
    assert edge_distance(CONTAINER, 6.0, 1.0) == pytest.approx(1.0)
    assert edge_distance(CONTAINER, -1.0, 1.0) == pytest.approx(1.0)


def test_the_estop_stops_everything_and_bad_numbers_stop_too():
    gate = Gate()
    assert gate.filter(0.5, 0.5, RobotState(estop=True)) == (0.0, 0.0, ['e-stop engaged'])
    v, omega, why = gate.filter(math.nan, 0.0, RobotState())
    assert (v, omega) == (0.0, 0.0) and 'not finite' in why[0]


def test_a_bumper_blocks_motion_towards_it_only():
    gate = Gate()
    state = RobotState(bumpers=('front',))
    v, omega, why = gate.filter(0.4, 0.3, state)
    assert v == 0.0 and omega == 0.3 and 'bumper front' in why[0]
    assert gate.filter(-0.3, 0.0, state)[0] == -0.3  # backing away is allowed


def test_an_obstacle_ahead_slows_then_stops_and_one_beside_does_not():
    gate = Gate(SafetyConfig(robot_radius=0.5, half_width=0.3, stop_distance=0.25,
                             slow_distance=1.0, max_deceleration=0.5))
    pallet = np.array([[2.0, 0.1], [2.0, -0.2]])  # 1.5 m clear ahead of the footprint
    assert gate.filter(0.4, 0.0, RobotState(points=pallet))[0] == 0.4
    near = pallet - [0.9, 0.0]  # 0.6 m clear
    v, _, why = gate.filter(0.4, 0.0, RobotState(points=near))
    assert 0.0 < v < 0.4 and 'slowed' in why[0]
    close = pallet - [1.3, 0.0]  # 0.2 m clear
    v, _, why = gate.filter(0.4, 0.0, RobotState(points=close))
    assert v == 0.0 and 'obstacle 0.20 m ahead' in why[0]
    assert gate.filter(-0.3, 0.0, RobotState(points=close))[0] == -0.3  # reversing away
    beside = np.array([[0.6, 0.8], [1.0, -0.9]])  # wall returns outside the corridor
    assert gate.filter(0.4, 0.0, RobotState(points=beside))[0] == 0.4
    # a fast robot needs its braking distance too
    assert gate.filter(1.0, 0.0, RobotState(points=pallet - [0.3, 0.0]))[0] == 0.0


def test_the_geofence_keeps_the_footprint_inside_and_lets_it_come_back():
    gate = Gate(SafetyConfig(robot_radius=0.5, lookahead=0.5), fence=CONTAINER)
    middle = RobotState(x=6.0, y=1.175)
    assert gate.filter(0.5, 0.0, middle)[0] == 0.5
    at_wall = RobotState(x=11.4, y=1.175)  # 0.13 m from the front wall's fence line
    v, omega, why = gate.filter(0.5, 0.2, at_wall)
    assert v == 0.0 and omega == 0.2 and 'geofence' in why[0]
    assert gate.filter(-0.5, 0.0, at_wall)[0] == -0.5  # back towards the middle
    outside = RobotState(x=-0.5, y=1.175)  # still at the door, outside the fence
    assert gate.filter(0.5, 0.0, outside)[0] == 0.5  # coming in is allowed
    assert gate.filter(-0.5, 0.0, outside)[0] == 0.0  # going further out is not
    with pytest.raises(ValueError, match='geofence'):
        Gate(fence=[[0, 0], [1, 1]])


def test_bad_configurations_are_refused():
    with pytest.raises(ValueError, match='robot_radius'):
        SafetyConfig(robot_radius=0.0)
    with pytest.raises(ValueError, match='slow_distance'):
        SafetyConfig(stop_distance=1.0, slow_distance=0.5)
