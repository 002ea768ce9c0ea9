"""What a portal's spectrometers and energy windows see of a passage; the subject's shadow.

Used by simulation/portal_lane.py (the firmware's world: it knows the truth). For each frame of
a passage and each detector (a PVT panel or a NaI(Tl) spectrometer of config/site.yaml):

- A NaI spectrometer's expected spectrum is the sum over the subject's source points (sources
  and the points that stand for bulk NORM cargo) of activity * Omega / 4 pi (the exact solid
  angle of its face, radiation/physics.py) times its response per decay crossing the face
  (`Spectrometer.nuclide_response`: ICRP-107 lines through the point's shields: its own, the
  cargo between it and the detector, the container wall, and the air over the lateral distance),
  plus the natural background spectrum (`Spectrometer.natural_background`) times the shadow
  factor below. Normal incidence is assumed for the response (the crystal is seen side-on
  within +-60 degrees for the frames that count), and air is taken over the lateral distance
  (a few per cent low at oblique angles, where the solid angle is small).
- A PVT panel's gross rate stays radiation/physics.expected_count_rates (path through the slab
  at each angle); how it splits into the energy windows comes from the same sum through the
  panel's spectral response (`Spectrometer.pvt_panel`), and the background's split from the
  panel's natural background spectrum.
- Background shadowing ("baseline suppression", reported by portal makers and measured e.g.
  by Lo Presti et al., NIM A 2006: 5-30 % for loaded trucks): a fraction
  `background_front_fraction` of each detector's natural background arrives through the lane;
  the subject's near side face blocks the part of that half-space it subtends (Omega / 2 pi
  seen from the detector's centre: radiation/shadow.face_fractions, the geometry the alarm's
  correction uses too), except what passes through it (its walls and cargo across its width,
  at BACKGROUND_KEV, a representative energy of the terrestrial spectrum). An
  isotropic-radiance approximation, without the cosine weighting of a flat detector.
"""

from functools import lru_cache

import numpy as np

from customs_lab.common.subjects import SubjectKind
from customs_lab.radiation import physics
from customs_lab.radiation.shadow import SubjectBox, face_fractions
from customs_lab.radiation.spectrometer import Spectrometer
from customs_lab.simulation.scenario import CONTAINER_WALL_STEEL
from customs_lab.site.layout import PortalSpec

BACKGROUND_KEV = 800.0
AIR_STEP_M = 0.05  # lateral air distances are rounded to this (responses are cached by shields)


def spectrometer_of(spec) -> Spectrometer:
    """Return the detector model of a SpectrometerSpec (NaI(Tl))."""
    return Spectrometer(
        width=spec.width,
        height=spec.height,
        depth=spec.depth,
        channels=spec.channels,
        max_kev=spec.max_kev,
        resolution_662=spec.resolution_662,
    )


def panel_spectrometer(panel) -> Spectrometer:
    """Return the spectral model of a PVT panel (PanelSpec)."""
    return Spectrometer.pvt_panel(width=panel.width, height=panel.height, depth=panel.thickness)


def window_matrix(spectrometer: Spectrometer, edges) -> np.ndarray:
    """Return (channels, k + 1): channel -> energy window, the last column for the rest."""
    centres = spectrometer.centres_kev
    index = np.searchsorted(np.asarray(edges, dtype=float), centres, side='right') - 1
    inside = (index >= 0) & (index < len(edges) - 1)
    matrix = np.zeros((spectrometer.channels, len(edges)))
    matrix[np.flatnonzero(inside), index[inside]] = 1.0
    matrix[np.flatnonzero(~inside), len(edges) - 1] = 1.0
    return matrix


@lru_cache(maxsize=4096)
def _response(spectrometer: Spectrometer, nuclide: str, shields: tuple) -> np.ndarray:
    out = spectrometer.nuclide_response(nuclide, shields, min_yield=1e-5)
    out.setflags(write=False)
    return out


def _air(distance: float) -> physics.Shield:
    rounded = max(AIR_STEP_M, round(distance / AIR_STEP_M) * AIR_STEP_M)
    return physics.Shield(physics.AIR_FORMULA, physics.AIR_DENSITY, rounded)


class Detector:
    """A detector of the lane with its face, its spectral model and its background."""

    def __init__(self, detector_id, center, normal, width, height, spectrometer, background):
        self.id = detector_id
        self.center = np.asarray(center, dtype=float)
        self.normal = np.asarray(normal, dtype=float)
        self.width, self.height = float(width), float(height)
        self.spectrometer = spectrometer
        self.background = np.asarray(background, dtype=float)  # cps per channel

    def source_spectra(self, points, offsets, shields_towards) -> np.ndarray:
        """Return (frames, channels) expected cps from points [(position, nuclide, Bq, own)].

        offsets: (frames, 3), the subject frame's origin in the device frame per frame;
        shields_towards(position, own, normal_y) -> the shields between a point and this side.
        """
        out = np.zeros((len(offsets), self.spectrometer.channels))
        for position, nuclide, activity, own in points:
            where = np.asarray(position, dtype=float) + offsets
            omega = physics.solid_angle_rectangle(
                where, self.center, self.normal, self.width, self.height
            )
            if not np.any(omega > 0):
                continue
            lateral = abs(float(self.center[1] - where[0, 1]))
            shields = tuple(shields_towards(position, own, float(self.normal[1])))
            response = _response(self.spectrometer, nuclide, shields + (_air(lateral),))
            out += np.outer(activity * omega / (4.0 * np.pi), response)
        return out


def detectors(spec: PortalSpec) -> tuple[list[Detector], list[Detector]]:
    """Return (the PVT panels, the NaI spectrometers) of a portal as Detectors."""
    panels = []
    for panel in spec.panels:
        model = panel_spectrometer(panel)
        shape = model.natural_background()
        panels.append(
            Detector(
                panel.id,
                panel.center,
                panel.normal,
                panel.width,
                panel.height,
                model,
                shape * (panel.background / shape.sum()),
            )
        )
    spectrometers = []
    for entry in spec.spectrometers:
        model = spectrometer_of(entry)
        spectrometers.append(
            Detector(
                entry.id,
                entry.center,
                entry.normal,
                entry.width,
                entry.height,
                model,
                model.natural_background(),
            )
        )
    return panels, spectrometers


def subject_transmission(sim) -> float:
    """Return the fraction of background photons (at BACKGROUND_KEV) crossing the subject."""
    shields = []
    if sim.cargo_material and sim.cargo_density > 0 and sim.size[1] > 0:
        shields.append(physics.Shield(sim.cargo_material, sim.cargo_density, sim.size[1]))
    if sim.subject.kind == SubjectKind.CONTAINER:
        shields.append(physics.Shield('Fe', 7.874, 2 * CONTAINER_WALL_STEEL))
    if not shields:
        return 1.0
    return float(physics.transmission(tuple(shields), [BACKGROUND_KEV])[0])


def shadow(spec: PortalSpec, sim, offsets, length: float, detector: Detector) -> np.ndarray:
    """Return per frame the factor (<= 1) on a detector's background while the subject passes."""
    _, width, height = sim.size
    if width <= 0 or height <= 0:
        return np.ones(len(offsets))
    box = SubjectBox(length, width, height, floor=float(offsets[0, 2]))
    covered = face_fractions([detector.center], [detector.normal[1]], offsets[:, 0], box)[:, 0]
    blocked = spec.background_front_fraction * covered
    return 1.0 - blocked * (1.0 - subject_transmission(sim))
