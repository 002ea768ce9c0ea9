"""Group commit into the durable outbox (outbox.GroupCommitter), on real SQLite files.

What the bridge relies on: records are committed in the order they were submitted, one commit
for what arrives together and none held back when the load is low; a caller waiting for its
record returns only after the commit; closing commits everything queued; a failed commit reaches
every waiter and every later caller; several producer threads lose and duplicate nothing; and a
SIGKILL loses nothing that was reported committed.
"""

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from customs_lab.clearance.outbox import GroupCommitter, Outbox, OutboxError


def row(n: int, subject: str = 'container:CSQU3054383'):
    """Return the n-th record as the outbox takes it: (kind, key, subject_key, payload)."""
    return ('decision', f'decision:{n:06d}', subject, {'n': n, 'explanation': f'decision {n}'})


def committed_keys(path) -> list[str]:
    """Return the keys in the outbox file, in seq order, read by a connection of its own."""
    with contextlib.closing(sqlite3.connect(path)) as reader:
        return [key for (key,) in reader.execute('SELECT key FROM outbox ORDER BY seq')]


@contextlib.contextmanager
def write_locked(path):
    """Hold the outbox file's write lock from another connection: commits wait meanwhile."""
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute('BEGIN IMMEDIATE')
    try:
        yield blocker
    finally:
        if blocker.in_transaction:
            blocker.execute('COMMIT')
        blocker.close()


def in_thread(function, *args):
    """Start `function(*args)` on a thread; return the thread and a dict with its outcome."""
    outcome = {}

    def run():
        try:
            outcome['result'] = function(*args)
        except BaseException as error:  # noqa: B902 - handed to the test
            outcome['error'] = error

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


@pytest.fixture
def outbox(tmp_path):
    box = Outbox(tmp_path / 'outbox.db')
    yield box
    box.close()


def test_a_record_arriving_alone_is_committed_alone_at_once_in_order(outbox):
    committer = GroupCommitter(outbox)
    start = time.monotonic()
    for n in range(20):
        committer.put(*row(n))  # returns once committed
        assert committed_keys(outbox.path)[-1] == row(n)[1]
    assert time.monotonic() - start < 5.0  # no window to wait out
    committer.close()
    assert committer.stats.groups == 20 and committer.stats.largest == 1
    assert [p.key for p in outbox.peek(100)] == [row(n)[1] for n in range(20)]
    assert outbox.peek(1)[0].payload == row(0)[3]


def test_records_arriving_during_a_commit_form_the_next_group_in_order(outbox):
    committed = []
    committer = GroupCommitter(outbox, max_group=30, on_committed=committed.append)
    with write_locked(outbox.path):  # the first commit waits: the rest queue behind it
        tickets = [committer.submit(*row(n)) for n in range(100)]
        time.sleep(0.2)
        assert committed_keys(outbox.path) == []
    committer.flush(timeout=10)
    assert tickets == list(range(1, 101))
    assert committed[-1] == 100 and committed == sorted(committed)
    assert committer.stats.records == 100
    assert committer.stats.largest == 30  # bounded by max_group
    assert committer.stats.groups <= 5  # 1 (taken before the queue filled) + 4 of at most 30
    assert committed_keys(outbox.path) == [row(n)[1] for n in range(100)]
    committer.close()


def test_a_put_returns_only_after_its_commit(outbox):
    committer = GroupCommitter(outbox)
    with write_locked(outbox.path):
        putting, outcome = in_thread(committer.put, *row(1))
        ticket = committer.submit(*row(2))
        time.sleep(0.3)
        assert putting.is_alive() and not outcome  # still waiting for its commit
        with pytest.raises(TimeoutError):
            committer.wait(ticket, timeout=0.05)
        assert committed_keys(outbox.path) == []
    putting.join(timeout=10)
    assert outcome == {'result': None}
    assert row(1)[1] in committed_keys(outbox.path)  # durable when put returned
    committer.wait(ticket, timeout=10)
    assert committed_keys(outbox.path) == [row(1)[1], row(2)[1]]
    committer.close()


def test_close_commits_everything_queued_then_refuses(tmp_path):
    path = tmp_path / 'outbox.db'
    outbox = Outbox(path)
    committer = GroupCommitter(outbox)
    with write_locked(path):
        for n in range(200):
            committer.submit(*row(n))
        closing, outcome = in_thread(committer.close)
        time.sleep(0.2)
        assert closing.is_alive()  # waits for the queued records
        with pytest.raises(OutboxError, match='closed'):
            committer.submit(*row(999))
    closing.join(timeout=10)
    assert outcome == {'result': None}
    assert committer.waiting == 0
    outbox.close()
    again = Outbox(path)
    assert [p.key for p in again.peek(1000)] == [row(n)[1] for n in range(200)]
    again.close()


