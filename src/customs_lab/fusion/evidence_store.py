"""Per-subject evidence over time: what fusion should use now, and what it no longer uses and why.

Rules (each subject's evidence is independent of every other subject's):

1. Validation. An item whose log-likelihood ratio is not finite, whose std is negative or not
   finite, whose evidence_id is empty, or whose stamp is not finite raises ValueError and nothing
   is stored. The subject key must be a non-empty string.
2. Idempotence. An item re-sent with an evidence_id the subject already holds replaces the
   earlier copy (item and stamp); the store never holds two copies of one evidence_id.
3. Supersession. Items from the same *slot* (sensor_id, kind) observe the same thing, e.g. a
   container re-scanned by the same portal. Only the newest observation of a slot is fused; the
   others are kept as *superseded* (for the audit) with `superseded_by` naming the slot's newest
   evidence_id. Newest means the latest observation stamp, not the latest arrival: an older item
   that arrives late is superseded on arrival. Equal stamps: the later arrival is the newer.
   Items with an empty sensor_id cannot be matched to a sensor and each forms its own slot.
4. Expiry. An item observed at `stamp` expires at `stamp + ttl(kind)`, where ttl(kind) is the
   value of the longest key of the ttl table that is a prefix of the kind (plain string prefix:
   write 'cctv.' so that 'cctvx.foo' does not match); the table must hold a default '' key.
   At time `now` an item is active if it is not superseded and now < its expiry. Expired items
   are not fused and are reported with status 'expired'. Items stamped after `now` (clock skew
   between devices) are active.
5. Memory bound. At most `history_limit` superseded items are kept per subject (the oldest by
   stamp are dropped first). `prune(now)` drops every item that expired more than `grace`
   seconds before `now`, and with it every subject left with no items; a subject is therefore
   forgotten once all its items have been expired for longer than the grace.

Stamps and `now` are seconds on one clock (the fusion node uses ROS time). Not thread-safe: the
caller serialises access (a ROS node's single-threaded executor does). Core module: no ROS.
"""

from dataclasses import dataclass
import math

from customs_lab.fusion.logodds import EvidenceItem

DEFAULT_TTL = {'cctv.': 1800.0, 'vitals.': 600.0, '': 7 * 86400.0}
ACTIVE, SUPERSEDED, EXPIRED = 'active', 'superseded', 'expired'


@dataclass(frozen=True)
class EvidenceRecord:
    """One stored item with its observation stamp and where it stands."""

    item: EvidenceItem
    stamp: float
    expires_at: float
    superseded_by: str = ''  # evidence_id of the slot's newest item; '' while this is newest

    def status(self, now: float) -> str:
        """Return 'superseded', 'expired' or 'active' at time `now` (in that precedence)."""
        if self.superseded_by:
            return SUPERSEDED
        return EXPIRED if now >= self.expires_at else ACTIVE


@dataclass(frozen=True)
class AddResult:
    """What `EvidenceStore.add` did with an item."""

    evidence_id: str
    replaced: bool  # an earlier copy with the same evidence_id was replaced
    superseded_by: str  # non-empty: stored, but a newer observation of its slot is fused instead
    supersedes: str  # evidence_id of the item this one displaced as its slot's newest, or ''
    expires_at: float
    dropped: tuple[str, ...] = ()  # superseded items dropped to respect history_limit

    @property
    def fused(self) -> bool:
        """Return True if the item is its slot's newest (fused until it expires)."""
        return not self.superseded_by


@dataclass
class _Entry:
    item: EvidenceItem
    stamp: float
    arrival: int


def _slot(item: EvidenceItem) -> tuple[str, str]:
    return (item.sensor_id, item.kind) if item.sensor_id else ('#' + item.evidence_id, '')


