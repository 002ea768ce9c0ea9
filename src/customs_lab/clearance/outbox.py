"""A durable local outbox: what the bridge has accepted but the database has not yet confirmed.

Core module: no ROS. One SQLite file (<data_dir>/clearance_outbox.db), separate from the clearance
database so that it works while that database is away. The bridge `put`s every record here as
soon as it arrives (committed with synchronous=FULL: on disk before `put` returns), and removes
it only after the database has committed it. So:

- a crash (even SIGKILL) before the database commit leaves the record here; it is delivered
  when the bridge starts again;
- a crash after the database commit but before `remove` delivers it again, and the database's
  idempotent write (keyed by the record's id) stores it once.

Order: `peek` returns records in the order they were put (seq), so records about one subject
reach the database in the order they arrived. A record the database refuses for its content
(not for being unreachable) is moved to `rejected` with the error: kept, reported, not retried.

Group commit (`GroupCommitter`): one commit per record costs one fsync per record (about 770
decisions/s end to end at FULL, benchmarks/bench_clearance.py). The bridge therefore hands its
records to a committer thread, which commits everything that waits in ONE transaction and only
then counts those records as accepted. A record arriving while nothing is being committed is
committed alone at once (no timer, no window); records arriving during a commit form the next
group, so groups grow with the load and the cost of an fsync is shared. What a caller that
must answer only once its record is durable (a service) waits for is its group's commit.
"""

