"""The durable outbox and its delivery to the database, under faults.

Faults: the PostgreSQL server stopped for a while during a stream of decisions; the delivering
process killed with SIGKILL mid-stream and restarted; duplicate and out-of-order deliveries; a
record the database refuses. Afterwards every decision is in the database exactly once, in
order per subject, and the audit chain verifies.
"""

import math
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

from postgres_support import ThrowawayPostgres, fresh_database
import pytest
import sqlalchemy as sa

from customs_lab.clearance.database import ClearanceDatabase
from customs_lab.clearance.delivery import Delivery
from customs_lab.clearance.outbox import GroupCommitter, Outbox
from customs_lab.clearance.records import DecisionRecord
from customs_lab.clearance.schema import audit_log

SUBJECTS = ['CSQU3054383', 'MSCU6639870', 'MAEU1234565', 'HLXU8765432']


def decision(n: int, llr: float = 1.0) -> DecisionRecord:
    """Return the n-th decision of a stream: subjects in turn, site time increasing with n."""
    return DecisionRecord(
        decision_id=f'00000000-0000-4000-8000-{n:012d}',
        subject_kind='container',
        subject_id=SUBJECTS[n % len(SUBJECTS)],
        zone='',
        id_valid=True,
        channel='GREEN',
        recommended_action='release',
        prior_risk=0.01,
        posterior_risk=0.02,
        posterior_log_odds=-3.9,
        model_version='test/1',
        decided_at=float(n),
        explanation=f'decision {n}',
        contributions=(
            {
                'evidence_id': f'00000000-0000-4000-9000-{n:012d}',
                'kind': 'radiation.gamma',
                'sensor_id': 'rpm/portal_lane_1',
                'log_likelihood_ratio': llr,
                'weight': 1.0,
                'contribution': llr,
                'explanation': 'gross counts',
            },
        ),
    )


def put(outbox, records):
    return outbox.put_many(
        [(r.KIND, r.key, r.subject_key, r.to_payload()) for r in records]
    )


def assert_exactly_once_in_order(url, count):
    database = ClearanceDatabase(url)
    try:
        assert database.count_decisions() == count
        with database.engine.connect() as connection:
            audited = connection.execute(
                sa.select(audit_log.c.object_id)
                .where(audit_log.c.action == 'decision.stored')
                .order_by(audit_log.c.seq)
            ).scalars().all()
        assert len(audited) == count == len(set(audited))  # each stored once
        numbers = [int(object_id[-12:]) for object_id in audited]
        for subject in range(len(SUBJECTS)):  # per subject, in the order they arrived
            mine = [n for n in numbers if n % len(SUBJECTS) == subject]
            assert mine == sorted(mine)
        check = database.verify_audit()
        assert check.ok, check.problems[:5]
    finally:
        database.dispose()


def test_the_outbox_keeps_records_across_reopening(tmp_path):
    path = tmp_path / 'outbox.db'
    outbox = Outbox(path)
    assert put(outbox, [decision(1), decision(2)]) == 2
    assert not outbox.put('decision', decision(1).key, 'x', {})  # already waiting
    outbox.close()
    again = Outbox(path, synchronous='NORMAL')
    pending = again.peek(10)
    assert [p.key for p in pending] == [decision(1).key, decision(2).key]
    assert pending[0].payload == decision(1).to_payload()
    assert again.find('decision', 'container:' + SUBJECTS[2])['decision_id'] == (
        decision(2).decision_id
    )
    again.remove([pending[0].seq])
    assert len(again) == 1
    with pytest.raises(ValueError, match='FULL or NORMAL'):
        Outbox(path, synchronous='OFF')


def test_a_refused_record_is_kept_aside_and_does_not_block_the_rest(tmp_path, database_url):
    outbox = Outbox(tmp_path / 'outbox.db')
    bad = decision(2, llr=math.nan)
    put(outbox, [decision(1), bad, decision(3)])
    outbox.put('decision', 'decision:garbled', 'container:X', {'decision_id': 'x'})
    database = ClearanceDatabase(database_url)
    delivery = Delivery(outbox, database)
    assert delivery.deliver_once() == 4
    assert len(outbox) == 0
    assert database.count_decisions() == 2
    assert [key for key, _ in outbox.rejected()] == [bad.key, 'decision:garbled']
    assert 'not finite' in outbox.rejected()[0][1]
    assert delivery.stats.rejected == 2 and delivery.stats.stored == {'decision': 2}
    database.dispose()


