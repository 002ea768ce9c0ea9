"""Fusion and the clearance bridge over real DDS: evidence in, explained decisions stored once."""

import copy
import subprocess
import sys
import textwrap
import time
import uuid

import pytest
from rclpy.parameter import Parameter
from ros_support import active_clearance_bridge

pytestmark = pytest.mark.ros


def evidence(subject_id, llr, group='portal_lane_1', sensor='rpm/portal_lane_1', after=0.0):
    """Return an Evidence message observed `after` s from now (wall time, as the nodes use)."""
    from customs_interfaces.msg import Evidence, SubjectRef
    from customs_lab.common.node_support import seconds_to_time_msg, uuid_to_msg

    msg = Evidence(
        evidence_id=uuid_to_msg(uuid.uuid4()),
        sensor_id=sensor,
        source_node='/test',
        kind=Evidence.KIND_RADIATION_GAMMA,
        log_likelihood_ratio=llr,
        correlation_group=group,
        explanation=f'llr {llr}',
    )
    msg.header.stamp = seconds_to_time_msg(time.time() + after)
    msg.subject = SubjectRef(kind=SubjectRef.KIND_CONTAINER, id=subject_id, id_valid=True)
    return msg


@pytest.fixture(scope='module')
def smoke_history():
    import pathlib

    from customs_lab.simulation.history import generate_history
    from customs_lab.simulation.scenario import Scenario

    root = pathlib.Path(__file__).resolve().parents[1]
    return generate_history(Scenario.load(root / 'config' / 'scenarios' / 'smoke.yaml'), days=30)


def fusion_node(harness, tmp_path, **overrides):
    from customs_lab.fusion.risk_fusion_node import RiskFusion

    parameters = {'expected_evidence_container': ['radiation.gamma'], 'data_dir': str(tmp_path),
                  'random_audit_rate': 0.0, **overrides}
    return harness.add(RiskFusion(
        context=harness.context,
        parameter_overrides=[Parameter(k, value=v) for k, v in parameters.items()]))


def test_evidence_to_decisions_to_database(harness, tmp_path):
    from customs_interfaces.msg import Evidence, RiskDecision
    from customs_lab.clearance.database import ClearanceDatabase, sqlite_url
    from customs_lab.common.node_support import DECISIONS_QOS, reliable
    from customs_lab.fusion.logodds import logit

    url = sqlite_url(tmp_path / 'clearance.db')
    fusion = fusion_node(harness, tmp_path)  # no model file: base rates
    bridge = active_clearance_bridge(harness, url, tmp_path)
    test = harness.node('test_source')
    publisher = test.create_publisher(Evidence, '/evidence', reliable(100))
    decisions = []
    test.create_subscription(RiskDecision, '/decisions', decisions.append, DECISIONS_QOS)
    assert harness.spin_until(lambda: publisher.get_subscription_count() >= 1, 5.0)
    harness.spin_for(0.5)

    publisher.publish(evidence('CSQU3054383', 12.0, ))  # strong alarm
    publisher.publish(evidence('MSCU6639870', -1.5, ))  # clean passage
    assert harness.spin_until(lambda: len(decisions) == 2, 5.0)
    by_id = {d.subject.id: d for d in decisions}
    red, green = by_id['CSQU3054383'], by_id['MSCU6639870']
    assert red.channel == RiskDecision.CHANNEL_RED and red.selection == 'targeted'
    assert red.recommended_action == 'physical_inspection'  # above the safety floor
    assert red.posterior_risk == pytest.approx(1 / (1 + 99 * 2.718281828**-12.0), rel=1e-6)
    assert green.channel == RiskDecision.CHANNEL_GREEN and green.selection == ''
    assert len(red.contributions) == 1 and red.contributions[0].contribution == 12.0
    assert 'evidence: radiation.gamma from rpm/portal_lane_1 +12.00 nats' in red.explanation
    assert 'prior: base rate of containers 0.01 (no declaration)' in red.explanation
    assert 'inspection budget' in red.explanation and 'models: ' in red.explanation

    # a newer pass through the same portal supersedes the older one (the alarm is not summed)
    publisher.publish(evidence('CSQU3054383', 2.0, after=1.0))
    assert harness.spin_until(lambda: len(decisions) == 3, 5.0)
    assert decisions[-1].posterior_log_odds == pytest.approx(logit(0.01) + 2.0, abs=1e-6)
    assert 'not used: superseded' in decisions[-1].explanation
    # two panels of one portal (one correlation group) count once: weights 1/2
    publisher.publish(evidence('TGHU1234563', 4.0, sensor='rpm/lane_1/a'))
    publisher.publish(evidence('TGHU1234563', 2.0, sensor='rpm/lane_1/b'))
    assert harness.spin_until(lambda: len(decisions) == 5, 5.0)
    assert decisions[-1].posterior_log_odds == pytest.approx(logit(0.01) + 3.0, abs=1e-6)
    assert sorted(c.weight for c in decisions[-1].contributions) == [0.5, 0.5]

    database = ClearanceDatabase(url)
    assert harness.spin_until(lambda: database.count_decisions() == 5, 5.0)
    stored = database.decisions_by_subject()
    assert [r['channel'] for r in stored['CSQU3054383']][0] == 'RED'
    assert stored['CSQU3054383'][0]['selection'] == 'targeted'
    assert stored['MSCU6639870'][0]['recommended_action'] == 'release'

    # the same decision delivered again (e.g. after a restart) is stored once
    republisher = test.create_publisher(RiskDecision, '/decisions', DECISIONS_QOS)
    republisher.publish(decisions[0])
    assert harness.spin_until(lambda: bridge.delivery.stats.duplicates == 1, 5.0)
    assert database.count_decisions() == 5
    database.dispose()
    assert fusion.decisions_published == 5


