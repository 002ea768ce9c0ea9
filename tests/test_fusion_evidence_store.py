"""Evidence store: replacement, supersession by observation time, expiry, pruning, bad input."""

import math

import pytest

from customs_lab.fusion.evidence_store import (
    ACTIVE,
    EXPIRED,
    SUPERSEDED,
    EvidenceStore,
)
from customs_lab.fusion.logodds import EvidenceItem, combine

KEY = 'container:CSQU3054383'
TTL = {'cctv.': 1800.0, 'vitals.': 600.0, 'cctv.face.': 60.0, '': 7 * 86400.0}


def item(eid, llr=1.0, kind='radiation.gamma', sensor='rpm/portal_lane_1', std=0.1, group=''):
    return EvidenceItem(eid, kind, sensor, llr, std, group, f'test {eid}')


def ids(items):
    return [i.evidence_id for i in items]


def test_resending_an_evidence_id_replaces_it():
    store = EvidenceStore(TTL)
    first = store.add(KEY, item('a', 2.0), 100.0)
    assert not first.replaced and first.fused and first.expires_at == 100.0 + 7 * 86400
    again = store.add(KEY, item('a', 2.5), 100.0)
    assert again.replaced and again.fused and again.supersedes == ''
    assert len(store) == 1
    (only,) = store.active(KEY, 200.0)
    assert only.log_likelihood_ratio == 2.5
    # same id, same content: idempotent, the sum does not double
    store.add(KEY, item('a', 2.5), 100.0)
    assert combine(store.active(KEY, 200.0))[0] == pytest.approx(2.5)


def test_a_newer_scan_from_the_same_portal_supersedes_the_older_one():
    store = EvidenceStore(TTL)
    store.add(KEY, item('scan1', 3.0), 100.0)
    result = store.add(KEY, item('scan2', -0.5), 400.0)
    assert result.supersedes == 'scan1' and result.fused
    assert ids(store.active(KEY, 500.0)) == ['scan2']
    history = store.history(KEY)
    assert [(r.item.evidence_id, r.superseded_by) for r in history] == [
        ('scan1', 'scan2'),
        ('scan2', ''),
    ]
    assert history[0].status(500.0) == SUPERSEDED and history[1].status(500.0) == ACTIVE
    # a different kind from the same sensor, or another sensor, is its own slot
    store.add(KEY, item('n1', 0.7, kind='radiation.neutron'), 50.0)
    store.add(KEY, item('x1', 1.2, kind='xray.material', sensor='xray/1'), 60.0)
    assert ids(store.active(KEY, 500.0)) == ['n1', 'x1', 'scan2']
    assert combine(store.active(KEY, 500.0))[0] == pytest.approx(0.7 + 1.2 - 0.5)


def test_an_older_observation_arriving_late_is_superseded_on_arrival():
    store = EvidenceStore(TTL)
    store.add(KEY, item('new', 1.0), 400.0)
    late = store.add(KEY, item('old', 5.0), 100.0)  # arrives second, observed first
    assert not late.fused and late.superseded_by == 'new' and late.supersedes == ''
    assert ids(store.active(KEY, 500.0)) == ['new']
    assert ids(r.item for r in store.history(KEY)) == ['old', 'new']  # observation order
    # the superseded chain always names the slot's newest item
    store.add(KEY, item('newest', 0.2), 900.0)
    assert [r.superseded_by for r in store.history(KEY)] == ['newest', 'newest', '']


def test_equal_stamps_the_later_arrival_wins():
    store = EvidenceStore(TTL)
    store.add(KEY, item('first', 1.0), 100.0)
    result = store.add(KEY, item('second', 2.0), 100.0)
    assert result.supersedes == 'first'
    assert ids(store.active(KEY, 100.0)) == ['second']


def test_items_without_a_sensor_id_are_never_superseded():
    store = EvidenceStore(TTL)
    store.add(KEY, item('d1', 0.4, kind='declaration.risk', sensor=''), 10.0)
    store.add(KEY, item('d2', 0.3, kind='declaration.risk', sensor=''), 20.0)
    assert ids(store.active(KEY, 30.0)) == ['d1', 'd2']


def test_replacing_with_an_older_stamp_hands_the_slot_back():
    store = EvidenceStore(TTL)
    store.add(KEY, item('a', 1.0), 100.0)
    store.add(KEY, item('b', 2.0), 200.0)
    corrected = store.add(KEY, item('b', 2.0), 50.0)  # b re-sent with a corrected, older stamp
    assert corrected.replaced and corrected.superseded_by == 'a'
    assert ids(store.active(KEY, 300.0)) == ['a']


