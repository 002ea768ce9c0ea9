"""Risk fusion in log-odds: a prior per subject, calibrated evidence added, a channel chosen.

posterior log-odds = logit(prior) + sum over evidence of weight * LLR

Items that share a non-empty correlation group (e.g. several panels or passes of one portal)
are not independent: each group contributes the mean of its items' LLRs (the weights are 1/n),
so that a group counts once. Core module: no ROS.

This is the foundation's minimal fusion; the risk-fusion issue adds declaration-based priors,
learned calibration and capacity-aware policies on top of the same interface.
"""

from dataclasses import dataclass, field
import hashlib
import json
import math

from customs_lab.common.subjects import Subject, SubjectKind

MODEL_NAME = 'fusion-logodds'
MODEL_VERSION = '0.1.0'
CHANNELS = ('GREEN', 'YELLOW', 'RED')  # indices match RiskDecision.CHANNEL_*


def logit(p: float) -> float:
    """Return ln(p / (1 - p))."""
    return math.log(p / (1.0 - p))


def sigmoid(x: float) -> float:
    """Return 1 / (1 + exp(-x)), without overflow."""
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    z = math.exp(x)
    return z / (1.0 + z)


@dataclass(frozen=True)
class EvidenceItem:
    """The part of an Evidence message fusion uses."""

    evidence_id: str
    kind: str
    sensor_id: str
    log_likelihood_ratio: float
    log_likelihood_ratio_std: float = 0.0
    correlation_group: str = ''
    explanation: str = ''


@dataclass(frozen=True)
class Contribution:
    """What one item added to the log-odds."""

    item: EvidenceItem
    weight: float
    contribution: float


@dataclass(frozen=True)
class Decision:
    """A fused decision (the node turns it into a RiskDecision)."""

    subject: Subject
    prior: float
    posterior: float
    log_odds: float
    channel: int
    action: str
    contributions: tuple[Contribution, ...]
    model_version: str
    explanation: str


@dataclass
class FusionConfig:
    """Priors, thresholds and actions (config/fusion.yaml documents each)."""

    base_rate: dict = field(
        default_factory=lambda: {
            SubjectKind.CONTAINER: 0.01,
            SubjectKind.PARCEL: 0.005,
            SubjectKind.PASSENGER: 0.002,
        }
    )
    yellow_threshold: float = 0.05
    red_threshold: float = 0.5
    unreadable_id_channel: int = 1
    actions: dict = field(
        default_factory=lambda: {
            (SubjectKind.CONTAINER, 0): 'release',
            (SubjectKind.CONTAINER, 1): 'document_check',
            (SubjectKind.CONTAINER, 2): 'physical_inspection',
            (SubjectKind.PARCEL, 0): 'release',
            (SubjectKind.PARCEL, 1): 'xray_inspection',
            (SubjectKind.PARCEL, 2): 'hold',
            (SubjectKind.PASSENGER, 0): 'release',
            (SubjectKind.PASSENGER, 1): 'document_check',
            (SubjectKind.PASSENGER, 2): 'physical_inspection',
        }
    )

    def validate(self):
        """Raise ValueError if the configuration is inconsistent."""
        for kind, rate in self.base_rate.items():
            if not 0.0 < rate < 1.0:
                raise ValueError(
                    f'base rate of {SubjectKind(kind).name} must be in (0, 1): {rate}'
                )
        if not 0.0 < self.yellow_threshold < self.red_threshold < 1.0:
            raise ValueError('need 0 < yellow_threshold < red_threshold < 1')

    @property
    def version(self) -> str:
        """Return the model version: code version + a digest of this configuration."""
        blob = json.dumps(
            {
                'base_rate': {int(k): v for k, v in self.base_rate.items()},
                'yellow': self.yellow_threshold,
                'red': self.red_threshold,
            },
            sort_keys=True,
        ).encode()
        return f'{MODEL_NAME}/{MODEL_VERSION}+cfg.{hashlib.sha256(blob).hexdigest()[:8]}'


