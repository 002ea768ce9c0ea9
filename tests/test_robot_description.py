"""The robot's URDF: one tree from base_link, REP-103/105 frames, what the sensors' poses are.

Checks the shipped urdf/inspection_robot.urdf through customs_lab.robot.description (what the
driver will publish in robot_state_publisher's place), and bad descriptions.
"""

import math
import pathlib

import numpy as np
import pytest

from customs_lab.radiation.detector_head import DetectorHead
from customs_lab.robot.description import RobotDescription, quaternion_from_rpy, rotate

ROOT = pathlib.Path(__file__).resolve().parents[1]
URDF = ROOT / 'urdf' / 'inspection_robot.urdf'


@pytest.fixture(scope='module')
def robot():
    return RobotDescription.load(URDF)


def test_the_robot_has_every_part_the_issue_asks_for(robot):
    assert robot.name == 'inspection_robot'
    for link in ('base_link', 'base_footprint', 'left_sprocket', 'right_sprocket', 'mast_link',
                 'lidar_link', 'camera_link', 'camera_optical_frame', 'radiation_head',
                 'gas_sensor_link', 'bumper_front', 'bumper_rear'):
        assert link in robot.links, link
    assert [j.name for j in robot.moving_joints] == ['left_sprocket_joint',
                                                     'right_sprocket_joint', 'mast_lift']
    assert robot.joint('mast_lift').upper == 1.0


def test_frames_follow_rep_103_and_105(robot):
    footprint, q = robot.link_pose('base_footprint')
    assert footprint[2] == pytest.approx(-0.08) and q == pytest.approx((0, 0, 0, 1))
    # the camera's optical frame looks along base_link's x, its x to the right, y down
    _, q = robot.link_pose('camera_optical_frame')
    assert rotate(q, [0, 0, 1]) == pytest.approx([1, 0, 0], abs=1e-12)
    assert rotate(q, [1, 0, 0]) == pytest.approx([0, -1, 0], abs=1e-12)
    assert rotate(q, [0, 1, 0]) == pytest.approx([0, 0, -1], abs=1e-12)
    # the tracks sit symmetrically: their separation is the kinematics' B
    left, _ = robot.link_pose('left_track')
    right, _ = robot.link_pose('right_track')
    assert left[1] - right[1] == pytest.approx(0.44) and left[1] == -right[1]


def test_the_detector_head_matches_the_radiation_model(robot):
    for face in DetectorHead.default().faces:
        xyz, q = robot.link_pose(f'radiation_head_{face.id}')
        head, _ = robot.link_pose('radiation_head')
        assert (xyz - head)[:2] == pytest.approx(face.offset, abs=1e-12)
        assert rotate(q, [1, 0, 0])[:2] == pytest.approx(face.normal, abs=1e-12)


def test_moving_joints_move_their_children(robot):
    low, _ = robot.link_pose('lidar_link')
    high, _ = robot.link_pose('lidar_link', {'mast_lift': 0.8})
    assert high - low == pytest.approx([0, 0, 0.8])
    assert low[2] == pytest.approx(0.22 + 0.55)
    # a quarter turn of the left sprocket turns its frame about y
    _, q = robot.link_pose('left_sprocket', {'left_sprocket_joint': math.pi / 2})
    assert rotate(q, [1, 0, 0]) == pytest.approx([0, 0, -1], abs=1e-12)
    fixed = {child for _, child, _, _ in robot.fixed_transforms()}
    assert 'camera_optical_frame' in fixed and 'mast_link' not in fixed


def test_rpy_quaternions_compose_as_urdf_says():
    q = quaternion_from_rpy(0.3, -0.2, 1.1)
    cr, sr, cp, sp, cy, sy = (math.cos(0.3), math.sin(0.3), math.cos(-0.2), math.sin(-0.2),
                              math.cos(1.1), math.sin(1.1))
    rz = np.array([[cy, -sy, 0], [sy, cy, 0], [0, 0, 1]])
    ry = np.array([[cp, 0, sp], [0, 1, 0], [-sp, 0, cp]])
    rx = np.array([[1, 0, 0], [0, cr, -sr], [0, sr, cr]])
    matrix = rz @ ry @ rx
    for v in np.eye(3):
        assert rotate(q, v) == pytest.approx(matrix @ v, abs=1e-12)


@pytest.mark.parametrize(('urdf', 'message'), [
    ('<robot name="r"><link name="base_link"/', 'not well-formed'),
    ('<robt name="r"/>', 'root element'),
    ('<robot name="r"><link name="base_link"/><link name="a"/></robot>', 'one root'),
    ('<robot name="r"><link name="base_link"/><link name="a"/><joint name="j" type="ball">'
     '<parent link="base_link"/><child link="a"/></joint></robot>', 'type must be'),
    ('<robot name="r"><link name="base_link"/><link name="a"/><joint name="j" type="fixed">'
     '<parent link="base_link"/><child link="b"/></joint></robot>', 'unknown link'),
    ('<robot name="r"><link name="base_link"/><link name="a"/><joint name="j" '
     'type="prismatic"><parent link="base_link"/><child link="a"/></joint></robot>',
     'needs <limit'),
    ('<robot name="r"><link name="base_link"/><link name="a"/><joint name="j" type="fixed">'
     '<parent link="base_link"/><child link="a"/><origin xyz="0 nan 0"/></joint></robot>',
     'finite'),
])
def test_bad_descriptions_are_refused_with_the_reason(urdf, message):
    with pytest.raises(ValueError, match=message):
        RobotDescription(urdf)
