"""The risk engine: declaration prior + evidence over time + calibration + decision policy.

One subject's decision, in order:

1. Prior. The declaration prior (fusion/declaration_prior.py, learned from the clearance
   database) gives log-odds for the subject's declaration. Without a declaration (not filed,
   a misread container number) or without a prior model, the subject kind's base rate is the
   prior, and the explanation says so.
2. Evidence. The evidence store (fusion/evidence_store.py) says which items are used now: the
   newest observation of each (sensor, kind), not expired. Items that share a correlation group
   (e.g. two detector panels of one portal) count once: weights 1/n (fusion/logodds.combine).
   No item counts beyond +-`llr_cap` nats: a sensor's LLR comes from its physical model, and
   model error (a mis-set background, a detector fault) bounds how sure any one item can make
   us; a portal that reports 10^6 nats is capped, and the explanation says so.
   Coverage: each sensor family (evidence kinds by prefix, `coverage`) weighs the contraband it
   sees (a radiological source, a weapon or a powder) against clean; where a subject kind's
   contraband is only partly of that sort, the family's evidence is mixed with "contraband it
   cannot see" (fusion/logodds.cover): a clean portal reading no longer clears a parcel of the
   narcotics only the X-ray sees.
3. Raw log-odds = prior log-odds + the weighted evidence LLRs.
4. Calibration. Once `calibration_min_labels` inspection results with both outcomes have come
   back, the evidence calibrator (fusion/calibration.EvidenceCalibrator), fitted online on the
   decisions' features and the seizures found, gives the posterior: the prior and each
   evidence kind get their own learned weight (a kind's capped LLRs and their excess beyond
   the cap separately), and each contribution in the explanation is the calibrated one. Before
   that the raw log-odds are used as they are (the sensors' LLRs come from physical models).
   A seizure is found with probability `inspection_sensitivity`, so the fitted probability of
   a seizure is divided by it (`contraband_log_odds`).
5. Policy (fusion/policy.py): the action of least expected cost under the inspection budget,
   with the safety floor, the random audit and officer overrides. An unreadable subject id is
   never released (its declaration cannot be matched).

Feedback: `learn()` takes an inspection result. Its declaration's parties, HS chapter and
origin get the outcome in the prior's counts (trader histories), and the calibrator learns from
the features (prior, evidence by kind) the subject was last decided with. The model version
changes with either.

The model version of a decision (`RiskDecision.model_version`, at most 128 characters) is
'customs-risk/<code version>+<digest of the component versions>'; the explanation lists the
components. Core module: no ROS. Not thread-safe (the node's executor serialises calls).
"""

import dataclasses
from dataclasses import dataclass, field
import hashlib
import math

from customs_lab.common.subjects import Subject, SubjectKind
from customs_lab.fusion.calibration import EvidenceCalibrator
from customs_lab.fusion.declaration_prior import DeclarationFeatures, DeclarationPrior
from customs_lab.fusion.evidence_store import DEFAULT_TTL, EvidenceStore
from customs_lab.fusion.logodds import (
    CHANNELS,
    Contribution,
    EvidenceItem,
    FusionConfig,
    combine,
    cover,
    logit,
    sigmoid,
)
from customs_lab.fusion.policy import DecisionPolicy, PolicyConfig, PolicyDecision

ENGINE_NAME = 'customs-risk'
ENGINE_VERSION = '0.2.0'
KIND_NAMES = {
    SubjectKind.CONTAINER: 'container',
    SubjectKind.PARCEL: 'parcel',
    SubjectKind.PASSENGER: 'passenger',
}


def coverage_config(prefixes, shares: dict) -> dict:
    """Return EngineConfig.coverage from the node's parameters (ValueError if they disagree).

    prefixes: `coverage_prefixes`; shares: {subject kind name: `coverage_<name>` list}.
    """
    coverage = {}
    for kind, name in KIND_NAMES.items():
        values = list(shares.get(name, [1.0] * len(prefixes)))
        if len(values) != len(prefixes):
            raise ValueError(f'coverage_{name} needs one share per coverage_prefixes entry')
        coverage[kind] = {prefix: float(v) for prefix, v in zip(prefixes, values, strict=True)}
    return coverage