def combine(items) -> tuple[float, tuple[Contribution, ...]]:
    """Sum the weighted LLRs of `items`; each correlation group counts once (weights 1/n)."""
    groups = {}
    for item in items:
        groups.setdefault(item.correlation_group or f'#{item.evidence_id}', []).append(item)
    contributions, total = [], 0.0
    for members in groups.values():
        weight = 1.0 / len(members)
        for item in members:
            if not math.isfinite(item.log_likelihood_ratio):
                raise ValueError(f'evidence {item.evidence_id} has a non-finite LLR')
            value = weight * item.log_likelihood_ratio
            contributions.append(Contribution(item, weight, value))
            total += value
    return total, tuple(contributions)


def family_of(kind: str, coverage: dict) -> str:
    """Return the longest prefix in `coverage` that `kind` starts with ('' if none)."""
    return max((prefix for prefix in coverage if prefix and kind.startswith(prefix)),
               key=len, default='')


def cover(contributions, coverage: dict) -> tuple[tuple[Contribution, ...], list[str]]:
    """Weigh each sensor family's evidence by the share of contraband it covers.

    A sensor's LLR weighs "contraband of the kind the sensor sees" against "clean": the
    portals' a radiological source, the X-ray's a weapon, ammunition, powder or battery. For
    a subject kind whose contraband is only partly of that kind (coverage c of the family
    whose kinds start with a prefix of `coverage`), P(obs | contraband) = c P(obs | covered) +
    (1 - c) P(obs | clean), so the family's summed contribution S counts as
    ln((1 - c) + c e^S): a clean reading lowers the risk by at most ln(1 / (1 - c)), an alarm
    counts nearly in full. Each contribution of the family is scaled by the same factor
    (ln((1 - c) + c e^S) / S, in (0, 1]). Families with coverage 1 (or not listed) count as
    they are. Returns the contributions and one note per family scaled.
    """
    families = {}
    for index, c in enumerate(contributions):
        family = family_of(c.item.kind, coverage)
        if family and coverage[family] < 1.0:
            families.setdefault(family, []).append(index)
    out, notes = list(contributions), []
    for family, members in sorted(families.items()):
        share = float(coverage[family])
        total = sum(contributions[i].contribution for i in members)
        mixed = float(math.log1p(-share + share * math.exp(total))) if total < 50 else (
            total + math.log(share + (1.0 - share) * math.exp(-total)))
        factor = mixed / total if total != 0 else 1.0
        for i in members:
            out[i] = Contribution(out[i].item, out[i].weight * factor,
                                  out[i].contribution * factor)
        notes.append(f'{family}* evidence {total:+.2f} counted as {mixed:+.2f} nats: it covers '
                     f'{share:.0%} of the contraband here')
    return tuple(out), notes


def decide(subject: Subject, items, config: FusionConfig, id_valid: bool = True) -> Decision:
    """Fuse `items` about `subject` into a decision."""
    kind = SubjectKind(subject.kind)
    prior = config.base_rate.get(kind, config.base_rate.get(SubjectKind.CONTAINER, 0.01))
    evidence_sum, contributions = combine(items)
    log_odds = logit(prior) + evidence_sum
    posterior = sigmoid(log_odds)
    channel = (
        2
        if posterior >= config.red_threshold
        else 1
        if posterior >= config.yellow_threshold
        else 0
    )
    reasons = []
    if not id_valid and channel < config.unreadable_id_channel:
        channel = config.unreadable_id_channel
        reasons.append('the subject id failed validation, so its declaration cannot be matched')
    action = config.actions.get((kind, channel), ('release', 'document_check', 'hold')[channel])
    ranked = sorted(contributions, key=lambda c: -abs(c.contribution))
    if ranked:
        top = '; '.join(
            f'{c.item.kind} from {c.item.sensor_id} {c.contribution:+.2f} nats'
            f' ({c.item.explanation})'
            for c in ranked[:3]
        )
        reasons.insert(0, f'evidence: {top}')
    else:
        reasons.insert(0, 'no sensor evidence: prior only')
    explanation = (
        f'{CHANNELS[channel]} ({action}): risk {posterior:.3g} from prior {prior:.3g}; '
        + '; '.join(reasons)
    )
    return Decision(
        subject,
        prior,
        posterior,
        log_odds,
        channel,
        action,
        contributions,
        config.version,
        explanation,
    )
