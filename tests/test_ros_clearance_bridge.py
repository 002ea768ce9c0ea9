"""The clearance bridge over real DDS: its services, inspection results, a SIGKILL mid-stream."""

import os
import signal
import subprocess
import sys
import time
import uuid

import pytest
from ros_support import active_clearance_bridge

pytestmark = pytest.mark.ros


def call(harness, client, request, timeout=10.0):
    return harness.call(client, request, timeout)


def container(subject_id):
    from customs_interfaces.msg import SubjectRef

    return SubjectRef(kind=SubjectRef.KIND_CONTAINER, id=subject_id, id_valid=True)


def test_declarations_served_and_inspection_results_recorded(harness, tmp_path):
    from customs_interfaces.msg import Declaration, DeclaredItem, InspectionResult
    from customs_interfaces.srv import GetDeclaration, RecordInspection
    from customs_lab.clearance.database import ClearanceDatabase, sqlite_url
    from customs_lab.common.node_support import INSPECTION_RESULTS_QOS, LATCHED_ALL

    url = sqlite_url(tmp_path / 'clearance.db')
    bridge = active_clearance_bridge(harness, url, tmp_path)
    test = harness.node('officer_terminal')
    results = []
    test.create_subscription(
        InspectionResult, '/clearance/inspection_results', results.append, INSPECTION_RESULTS_QOS
    )
    declarations = test.create_publisher(Declaration, '/clearance/declarations', LATCHED_ALL)
    declaration = Declaration(
        declaration_id='IMP-0007-C00001',
        subject=container('CSQU3054383'),
        declarant_id='TRD123',
        consignee_id='CNS456',
        origin_country='CN',
        gross_mass=23750.0,
        items=[DeclaredItem(hs_code='310420', description='potassium chloride fertiliser',
                            quantity=400, net_mass=20000.0, value=52000.0, currency='USD')],
    )
    declarations.publish(declaration)
    get = test.create_client(GetDeclaration, '/clearance/get_declaration')
    record = test.create_client(RecordInspection, '/clearance/record_inspection')

    database = ClearanceDatabase(url)
    assert harness.spin_until(lambda: bridge.delivery.stats.stored.get('declaration'), 10.0)
    answer = call(harness, get, GetDeclaration.Request(subject=container('CSQU3054383')))
    assert answer.found and answer.message == 'database'
    assert answer.declaration.consignee_id == 'CNS456'
    assert answer.declaration.items[0].net_mass == 20000.0
    unknown = call(harness, get, GetDeclaration.Request(subject=container('MSCU6639870')))
    assert not unknown.found and 'no declaration for container:MSCU6639870' in unknown.message

    bad = InspectionResult(subject=container('CSQU3054383'), officer_id='officer-17',
                           action='physical_inspection', outcome='probably fine')
    refused = call(harness, record, RecordInspection.Request(result=bad))
    assert not refused.accepted and 'outcome must be one of' in refused.message

    good = InspectionResult(subject=container('CSQU3054383'), officer_id='officer-17',
                            declaration_id='IMP-0007-C00001', action='physical_inspection',
                            outcome=InspectionResult.OUTCOME_SEIZURE,
                            categories=['radioactive_source'], findings='Cs-137 behind pallets')
    good.header.stamp.sec = 400
    accepted = call(harness, record, RecordInspection.Request(result=good))
    assert accepted.accepted
    result_id = uuid.UUID(bytes=bytes(bytearray(accepted.result_id.uuid)))
    assert harness.spin_until(lambda: results, 10.0)  # published once stored
    assert results[0].outcome == 'seizure' and list(results[0].categories) == [
        'radioactive_source'
    ]
    stored = database.inspections_for('container:CSQU3054383')
    assert [r.result_id for r in stored] == [str(result_id)]
    assert stored[0].inspected_at == 400.0
    assert database.verify_audit().ok
    database.dispose()


def test_bridge_killed_mid_stream_restarts_and_stores_every_decision_once(harness, tmp_path):
    from customs_interfaces.msg import RiskDecision
    from customs_lab.clearance.database import ClearanceDatabase, sqlite_url
    from customs_lab.common.node_support import DECISIONS_QOS, uuid_to_msg

    url = sqlite_url(tmp_path / 'clearance.db')
    command = [
        sys.executable, '-m', 'customs_lab.clearance.clearance_bridge_node', '--ros-args',
        '-p', f'database_url:={url}', '-p', f'data_dir:={tmp_path}',
    ]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))

    def start():
        return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)

    node = harness.node('fusion_stand_in')
    publisher = node.create_publisher(RiskDecision, '/decisions', DECISIONS_QOS)
    total, ids = 600, []

    def publish(n):
        msg = RiskDecision(decision_id=uuid_to_msg(uuid.uuid4()), subject=container(
            ['CSQU3054383', 'MSCU6639870'][n % 2]), channel=0, recommended_action='release',
            prior_risk=0.01, posterior_risk=0.01, posterior_log_odds=-4.6,
            model_version='test/1', explanation=f'decision {n}')
        msg.header.stamp.sec = n
        ids.append(str(uuid.UUID(bytes=bytes(msg.decision_id.uuid))))
        publisher.publish(msg)

    database = ClearanceDatabase(url)
    database.migrate()  # so that counting works before the bridge's first contact
    bridge = start()
    try:
        assert harness.spin_until(lambda: publisher.get_subscription_count() >= 1, 20.0)
        for n in range(total):
            publish(n)
            time.sleep(0.002)  # ~400 decisions/s; no spinning needed to publish
            if n == 250:
                harness.spin_until(lambda: database.count_decisions() > 100, 20.0)
                bridge.send_signal(signal.SIGKILL)  # mid-stream, outbox and DDS queues non-empty
                bridge.wait(timeout=10)
            if n == 400:
                bridge = start()  # transient-local history brings back what it missed
        assert harness.spin_until(lambda: database.count_decisions() >= total, 60.0)
        time.sleep(0.5)
        assert database.count_decisions() == total
        stored = database.decisions_by_subject()
        assert sorted(r['decision_id'] for rows in stored.values() for r in rows) == sorted(ids)
        assert database.verify_audit().ok
    finally:
        bridge.send_signal(signal.SIGINT)
        try:
            bridge.wait(timeout=20)
        except subprocess.TimeoutExpired:
            bridge.kill()
        database.dispose()
