"""Clearance bridge: a lifecycle node writing decisions and declarations to the clearance database.

Subscribes to /decisions and /clearance/declarations; a worker thread behind a bounded queue
writes them (the executor never waits on SQL). Writes are idempotent by decision id and
declaration id, so redelivered messages (transient local, restarts) are stored once. While the
database is unreachable the worker keeps the item and retries with exponential back-off; the
queue holds what arrives meanwhile, and /diagnostics says so; should it fill up, the subscription
callback waits for room (back-pressure on the reliable readers) instead of dropping anything.
(A durable on-disk outbox that also survives a crash of this process comes with the risk-fusion
issue.) The bridge keeps wall time (rows carry the site-clock stamps of their messages and a
wall-clock `stored_at`), so it does not follow /clock: waking a lifecycle node's executor for
every /clock tick cost half a core at rate 20 (benchmarks/bench_site.py).

Lifecycle: configure (connect, create the schema), activate (subscribe, start the worker),
deactivate (stop taking messages, drain the queue), cleanup (disconnect).
"""

import queue
import threading
import time

from rclpy.lifecycle import LifecycleNode, TransitionCallbackReturn
import sqlalchemy.exc

from customs_interfaces.msg import Declaration, RiskDecision
from customs_lab.clearance.database import (
    ClearanceDatabase,
    DecisionRecord,
    DeclarationRecord,
    sqlite_url,
)
from customs_lab.common.data_dir import data_dir
from customs_lab.common.node_support import (
    DECISIONS_QOS,
    DECISIONS_TOPIC,
    DECLARATIONS_TOPIC,
    LATCHED_ALL,
    Diagnostics,
    declare,
    msg_to_uuid,
    run_node,
    time_msg_to_seconds,
)
from customs_lab.common.subjects import SubjectKind
from customs_lab.fusion.logodds import CHANNELS


def decision_record(msg: RiskDecision) -> DecisionRecord:
    """Convert a RiskDecision message to a database record."""
    return DecisionRecord(
        decision_id=str(msg_to_uuid(msg.decision_id)),
        subject_kind=SubjectKind(msg.subject.kind).name.lower(),
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
    )