def test_override_declaration_service_and_feedback(harness, tmp_path, smoke_history):
    from customs_interfaces.msg import Evidence, InspectionResult, RiskDecision
    from customs_interfaces.srv import OverrideDecision, RecordInspection
    from customs_lab.clearance.database import ClearanceDatabase, sqlite_url
    from customs_lab.clearance.records import DeclarationRecord
    from customs_lab.common.node_support import DECISIONS_QOS, reliable
    from customs_lab.fusion.declaration_prior import DeclarationPrior
    from customs_lab.fusion.prior_training import save_model
    from customs_lab.simulation.history import training_records

    model = DeclarationPrior(inspection_sensitivity=0.9).fit(training_records(smoke_history))
    save_model(model, tmp_path / 'declaration_prior.json')
    url = sqlite_url(tmp_path / 'clearance.db')
    database = ClearanceDatabase(url)
    database.migrate()
    past = next(h for h in smoke_history if h.subject_kind == 'container' and h.hs_code)
    database.store_declaration(DeclarationRecord(  # known to the database, not on the topic
        declaration_id='IMP-77', subject_kind='container', subject_id='CSQU3054383', zone='',
        declarant_id=past.declarant_id, consignee_id=past.consignee_id,
        origin_country=past.origin_country, gross_mass=past.gross_mass, expected_arrival=0.0,
        filed_at=0.0, items=({'hs_code': past.hs_code, 'description': past.description,
                              'quantity': past.quantity, 'net_mass': past.net_mass,
                              'value': past.declared_value, 'currency': past.currency},)))
    fusion = fusion_node(harness, tmp_path)
    active_clearance_bridge(harness, url, tmp_path)
    test = harness.node('officer_terminal')
    publisher = test.create_publisher(Evidence, '/evidence', reliable(100))
    decisions = []
    test.create_subscription(RiskDecision, '/decisions', decisions.append, DECISIONS_QOS)
    override = test.create_client(OverrideDecision, '/risk_fusion/override')
    record = test.create_client(RecordInspection, '/clearance/record_inspection')
    assert harness.spin_until(
        lambda: publisher.get_subscription_count() >= 1 and override.service_is_ready()
        and record.service_is_ready() and fusion.declaration_client.service_is_ready(), 10.0)

    # evidence for a subject fusion has no declaration for: it asks the bridge, then re-decides
    publisher.publish(evidence('CSQU3054383', -1.0))
    assert harness.spin_until(
        lambda: any('prior: declaration prior' in d.explanation for d in decisions), 10.0)
    informed = decisions[-1]
    assert informed.prior_risk == pytest.approx(model.log_odds(past.features()).probability)

    # an officer overrides: a new decision at once, naming the officer and the reason
    reply = harness.call(override, OverrideDecision.Request(
        subject=informed.subject, action='physical_inspection', officer_id='officer-17',
        reason='tip-off from the shipping line'))
    assert reply.accepted, reply.message
    assert harness.spin_until(lambda: decisions[-1].recommended_action == 'physical_inspection',
                              5.0)
    assert 'officer override by officer-17: physical_inspection (tip-off from the shipping ' \
        'line)' in decisions[-1].explanation
    bad = harness.call(override, OverrideDecision.Request(
        subject=informed.subject, action='shrug', officer_id='officer-17', reason='x'))
    assert not bad.accepted and 'unknown action' in bad.message
    # late evidence re-decides the subject: the officer's action stays
    count = len(decisions)
    publisher.publish(evidence('CSQU3054383', -2.0, after=1.0))
    assert harness.spin_until(lambda: len(decisions) > count, 5.0)
    assert decisions[-1].recommended_action == 'physical_inspection'
    # withdrawn (an empty action), the policy decides again
    reply = harness.call(override, OverrideDecision.Request(
        subject=informed.subject, action='', officer_id='officer-17', reason='tip-off was wrong'))
    assert reply.accepted, reply.message
    assert harness.spin_until(lambda: decisions[-1].recommended_action != 'physical_inspection',
                              5.0)
    again = harness.call(override, OverrideDecision.Request(
        subject=informed.subject, action='', officer_id='officer-17', reason='twice'))
    assert not again.accepted and 'no override to withdraw' in again.message
    unread = copy.deepcopy(informed.subject)
    unread.id, unread.id_valid = '', False  # would name every container the reader missed
    refused = harness.call(override, OverrideDecision.Request(
        subject=unread, action='release', officer_id='officer-17', reason='x'))
    assert not refused.accepted and 'valid subject id' in refused.message
    harness.call(override, OverrideDecision.Request(
        subject=informed.subject, action='physical_inspection', officer_id='officer-17',
        reason='tip-off from the shipping line'))
    assert harness.spin_until(lambda: decisions[-1].recommended_action == 'physical_inspection',
                              5.0)

    # the officer records a seizure: fusion learns, the model version changes
    before = fusion.engine.version
    result = InspectionResult(
        subject=informed.subject, declaration_id='IMP-77', decision_id=decisions[-1].decision_id,
        officer_id='officer-17', action='physical_inspection', selection='targeted',
        outcome='seizure', categories=['narcotics'], findings='cocaine in the door panels')
    assert harness.call(record, RecordInspection.Request(result=result)).accepted
    assert harness.spin_until(lambda: fusion.learned == 1, 10.0)
    assert fusion.engine.version != before
    assert database.inspections_for('container:CSQU3054383')[0].selection == 'targeted'
    database.dispose()


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


