"""Calibration: diagnostics, Platt scaling and the engine's evidence calibrator."""

import json
import math

import numpy as np
import pytest
from scipy.optimize import minimize

from customs_lab.fusion.calibration import (
    EvidenceCalibrator,
    PlattCalibrator,
    brier_decomposition,
    brier_score,
    expected_calibration_error,
    format_reliability_table,
    log_excess,
    log_loss,
    reliability_diagram,
    wilson_interval,
)

# a small case worked by hand: two forecast values, six outcomes
P_SMALL = [0.25, 0.25, 0.25, 0.25, 0.75, 0.75]
Y_SMALL = [0, 0, 0, 1, 1, 1]


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def miscalibrated(n, seed):
    """Scores s whose true log-odds are 0.5 s - 1 (a raw score that is too sharp and too high)."""
    rng = np.random.default_rng(seed)
    s = rng.normal(0.0, 2.0, n)
    y = (rng.random(n) < sigmoid(0.5 * s - 1.0)).astype(float)
    return s, y


def test_wilson_interval_matches_published_values():
    assert wilson_interval(5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_reliability_diagram_uniform_bins():
    p = [0.05, 0.05, 0.15, 0.95, 0.95, 0.95, 1.0]
    y = [0, 0, 1, 1, 1, 1, 0]
    rows = reliability_diagram(p, y, bins=10)
    # empty bins are left out; 1.0 falls in the last, closed bin
    assert [r.count for r in rows] == [2, 1, 4]
    assert [(r.low, r.high) for r in rows] == [(0.0, 0.1), (0.1, 0.2), (0.9, 1.0)]
    assert [r.mean_predicted for r in rows] == pytest.approx([0.05, 0.15, 0.9625])
    assert [r.observed for r in rows] == pytest.approx([0.0, 1.0, 0.75])
    assert (rows[2].ci_low, rows[2].ci_high) == pytest.approx(wilson_interval(3, 4))


def test_reliability_diagram_quantile_bins_hold_equal_counts():
    p = np.random.default_rng(3).beta(0.5, 20.0, 1000)  # skewed, like risk scores
    rows = reliability_diagram(p, np.zeros(1000), bins=10, strategy='quantile')
    assert [r.count for r in rows] == [100] * 10
    assert rows[0].low == 0.0 and rows[-1].high == 1.0
    assert all(r.low <= r.mean_predicted < r.high for r in rows)
    uniform = reliability_diagram(p, np.zeros(1000), bins=10)
    assert uniform[0].count > 900  # why quantile bins exist


def test_brier_decomposition_worked_by_hand():
    d = brier_decomposition(P_SMALL, Y_SMALL, bins=10)
    assert d.brier == pytest.approx(0.875 / 6)
    assert d.reliability == pytest.approx(2 / 6 * 0.25**2)
    assert d.resolution == pytest.approx(4 / 6 * 0.25**2 + 2 / 6 * 0.5**2)
    assert d.uncertainty == pytest.approx(0.25)
    assert d.within_bin == pytest.approx(0.0, abs=1e-15)
    assert d.brier == pytest.approx(d.reliability - d.resolution + d.uncertainty, abs=1e-15)


def test_murphy_identity_for_binned_and_continuous_forecasts():
    rng = np.random.default_rng(11)
    centres = (np.arange(10) + 0.5) / 10  # one forecast value per bin
    p = rng.choice(centres, 5000)
    y = (rng.random(5000) < p**1.5).astype(float)  # overconfident forecasts
    d = brier_decomposition(p, y)
    assert d.brier == pytest.approx(np.mean((p - y) ** 2), abs=1e-12)
    assert d.brier == pytest.approx(d.reliability - d.resolution + d.uncertainty, abs=1e-12)
    assert d.within_bin == pytest.approx(0.0, abs=1e-12) and d.reliability > 0.005
    q = rng.random(5000)  # continuous forecasts: the within-bin terms close the identity
    yq = (rng.random(5000) < q).astype(float)
    dq = brier_decomposition(q, yq)
    assert abs(dq.within_bin) > 1e-4
    assert dq.brier == pytest.approx(
        dq.reliability - dq.resolution + dq.uncertainty + dq.within_bin, abs=1e-12
    )


def test_scores_worked_by_hand():
    assert brier_score([0.2, 0.9], [0, 1]) == pytest.approx((0.04 + 0.01) / 2)
    assert log_loss([0.5, 0.5], [0, 1]) == pytest.approx(math.log(2))
    assert log_loss([0.9], [1]) == pytest.approx(-math.log(0.9))
    assert log_loss([0.0], [1]) == pytest.approx(-math.log(1e-15))  # clipped, finite
    assert expected_calibration_error(P_SMALL, Y_SMALL) == pytest.approx(2 / 6 * 0.25)


def test_ece_tells_calibrated_from_miscalibrated():
    rng = np.random.default_rng(5)
    p = rng.random(20000)
    y = (rng.random(20000) < p).astype(float)
    assert expected_calibration_error(p, y) < 0.015
    assert expected_calibration_error(np.sqrt(p), y) > 0.1


def test_format_reliability_table():
    text = format_reliability_table(reliability_diagram(P_SMALL, Y_SMALL, bins=4))
    lines = text.splitlines()
    assert lines[0].split() == ['bin', 'count', 'predicted', 'observed', '95%', 'interval']
    assert lines[1] == '[0.250,0.500)       4    0.2500   0.2500  [0.0456,0.6994]'
    assert lines[2].startswith('[0.750,1.000)       2    0.7500   1.0000  [0.3424,')
    assert len(lines) == 3


@pytest.mark.parametrize(
    'p, y, message',
    [
        ([0.1, 0.2], [0], 'lengths differ'),
        ([0.1, 1.2], [0, 1], r'p must lie in \[0, 1\]'),
        ([0.1, math.nan], [0, 1], r'p contains NaN .* index 1'),
        ([0.1, 0.2], [0, 2], 'labels y must be 0 or 1'),
        ([], [], 'p is empty'),
        ([[0.1], [0.2]], [0, 1], 'one-dimensional'),
    ],
)
def test_bad_diagnostic_input_is_named(p, y, message):
    with pytest.raises(ValueError, match=message):
        brier_score(p, y)
    with pytest.raises(ValueError, match=message):
        reliability_diagram(p, y)


def test_bad_binning_is_named():
    with pytest.raises(ValueError, match='bins must be an int'):
        reliability_diagram(P_SMALL, Y_SMALL, bins=0)
    with pytest.raises(ValueError, match='strategy must be'):
        expected_calibration_error(P_SMALL, Y_SMALL, strategy='equal')


def test_platt_recovers_a_known_miscalibration():
    s, y = miscalibrated(20000, seed=1)
    calibrator = PlattCalibrator().fit(s, y)
    assert calibrator.a == pytest.approx(0.5, abs=0.04)
    assert calibrator.b == pytest.approx(-1.0, abs=0.05)
    assert calibrator.samples == 20000 and calibrator.positives == y.sum()
    assert expected_calibration_error(sigmoid(s), y) > 0.1  # the raw score as a probability
    assert expected_calibration_error(calibrator.probability(s), y) < 0.02
    assert log_loss(calibrator.probability(s), y) < log_loss(sigmoid(s), y) - 0.05


def test_platt_is_the_exact_map_estimate():
    s, y = miscalibrated(40, seed=2)  # few samples: the prior matters
    w = np.linspace(0.5, 2.0, 40)
    calibrator = PlattCalibrator(prior_a=1.0, prior_b=-2.0, prior_std_a=0.5, prior_std_b=1.0)
    calibrator.fit(s, y, w)

    def objective(theta):
        z = theta[0] * s + theta[1]
        prior = ((theta[0] - 1.0) / 0.5) ** 2 + ((theta[1] + 2.0) / 1.0) ** 2
        return np.sum(w * (np.logaddexp(0, z) - y * z)) + 0.5 * prior

    reference = minimize(objective, [0.0, 0.0], method='Nelder-Mead',
                         options={'xatol': 1e-10, 'fatol': 1e-12, 'maxiter': 5000}).x
    assert (calibrator.a, calibrator.b) == pytest.approx(tuple(reference), abs=1e-6)
    # integer weights are repetitions
    doubled = PlattCalibrator().fit(np.repeat(s, 2), np.repeat(y, 2))
    assert PlattCalibrator().fit(s, y, np.full(40, 2.0)).mean == pytest.approx(doubled.mean)


def test_platt_with_no_positives_stays_finite_and_near_the_prior():
    few = PlattCalibrator().fit([0.3, -1.0, 2.0, 0.5, -0.2], [0, 0, 0, 0, 0])
    assert math.isfinite(few.a) and math.isfinite(few.b)
    assert -4.0 < few.b < -0.5 and abs(few.a - 1.0) < 0.3  # pulled down, not to -infinity
    many = PlattCalibrator().fit(np.random.default_rng(4).normal(-3, 1, 5000), np.zeros(5000))
    assert math.isfinite(many.a) and math.isfinite(many.b)
    assert abs(many.a - 1.0) < 0.3  # the data says nothing about the slope: the prior holds it
    assert many.b < -5.0  # a site that never finds anything learns that positives are rare
    assert many.probability(-3.0) < 1e-3
    assert np.all(np.isfinite(many.log_odds([-50.0, 0.0, 50.0])))


def test_online_updates_agree_with_one_fit():
    s, y = miscalibrated(20000, seed=3)
    full = PlattCalibrator().fit(s, y)
    online = PlattCalibrator()
    versions = {online.version}
    for batch in np.array_split(np.arange(20000), 8):
        online.update(s[batch], y[batch])
        versions.add(online.version)
    assert (online.a, online.b) == pytest.approx((full.a, full.b), abs=0.01)
    assert len(versions) == 9  # every refit changed the parameters, hence the version
    assert online.samples == 20000


def test_serialisation_round_trip_and_version():
    s, y = miscalibrated(500, seed=6)
    calibrator = PlattCalibrator(prior_b=-3.0).fit(s, y)
    assert calibrator.version != PlattCalibrator(prior_b=-3.0).version
    restored = PlattCalibrator.from_dict(json.loads(json.dumps(calibrator.to_dict())))
    assert restored.version == calibrator.version
    assert restored.log_odds(1.5) == calibrator.log_odds(1.5)
    assert restored.prior_mean.tolist() == [1.0, -3.0]
    restored.update(s[:50], y[:50])  # the restored precision weighs the new batch as before
    calibrator.update(s[:50], y[:50])
    assert restored.mean == pytest.approx(calibrator.mean, abs=1e-12)
    state = calibrator.to_dict()
    state['a'] += 0.1
    with pytest.raises(ValueError, match='does not match its parameters'):
        PlattCalibrator.from_dict(state)
    with pytest.raises(ValueError, match='not a PlattCalibrator state'):
        PlattCalibrator.from_dict({'a': 1.0})


def test_bad_calibrator_input_is_named_and_changes_nothing():
    calibrator = PlattCalibrator().fit([0.0, 1.0, 2.0], [0, 1, 1])
    version = calibrator.version
    for args, message in (
        (([0.0, math.nan], [0, 1]), 'scores contains NaN'),
        (([0.0, 1.0], [0]), 'lengths differ: 2 forecasts/scores but 1 labels'),
        (([0.0, 1.0], [0, 0.5]), 'labels y must be 0 or 1'),
        (([0.0, 1.0], [0, 1], [1.0, -1.0]), 'weights must be >= 0'),
        (([0.0, 1.0], [0, 1], [1.0]), 'lengths differ: 2 scores but 1 weights'),
        (([], []), 'no samples'),
    ):
        with pytest.raises(ValueError, match=message):
            calibrator.fit(*args)
        with pytest.raises(ValueError, match=message):
            calibrator.update(*args)
    assert calibrator.version == version  # nothing was refitted or reset
    with pytest.raises(ValueError, match='scores contain NaN'):
        calibrator.log_odds(math.nan)
    with pytest.raises(ValueError, match='prior_std_a must be finite and > 0'):
        PlattCalibrator(prior_std_a=0.0)


def test_evidence_calibrator_is_the_identity_until_it_learns():
    c = EvidenceCalibrator(cap=20.0)
    f = c.features(-4.0, [(0.5, 3.0, 'radiation.gamma'), (0.5, 500.0, 'radiation.gamma'),
                          (1.0, -2.0, 'xray.dual_energy')])
    assert f['radiation.gamma|capped'] == pytest.approx(0.5 * 3.0 + 0.5 * 20.0)
    assert f['radiation.gamma|excess'] == pytest.approx(0.5 * math.log(25.0))
    assert f['xray.dual_energy|excess'] == 0.0
    assert c.log_odds(f) == pytest.approx(-4.0 + 11.5 - 2.0)  # prior + capped LLRs
    assert log_excess(-200.0, 20.0) == pytest.approx(-math.log(10.0))
    first = c.version
    c.update(f, False)
    assert c.version != first and c.samples == 1 and c.positives == 0
    assert 'radiation.gamma: ' in c.describe() and 'xray.dual_energy: ' in c.describe()


def test_evidence_calibrator_learns_each_kinds_weight_and_keeps_the_priors():
    rng = np.random.default_rng(5)
    c = EvidenceCalibrator(cap=20.0)
    for _ in range(3000):  # the prior is right; the sensor's LLRs are 3x over-confident
        prior = rng.normal(-3.0, 1.0)
        llr = rng.normal(0.0, 3.0)
        y = rng.random() < sigmoid(prior + llr / 3.0)
        c.update(c.features(prior, [(1.0, llr, 'vitals.stress')]), y)
    assert c.coefficient('prior') == pytest.approx(1.0, abs=0.15)
    assert c.coefficient('vitals.stress|capped') == pytest.approx(1 / 3, abs=0.08)
    assert c.coefficient('intercept') == pytest.approx(0.0, abs=0.4)


def test_evidence_calibrator_refuses_bad_input():
    with pytest.raises(ValueError, match='cap'):
        EvidenceCalibrator(cap=0.0)
    c = EvidenceCalibrator()
    with pytest.raises(ValueError, match='non-finite'):
        c.features(0.0, [(1.0, float('nan'), 'radiation.gamma')])
    with pytest.raises(ValueError, match='NaN'):
        c.update({'prior': float('inf'), 'intercept': 1.0}, True)
    with pytest.raises(ValueError, match='unknown calibration feature'):
        c.update({'prior': 0.0, 'radiation.gamma|scale': 1.0}, True)
    assert c.names == ['prior', 'intercept']  # nothing half-learned


def test_evidence_calibrator_bounds_the_kinds_it_weighs():
    c = EvidenceCalibrator(max_kinds=3)
    f = c.features(0.0, [(1.0, 1.0, f'kind{n}') for n in range(5)])
    assert sorted({k.split('|')[0] for k in f if '|' in k}) == ['kind0', 'kind1', 'other']
    assert f['other|capped'] == pytest.approx(3.0)
    assert c.contribution('kind4', 1.0, 2.0) == pytest.approx(2.0)  # 'other', still identity
    c.update(f, True)
    assert len(c.names) == 2 + 2 * 3
