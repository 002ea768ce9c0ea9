"""The robot's detector head counting inside a container: what the head's firmware would see.

Simulation only (it knows where the sources are). For each pose of a survey (detector_head:
x, y, yaw, head height in the container's frame) and each crystal, the expected counts are the
crystal's terrestrial background plus the sources' rate through it
(physics.expected_count_rates: the face's solid angle, air, the sources' shields, the
crystal's efficiency), then a Poisson draw. Cargo between a source and the head is not in the
ray (the aisle is free and the sources' own shields are): a source deep in cargo looks weaker.
"""

import numpy as np

from customs_lab.radiation.physics import expected_count_rates


def expected_counts(head, poses, live_time: float, sources, background=None) -> np.ndarray:
    """Return the expected counts (n x faces) of the head at each pose over `live_time` s."""
    background = head.background_rates() if background is None else np.asarray(background)
    rates = np.array([expected_count_rates(head.panels(*pose), sources) if sources
                      else np.zeros(len(head.faces)) for pose in np.asarray(poses, dtype=float)])
    return (rates + background) * live_time


def survey_counts(head, poses, live_time: float, sources, rng: np.random.Generator,
                  background=None) -> np.ndarray:
    """Return Poisson counts (n x faces) along a survey."""
    return rng.poisson(expected_counts(head, poses, live_time, sources, background))


def dwell_counts(head, intervals: int, live_time: float, rng: np.random.Generator,
                 background=None) -> np.ndarray:
    """Return counts (intervals x faces) of the head parked outside, far from any source."""
    rates = head.background_rates() if background is None else np.asarray(background)
    return rng.poisson(np.tile(rates * live_time, (intervals, 1)))
