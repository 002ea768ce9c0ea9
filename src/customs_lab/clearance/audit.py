r"""The audit log: append-only and tamper-evident, by a hash chain. Core module: no ROS.

Every write to the clearance database appends an entry in the same transaction. Entry n holds
the SHA-256 of entry n-1 (`prev_hash`) and its own `hash`:

    hash_n = SHA-256( prev_hash_n + "\n" + canonical JSON of
                      {seq, recorded_at, actor, action, object_type, object_id, payload} )

with hash_0 = 64 zeros (GENESIS). `audit_head` holds the newest (seq, hash); appends lock that row
(SELECT ... FOR UPDATE on PostgreSQL; SQLite has one writer at a time), so concurrent writers
still form a single chain. Database triggers refuse UPDATE and DELETE on audit_log (migration
0002), and the chain makes any change that goes around them visible: `verify` recomputes every
hash, checks the sequence has no gaps, that the head matches the last entry (a truncated tail), and
that each audited decision, declaration and inspection result still has the digest it was stored
with (a changed row). `customs-lab audit verify` runs it.
"""

from dataclasses import dataclass, field
import datetime
import hashlib
import json

import sqlalchemy as sa

from customs_lab.clearance.records import canonical_json
from customs_lab.clearance.schema import audit_head, audit_log

GENESIS = '0' * 64


def entry_hash(prev_hash: str, entry: dict) -> str:
    """Return the hash of an entry (dict with the hashed fields) chained to `prev_hash`."""
    content = {k: entry[k] for k in _HASHED}
    return hashlib.sha256(f'{prev_hash}\n{canonical_json(content)}'.encode()).hexdigest()


_HASHED = ('seq', 'recorded_at', 'actor', 'action', 'object_type', 'object_id', 'payload')


def append(connection, entries) -> str:
    """Append entries (dicts: actor, action, object_type, object_id, payload) in order.

    Must run inside the transaction that makes the change being audited. Returns the new head
    hash. `payload` is a JSON-safe dict.
    """
    entries = list(entries)
    if not entries:
        return ''
    head = connection.execute(
        sa.select(audit_head.c.seq, audit_head.c.hash)
        .where(audit_head.c.id == 1)
        .with_for_update()
    ).one()
    seq, prev = head.seq, head.hash
    now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='microseconds')
    rows = []
    for entry in entries:
        seq += 1
        row = {
            'seq': seq,
            'recorded_at': now,
            'actor': entry['actor'],
            'action': entry['action'],
            'object_type': entry['object_type'],
            'object_id': entry['object_id'],
            'payload': canonical_json(entry['payload']),
        }
        row['prev_hash'] = prev
        row['hash'] = prev = entry_hash(prev, row)
        rows.append(row)
    connection.execute(audit_log.insert(), rows)
    connection.execute(audit_head.update().where(audit_head.c.id == 1).values(seq=seq, hash=prev))
    return prev


@dataclass
class Verification:
    """The result of `verify`: ok, how many entries, and every problem found."""

    entries: int = 0
    head_seq: int = 0
    problems: list = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Return True if the chain and the audited rows are intact."""
        return not self.problems


def verify(connection, row_digests=None, batch: int = 5000) -> Verification:
    """Check the whole chain; `row_digests(object_type, object_id)` gives a stored row's digest.

    Reads the log in seq order in batches; keeps the newest digest per audited object (a dict
    of object keys). Stops after 100 problems in the chain.
    """
    result = Verification()
    prev, expected_seq, last = GENESIS, 1, 0
    latest = {}
    while True:
        rows = (
            connection.execute(
                sa.select(audit_log)
                .where(audit_log.c.seq > last)
                .order_by(audit_log.c.seq)
                .limit(batch)
            )
            .mappings()
            .all()
        )
        if not rows:
            break
        for row in rows:
            last = row['seq']
            result.entries += 1
            if row['seq'] != expected_seq:
                result.problems.append(f'entry {expected_seq} missing (next is {row["seq"]})')
                expected_seq = row['seq']
            if row['prev_hash'] != prev:
                result.problems.append(
                    f'entry {row["seq"]}: prev_hash does not match entry before'
                )
            computed = entry_hash(row['prev_hash'], row)
            if computed != row['hash']:
                result.problems.append(f'entry {row["seq"]}: content changed (hash mismatch)')
            payload = json.loads(row['payload'])
            if 'digest' in payload:  # the newest digest of an object is the one to match
                latest[(row['object_type'], row['object_id'])] = (row['seq'], payload['digest'])
            prev, expected_seq = row['hash'], expected_seq + 1
            if len(result.problems) >= 100:
                return result
    if row_digests is not None:
        for (object_type, object_id), (seq, digest) in latest.items():
            stored = row_digests(object_type, object_id)
            if stored is None:
                result.problems.append(f'entry {seq}: {object_type} {object_id} is gone')
            elif stored != digest:
                result.problems.append(
                    f'entry {seq}: {object_type} {object_id} was changed after it was stored'
                )
    head = connection.execute(sa.select(audit_head).where(audit_head.c.id == 1)).mappings().first()
    if head is None:
        result.problems.append('audit_head is missing')
    else:
        result.head_seq = head['seq']
        if (head['seq'], head['hash']) != (last, prev):
            result.problems.append(
                f'head says entry {head["seq"]}, the log ends at {last}: entries were removed'
            )
    return result
