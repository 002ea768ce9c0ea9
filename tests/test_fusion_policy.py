"""Decision policy: expected cost, the budget's shadow price, the safety floor, overrides."""

from dataclasses import replace
import math

import numpy as np
import pytest

from customs_lab.common.subjects import Subject, SubjectKind
from customs_lab.fusion.logodds import logit
from customs_lab.fusion.policy import (
    CostModel,
    DecisionPolicy,
    PolicyConfig,
    default_models,
)

SHIFT = 8 * 3600.0
INSPECT = {'xray_inspection', 'robot_inspection', 'physical_inspection', 'hold'}


def parcel(n):
    return Subject(SubjectKind.PARCEL, f'EX{n:08d}')


def container(n=0):
    return Subject(SubjectKind.CONTAINER, f'CSQU305438{n}')


def test_expected_costs_follow_the_formula():
    decision = DecisionPolicy().decide(parcel(1), 0.1, 0.0, commit=False)
    # release 0 + 0.1*1*100; X-ray 4 + 0.1*0.15*100; hold 11 + 0.1*0.02*100
    assert decision.expected_costs == pytest.approx(
        {'release': 10.0, 'xray_inspection': 5.5, 'hold': 11.2}
    )
    assert decision.action == 'xray_inspection' and decision.channel == 1


def test_switch_points_and_channels_of_the_default_models():
    policy = DecisionPolicy()
    x_from = 4.0 / 85.0  # parcel: X-ray pays from cost / (detect * miss cost)
    assert policy.decide(parcel(1), x_from - 1e-6, 0.0, commit=False).action == 'release'
    assert policy.decide(parcel(1), x_from + 1e-6, 0.0, commit=False).action == 'xray_inspection'
    expected = {
        0.01: ('release', 0),
        0.03: ('document_check', 1),
        0.1: ('xray_inspection', 1),
        0.45: ('robot_inspection', 2),
        0.7: ('physical_inspection', 2),
    }
    for p, (action, channel) in expected.items():
        decision = policy.decide(container(), p, 0.0, commit=False)
        assert (decision.action, decision.channel) == (action, channel), p
    passenger = Subject(SubjectKind.PASSENGER, 'track17', 'hall_a')
    assert policy.decide(passenger, 0.1, 0.0, commit=False).action == 'document_check'
    assert policy.decide(passenger, 0.2, 0.0, commit=False).action == 'physical_inspection'


def test_the_shadow_price_rises_over_budget_and_falls_back():
    policy = DecisionPolicy()  # parcels: step = 0.01 * 100 = 1 minute, target 3 %
    first = policy.decide(parcel(1), 0.2, 0.0)
    assert first.action == 'xray_inspection' and first.budget.shadow_price == 0.0
    assert policy.budget(SubjectKind.PARCEL, 1.0).shadow_price == pytest.approx(0.97)
    second = policy.decide(parcel(2), 0.001, 2.0)
    assert second.action == 'release'
    assert policy.budget(SubjectKind.PARCEL, 3.0).shadow_price == pytest.approx(0.94)
    third = policy.decide(parcel(3), 0.055, 4.0)  # X-rayed at price 0: 4.825 < 5.5
    assert third.action == 'release'  # 4.825 + 0.94 > 5.5
    assert third.expected_costs == pytest.approx(
        {'release': 5.5, 'xray_inspection': 4.825, 'hold': 11.11}
    )
    assert (
        'inspection budget: 50.0% used of 3.0% this shift (1 of 2 parcels), shadow cost +0.9'
        in third.explanation
    )
    for n in range(4, 40):  # 36 releases bring the price back down to its floor of 0
        policy.decide(parcel(n), 0.001, float(n))
    assert policy.budget(SubjectKind.PARCEL, 50.0).shadow_price == 0.0


def test_a_redecision_replaces_the_subjects_earlier_count():
    policy = DecisionPolicy()
    policy.decide(parcel(1), 0.2, 0.0)
    policy.decide(parcel(1), 0.001, 10.0)  # new evidence cleared it
    state = policy.budget(SubjectKind.PARCEL, 20.0)
    assert (state.subjects, state.inspections, state.shadow_price) == (1, 0, 0.0)


