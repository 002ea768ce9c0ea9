"""Radiation portal alarm: gross-count test per passage, published as calibrated Evidence.

Subscribes to the driver's `counts` (every frame matters, so reliable). Frames of an empty lane
teach the background; the frames of each passage go through the gross-count test of
`customs_lab.radiation.alarm` (sliding windows, threshold set by the per-passage false-alarm
probability) and its Bayes factor becomes the Evidence's log-likelihood ratio, published on
/evidence with kind radiation.gamma. The portal's geometry (its panels and lane, from the site
description `site_file`, device `device`) lets it correct the background for the shadow of the
subject passing (radiation/shadow.py) and, after an alarm whose energy windows look like a
threat, locate the source (radiation/located_source.py, on a worker thread: a couple of
seconds) and publish it, for every portal on the same topics: /radiation/located_sources
(LocatedSource: in the subject and on the map, with its covariance and dose rate),
/radiation/located_source_markers (MarkerArray) and /radiation/dose_rate (PointCloud2 of
air-kerma rate, uGy/h, at chest height around it; latched) for RViz.
A device with He-3 neutron modules (its frames carry neutron counts) gets a neutron test per
passage too (radiation/neutron.py, through portal_alarm.PortalAlarm): published just before the
gamma item, as its own Evidence of kind radiation.neutron (own evidence id, correlation group
`<sensor id>/neutrons`), so that fusion has it when the gamma item makes it decide.
Parameters can be changed at run time (the geometry excepted); bad values are refused by the
on-set callback.
"""

from concurrent.futures import ThreadPoolExecutor
from dataclasses import fields
import pathlib

import numpy as np
from rcl_interfaces.msg import SetParametersResult
from rclpy.node import Node
from sensor_msgs.msg import PointCloud2
from std_msgs.msg import Header
from visualization_msgs.msg import MarkerArray

from customs_interfaces.msg import Evidence, LocatedSource, RadiationCounts
from customs_lab.common.data_dir import share_dir
from customs_lab.common.node_support import (
    DOSE_TOPIC,
    EVIDENCE_TOPIC,
    LATCHED,
    LOCATED_TOPIC,
    MARKERS_TOPIC,
    Diagnostics,
    declare,
    portal_evidence,
    reliable,
    run_node,
    time_msg_to_seconds,
)
from customs_lab.common.rviz import intensity_cloud, source_markers
from customs_lab.radiation import located_source
from customs_lab.radiation.portal_alarm import (
    PortalAlarm,
    PortalAlarmParameters,
    neutron_correlation_group,
)
from customs_lab.radiation.shadow import LaneGeometry
from customs_lab.site.layout import load_site


