"""A portal alarm's source: where it is (inside the subject and on the site map) and its dose.

Core module (numpy, no ROS). After a passage that alarmed, the rpm_alarm node asks `locate`:

1. the passage's frames go to passage_localization.localize_passage, with the lane's geometry
   (shadow.LaneGeometry: panels, occupancy sensors, floor), the speed the lane measured and the
   subject's length from its occupancy time (speed x time - 2 half-widths), its width and height
   assumed (a container's ISO section, a parcel's box), and the nuclide the energy windows
   found most threat-like (Cs-137 when the device reports no windows);
2. the position in the subject's frame is put on the lane where the subject was when the
   passage ended, and on the site map (the device's pose from the site file), with its
   covariance rotated alike, and the subject's velocity (the lane's direction at its measured
   speed), which the dose monitor follows it with;
3. the source's air-kerma rate field (dose.kerma_rate, the activity as located: an unshielded
   equivalent, what reaches the outside) on a grid around it at an officer's chest height, for
   the heat map, and the rate at 1 m.
"""

from dataclasses import dataclass
import math

import numpy as np

from customs_lab.radiation import dose
from customs_lab.radiation.passage_localization import MIN_DEVIANCE, localize_passage

CONTAINER_WALL_STEEL = 0.002  # m, a container's corrugated side wall, as the model knows it
CHEST_HEIGHT = 1.3  # m above the ground, where an officer's dose is assessed
FIELD_HALF_SIZE = 8.0  # m around the source
FIELD_SPACING = 0.5  # m


@dataclass(frozen=True)
class LocatedSource:
    """A source located from one passage."""

    nuclide: str
    activity: float  # Bq, an unshielded equivalent (a lower bound of the true activity)
    in_subject: np.ndarray  # m, the subject's frame (rear, right, bottom corner)
    in_subject_std: np.ndarray  # m
    in_map: np.ndarray  # m, where it was when the passage ended
    covariance_map: np.ndarray  # 3x3, m^2
    deviance: float  # 2 ln L(source) / L(background only)
    explanation: str
    dose_rate_1m: float  # uGy/h of air kerma at 1 m
    velocity_map: np.ndarray = None  # m/s, the subject's as the lane measured it (map frame)

    @property
    def clear(self) -> bool:
        """Return True if the passage shows a source clearly enough to place it."""
        return self.deviance >= MIN_DEVIANCE

    def field(self, half_size: float = FIELD_HALF_SIZE, spacing: float = FIELD_SPACING):
        """Return (points n x 3 in the map, uGy/h) around the source at chest height."""
        x, y, _ = self.in_map
        return dose.dose_field(
            [dose.DoseSource(self.nuclide, self.activity, tuple(self.in_map))],
            (x - half_size, y - half_size, CHEST_HEIGHT),
            (x + half_size, y + half_size, CHEST_HEIGHT), spacing)


def nuclide_of(discrimination) -> str:
    """Return the nuclide the energy windows found most threat-like (Cs-137 if none)."""
    if discrimination is None or not discrimination.threat:
        return 'Cs-137'
    return discrimination.threat.split()[0]


def locate(passage, geometry, background_rate, nuclide: str,
           subject: str = 'container') -> LocatedSource | None:
    """Return the passage's source, or None if the lane cannot say (no speed, too short).

    passage: radiation.passage.Passage; geometry: shadow.LaneGeometry with its panels;
    background_rate: cps per panel of the empty lane. The frames' times are the passage's
    (Passage.frame_times: one period apart, from the first stamp).
    """
    lane = geometry.subject_box(passage) if geometry.panels else None
    if lane is None:
        return None
    mid, occupied_on, box = lane
    live = np.asarray(passage.live_times, dtype=float)
    found = localize_passage(
        geometry.panels, mid + live / 2.0, live, passage.counts, background_rate,
        occupied_on=occupied_on, speed=passage.speed, size=(box.length, box.width, box.height),
        nuclide=nuclide, occupancy_half_width=geometry.occupancy_half_width,
        floor_height=geometry.floor,
        wall_steel=CONTAINER_WALL_STEEL if subject == 'container' else 0.0, subject=subject,
        grid=4)
    if not (np.all(np.isfinite(found.position)) and math.isfinite(found.localization.activity)):
        return None
    end_time = passage.frame_times()[1]
    position, covariance = geometry.to_map(found.device_position(end_time), found.covariance)
    one_metre = position + [1.0, 0.0, 0.0]
    rate = float(dose.kerma_rate(
        [dose.DoseSource(nuclide, found.localization.activity, tuple(position))], one_metre)[0])
    velocity = geometry.to_map([passage.speed, 0.0, 0.0]) - geometry.to_map([0.0, 0.0, 0.0])
    return LocatedSource(nuclide, float(found.localization.activity), found.position,
                         found.position_std, position, covariance,
                         float(found.localization.deviance), found.explanation, rate, velocity)