def test_a_failed_commit_reaches_every_waiter_and_stops_the_committer(outbox):
    logged = []
    committer = GroupCommitter(outbox, log=lambda level, text: logged.append((level, text)))
    committer.put(*row(0))
    with write_locked(outbox.path) as blocker:  # the next commit will fail, as a full disk does
        blocker.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON outbox "
            "BEGIN SELECT RAISE(ABORT, 'no space left (test)'); END"
        )
        first = committer.submit(*row(1))
        time.sleep(0.2)  # taken by the committer, which waits for the lock
        behind = [committer.submit(*row(n)) for n in range(2, 6)]
    for ticket in [first, *behind]:
        with pytest.raises(OutboxError, match='no space left') as raised:
            committer.wait(ticket, timeout=10)
        assert isinstance(raised.value.__cause__, sqlite3.IntegrityError)
    committer.wait(1, timeout=1)  # committed before the failure: still fine
    with pytest.raises(OutboxError, match='no space left'):
        committer.submit(*row(6))  # nothing more is taken
    with pytest.raises(OutboxError, match='no space left'):
        committer.flush()
    with pytest.raises(OutboxError, match='no space left'):
        committer.close()
    assert committer.error is not None
    assert [level for level, _ in logged] == ['error']
    assert '5 records received were not kept' in logged[0][1]
    assert committed_keys(outbox.path) == [row(0)[1]]  # the failed group is not half kept


def test_a_closed_outbox_is_a_failed_commit_not_a_silent_loss(tmp_path):
    outbox = Outbox(tmp_path / 'outbox.db')
    committer = GroupCommitter(outbox)
    committer.put(*row(0))
    outbox.close()  # the file is gone from under the committer
    with pytest.raises(OutboxError) as raised:
        committer.put(*row(1), timeout=10)
    assert isinstance(raised.value.__cause__, sqlite3.ProgrammingError)
    with pytest.raises(OutboxError):
        committer.close()


def test_a_payload_that_is_not_json_is_refused_at_submit(outbox):
    committer = GroupCommitter(outbox)
    with pytest.raises(TypeError):
        committer.submit('decision', 'decision:bad', 'container:X', {'x': object()})
    committer.put(*row(1))  # the committer goes on
    committer.close()
    assert committed_keys(outbox.path) == [row(1)[1]]


def test_an_error_after_the_commit_is_logged_and_the_committer_goes_on(outbox):
    logged = []

    def wake_fails(_last):
        raise RuntimeError('writer gone')

    committer = GroupCommitter(
        outbox, on_committed=wake_fails, log=lambda level, text: logged.append((level, text))
    )
    committer.put(*row(1))
    committer.put(*row(2))
    committer.close()
    assert committed_keys(outbox.path) == [row(1)[1], row(2)[1]]
    assert len(logged) == 2 and 'writer gone' in logged[0][1]


def test_several_producer_threads_lose_nothing_and_duplicate_nothing(outbox):
    committer = GroupCommitter(outbox, max_group=64, max_queue=256)  # back-pressure as well
    producers, per_producer = 4, 500
    tickets = {}  # key -> ticket
    lock = threading.Lock()

    def produce(p):
        mine = []
        for n in range(per_producer):
            kind, key, subject, payload = row(p * per_producer + n, f'container:P{p}')
            mine.append((key, committer.submit(kind, key, subject, payload)))
            if n % 100 == 99:
                committer.wait(mine[-1][1], timeout=30)  # a service waiting now and then
        with lock:
            tickets.update(mine)

    threads = [threading.Thread(target=produce, args=(p,)) for p in range(producers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    committer.put(*row(0))  # a duplicate key: kept once
    committer.close()
    total = producers * per_producer
    assert sorted(tickets.values()) == list(range(1, total + 1))
    keys = committed_keys(outbox.path)
    assert len(keys) == len(set(keys)) == total
    assert set(keys) == set(tickets)
    assert keys == sorted(keys, key=tickets.get)  # committed in the order submitted
    assert committer.stats.records == total + 1 and committer.stats.largest <= 64


PRODUCER = textwrap.dedent("""
    import sys
    from customs_lab.clearance.outbox import GroupCommitter, Outbox
    committer = GroupCommitter(
        Outbox(sys.argv[1]), on_committed=lambda last: print(last, flush=True)
    )
    for n in range(1_000_000):
        committer.submit('decision', f'decision:{n:07d}', 'container:X', {'n': n})
""")


def test_sigkill_loses_nothing_reported_committed_and_keeps_the_order(tmp_path):
    path = tmp_path / 'outbox.db'
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    producer = subprocess.Popen(
        [sys.executable, '-c', PRODUCER, str(path)], env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        reported = 0
        deadline = time.monotonic() + 60
        while reported < 2000 and time.monotonic() < deadline:
            reported = int(producer.stdout.readline())
        producer.send_signal(signal.SIGKILL)  # mid-stream: a group in its commit, more queued
        producer.wait(timeout=10)
    finally:
        producer.kill()
        producer.wait(timeout=10)
        producer.stdout.close()
    assert reported >= 2000
    outbox = Outbox(path)
    keys = [p.key for p in outbox.peek(2_000_000)]
    outbox.close()
    # every record reported committed is there; what is there is a gapless prefix, in order
    assert len(keys) >= reported
    assert keys == [f'decision:{n:07d}' for n in range(len(keys))]