class RpmAlarm(Node):
    """Per-passage alarm and evidence for one portal."""

    def __init__(self, **kwargs):
        super().__init__('rpm_alarm', **kwargs)
        defaults = PortalAlarmParameters()
        declare(
            self,
            'window',
            defaults.window,
            'Sliding window summed by the gross-count test, s',
            minimum=0.05,
            maximum=60.0,
        )
        declare(
            self,
            'false_alarm_probability',
            defaults.false_alarm_probability,
            'Stated false-alarm probability per passage',
            minimum=1e-9,
            maximum=0.5,
        )
        declare(
            self,
            'excess_prior_min',
            defaults.excess_prior_min,
            'Weakest source excess H1 considers, cps',
            minimum=1e-3,
            maximum=1e9,
        )
        declare(
            self,
            'excess_prior_max',
            defaults.excess_prior_max,
            'Strongest source excess H1 considers, cps',
            minimum=1e-3,
            maximum=1e12,
        )
        declare(
            self,
            'background_time_constant',
            defaults.background_time_constant,
            'Memory of the background estimator, s',
            minimum=1.0,
            maximum=86400.0,
        )
        declare(
            self,
            'background_min_live_time',
            defaults.background_min_live_time,
            'Empty-lane live time before alarms are trusted, s',
            minimum=0.0,
            maximum=3600.0,
        )
        declare(
            self,
            'background_holdoff',
            defaults.background_holdoff,
            'Time after a passage before the empty lane teaches the background again, s',
            minimum=0.0,
            maximum=600.0,
        )
        declare(
            self,
            'background_gate_sigma',
            defaults.background_gate_sigma,
            'Empty-lane frames above background by more than this many sigma are not learned',
            minimum=1.0,
            maximum=1000.0,
        )
        declare(self, 'shadow_correction', defaults.shadow_correction,
                "Correct the background for the passing subject's shadow")
        declare(self, 'norm_prior', defaults.norm_prior,
                'Share of subjects with NORM cargo (weighs the energy windows)',
                minimum=1e-6, maximum=0.999)
        declare(self, 'fission_share', defaults.fission_share,
                'Prior share of fission sources (Cf-252, plutonium) among radiological threats '
                '(weighs the neutron test into the gamma evidence)',
                minimum=1e-6, maximum=0.999)
        declare(self, 'neutron_false_alarm_probability',
                defaults.neutron_false_alarm_probability,
                'Stated false-alarm probability per passage of the neutron test',
                minimum=1e-9, maximum=0.5)
        declare(self, 'neutron_excess_prior_min', defaults.neutron_excess_prior_min,
                'Weakest neutron excess H1 considers, cps (all modules)',
                minimum=1e-4, maximum=1e6)
        declare(self, 'neutron_excess_prior_max', defaults.neutron_excess_prior_max,
                'Strongest neutron excess H1 considers, cps (all modules)',
                minimum=1e-4, maximum=1e9)
        declare(self, 'neutron_background_time_constant',
                defaults.neutron_background_time_constant,
                'Memory of the neutron background estimator, s', minimum=1.0, maximum=86400.0)
        declare(self, 'neutron_background_min_live_time',
                defaults.neutron_background_min_live_time,
                'Empty-lane live time before neutron evidence is given, s',
                minimum=0.0, maximum=3600.0)
        declare(self, 'neutron_ship_effect', defaults.neutron_ship_effect,
                "Factor on the neutron background while a subject passes (its load's "
                'cosmic-ray ship effect)', minimum=0.5, maximum=3.0)
        declare(self, 'site_file', '', 'Site description with the portal geometry '
                '(empty: config/site.yaml)')
        declare(self, 'device', '', "The portal's name in the site file (empty: the namespace's "
                'last part)')
        declare(self, 'locate_sources', True,
                'Locate the source of an alarm that looks like a threat (needs the geometry)')
        self.geometry, self.geometry_problem = self._load_geometry()
        self.located = 0
        self._locator = ThreadPoolExecutor(max_workers=1, thread_name_prefix='locate')
        self.add_on_set_parameters_callback(self._validate)
        self.add_post_set_parameters_callback(self._apply)
        self.portal = None
        self._elevated_reported = 0
        self.sensor_id = ''
        self.frames = 0
        self.empty_frames = 0  # frames without gamma channels (a driver or device fault)
        self._apply([])
        self.evidence_pub = self.create_publisher(Evidence, EVIDENCE_TOPIC, reliable(100))
        self.source_pub = self.create_publisher(LocatedSource, LOCATED_TOPIC, reliable(20))
        self.marker_pub = self.create_publisher(MarkerArray, MARKERS_TOPIC, 10)
        self.dose_pub = self.create_publisher(PointCloud2, DOSE_TOPIC, LATCHED)
        self.create_subscription(RadiationCounts, 'counts', self.on_counts, reliable(100))
        self.diagnostics = Diagnostics(self)
        self.create_timer(1.0, self._report)

    def _load_geometry(self):
        """Return (the portal's LaneGeometry or None, why not)."""
        site_file = self.get_parameter('site_file').value
        device = self.get_parameter('device').value or self.get_namespace().rsplit('/', 1)[-1]
        path = pathlib.Path(site_file) if site_file else share_dir() / 'config' / 'site.yaml'
        try:
            return LaneGeometry.from_spec(load_site(path).portals[device]), ''
        except KeyError:
            problem = f'no portal {device!r} in {path}'
        except ValueError as error:
            problem = str(error)
        self.get_logger().error(f"{problem}: the subject's shadow is not corrected")
        return None, problem

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
        if not (self._value('neutron_excess_prior_min', changes)
                < self._value('neutron_excess_prior_max', changes)):
            return SetParametersResult(successful=False, reason='neutron_excess_prior_min '
                                       'must be below neutron_excess_prior_max')
        return SetParametersResult(successful=True)

    def _apply(self, changes):
        parameters = PortalAlarmParameters.from_dict(
            {f.name: self.get_parameter(f.name).value for f in fields(PortalAlarmParameters)})
        if self.portal is None:
            self.portal = PortalAlarm(parameters, self.geometry)
        else:  # a new background estimator if its parameters changed
            rebuild = any(p.name.startswith(('background_', 'neutron_background_'))
                          for p in changes)
            self.portal.configure(parameters, rebuild=rebuild)

    def on_counts(self, msg: RadiationCounts):
        """Feed a frame; on a completed passage, test it and publish the evidence."""
        self.frames += 1
        self.sensor_id = msg.sensor_id
        if not msg.gamma_counts:
            self.empty_frames += 1
            self.get_logger().error(f'frame {msg.sequence} has no gamma channels: not used',
                                    throttle_duration_sec=10.0)
            return
        if self.portal.ensure_tracker(len(msg.gamma_counts)):
            self._elevated_reported = 0
            self.frame_id = msg.header.frame_id
        if msg.occupied and msg.subject.id:
            self.subject = msg.subject
        try:
            verdict = self.portal.feed(
                time_msg_to_seconds(msg.header.stamp),
                msg.sequence,
                msg.gamma_counts,
                msg.live_time,
                msg.occupied,
                msg.subject.id,
                msg.subject_speed,
                self._windows(msg),
                msg.window_edges_kev,
                self._neutrons(msg),
            )
        except ValueError as error:
            self.get_logger().error(f'passage ending at frame {msg.sequence} not evaluated: '
                                    f'{error}')
            return
        if verdict is not None:
            self._publish(verdict, msg)

    def _windows(self, msg: RadiationCounts):
        """Return the frame's energy-window counts as (channels, windows), or None."""
        k = len(msg.window_edges_kev) - 1
        if k < 1 or len(msg.gamma_window_counts) != k * len(msg.gamma_counts):
            return None
        return np.asarray(msg.gamma_window_counts, dtype=float).reshape(-1, k)

    def _neutrons(self, msg: RadiationCounts):
        """Return the frame's neutron counts as {module id: counts}, or None."""
        ids, counts = list(msg.neutron_module_ids), list(msg.neutron_counts)
        if len(ids) != len(counts) or len(set(ids)) != len(ids):
            self.get_logger().error(f'frame {msg.sequence}: {len(counts)} neutron counts for '
                                    f'modules {ids}: not used', throttle_duration_sec=10.0)
            return None
        return dict(zip(ids, counts, strict=True)) or None

    def _publish(self, verdict, msg):
        passage = verdict.passage
        header = Header(stamp=msg.header.stamp, frame_id=self.frame_id)
        subject = getattr(self, 'subject', None) if passage.subject_id else None
        if verdict.neutron is not None:  # first: fusion decides when the gamma item arrives
            test = verdict.neutron
            found = portal_evidence(
                self, Evidence.KIND_RADIATION_NEUTRON, self.sensor_id,
                test.evidence_id(self.sensor_id), test, neutron_correlation_group(self.sensor_id),
                f'rpm://{self.sensor_id}/neutrons/{passage.first_seq}-{passage.last_seq}',
                header, subject)
            self.evidence_pub.publish(found)
            if test.alarm:  # (one severity per call site: rclpy's logger)
                self.get_logger().warning(f'{passage.subject_id or "(unread)"}: '
                                          f'{found.explanation}')
            else:
                self.get_logger().info(f'{passage.subject_id or "(unread)"}: {found.explanation}')
        evidence = portal_evidence(
            self, Evidence.KIND_RADIATION_GAMMA, self.sensor_id,
            verdict.evidence_id(self.sensor_id), verdict, self.sensor_id,
            f'rpm://{self.sensor_id}/frames/{passage.first_seq}-{passage.last_seq}',
            header, subject)
        self.evidence_pub.publish(evidence)
        self.get_logger().info(f'{passage.subject_id or "(unread)"}: {evidence.explanation}')
        threat_like = verdict.discrimination is None or (
            verdict.discrimination.log_likelihood_ratio > 0)
        if (verdict.alarm and threat_like and self.geometry is not None
                and self.get_parameter('locate_sources').value):
            self._locator.submit(self._locate, verdict, self.portal.tracker.background.rate(),
                                 evidence)

    def _locate(self, verdict, background, evidence: Evidence):
        """Locate an alarm's source (worker thread) and publish it for fusion's users and RViz."""
        kind = 'container' if evidence.subject.kind == evidence.subject.KIND_CONTAINER \
            else 'parcel'
        try:
            found = located_source.locate(
                verdict.passage, self.geometry, background,
                located_source.nuclide_of(verdict.discrimination), kind)
        except ValueError as error:
            self.get_logger().error(f'source of {verdict.passage.subject_id} not located: {error}')
            return
        if found is None or not found.clear:
            return
        header = Header(stamp=evidence.header.stamp, frame_id='map')
        msg = LocatedSource(header=header, sensor_id=self.sensor_id, subject=evidence.subject,
                            nuclide=found.nuclide, activity=found.activity,
                            dose_rate_1m=found.dose_rate_1m, deviance=found.deviance,
                            explanation=found.explanation)
        msg.pose.pose.position.x, msg.pose.pose.position.y, msg.pose.pose.position.z = (
            float(v) for v in found.in_map)
        msg.pose.pose.orientation.w = 1.0
        msg.velocity.x, msg.velocity.y, msg.velocity.z = (float(v) for v in found.velocity_map)
        covariance = np.zeros((6, 6))
        covariance[:3, :3] = found.covariance_map
        msg.pose.covariance = covariance.ravel().tolist()
        msg.position_in_subject.x, msg.position_in_subject.y, msg.position_in_subject.z = (
            float(v) for v in found.in_subject)
        std = msg.position_in_subject_std
        std.x, std.y, std.z = (float(v) for v in found.in_subject_std)
        self.source_pub.publish(msg)
        std_map = np.sqrt(np.clip(np.diag(found.covariance_map), 0.0, None))
        label = (f'{evidence.subject.id or "unread"}: {found.nuclide} >= '
                 f'{found.activity / 1e6:.3g} MBq, {found.dose_rate_1m:.3g} uGy/h at 1 m')
        self.marker_pub.publish(source_markers(header, self.located, found.in_map, std_map,
                                               label))
        self.dose_pub.publish(intensity_cloud(header, *found.field()))
        self.located += 1
        self.get_logger().warning(f'{evidence.subject.id or "(unread)"}: {found.explanation}; '
                                  f'{label}')

    def _report(self):
        tracker = self.portal.tracker
        if tracker is None:
            self.diagnostics.update(
                f'rpm_alarm: {self.sensor_id or self.get_namespace()}',
                self.sensor_id,
                Diagnostics.ERROR if self.empty_frames else Diagnostics.WARN,
                f'{self.empty_frames} frames without gamma channels' if self.empty_frames
                else 'no frames yet',
            )
            return
        background = tracker.background
        level = (
            Diagnostics.OK
            if background.ready and not tracker.rejected_frames
            else Diagnostics.WARN
        )
        message = 'background learned' if background.ready else 'learning background'
        if tracker.elevated_frames > self._elevated_reported:
            level = Diagnostics.WARN
            message += (
                f'; count rate above background with the lane empty '
                f'({tracker.elevated_frames - self._elevated_reported} frames in the last '
                'report: a source near the portal?)'
            )
        self._elevated_reported = tracker.elevated_frames
        if tracker.rejected_frames:
            message += (
                f'; {tracker.rejected_frames} bad frames ({tracker.last_rejection})'
            )
        if self.empty_frames:
            level = Diagnostics.WARN
            message += f'; {self.empty_frames} frames without gamma channels'
        if self.geometry is None and self.portal.parameters.shadow_correction:
            level = Diagnostics.WARN
            message += f'; shadow not corrected ({self.geometry_problem})'

        values = dict(
            frames=self.frames,
            frames_without_channels=self.empty_frames,
            passages=self.portal.stats['passages'],
            alarms=self.portal.stats['alarms'],
            elevated_empty_lane_frames=tracker.elevated_frames,
            holdoff_frames=tracker.holdoff_frames,
            located_sources=self.located,
            background_cps=[round(float(r), 1) for r in background.rate()],
        )
        neutrons = self.portal.neutron_background
        if neutrons is not None:
            values.update(
                neutron_modules=list(self.portal.neutron_ids),
                neutron_background_cps=[round(float(r), 2) for r in neutrons.rate()],
                neutron_background_live_time=round(neutrons.total_live_time, 1),
                neutron_alarms=self.portal.neutron_stats['alarms'])
            if not neutrons.ready:
                message += '; learning the neutron background'
            elif not np.all(neutrons.rate() > 0):
                level = Diagnostics.WARN
                message += '; a neutron module counts nothing (its driver status tells more)'
        self.diagnostics.update(
            f'rpm_alarm: {self.sensor_id}', self.sensor_id, level, message, values
        )


def main(args=None):
    """Run the alarm node."""
    return run_node(RpmAlarm, args)


if __name__ == '__main__':
    raise SystemExit(main())