def test_a_new_shift_restarts_the_counters_and_keeps_the_price():
    policy = DecisionPolicy()
    for n in range(5):
        policy.decide(parcel(n), 0.2, 100.0 * n)
    before = policy.budget(SubjectKind.PARCEL, SHIFT - 1.0)
    assert (before.shift, before.subjects, before.inspections) == (0, 5, 5)
    after = policy.budget(SubjectKind.PARCEL, SHIFT)
    assert (after.shift, after.subjects, after.inspections) == (1, 0, 0)
    assert after.shadow_price == before.shadow_price == pytest.approx(5 * 0.97)


def realistic_stream(seed, n=10_000, base_rate=0.01, hours=30.0):
    """Parcels: 1 % contraband; fused LLRs from sensors that overlap; calibrated posteriors."""
    rng = np.random.default_rng(seed)
    bad = rng.random(n) < base_rate
    llr = np.where(bad, rng.normal(2.5, 1.5, n), rng.normal(-0.3, 1.2, n))
    posterior = 1.0 / (1.0 + np.exp(-(logit(base_rate) + llr)))
    return bad, posterior, np.sort(rng.uniform(0.0, hours * 3600.0, n))


def run(policy, posterior, times, kind_subject=parcel):
    actions = [
        policy.decide(kind_subject(i), float(p), float(t)).action
        for i, (p, t) in enumerate(zip(posterior, times, strict=True))
    ]
    return np.array([a in INSPECT for a in actions])


def test_the_budget_holds_on_10000_subjects_and_inspects_the_riskiest():
    bad, posterior, times = realistic_stream(seed=2024)
    policy = DecisionPolicy(PolicyConfig(random_audit_rate=0.0))  # the costs alone
    unconstrained = np.mean(posterior >= 4.0 / 85.0)  # what price 0 would inspect
    assert unconstrained > 0.05  # the stream asks for twice the capacity: the budget binds
    inspected = run(policy, posterior, times)
    assert abs(inspected.mean() - 0.03) < 0.005
    shifts = np.floor(times / SHIFT)
    for shift in np.unique(shifts):  # and within every shift (the last is 6 h long)
        assert abs(inspected[shifts == shift].mean() - 0.03) < 0.005, shift
    caught = inspected[bad].mean()
    assert caught > 0.6  # random inspection at 3 % would catch about 3 % of 101 positives
    # close to the hindsight best: the same number of inspections on the highest posteriors
    top = np.argsort(-posterior)[: inspected.sum()]
    hindsight = bad[top].sum() / bad.sum()  # 0.72 on this stream
    assert caught >= 0.9 * hindsight
    assert posterior[inspected].min() > np.quantile(posterior, 0.9)


def test_an_ample_budget_leaves_the_cost_optimal_choice_alone():
    _, posterior, times = realistic_stream(seed=7, n=3000, base_rate=0.005)
    free = posterior >= 4.0 / 85.0  # what price 0 would inspect: a calm stream, 1.7 %
    assert 0.01 < free.mean() < 0.025
    policy = DecisionPolicy(PolicyConfig(random_audit_rate=0.0))  # the costs alone
    inspected = run(policy, posterior, times)
    # the price only flickers (0.97 after an inspection, back to 0 within 33 subjects)
    assert np.sum(inspected != free) <= 2 and np.all(inspected <= free)
    assert policy.budget(SubjectKind.PARCEL, times[-1]).shadow_price < 1.0


def test_the_safety_floor_inspects_regardless_of_the_budget():
    policy = DecisionPolicy(PolicyConfig(must_inspect=0.3))
    for n in range(100):  # a run of parcels above the floor blows the budget
        assert policy.decide(parcel(n), 0.45, float(n)).action == 'xray_inspection'
    price = policy.budget(SubjectKind.PARCEL, 100.0).shadow_price
    assert price == pytest.approx(100 * 0.97)
    assert policy.decide(parcel(200), 0.25, 101.0).action == 'release'  # priced out
    floored = policy.decide(parcel(201), 0.35, 102.0)
    assert floored.must_inspect and floored.action == 'xray_inspection'
    assert 'safety floor: risk >= must-inspect 0.3' in floored.explanation
    assert '(the budget alone: release)' in floored.explanation
    # and it counts against the budget: the price went up again
    assert policy.budget(SubjectKind.PARCEL, 103.0).shadow_price > floored.budget.shadow_price


