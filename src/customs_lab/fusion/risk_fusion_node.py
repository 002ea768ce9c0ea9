"""Risk fusion node: evidence per subject in, one explained RiskDecision per subject out.

Subscribes to declarations (/clearance/declarations: which subjects to expect and when) and to
the shared evidence topic (/evidence). A subject is decided as soon as every evidence kind
expected for its kind has arrived (parameters expected_evidence_*), or when it is overdue
(`decision_timeout` s after its declared arrival, or after its first evidence if it was never
declared, e.g. a misread container number). Evidence that arrives after a decision produces a
new decision that supersedes it. Decisions go to /decisions (reliable, transient local).
With `decide_all_when_scenario_ends`, the end of a simulated scenario (/simulation/status, which
carries no ground truth) decides every subject still pending, like the end of a shift.
"""

import uuid

from rclpy.node import Node

from customs_interfaces.msg import (
    Declaration,
    Evidence,
    EvidenceContribution,
    RiskDecision,
    ScenarioStatus,
)
from customs_lab.common.node_support import (
    DECISIONS_QOS,
    DECISIONS_TOPIC,
    DECLARATIONS_TOPIC,
    EVIDENCE_TOPIC,
    LATCHED,
    LATCHED_ALL,
    SCENARIO_STATUS_TOPIC,
    Diagnostics,
    declare,
    msg_to_subject,
    msg_to_uuid,
    reliable,
    run_node,
    subject_to_msg,
    time_msg_to_seconds,
    uuid_to_msg,
)
from customs_lab.common.subjects import SubjectKind
from customs_lab.fusion.logodds import EvidenceItem, FusionConfig, decide

KIND_NAMES = {
    SubjectKind.CONTAINER: 'container',
    SubjectKind.PARCEL: 'parcel',
    SubjectKind.PASSENGER: 'passenger',
}


class SubjectFile:
    """What fusion knows about one subject."""

    def __init__(self, subject, id_valid=True):
        self.subject = subject
        self.id_valid = id_valid
        self.declaration = None
        self.due = None  # sim s after which the subject is decided anyway
        self.evidence = {}  # evidence id -> EvidenceItem
        self.decisions = 0


