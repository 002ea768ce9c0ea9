"""The shadow a subject casts on a portal's natural background, and its fit from a passage.

Core module (numpy / scipy, no ROS). A truck or parcel beside a detector panel blocks part of
the natural background that reaches the panel through the lane ("baseline suppression": 5-30 %
for loaded trucks, Lo Presti et al., NIM A 2006). Without a correction the empty lane's
background overstates what a passage should count, clean loaded containers read below
background, and a weak source is masked.

Model: a panel's background during a passage is B (1 - s phi(t)), phi(t) the solid angle of the
subject's side face that the panel looks at, seen from the panel's centre, over 2 pi (the part
of the lane-side half-space it covers), and s the fraction of the background it stops there
(the share arriving through the lane times the subject's opacity, unknown: fitted). The face
moves with the subject: rear(t) = -h + v (t - t_on) - L in the device frame (x along travel,
detector plane x = 0, y left, z up), h the occupancy sensors' half-width, t_on the time the
front reached x = -h, v the measured speed, L the length; the box spans y from c - W/2 to
c + W/2 (c: the lane's centre line) and z from its floor f to f + H.

`fit_fraction` finds s by Poisson maximum likelihood over a passage's frames and panels, with
its standard error from the Fisher information. A source in the subject adds counts and pulls s
down (less correction, less sensitivity): `LaneGeometry.background_factors` therefore fits
again without the frames around the strongest excess when it stands BUMP_SIGMA above the first
fit. Leaving out an upward fluctuation biases s up on a clean passage; the exclusion is kept
narrow (a source's bump, +-1.5 s) and s is used less one standard error, and bench_alarm.py
measures the false-alarm rate of clean loaded containers that results.
"""

from dataclasses import dataclass
import math

import numpy as np
from scipy.optimize import brentq

from customs_lab.radiation.physics import detector_panels, solid_angle_rectangle

MAX_FRACTION = 0.95  # the largest shadowed fraction fitted


@dataclass(frozen=True)
class SubjectBox:
    """The subject's box as the lane sees it: length, width, height, floor height (m)."""

    length: float
    width: float
    height: float
    floor: float = 0.0
    lane_offset: float = 0.0  # y of its centre line in the device frame

    def __post_init__(self):
        for name in ('length', 'width', 'height'):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f'subject {name} must be finite and > 0 m, got {value!r}')
        if not (math.isfinite(self.floor) and math.isfinite(self.lane_offset)):
            raise ValueError('subject floor and lane offset must be finite')


def face_fractions(panel_centres, panel_normals_y, rears, box: SubjectBox) -> np.ndarray:
    """Return phi (len(rears), panels): each panel's view covered by the subject's side face.

    panel_centres: (panels, 3) m in the device frame; panel_normals_y: the y component of each
    panel's normal (< 0: on the left, looking at the left face); rears: the subject's rear x
    per instant. Points of the face behind a panel are not counted.
    """
    centres = np.asarray(panel_centres, dtype=float).reshape(-1, 3)
    rears = np.asarray(rears, dtype=float).reshape(-1)
    out = np.zeros((len(rears), len(centres)))
    if not len(rears):
        return out
    for k, (centre, normal_y) in enumerate(zip(centres, panel_normals_y, strict=True)):
        side = 1.0 if normal_y < 0 else -1.0
        face = np.array([0.0, box.lane_offset + side * box.width / 2.0,
                         box.floor + box.height / 2.0])
        # the face slides along x: seen from the panel as a face at x = 0 from the panel
        # moved the other way (one call for all instants)
        viewpoints = np.tile(centre, (len(rears), 1))
        viewpoints[:, 0] -= rears + box.length / 2.0
        out[:, k] = solid_angle_rectangle(viewpoints, face, (0.0, side, 0.0), box.length,
                                          box.height) / (2.0 * math.pi)
    return out


def rears(mid_times, occupied_on: float, speed: float, half_width: float,
          length: float) -> np.ndarray:
    """Return the subject's rear x (device frame) at each instant."""
    return -half_width + speed * (np.asarray(mid_times, dtype=float) - occupied_on) - length


def fit_fraction(counts, background, phi) -> tuple[float, float]:
    """Return (s, its standard error) for counts ~ Poisson(background (1 - s phi)).

    counts, background (expected counts of the empty lane), phi: arrays of one shape.
    """
    y = np.asarray(counts, dtype=float).ravel()
    b = np.asarray(background, dtype=float).ravel()
    f = np.asarray(phi, dtype=float).ravel()
    use = (b > 0) & (f > 1e-6)
    y, b, f = y[use], b[use], f[use]
    if not len(y):
        return 0.0, 0.0

    def score(s):  # d ln L / ds
        return float(np.sum(-y * f / (1.0 - s * f) + b * f))

    if score(0.0) <= 0:  # no shadow (or more counts than the empty lane)
        s = 0.0
    elif score(MAX_FRACTION) >= 0:
        s = MAX_FRACTION
    else:
        s = brentq(score, 0.0, MAX_FRACTION, xtol=1e-6)
    information = float(np.sum(b * f * f / np.maximum(1.0 - s * f, 1e-6)))
    return float(s), (1.0 / math.sqrt(information) if information > 0 else math.inf)


