"""The rpm_alarm node on a simulated passage: evidence, and the located source for RViz."""

import math

import numpy as np
import pytest
from rclpy.parameter import Parameter
from test_offline_site import ROOT, container

pytestmark = pytest.mark.ros


def frames(subjects, seed=2, neutrons=False):
    """Yield RadiationCounts of the container lane as the driver publishes them.

    neutrons: with the counts of the lane's He-3 modules (their ids as the status line names
    them).
    """
    from builtin_interfaces.msg import Time

    from customs_interfaces.msg import RadiationCounts
    from customs_lab.common.node_support import subject_to_msg
    from customs_lab.common.subjects import Subject, SubjectKind
    from customs_lab.simulation.portal_lane import PortalLane
    from customs_lab.site.layout import load_site

    spec = load_site(ROOT / 'config' / 'site.yaml').portals['portal_lane_1']
    lane = PortalLane(spec, np.random.default_rng(seed), spectra=False)
    pending, t, seq, read, speed = list(subjects), 0.0, 0, '', math.nan
    while pending or lane.busy:
        t = round(t + spec.frame_period, 9)
        while pending and pending[0].arrival <= t:
            lane.enqueue(pending.pop(0))
        frame = lane.step(t)
        for event in frame.events:
            read, speed = (event.subject_id, event.speed) if event.occupied else ('', math.nan)
        msg = RadiationCounts(sensor_id=spec.hardware_id, sequence=seq,
                              live_time=frame.live_time, occupied=bool(frame.occupied),
                              gamma_counts=[int(c) for c in frame.counts],
                              gamma_panel_ids=[p.id for p in spec.panels],
                              window_edges_kev=list(spec.window_edges_kev),
                              gamma_window_counts=[int(w) for w in frame.windows.ravel()],
                              subject_speed=speed if frame.occupied else math.nan)
        msg.header.stamp = Time(sec=int(t), nanosec=int(round((t % 1) * 1e9)) % 1_000_000_000)
        msg.header.frame_id = spec.frame_id
        if frame.occupied and read:
            msg.subject = subject_to_msg(Subject(SubjectKind.CONTAINER, read))
        if neutrons:
            msg.neutron_module_ids = list(frame.neutron_counts)
            msg.neutron_counts = [int(n) for n in frame.neutron_counts.values()]
        seq += 1
        yield msg


def test_an_alarm_is_located_in_the_container_and_on_the_map(harness):
    from sensor_msgs.msg import PointCloud2
    from visualization_msgs.msg import MarkerArray

    from customs_interfaces.msg import Evidence, LocatedSource
    from customs_lab.common.node_support import DOSE_TOPIC, LOCATED_TOPIC, MARKERS_TOPIC
    from customs_lab.radiation.rpm_alarm_node import RpmAlarm
    from customs_lab.simulation.scenario import TrueItem

    truth = (7.5, 1.7, 1.2)  # m in the container: 7.5 m from its rear, near its left wall
    source = TrueItem('radioactive_source', 'Cs-137', True, nuclide='Cs-137', activity=1e8,
                      position=truth)
    node = harness.add(RpmAlarm(context=harness.context, parameter_overrides=[
        Parameter('device', value='portal_lane_1')]))
    assert node.geometry is not None and node.geometry.panels
    listener = harness.node('listener')
    located, markers, clouds, evidence = [], [], [], []
    listener.create_subscription(LocatedSource, LOCATED_TOPIC, located.append, 10)
    listener.create_subscription(MarkerArray, MARKERS_TOPIC, markers.append, 10)
    listener.create_subscription(PointCloud2, DOSE_TOPIC, clouds.append, 10)
    listener.create_subscription(Evidence, '/evidence', evidence.append, 10)
    for msg in frames([container(7001, 30.0), container(7002, 60.0, source)]):
        node.on_counts(msg)
    assert harness.spin_until(lambda: located and markers and clouds and len(evidence) == 2, 20)
    found = located[0]
    assert found.subject.id == evidence[1].subject.id and found.nuclide == 'Cs-137'
    assert found.header.frame_id == 'map'
    position = np.array([found.position_in_subject.x, found.position_in_subject.y,
                         found.position_in_subject.z])
    std = np.array([found.position_in_subject_std.x, found.position_in_subject_std.y,
                    found.position_in_subject_std.z])
    print(f'\nlocated {np.round(position, 2)} +- {np.round(std, 2)} m (truth {truth}); '
          f'{found.activity:.3g} Bq; {found.dose_rate_1m:.3g} uGy/h at 1 m; {found.explanation}')
    assert abs(position[0] - truth[0]) < 0.5 and np.all(np.abs(position - truth) < 4 * std + 0.1)
    covariance = np.array(found.pose.covariance).reshape(6, 6)
    assert np.all(np.diag(covariance)[:3] > 0)
    # on the map: beyond the portal (x = 62 m, the lane along +x), at the lane's y
    assert found.pose.pose.position.x > 62.0 and abs(found.pose.pose.position.y - 30.0) < 1.3
    assert 0.0 < found.dose_rate_1m and found.activity > 1e6
    assert [m.type for m in markers[0].markers] == [2, 9]  # a sphere and its label
    cloud = np.frombuffer(bytes(clouds[0].data), dtype='<f4').reshape(-1, 4)
    assert clouds[0].width == len(cloud) > 100 and cloud[:, 3].max() > 0
    # evidence ids are stable: the same frames give the same id
    assert evidence[0].evidence_id != evidence[1].evidence_id
    assert node.located == 1  # the clean container was not located


