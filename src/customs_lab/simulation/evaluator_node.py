"""Evaluator node: the only node that sees ground truth. It scores decisions and writes the report.

Subscribes to /simulation/ground_truth (the truth, from the site simulator), /decisions,
/simulation/status, and the outputs it scores: located sources, isotope identifications and
the officer posts' doses from the radiation portals; the X-ray evidence of every parcel scan
(/evidence, kinds xray.*, summed per scan). Shows progress while the scenario runs; when
the scenario has finished and every subject is decided (or `wait_after_finish` wall seconds
have passed), it checks that the decisions reached the clearance database, checks which nodes
subscribe to the ground truth (only itself may), writes a JSON report, prints a summary table
and exits, which ends the launch (on_exit="shutdown" in launch/site.launch.xml).
"""

import datetime
import json
import math
import time

from rclpy.clock import Clock, ClockType
from rclpy.node import Node

from customs_interfaces.msg import (
    Evidence,
    GroundTruthSubject,
    IsotopeIdentification,
    LocatedSource,
    OfficerDose,
    RiskDecision,
    ScenarioStatus,
)
from customs_lab.clearance.database import ClearanceDatabase, expand_url, sqlite_url
from customs_lab.common.data_dir import data_dir
from customs_lab.common.node_support import (
    DECISIONS_QOS,
    DECISIONS_TOPIC,
    EVIDENCE_TOPIC,
    GROUND_TRUTH_TOPIC,
    IDENTIFICATIONS_TOPIC,
    LATCHED,
    LATCHED_ALL,
    LOCATED_TOPIC,
    OFFICER_DOSE_TOPIC,
    SCENARIO_STATUS_TOPIC,
    Diagnostics,
    declare,
    msg_to_subject,
    msg_to_uuid,
    reliable,
    run_node,
    time_msg_to_seconds,
)
from customs_lab.common.subjects import SubjectKind
from customs_lab.simulation.evaluation import (
    Evaluation,
    TruthRecord,
    identification_summary,
    score_identification,
    score_xray,
    summary_table,
    xray_summary,
)