def test_time_to_live_is_by_longest_kind_prefix():
    store = EvidenceStore(TTL)
    assert store.ttl_for('cctv.behaviour') == 1800.0
    assert store.ttl_for('cctv.face.match') == 60.0
    assert store.ttl_for('vitals.heart_rate') == 600.0
    assert store.ttl_for('radiation.gamma') == 7 * 86400.0
    assert store.ttl_for('cctvx.behaviour') == 7 * 86400.0  # plain prefix, 'cctv.' needs the dot


def test_expired_items_leave_fusion_and_are_reported():
    store = EvidenceStore(TTL)
    key = 'passenger:hall_a/track17'
    store.add(key, item('cam', 1.5, kind='cctv.behaviour', sensor='cctv/7'), 1000.0)
    store.add(key, item('hr', 0.8, kind='vitals.heart_rate', sensor='thz/2'), 1000.0)
    store.add(key, item('decl', 0.3, kind='declaration.risk', sensor='clearance'), 1000.0)
    assert ids(store.active(key, 1599.9)) == ['cam', 'hr', 'decl']
    assert ids(store.active(key, 1600.0)) == ['cam', 'decl']  # vitals: 600 s, boundary excluded
    assert [r.item.evidence_id for r in store.expired(key, 1600.0)] == ['hr']
    assert ids(store.active(key, 2800.0)) == ['decl']
    assert {r.item.evidence_id: r.status(2800.0) for r in store.records(key)} == {
        'cam': EXPIRED,
        'hr': EXPIRED,
        'decl': ACTIVE,
    }
    # a stamp ahead of `now` (device clock skew) is active, not expired
    store.add(key, item('ahead', 0.1, kind='cctv.behaviour', sensor='cctv/9'), 5000.0)
    assert 'ahead' in ids(store.active(key, 4000.0))


def test_prune_forgets_subjects_expired_longer_than_the_grace():
    store = EvidenceStore({'': 100.0}, grace=50.0)
    store.add('parcel:A', item('a1'), 0.0)  # expires 100, prunable after 150
    store.add('parcel:B', item('b1'), 0.0)
    store.add('parcel:B', item('b2', sensor='xray/1', kind='xray.material'), 120.0)  # to 220
    assert store.prune(150.0) == []  # not *longer* than the grace yet
    assert store.prune(150.1) == ['parcel:A']
    assert store.subjects() == ['parcel:B']
    assert ids(r.item for r in store.history('parcel:B')) == ['b2']  # b1 gone, b2 kept
    assert store.prune(270.1) == ['parcel:B'] and len(store) == 0
    assert store.active('parcel:B', 0.0) == [] and store.history('parcel:B') == ()


def test_history_is_bounded_per_subject():
    store = EvidenceStore(TTL, history_limit=3)
    dropped = []
    for n in range(10):  # a portal re-scanning the same container ten times
        dropped += store.add(KEY, item(f's{n}', float(n)), 10.0 * n).dropped
    assert dropped == ['s0', 's1', 's2', 's3', 's4', 's5']
    assert ids(r.item for r in store.history(KEY)) == ['s6', 's7', 's8', 's9']
    assert ids(store.active(KEY, 100.0)) == ['s9']


def test_forget_and_subjects():
    store = EvidenceStore()
    store.add('parcel:X1', item('p'), 0.0)
    store.add(KEY, item('c'), 0.0)
    assert store.subjects() == ['parcel:X1', KEY]
    assert store.forget('parcel:X1') and not store.forget('parcel:X1')
    assert store.subjects() == [KEY]


@pytest.mark.parametrize(
    'bad, message',
    [
        (item('n', math.nan), 'non-finite log-likelihood ratio'),
        (item('i', math.inf), 'non-finite log-likelihood ratio'),
        (item('s', 1.0, std=-0.1), 'invalid LLR std'),
        (item('s', 1.0, std=math.nan), 'invalid LLR std'),
        (item('', 1.0), 'empty evidence_id'),
    ],
)
def test_bad_items_are_rejected_and_nothing_is_stored(bad, message):
    store = EvidenceStore()
    with pytest.raises(ValueError, match=message):
        store.add(KEY, bad, 0.0)
    assert len(store) == 0 and store.subjects() == []


def test_bad_arguments_are_rejected():
    store = EvidenceStore()
    with pytest.raises(ValueError, match='non-finite stamp'):
        store.add(KEY, item('a'), math.nan)
    with pytest.raises(ValueError, match='subject key'):
        store.add('', item('a'), 0.0)
    with pytest.raises(TypeError, match='EvidenceItem'):
        store.add(KEY, {'evidence_id': 'a'}, 0.0)
    with pytest.raises(ValueError, match="default ''"):
        EvidenceStore({'cctv.': 10.0})
    with pytest.raises(ValueError, match="ttl of 'cctv.'"):
        EvidenceStore({'cctv.': -1.0, '': 10.0})
    with pytest.raises(ValueError, match='grace'):
        EvidenceStore(grace=-1.0)
    with pytest.raises(ValueError, match='now must be finite'):
        store.prune(math.nan)
    assert len(store) == 0