import collections
from dataclasses import dataclass
import datetime
import json
import pathlib
import sqlite3
import threading

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL UNIQUE,          -- '<kind>:<id>' (decision:<uuid>, declaration:<no>, ...)
    kind TEXT NOT NULL,
    subject_key TEXT NOT NULL,
    payload TEXT NOT NULL,             -- the record as JSON (records.py to_payload)
    accepted_at TEXT NOT NULL          -- ISO 8601 UTC
);
CREATE TABLE IF NOT EXISTS rejected (
    seq INTEGER PRIMARY KEY,
    key TEXT NOT NULL,
    kind TEXT NOT NULL,
    subject_key TEXT NOT NULL,
    payload TEXT NOT NULL,
    accepted_at TEXT NOT NULL,
    rejected_at TEXT NOT NULL,
    error TEXT NOT NULL
);
"""


def serialize(payload: dict) -> str:
    """Return a payload as the outbox keeps it (JSON, sorted keys); raise TypeError/ValueError."""
    return json.dumps(payload, sort_keys=True)


def _locked(method):
    def wrapper(self, *args, **kwargs):
        with self._lock:
            return method(self, *args, **kwargs)

    wrapper.__name__, wrapper.__doc__ = method.__name__, method.__doc__
    return wrapper


@dataclass(frozen=True)
class Pending:
    """A record waiting in the outbox."""

    seq: int
    key: str
    kind: str
    subject_key: str
    payload: dict


class Outbox:
    """The outbox file. One process writes it (the bridge); its threads share it safely."""

    def __init__(self, path, synchronous: str = 'FULL'):
        if synchronous not in ('FULL', 'NORMAL'):
            raise ValueError(f'outbox synchronous must be FULL or NORMAL, not {synchronous!r}')
        self.path = pathlib.Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: we issue BEGIN/COMMIT ourselves
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute('PRAGMA journal_mode=WAL')
        # FULL: a put survives power loss; NORMAL: it survives a process crash (faster)
        self._db.execute(f'PRAGMA synchronous={synchronous}')
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()

    def put(self, kind: str, key: str, subject_key: str, payload: dict) -> bool:
        """Keep a record durably. Return False if a record with this key is already waiting."""
        return self.put_many([(kind, key, subject_key, payload)]) == 1

    def put_many(self, records) -> int:
        """Keep (kind, key, subject_key, payload) in one commit; return how many were new."""
        return self.put_serialized(
            [
                (kind, key, subject_key, serialize(payload))
                for kind, key, subject_key, payload in records
            ]
        )

    @_locked
    def put_serialized(self, records) -> int:
        """Keep (kind, key, subject_key, JSON text) in one commit; return how many were new.

        The payloads are already `serialize`d. On disk when this returns (at FULL); all or none:
        on an error nothing is kept and the error is raised.
        """
        now = datetime.datetime.now(datetime.timezone.utc).isoformat()
        rows = [(key, kind, subject_key, text, now) for kind, key, subject_key, text in records]
        before = self._db.total_changes
        self._db.execute('BEGIN IMMEDIATE')
        try:
            self._db.executemany(
                'INSERT OR IGNORE INTO outbox (key, kind, subject_key, payload, accepted_at) '
                'VALUES (?, ?, ?, ?, ?)',
                rows,
            )
            self._db.execute('COMMIT')
        except BaseException:
            if self._db.in_transaction:  # SQLite may have rolled back itself (disk full, I/O)
                self._db.execute('ROLLBACK')
            raise
        return self._db.total_changes - before

    @_locked
    def peek(self, limit: int = 100) -> list[Pending]:
        """Return up to `limit` waiting records, oldest first."""
        rows = self._db.execute(
            'SELECT seq, key, kind, subject_key, payload FROM outbox ORDER BY seq LIMIT ?',
            (limit,),
        ).fetchall()
        return [
            Pending(seq, key, kind, subject, json.loads(payload))
            for seq, key, kind, subject, payload in rows
        ]

    @_locked
    def remove(self, seqs):
        """Forget records the database has committed."""
        self._db.execute('BEGIN IMMEDIATE')
        self._db.executemany('DELETE FROM outbox WHERE seq = ?', [(s,) for s in seqs])
        self._db.execute('COMMIT')

    @_locked
    def reject(self, seq: int, error: str):
        """Move a record the database refused for its content to `rejected`, with the error."""
        now = datetime.datetime.now(datetime.timezone.utc).isoformat()
        self._db.execute('BEGIN IMMEDIATE')
        self._db.execute(
            'INSERT OR REPLACE INTO rejected SELECT seq, key, kind, subject_key, payload, '
            'accepted_at, ?, ? FROM outbox WHERE seq = ?',
            (now, error, seq),
        )
        self._db.execute('DELETE FROM outbox WHERE seq = ?', (seq,))
        self._db.execute('COMMIT')

    @_locked
    def __len__(self) -> int:
        """Return how many records wait."""
        return self._db.execute('SELECT count(*) FROM outbox').fetchone()[0]

    @_locked
    def find(self, kind: str, subject_key: str):
        """Return the payload of the newest waiting record of `kind` about a subject, or None."""
        row = self._db.execute(
            'SELECT payload FROM outbox WHERE kind = ? AND subject_key = ? '
            'ORDER BY seq DESC LIMIT 1',
            (kind, subject_key),
        ).fetchone()
        return None if row is None else json.loads(row[0])

    @_locked
    def rejected(self) -> list[tuple]:
        """Return (key, error) of every rejected record."""
        return self._db.execute('SELECT key, error FROM rejected ORDER BY seq').fetchall()

    @_locked
    def close(self):
        """Close the file."""
        self._db.close()


class OutboxError(RuntimeError):
    """Records were not kept: the outbox commit failed (the cause is chained), or it is closed."""


@dataclass
class CommitStats:
    """Counters of a GroupCommitter, for diagnostics and benchmarks."""

    groups: int = 0  # commits (fsyncs at FULL)
    records: int = 0  # records committed
    largest: int = 0  # most records in one commit


class GroupCommitter:
    """Commit records to an Outbox in groups, one transaction per group, on a thread of its own.

    `submit` (any thread) queues a record and returns at once with a ticket number; `wait(ticket)`
    returns once that record is committed; `put` does both. The committer thread waits for the
    first record only, takes everything queued (at most `max_group`), commits it with one
    `Outbox.put_serialized`, marks those tickets done and calls `on_committed(last_ticket)` (the
    bridge wakes its delivery writer there). Guarantees:

    - durability: a ticket is done only after its group's commit returned (at synchronous=FULL:
      on disk, it survives a power cut); a record whose key already waits is not kept twice;
    - order: one queue, one thread, groups one after another: records are committed (and get
      their outbox seq) in the order `submit` was called, across threads;
    - no added delay: nothing waits for a group to fill; under low load every record is committed
      alone as soon as it is submitted, under load the records that arrive during one commit
      form the next group;
    - failure, never swallowed: a payload that is not JSON raises in `submit` (nothing queued);
      a commit that raises (file unwritable, disk full, outbox closed) fails its group's tickets
      and everything queued behind them, and stops the committer: every later `submit`, `wait`,
      `flush` or `close` raises OutboxError with that error as its cause, and `log('error', ...)`
      says so at once. Nothing is retried in memory: the records of a failed group are NOT in
      the outbox;
    - shutdown: `close` refuses new records, commits everything queued, then ends the thread.
      It does not close the Outbox (its owner does, afterwards).

    Exposure, stated: a record submitted but not yet committed when the process dies (SIGKILL,
    power cut) is lost from this process: the group being committed and what queued behind it.
    While the committer keeps up, that is what arrived during one commit (a few ms); if records
    arrive faster than it commits them, up to `max_queue` + `max_group` (then `submit` blocks:
    back-pressure instead of unbounded memory). Only a ticket that is done was promised; a
    publisher's transient-local history brings the rest again after a restart.
    """

    def __init__(
        self, outbox, max_group=500, max_queue=10_000, on_committed=None, log=None,
        name='outbox_committer',
    ):
        if not 1 <= max_group <= max_queue:
            raise ValueError('need 1 <= max_group <= max_queue')
        self.outbox = outbox
        self.max_group = max_group
        self.max_queue = max_queue
        self.on_committed = on_committed  # on_committed(last_ticket), on the committer thread
        self.log = log or (lambda level, text: None)  # log(level, text); level 'info'/'error'
        self.stats = CommitStats()
        self.error = None  # the commit error that stopped the committer
        self._queue = collections.deque()  # serialized rows, in ticket order
        self._submitted = 0  # last ticket handed out
        self._committed = 0  # every ticket up to this one is committed
        self._closing = False
        self._lock = threading.Lock()
        self._work = threading.Condition(self._lock)  # for the committer: records or closing
        self._done = threading.Condition(self._lock)  # for waiters: a commit, a failure, room
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, kind: str, key: str, subject_key: str, payload: dict) -> int:
        """Queue a record for the next group commit; return its ticket (for `wait`).

        Raises TypeError/ValueError for a payload that is not JSON, OutboxError once the
        committer is closed or failed.
        """
        row = (kind, key, subject_key, serialize(payload))
        with self._lock:
            while len(self._queue) >= self.max_queue and not self._stopped():
                self._done.wait()
            self._check_open()
            self._queue.append(row)
            self._submitted += 1
            self._work.notify()
            return self._submitted

    def wait(self, ticket: int, timeout: float | None = None):
        """Return once record `ticket` is committed (durable).

        Raises OutboxError if its commit failed, TimeoutError after `timeout` s.
        """
        with self._lock:
            if not self._done.wait_for(
                lambda: self._committed >= ticket or self.error is not None, timeout
            ):
                raise TimeoutError(f'outbox ticket {ticket} not committed within {timeout} s')
            if self._committed < ticket:
                raise OutboxError(f'not kept: outbox commit failed: {self.error}') from self.error

    def put(self, kind: str, key: str, subject_key: str, payload: dict, timeout=None):
        """Keep a record and return once it is committed (durable); see `submit` and `wait`."""
        self.wait(self.submit(kind, key, subject_key, payload), timeout)

    def flush(self, timeout: float | None = None):
        """Return once everything submitted so far is committed (or raise as `wait`)."""
        with self._lock:
            last = self._submitted
        self.wait(last, timeout)

    def close(self, timeout: float | None = None):
        """Refuse new records, commit everything queued, end the thread.

        Raises OutboxError if a commit failed (now or before), TimeoutError if the queued records
        are not committed within `timeout` s (the thread goes on committing them).
        """
        with self._lock:
            self._closing = True
            self._work.notify()
            self._done.notify_all()  # producers waiting for room: refused now
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise TimeoutError(f'{len(self._queue)} records not committed within {timeout} s')
        if self.error is not None:
            raise OutboxError(f'outbox commit failed: {self.error}') from self.error

    @property
    def waiting(self) -> int:
        """Return how many submitted records wait for a commit (not the group in its commit)."""
        with self._lock:
            return len(self._queue)

    def _stopped(self) -> bool:
        return self._closing or self.error is not None

    def _check_open(self):
        if self.error is not None:
            raise OutboxError(f'not kept: outbox commit failed: {self.error}') from self.error
        if self._closing:
            raise OutboxError('not kept: the outbox committer is closed')

    def _run(self):
        while True:
            with self._lock:
                self._work.wait_for(lambda: self._queue or self._closing)
                if not self._queue:
                    return  # closing, everything committed
                size = min(len(self._queue), self.max_group)
                group = [self._queue.popleft() for _ in range(size)]
                last = self._committed + size
            try:
                self.outbox.put_serialized(group)
            except BaseException as error:  # noqa: B902 - every waiter must learn of it
                self._fail(error, size)
                return
            with self._lock:
                self._committed = last
                self.stats.groups += 1
                self.stats.records += size
                self.stats.largest = max(self.stats.largest, size)
                self._done.notify_all()
            self._committed_hook(last)

    def _committed_hook(self, last):
        if self.on_committed is None:
            return
        try:
            self.on_committed(last)
        except Exception as error:  # noqa: B902 - the records are kept; the committer goes on
            self.log('error', f'after an outbox commit: {type(error).__name__}: {error}')

    def _fail(self, error, size):
        with self._lock:
            lost = size + len(self._queue)
            self._queue.clear()
            self.error = error
            self._done.notify_all()
        self.log(
            'error',
            f'outbox commit failed, {lost} records received were not kept and no more will be: '
            f'{type(error).__name__}: {error}',
        )