def contraband_log_odds(found_log_odds: float, sensitivity: float) -> float:
    """Return the log-odds of contraband given those of a seizure being found.

    An inspection finds contraband with probability `sensitivity`: P(found) = s * P(contraband),
    so P(contraband) = P(found) / s, capped just below 1 (computed in log space).
    """
    x = found_log_odds
    log_found = -math.log1p(math.exp(-x)) if x >= 0 else x - math.log1p(math.exp(x))
    log_p = min(log_found - math.log(sensitivity), math.log1p(-1e-12))
    return log_p - math.log1p(-math.exp(log_p))


@dataclass
class EngineConfig:
    """Everything the engine is configured with (config/fusion.yaml documents each)."""

    fusion: FusionConfig = field(default_factory=FusionConfig)  # base rates
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    ttl: dict = field(default_factory=lambda: dict(DEFAULT_TTL))  # kind prefix -> s
    grace: float = 3600.0  # s an expired item is kept before it is pruned
    history_limit: int = 100  # superseded items kept per subject
    calibration_min_labels: int = 200  # inspection results before the calibrator is used
    inspection_sensitivity: float = 0.9  # share of contraband an inspection finds
    llr_cap: float = 20.0  # nats: the most one evidence item can count, either way
    # subject kind -> {evidence kind prefix: share of that kind's contraband the family covers}
    coverage: dict = field(default_factory=dict)

    def validate(self):
        """Raise ValueError if the configuration is inconsistent."""
        self.fusion.validate()
        self.policy.validate()
        if not (isinstance(self.calibration_min_labels, int) and self.calibration_min_labels >= 2):
            raise ValueError(
                f'calibration_min_labels must be an int >= 2: {self.calibration_min_labels!r}'
            )
        if not 0.0 < self.llr_cap < math.inf:
            raise ValueError(f'llr_cap must be finite and > 0: {self.llr_cap!r}')
        if not 0.0 < self.inspection_sensitivity <= 1.0:
            raise ValueError(
                f'inspection_sensitivity must be in (0, 1]: {self.inspection_sensitivity!r}'
            )
        for kind, shares in self.coverage.items():
            for prefix, share in shares.items():
                if not prefix or not (isinstance(share, (int, float)) and 0.0 < share <= 1.0):
                    raise ValueError(f'coverage of {SubjectKind(kind).name} by {prefix!r} must '
                                     f'be in (0, 1] for a non-empty prefix: {share!r}')


@dataclass(frozen=True)
class Assessment:
    """The engine's risk for one subject, before the policy acts on it."""

    prior: float  # probability before sensor evidence
    prior_log_odds: float
    prior_explanation: str
    contributions: tuple[Contribution, ...]
    raw_log_odds: float  # prior + evidence, before calibration
    log_odds: float  # calibrated
    posterior: float
    notes: tuple[str, ...]  # superseded / expired evidence, calibration
    features: dict = field(default_factory=dict)  # what the calibrator sees (learn())


@dataclass(frozen=True)
class EngineDecision:
    """A decision (the node turns it into a RiskDecision)."""

    subject: Subject
    assessment: Assessment
    policy: PolicyDecision
    model_version: str
    explanation: str

    @property
    def channel(self) -> int:
        """Return the channel index (CHANNELS)."""
        return self.policy.channel

    @property
    def action(self) -> str:
        """Return the recommended action."""
        return self.policy.action


@dataclass
class _Declared:
    declaration_id: str
    features: DeclarationFeatures


