"""The true dose an officer post receives from a subject's sources driving through a lane.

Simulation only (it reads the subject's truth): what the dose monitor's estimate
(radiation/exposure.py, from the located source) is scored against. The subject moves along
the lane's x axis at the lane's speed, as simulation/portal_lane.py drives it; each source is
followed while it is within the lane (device x from -approach to exit, the stretch the dose
monitor follows too), and its air-kerma rate at the post (radiation/dose.kerma_rate) is
integrated with the source's own shields, the cargo between it and the post's side of the
subject and the container's wall (portal_lane's shielding towards that side).
"""

import math

import numpy as np

from customs_lab.radiation import dose
from customs_lab.simulation.portal_lane import _shields_towards


def post_in_device(spec, post) -> np.ndarray:
    """Return a map point (x, y, z) in a portal's device frame."""
    c, s = math.cos(spec.pose.yaw), math.sin(spec.pose.yaw)
    dx, dy = post[0] - spec.pose.x, post[1] - spec.pose.y
    return np.array([c * dx + s * dy, -s * dx + c * dy, post[2]])


def true_post_dose(sim, spec, post, step: float = 0.05) -> float:
    """Return the air kerma (uGy) at a map point from a subject's point sources in a lane."""
    point = post_in_device(spec, post)
    width = sim.size[1]
    total = 0.0
    for item in sim.truth:
        if not (item.nuclide and item.activity > 0):
            continue
        position = np.array(item.position, dtype=float)
        side = -1.0 if point[1] > 0 else 1.0  # the normal of a panel on the post's side
        shields = _shields_towards(sim, position, tuple(item.shields), side)
        x = np.arange(-spec.approach, spec.exit + step / 2, step)
        track = np.column_stack([x, np.full_like(x, position[1] - width / 2.0),
                                 np.full_like(x, position[2] + spec.subject_floor_height)])
        source = [dose.DoseSource(item.nuclide, item.activity, (0.0, 0.0, 0.0), shields)]
        rates = dose.kerma_rate(source, point - track)  # uGy/h, the source at each point
        total += float(np.trapezoid(rates, x / spec.speed)) / dose.SECONDS_PER_HOUR
    return total
