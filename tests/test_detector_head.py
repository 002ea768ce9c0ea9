"""The robot's detector head: geometry, background, a source located from an aisle survey."""

import math

import numpy as np
import pytest

from customs_lab.radiation.detector_head import (
    DetectorHead,
    background_from_dwell,
    locate_from_survey,
    survey_track,
)
from customs_lab.radiation.localization import Measurement, cramer_rao_bound
from customs_lab.radiation.physics import PointSource, Shield, expected_count_rates
from customs_lab.simulation.head_survey import dwell_counts, expected_counts, survey_counts

INSIDE = (5.898, 2.352, 2.393)  # m, a 20 ft container's interior (ISO 1496-1 minimum)
BOX = ((0.0, 0.0, 0.0), INSIDE)


def test_the_faces_turn_with_the_robot_and_see_only_what_is_in_front():
    head = DetectorHead.default()
    ahead = [PointSource('Cs-137', 1e8, np.array([3.0, 0.0, 1.0]))]
    facing = expected_count_rates(head.panels(0.0, 0.0, 0.0, 1.0), ahead)
    assert facing[0] > 0 and np.all(facing[1:] == 0)  # only the front crystal
    turned = expected_count_rates(head.panels(0.0, 0.0, math.pi / 2, 1.0), ahead)
    assert turned[3] == pytest.approx(facing[0], rel=1e-6)  # now the right crystal
    # inverse square from the face (6 cm ahead of the mast axis), and 3 m more air
    far = expected_count_rates(head.panels(-3.0, 0.0, 0.0, 1.0), ahead)[0]
    assert far / facing[0] == pytest.approx((2.94 / 5.94) ** 2 * math.exp(-0.0093 * 3.0), rel=0.01)


def test_the_background_is_the_soil_model_over_a_small_crystal_and_a_dwell_learns_it():
    head = DetectorHead.default()
    rates = head.background_rates()
    assert np.allclose(rates, rates[0]) and 60.0 < rates[0] < 200.0  # a 2 x 2 inch NaI(Tl)
    learned = background_from_dwell(dwell_counts(head, 120, 0.5, np.random.default_rng(3)), 0.5)
    assert np.allclose(learned, rates, rtol=4.0 / math.sqrt(rates[0] * 60.0))


def test_a_survey_has_two_legs_at_two_heights():
    times, poses = survey_track(INSIDE[0], INSIDE[1], speed=0.2, period=0.5)
    assert len(times) == len(poses) and times[1] - times[0] == 0.5
    out, back = poses[: len(poses) // 2], poses[len(poses) // 2:]
    assert np.all(np.diff(out[:, 0]) > 0) and np.all(np.diff(back[:, 0]) < 0)
    assert set(out[:, 3]) == {0.6} and set(back[:, 3]) == {1.8}
    assert np.allclose(poses[:, 1], INSIDE[1] / 2)


@pytest.mark.parametrize('truth, activity, shields', [
    ((3.2, 2.0, 1.2), 3.7e7, ()),                          # 1 mCi bare, near the left wall
    ((1.0, 0.3, 0.4), 3.7e7, (Shield('Fe', 7.874, 0.02),)),  # behind 2 cm of steel, low right
])
def test_a_source_is_located_near_the_cramer_rao_bound(truth, activity, shields):
    head = DetectorHead.default()
    rng = np.random.default_rng(7)
    _, poses = survey_track(INSIDE[0], INSIDE[1])
    source = [PointSource('Cs-137', activity, np.array(truth), shields)]
    background = background_from_dwell(dwell_counts(head, 120, 0.5, rng), 0.5)
    errors, found = [], None
    for _ in range(6):
        counts = survey_counts(head, poses, 0.5, source, rng)
        found = locate_from_survey(head, poses, 0.5, counts, background, 'Cs-137', *BOX)
        errors.append(found.position - truth)
    rmse = math.sqrt(np.mean(np.sum(np.square(errors), axis=1)))
    # the bound at the truth, for the activity as the model sees it (a shield only scales it)
    seen = float(expected_counts(head, poses, 0.5, source, np.zeros(4)).sum()
                 / expected_counts(head, poses, 0.5, [PointSource('Cs-137', activity,
                                                                   np.array(truth))],
                                   np.zeros(4)).sum())
    template = [Measurement(panel, 0.5, 0.0, b) for pose in poses
                for panel, b in zip(head.panels(*pose), head.background_rates(), strict=True)]
    bound = math.sqrt(np.trace(cramer_rao_bound(template, truth, activity * seen,
                                                'Cs-137')[:3, :3]))
    print(f'\n{truth}: RMSE {100 * rmse:.1f} cm, CRB {100 * bound:.1f} cm, '
          f'activity {found.activity:.3g} Bq (seen {activity * seen:.3g})')
    assert rmse < 0.15 and rmse < 2.0 * bound  # 6 draws: a ratio known to about +-30 %
    assert found.activity == pytest.approx(activity * seen, rel=0.25)
    assert np.all(found.position_std > 0) and found.deviance > 100


def test_bad_input_is_refused():
    head = DetectorHead.default()
    _, poses = survey_track(INSIDE[0], INSIDE[1])
    counts = np.zeros((len(poses), 4))
    with pytest.raises(ValueError, match='counts'):
        locate_from_survey(head, poses, 0.5, counts[:, :3], np.ones(4), 'Cs-137', *BOX)
    with pytest.raises(ValueError, match='background'):
        locate_from_survey(head, poses, 0.5, counts, np.ones(3), 'Cs-137', *BOX)
    bad = counts.copy()
    bad[3, 1] = math.nan
    with pytest.raises(ValueError, match='finite'):
        locate_from_survey(head, poses, 0.5, bad, np.ones(4), 'Cs-137', *BOX)
    with pytest.raises(ValueError, match='pose'):
        head.panels(0.0, math.nan, 0.0, 1.0)
    with pytest.raises(ValueError, match='unit'):
        DetectorHead.from_dict({'faces': [{'id': 'a', 'offset': [0, 0], 'normal': [1, 1]}]})
    with pytest.raises(ValueError, match='no faces'):
        DetectorHead.from_dict({'faces': []})
    with pytest.raises(ValueError, match='too short'):
        survey_track(0.8, 2.0)
    with pytest.raises(ValueError, match='dwell'):
        background_from_dwell([], 0.5)
