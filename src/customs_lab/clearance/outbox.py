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
"""

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

    @_locked
    def put_many(self, records) -> int:
        """Keep several records in one commit; return how many were new."""
        now = datetime.datetime.now(datetime.timezone.utc).isoformat()
        rows = [
            (key, kind, subject_key, json.dumps(payload, sort_keys=True), now)
            for kind, key, subject_key, payload in records
        ]
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