def declaration_record(msg: Declaration) -> DeclarationRecord:
    """Convert a Declaration message to a database record."""
    return DeclarationRecord(
        declaration_id=msg.declaration_id,
        subject_kind=SubjectKind(msg.subject.kind).name.lower(),
        subject_id=msg.subject.id,
        zone=msg.subject.zone,
        declarant_id=msg.declarant_id,
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


class ClearanceBridge(LifecycleNode):
    """Deliver decisions and declarations to the clearance database."""

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
            self,
            'queue_size',
            10000,
            'Messages held while the database is slow or away',
            minimum=10,
            maximum=1_000_000,
        )
        declare(
            self,
            'max_retry_delay',
            30.0,
            'Longest wait between reconnection attempts, s',
            minimum=0.1,
            maximum=3600.0,
        )
        declare(
            self,
            'drain_timeout',
            10.0,
            'Wall s to finish queued writes when stopping',
            minimum=0.0,
            maximum=600.0,
        )
        declare(self, 'autostart', True, 'Configure and activate at start-up')
        self.database = None
        self.diagnostics = Diagnostics(self)
        self._queue = None
        self._worker = None
        self._stop = threading.Event()
        self._subscriptions = []
        self.stats = {
            'decisions_stored': 0,
            'decisions_duplicate': 0,
            'declarations_stored': 0,
            'declarations_duplicate': 0,
            'write_errors': 0,
        }
        self.last_error = ''
        self.create_timer(1.0, self._report)

    def on_configure(self, state) -> TransitionCallbackReturn:
        """Connect and create the schema."""
        url = self.get_parameter('database_url').value or sqlite_url(
            data_dir(self.get_parameter('data_dir').value) / 'clearance.db'
        )
        try:
            self.database = ClearanceDatabase(url)
            self.database.create_schema()
        except (sqlalchemy.exc.SQLAlchemyError, ValueError) as error:
            self.get_logger().error(f'cannot open the clearance database {url}: {error}')
            self.last_error = str(error)
            return TransitionCallbackReturn.FAILURE
        self.get_logger().info(f'clearance database: {self.database.engine.url!r}')
        self._queue = queue.Queue(maxsize=self.get_parameter('queue_size').value)
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state) -> TransitionCallbackReturn:
        """Subscribe and start the writer."""
        self._stop.clear()
        self._worker = threading.Thread(
            target=self._write_loop, name='clearance_writer', daemon=True
        )
        self._worker.start()
        self._subscriptions = [
            self.create_subscription(
                RiskDecision,
                DECISIONS_TOPIC,
                lambda m: self._enqueue('decision', m),
                DECISIONS_QOS,
            ),
            self.create_subscription(
                Declaration,
                DECLARATIONS_TOPIC,
                lambda m: self._enqueue('declaration', m),
                LATCHED_ALL,
            ),
        ]
        return super().on_activate(state)

    def on_deactivate(self, state) -> TransitionCallbackReturn:
        """Stop taking messages and write what is queued."""
        for subscription in self._subscriptions:
            self.destroy_subscription(subscription)
        self._subscriptions = []
        self._stop_worker(drain=True)
        return super().on_deactivate(state)

    def on_cleanup(self, state) -> TransitionCallbackReturn:
        """Disconnect."""
        if self.database is not None:
            self.database.dispose()
            self.database = None
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state) -> TransitionCallbackReturn:
        """Write what is queued, then disconnect."""
        self._stop_worker(drain=True)
        return self.on_cleanup(state)

    def destroy_node(self):
        """Write what is queued before the process ends (Ctrl-C, launch shutdown)."""
        self._stop_worker(drain=True)
        super().destroy_node()

    def _enqueue(self, kind, msg):
        # When the queue is full, wait (back-pressure on the reliable reader) rather than drop.
        try:
            self._queue.put_nowait((kind, msg))
        except queue.Full:
            self.get_logger().error(
                f'write queue full ({self._queue.maxsize}): waiting for the database '
                f'({self.last_error or "slow writes"})'
            )
            self._queue.put((kind, msg))

    def _stop_worker(self, drain: bool):
        if self._worker is None:
            return
        if drain:  # give the writer up to drain_timeout to empty the queue
            deadline = time.monotonic() + self.get_parameter('drain_timeout').value
            while self._queue.unfinished_tasks and time.monotonic() < deadline:
                time.sleep(0.05)
            if self._queue.unfinished_tasks:
                self.get_logger().error(
                    f'{self._queue.unfinished_tasks} messages not written: '
                    f'the database did not answer ({self.last_error})'
                )
        self._stop.set()
        self._worker.join(timeout=5.0)
        self._worker = None

    def _write_loop(self):
        delay = 0.1
        while not self._stop.is_set():
            try:
                kind, msg = self._queue.get(timeout=0.2)
            except queue.Empty:
                continue
            while not self._stop.is_set():
                try:
                    self._write(kind, msg)
                    delay = 0.1
                    break
                except sqlalchemy.exc.SQLAlchemyError as error:
                    self.stats['write_errors'] += 1
                    self.last_error = f'{type(error).__name__}: {error}'.splitlines()[0]
                    self.get_logger().error(
                        f'database write failed, retrying in {delay:.1f} s: {self.last_error}'
                    )
                    time.sleep(delay)
                    delay = min(delay * 2.0, self.get_parameter('max_retry_delay').value)
            self._queue.task_done()

    def _write(self, kind, msg):
        if kind == 'decision':
            stored = self.database.store_decision(decision_record(msg))
            self.stats['decisions_stored' if stored else 'decisions_duplicate'] += 1
        else:
            stored = self.database.store_declaration(declaration_record(msg))
            self.stats['declarations_stored' if stored else 'declarations_duplicate'] += 1

    def _report(self):
        depth = self._queue.qsize() if self._queue is not None else 0
        if self.database is None:
            level, message = Diagnostics.ERROR, f'no database: {self.last_error}'
        elif self.last_error and self.stats['write_errors'] and depth:
            level, message = (
                Diagnostics.ERROR,
                f'database unavailable, {depth} queued: {self.last_error}',
            )
        elif depth > 0.8 * self._queue.maxsize:
            level, message = Diagnostics.WARN, f'queue {depth}/{self._queue.maxsize}'
        else:
            level, message = Diagnostics.OK, f'{self.stats["decisions_stored"]} decisions stored'
        values = dict(
            self.stats,
            queue=depth,
            database=repr(self.database.engine.url) if self.database else '',
        )
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