def test_the_fusion_node_takes_the_evidence_calibration_from_the_model_file(
        harness, tmp_path, smoke_history):
    from customs_lab.fusion.calibration import EvidenceCalibrator
    from customs_lab.fusion.declaration_prior import DeclarationPrior
    from customs_lab.fusion.prior_training import save_model
    from customs_lab.simulation.history import training_records

    model = DeclarationPrior(inspection_sensitivity=0.9).fit(training_records(smoke_history))
    calibrator = EvidenceCalibrator()
    for n in range(40):
        calibrator.update(calibrator.features(-4.0, [(1.0, 150.0, 'radiation.gamma')]), n < 2)
    save_model(model, tmp_path / 'declaration_prior.json', calibration=(calibrator, [38, 2]))
    fusion = fusion_node(harness, tmp_path, calibration_min_labels=20)
    assert fusion.engine.calibrated and fusion.engine.labels == [38, 2]
    assert fusion.engine.components()['calibration'] == calibrator.version
    # a calibration fitted for another cap is not used; the prior still is
    save_model(model, tmp_path / 'other' / 'declaration_prior.json',
               calibration=(EvidenceCalibrator(cap=5.0), [0, 0]))
    other = fusion_node(harness, tmp_path / 'other')
    assert other.engine.prior is not None and not other.engine.calibrated
    assert 'evidence calibration not used' in other.model_problem
