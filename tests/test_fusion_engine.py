"""The risk engine: declaration prior, evidence over time, calibration, policy, feedback."""

import math
import pathlib

import pytest

from customs_lab.common.subjects import Subject, SubjectKind
from customs_lab.fusion.declaration_prior import DeclarationFeatures, DeclarationPrior
from customs_lab.fusion.engine import EngineConfig, RiskEngine, contraband_log_odds
from customs_lab.fusion.logodds import EvidenceItem, logit, sigmoid
from customs_lab.fusion.policy import PolicyConfig
from customs_lab.simulation.history import generate_history, training_records
from customs_lab.simulation.scenario import Scenario

ROOT = pathlib.Path(__file__).resolve().parents[1]
CONTAINER = Subject(SubjectKind.CONTAINER, 'CSQU3054383')


@pytest.fixture(scope='module')
def fitted():
    """Return 60 days of the smoke scenario's history and a prior fitted on it."""
    scenario = Scenario.load(ROOT / 'config' / 'scenarios' / 'smoke.yaml')
    history = generate_history(scenario, days=60)
    return history, DeclarationPrior(inspection_sensitivity=0.9).fit(training_records(history))


def engine(prior=None, **policy):
    policy.setdefault('random_audit_rate', 0.0)
    return RiskEngine(EngineConfig(policy=PolicyConfig(**policy)), prior)


def gamma(evidence_id, llr, sensor='rpm/portal_lane_1', group='', text='gross counts'):
    return EvidenceItem(evidence_id, 'radiation.gamma', sensor, llr, 0.1, group, text)


def container_features(**fields):
    values = dict(subject_kind='container', hs_code='940360', origin_country='CN',
                  declarant_id='IMP01', consignee_id='CON01', quantity=10, net_mass=2000.0,
                  gross_mass=2300.0, declared_value=9000.0)
    values.update(fields)
    return DeclarationFeatures(**values)


def test_without_a_declaration_the_base_rate_is_the_prior_and_the_explanation_says_so():
    e = engine()
    decision = e.decide(CONTAINER, 0.0)
    assert decision.assessment.prior == pytest.approx(0.01)
    assert decision.action == 'release' and decision.channel == 0
    assert 'prior: base rate of containers 0.01 (no declaration)' in decision.explanation
    assert 'evidence: none yet' in decision.explanation


def test_the_declaration_prior_sets_the_prior_and_explains_it(fitted):
    history, prior = fitted
    e = engine(prior)
    past = next(h for h in history if h.subject_kind == 'container' and h.outcome)
    e.declare(CONTAINER.key, 'D1', past.features())
    decision = e.decide(CONTAINER, 0.0)
    expected = prior.log_odds(past.features())
    assert decision.assessment.prior_log_odds == pytest.approx(expected.log_odds)
    assert 'prior: declaration prior' in decision.explanation
    assert prior.version in decision.explanation  # every component's version is named


def test_evidence_adds_in_log_odds_and_a_correlation_group_counts_once():
    e = engine()
    e.add_evidence(CONTAINER.key, gamma('a', 2.0, 'rpm/lane_1/left', 'portal_lane_1'), 1.0)
    e.add_evidence(CONTAINER.key, gamma('b', 4.0, 'rpm/lane_1/right', 'portal_lane_1'), 1.0)
    e.add_evidence(CONTAINER.key, EvidenceItem('c', 'xray.density', 'xray/1', 1.0), 1.0)
    a = e.assess(CONTAINER, 2.0)
    assert a.raw_log_odds == pytest.approx(logit(0.01) + 3.0 + 1.0)
    assert a.posterior == pytest.approx(sigmoid(logit(0.01) + 4.0))
    assert sorted(c.weight for c in a.contributions) == [0.5, 0.5, 1.0]


