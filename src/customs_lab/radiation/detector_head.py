"""The inspection robot's radiation detector head, and locating a source from its survey.

Core module (numpy / scipy, no ROS). The head rides the robot's mast: four NaI(Tl) crystals
facing forward, left, back and right of the robot (base_link: x forward, y left, z up),
each a `physics.DetectorPanel` seen from its outer face. A crystal sees what is in front of
its face (the other crystals and the mast shadow what is behind it), so the four counts tell
the direction of a source, and the robot's track gives the viewpoints: driven along a
container's aisle at two mast heights, it fixes x by the inverse-square profile along the
track, the side (y) by which faces see it and z by the two heights.

Frames: poses are the robot's in the frame the source is at rest in (a container's: origin at
the rear (door), right, bottom corner, x towards the front wall; or the map), (x, y, yaw) of
base_link plus the head's height above that frame's floor. Each pose is a viewpoint:
`localization.localize` fits a point source's position and activity by Poisson maximum
likelihood with the Fisher covariance, and `localization.cramer_rao_bound` gives the bound the
benchmark compares with (the same machinery as a portal's viewpoints, localization.py).

Background: each crystal's terrestrial background (spectrometer.Spectrometer's K/U/Th model
1 m above soil, counts above the crystal's threshold). That model counts the flux through a
log's face (half of it, the projected share of grazing photons); a small crystal on a mast is
hit from every side, so its rate is scaled to the crystal's mean projected area, a quarter of
its surface (Cauchy's formula for a convex body in an isotropic flux): x3 for a cube, ~100 cps
for a 2 x 2 inch crystal. The survey learns it from the head's own
counts before it enters (`background_from_dwell`), as a robot parked at the door would; a
container's floor (plywood on steel cross members) attenuates part of the ground's gamma rays,
so the rate inside is somewhat lower than at the door: not modelled here.
"""

from dataclasses import dataclass
import math

import numpy as np

from customs_lab.radiation.localization import Localization, Measurement, localize
from customs_lab.radiation.physics import DetectorPanel
from customs_lab.radiation.spectrometer import NAI_DENSITY, NAI_FORMULA, Spectrometer

INCH = 0.0254  # m


@dataclass(frozen=True)
class HeadFace:
    """One crystal: its face centre (x, y in base_link, m), outward normal (x, y), size."""

    id: str
    offset: tuple  # m, face centre from the mast axis, in base_link
    normal: tuple  # horizontal unit vector, outward
    edge: float = 2.0 * INCH  # m, square face
    depth: float = 2.0 * INCH  # m, crystal thickness along the normal

    def __post_init__(self):
        normal = np.asarray(self.normal, dtype=float)
        if normal.shape != (2,) or not math.isclose(float(np.linalg.norm(normal)), 1.0,
                                                      abs_tol=1e-6):
            raise ValueError(f'face {self.id}: normal must be a horizontal unit (x, y) vector')
        if len(self.offset) != 2 or not all(math.isfinite(v) for v in self.offset):
            raise ValueError(f'face {self.id}: offset must be two finite numbers (m)')
        for name in ('edge', 'depth'):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f'face {self.id}: {name} must be finite and > 0, got {value!r}')


@dataclass(frozen=True)
class DetectorHead:
    """The head's crystals and their threshold."""

    faces: tuple
    threshold_kev: float = 50.0

    @classmethod
    def default(cls) -> 'DetectorHead':
        """Return four 2 x 2 inch NaI(Tl) crystals facing out, 6 cm from the mast axis."""
        r = 0.06
        return cls(tuple(HeadFace(name, (r * nx, r * ny), (nx, ny)) for name, nx, ny in (
            ('front', 1.0, 0.0), ('left', 0.0, 1.0), ('back', -1.0, 0.0),
            ('right', 0.0, -1.0))))

    @classmethod
    def from_dict(cls, spec: dict) -> 'DetectorHead':
        """Return a head from a config mapping {faces: [{id, offset, normal, edge, depth}]}."""
        try:
            faces = tuple(HeadFace(str(f['id']), tuple(float(v) for v in f['offset']),
                                   tuple(float(v) for v in f['normal']),
                                   float(f.get('edge', 2.0 * INCH)),
                                   float(f.get('depth', 2.0 * INCH)))
                          for f in spec['faces'])
        except (KeyError, TypeError) as error:
            raise ValueError(f'detector head: {error!r}') from None
        if not faces:
            raise ValueError('detector head: no faces')
        return cls(faces, float(spec.get('threshold_kev', 50.0)))

    def panels(self, x: float, y: float, yaw: float, height: float) -> list[DetectorPanel]:
        """Return the crystals as panels for the robot at (x, y, yaw), the head at `height`."""
        values = (x, y, yaw, height)
        if not all(math.isfinite(v) for v in values):
            raise ValueError(f'pose must be finite, got {values}')
        c, s = math.cos(yaw), math.sin(yaw)
        out = []
        for face in self.faces:
            (ox, oy), (nx, ny) = face.offset, face.normal
            normal = (c * nx - s * ny, s * nx + c * ny, 0.0)
            # the panel's `normal` points from the panel towards the sources it sees
            centre = (x + c * ox - s * oy, y + s * ox + c * oy, height)
            out.append(DetectorPanel(face.id, np.array(centre), np.array(normal), face.edge,
                                     face.edge, face.depth, material=NAI_FORMULA,
                                     density=NAI_DENSITY,
                                     low_energy_threshold_kev=self.threshold_kev))
        return out

    def background_rates(self) -> np.ndarray:
        """Return each crystal's terrestrial background above threshold (cps), 1 m over soil."""
        rates = []
        for face in self.faces:
            model = Spectrometer(width=face.edge, height=face.edge, depth=face.depth)
            spectrum = model.natural_background()
            edges = np.arange(model.channels + 1) * model.max_kev / model.channels
            surface = 2.0 * (face.edge**2 + 2.0 * face.edge * face.depth)
            exposed = (surface / 4.0) / (0.5 * face.edge**2)  # all sides / the log's face
            rates.append(exposed * float(spectrum[edges[:-1] >= self.threshold_kev].sum()))
        return np.array(rates)


