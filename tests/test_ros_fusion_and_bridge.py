"""Fusion and the clearance bridge over real DDS: evidence in, explained decisions stored once."""

import subprocess
import sys
import textwrap
import uuid

import pytest
from rclpy.parameter import Parameter
from ros_support import active_clearance_bridge

pytestmark = pytest.mark.ros


def evidence(subject_id, llr, group='rpm/portal_lane_1'):
    from customs_interfaces.msg import Evidence, SubjectRef
    from customs_lab.common.node_support import uuid_to_msg

    msg = Evidence(
        evidence_id=uuid_to_msg(uuid.uuid4()),
        sensor_id='rpm/portal_lane_1',
        source_node='/test',
        kind=Evidence.KIND_RADIATION_GAMMA,
        log_likelihood_ratio=llr,
        correlation_group=group,
        explanation=f'llr {llr}',
    )
    msg.subject = SubjectRef(kind=SubjectRef.KIND_CONTAINER, id=subject_id, id_valid=True)
    return msg


def test_evidence_to_decisions_to_database(harness, tmp_path):
    from customs_interfaces.msg import Evidence, RiskDecision
    from customs_lab.clearance.database import ClearanceDatabase, sqlite_url
    from customs_lab.common.node_support import DECISIONS_QOS, reliable
    from customs_lab.fusion.risk_fusion_node import RiskFusion

    url = sqlite_url(tmp_path / 'clearance.db')
    fusion = harness.add(
        RiskFusion(
            context=harness.context,
            parameter_overrides=[
                Parameter('expected_evidence_container', value=['radiation.gamma'])
            ],
        )
    )
    bridge = active_clearance_bridge(harness, url, tmp_path)
    test = harness.node('test_source')
    publisher = test.create_publisher(Evidence, '/evidence', reliable(100))
    decisions = []
    test.create_subscription(RiskDecision, '/decisions', decisions.append, DECISIONS_QOS)
    assert harness.spin_until(lambda: publisher.get_subscription_count() >= 1, 5.0)
    harness.spin_for(0.5)

    publisher.publish(evidence('CSQU3054383', 12.0))  # strong alarm
    publisher.publish(evidence('MSCU6639870', -1.5))  # clean passage
    assert harness.spin_until(lambda: len(decisions) == 2, 5.0)
    by_id = {d.subject.id: d for d in decisions}
    red, green = by_id['CSQU3054383'], by_id['MSCU6639870']
    assert (
        red.channel == RiskDecision.CHANNEL_RED and red.recommended_action == 'physical_inspection'
    )
    assert red.posterior_risk == pytest.approx(1 / (1 + 99 * 2.718281828**-12.0), rel=1e-6)
    assert green.channel == RiskDecision.CHANNEL_GREEN
    assert len(red.contributions) == 1 and red.contributions[0].contribution == 12.0
    assert 'radiation.gamma' in red.explanation

    # a late second item of the same portal supersedes the decision, counted with weight 1/2
    publisher.publish(evidence('CSQU3054383', 2.0))
    assert harness.spin_until(lambda: len(decisions) == 3, 5.0)
    assert decisions[-1].posterior_log_odds == pytest.approx(-4.59512 + 7.0, abs=1e-4)

    database = ClearanceDatabase(url)
    assert harness.spin_until(lambda: database.count_decisions() == 3, 5.0)
    stored = database.decisions_by_subject()
    assert [r['channel'] for r in stored['CSQU3054383']][0] == 'RED'
    assert stored['MSCU6639870'][0]['recommended_action'] == 'release'

    # the same decision delivered again (e.g. after a restart) is stored once
    republisher = test.create_publisher(RiskDecision, '/decisions', DECISIONS_QOS)
    republisher.publish(decisions[0])
    assert harness.spin_until(lambda: bridge.delivery.stats.duplicates == 1, 5.0)
    assert database.count_decisions() == 3
    database.dispose()
    assert fusion.decisions_published == 3


def test_custom_interfaces_cross_processes_over_dds(harness):
    """A decision published by another process arrives intact (the generated types on the wire)."""
    from customs_interfaces.msg import RiskDecision
    from customs_lab.common.node_support import DECISIONS_QOS

    received = []
    node = harness.node('receiver')
    node.create_subscription(RiskDecision, '/decisions', received.append, DECISIONS_QOS)
    script = textwrap.dedent("""
        import time, rclpy
        from customs_interfaces.msg import EvidenceContribution, RiskDecision, SubjectRef
        from customs_lab.common.node_support import DECISIONS_QOS
        rclpy.init()
        node = rclpy.create_node('sender')
        pub = node.create_publisher(RiskDecision, '/decisions', DECISIONS_QOS)
        msg = RiskDecision(channel=RiskDecision.CHANNEL_YELLOW, posterior_risk=0.25,
                           recommended_action=RiskDecision.ACTION_XRAY_INSPECTION,
                           model_version='x/1', explanation='cross-process')
        msg.subject = SubjectRef(kind=SubjectRef.KIND_PARCEL, id='RR123456785KR', id_valid=True)
        msg.contributions = [EvidenceContribution(kind='radiation.gamma', contribution=1.5)]
        deadline = time.monotonic() + 10
        while pub.get_subscription_count() == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        pub.publish(msg)
        time.sleep(1.0)
        node.destroy_node()
        rclpy.shutdown()
    """)
    sender = subprocess.Popen([sys.executable, '-c', script])
    try:
        assert harness.spin_until(lambda: received, 15.0)
    finally:
        assert sender.wait(timeout=15) == 0
    msg = received[0]
    assert (msg.subject.id, msg.channel, msg.recommended_action) == (
        'RR123456785KR',
        1,
        'xray_inspection',
    )
    assert msg.contributions[0].contribution == 1.5 and msg.explanation == 'cross-process'