def test_a_newer_pass_through_the_same_portal_supersedes_the_older():
    e = engine()
    e.add_evidence(CONTAINER.key, gamma('first', 5.0), 10.0)
    e.add_evidence(CONTAINER.key, gamma('second', -1.0), 20.0)
    decision = e.decide(CONTAINER, 30.0)
    assert [c.item.evidence_id for c in decision.assessment.contributions] == ['second']
    assert decision.assessment.raw_log_odds == pytest.approx(logit(0.01) - 1.0)
    assert 'radiation.gamma from rpm/portal_lane_1 not used: superseded by the newer second' \
        in decision.explanation


def test_expired_evidence_is_not_used_and_is_named():
    e = RiskEngine(EngineConfig(ttl={'': 100.0}, policy=PolicyConfig(random_audit_rate=0.0)))
    e.add_evidence(CONTAINER.key, gamma('old', 5.0), 0.0)
    assert e.assess(CONTAINER, 50.0).raw_log_odds == pytest.approx(logit(0.01) + 5.0)
    late = e.decide(CONTAINER, 150.0)
    assert late.assessment.raw_log_odds == pytest.approx(logit(0.01))
    assert 'not used: expired at 100 s' in late.explanation


def test_strong_evidence_is_inspected_and_the_explanation_ranks_it():
    e = engine()
    e.add_evidence(CONTAINER.key, gamma('hot', 9.0, text='Cs-137 window 40 sigma'), 1.0)
    decision = e.decide(CONTAINER, 2.0)
    assert decision.channel == 2 and decision.policy.selection == 'targeted'
    assert decision.explanation.startswith(f'RED ({decision.action}): risk ')
    assert 'radiation.gamma from rpm/portal_lane_1 +9.00 nats (Cs-137 window 40 sigma)' \
        in decision.explanation
    assert 'policy: expected cost' in decision.explanation


def test_an_unreadable_id_is_never_released():
    decision = engine().decide(CONTAINER, 0.0, id_valid=False)
    assert decision.action == 'document_check'
    assert 'not released: the subject id failed validation' in decision.explanation


def test_an_officer_override_is_taken_and_named():
    e = engine()
    e.override(CONTAINER.key, 'physical_inspection', 'officer_17', 'tip-off')
    decision = e.decide(CONTAINER, 0.0)
    assert decision.action == 'physical_inspection'
    assert 'officer override by officer_17' in decision.explanation
    assert e.decide(CONTAINER, 1.0).action == 'physical_inspection'  # until withdrawn
    assert e.withdraw_override(CONTAINER.key) and not e.withdraw_override(CONTAINER.key)
    assert e.decide(CONTAINER, 2.0).action == 'release'  # the model's again
    e.override(CONTAINER.key, 'hold', 'officer_17', 'tip-off')
    e.forget(CONTAINER.key)  # a forgotten subject keeps nothing, its override included
    assert e.decide(CONTAINER, 3.0).action == 'release'


def test_model_version_is_short_and_changes_when_the_engine_learns(fitted):
    history, prior = fitted
    e = engine(DeclarationPrior.from_dict(prior.to_dict()))
    features = container_features(declarant_id=history[-1].declarant_id)
    e.declare(CONTAINER.key, 'D7', features)
    before = e.decide(CONTAINER, 0.0)
    assert len(before.model_version) <= 128 and before.model_version.startswith('customs-risk/')
    assert e.learn(CONTAINER.key, 'D7', True) == ['prior', 'calibration']
    after = e.decide(CONTAINER, 1.0)
    assert after.model_version != before.model_version
    assert after.assessment.prior_log_odds > before.assessment.prior_log_odds  # a seizure
    # an inspection result for a subject the engine never saw changes nothing
    assert e.learn('container:ABCU0000000', 'unknown', True) == []


