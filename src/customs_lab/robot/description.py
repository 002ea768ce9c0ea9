"""The robot's URDF read as robot_state_publisher reads it: a tree of joints, their transforms.

Core module (no ROS). The pip environment has no robot_state_publisher, urdf or kdl wheels, so
the robot driver publishes what that node would: the URDF text on `robot_description`
(transient local), the fixed joints' transforms once on /tf_static, and the moving joints'
transforms on /tf from their positions (joint_states). This module parses the URDF (links,
joints with origin, axis and limits; xml.etree: plain URDF, no xacro), checks it is one tree
rooted at base_link (REP-105: odom -> base_link comes from odometry), and gives each joint's
transform, parent to child, as (x, y, z) and a quaternion (x, y, z, w).

URDF conventions (wiki.ros.org/urdf/XML/joint): a joint's origin is the child frame in the
parent's, rpy fixed-axis roll, pitch, yaw (R = Rz(yaw) Ry(pitch) Rx(roll)); a revolute or
continuous joint rotates the child about `axis` (in the joint frame) by its position, a
prismatic joint translates it along `axis`.
"""

from dataclasses import dataclass
import math
import pathlib
import xml.etree.ElementTree as ElementTree

import numpy as np

JOINT_TYPES = ('fixed', 'revolute', 'continuous', 'prismatic')
ROOT = 'base_link'


@dataclass(frozen=True)
class Joint:
    """One URDF joint."""

    name: str
    type: str
    parent: str
    child: str
    xyz: tuple  # origin, m
    rpy: tuple  # origin, rad
    axis: tuple = (1.0, 0.0, 0.0)
    lower: float = -math.inf  # limits (revolute, prismatic)
    upper: float = math.inf

    @property
    def moving(self) -> bool:
        """Return whether the joint has a position (not fixed)."""
        return self.type != 'fixed'


def _vector(text, default, what: str) -> tuple:
    if text is None:
        return default
    try:
        values = tuple(float(v) for v in text.split())
    except ValueError:
        raise ValueError(f'{what}: not numbers: {text!r}') from None
    if len(values) != 3 or not all(math.isfinite(v) for v in values):
        raise ValueError(f'{what}: expected 3 finite numbers, got {text!r}')
    return values


def quaternion_from_rpy(roll: float, pitch: float, yaw: float) -> tuple:
    """Return (x, y, z, w) of fixed-axis roll, pitch, yaw (R = Rz Ry Rx)."""
    cr, sr = math.cos(roll / 2), math.sin(roll / 2)
    cp, sp = math.cos(pitch / 2), math.sin(pitch / 2)
    cy, sy = math.cos(yaw / 2), math.sin(yaw / 2)
    return (sr * cp * cy - cr * sp * sy, cr * sp * cy + sr * cp * sy,
            cr * cp * sy - sr * sp * cy, cr * cp * cy + sr * sp * sy)


def quaternion_multiply(a, b) -> tuple:
    """Return the Hamilton product a * b of (x, y, z, w) quaternions."""
    ax, ay, az, aw = a
    bx, by, bz, bw = b
    return (aw * bx + ax * bw + ay * bz - az * by, aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw, aw * bw - ax * bx - ay * by - az * bz)


def rotate(q, v) -> np.ndarray:
    """Return the vector v rotated by the quaternion q = (x, y, z, w)."""
    x, y, z, w = q
    u = np.array([x, y, z])
    v = np.asarray(v, dtype=float)
    return v + 2.0 * np.cross(u, np.cross(u, v) + w * v)


