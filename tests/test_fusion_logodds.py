"""Log-odds fusion: priors, correlated evidence counted once, channels and explanations."""

import math

import pytest

from customs_lab.common.subjects import Subject, SubjectKind
from customs_lab.fusion.logodds import EvidenceItem, FusionConfig, combine, decide, logit, sigmoid

CONTAINER = Subject(SubjectKind.CONTAINER, 'CSQU3054383')


def item(llr, group='', evidence_id=None, kind='radiation.gamma'):
    return EvidenceItem(
        evidence_id or f'e{llr}{group}',
        kind,
        'rpm/test',
        llr,
        correlation_group=group,
        explanation='test',
    )


def test_logit_and_sigmoid_are_inverse_and_stable():
    for p in (1e-9, 0.01, 0.5, 0.99, 1 - 1e-9):
        assert sigmoid(logit(p)) == pytest.approx(p, rel=1e-9)
    assert sigmoid(-1000.0) == 0.0 and sigmoid(1000.0) == 1.0


def test_independent_evidence_adds_in_log_odds():
    total, contributions = combine([item(2.0), item(-0.5)])
    assert total == pytest.approx(1.5)
    assert [c.weight for c in contributions] == [1.0, 1.0]


def test_a_correlation_group_counts_once():
    # three panels of one portal saying the same thing must not triple the evidence
    total, contributions = combine(
        [item(3.0, 'portal', 'a'), item(3.0, 'portal', 'b'), item(3.0, 'portal', 'c'), item(1.0)]
    )
    assert total == pytest.approx(4.0)
    assert sorted(round(c.weight, 3) for c in contributions) == [0.333, 0.333, 0.333, 1.0]


def test_posterior_is_bayes_rule():
    config = FusionConfig()
    decision = decide(CONTAINER, [item(math.log(99.0))], config)  # LR 99 on a 1 % prior
    assert decision.prior == 0.01
    assert decision.posterior == pytest.approx(0.5, abs=1e-9)


def test_channels_follow_the_thresholds():
    config = FusionConfig(yellow_threshold=0.05, red_threshold=0.5)
    assert decide(CONTAINER, [], config).channel == 0
    yellow = decide(CONTAINER, [item(logit(0.1) - logit(0.01))], config)
    assert yellow.channel == 1 and yellow.action == 'document_check'
    red = decide(CONTAINER, [item(10.0)], config)
    assert red.channel == 2 and red.action == 'physical_inspection'
    assert 'radiation.gamma' in red.explanation and red.contributions[0].contribution == 10.0


def test_an_unreadable_id_is_never_released_unchecked():
    decision = decide(CONTAINER, [item(-3.0)], FusionConfig(), id_valid=False)
    assert decision.channel == 1 and 'failed validation' in decision.explanation


def test_bad_configuration_and_evidence_are_refused():
    with pytest.raises(ValueError):
        FusionConfig(yellow_threshold=0.6, red_threshold=0.5).validate()
    with pytest.raises(ValueError):
        FusionConfig(base_rate={SubjectKind.CONTAINER: 0.0}).validate()
    with pytest.raises(ValueError):
        combine([item(float('nan'))])


def test_model_version_changes_with_the_configuration():
    assert FusionConfig().version == FusionConfig().version
    assert FusionConfig().version != FusionConfig(red_threshold=0.6).version


def test_a_sensor_family_counts_only_for_the_contraband_it_covers():
    from customs_lab.fusion.logodds import cover, family_of

    coverage = {'radiation.': 0.54, 'xray.': 0.46}
    assert family_of('radiation.gamma', coverage) == 'radiation.'
    assert family_of('xray.threat', {'xray.': 0.5, 'xray.threat': 0.2}) == 'xray.threat'
    assert family_of('cctv.behaviour', coverage) == ''
    items = [item(-3.7, kind='radiation.gamma'), item(-2.7, kind='radiation.neutron'),
             item(-4.1, kind='xray.threat'), item(5.7, kind='xray.material'),
             item(1.0, kind='cctv.behaviour')]
    _, contributions = combine(items)
    covered, notes = cover(contributions, coverage)
    by_kind = {c.item.kind: c for c in covered}
    radiation = by_kind['radiation.gamma'].contribution + by_kind['radiation.neutron'].contribution
    assert radiation == pytest.approx(math.log(0.46 + 0.54 * math.exp(-6.4)))
    assert radiation > math.log(0.46)  # a clean reading clears at most ln(1 / (1 - c))
    xray = by_kind['xray.threat'].contribution + by_kind['xray.material'].contribution
    assert xray == pytest.approx(math.log(0.54 + 0.46 * math.exp(1.6)))
    # each item of a family keeps its share of the family's evidence and its sign
    assert by_kind['radiation.gamma'].contribution / by_kind['radiation.neutron'].contribution \
        == pytest.approx(3.7 / 2.7)
    assert by_kind['cctv.behaviour'].contribution == 1.0  # not listed: counted as it is
    assert len(notes) == 2 and 'covers 54%' in notes[0]
    # an alarm counts nearly in full: a strong LLR loses ln(c) only
    _, strong = combine([item(60.0)])
    (alarm,), _ = cover(strong, coverage)
    assert alarm.contribution == pytest.approx(60.0 + math.log(0.54))
    # full coverage leaves everything as it was
    assert cover(contributions, {'radiation.': 1.0}) == (contributions, [])