class RiskEngine:
    """Decide subjects from their declaration and evidence; learn from inspection results."""

    def __init__(self, config: EngineConfig | None = None, prior: DeclarationPrior | None = None,
                 calibrator: EvidenceCalibrator | None = None):
        self.config = config or EngineConfig()
        self.config.validate()
        c = self.config
        self.store = EvidenceStore(c.ttl, c.grace, c.history_limit)
        self.policy = DecisionPolicy(c.policy)
        self.prior = prior
        self.calibrator = calibrator or EvidenceCalibrator(cap=c.llr_cap)
        self.labels = [0, 0]  # inspection results learned from: [clean, seizure]
        self._declared: dict[str, _Declared] = {}
        self._by_declaration: dict[str, str] = {}  # declaration id -> subject key
        self._scored: dict[str, dict] = {}  # subject key -> features of its last decision

    # -- inputs ----------------------------------------------------------------------------

    def set_prior(self, prior: DeclarationPrior | None):
        """Use another declaration prior (a newly fitted model); None: base rates only."""
        self.prior = prior

    def check_calibration(self, calibrator: EvidenceCalibrator, labels):
        """Raise ValueError if a fitted calibrator does not fit this engine's configuration."""
        if calibrator.cap != self.config.llr_cap:
            raise ValueError(f'the calibration was fitted with an LLR cap of {calibrator.cap:g} '
                             f'nats, this engine caps at {self.config.llr_cap:g}')
        if len(labels) != 2 or min(labels) < 0:
            raise ValueError(f'labels must be [clean, seizure] counts, got {labels!r}')

    def set_calibration(self, calibrator: EvidenceCalibrator, labels):
        """Use a calibrator fitted on `labels` = [clean, seizure] inspection results."""
        self.check_calibration(calibrator, labels)
        self.calibrator = calibrator
        self.labels = [int(labels[0]), int(labels[1])]

    def declare(self, subject_key: str, declaration_id: str, features: DeclarationFeatures):
        """Remember a subject's declaration (a later one for the subject replaces it)."""
        if self.prior is not None:
            self.prior.log_odds(features)  # raises ValueError on bad features
        self._declared[subject_key] = _Declared(declaration_id, features)
        if declaration_id:
            self._by_declaration[declaration_id] = subject_key

    def declaration(self, subject_key: str) -> DeclarationFeatures | None:
        """Return the subject's declaration features, if any."""
        entry = self._declared.get(subject_key)
        return entry.features if entry else None

    def add_evidence(self, subject_key: str, item: EvidenceItem, stamp: float):
        """Store evidence about a subject (raises ValueError on bad evidence)."""
        return self.store.add(subject_key, item, stamp)

    def override(self, subject_key: str, action: str, officer_id: str, reason: str,
                 at: float = -math.inf):
        """Record an officer's action (given at `at`, s) for the subject's decisions."""
        return self.policy.override(subject_key, action, officer_id, reason, at)

    def withdraw_override(self, subject_key: str) -> bool:
        """Withdraw an officer's override; return True if there was one."""
        return self.policy.cancel_override(subject_key)

    def forget(self, subject_key: str):
        """Drop what is held about a subject (after its decision, once nothing more comes)."""
        self.store.forget(subject_key)
        entry = self._declared.pop(subject_key, None)
        if entry and self._by_declaration.get(entry.declaration_id) == subject_key:
            del self._by_declaration[entry.declaration_id]
        self._scored.pop(subject_key, None)
        self.policy.cancel_override(subject_key)

    # -- the model -------------------------------------------------------------------------

    @property
    def calibrated(self) -> bool:
        """Return True once enough inspection results of both outcomes were learned from."""
        return sum(self.labels) >= self.config.calibration_min_labels and min(self.labels) > 0

    def components(self) -> dict:
        """Return the version of each part of the model."""
        return {
            'fusion': self.config.fusion.version,
            'prior': self.prior.version if self.prior is not None else 'base-rates',
            'calibration': self.calibrator.version if self.calibrated else 'uncalibrated',
            'policy': self.policy.version,
            'coverage': self._coverage_version(),
        }

    def _coverage_version(self) -> str:
        coverage = {int(k): dict(sorted(v.items())) for k, v in self.config.coverage.items()}
        if not any(share < 1.0 for v in coverage.values() for share in v.values()):
            return 'full-coverage'
        blob = repr(sorted(coverage.items())).encode()
        return f'coverage+{hashlib.sha256(blob).hexdigest()[:8]}'

    @property
    def version(self) -> str:
        """Return 'customs-risk/<code>+<digest of the component versions>'."""
        blob = ';'.join(f'{k}={v}' for k, v in sorted(self.components().items()))
        return f'{ENGINE_NAME}/{ENGINE_VERSION}+{hashlib.sha256(blob.encode()).hexdigest()[:12]}'

    # -- deciding --------------------------------------------------------------------------

    def assess(self, subject: Subject, now: float) -> Assessment:
        """Return the subject's risk at `now` from its declaration and active evidence."""
        kind = SubjectKind(subject.kind)
        declared = self._declared.get(subject.key)
        if declared is not None and self.prior is not None:
            estimate = self.prior.log_odds(declared.features)
            prior_lo, prior_text = estimate.log_odds, estimate.explanation
        else:
            rate = self.config.fusion.base_rate.get(kind, 0.01)
            prior_lo = logit(rate)
            why = 'no declaration' if declared is None else 'no declaration prior model loaded'
            prior_text = f'base rate of {KIND_NAMES[kind]}s {rate:.3g} ({why})'
        cap, notes, items, reported = self.config.llr_cap, [], [], {}
        for item in self.store.active(subject.key, now):
            reported[item.evidence_id] = item
            if abs(item.log_likelihood_ratio) > cap:
                notes.append(f'{item.kind} from {item.sensor_id or "?"} reported '
                             f'{item.log_likelihood_ratio:+.3g} nats, counted as +-{cap:g}'
                             + (' plus its calibrated excess' if self.calibrated else ''))
                item = dataclasses.replace(
                    item, log_likelihood_ratio=math.copysign(cap, item.log_likelihood_ratio))
            items.append(item)
        evidence, contributions = combine(items)
        contributions, covered = cover(contributions, self.config.coverage.get(kind, {}))
        evidence = sum(c.contribution for c in contributions)
        notes += covered
        # each contribution names the item as the sensor reported it (its LLR uncapped: the
        # database keeps what the sensor said), and what it counted
        contributions = tuple(dataclasses.replace(c, item=reported[c.item.evidence_id])
                              for c in contributions)
        raw = prior_lo + evidence
        features = self.calibrator.features(
            prior_lo, [(c.weight, c.item.log_likelihood_ratio, c.item.kind)
                       for c in contributions])
        for record in self.store.records(subject.key):
            status = record.status(now)
            if status != 'active':
                item = record.item
                why = (f'superseded by the newer {record.superseded_by[:8]}'
                       if status == 'superseded' else f'expired at {record.expires_at:.0f} s')
                notes.append(f'{item.kind} from {item.sensor_id or "?"} not used: {why}')
        log_odds = raw
        if self.calibrated:
            calibrator = self.calibrator
            log_odds = contraband_log_odds(calibrator.log_odds(features),
                                           self.config.inspection_sensitivity)
            contributions = tuple(
                dataclasses.replace(c, contribution=calibrator.contribution(
                    c.item.kind, c.weight, c.item.log_likelihood_ratio))
                for c in contributions)
            notes.append(f'calibrated {raw:+.2f} -> {log_odds:+.2f} nats from '
                         f'{sum(self.labels)} inspection results ({calibrator.describe()})')
        return Assessment(sigmoid(prior_lo), prior_lo, prior_text, contributions, raw, log_odds,
                          sigmoid(log_odds), tuple(notes), features)

    def decide(self, subject: Subject, now: float, id_valid: bool = True,
               commit: bool = True) -> EngineDecision:
        """Decide the subject at `now` (commit: count it in the budget)."""
        a = self.assess(subject, now)
        no_release = '' if id_valid else (
            'the subject id failed validation, so its declaration cannot be matched')
        newest = max((r.stamp for r in self.store.records(subject.key)
                      if r.status(now) == 'active'), default=-math.inf)
        p = self.policy.decide(subject, a.posterior, now, commit, no_release, newest)
        if commit:
            self._scored[subject.key] = a.features
        ranked = sorted(a.contributions, key=lambda c: -abs(c.contribution))
        evidence = '; '.join(
            f'{c.item.kind} from {c.item.sensor_id} {c.contribution:+.2f} nats'
            + (f' (weight {c.weight:.2g})' if c.weight != 1.0 else '')
            + f' ({c.item.explanation})' for c in ranked
        ) or 'none yet'
        policy_reasons = p.explanation.split('; ', 1)[1] if '; ' in p.explanation else ''
        components = self.components()
        explanation = (
            f'{CHANNELS[p.channel]} ({p.action}): risk {a.posterior:.3g} from prior '
            f'{a.prior:.3g}; prior: {a.prior_explanation}; evidence: {evidence}'
            + ''.join(f'; {n}' for n in a.notes)
            + (f'; policy: {policy_reasons}' if policy_reasons else '')
            + '; models: ' + ', '.join(components.values())
        )
        return EngineDecision(subject, a, p, self.version, explanation)

    # -- learning --------------------------------------------------------------------------

    def learn(self, subject_key: str, declaration_id: str, seizure: bool) -> list[str]:
        """Learn from an inspection result; return what changed ('prior', 'calibration')."""
        key = self._by_declaration.get(declaration_id, subject_key) if declaration_id \
            else subject_key
        changed = []
        declared = self._declared.get(key)
        if declared is not None and self.prior is not None:
            self.prior.update(declared.features, bool(seizure))
            changed.append('prior')
        features = self._scored.get(key)
        if features is not None:
            self.calibrator.update(features, bool(seizure))
            self.labels[int(bool(seizure))] += 1
            changed.append('calibration')
        return changed