def test_duplicates_and_late_redeliveries_are_stored_once(tmp_path, database_url):
    outbox = Outbox(tmp_path / 'outbox.db')
    database = ClearanceDatabase(database_url)
    delivery = Delivery(outbox, database, batch_size=7)
    stream = [decision(n) for n in range(40)]
    put(outbox, stream)
    put(outbox, stream[:10])  # duplicates while still waiting: not kept twice
    while delivery.deliver_once():
        pass
    put(outbox, stream[::3])  # delivered again later (a publisher's transient-local history)
    while delivery.deliver_once():
        pass
    assert delivery.stats.stored == {'decision': 40}
    assert delivery.stats.duplicates == len(stream[::3])
    assert_exactly_once_in_order(database_url, 40)
    database.dispose()


@pytest.mark.parametrize('group_commit', [True, False], ids=['group-commit', 'commit-each'])
def test_a_database_outage_during_a_stream_loses_nothing(tmp_path, group_commit):
    server = ThrowawayPostgres()  # its own server: this test stops it
    try:
        url = fresh_database(server.url())
        outbox = Outbox(tmp_path / 'outbox.db')
        database = ClearanceDatabase(url)
        delivery = Delivery(outbox, database, batch_size=50, max_retry_delay=0.4)
        # the bridge's path: records handed to a group committer that wakes the writer
        committer = GroupCommitter(outbox, on_committed=lambda _last: delivery.wake.set())
        stop = threading.Event()
        writer = threading.Thread(target=delivery.run, args=(stop, 0.05))
        writer.start()
        total = 3000
        for n in range(total):
            record = decision(n)
            if group_commit:
                committer.submit(record.KIND, record.key, record.subject_key, record.to_payload())
            else:
                delivery.accept(record)
            if n == 1000:
                committer.flush()
                server.stop('immediate')  # like a crash of the database host
            if n == 2000:
                committer.flush()
                noticed = time.monotonic() + 10
                while not delivery.stats.failures and time.monotonic() < noticed:
                    time.sleep(0.01)
                assert delivery.stats.failures > 0  # it noticed, and kept everything
                server.start()
        committer.close()
        deadline = time.monotonic() + 60
        while len(outbox) and time.monotonic() < deadline:
            time.sleep(0.1)
        stop.set()
        delivery.wake.set()
        writer.join(timeout=10)
        assert len(outbox) == 0, delivery.stats
        assert delivery.stats.rejected == 0
        database.dispose()
        assert_exactly_once_in_order(url, total)
    finally:
        server.close()


WRITER = textwrap.dedent("""
    import sys, threading
    from customs_lab.clearance.database import ClearanceDatabase
    from customs_lab.clearance.delivery import Delivery
    from customs_lab.clearance.outbox import GroupCommitter, Outbox
    outbox_path, url = sys.argv[1], sys.argv[2]
    delivery = Delivery(Outbox(outbox_path), ClearanceDatabase(url), batch_size=20)
    delivery.run(threading.Event(), idle_wait=0.05)
""")


def test_sigkill_mid_stream_then_restart_loses_nothing(tmp_path, database_url):
    outbox_path = tmp_path / 'outbox.db'
    outbox = Outbox(outbox_path)
    total = 2000
    put(outbox, [decision(n) for n in range(total)])
    outbox.close()
    database = ClearanceDatabase(database_url)
    database.migrate()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    for attempt in range(3):  # killed twice mid-stream, then left to finish
        writer = subprocess.Popen([sys.executable, '-c', WRITER, str(outbox_path), database_url],
                                  env=env)
        try:
            target = (attempt + 1) * total // 4
            deadline = time.monotonic() + 60
            while database.count_decisions() < target and time.monotonic() < deadline:
                time.sleep(0.01)
            if attempt < 2:
                writer.send_signal(signal.SIGKILL)
                writer.wait(timeout=10)
                assert database.count_decisions() < total, 'killed too late to mean anything'
            else:
                left = Outbox(outbox_path)
                while len(left) and time.monotonic() < deadline:
                    time.sleep(0.05)
                assert len(left) == 0
                left.close()
        finally:
            writer.kill()
            writer.wait(timeout=10)
    database.dispose()
    assert_exactly_once_in_order(database_url, total)
