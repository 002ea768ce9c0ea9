"""Clearance bridge: a lifecycle node between the site's topics and the clearance database.

In: /decisions and /clearance/declarations (topics), /clearance/record_inspection (service,
officers' terminals). Out: /clearance/inspection_results once stored, /clearance/get_declaration
(service, for fusion), /diagnostics.

Nothing is lost: every record is first committed to a local durable outbox (clearance/outbox.py),
and a writer thread (clearance/delivery.py) moves it to the database in order, in batches, with
idempotent writes keyed by record id, retrying with back-off while the database is away. The
callbacks hand records to the outbox's group committer (outbox.GroupCommitter, a thread): it
commits everything that waits in one transaction (one fsync at synchronous=FULL), in arrival
order, then wakes the writer; a record arriving alone is committed alone at once (no timer).
A record counts as accepted once its group is committed: /clearance/record_inspection answers
`accepted` only then. A crash at any point (even SIGKILL) leaves undelivered records in the
outbox; the restarted bridge drains it first. What a SIGKILL or power cut can catch received but
not yet committed is the group in its commit and what queued behind it: while the committer keeps
up, the messages of one commit (a few ms); like messages published while the bridge was down,
they come again from the publishers' transient-local history (keep last 1000) and are stored
once. A failed outbox commit is logged at once and reported as an ERROR on /diagnostics; the next
message's callback raises it (which ends the bridge, as a failed commit in the callback always
did), and record_inspection answers `accepted: false`. A clean stop (deactivate, shutdown,
Ctrl-C) commits everything received before the outbox closes. Records the database refuses for
their content are kept aside in the outbox's `rejected` table and reported as an ERROR on
/diagnostics.

The bridge keeps wall time (rows carry the site-clock stamps of their messages and a wall-clock
`stored_at`), so it does not follow /clock: waking a lifecycle node's executor for every /clock
tick cost half a core at rate 20 (benchmarks/bench_site.py).

Lifecycle: configure (open the outbox, check the URL), activate (start the committer and the
writer, subscribe, serve; the schema is migrated at the first contact with the database),
deactivate (stop taking messages, commit everything received to the outbox, deliver what waits
for up to drain_timeout s), cleanup (close).
"""

import threading
import uuid

from rclpy.lifecycle import LifecycleNode, TransitionCallbackReturn
from rclpy.service import Service
import sqlalchemy.exc

from customs_interfaces.msg import Declaration, DeclaredItem, InspectionResult, RiskDecision
from customs_interfaces.srv import GetDeclaration, RecordInspection
from customs_lab.clearance.database import ClearanceDatabase, sqlite_url
from customs_lab.clearance.delivery import Delivery
from customs_lab.clearance.outbox import GroupCommitter, Outbox, OutboxError
from customs_lab.clearance.records import (
    DecisionRecord,
    DeclarationRecord,
    InspectionRecord,
    record_from_payload,
)
from customs_lab.common.data_dir import data_dir
from customs_lab.common.node_support import (
    DECISIONS_QOS,
    DECISIONS_TOPIC,
    DECLARATIONS_TOPIC,
    INSPECTION_RESULTS_QOS,
    INSPECTION_RESULTS_TOPIC,
    LATCHED_ALL,
    Diagnostics,
    declare,
    msg_to_subject,
    msg_to_uuid,
    run_node,
    seconds_to_time_msg,
    subject_to_msg,
    time_msg_to_seconds,
    uuid_to_msg,
)
from customs_lab.common.subjects import Subject, SubjectKind
from customs_lab.fusion.logodds import CHANNELS

NIL_UUID = uuid.UUID(int=0)


def _kind_name(kind: int) -> str:
    try:
        return SubjectKind(kind).name.lower()
    except ValueError:
        return 'unknown'