def survey_track(length: float, width: float, speed: float = 0.2, period: float = 0.5,
                 heights=(0.6, 1.8), margin: float = 0.5):
    """Return (times s, poses n x 4: x, y, yaw, head height) of an aisle survey.

    The robot drives in along the centre line at heights[0] from the door (x = margin) to
    `margin` short of the front wall, turns, and drives back at heights[1]: the two heights
    tell the source's z. One pose per `period` s (the counting interval).
    """
    for name, value in (('length', length), ('width', width), ('speed', speed),
                        ('period', period)):
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f'{name} must be finite and > 0, got {value!r}')
    if length <= 2.0 * margin:
        raise ValueError(f'a container of {length} m is too short to survey')
    run = length - 2.0 * margin
    steps = max(2, int(round(run / (speed * period))) + 1)
    along = np.linspace(margin, length - margin, steps)
    legs = [np.column_stack([along, np.full(steps, width / 2), np.zeros(steps),
                             np.full(steps, heights[0])]),
            np.column_stack([along[::-1], np.full(steps, width / 2), np.full(steps, math.pi),
                             np.full(steps, heights[1])])]
    poses = np.vstack(legs)
    return np.arange(len(poses)) * period, poses


def background_from_dwell(counts, live_time: float) -> np.ndarray:
    """Return each crystal's background rate (cps) from counts (n x faces) over n intervals."""
    counts = np.atleast_2d(np.asarray(counts, dtype=float))
    if not (math.isfinite(live_time) and live_time > 0) or counts.size == 0:
        raise ValueError('a dwell needs counts and a live time > 0')
    if not np.all(np.isfinite(counts)) or np.any(counts < 0):
        raise ValueError('dwell counts must be finite and >= 0')
    return counts.sum(axis=0) / (len(counts) * live_time)


def locate_from_survey(head: DetectorHead, poses, live_times, counts, background_rates,
                       nuclide: str, low, high, grid: int = 5) -> Localization:
    """Return the source that best explains a survey's counts, in the poses' frame.

    poses: n x 4 (x, y, yaw, head height); live_times: n (s); counts: n x faces;
    background_rates: one per face (cps); [low, high]: the box to search (the container's
    interior). Raises ValueError on bad input (shapes, NaN counts, a box the wrong way round).
    """
    poses = np.asarray(poses, dtype=float)
    counts = np.asarray(counts, dtype=float)
    live_times = np.broadcast_to(np.asarray(live_times, dtype=float), (len(poses),))
    background = np.asarray(background_rates, dtype=float)
    faces = len(head.faces)
    if poses.ndim != 2 or poses.shape[1] != 4 or counts.shape != (len(poses), faces):
        raise ValueError(f'a survey needs poses (n, 4) and counts (n, {faces}); got '
                         f'{poses.shape} and {counts.shape}')
    if background.shape != (faces,):
        raise ValueError(f'one background rate per face ({faces}) is needed')
    measurements = [
        Measurement(panel, float(live), float(c), float(b))
        for pose, live, row in zip(poses, live_times, counts, strict=True)
        for panel, c, b in zip(head.panels(*pose), row, background, strict=True)]
    return localize(measurements, nuclide, low, high, grid=grid)
