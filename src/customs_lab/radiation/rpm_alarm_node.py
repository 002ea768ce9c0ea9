"""Radiation portal alarm: gross-count test per passage, published as calibrated Evidence.

Subscribes to the driver's `counts` (every frame matters, so reliable). Frames of an empty lane
teach the background; the frames of each passage go through the gross-count test of
`customs_lab.radiation.alarm` (sliding windows, threshold set by the per-passage false-alarm
probability) and its Bayes factor becomes the Evidence's log-likelihood ratio, published on
/evidence with kind radiation.gamma. Parameters can be changed at run time; bad values are
refused by the on-set callback.
"""

import uuid

from rcl_interfaces.msg import SetParametersResult
from rclpy.node import Node

from customs_interfaces.msg import Evidence, RadiationCounts
from customs_lab.common.node_support import (
    EVIDENCE_TOPIC,
    Diagnostics,
    declare,
    reliable,
    run_node,
    time_msg_to_seconds,
    uuid_to_msg,
)
from customs_lab.radiation import alarm
from customs_lab.radiation.passage import PassageTracker


def explain(result, background_ready: bool) -> str:
    """Return the officer's one-line explanation of an alarm result."""
    if not background_ready:
        return 'background not yet learned: no radiation evidence for this passage'
    verdict = 'ALARM' if result.alarm else 'no alarm'
    ratio = (
        result.max_window_counts / result.expected_window_counts
        if result.expected_window_counts > 0
        else float('inf')
    )
    return (
        f'{verdict}: gross gamma {ratio:.2f}x background in the strongest '
        f'{result.n_windows}-window passage ({result.max_window_counts} counts vs '
        f'{result.expected_window_counts:.0f} expected, {result.significance:.1f} sigma; '
        f'threshold {result.threshold} at false-alarm probability '
        f'{result.false_alarm_probability:g} per passage)'
    )