def decision_record(msg: RiskDecision) -> DecisionRecord:
    """Convert a RiskDecision message to a database record."""
    return DecisionRecord(
        decision_id=str(msg_to_uuid(msg.decision_id)),
        subject_kind=_kind_name(msg.subject.kind),
        subject_id=msg.subject.id,
        zone=msg.subject.zone,
        id_valid=bool(msg.subject.id_valid),
        channel=CHANNELS[msg.channel],
        recommended_action=msg.recommended_action,
        prior_risk=msg.prior_risk,
        posterior_risk=msg.posterior_risk,
        posterior_log_odds=msg.posterior_log_odds,
        model_version=msg.model_version,
        decided_at=time_msg_to_seconds(msg.header.stamp),
        explanation=msg.explanation,
        contributions=tuple(
            {
                'evidence_id': str(msg_to_uuid(c.evidence_id)),
                'kind': c.kind,
                'sensor_id': c.sensor_id,
                'log_likelihood_ratio': c.log_likelihood_ratio,
                'weight': c.weight,
                'contribution': c.contribution,
                'explanation': c.explanation,
            }
            for c in msg.contributions
        ),
        selection=msg.selection,
    )


def declaration_record(msg: Declaration) -> DeclarationRecord:
    """Convert a Declaration message to a database record."""
    return DeclarationRecord(
        declaration_id=msg.declaration_id,
        subject_kind=_kind_name(msg.subject.kind),
        subject_id=msg.subject.id,
        zone=msg.subject.zone,
        declarant_id=msg.declarant_id,
        consignee_id=msg.consignee_id,
        origin_country=msg.origin_country,
        gross_mass=msg.gross_mass,
        expected_arrival=time_msg_to_seconds(msg.expected_arrival),
        filed_at=time_msg_to_seconds(msg.header.stamp),
        items=tuple(
            {
                'hs_code': i.hs_code,
                'description': i.description,
                'quantity': i.quantity,
                'net_mass': i.net_mass,
                'value': i.value,
                'currency': i.currency,
            }
            for i in msg.items
        ),
    )


def inspection_record(msg: InspectionResult, result_id: uuid.UUID) -> InspectionRecord:
    """Convert an InspectionResult message to a database record (checked)."""
    decision_id = msg_to_uuid(msg.decision_id)
    record = InspectionRecord(
        result_id=str(result_id),
        subject_kind=_kind_name(msg.subject.kind),
        subject_id=msg.subject.id,
        zone=msg.subject.zone,
        declaration_id=msg.declaration_id,
        decision_id='' if decision_id == NIL_UUID else str(decision_id),
        officer_id=msg.officer_id,
        action=msg.action,
        outcome=msg.outcome,
        categories=tuple(msg.categories),
        findings=msg.findings,
        inspected_at=time_msg_to_seconds(msg.header.stamp),
        selection=msg.selection,
    )
    record.check()
    return record


def inspection_msg(record: InspectionRecord) -> InspectionResult:
    """Convert a stored inspection record back to a message."""
    msg = InspectionResult(
        result_id=uuid_to_msg(uuid.UUID(record.result_id)),
        subject=subject_to_msg(
            Subject(SubjectKind[record.subject_kind.upper()], record.subject_id, record.zone)
        ),
        declaration_id=record.declaration_id,
        decision_id=uuid_to_msg(uuid.UUID(record.decision_id) if record.decision_id else NIL_UUID),
        officer_id=record.officer_id,
        action=record.action,
        outcome=record.outcome,
        categories=list(record.categories),
        findings=record.findings,
        selection=record.selection,
    )
    msg.header.stamp = seconds_to_time_msg(record.inspected_at)
    return msg


def declaration_msg(record: DeclarationRecord, id_valid: bool = True) -> Declaration:
    """Convert a stored declaration record back to a message."""
    msg = Declaration(
        declaration_id=record.declaration_id,
        subject=subject_to_msg(
            Subject(SubjectKind[record.subject_kind.upper()], record.subject_id, record.zone),
            id_valid,
        ),
        declarant_id=record.declarant_id,
        consignee_id=record.consignee_id,
        origin_country=record.origin_country,
        gross_mass=record.gross_mass,
        items=[
            DeclaredItem(
                hs_code=i['hs_code'],
                description=i['description'],
                quantity=int(i['quantity']),
                net_mass=float(i['net_mass']),
                value=float(i['value']),
                currency=i['currency'],
            )
            for i in record.items
        ],
        expected_arrival=seconds_to_time_msg(record.expected_arrival),
    )
    msg.header.stamp = seconds_to_time_msg(record.filed_at)
    return msg