def test_calibration_starts_after_enough_results_of_both_outcomes():
    e = RiskEngine(EngineConfig(calibration_min_labels=40,
                                policy=PolicyConfig(random_audit_rate=0.0)))
    scores = []
    for n in range(60):  # raw log-odds twice too confident: true log-odds = raw / 2
        subject = Subject(SubjectKind.CONTAINER, f'S{n}')
        e.add_evidence(subject.key, gamma(f'e{n}', 8.0 * (n % 6) / 5), 1.0)
        scores.append(e.decide(subject, 2.0).assessment.raw_log_odds)
    assert not e.calibrated and 'uncalibrated' in e.components()['calibration']
    for n, raw in enumerate(scores):  # outcomes drawn from the true log-odds, deterministically
        seizure = ((n * 7919) % 1000) / 1000 < sigmoid(raw / 2)
        e.learn(f'container:S{n}', '', seizure)
    assert e.calibrated and e.components()['calibration'].startswith('evcal+')
    # it learned that the portal's LLRs were over-confident
    assert e.calibrator.coefficient('radiation.gamma|capped') < 1.0
    a = e.assess(Subject(SubjectKind.CONTAINER, 'S5'), 3.0)
    assert a.log_odds == pytest.approx(contraband_log_odds(e.calibrator.log_odds(a.features),
                                                           0.9))
    assert sigmoid(a.log_odds) == pytest.approx(sigmoid(e.calibrator.log_odds(a.features)) / 0.9)
    assert any(n.startswith('calibrated') for n in a.notes)
    # each contribution is the calibrated one, and they add up with the calibrated prior
    c = e.calibrator
    assert a.contributions[0].contribution == pytest.approx(
        c.coefficient('radiation.gamma|capped') * 8.0)
    assert a.log_odds == pytest.approx(contraband_log_odds(
        c.coefficient('prior') * a.prior_log_odds + c.coefficient('intercept')
        + sum(x.contribution for x in a.contributions), 0.9))


def test_calibration_tells_norm_cargo_from_sources_by_how_far_beyond_the_cap_they_are():
    """Gross-count alarms: NORM cargo tens to hundreds of nats, real sources 10^4 and more."""
    e = RiskEngine(EngineConfig(calibration_min_labels=100,
                                policy=PolicyConfig(random_audit_rate=0.0)))
    llrs = []
    for n in range(300):
        kind = n % 6  # 0-3 clean, 4 NORM cargo, 5 a source
        llr = (-2.0 - 0.01 * n, -1.0, -3.0, 0.5, 30.0 * (1 + n % 7), 1e4 * (1 + n % 11))[kind]
        llrs.append(llr)
        subject = Subject(SubjectKind.CONTAINER, f'S{n}')
        e.add_evidence(subject.key, gamma(f'e{n}', llr), 1.0)
        before = e.decide(subject, 2.0).assessment
        assert before.log_odds == before.raw_log_odds  # uncalibrated: the capped sum
    for n in range(len(llrs)):
        e.learn(f'container:S{n}', '', n % 6 == 5)
    assert e.calibrated
    norm = e.assess(Subject(SubjectKind.CONTAINER, 'S4'), 3.0)  # 150 nats of NORM
    source = e.assess(Subject(SubjectKind.CONTAINER, 'S5'), 3.0)  # 6 * 10^4 nats
    assert norm.raw_log_odds == source.raw_log_odds  # the cap alone cannot tell them apart
    assert norm.posterior < 0.1 < 0.9 < source.posterior
    assert e.calibrator.coefficient('radiation.gamma|excess') > 0.5
    assert 'plus its calibrated excess' in ' '.join(source.notes)
    assert 'per e-fold beyond' in ' '.join(source.notes)


def test_bad_declaration_features_are_refused_when_a_prior_is_loaded(fitted):
    e = engine(fitted[1])
    with pytest.raises(ValueError):
        e.declare(CONTAINER.key, 'D1', container_features(net_mass=float('nan')))
    with pytest.raises(ValueError):
        e.add_evidence(CONTAINER.key, gamma('nan', float('nan')), 1.0)
    assert e.declaration(CONTAINER.key) is None and not e.store.records(CONTAINER.key)


