"""A portal's processing chain without ROS: counting frames in, radiation evidence out.

On a site each portal's frames travel serial line -> rpm_driver (RadiationCounts: counts, live
time, occupancy, the id the lane reader read) -> rpm_alarm (background, passages, gross-count
test, Bayes factor) -> Evidence on /evidence. `OfflinePortal` does the same frame by frame with
the same core code (radiation/portal_alarm.py) and the nodes' parameters
(config/radiation.yaml), for benchmarks and tests that need thousands of passages without a ROS
graph. The serial protocol is left out: the driver only decodes it.

Taken from the nodes, one by one:
- rpm_driver: a frame carries a subject only while the lane is occupied and an occupancy edge has
  given an id (an edge to empty clears it); the subject kind is the device's; id_valid is the
  id's check (ISO 6346 / UPU S10), as subject_to_msg computes it.
- rpm_alarm: the node's PortalAlarm (radiation/portal_alarm.py: background, passages, test); the
  subject of a passage's evidence is the last one an occupied frame named; kind
  radiation.gamma, correlation group = sensor id; stamp = the first empty-lane frame, which
  completes the passage. When the frames carry neutron counts ({module id: counts}, as the
  driver names them from the status line), the passage's neutron test is a second item
  (`PortalEvidence.neutron`): kind radiation.neutron, correlation group `<sensor id>/neutrons`
  (other detectors, independent counts), published by the node just before the gamma item.
Evidence ids are uuid5 of the sensor id and the passage's frame numbers, as the node's, so
that a run replays exactly.

Processing side only: it sees what the devices report, never what a subject carries.
Core module: no ROS.
"""

from dataclasses import dataclass
import math
import pathlib

import yaml

from customs_lab.common.subjects import Subject, SubjectKind
from customs_lab.fusion.logodds import EvidenceItem
from customs_lab.radiation.alarm import AlarmResult
from customs_lab.radiation.neutron import NeutronAlarmResult
from customs_lab.radiation.portal_alarm import (
    PortalAlarm,
    PortalAlarmParameters,
    neutron_correlation_group,
)

EVIDENCE_KIND = 'radiation.gamma'  # Evidence.KIND_RADIATION_GAMMA
NEUTRON_EVIDENCE_KIND = 'radiation.neutron'  # Evidence.KIND_RADIATION_NEUTRON


def alarm_parameters(path=None) -> PortalAlarmParameters:
    """Return the rpm_alarm parameters of a ROS parameter file (defaults for keys not set).

    Reads the `/**/rpm_alarm` (or `rpm_alarm`) section, as the launch file passes it to every
    alarm node; without a path, the defaults. Raises ValueError on an unknown parameter.
    """
    if path is None:
        return PortalAlarmParameters()
    document = yaml.safe_load(pathlib.Path(path).read_text()) or {}
    section = document.get('/**/rpm_alarm', document.get('rpm_alarm', {})) or {}
    given = dict(section.get('ros__parameters', {}) or {})
    for node_only in ('use_sim_time', 'site_file', 'device'):  # not the alarm chain's
        given.pop(node_only, None)
    try:
        return PortalAlarmParameters.from_dict(given)
    except ValueError as error:
        raise ValueError(f'{path}: {error}') from None


@dataclass(frozen=True)
class PortalEvidence:
    """The evidence of one passage, as the alarm node publishes it."""

    subject: Subject  # the subject as the lane reader read it ('' if nothing was read)
    id_valid: bool
    item: EvidenceItem
    stamp: float  # s, stamp of the frame that completed the passage
    alarm: bool  # the gross-count (or neutron) test alarmed with a learned background
    background_ready: bool
    result: AlarmResult | NeutronAlarmResult | None  # None: neutron background not learned
    first_frame: int
    last_frame: int
    neutron: 'PortalEvidence | None' = None  # the passage's neutron evidence, if any


