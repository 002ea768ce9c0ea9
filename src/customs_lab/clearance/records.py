"""What the clearance side stores, as plain records (no ROS, no SQL).

The bridge turns messages into these records, keeps them in its outbox as JSON payloads
(`to_payload` / `from_payload`) and writes them to the database. `digest()` is the SHA-256 of a
record's canonical JSON: the audit log keeps it, so that a row changed afterwards is detected.

Fields added after a record type was first stored (`selection`, schema revision 0003) have a
default: a payload written before them still loads (outboxes survive an upgrade), and they enter
the digest only when they differ from the default, so records audited before them still verify.
"""

from dataclasses import MISSING, asdict, dataclass, fields
import hashlib
import json
import math

from customs_lab.clearance.schema import OUTCOMES, SELECTIONS


def canonical_json(value) -> str:
    """Return JSON with sorted keys and no spaces: the same bytes for the same content."""
    return json.dumps(value, sort_keys=True, separators=(',', ':'), ensure_ascii=False)


def subject_key(kind: str, subject_id: str, zone: str) -> str:
    """Return the subject key of customs_lab.common.subjects.Subject.key, from text fields."""
    return f'{kind}:{zone}/{subject_id}' if zone else f'{kind}:{subject_id}'


class Record:
    """Shared behaviour of the record types."""

    KIND = ''
    LATER_FIELDS = ()  # fields added after the type was first stored (module docstring)

    @property
    def key(self) -> str:
        """Return the record's unique key: '<kind>:<id>'."""
        raise NotImplementedError

    @property
    def subject_key(self) -> str:
        """Return the key of the subject the record is about."""
        return subject_key(self.subject_kind, self.subject_id, self.zone)

    def to_payload(self) -> dict:
        """Return the record as a JSON-safe dict."""
        return asdict(self)

    @classmethod
    def from_payload(cls, payload: dict):
        """Rebuild a record from `to_payload`; raise ValueError on a missing or extra field."""
        names = {f.name for f in fields(cls)}
        optional = {f.name for f in fields(cls) if f.default is not MISSING}
        if not names - optional <= set(payload) <= names:
            raise ValueError(
                f'{cls.__name__}: fields {sorted((set(payload) ^ names) - optional)} missing or '
                'unexpected'
            )
        values = dict(payload)
        for name, value in values.items():
            if isinstance(value, list):
                values[name] = tuple(value)
        return cls(**values)

    def digest(self) -> str:
        """Return the SHA-256 of the record's canonical JSON."""
        return hashlib.sha256(canonical_json(self._digest_payload()).encode()).hexdigest()

    def _digest_payload(self) -> dict:
        payload = self.to_payload()
        for name in self.LATER_FIELDS:
            if payload[name] == self.__dataclass_fields__[name].default:
                del payload[name]
        return payload

    def check(self):
        """Raise ValueError if a number is not finite (NaN would poison sums and comparisons)."""
        for name, value in self.to_payload().items():
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f'{type(self).__name__} {self.key}: {name} is {value}')


@dataclass(frozen=True)
class DecisionRecord(Record):
    """A risk decision; contributions: dicts with the EvidenceContribution fields."""

    KIND = 'decision'
    LATER_FIELDS = ('selection',)

    decision_id: str
    subject_kind: str
    subject_id: str
    zone: str
    id_valid: bool
    channel: str
    recommended_action: str
    prior_risk: float
    posterior_risk: float
    posterior_log_odds: float
    model_version: str
    decided_at: float
    explanation: str
    contributions: tuple = ()
    selection: str = ''  # why inspected: 'targeted', 'random' (audit) or '' (not inspected)

    @property
    def key(self) -> str:
        """Return 'decision:<uuid>'."""
        return f'decision:{self.decision_id}'

    def to_payload(self) -> dict:
        """Return the record as a JSON-safe dict (contributions as a list of dicts)."""
        payload = asdict(self)
        payload['contributions'] = [dict(c) for c in self.contributions]
        return payload

    def _digest_payload(self) -> dict:
        payload = super()._digest_payload()  # the database does not keep the contributions' order
        payload['contributions'].sort(key=lambda c: str(c['evidence_id']))
        return payload

    def check(self):
        """Also check the contributions' numbers."""
        super().check()
        for contribution in self.contributions:
            for name in ('log_likelihood_ratio', 'weight', 'contribution'):
                if not math.isfinite(float(contribution[name])):
                    raise ValueError(f'decision {self.decision_id}: evidence {name} not finite')
        if self.selection not in SELECTIONS:
            raise ValueError(f'decision {self.decision_id}: selection must be one of {SELECTIONS}')


@dataclass(frozen=True)
class DeclarationRecord(Record):
    """A declaration; items: dicts with the DeclaredItem fields, in line order."""

    KIND = 'declaration'

    declaration_id: str
    subject_kind: str
    subject_id: str
    zone: str
    declarant_id: str
    consignee_id: str
    origin_country: str
    gross_mass: float
    expected_arrival: float
    filed_at: float
    items: tuple = ()

    @property
    def key(self) -> str:
        """Return 'declaration:<number>'."""
        return f'declaration:{self.declaration_id}'

    def to_payload(self) -> dict:
        """Return the record as a JSON-safe dict (items as a list of dicts)."""
        payload = asdict(self)
        payload['items'] = [dict(i) for i in self.items]
        return payload


@dataclass(frozen=True)
class InspectionRecord(Record):
    """What an officer found when inspecting a subject."""

    KIND = 'inspection'
    LATER_FIELDS = ('selection',)

    result_id: str
    subject_kind: str
    subject_id: str
    zone: str
    declaration_id: str
    decision_id: str
    officer_id: str
    action: str
    outcome: str
    categories: tuple
    findings: str
    inspected_at: float
    selection: str = ''  # 'targeted', 'random' (audit), '' (not known, e.g. an officer's own)

    @property
    def key(self) -> str:
        """Return 'inspection:<uuid>'."""
        return f'inspection:{self.result_id}'

    def to_payload(self) -> dict:
        """Return the record as a JSON-safe dict."""
        payload = asdict(self)
        payload['categories'] = list(self.categories)
        return payload

    def check(self):
        """Also check the outcome and the officer."""
        super().check()
        if self.outcome not in OUTCOMES:
            raise ValueError(f'inspection {self.result_id}: outcome must be one of {OUTCOMES}')
        if not self.officer_id:
            raise ValueError(f'inspection {self.result_id}: no officer id')
        if self.selection not in SELECTIONS:
            raise ValueError(f'inspection {self.result_id}: selection must be one of {SELECTIONS}')


RECORD_TYPES = {cls.KIND: cls for cls in (DecisionRecord, DeclarationRecord, InspectionRecord)}


def record_from_payload(kind: str, payload: dict) -> Record:
    """Rebuild a record of `kind` ('decision', 'declaration', 'inspection')."""
    try:
        cls = RECORD_TYPES[kind]
    except KeyError:
        raise ValueError(f'unknown record kind {kind!r}') from None
    return cls.from_payload(payload)