class Evaluator(Node):
    """Compare decisions with the truth; report."""

    def __init__(self, **kwargs):
        super().__init__('evaluator', **kwargs)
        self.data_dir = data_dir(declare(self, 'data_dir', '', 'Data directory (empty: default)'))
        url = declare(self, 'database_url', '', 'Clearance database URL (empty: SQLite default)')
        self.database_url = expand_url(url) if url else sqlite_url(self.data_dir / 'clearance.db')
        self.wait_after_finish = declare(
            self,
            'wait_after_finish',
            20.0,
            'Wall s to wait for the last decisions after the scenario finished',
            minimum=0.0,
            maximum=600.0,
        )
        self.evaluation = Evaluation()
        self.decisions_received = 0
        self.decision_ids = set()  # this run's decisions, to find in the database
        self.status = None
        self.finished_at = None
        self._last_progress = -1
        self._wall = Clock(clock_type=ClockType.STEADY_TIME)
        self.create_subscription(
            GroundTruthSubject, GROUND_TRUTH_TOPIC, self.on_truth, LATCHED_ALL
        )
        self.create_subscription(RiskDecision, DECISIONS_TOPIC, self.on_decision, DECISIONS_QOS)
        self.create_subscription(ScenarioStatus, SCENARIO_STATUS_TOPIC, self.on_status, LATCHED)
        self.true_sources = {}  # subject key -> [(nuclide, Bq, position in the subject)]
        self.located = []  # the sources the portals located, as reported
        self.create_subscription(LocatedSource, LOCATED_TOPIC, self.on_located, reliable(20))
        self.identifications = []  # (subject key, sensor, nuclides, categories, log LR)
        self.create_subscription(IsotopeIdentification, IDENTIFICATIONS_TOPIC,
                                 self.on_identification, reliable(50))
        self.xray = {}  # (subject key, scan stamp) -> {kind: LLR}, in arrival order
        self.create_subscription(Evidence, EVIDENCE_TOPIC, self.on_evidence, reliable(100))
        self.officer_doses = {}  # post -> its latest OfficerDose
        self.create_subscription(OfficerDose, OFFICER_DOSE_TOPIC,
                                 lambda m: self.officer_doses.__setitem__(m.officer_id, m),
                                 reliable(50))
        self.create_timer(0.5, self.on_timer, clock=self._wall)
        self.diagnostics = Diagnostics(self)

    def on_truth(self, msg: GroundTruthSubject):
        """Record one subject's truth."""
        subject = msg_to_subject(msg.subject)
        self.true_sources[subject.key] = [
            (i.nuclide, i.activity, (i.position.x, i.position.y, i.position.z))
            for i in msg.items if i.nuclide and i.activity > 0]  # sources, SNM
        categories = tuple(sorted({i.category for i in msg.items if i.contraband}))
        description = '; '.join(i.description for i in msg.items if i.contraband) or 'clean'
        self.evaluation.add_truth(
            TruthRecord(
                subject.key,
                SubjectKind(subject.kind).name.lower(),
                msg.contraband,
                categories,
                description,
            )
        )

    def on_decision(self, msg: RiskDecision):
        """Record a decision (the latest one per subject counts)."""
        self.decisions_received += 1
        self.decision_ids.add(str(msg_to_uuid(msg.decision_id)))
        self.evaluation.add_decision(
            msg_to_subject(msg.subject).key,
            msg.channel,
            msg.posterior_risk,
            msg.recommended_action,
            msg.explanation,
        )

    def on_located(self, msg: LocatedSource):
        """Record a located source, to score it against the truth at the end."""
        at = msg.position_in_subject
        std = msg.position_in_subject_std
        self.located.append((msg_to_subject(msg.subject).key, msg.nuclide, msg.activity,
                             (at.x, at.y, at.z), (std.x, std.y, std.z), msg.dose_rate_1m))

    def _score_located(self) -> list:
        """Return each located source beside the true source nearest to it (if any)."""
        out = []
        for key, nuclide, activity, position, std, dose in self.located:
            entry = {'subject': key, 'nuclide': nuclide, 'activity_bq': activity,
                     'position_in_subject': position, 'std': std, 'dose_rate_1m': dose}
            truths = self.true_sources.get(key, [])
            if truths:
                errors = [math.dist(position, t[2]) for t in truths]
                best = truths[errors.index(min(errors))]
                entry.update({'true_nuclide': best[0], 'true_activity_bq': best[1],
                              'true_position': best[2], 'error_m': min(errors)})
            out.append(entry)
        return out

    def on_identification(self, msg: IsotopeIdentification):
        """Record a passage's identification, to score it against the truth at the end."""
        self.identifications.append((msg_to_subject(msg.subject).key, msg.sensor_id,
                                     list(msg.nuclides), list(msg.categories),
                                     msg.log_likelihood_ratio))

    def _score_identifications(self) -> list:
        """Return each identification with the subject's true sources and the outcome."""
        out = []
        for key, sensor, nuclides, categories, llr in self.identifications:
            truth = sorted({t[0] for t in self.true_sources.get(key, [])})
            outcome = (score_identification(nuclides, categories, truth)
                       if key in self.true_sources else 'unattributed')  # unread, misread
            out.append({'subject': key, 'sensor_id': sensor, 'nuclides': nuclides,
                        'categories': categories, 'log_likelihood_ratio': llr,
                        'true_nuclides': truth, 'outcome': outcome})
        return out

    def on_evidence(self, msg: Evidence):
        """Record the X-ray evidence of a parcel scan, to score it against the truth at the end."""
        if not msg.kind.startswith('xray.'):
            return
        key = (msg_to_subject(msg.subject).key if msg.subject.id else '',
               time_msg_to_seconds(msg.header.stamp))
        self.xray.setdefault(key, {})[msg.kind] = msg.log_likelihood_ratio

    def _score_xray(self) -> list:
        """Return each X-ray scan's joint LLR with the parcel's truth and the outcome."""
        out = []
        for (key, stamp), kinds in self.xray.items():
            truth = self.evaluation.truth.get(key)
            llr = sum(kinds.values())
            categories = list(truth.categories) if truth else []
            out.append({'subject': key or '(unread)', 'stamp': stamp,
                        'log_likelihood_ratio': llr, 'by_kind': kinds,
                        'true_categories': categories,
                        'description': truth.description if truth else '',
                        'outcome': score_xray(llr, categories, truth is not None)})
        return out

    def _officer_doses(self) -> dict:
        """Return each officer post's last reported exposure."""
        return {post: {'dose_ugy': m.dose, 'peak_dose_rate_ugy_h': m.peak_dose_rate,
                       'dose_limit_ugy': m.dose_limit, 'dose_rate_limit_ugy_h': m.dose_rate_limit,
                       'level': ('ok', 'rate limit reached', 'dose limit reached')[m.level],
                       'message': m.message}
                for post, m in sorted(self.officer_doses.items())}

    def on_status(self, msg: ScenarioStatus):
        """Follow the scenario; print progress every 10 %."""
        self.status = msg
        step = int(msg.progress * 10)
        if step != self._last_progress:
            self._last_progress = step
            print(
                f'[progress] {100 * msg.progress:5.1f}%  sim time '
                f'{msg.progress * msg.duration:7.1f} s  subjects {msg.subjects_spawned}/'
                f'{msg.subjects_total}  decisions {len(self.evaluation.decisions)}',
                flush=True,
            )
        if msg.finished and self.finished_at is None:
            self.finished_at = self._wall.now()

    def on_timer(self):
        """Report health; finish once everything is decided, or the wait is over."""
        undecided = len(self.evaluation.undecided)
        self.diagnostics.update(
            'evaluator',
            'simulation',
            Diagnostics.OK,
            f'{len(self.evaluation.truth)} subjects, {undecided} undecided, '
            f'{self.decisions_received} decisions',
            {'subjects': len(self.evaluation.truth), 'undecided': undecided},
        )
        if self.finished_at is None:
            return
        waited = (self._wall.now() - self.finished_at).nanoseconds * 1e-9
        all_seen = (
            self.status is not None and len(self.evaluation.truth) >= self.status.subjects_total
        )
        if (all_seen and not self.evaluation.undecided) or waited >= self.wait_after_finish:
            self.finish()

    def _check_database(self) -> tuple[int, dict]:
        """Return (stored decisions, audit summary) once the bridge has caught up.

        Waits up to 10 s for the bridge to store what was decided, then verifies the audit chain
        as `customs-lab db verify-audit` does.
        """
        database = ClearanceDatabase(self.database_url)
        try:
            deadline = time.monotonic() + 10.0
            while True:  # this run's decisions (the database may hold earlier runs')
                stored = database.count_decisions(self.decision_ids)
                if stored >= len(self.decision_ids) or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            result = database.verify_audit()
            return stored, {'entries': result.entries, 'intact': result.ok,
                            'problems': result.problems[:10]}
        except Exception as error:  # noqa: B902 - any database error ends up in the report
            self.get_logger().error(f'cannot read the clearance database: {error}')
            return -1, {'entries': 0, 'intact': False, 'problems': [f'cannot read: {error}']}
        finally:
            database.dispose()

    def finish(self):
        """Write the report, print the summary and end the process (and so the launch)."""
        report = self.evaluation.report()
        truth_readers = sorted(
            f'{i.node_namespace.rstrip("/")}/{i.node_name}'
            for i in self.get_subscriptions_info_by_topic(GROUND_TRUTH_TOPIC)
        )
        me = f'{self.get_namespace().rstrip("/")}/{self.get_name()}'
        stored, audit = self._check_database()
        report.update(
            {
                'scenario': self.status.scenario if self.status else '',
                'seed': self.status.seed if self.status else 0,
                'generated_at': datetime.datetime.now(datetime.timezone.utc).isoformat(),
                'decisions_received': self.decisions_received,
                'decisions_in_database': stored,
                'audit_log': audit,
                'database': self.database_url,
                'ground_truth_subscribers': truth_readers,
                'located_sources': self._score_located(),
                'identifications': self._score_identifications(),
                'xray_scans': self._score_xray(),
                'officer_doses': self._officer_doses(),
                'ground_truth_isolated': truth_readers == [me],
            }
        )
        reports = self.data_dir / 'reports'
        reports.mkdir(parents=True, exist_ok=True)
        stamp = datetime.datetime.now().strftime('%Y%m%d-%H%M%S')
        path = reports / f'{report["scenario"] or "site"}-{stamp}.json'
        path.write_text(json.dumps(report, indent=2))
        latest = reports / 'latest.json'
        latest.unlink(missing_ok=True)
        latest.symlink_to(path.name)
        print('\n' + summary_table(report), flush=True)
        print(
            f'decisions: {report["decisions_received"]} received, '
            f'{report["decisions_in_database"]} in the database; audit log '
            f'{"intact" if report["audit_log"]["intact"] else "NOT INTACT"} '
            f'({report["audit_log"]["entries"]} entries); ground truth read only by '
            f'the evaluator: {report["ground_truth_isolated"]}',
            flush=True,
        )
        errors = sorted(s['error_m'] for s in report['located_sources'] if 'error_m' in s)
        if report['located_sources']:
            print(f'located sources: {len(report["located_sources"])}, {len(errors)} in a '
                  f'subject that carried one; position error median '
                  f'{errors[len(errors) // 2] if errors else math.nan:.2f} m, '
                  f'max {max(errors) if errors else math.nan:.2f} m', flush=True)
        if report['identifications']:
            print(identification_summary(report['identifications']), flush=True)
        if report['xray_scans']:
            print(xray_summary(report['xray_scans']), flush=True)
        if report['officer_doses']:
            print('officer doses this shift: ' + '; '.join(
                f'{post} {d["dose_ugy"]:.3g} uGy (peak {d["peak_dose_rate_ugy_h"]:.3g} uGy/h, '
                f'{d["level"]})' for post, d in report['officer_doses'].items()), flush=True)
        print(f'report:   {path}\ndatabase: {self.database_url}', flush=True)
        raise SystemExit(0)


def main(args=None):
    """Run the evaluator."""
    return run_node(Evaluator, args)


if __name__ == '__main__':
    raise SystemExit(main())