def test_no_single_item_counts_beyond_the_cap():
    e = engine()
    e.add_evidence(CONTAINER.key, gamma('huge', 2.9e6, text='118x background'), 1.0)
    decision = e.decide(CONTAINER, 2.0)
    assert decision.assessment.raw_log_odds == pytest.approx(logit(0.01) + 20.0)
    assert 'radiation.gamma from rpm/portal_lane_1 reported +2.9e+06 nats, counted as +-20' \
        in decision.explanation
    assert decision.action == 'physical_inspection'  # still far above the safety floor
    # the contribution keeps what the sensor reported (the database stores it) and what counted
    (c,) = decision.assessment.contributions
    assert (c.item.log_likelihood_ratio, c.contribution) == (2.9e6, 20.0)
    with pytest.raises(ValueError, match='llr_cap'):
        RiskEngine(EngineConfig(llr_cap=0.0))


def test_a_release_override_does_not_outlast_an_alarm_observed_after_it():
    e = engine()
    e.override(CONTAINER.key, 'release', 'officer_3', 'known shipper, seen the papers', at=10.0)
    e.add_evidence(CONTAINER.key, gamma('e1', 3.0), 5.0)  # seen before the override
    assert e.decide(CONTAINER, 11.0).action == 'release'
    e.add_evidence(CONTAINER.key, gamma('e2', 15.0), 20.0)  # an alarm after it
    decision = e.decide(CONTAINER, 21.0)
    assert decision.policy.must_inspect and decision.action != 'release'
    assert 'officer override by officer_3: release set aside' in decision.explanation
    assert e.policy.override_in_force(CONTAINER.key) is None  # to be given again
    # given again after the alarm, the officer has seen it: it holds
    e.override(CONTAINER.key, 'release', 'officer_3', 'licensed Cs-137 gauge', at=30.0)
    assert e.decide(CONTAINER, 31.0).action == 'release'
    # an inspection override is never set aside
    e.override(CONTAINER.key, 'hold', 'officer_3', 'paperwork', at=40.0)
    e.add_evidence(CONTAINER.key, gamma('e3', 16.0), 50.0)
    assert e.decide(CONTAINER, 51.0).action == 'hold'


def test_contraband_log_odds_divides_the_probability_of_a_find_by_the_sensitivity():
    assert sigmoid(contraband_log_odds(logit(0.45), 0.9)) == pytest.approx(0.5)
    assert sigmoid(contraband_log_odds(logit(0.85), 0.9)) == pytest.approx(0.85 / 0.9)
    assert contraband_log_odds(-50.0, 0.9) == pytest.approx(-50.0 - math.log(0.9))
    assert 27.0 < contraband_log_odds(logit(0.95), 0.9) < 28.0  # capped just below 1
    assert contraband_log_odds(3.0, 1.0) == pytest.approx(3.0)


def test_clean_portal_readings_do_not_clear_a_parcel_of_what_only_the_x_ray_sees():
    parcel = Subject(SubjectKind.PARCEL, 'EE123456785KR')
    config = EngineConfig(policy=PolicyConfig(random_audit_rate=0.0),
                          coverage={SubjectKind.PARCEL: {'radiation.': 0.54, 'xray.': 0.46}})
    covered, plain = RiskEngine(config), engine()
    for e in (covered, plain):
        e.add_evidence(parcel.key, EvidenceItem('g', 'radiation.gamma', 'rpm/p', -3.7), 1.0)
        e.add_evidence(parcel.key, EvidenceItem('n', 'radiation.neutron', 'rpm/p', -2.7), 1.0)
        e.add_evidence(parcel.key, EvidenceItem('x', 'xray.material', 'xray/p', 4.0), 2.0)
    a, b = covered.assess(parcel, 3.0), plain.assess(parcel, 3.0)
    assert b.raw_log_odds < logit(0.005)  # the portals' -6.4 outweighed the powder's +4
    assert a.raw_log_odds > logit(0.005) + 2.0
    assert any('radiation.* evidence -6.40 counted as' in n for n in a.notes)
    decision = covered.decide(parcel, 3.0)
    assert 'covers 54% of the contraband here' in decision.explanation
    assert covered.components()['coverage'].startswith('coverage+')
    assert plain.components()['coverage'] == 'full-coverage'
    with pytest.raises(ValueError, match='coverage'):
        EngineConfig(coverage={SubjectKind.PARCEL: {'xray.': 0.0}}).validate()
