"""The X-ray inspection node over DDS: scans in, Evidence and annotated images out, bad input.

A declared clothes parcel hiding a handgun and an undeclared, unread one go in as the driver
publishes them; a malformed scan and an unreadable declaration are refused and counted.
"""

import math

import numpy as np
import pytest

pytestmark = pytest.mark.ros

SERIAL = 403  # a scanner unit no fit or benchmark used


def scan_message(waybill, hidden, seed, uri=''):
    """Return the XrayScan message of a clothes parcel with `hidden` items, as the driver's."""
    from customs_lab.simulation import xray_dataset
    from customs_lab.simulation.parcel_scene import build_scene
    from customs_lab.xray.scan_messages import scan_to_msg

    physics = xray_dataset.physics_for(SERIAL)
    scene = build_scene(waybill, (0.4, 0.3, 0.15), [('clothing', 0.8)], hidden,
                        np.random.default_rng(seed), clutter=0.2)
    rng = np.random.default_rng([seed, 3])
    dark, air = xray_dataset.measure_references(physics, rng)
    low, high, back = physics.render(scene, rng, 25, 25)
    scan = xray_dataset.make_scan(physics, low, high, back, dark, air, waybill)
    scan.device_id, scan.first_seq, scan.start_time = 'xray/t', 1000 * seed, 100.0 + seed
    return scan_to_msg(scan, 'xray/t', 'xray_t', uri)


def declaration(waybill, net, gross):
    from customs_interfaces.msg import Declaration, DeclaredItem
    from customs_lab.common.node_support import subject_to_msg
    from customs_lab.common.subjects import Subject, SubjectKind

    return Declaration(declaration_id=f'D-{waybill}',
                       subject=subject_to_msg(Subject(SubjectKind.PARCEL, waybill)),
                       gross_mass=gross,
                       items=[DeclaredItem(hs_code='620342', description='clothing',
                                           quantity=4, net_mass=net, value=40.0,
                                           currency='USD')])


def test_scans_become_evidence_with_regions_and_an_annotated_image(harness):
    from diagnostic_msgs.msg import DiagnosticArray
    from sensor_msgs.msg import Image

    from customs_interfaces.msg import Declaration, Evidence, XrayScan
    from customs_lab.common.node_support import DECLARATIONS_TOPIC, LATCHED_ALL
    from customs_lab.simulation.scenario import TrueItem
    from customs_lab.xray.xray_inspection_node import XrayInspection

    listener = harness.node('listener')
    declarations = listener.create_publisher(Declaration, DECLARATIONS_TOPIC, LATCHED_ALL)
    declarations.publish(declaration('RR000001010KR', 0.8, 1.2))
    bad = declaration('RR000001023KR', float('nan'), 1.0)
    declarations.publish(bad)
    node = harness.add(XrayInspection(context=harness.context, namespace='/xray/t'))
    evidence, images, diagnostics = [], [], []
    listener.create_subscription(Evidence, '/evidence', evidence.append, 10)
    listener.create_subscription(Image, '/xray/t/image_annotated', images.append, 10)
    listener.create_subscription(DiagnosticArray, '/diagnostics', diagnostics.append, 10)
    scans = listener.create_publisher(XrayScan, '/xray/t/scan', 10)
    assert harness.spin_until(lambda: node.stats['declarations'] == 1
                              and node.stats['bad_declarations'] == 1, 10)
    assert harness.spin_until(lambda: node.count_subscribers('/evidence') >= 0
                              and scans.get_subscription_count() == 1, 10)

    armed = scan_message('RR000001010KR', [TrueItem('weapon', 'handgun', True, mass=0.8)], 41,
                         'file:///data/xray/RR000001010KR.dcs')
    scans.publish(armed)
    assert harness.spin_until(lambda: len(evidence) == 3 and len(images) == 1, 30)
    kinds = {e.kind: e for e in evidence}
    assert set(kinds) == {Evidence.KIND_XRAY_THREAT, Evidence.KIND_XRAY_MATERIAL,
                          Evidence.KIND_XRAY_MANIFEST}
    threat = kinds[Evidence.KIND_XRAY_THREAT]
    assert threat.subject.id == 'RR000001010KR' and threat.subject.id_valid
    assert threat.log_likelihood_ratio > 2.0 and 'weapon' in threat.explanation
    assert threat.sensor_id == 'xray/t' and threat.source_node == '/xray/t/xray_inspection'
    assert threat.raw_data_uri == 'file:///data/xray/RR000001010KR.dcs'
    assert threat.header.frame_id == 'xray_t' and threat.header.stamp == armed.header.stamp
    region = threat.image_region
    assert region.width > 0 and region.height > 0
    assert region.x_offset + region.width <= armed.low.width
    assert region.y_offset + region.height <= armed.low.height
    assert all(math.isfinite(e.log_likelihood_ratio) and e.log_likelihood_ratio_std >= 0
               for e in evidence)
    assert len({bytes(e.evidence_id.uuid) for e in evidence}) == 3
    image = images[0]
    assert (image.encoding, image.height, image.width) == ('rgb8', armed.low.height,
                                                           armed.low.width)
    pixels = np.frombuffer(bytes(image.data), np.uint8).reshape(image.height, image.width, 3)
    assert tuple(pixels[region.y_offset, region.x_offset]) == (255, 0, 0)

    # an unread, undeclared parcel: threat and material only, said so
    unread = scan_message('', [], 42)
    scans.publish(unread)
    assert harness.spin_until(lambda: len(evidence) == 5, 30)
    assert {e.kind for e in evidence[3:]} == {Evidence.KIND_XRAY_THREAT,
                                             Evidence.KIND_XRAY_MATERIAL}
    assert all(not e.subject.id_valid for e in evidence[3:])
    assert sum(e.log_likelihood_ratio for e in evidence[3:]) < threat.log_likelihood_ratio

    # a malformed scan is refused and counted; the node goes on
    broken = scan_message('RR000001037KR', [], 43)
    broken.high.encoding = 'mono8'
    scans.publish(broken)
    assert harness.spin_until(lambda: node.stats['refused'] == 1, 10)
    assert 'mono16' in node.last_error and len(evidence) == 5
    assert harness.spin_until(lambda: any(
        s.name == 'xray_inspection: xray/t' and s.level == b'\x01' and 'refused' in s.message
        for m in diagnostics[-2:] for s in m.status), 5)
    assert node.stats['scans'] == 2 and node.stats['unread'] == 1


def test_a_bad_parameter_is_refused_at_start(harness):
    from rclpy.parameter import Parameter

    from customs_lab.xray.xray_inspection_node import XrayInspection

    with pytest.raises(ValueError, match='powder_model'):
        XrayInspection(context=harness.context, parameter_overrides=[
            Parameter('powder_model', value='backscatter-only')])
    with pytest.raises(ValueError, match='no such file'):
        XrayInspection(context=harness.context, parameter_overrides=[
            Parameter('evidence_model', value='/nonexistent/model.json')])
