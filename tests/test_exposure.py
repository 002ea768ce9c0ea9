"""Officers' exposure to sources driving through a lane: tracks, doses, alerts, bad input."""

import math

import numpy as np
import pytest

from customs_lab.radiation.dose import DoseSource, kerma_rate
from customs_lab.radiation.exposure import (
    LEVEL_DOSE,
    LEVEL_OK,
    LEVEL_RATE,
    ExposureLedger,
    SourceTrack,
    lane_track,
)

LANE = ((42.0, 30.0, 0.0), (82.0, 30.0, 0.0))  # a 40 m lane along +x, the portal at x = 62


def test_a_track_spans_the_lane_at_the_measured_speed():
    # located at the portal's plane when its passage ended (t = 100 s), 2 m/s along the lane
    track = lane_track('CSQU3054383 Cs-137', 'Cs-137', 1e9, (62.0, 30.5, 2.3), (2.0, 0.0, 0.0),
                       100.0, *LANE)
    assert track.start == pytest.approx(90.0) and track.end == pytest.approx(110.0)
    assert np.allclose(track.positions([90.0, 110.0]), [[42.0, 30.5, 2.3], [82.0, 30.5, 2.3]])
    # a lane running the other way round the map: the same rule
    back = lane_track('x', 'Cs-137', 1e9, (72.0, 30.0, 1.0), (-1.0, 0.0, 0.0), 0.0,
                      LANE[1], LANE[0])
    assert (back.start, back.end) == pytest.approx((-10.0, 30.0))


def test_a_post_beside_the_lane_gets_the_line_integral():
    """A source passing a post at distance d, speed v, along 2 L gets the line integral.

    dose = rate(d) * 2 d / v * arctan(L / d), less the air's few per cent.
    """
    activity, v, d = 3.7e9, 2.0, 3.0
    ledger = ExposureLedger({'booth': (62.0, 30.0 + d, 1.5)}, step=0.02)
    track = lane_track('s', 'Cs-137', activity, (62.0, 30.0, 1.5), (v, 0.0, 0.0), 0.0, *LANE)
    total = ledger.add(track)['booth']
    at_d = float(kerma_rate([DoseSource('Cs-137', activity, (0, 0, 0))], [[d, 0, 0]])[0])
    line = at_d / 3600.0 * 2.0 * d / v * math.atan(20.0 / d)
    assert 0.95 * line < total < line
    # halfway (closest approach), half the dose is received and the rate is at its peak
    middle = ledger.exposure('booth', 0.0)
    assert middle.dose == pytest.approx(total / 2.0, rel=0.01)
    assert middle.rate == pytest.approx(at_d, rel=0.01) and middle.peak_rate == middle.rate
    assert ledger.exposure('booth', -20.0).dose == 0.0
    after = ledger.exposure('booth', 60.0)
    assert after.dose == pytest.approx(total) and after.rate == 0.0
    assert after.peak_rate == pytest.approx(at_d, rel=0.01) and after.main_source == 's'


def test_doses_add_over_tracks_and_alerts_are_raised_once_per_level():
    ledger = ExposureLedger({'booth': (62.0, 31.0, 1.3), 'far': (62.0, 80.0, 1.3)},
                            rate_limit=20.0, dose_limit=0.2)
    # 100 mCi of Cs-137 passing 1 m from the booth: ~290 uGy/h at closest approach
    first = lane_track('CSQU3054383 Cs-137', 'Cs-137', 3.7e9, (62.0, 30.0, 1.3),
                       (2.0, 0.0, 0.0), 100.0, *LANE)
    whole = ledger.add(first)
    assert ledger.alerts(80.0) == []
    raised = ledger.alerts(100.0)
    assert [e.post for e in raised] == ['booth'] and raised[0].level == LEVEL_RATE
    assert ledger.alerts(101.0) == []  # said once
    assert 0.1 < whole['booth'] < 0.2  # one pass (~0.12 uGy) stays under the dose limit
    second = lane_track('MSCU1234565 Cs-137', 'Cs-137', 3.7e9, (62.0, 30.0, 1.3),
                        (2.0, 0.0, 0.0), 200.0, *LANE)
    ledger.add(second)
    raised = ledger.alerts(300.0)
    assert [e.post for e in raised] == ['booth'] and raised[0].level == LEVEL_DOSE
    end = ledger.exposure('booth', 300.0)
    assert end.dose == pytest.approx(2 * whole['booth'])
    assert 'this shift' in end.message(20.0, 0.2) and 'most from' in end.message(20.0, 0.2)
    assert ledger.exposure('far', 300.0).level == LEVEL_OK and ledger.track_count == 2


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match='does not move'):
        lane_track('x', 'Cs-137', 1e9, (62.0, 30.0, 1.0), (0.0, 0.0, 0.0), 0.0, *LANE)
    with pytest.raises(ValueError, match='does not move'):
        lane_track('x', 'Cs-137', 1e9, (62.0, 30.0, 1.0), (math.nan, 0.0, 0.0), 0.0, *LANE)
    with pytest.raises(ValueError, match='does not move'):  # a crawl: an hours-long track
        lane_track('x', 'Cs-137', 1e9, (62.0, 30.0, 1.0), (0.01, 0.0, 0.0), 0.0, *LANE)
    with pytest.raises(ValueError, match='activity'):
        SourceTrack('x', 'Cs-137', math.nan, 0.0, (0, 0, 0), (1, 0, 0), 0.0, 1.0)
    with pytest.raises(ValueError, match='start <= end'):
        SourceTrack('x', 'Cs-137', 1.0, 0.0, (0, 0, 0), (1, 0, 0), 2.0, 1.0)
    with pytest.raises(ValueError, match='dose_limit'):
        ExposureLedger({'booth': (0, 0, 0)}, dose_limit=0.0)
    with pytest.raises(ValueError, match='three finite'):
        ExposureLedger({'booth': (0, math.inf, 0)})
    with pytest.raises(ValueError, match='two distinct'):
        lane_track('x', 'Cs-137', 1e9, (0, 0, 0), (1, 0, 0), 0.0, (0, 0, 0), (0, 0, 5))
