"""Risk fusion node: declarations and evidence in, one explained RiskDecision per subject out.

A thin node around the risk engine (fusion/engine.py: declaration prior, evidence over time,
calibration, cost policy with an inspection budget, officer overrides).

Inputs
  /clearance/declarations (Declaration, latched)   which subjects to expect, their declaration
  /clearance/get_declaration (GetDeclaration)      asked for a subject seen without a declaration
  /evidence (Evidence)                             sensor evidence about subjects
  /clearance/inspection_results (InspectionResult) what officers found: the engine learns from it
  ~/override (OverrideDecision)                    an officer's action for a subject
  /simulation/status (ScenarioStatus)              only with decide_all_when_scenario_ends
  prior_model (file)                               the declaration prior (customs-lab risk fit);
                                                   reloaded when the file changes
Output
  /decisions (RiskDecision, reliable, transient local)

When: a subject is decided as soon as every evidence kind expected for its kind has arrived
(expected_evidence_*), or when it is overdue (`decision_timeout` s after its declared arrival,
or after its first evidence if it was never declared). Evidence that arrives after a decision,
and an officer's override, produce a new decision that supersedes it. With
`decide_all_when_scenario_ends`, the end of a simulated scenario decides every subject still
pending, like the end of a shift.
"""

import os
import uuid

from rclpy.node import Node