class RobotDescription:
    """A parsed URDF: its text, links and joints (module docstring)."""

    def __init__(self, text: str, source: str = 'URDF'):
        """Parse and check the URDF text (ValueError naming what is wrong)."""
        self.text = text
        try:
            root = ElementTree.fromstring(text)
        except ElementTree.ParseError as error:
            raise ValueError(f'{source}: not well-formed XML ({error})') from None
        if root.tag != 'robot' or not root.get('name'):
            raise ValueError(f'{source}: the root element must be <robot name="...">')
        self.name = root.get('name')
        self.links = [link.get('name') for link in root.findall('link')]
        if len(set(self.links)) != len(self.links) or not all(self.links):
            raise ValueError(f'{source}: link names must be unique and non-empty')
        self.joints = []
        for element in root.findall('joint'):
            self.joints.append(self._joint(element, source))
        self._check_tree(source)

    def _joint(self, element, source: str) -> Joint:
        name, kind = element.get('name'), element.get('type')
        where = f'{source}: joint {name!r}'
        if not name or kind not in JOINT_TYPES:
            raise ValueError(f'{where}: type must be one of {JOINT_TYPES}, got {kind!r}')
        parent, child = element.find('parent'), element.find('child')
        if parent is None or child is None:
            raise ValueError(f'{where}: needs a parent and a child')
        origin = element.find('origin')
        xyz = _vector(origin.get('xyz') if origin is not None else None, (0.0, 0.0, 0.0),
                      f'{where} origin xyz')
        rpy = _vector(origin.get('rpy') if origin is not None else None, (0.0, 0.0, 0.0),
                      f'{where} origin rpy')
        axis_element = element.find('axis')
        axis = _vector(axis_element.get('xyz') if axis_element is not None else None,
                       (1.0, 0.0, 0.0), f'{where} axis')
        norm = math.sqrt(sum(a * a for a in axis))
        if norm == 0.0:
            raise ValueError(f'{where}: zero axis')
        lower, upper = -math.inf, math.inf
        limit = element.find('limit')
        if kind in ('revolute', 'prismatic'):
            if limit is None:
                raise ValueError(f'{where}: a {kind} joint needs <limit lower upper>')
            lower, upper = float(limit.get('lower', 0.0)), float(limit.get('upper', 0.0))
            if not lower <= upper:
                raise ValueError(f'{where}: limit lower {lower} above upper {upper}')
        return Joint(name, kind, parent.get('link'), child.get('link'), xyz, rpy,
                     tuple(a / norm for a in axis), lower, upper)

    def _check_tree(self, source: str):
        links = set(self.links)
        children = {}
        for joint in self.joints:
            for link in (joint.parent, joint.child):
                if link not in links:
                    raise ValueError(f'{source}: joint {joint.name!r} names unknown link '
                                     f'{link!r}')
            if joint.child in children:
                raise ValueError(f'{source}: link {joint.child!r} has two parents')
            children[joint.child] = joint
        roots = [link for link in self.links if link not in children]
        if roots != [ROOT]:
            raise ValueError(f'{source}: the tree must have one root, {ROOT!r} (REP-105: '
                             f'odometry gives odom -> {ROOT}); roots: {roots}')
        for link in self.links:  # every link reaches the root: no cycles
            seen = set()
            while link != ROOT:
                if link in seen:
                    raise ValueError(f'{source}: the joints form a cycle through {link!r}')
                seen.add(link)
                link = children[link].parent
        self._parent_joint = children

    @classmethod
    def load(cls, path) -> 'RobotDescription':
        """Read a URDF file (ValueError if it is missing or invalid)."""
        path = pathlib.Path(path)
        try:
            return cls(path.read_text(), str(path))
        except OSError as error:
            raise ValueError(f'{path}: {error}') from None

    def joint(self, name: str) -> Joint:
        """Return the joint `name` (KeyError if there is none)."""
        for joint in self.joints:
            if joint.name == name:
                return joint
        raise KeyError(name)

    @property
    def moving_joints(self) -> list[Joint]:
        """Return the joints with a position, in file order."""
        return [j for j in self.joints if j.moving]

    def transform(self, joint: Joint, position: float = 0.0) -> tuple[tuple, tuple]:
        """Return (xyz, quaternion) of the joint's child in its parent at `position`."""
        q = quaternion_from_rpy(*joint.rpy)
        xyz = np.array(joint.xyz, dtype=float)
        if joint.type in ('revolute', 'continuous'):
            half = position / 2.0
            s = math.sin(half)
            q = quaternion_multiply(q, (joint.axis[0] * s, joint.axis[1] * s,
                                        joint.axis[2] * s, math.cos(half)))
        elif joint.type == 'prismatic':
            xyz = xyz + rotate(q, np.array(joint.axis) * position)
        return tuple(float(v) for v in xyz), tuple(float(v) for v in q)

    def fixed_transforms(self) -> list[tuple]:
        """Return (parent, child, xyz, quaternion) of every fixed joint (for /tf_static)."""
        return [(j.parent, j.child, *self.transform(j)) for j in self.joints if not j.moving]

    def link_pose(self, link: str, positions: dict | None = None) -> tuple[np.ndarray, tuple]:
        """Return (xyz, quaternion) of `link` in base_link for joint `positions` (default 0)."""
        positions = positions or {}
        xyz, q = np.zeros(3), (0.0, 0.0, 0.0, 1.0)
        chain = []
        while link != ROOT:
            joint = self._parent_joint[link]
            chain.append(joint)
            link = joint.parent
        for joint in reversed(chain):
            t, r = self.transform(joint, float(positions.get(joint.name, 0.0)))
            xyz = xyz + rotate(q, t)
            q = quaternion_multiply(q, r)
        return xyz, q
