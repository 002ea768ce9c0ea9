"""Locating a source in 3D by maximum likelihood, against the truth and the Cramer-Rao bound."""

import math

import numpy as np
import pytest

from customs_lab.radiation.localization import Measurement, cramer_rao_bound, localize
from customs_lab.radiation.physics import DetectorPanel, PointSource, expected_count_rates

BACKGROUND_CPS = 1500.0  # a PVT panel's gross background
BOX = ([0.0, -1.2, 0.1], [12.0, 1.2, 2.5])  # a 40 ft container's interior, its own frame


def portal_panels(speed=2.0, frame=0.5, length=12.0):
    """Return four portal panels (two per side, two heights) seen from a container driving by."""
    panels = []
    for tk in np.arange(-3.0 / speed, (length + 3.0) / speed, frame):
        for side in (-1, 1):
            for z in (0.8, 2.3):
                centre = [length - tk * speed, side * 1.7, z]  # in the container's frame
                panels.append(DetectorPanel(f'{side}/{z}/{tk:.1f}', centre, [0, -side, 0],
                                            0.38, 1.5, 0.05))
    return panels, frame


def measure(rng, panels, live, position=None, activity=0.0, nuclide='Cs-137'):
    rates = np.zeros(len(panels))
    if position is not None:
        rates = expected_count_rates(panels, [PointSource(nuclide, activity, position)])
    return [Measurement(p, live, float(rng.poisson((BACKGROUND_CPS + r) * live)),
                        BACKGROUND_CPS) for p, r in zip(panels, rates, strict=True)]


def test_a_source_in_a_container_is_found_within_its_stated_uncertainty():
    panels, live = portal_panels()
    truth = np.array([7.0, 0.4, 1.2])
    found = localize(measure(np.random.default_rng(1), panels, live, truth, 2e6), 'Cs-137',
                     *BOX, grid=5)
    assert np.all(np.abs(found.position - truth) < 4 * found.position_std + 1e-3)
    assert np.all(found.position_std < 0.15)
    assert found.activity == pytest.approx(2e6, abs=4 * found.activity_std)
    assert found.deviance > 100


def test_the_error_is_close_to_the_cramer_rao_bound():
    panels, live = portal_panels()
    truth, activity = np.array([4.0, -0.5, 1.8]), 1e6
    bound = cramer_rao_bound(measure(np.random.default_rng(0), panels, live), truth, activity,
                             'Cs-137')
    errors = []
    for seed in range(10):
        found = localize(measure(np.random.default_rng(seed), panels, live, truth, activity),
                         'Cs-137', *BOX, grid=5)
        errors.append(found.position - truth)
    rmse = math.sqrt(np.mean(np.sum(np.square(errors), axis=1)))
    crb = math.sqrt(np.trace(bound[:3, :3]))
    print(f'\nRMSE {rmse * 100:.1f} cm, Cramer-Rao bound {crb * 100:.1f} cm')
    assert 0.5 * crb < rmse < 1.6 * crb  # 10 repetitions: the ratio is known to +-25 %


def test_a_moving_detector_head_finds_a_source_in_3d():
    # a robot drives its detector head along the container's length at two heights
    panels = [DetectorPanel(f'head/{x:.1f}/{z}', [x, -1.0, z], [0, 1, 0], 0.1, 0.1, 0.05)
              for x in np.arange(0.5, 11.6, 0.5) for z in (0.6, 2.0)]
    truth = np.array([8.2, 0.6, 0.9])
    rng = np.random.default_rng(4)
    found = localize(measure(rng, panels, 2.0, truth, 5e6), 'Cs-137', *BOX, grid=5)
    print(f'\nfound {found.position.round(2)} +- {found.position_std.round(2)}')
    assert np.all(np.abs(found.position - truth) < 4 * found.position_std)
    assert np.linalg.norm(found.position - truth) < 0.3  # 11,000 source counts on 138,000


def test_without_a_source_nothing_is_found():
    panels, live = portal_panels()
    found = localize(measure(np.random.default_rng(2), panels, live), 'Cs-137', *BOX, grid=4)
    assert found.deviance < 20.0  # three position parameters and an activity: chance level
    assert found.activity < 5 * max(found.activity_std, 1.0)


def test_bad_input_is_refused():
    panel = DetectorPanel('p', [0, -1.7, 1.0], [0, 1, 0], 0.38, 1.5, 0.05)
    with pytest.raises(ValueError, match='live_time'):
        Measurement(panel, 0.0, 10.0, 1.0)
    with pytest.raises(ValueError, match='counts'):
        Measurement(panel, 1.0, math.nan, 1.0)
    with pytest.raises(ValueError, match='no measurements'):
        localize([], 'Cs-137', *BOX)
    with pytest.raises(ValueError, match='box'):
        localize([Measurement(panel, 1.0, 10.0, 1.0)], 'Cs-137', [0, 0, 0], [0, 1, 1])
    with pytest.raises(ValueError, match='nuclide'):
        localize([Measurement(panel, 1.0, 10.0, 1.0)], 'Xx-999', *BOX)