from customs_interfaces.msg import (
    Declaration,
    Evidence,
    EvidenceContribution,
    InspectionResult,
    RiskDecision,
    ScenarioStatus,
)
from customs_interfaces.srv import GetDeclaration, OverrideDecision
from customs_lab.common.data_dir import data_dir
from customs_lab.common.node_support import (
    DECISIONS_QOS,
    DECISIONS_TOPIC,
    DECLARATIONS_TOPIC,
    EVIDENCE_TOPIC,
    INSPECTION_RESULTS_QOS,
    INSPECTION_RESULTS_TOPIC,
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
from customs_lab.fusion.declaration_prior import DeclarationFeatures
from customs_lab.fusion.engine import KIND_NAMES, EngineConfig, RiskEngine, coverage_config
from customs_lab.fusion.evidence_store import DEFAULT_TTL
from customs_lab.fusion.logodds import EvidenceItem, FusionConfig
from customs_lab.fusion.policy import PolicyConfig, default_models
from customs_lab.fusion.prior_training import MODEL_FILE, load_calibration, load_model

GET_DECLARATION_SERVICE = '/clearance/get_declaration'


def declaration_features(msg: Declaration) -> DeclarationFeatures:
    """Return the declaration prior's view of a Declaration message (its first line)."""
    line = msg.items[0] if msg.items else None
    return DeclarationFeatures(
        subject_kind=KIND_NAMES[msg_to_subject(msg.subject).kind],
        hs_code=line.hs_code if line else '',
        origin_country=msg.origin_country,
        declarant_id=msg.declarant_id,
        consignee_id=msg.consignee_id,
        quantity=int(line.quantity) if line else 0,
        net_mass=float(line.net_mass) if line else 0.0,
        gross_mass=float(msg.gross_mass),
        declared_value=float(line.value) if line else 0.0,
        currency=line.currency if line else 'USD',
    )


class SubjectFile:
    """What the node tracks about one subject (the engine holds its evidence)."""

    def __init__(self, subject, id_valid=True):
        self.subject = subject
        self.id_valid = id_valid
        self.declared = False
        self.asked = False  # a GetDeclaration request was sent
        self.due = None  # s after which the subject is decided anyway
        self.kinds = set()  # evidence kinds received
        self.decisions = 0
        self.last_change = 0.0  # s, for forgetting decided (or never decidable) subjects


class RiskFusion(Node):
    """Combine declarations and evidence into explained decisions."""

    def __init__(self, **kwargs):
        super().__init__('risk_fusion', **kwargs)
        self.engine = RiskEngine(self._engine_config())
        self.expected = {
            kind: set(declare(self, f'expected_evidence_{name}', [''],
                              f'Evidence kinds to wait for before deciding a {name}')) - {''}
            for kind, name in KIND_NAMES.items()
        }
        self.decision_timeout = declare(
            self, 'decision_timeout', 600.0,
            'Seconds after the declared arrival (or first evidence) when a subject is decided '
            'with what is known', minimum=0.0, maximum=86400.0)
        self.forget_after = declare(
            self, 'forget_after', 86400.0,
            'Seconds after its last decision and evidence when a subject is forgotten',
            minimum=1.0, maximum=30 * 86400.0)
        self.decide_at_end = declare(
            self, 'decide_all_when_scenario_ends', False,
            'Decide all pending subjects when /simulation/status says finished (simulated sites)')
        directory = data_dir(declare(self, 'data_dir', '', 'Data directory ("": the default)'))
        self.model_path = declare(
            self, 'prior_model', '',
            f'Declaration prior model file (customs-lab risk fit; "": <data_dir>/{MODEL_FILE})'
        ) or str(directory / MODEL_FILE)
        self.model_stamp = None
        self.model_problem = ''
        self.files = {}
        self.decisions_published = 0
        self.rejected = {'evidence': 0, 'declarations': 0, 'results': 0}
        self.learned = 0
        self.decision_pub = self.create_publisher(RiskDecision, DECISIONS_TOPIC, DECISIONS_QOS)
        self.create_subscription(Declaration, DECLARATIONS_TOPIC, self.on_declaration, LATCHED_ALL)
        self.create_subscription(Evidence, EVIDENCE_TOPIC, self.on_evidence, reliable(1000))
        self.create_subscription(InspectionResult, INSPECTION_RESULTS_TOPIC, self.on_result,
                                 INSPECTION_RESULTS_QOS)
        self.create_service(OverrideDecision, '~/override', self.on_override)
        self.declaration_client = self.create_client(GetDeclaration, GET_DECLARATION_SERVICE)
        if self.decide_at_end:
            self.create_subscription(ScenarioStatus, SCENARIO_STATUS_TOPIC, self.on_status,
                                     LATCHED)
        self.diagnostics = Diagnostics(self)
        self._reload_model()
        self.create_timer(1.0, self.on_timer)
        self.get_logger().info(f'model {self.engine.version}: {self.engine.components()}')

    # -- configuration -----------------------------------------------------------------------

    def _engine_config(self) -> EngineConfig:
        """Read the parameters into an EngineConfig (raises ValueError on a bad combination)."""
        models = default_models()
        for kind, name in KIND_NAMES.items():
            model = models[kind]
            models[kind] = type(model)(
                model.allowed, model.cost, model.detect,
                declare(self, f'miss_cost_{name}', float(model.miss_cost),
                        f'Cost of releasing a {name} that carries contraband (officer minutes)',
                        minimum=1e-3, maximum=1e9),
                declare(self, f'target_rate_{name}', float(model.target_rate),
                        f'Share of {name}s per shift sent to an inspection (X-ray, robot, '
                        'physical, hold)', minimum=1e-4, maximum=0.99),
            )
        prefixes = declare(self, 'evidence_ttl_prefixes', list(DEFAULT_TTL),
                           'Evidence kind prefixes with their own time-to-live ("" = the rest)')
        seconds = declare(self, 'evidence_ttl_seconds', [float(s) for s in DEFAULT_TTL.values()],
                          'Time-to-live (s) of each prefix in evidence_ttl_prefixes')
        if len(prefixes) != len(seconds):
            raise ValueError('evidence_ttl_prefixes and evidence_ttl_seconds differ in length')
        families = declare(self, 'coverage_prefixes', ['radiation.', 'xray.'],
                           'Sensor families (evidence kind prefixes) whose coverage is given')
        coverage = coverage_config(families, {
            name: declare(self, f'coverage_{name}', [1.0] * len(families),
                          f'Share of the contraband of {name}s each family of '
                          'coverage_prefixes can see (1: all of it)')
            for name in KIND_NAMES.values()})
        config = EngineConfig(
            fusion=FusionConfig(base_rate={
                kind: declare(self, f'base_rate_{name}', default,
                              f'Prior probability that a {name} carries contraband, when its '
                              'declaration or the prior model is missing',
                              minimum=1e-6, maximum=0.999)
                for (kind, name), default in zip(KIND_NAMES.items(), (0.01, 0.005, 0.002),
                                                 strict=True)}),
            policy=PolicyConfig(
                models=models,
                shift_length=declare(self, 'shift_length', 8 * 3600.0,
                                     'Length of a shift (s): the inspection budget is per shift',
                                     minimum=60.0, maximum=7 * 86400.0),
                shift_origin=declare(self, 'shift_origin', 0.0,
                                     'Clock time (s) at which a shift starts'),
                price_step=declare(self, 'price_step', 0.01,
                                   'Shadow-price step of the budget, as a share of the miss cost',
                                   minimum=1e-6, maximum=1.0),
                must_inspect=declare(self, 'must_inspect', 0.5,
                                     'Risk from which a subject is inspected whatever the budget',
                                     minimum=1e-6, maximum=1.0),
                random_audit_rate=declare(self, 'random_audit_rate', 0.002,
                                          'Share of subjects inspected at random (unbiased '
                                          'learning)', minimum=0.0, maximum=0.5),
                audit_key=declare(self, 'audit_key', 'customs-lab',
                                  'Key of the random audit draw (set a secret one per site)'),
            ),
            ttl=dict(zip(prefixes, seconds, strict=True)),
            calibration_min_labels=declare(
                self, 'calibration_min_labels', 200,
                'Inspection results (of both outcomes) before the calibrator is applied',
                minimum=2, maximum=10**9),
            inspection_sensitivity=declare(
                self, 'inspection_sensitivity', 0.9,
                'Share of contraband an inspection finds', minimum=0.01, maximum=1.0),
            llr_cap=declare(self, 'llr_cap', 20.0,
                            'The most one evidence item can count, either way (nats)',
                            minimum=0.1, maximum=1000.0),
            coverage=coverage,
        )
        config.validate()
        return config

    def _reload_model(self):
        """Load the prior model file if it appeared or changed since it was last read."""
        try:
            stat = os.stat(self.model_path)
        except OSError:
            if self.model_stamp is not None or not self.model_problem:
                self.model_problem = f'no model file {self.model_path}: base rates only'
                self.get_logger().warn(self.model_problem)
            return
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp == self.model_stamp:
            return
        self.model_stamp = stamp
        try:
            model = load_model(self.model_path)
        except ValueError as error:
            self.model_problem = f'{error}; keeping the previous model'
            self.get_logger().error(self.model_problem)
            return
        self.engine.set_prior(model)
        self.model_problem = ''
        try:
            calibration = load_calibration(self.model_path)
            if calibration is not None:  # fitted on every inspection result up to the fit
                self.engine.set_calibration(*calibration)
        except ValueError as error:
            calibration = None
            self.model_problem = f'evidence calibration not used: {error}'
            self.get_logger().error(self.model_problem)
        self.get_logger().info(
            f'declaration prior {model.version} from {self.model_path}'
            + (f'; evidence calibration {calibration[0].version} from {sum(calibration[1])} '
               'inspection results' if calibration else ''))

    # -- inputs ------------------------------------------------------------------------------

    def _file(self, subject_msg):
        subject = msg_to_subject(subject_msg)
        entry = self.files.get(subject.key)
        if entry is None:
            entry = self.files[subject.key] = SubjectFile(subject, subject_msg.id_valid)
        entry.last_change = self._now()
        return entry

    def on_declaration(self, msg: Declaration):
        """Remember a declared subject, its declaration and when it is due."""
        self._reload_model()
        try:
            subject = msg_to_subject(msg.subject)
            self.engine.declare(subject.key, msg.declaration_id, declaration_features(msg))
        except (ValueError, KeyError) as error:
            self.rejected['declarations'] += 1
            self.get_logger().warn(f'declaration {msg.declaration_id!r} not used: {error}')
            return
        entry = self._file(msg.subject)
        entry.declared = True
        entry.due = time_msg_to_seconds(msg.expected_arrival) + self.decision_timeout

    def on_evidence(self, msg: Evidence):
        """Add evidence to its subject; decide if everything expected is in."""
        stamp = time_msg_to_seconds(msg.header.stamp) or self._now()
        try:
            item = EvidenceItem(
                str(msg_to_uuid(msg.evidence_id)), msg.kind, msg.sensor_id,
                float(msg.log_likelihood_ratio), float(msg.log_likelihood_ratio_std),
                msg.correlation_group, msg.explanation)
            key = msg_to_subject(msg.subject).key
            self.engine.add_evidence(key, item, stamp)
        except ValueError as error:
            self.rejected['evidence'] += 1
            self.get_logger().warn(f'evidence from {msg.source_node or "?"} rejected: {error}')
            return
        entry = self._file(msg.subject)
        entry.id_valid = entry.id_valid and msg.subject.id_valid
        entry.kinds.add(item.kind)
        if entry.due is None:
            entry.due = self._now() + self.decision_timeout
        if not entry.declared:
            self._ask_declaration(entry, msg.subject)
        expected = self.expected.get(entry.subject.kind, set())
        if entry.decisions or expected <= entry.kinds:
            self._decide(entry)

    def _ask_declaration(self, entry: SubjectFile, subject_msg):
        """Ask the clearance bridge for a declaration fusion has not received (once)."""
        if entry.asked or not entry.id_valid or not self.declaration_client.service_is_ready():
            return
        entry.asked = True
        future = self.declaration_client.call_async(GetDeclaration.Request(subject=subject_msg))
        future.add_done_callback(lambda f: self._on_declaration_reply(entry, f))

    def _on_declaration_reply(self, entry: SubjectFile, future):
        try:
            reply = future.result()
        except Exception as error:  # noqa: BLE001 - the service may go away: decide without
            self.get_logger().warn(f'{entry.subject.key}: declaration request failed: {error}')
            return
        if reply.found and not entry.declared:
            self.on_declaration(reply.declaration)
            if entry.decisions:  # decided on the base rate meanwhile: decide again
                self._decide(entry)

    def on_result(self, msg: InspectionResult):
        """Learn from an inspection result; the model version changes."""
        try:
            subject = msg_to_subject(msg.subject)
        except ValueError as error:
            self.rejected['results'] += 1
            self.get_logger().warn(f'inspection result not used: {error}')
            return
        before = self.engine.version
        changed = self.engine.learn(subject.key, msg.declaration_id, msg.outcome == 'seizure')
        if changed:
            self.learned += 1
            self.get_logger().info(
                f'{subject.key}: learned {msg.outcome} ({", ".join(changed)}); model '
                f'{before} -> {self.engine.version}')

    def on_override(self, request, response):
        """Take (or, with an empty action, withdraw) an officer's action; re-decide if decided."""
        try:
            subject = msg_to_subject(request.subject)
            valid, problem = subject.validate()
            if not (subject.id and valid):  # an unread id would name every unread subject
                raise ValueError(f'an override needs a valid subject id: '
                                 f'{problem or "the id is empty"}')
            if request.action:
                self.engine.override(subject.key, request.action, request.officer_id,
                                     request.reason, self._now())
            elif not (request.officer_id.strip() and request.reason.strip()):
                raise ValueError('withdrawing an override needs the officer_id and a reason')
            elif not self.engine.withdraw_override(subject.key):
                raise ValueError(f'{subject.key} has no override to withdraw')
        except ValueError as error:
            response.accepted, response.message = False, str(error)
            return response
        entry = self._file(request.subject)
        what = request.action or 'the override withdrawn, the policy decides'
        if entry.decisions:
            self._decide(entry)
            response.message = f'{subject.key}: {what}; new decision published'
        else:
            response.message = f'{subject.key}: {what} for its decisions'
        self.get_logger().info(
            f'override by {request.officer_id}: {response.message} ({request.reason})')
        response.accepted = True
        return response

    def on_status(self, msg: ScenarioStatus):
        """At the end of a simulated scenario, decide every subject still pending."""
        if msg.finished:
            pending = [e for e in self.files.values() if not e.decisions]
            if pending:
                self.get_logger().info(f'scenario finished: deciding {len(pending)} pending '
                                       'subjects')
            for entry in pending:
                self._decide(entry)

    def on_timer(self):
        """Decide overdue subjects, forget old ones, pick up a new model, report health."""
        now = self._now()
        self._reload_model()
        for entry in list(self.files.values()):
            if not entry.decisions and entry.due is not None and now >= entry.due:
                self._decide(entry)
            elif ((entry.decisions or entry.due is None)
                  and now - entry.last_change > self.forget_after):
                # decided, or nothing will ever decide it (an override for a subject that never
                # came): forget it, its evidence and any override with it
                self.engine.forget(entry.subject.key)
                del self.files[entry.subject.key]
        self.engine.store.prune(now)
        pending = sum(1 for e in self.files.values() if not e.decisions)
        budgets = {
            f'inspected_{name}': f'{b.inspections}/{b.subjects}'
            for kind, name in KIND_NAMES.items()
            for b in [self.engine.policy.budget(kind, now)]
        }
        level = Diagnostics.WARN if self.model_problem else Diagnostics.OK
        self.diagnostics.update(
            'risk_fusion', 'fusion', level,
            self.model_problem or f'{len(self.files)} subjects, {pending} pending, '
            f'{self.decisions_published} decisions',
            {'subjects': len(self.files), 'pending': pending,
             'decisions': self.decisions_published, 'learned_results': self.learned,
             **{f'rejected_{k}': v for k, v in self.rejected.items()}, **budgets,
             'model_version': self.engine.version,
             **{f'model_{k}': v for k, v in self.engine.components().items()}})

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    # -- output ------------------------------------------------------------------------------

    def _decide(self, entry: SubjectFile):
        d = self.engine.decide(entry.subject, self._now(), entry.id_valid)
        a = d.assessment
        msg = RiskDecision(
            decision_id=uuid_to_msg(uuid.uuid4()),
            subject=subject_to_msg(entry.subject, entry.id_valid),
            channel=d.channel, recommended_action=d.action, selection=d.policy.selection,
            prior_risk=a.prior, posterior_risk=a.posterior, posterior_log_odds=a.log_odds,
            model_version=d.model_version, explanation=d.explanation)
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.contributions = [
            EvidenceContribution(
                evidence_id=uuid_to_msg(uuid.UUID(c.item.evidence_id)),
                kind=c.item.kind, sensor_id=c.item.sensor_id,
                log_likelihood_ratio=c.item.log_likelihood_ratio, weight=c.weight,
                contribution=c.contribution, explanation=c.item.explanation)
            for c in a.contributions
        ]
        self.decision_pub.publish(msg)
        entry.decisions += 1
        entry.last_change = self._now()
        self.decisions_published += 1
        self.get_logger().info(f'{entry.subject.key}: {d.explanation}')


def main(args=None):
    """Run the fusion node."""
    return run_node(RiskFusion, args)


if __name__ == '__main__':
    raise SystemExit(main())
