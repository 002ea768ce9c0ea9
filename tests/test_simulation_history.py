"""Past declarations with selective inspection labels, from the scenario's trader population."""

import copy
import pathlib

import numpy as np
import pytest

from customs_lab.simulation.history import generate_history, history_config, training_records
from customs_lab.simulation.scenario import Scenario, generate_traffic

ROOT = pathlib.Path(__file__).resolve().parents[1]
KINDS = ('container', 'parcel', 'passenger')


@pytest.fixture(scope='module')
def scenario():
    return Scenario.load(ROOT / 'config' / 'scenarios' / 'default.yaml')


@pytest.fixture(scope='module')
def history(scenario):
    return generate_history(scenario)  # the YAML's 90 days


def test_history_has_the_configured_days_and_volumes(scenario, history):
    config = history_config(scenario)
    assert config['days'] == 90
    assert sorted({h.day for h in history}) == list(range(1, 91))
    per_day = sum(int(scenario.spec[k + 's']['count']) for k in KINDS)
    assert len(history) == 90 * per_day
    assert len({h.declaration_id for h in history}) == len(history)
    assert [h.day for h in history] == sorted((h.day for h in history), reverse=True)


def test_history_is_reproducible_from_the_seed(scenario):
    again = generate_history(scenario, 3)
    assert again == generate_history(scenario, 3)
    other = Scenario(scenario.name, scenario.seed + 1, scenario.duration, 0, 0, scenario.spec)
    assert [h.declarant_id for h in generate_history(other, 3)] != [
        h.declarant_id for h in again]


def test_history_uses_the_same_traders_as_the_day(scenario, history):
    day = generate_traffic(scenario)
    day_declarants = {s.declarant_id for s in day if s.declarant_id}
    past_declarants = {h.declarant_id for h in history if h.declarant_id}
    # 90 days of history have seen nearly every trader who files today
    assert len(day_declarants & past_declarants) >= 0.9 * len(day_declarants)
    day_ids = {s.declaration_id for s in day}
    assert not day_ids & {h.declaration_id for h in history}


def test_only_inspected_declarations_have_outcomes(history):
    for h in history:
        assert (h.outcome is None) == (h.selection == '') == (not h.inspected)
        assert h.selection in ('', 'targeted', 'random')
        assert bool(h.finding) == bool(h.outcome)
    records = training_records(history)
    assert len(records) == len(history)
    assert records[0][0].subject_kind == history[0].subject_kind


def test_selection_rates_follow_the_history_block(scenario, history):
    config = history_config(scenario)
    for kind in KINDS:
        rows = [h for h in history if h.subject_kind == kind]
        n = len(rows)
        random_share = sum(h.selection == 'random' for h in rows) / n
        p = config['random_rate']
        assert abs(random_share - p) < 4 * np.sqrt(p * (1 - p) / n), kind
        # the targeted quota is per day (rounded at random), minus the few the audit took
        targeted = sum(h.selection == 'targeted' for h in rows) / n
        assert 0.8 * config['targeted_rate'] < targeted < 1.05 * config['targeted_rate'], kind


def test_targeted_inspections_follow_the_legacy_rules(scenario, history):
    rules = history_config(scenario)['legacy_rules']
    last_seizure = {}  # party -> day of its most recent seizure (days count down to 1)
    flagged_hits = 0
    for day in range(90, 0, -1):  # oldest first, as the rules saw it
        rows = [h for h in history if h.day == day]
        for h in rows:
            if h.selection != 'targeted':
                continue
            flagged = any(p in last_seizure and last_seizure[p] - day <= rules['trader_flag_days']
                          for p in (h.declarant_id, h.consignee_id) if p)
            flagged_hits += flagged
            assert (h.origin_country in rules['origins']
                    or h.hs_code[:2] in rules['hs_chapters'] or flagged), h
        for h in rows:  # a day's seizures flag their traders from the next day on
            if h.outcome:
                last_seizure.update({p: day for p in (h.declarant_id, h.consignee_id) if p})
    assert flagged_hits > 0  # the crude trader flag is in use


def test_random_audits_see_the_true_contraband_rate(scenario, history):
    # the uniform audit is an unbiased sample: its seizure rate is sensitivity x the true rate
    # of the traffic (measured on 20 days' worth of the day's traffic)
    config = history_config(scenario)
    big = copy.deepcopy(scenario.spec)
    for kind in KINDS:
        big[kind + 's']['count'] = int(big[kind + 's']['count']) * 20
    truth = generate_traffic(Scenario(scenario.name, scenario.seed, scenario.duration, 0, 0, big))
    rate = np.mean([s.contraband for s in truth])
    audits = [h.outcome for h in history if h.selection == 'random']
    p = config['inspection_sensitivity'] * rate
    assert abs(np.mean(audits) - p) < 4 * np.sqrt(p * (1 - p) / len(audits))
    targeted = [h.outcome for h in history if h.selection == 'targeted']
    assert np.mean(targeted) > np.mean(audits)  # the legacy rules do enrich, a little


def test_bad_history_blocks_are_refused(scenario):
    with pytest.raises(ValueError, match='history.days'):
        generate_history(scenario, 0)
    bad = copy.deepcopy(scenario.spec)
    bad['history']['random_rate'] = 1.5
    broken = Scenario(scenario.name, scenario.seed, scenario.duration, 0, 0, bad)
    with pytest.raises(ValueError, match='history.random_rate'):
        generate_history(broken, 2)