class RpmAlarm(Node):
    """Per-passage alarm and evidence for one portal."""

    def __init__(self, **kwargs):
        super().__init__('rpm_alarm', **kwargs)
        declare(
            self,
            'window',
            1.0,
            'Sliding window summed by the gross-count test, s',
            minimum=0.05,
            maximum=60.0,
        )
        declare(
            self,
            'false_alarm_probability',
            1e-3,
            'Stated false-alarm probability per passage',
            minimum=1e-9,
            maximum=0.5,
        )
        declare(
            self,
            'excess_prior_min',
            50.0,
            'Weakest source excess H1 considers, cps',
            minimum=1e-3,
            maximum=1e9,
        )
        declare(
            self,
            'excess_prior_max',
            2e5,
            'Strongest source excess H1 considers, cps',
            minimum=1e-3,
            maximum=1e12,
        )
        declare(
            self,
            'background_time_constant',
            60.0,
            'Memory of the background estimator, s',
            minimum=1.0,
            maximum=86400.0,
        )
        declare(
            self,
            'background_min_live_time',
            10.0,
            'Empty-lane live time before alarms are trusted, s',
            minimum=0.0,
            maximum=3600.0,
        )
        declare(
            self,
            'background_holdoff',
            5.0,
            'Time after a passage before the empty lane teaches the background again, s',
            minimum=0.0,
            maximum=600.0,
        )
        declare(
            self,
            'background_gate_sigma',
            5.0,
            'Empty-lane frames above background by more than this many sigma are not learned',
            minimum=1.0,
            maximum=1000.0,
        )
        self.add_on_set_parameters_callback(self._validate)
        self.add_post_set_parameters_callback(self._apply)
        self.tracker = None
        self._elevated_reported = 0
        self.sensor_id = ''
        self.stats = {'passages': 0, 'alarms': 0, 'frames': 0}
        self._apply([])
        self.evidence_pub = self.create_publisher(Evidence, EVIDENCE_TOPIC, reliable(100))
        self.create_subscription(RadiationCounts, 'counts', self.on_counts, reliable(100))
        self.diagnostics = Diagnostics(self)
        self.create_timer(1.0, self._report)

    def _value(self, name, changes):
        for parameter in changes:
            if parameter.name == name:
                return parameter.value
        return self.get_parameter(name).value

    def _validate(self, changes) -> SetParametersResult:
        low = self._value('excess_prior_min', changes)
        high = self._value('excess_prior_max', changes)
        if not low < high:
            return SetParametersResult(
                successful=False, reason='excess_prior_min must be below excess_prior_max'
            )
        return SetParametersResult(successful=True)

    def _apply(self, changes):
        get = self.get_parameter
        self.config = alarm.AlarmConfig(
            window=get('window').value,
            false_alarm_probability=get('false_alarm_probability').value,
            excess_prior_min=get('excess_prior_min').value,
            excess_prior_max=get('excess_prior_max').value,
        )
        if self.tracker is None or any(p.name.startswith('background_') for p in changes):
            self._estimator_args = (
                get('background_time_constant').value,
                get('background_min_live_time').value,
                get('background_holdoff').value,
                get('background_gate_sigma').value,
            )
            self.tracker = None  # rebuilt on the next frame, when the channel count is known

    def on_counts(self, msg: RadiationCounts):
        """Feed a frame; on a completed passage, test it and publish the evidence."""
        self.stats['frames'] += 1
        self.sensor_id = msg.sensor_id
        if self.tracker is None or self.tracker.background.n_channels != len(msg.gamma_counts):
            time_constant, min_live, holdoff, gate_sigma = self._estimator_args
            self.tracker = PassageTracker(
                alarm.BackgroundEstimator(
                    len(msg.gamma_counts), time_constant=time_constant, min_live_time=min_live
                ),
                holdoff=holdoff,
                gate_sigma=gate_sigma,
            )
            self._elevated_reported = 0
            self.frame_id = msg.header.frame_id
        if msg.occupied and msg.subject.id:
            self.subject = msg.subject
            self.tracker.set_subject(msg.subject.id)
        passage = self.tracker.feed(
            time_msg_to_seconds(msg.header.stamp),
            msg.sequence,
            msg.gamma_counts,
            msg.live_time,
            msg.occupied,
        )
        if passage is not None:
            self._evaluate(passage, msg)

    def _evaluate(self, passage, msg):
        background = self.tracker.background
        ready = background.ready
        try:
            result = alarm.evaluate_passage(
                passage.counts,
                passage.live_times,
                background.rate(),
                background.rate_std(),
                self.config,
            )
        except ValueError as error:
            self.get_logger().error(
                f'passage {passage.first_seq}-{passage.last_seq} not evaluated: {error}'
            )
            return
        self.stats['passages'] += 1
        self.stats['alarms'] += int(result.alarm and ready)
        evidence = Evidence(
            evidence_id=uuid_to_msg(uuid.uuid4()),
            sensor_id=self.sensor_id,
            source_node=self.get_fully_qualified_name(),
            kind=Evidence.KIND_RADIATION_GAMMA,
            log_likelihood_ratio=float(result.log_likelihood_ratio) if ready else 0.0,
            log_likelihood_ratio_std=float(result.log_likelihood_ratio_std) if ready else 0.0,
            correlation_group=self.sensor_id,
            explanation=explain(result, ready),
            raw_data_uri=f'rpm://{self.sensor_id}/frames/{passage.first_seq}-{passage.last_seq}',
        )
        evidence.header.stamp = msg.header.stamp
        evidence.header.frame_id = self.frame_id
        evidence.pose_valid = True  # the portal plane, centre of the lane
        evidence.pose.pose.orientation.w = 1.0
        evidence.subject = getattr(self, 'subject', evidence.subject)
        if not passage.subject_id:
            evidence.subject.id = ''
            evidence.subject.id_valid = False
        self.evidence_pub.publish(evidence)
        self.get_logger().info(f'{passage.subject_id or "(unread)"}: {evidence.explanation}')

    def _report(self):
        if self.tracker is None:
            self.diagnostics.update(
                f'rpm_alarm: {self.sensor_id or self.get_namespace()}',
                self.sensor_id,
                Diagnostics.WARN,
                'no frames yet',
            )
            return
        background = self.tracker.background
        level = (
            Diagnostics.OK
            if background.ready and not self.tracker.rejected_frames
            else Diagnostics.WARN
        )
        message = 'background learned' if background.ready else 'learning background'
        if self.tracker.elevated_frames > self._elevated_reported:
            level = Diagnostics.WARN
            message += (
                f'; count rate above background with the lane empty '
                f'({self.tracker.elevated_frames - self._elevated_reported} frames in the last '
                'report: a source near the portal?)'
            )
        self._elevated_reported = self.tracker.elevated_frames
        if self.tracker.rejected_frames:
            message += (
                f'; {self.tracker.rejected_frames} bad frames ({self.tracker.last_rejection})'
            )
        values = dict(
            self.stats,
            elevated_empty_lane_frames=self.tracker.elevated_frames,
            holdoff_frames=self.tracker.holdoff_frames,
            background_cps=[round(float(r), 1) for r in background.rate()],
        )
        self.diagnostics.update(
            f'rpm_alarm: {self.sensor_id}', self.sensor_id, level, message, values
        )


def main(args=None):
    """Run the alarm node."""
    return run_node(RpmAlarm, args)


if __name__ == '__main__':
    raise SystemExit(main())