class ClearanceBridge(LifecycleNode):
    """Deliver decisions, declarations and inspection results to the clearance database."""

    def __init__(self, **kwargs):
        super().__init__('clearance_bridge', **kwargs)
        declare(
            self,
            'database_url',
            '',
            'SQLAlchemy URL (postgresql+psycopg://...); empty: SQLite <data_dir>/clearance.db',
        )
        declare(self, 'data_dir', '', 'Data directory (empty: $CUSTOMS_LAB_DATA_DIR or XDG)')
        declare(
            self, 'outbox_path', '', 'Durable outbox file (empty: <data_dir>/clearance_outbox.db)'
        )
        declare(
            self,
            'outbox_synchronous',
            'FULL',
            'FULL: an accepted record survives power loss; NORMAL: a process crash only (faster)',
        )
        declare(
            self,
            'outbox_max_group',
            500,
            'Most records per outbox commit (group commit; smaller groups when the load is low)',
            minimum=1,
            maximum=10_000,
        )
        declare(
            self, 'batch_size', 500, 'Records per database transaction', minimum=1, maximum=100_000
        )
        declare(
            self,
            'max_retry_delay',
            30.0,
            'Longest wait between attempts while the database is away, s',
            minimum=0.1,
            maximum=3600.0,
        )
        declare(
            self,
            'drain_timeout',
            10.0,
            'Wall s to deliver what waits when stopping',
            minimum=0.0,
            maximum=600.0,
        )
        declare(self, 'autostart', True, 'Configure and activate at start-up')
        self.outbox = None
        self.database = None
        self.delivery = None
        self.committer = None  # outbox GroupCommitter while active
        self.diagnostics = Diagnostics(self)
        self._worker = None
        self._stop = threading.Event()
        self._endpoints = []
        self.refused = 0  # service requests refused (bad input)
        self.results_pub = None
        self.create_timer(1.0, self._report)

    # ---- lifecycle ----------------------------------------------------------------------------

    def on_configure(self, state) -> TransitionCallbackReturn:
        """Open the outbox and check the database URL (the database itself may still be down)."""
        directory = data_dir(self.get_parameter('data_dir').value)
        url = self.get_parameter('database_url').value or sqlite_url(directory / 'clearance.db')
        outbox_path = self.get_parameter('outbox_path').value or directory / 'clearance_outbox.db'
        try:
            self.database = ClearanceDatabase(url, actor=self.get_fully_qualified_name())
            self.outbox = Outbox(outbox_path, self.get_parameter('outbox_synchronous').value)
            self.delivery = Delivery(
                self.outbox,
                self.database,
                batch_size=self.get_parameter('batch_size').value,
                max_retry_delay=self.get_parameter('max_retry_delay').value,
                on_stored=self._on_stored,
                log=self._log,
            )
        except (ValueError, OSError, sqlalchemy.exc.SQLAlchemyError) as error:
            self.get_logger().error(f'cannot configure: {error}')
            return TransitionCallbackReturn.FAILURE
        waiting = len(self.outbox)
        self.get_logger().info(
            f'clearance database {self.database.engine.url!r}; outbox {outbox_path}'
            + (f' with {waiting} records from before a restart' if waiting else '')
        )
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state) -> TransitionCallbackReturn:
        """Start the committer and the writer, subscribe and serve."""
        self.committer = GroupCommitter(
            self.outbox,
            max_group=self.get_parameter('outbox_max_group').value,
            on_committed=lambda _last: self.delivery.wake.set(),
            log=self._log,
            name='clearance_outbox',
        )
        self._stop.clear()
        self._worker = threading.Thread(
            target=self.delivery.run, args=(self._stop,), name='clearance_writer', daemon=True
        )
        self._worker.start()
        self.results_pub = self.create_publisher(
            InspectionResult, INSPECTION_RESULTS_TOPIC, INSPECTION_RESULTS_QOS
        )
        self._endpoints = [
            self.create_subscription(
                RiskDecision,
                DECISIONS_TOPIC,
                lambda m: self._accept(m, decision_record),
                DECISIONS_QOS,
            ),
            self.create_subscription(
                Declaration,
                DECLARATIONS_TOPIC,
                lambda m: self._accept(m, declaration_record),
                LATCHED_ALL,
            ),
            self.create_service(
                GetDeclaration, '/clearance/get_declaration', self._get_declaration
            ),
            self.create_service(
                RecordInspection, '/clearance/record_inspection', self._record_inspection
            ),
        ]
        return super().on_activate(state)

    def on_deactivate(self, state) -> TransitionCallbackReturn:
        """Stop taking messages, commit what was received, deliver what waits."""
        self._close_endpoints()
        self._stop_worker()
        return super().on_deactivate(state)

    def on_cleanup(self, state) -> TransitionCallbackReturn:
        """Close the outbox and the database connections."""
        self._close()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state) -> TransitionCallbackReturn:
        """Deliver what waits, then close."""
        self._close_endpoints()
        self._stop_worker()
        self._close()
        return TransitionCallbackReturn.SUCCESS

    def destroy_node(self):
        """Deliver what waits before the process ends (Ctrl-C, launch shutdown)."""
        self._stop_worker()
        self._close()
        super().destroy_node()

    def _close_endpoints(self):
        for endpoint in self._endpoints:
            if isinstance(endpoint, Service):
                self.destroy_service(endpoint)
            else:
                self.destroy_subscription(endpoint)
        self._endpoints = []

    def _stop_committer(self):
        """Commit every record received to the outbox, then stop the committer (before close)."""
        if self.committer is None:
            return
        committer, self.committer = self.committer, None
        try:
            committer.close()
        except OutboxError as error:
            self.get_logger().error(f'records received were not kept in the outbox: {error}')

    def _stop_worker(self):
        self._stop_committer()  # first: what it commits is delivered below
        if self._worker is None:
            return
        self._stop.set()
        self.delivery.wake.set()
        self._worker.join(timeout=10.0)
        self._worker = None
        left = self.delivery.drain(self.get_parameter('drain_timeout').value)
        if left:
            self.get_logger().warn(
                f'{left} records wait in the outbox {self.outbox.path} (database: '
                f'{self.delivery.stats.last_error or "slow"}); delivered at the next start'
            )

    def _close(self):
        self._stop_committer()
        if self.outbox is not None:
            self.outbox.close()
            self.outbox = None
        if self.database is not None:
            self.database.dispose()
            self.database = None

    # ---- records in ---------------------------------------------------------------------------

    def _accept(self, msg, convert):
        """Convert a message and hand its record to the outbox committer; return the record.

        Returns before the commit (the committer commits it with the records arriving at the same
        time, then wakes the writer). Raises OutboxError if the outbox cannot be written.
        """
        try:
            record = convert(msg)
            record.check()
        except (ValueError, KeyError) as error:
            self.refused += 1
            self.get_logger().error(f'{type(msg).__name__} refused: {error}')
            return None
        self._keep(record)
        return record

    def _keep(self, record, durable: bool = False):
        """Hand a record to the outbox committer; if `durable`, return once it is committed."""
        ticket = self.committer.submit(
            record.KIND, record.key, record.subject_key, record.to_payload()
        )
        if durable:
            self.committer.wait(ticket)

    def _flush(self):
        """Wait until every record received is committed (a failure is reported elsewhere)."""
        try:
            if self.committer is not None:
                self.committer.flush()
        except OutboxError:
            pass  # logged when it happened, on /diagnostics; the outbox still has what it had

    def _record_inspection(self, request, response):
        result_id = msg_to_uuid(request.result.result_id)
        if result_id == NIL_UUID:
            result_id = uuid.uuid4()
        response.result_id = uuid_to_msg(result_id)
        try:
            record = inspection_record(request.result, result_id)
        except ValueError as error:
            self.refused += 1
            response.accepted, response.message = False, str(error)
            self.get_logger().warn(f'inspection result refused: {error}')
            return response
        try:
            self._keep(record, durable=True)  # the answer promises a committed record
        except OutboxError as error:
            response.accepted, response.message = False, f'not kept: {error}'
            self.get_logger().error(f'inspection result not kept: {error}')
            return response
        response.accepted, response.message = True, 'kept; stored in the clearance database soon'
        return response

    def _get_declaration(self, request, response):
        subject = msg_to_subject(request.subject)
        record, source = None, ''
        try:
            record, source = self.database.declaration_for(subject.key), 'database'
        except sqlalchemy.exc.SQLAlchemyError as error:
            response.message = f'database unavailable ({type(error).__name__}); '
        if record is None:
            self._flush()  # a declaration received a moment ago is in the outbox, not in a queue
            payload = self.outbox.find(DeclarationRecord.KIND, subject.key)
            if payload is not None:
                record, source = record_from_payload(DeclarationRecord.KIND, payload), 'outbox'
        if record is None:
            response.found = False
            response.message += f'no declaration for {subject.key}'
        else:
            response.found, response.message = True, source
            response.declaration = declaration_msg(record, request.subject.id_valid)
        return response

    # ---- records out --------------------------------------------------------------------------

    def _on_stored(self, record, newly_stored: bool):
        """After the database commit (writer thread): publish new inspection results."""
        if newly_stored and isinstance(record, InspectionRecord) and self.results_pub is not None:
            self.results_pub.publish(inspection_msg(record))

    def _log(self, level, text):
        (self.get_logger().error if level == 'error' else self.get_logger().info)(text)

    def _report(self):
        if self.delivery is None:
            self.diagnostics.update(
                'clearance_bridge', 'clearance_db', Diagnostics.ERROR, 'not configured'
            )
            return
        stats = self.delivery.stats
        waiting = len(self.outbox) if self.outbox is not None else 0
        committer = self.committer
        commit_error = committer.error if committer is not None else None
        if commit_error is not None:
            level, message = (
                Diagnostics.ERROR,
                f'outbox commit failed, records received are not kept: {commit_error}',
            )
        elif stats.last_error:
            level, message = (
                Diagnostics.ERROR,
                (
                    f'database unavailable, {waiting} records in the outbox: {stats.last_error}'
                ),
            )
        elif stats.rejected:
            level, message = (
                Diagnostics.ERROR,
                (
                    f'{stats.rejected} records refused by the database, kept aside in '
                    f'{self.outbox.path if self.outbox else "the outbox"} (table rejected)'
                ),
            )
        else:
            level, message = (
                Diagnostics.OK,
                (f'{stats.stored.get("decision", 0)} decisions stored, {waiting} waiting'),
            )
        values = {
            'decisions_stored': stats.stored.get('decision', 0),
            'declarations_stored': stats.stored.get('declaration', 0),
            'inspections_stored': stats.stored.get('inspection', 0),
            'duplicates': stats.duplicates,
            'rejected': stats.rejected,
            'failed_attempts': stats.failures,
            'refused_messages': self.refused,
            'outbox': waiting,
            'outbox_commits': committer.stats.groups if committer is not None else 0,
            'outbox_largest_group': committer.stats.largest if committer is not None else 0,
            'database': repr(self.database.engine.url) if self.database else '',
        }
        self.diagnostics.update('clearance_bridge', 'clearance_db', level, message, values)


def _autostart(node: ClearanceBridge):
    if node.get_parameter('autostart').value:
        node.trigger_configure()
        node.trigger_activate()


def main(args=None):
    """Run the clearance bridge."""
    return run_node(ClearanceBridge, args, after_create=_autostart)


if __name__ == '__main__':
    raise SystemExit(main())