def test_a_neutron_emitter_gives_neutron_evidence_just_before_the_gamma_item(harness):
    import uuid

    from test_neutron_portal import plutonium

    from customs_interfaces.msg import Evidence
    from customs_lab.common.subjects import SubjectKind
    from customs_lab.radiation.portal_alarm import EVIDENCE_NAMESPACE
    from customs_lab.radiation.rpm_alarm_node import RpmAlarm
    from customs_lab.radiation.shadow import LaneGeometry
    from customs_lab.simulation.offline_site import OfflinePortal, alarm_parameters
    from customs_lab.simulation.portal_lane import PortalLane
    from customs_lab.site.layout import load_site

    # 2 kg of weapons-grade plutonium (1.2e5 n/s) in 5 cm of lead, hidden among T-shirts
    pu = plutonium(2000.0, (6.0, 1.2, 1.0))
    subjects = [container(7101, 40.0), container(7102, 75.0, pu)]
    node = harness.add(RpmAlarm(context=harness.context, parameter_overrides=[
        Parameter('device', value='portal_lane_1'), Parameter('locate_sources', value=False)]))
    listener = harness.node('listener')
    evidence = []
    listener.create_subscription(Evidence, '/evidence', evidence.append, 10)
    for msg in frames(subjects, seed=5, neutrons=True):
        node.on_counts(msg)
    assert harness.spin_until(lambda: len(evidence) == 4, 10)
    kinds = [e.kind for e in evidence]
    assert kinds == [Evidence.KIND_RADIATION_NEUTRON, Evidence.KIND_RADIATION_GAMMA] * 2
    for found, gamma in (evidence[:2], evidence[2:]):
        assert found.subject.id == gamma.subject.id and found.subject.id_valid
        assert found.sensor_id == gamma.sensor_id == 'rpm/portal_lane_1'
        assert found.correlation_group == 'rpm/portal_lane_1/neutrons'
        assert found.header.stamp == gamma.header.stamp
        frames_uri = gamma.raw_data_uri.rsplit('/', 1)[-1]
        assert found.raw_data_uri == f'rpm://rpm/portal_lane_1/neutrons/{frames_uri}'
        assert bytes(found.evidence_id.uuid) == uuid.uuid5(
            EVIDENCE_NAMESPACE, f'rpm/portal_lane_1/neutrons/{frames_uri}').bytes
        assert found.source_node == '/rpm_alarm'
    clean, hidden = evidence[0], evidence[2]
    print(f'\nclean: {clean.explanation}\nplutonium: {hidden.explanation}'
          f'\n  gamma: {evidence[3].explanation}')
    assert clean.explanation.startswith('no neutron alarm') and clean.log_likelihood_ratio < 3
    assert hidden.explanation.startswith('NEUTRON ALARM') and hidden.log_likelihood_ratio > 10
    assert evidence[3].explanation.startswith('no alarm')  # lead hides it from the PVT panels
    assert node.portal.neutron_stats == {'passages': 2, 'alarms': 1, 'not_ready': 0}

    # the offline chain (benchmarks) gives the same items from the same frames
    spec = load_site(ROOT / 'config' / 'site.yaml').portals['portal_lane_1']
    lane = PortalLane(spec, np.random.default_rng(5), spectra=False)
    offline = OfflinePortal(spec.hardware_id, SubjectKind.CONTAINER,
                            alarm_parameters(ROOT / 'config' / 'radiation.yaml'),
                            LaneGeometry.from_spec(spec), spec.window_edges_kev)
    pending, t, found = list(subjects), 0.0, []
    while pending or lane.busy:
        t = round(t + spec.frame_period, 9)
        while pending and pending[0].arrival <= t:
            lane.enqueue(pending.pop(0))
        frame = lane.step(t)
        item = offline.feed(t, frame.counts, frame.live_time, frame.occupied, frame.events,
                            frame.windows, frame.neutron_counts)
        if item is not None:
            found += [item.neutron.item, item.item]
    assert [str(uuid.UUID(bytes=bytes(e.evidence_id.uuid))) for e in evidence] == [
        i.evidence_id for i in found]
    assert [e.explanation for e in evidence] == [i.explanation for i in found]
    assert [e.log_likelihood_ratio for e in evidence] == pytest.approx(
        [i.log_likelihood_ratio for i in found])