def test_an_officer_override_holds_until_it_is_withdrawn():
    policy = DecisionPolicy()
    key = parcel(9).key
    recorded = policy.override(key, 'hold', 'officer_17', 'tip-off from the carrier')
    assert policy.override_in_force(key) == recorded
    preview = policy.decide(parcel(9), 0.001, 0.0, commit=False)
    assert preview.action == 'hold' and policy.override_in_force(key) == recorded
    decision = policy.decide(parcel(9), 0.001, 0.0)
    assert (decision.action, decision.channel, decision.override) == ('hold', 2, recorded)
    assert (
        'officer override by officer_17: hold (tip-off from the carrier); '
        'the policy chose release'
    ) in decision.explanation
    assert policy.budget(SubjectKind.PARCEL, 1.0).inspections == 1  # a hold uses capacity
    # late evidence re-decides the subject: the officer's hold stays
    again = policy.decide(parcel(9), 0.0001, 5.0)
    assert again.action == 'hold' and again.override == recorded
    assert policy.budget(SubjectKind.PARCEL, 6.0).inspections == 1  # the same subject
    # another officer's override replaces it; withdrawn, the policy decides again
    policy.override(key, 'release', 'officer_3', 'known shipper')
    assert policy.decide(parcel(9), 0.001, 7.0).action == 'release'
    assert policy.cancel_override(key) and not policy.cancel_override(key)
    later = policy.decide(parcel(9), 0.9, 8.0)
    assert later.override is None and later.action != 'release'


def test_version_is_a_digest_of_the_configuration():
    assert DecisionPolicy().version == DecisionPolicy(PolicyConfig()).version
    assert DecisionPolicy().version.startswith('policy-cost/0.1.0+cfg.')
    models = default_models()
    models[SubjectKind.PARCEL] = replace(models[SubjectKind.PARCEL], target_rate=0.05)
    changed = DecisionPolicy(PolicyConfig(models=models))
    assert changed.version != DecisionPolicy().version
    assert changed.decide(parcel(1), 0.2, 0.0).policy_version == changed.version


def test_bad_input_is_rejected_with_a_reason():
    policy = DecisionPolicy()
    for bad in (math.nan, -0.1, 1.5, '0.2'):
        with pytest.raises(ValueError, match='posterior must be a probability'):
            policy.decide(parcel(1), bad, 0.0)
    with pytest.raises(ValueError, match='now must be a finite time'):
        policy.decide(parcel(1), 0.1, math.inf)
    with pytest.raises(ValueError, match='no cost model for subject kind UNKNOWN'):
        policy.decide(Subject(SubjectKind.UNKNOWN, 'x'), 0.1, 0.0)
    with pytest.raises(ValueError, match="unknown action 'shred'"):
        policy.override(parcel(1).key, 'shred', 'officer_1', 'why not')
    with pytest.raises(ValueError, match='non-empty reason'):
        policy.override(parcel(1).key, 'hold', 'officer_1', ' ')
    assert policy.budget(SubjectKind.PARCEL, 0.0).subjects == 0  # nothing was counted