class RiskFusion(Node):
    """Combine evidence into decisions."""

    def __init__(self, **kwargs):
        super().__init__('risk_fusion', **kwargs)
        self.config = FusionConfig(
            base_rate={
                kind: declare(
                    self,
                    f'base_rate_{name}',
                    default,
                    f'Prior probability that a {name} carries contraband',
                    minimum=1e-6,
                    maximum=0.999,
                )
                for (kind, name), default in zip(
                    KIND_NAMES.items(), (0.01, 0.005, 0.002), strict=True
                )
            },
            yellow_threshold=declare(
                self,
                'yellow_threshold',
                0.05,
                'Posterior risk from which a subject goes YELLOW',
                minimum=1e-6,
                maximum=0.999,
            ),
            red_threshold=declare(
                self,
                'red_threshold',
                0.5,
                'Posterior risk from which a subject goes RED',
                minimum=1e-6,
                maximum=0.999,
            ),
        )
        self.config.validate()
        self.expected = {
            kind: set(
                declare(
                    self,
                    f'expected_evidence_{name}',
                    [''],
                    f'Evidence kinds to wait for before deciding a {name}',
                )
            )
            - {''}
            for kind, name in KIND_NAMES.items()
        }
        self.decision_timeout = declare(
            self,
            'decision_timeout',
            600.0,
            'Sim s after the declared arrival (or first evidence) '
            'when a subject is decided with what is known',
            minimum=0.0,
            maximum=86400.0,
        )
        self.decide_at_end = declare(
            self,
            'decide_all_when_scenario_ends',
            False,
            'Decide all pending subjects when /simulation/status says finished (simulated sites)',
        )
        self.files = {}
        self.decisions_published = 0
        self.rejected_evidence = 0
        self.decision_pub = self.create_publisher(RiskDecision, DECISIONS_TOPIC, DECISIONS_QOS)
        self.create_subscription(Declaration, DECLARATIONS_TOPIC, self.on_declaration, LATCHED_ALL)
        self.create_subscription(Evidence, EVIDENCE_TOPIC, self.on_evidence, reliable(1000))
        if self.decide_at_end:
            self.create_subscription(
                ScenarioStatus, SCENARIO_STATUS_TOPIC, self.on_status, LATCHED
            )
        self.diagnostics = Diagnostics(self)
        self.create_timer(1.0, self.on_timer)
        self.get_logger().info(f'model {self.config.version}')

    def _file(self, subject_msg):
        subject = msg_to_subject(subject_msg)
        entry = self.files.get(subject.key)
        if entry is None:
            entry = self.files[subject.key] = SubjectFile(subject, subject_msg.id_valid)
        return entry

    def on_declaration(self, msg: Declaration):
        """Remember a declared subject and when it is due."""
        entry = self._file(msg.subject)
        entry.declaration = msg
        entry.due = time_msg_to_seconds(msg.expected_arrival) + self.decision_timeout

    def on_evidence(self, msg: Evidence):
        """Add evidence to its subject's file; decide if everything expected is in."""
        try:
            item = EvidenceItem(
                str(msg_to_uuid(msg.evidence_id)),
                msg.kind,
                msg.sensor_id,
                float(msg.log_likelihood_ratio),
                float(msg.log_likelihood_ratio_std),
                msg.correlation_group,
                msg.explanation,
            )
            if item.log_likelihood_ratio != item.log_likelihood_ratio or abs(
                item.log_likelihood_ratio
            ) == float('inf'):
                raise ValueError('non-finite log-likelihood ratio')
        except ValueError as error:
            self.rejected_evidence += 1
            self.get_logger().warn(f'evidence from {msg.source_node} rejected: {error}')
            return
        entry = self._file(msg.subject)
        entry.id_valid = entry.id_valid and msg.subject.id_valid
        entry.evidence[item.evidence_id] = item
        if entry.due is None:
            entry.due = self._now() + self.decision_timeout
        kinds = {e.kind for e in entry.evidence.values()}
        expected = self.expected.get(entry.subject.kind, set())
        if entry.decisions or expected <= kinds:
            self._decide(entry)

    def on_status(self, msg: ScenarioStatus):
        """At the end of a simulated scenario, decide every subject still pending."""
        if msg.finished:
            pending = [e for e in self.files.values() if not e.decisions]
            if pending:
                self.get_logger().info(
                    f'scenario finished: deciding {len(pending)} pending subjects'
                )
            for entry in pending:
                self._decide(entry)

    def on_timer(self):
        """Decide overdue subjects; report health."""
        now = self._now()
        for entry in list(self.files.values()):
            if not entry.decisions and entry.due is not None and now >= entry.due:
                self._decide(entry)
        pending = sum(1 for e in self.files.values() if not e.decisions)
        self.diagnostics.update(
            'risk_fusion',
            'fusion',
            Diagnostics.OK,
            f'{len(self.files)} subjects, {pending} pending, {self.decisions_published} decisions',
            {
                'subjects': len(self.files),
                'pending': pending,
                'decisions': self.decisions_published,
                'rejected_evidence': self.rejected_evidence,
                'model_version': self.config.version,
            },
        )

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _decide(self, entry: SubjectFile):
        decision = decide(entry.subject, entry.evidence.values(), self.config, entry.id_valid)
        msg = RiskDecision(
            decision_id=uuid_to_msg(uuid.uuid4()),
            subject=subject_to_msg(entry.subject, entry.id_valid),
            channel=decision.channel,
            recommended_action=decision.action,
            prior_risk=decision.prior,
            posterior_risk=decision.posterior,
            posterior_log_odds=decision.log_odds,
            model_version=decision.model_version,
            explanation=decision.explanation,
        )
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.contributions = [
            EvidenceContribution(
                evidence_id=uuid_to_msg(uuid.UUID(c.item.evidence_id)),
                kind=c.item.kind,
                sensor_id=c.item.sensor_id,
                log_likelihood_ratio=c.item.log_likelihood_ratio,
                weight=c.weight,
                contribution=c.contribution,
                explanation=c.item.explanation,
            )
            for c in decision.contributions
        ]
        self.decision_pub.publish(msg)
        entry.decisions += 1
        self.decisions_published += 1
        self.get_logger().info(f'{entry.subject.key}: {decision.explanation}')


def main(args=None):
    """Run the fusion node."""
    return run_node(RiskFusion, args)


if __name__ == '__main__':
    raise SystemExit(main())