class EvidenceStore:
    """Evidence per subject, with replacement, supersession, expiry and pruning (module rules)."""

    def __init__(self, ttl: dict | None = None, grace: float = 3600.0, history_limit: int = 100):
        ttl = dict(DEFAULT_TTL if ttl is None else ttl)
        if '' not in ttl:
            raise ValueError("ttl needs a default '' entry (the time-to-live of other kinds)")
        for prefix, seconds in ttl.items():
            if not isinstance(prefix, str):
                raise ValueError(f'ttl keys must be kind prefixes (str), got {prefix!r}')
            if not (isinstance(seconds, int | float) and seconds > 0 and seconds == seconds):
                raise ValueError(f'ttl of {prefix!r} must be > 0 seconds, got {seconds!r}')
        if not (math.isfinite(grace) and grace >= 0):
            raise ValueError(f'grace must be finite and >= 0 seconds, got {grace!r}')
        if not (isinstance(history_limit, int) and history_limit >= 0):
            raise ValueError(f'history_limit must be an int >= 0, got {history_limit!r}')
        self._ttl = sorted(ttl.items(), key=lambda kv: -len(kv[0]))  # longest prefix first
        self.grace = float(grace)
        self.history_limit = history_limit
        self._subjects: dict[str, dict[str, _Entry]] = {}
        self._arrivals = 0

    def ttl_for(self, kind: str) -> float:
        """Return the time-to-live (s) of `kind`: the longest matching prefix's value."""
        return next(float(s) for prefix, s in self._ttl if kind.startswith(prefix))

    def add(self, subject_key: str, item: EvidenceItem, stamp: float) -> AddResult:
        """Store `item`, observed at `stamp`, for `subject_key` (rules 1-3 and 5)."""
        self._check_key(subject_key)
        if not isinstance(item, EvidenceItem):
            raise TypeError(f'expected an EvidenceItem, got {type(item).__name__}')
        eid = item.evidence_id
        if not eid:
            raise ValueError('evidence item has an empty evidence_id')
        if not math.isfinite(item.log_likelihood_ratio):
            raise ValueError(
                f'evidence {eid} ({item.kind} from {item.sensor_id or "?"}) has a non-finite '
                f'log-likelihood ratio: {item.log_likelihood_ratio!r}'
            )
        std = item.log_likelihood_ratio_std
        if not (math.isfinite(std) and std >= 0.0):
            raise ValueError(f'evidence {eid} has an invalid LLR std (need finite >= 0): {std!r}')
        if not math.isfinite(stamp):
            raise ValueError(f'evidence {eid} has a non-finite stamp: {stamp!r}')
        entries = self._subjects.setdefault(subject_key, {})
        slot = _slot(item)
        before = self._newest(entries).get(slot)
        replaced = eid in entries
        self._arrivals += 1
        entries[eid] = _Entry(item, float(stamp), self._arrivals)
        newest = self._newest(entries)[slot]
        dropped = self._enforce_history_limit(entries)
        supersedes = before if (newest == eid and before not in (None, eid)) else ''
        return AddResult(
            eid,
            replaced,
            '' if newest == eid else newest,
            supersedes,
            float(stamp) + self.ttl_for(item.kind),
            dropped,
        )

    def records(self, subject_key: str) -> tuple[EvidenceRecord, ...]:
        """Return every stored item of a subject (rule 3 applied), oldest observation first."""
        entries = self._subjects.get(subject_key, {})
        newest = self._newest(entries)
        ordered = sorted(entries.values(), key=lambda e: (e.stamp, e.arrival))
        return tuple(
            EvidenceRecord(
                e.item,
                e.stamp,
                e.stamp + self.ttl_for(e.item.kind),
                '' if newest[_slot(e.item)] == e.item.evidence_id else newest[_slot(e.item)],
            )
            for e in ordered
        )

    def history(self, subject_key: str) -> tuple[EvidenceRecord, ...]:
        """Return the audit trail: every stored item, superseded ones included (= records)."""
        return self.records(subject_key)

    def active(self, subject_key: str, now: float) -> list[EvidenceItem]:
        """Return the items to fuse at `now` (rules 3-4), oldest observation first."""
        return [r.item for r in self.records(subject_key) if r.status(now) == ACTIVE]

    def expired(self, subject_key: str, now: float) -> list[EvidenceRecord]:
        """Return the newest-of-slot items that have expired at `now` (not fused any more)."""
        return [r for r in self.records(subject_key) if r.status(now) == EXPIRED]

    def subjects(self) -> list[str]:
        """Return the keys of the subjects that hold evidence, in first-seen order."""
        return list(self._subjects)

    def forget(self, subject_key: str) -> bool:
        """Drop a subject and its evidence; return True if it was known."""
        return self._subjects.pop(subject_key, None) is not None

    def prune(self, now: float) -> list[str]:
        """Drop items expired for longer than `grace` at `now`; return the subjects dropped."""
        if not math.isfinite(now):
            raise ValueError(f'now must be finite, got {now!r}')
        dropped = []
        for key, entries in list(self._subjects.items()):
            for eid, e in list(entries.items()):
                if e.stamp + self.ttl_for(e.item.kind) + self.grace < now:
                    del entries[eid]
            if not entries:
                del self._subjects[key]
                dropped.append(key)
        return dropped

    def __len__(self) -> int:
        """Return the number of stored items over all subjects."""
        return sum(len(entries) for entries in self._subjects.values())

    @staticmethod
    def _check_key(subject_key):
        if not (isinstance(subject_key, str) and subject_key):
            raise ValueError(f'subject key must be a non-empty string, got {subject_key!r}')

    @staticmethod
    def _newest(entries: dict) -> dict:
        """Map each slot to the evidence_id of its newest observation (latest stamp, arrival)."""
        newest, best = {}, {}
        for eid, e in entries.items():
            slot, rank = _slot(e.item), (e.stamp, e.arrival)
            if slot not in best or rank > best[slot]:
                newest[slot], best[slot] = eid, rank
        return newest

    def _enforce_history_limit(self, entries: dict) -> tuple[str, ...]:
        newest = set(self._newest(entries).values())
        old = sorted(
            (e for eid, e in entries.items() if eid not in newest),
            key=lambda e: (e.stamp, e.arrival),
        )
        excess = old[: max(0, len(old) - self.history_limit)]
        for e in excess:
            del entries[e.item.evidence_id]
        return tuple(e.item.evidence_id for e in excess)