# what passes a lane, as the lane's processing assumes it: (width, height) m. Containers: ISO 668
# (8 ft wide, 8 ft 6 in high; a high cube is 0.3 m higher); parcels: a typical express box.
SUBJECT_SECTION = {'container': (2.438, 2.591), 'parcel': (0.3, 0.3)}


@dataclass(frozen=True)
class LaneGeometry:
    """What the shadow correction knows of a portal: its panels and lane (config/site.yaml)."""

    panel_centres: tuple  # (panels, 3) m, device frame
    panel_normals_y: tuple
    occupancy_half_width: float  # m
    floor: float  # m, the subject's floor above the ground (a chassis, the belt)
    width: float  # m, the subject's assumed width
    height: float  # m, the subject's assumed height
    panels: tuple = ()  # the panels as physics.DetectorPanel (for localization)
    pose: tuple = (0.0, 0.0, 0.0)  # the device frame in the map: x, y (m), yaw (rad)

    @classmethod
    def from_spec(cls, spec) -> 'LaneGeometry':
        """Return the geometry of a site file's portal (site.layout.PortalSpec)."""
        width, height = SUBJECT_SECTION.get(spec.subject_kind, SUBJECT_SECTION['parcel'])
        panels = tuple(detector_panels(spec.panels))
        return cls(tuple(tuple(p.center) for p in spec.panels),
                   tuple(p.normal[1] for p in spec.panels), spec.occupancy_half_width,
                   spec.subject_floor_height, width, height, panels,
                   (spec.pose.x, spec.pose.y, spec.pose.yaw))

    def to_map(self, point, covariance=None):
        """Return a device-frame point (and its 3x3 covariance) in the map frame."""
        x, y, yaw = self.pose
        c, s = math.cos(yaw), math.sin(yaw)
        rotation = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
        moved = rotation @ np.asarray(point, dtype=float) + [x, y, 0.0]
        if covariance is None:
            return moved
        return moved, rotation @ np.asarray(covariance, dtype=float) @ rotation.T

    def subject_box(self, passage):
        """Return (frame mid-times, occupied_on, SubjectBox) of a passage, or None.

        The frames' times are the passage's (Passage.frame_times); the occupancy edges are
        taken at the middle of the frames they fell in, and the length is the speed times the
        occupied time less the two half-widths. None without a speed, with panels that do not
        match, or for a passage too short for a subject (under 0.1 m).
        """
        speed = passage.speed
        if (passage.stamps is None or not (math.isfinite(speed) and speed > 0)
                or passage.counts.shape[1] != len(self.panel_centres)):
            return None
        live = np.asarray(passage.live_times, dtype=float)
        times, end = passage.frame_times()
        mid = times - live / 2.0
        occupied_on, occupied_off = mid[0], end - live[-1] / 2.0
        length = speed * (occupied_off - occupied_on) - 2 * self.occupancy_half_width
        if length < 0.1:
            return None
        return mid, occupied_on, SubjectBox(length, self.width, self.height, self.floor)

    def background_factors(self, passage, background_rate, sigmas: float = 1.0):
        """Return (factors (frames, panels) on the empty lane's background, s used) or None.

        passage: radiation.passage.Passage. The fitted s less `sigmas` standard errors is used.
        None when the shadow cannot be modelled (see `subject_box`).
        """
        found = self.subject_box(passage)
        if found is None:
            return None
        mid, occupied_on, box = found
        counts = np.asarray(passage.counts, dtype=float)
        live = np.asarray(passage.live_times, dtype=float)
        phi = face_fractions(self.panel_centres, self.panel_normals_y,
                             rears(mid, occupied_on, passage.speed, self.occupancy_half_width,
                                   box.length), box)
        expected = np.outer(live, np.asarray(background_rate, dtype=float))
        s, error = fit_fraction(counts, expected, phi)
        # a source adds a bump of a few seconds (the time it takes to pass the panels' view):
        # the frames around the strongest excess are left out and s fitted again
        keep = _outside_strongest_bump(counts, expected * (1.0 - s * phi), live, mid)
        if keep is not None:
            s, error = fit_fraction(counts[keep], expected[keep], phi[keep])
        used = max(0.0, s - sigmas * error)
        return 1.0 - used * phi, used


BUMP_WINDOW = 1.0  # s, the window in which an excess is looked for
BUMP_SIGMA = 3.5  # an excess this many standard deviations above the fit is a bump
BUMP_HALF_WIDTH = 1.0  # s either side of the bump's window left out of the refit


def _outside_strongest_bump(counts, expected, live, mid):
    """Return a frame mask without the strongest bump above `expected`, or None if none."""
    frames = max(int(round(BUMP_WINDOW / float(np.median(live)))), 1)
    if len(counts) < 3 * frames:
        return None
    kernel = np.ones(frames)
    excess = np.convolve(counts.sum(axis=1) - expected.sum(axis=1), kernel, mode='valid')
    variance = np.convolve(expected.sum(axis=1), kernel, mode='valid')
    z = excess / np.sqrt(np.maximum(variance, 1.0))
    best = int(np.argmax(z))
    if z[best] < BUMP_SIGMA:
        return None
    centre = 0.5 * (mid[best] + mid[best + frames - 1])
    keep = np.abs(mid - centre) > BUMP_HALF_WIDTH + 0.5 * BUMP_WINDOW
    return keep if np.count_nonzero(keep) >= frames else None