@pytest.mark.parametrize(
    'change, message',
    [
        ({'detect': {'release': 0.0, 'xray_inspection': 1.2, 'hold': 0.98}}, 'detect of xray'),
        ({'detect': {'release': 0.1, 'xray_inspection': 0.8, 'hold': 0.98}}, 'release cannot'),
        ({'cost': {'release': 0.0, 'hold': 11.0}}, 'cost of xray_inspection'),
        ({'allowed': ('release', 'teleport')}, "unknown action 'teleport'"),
        ({'allowed': ('release',)}, 'no allowed action consumes capacity'),
        ({'miss_cost': 0.0}, 'miss_cost must be'),
        ({'target_rate': 0.0}, 'target_rate must be in'),
    ],
)
def test_inconsistent_cost_models_are_rejected(change, message):
    models = default_models()
    models[SubjectKind.PARCEL] = replace(models[SubjectKind.PARCEL], **change)
    with pytest.raises(ValueError, match=message):
        DecisionPolicy(PolicyConfig(models=models))


def test_inconsistent_policy_settings_are_rejected():
    for kwargs, message in (
        ({'must_inspect': 0.0}, 'must_inspect'),
        ({'shift_length': 0.0}, 'shift_length'),
        ({'price_step': -1.0}, 'price_step'),
        ({'capacity_actions': ('release', 'hold')}, 'capacity actions'),
        ({'models': {}}, 'at least one subject kind'),
    ):
        with pytest.raises(ValueError, match=message):
            DecisionPolicy(PolicyConfig(**kwargs))
    assert isinstance(default_models()[SubjectKind.PARCEL], CostModel)


def test_a_time_in_an_earlier_shift_does_not_restart_the_counts():
    policy = DecisionPolicy()
    policy.decide(parcel(1), 0.2, SHIFT + 10.0)
    late = policy.decide(parcel(2), np.float32(0.001), SHIFT - 10.0)  # stamped a shift earlier
    assert (late.budget.shift, late.budget.subjects, late.budget.inspections) == (1, 1, 1)


def test_a_random_audit_inspects_its_share_of_what_the_costs_release():
    config = PolicyConfig(random_audit_rate=0.01)
    policy = DecisionPolicy(config)
    decisions = [policy.decide(parcel(n), 0.001, float(n)) for n in range(20_000)]
    audited = [d for d in decisions if d.selection == 'random']
    # binomial(20000, 0.01): mean 200, sd 14
    assert 150 < len(audited) < 250
    assert all(d.action == 'xray_inspection' for d in audited)  # the cheapest capacity action
    assert all(d.selection == '' and d.action == 'release'
               for d in decisions if d.selection != 'random')
    assert 'random audit (1.00% of subjects, for unbiased learning)' in audited[0].explanation
    # the draw is a property of the subject and the key: repeatable, and new with a new key
    again = DecisionPolicy(config)
    assert all(again.decide(parcel(n), 0.001, 0.0, commit=False).selection == d.selection
               for n, d in enumerate(decisions[:2000]))
    other = DecisionPolicy(PolicyConfig(random_audit_rate=0.01, audit_key='another site'))
    redrawn = {n for n in range(20_000)
               if other.decide(parcel(n), 0.001, 0.0, commit=False).selection == 'random'}
    assert len(redrawn & {int(d.subject_key.split('EX')[-1]) for d in audited}) < 20
    # audits use capacity: they count against the budget
    assert policy.budget(SubjectKind.PARCEL, 20_000.0).inspections == len(audited)


def test_selection_says_why_a_subject_is_inspected():
    policy = DecisionPolicy(PolicyConfig(random_audit_rate=0.0))
    assert policy.decide(parcel(1), 0.3, 0.0).selection == 'targeted'
    assert policy.decide(parcel(2), 0.001, 1.0).selection == ''
    policy.override(parcel(3).key, 'hold', 'officer_17', 'tip-off')
    assert policy.decide(parcel(3), 0.001, 2.0).selection == 'targeted'
    policy.override(parcel(4).key, 'release', 'officer_17', 'known diplomatic bag')
    assert policy.decide(parcel(4), 0.3, 3.0).selection == ''
    with pytest.raises(ValueError, match='random_audit_rate'):
        DecisionPolicy(PolicyConfig(random_audit_rate=1.0))
    with pytest.raises(ValueError, match='audit_key'):
        DecisionPolicy(PolicyConfig(audit_key=''))
    # the key is a secret: it does not change the published version
    assert PolicyConfig(audit_key='a').version == PolicyConfig(audit_key='b').version