class OfflinePortal:
    """One portal's driver and alarm node: feed its frames in order, get evidence per passage."""

    def __init__(self, sensor_id: str, subject_kind: SubjectKind,
                 parameters: PortalAlarmParameters | None = None, geometry=None,
                 window_edges=()):
        """Build the chain of one portal.

        geometry: the lane's (radiation.shadow.LaneGeometry), to correct subjects' shadow;
        window_edges: keV, the energy windows of the frames' window counts (as the device's
        status line gives them to the driver).
        """
        self.window_edges = tuple(window_edges)
        if not sensor_id:
            raise ValueError('sensor_id must not be empty (it names the evidence slot)')
        self.sensor_id = sensor_id
        self.subject_kind = SubjectKind(subject_kind)
        self.portal = PortalAlarm(parameters, geometry)
        self._speed = math.nan  # the driver's: the speed of the last occupancy edge
        self._read_id = ''  # the driver's: the id of the last occupancy edge, '' once empty
        self._subject = None  # the node's: the subject the last named occupied frame carried
        self.frames = 0

    @property
    def stats(self) -> dict:
        """Return passages, alarms and passages before the background was learned."""
        return dict(self.portal.stats)

    def feed(self, stamp: float, counts, live_time: float, occupied: bool,
             events=(), windows=None, neutrons=None) -> PortalEvidence | None:
        """Take one frame and the occupancy edges before it; return a passage's evidence or None.

        events: the lane's occupancy edges reported before this frame's counts, in order, each
        with `occupied` and `subject_id` (the lane reader's read); windows: (channels, k) counts
        in the energy windows, if the device reports them; neutrons: {module id: counts} of its
        neutron modules (a LaneFrame's neutron_counts), if it has any.
        """
        for event in events:  # the driver: an edge to occupied names the subject
            self._read_id = event.subject_id if event.occupied else ''
            self._speed = event.speed if event.occupied else math.nan
        seq = self.frames
        self.frames += 1
        subject_id = self._read_id if occupied else ''
        if subject_id:  # the alarm node: the frame carries a subject
            self._subject = Subject(self.subject_kind, subject_id)
        try:
            verdict = self.portal.feed(stamp, seq, counts, live_time, occupied, subject_id,
                                       self._speed if occupied else math.nan, windows,
                                       self.window_edges if windows is not None else (),
                                       neutrons)
        except ValueError:
            return None  # the node logs it and publishes nothing
        if verdict is None:
            return None
        passage = verdict.passage
        subject = self._subject or Subject(self.subject_kind, '')
        if not passage.subject_id:
            subject = Subject(self.subject_kind, '')
        id_valid = bool(subject.id) and subject.validate()[0]
        evidence_id = verdict.evidence_id(self.sensor_id)
        item = EvidenceItem(
            evidence_id=str(evidence_id),
            kind=EVIDENCE_KIND,
            sensor_id=self.sensor_id,
            log_likelihood_ratio=verdict.log_likelihood_ratio,
            log_likelihood_ratio_std=verdict.log_likelihood_ratio_std,
            correlation_group=self.sensor_id,
            explanation=verdict.explanation,
        )
        found = None
        if verdict.neutron is not None:
            test = verdict.neutron
            found = PortalEvidence(
                subject, id_valid,
                EvidenceItem(evidence_id=str(test.evidence_id(self.sensor_id)),
                             kind=NEUTRON_EVIDENCE_KIND, sensor_id=self.sensor_id,
                             log_likelihood_ratio=test.log_likelihood_ratio,
                             log_likelihood_ratio_std=test.log_likelihood_ratio_std,
                             correlation_group=neutron_correlation_group(self.sensor_id),
                             explanation=test.explanation),
                float(stamp), test.alarm, test.background_ready, test.result,
                passage.first_seq, passage.last_seq)
        return PortalEvidence(subject, id_valid, item, float(stamp), verdict.alarm,
                              verdict.background_ready, verdict.result, passage.first_seq,
                              passage.last_seq, found)
