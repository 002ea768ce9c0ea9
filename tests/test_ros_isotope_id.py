"""The isotope_id node on simulated container passages: evidence and identifications as data."""

import pytest
from test_offline_site import container
from test_spectral_passage import lane_spectra_stream, source

pytestmark = pytest.mark.ros


def spectra(subjects, warmup=90.0):
    """Yield GammaSpectrum messages of the container lane's NaI logs, as the driver publishes."""
    from builtin_interfaces.msg import Time

    from customs_interfaces.msg import GammaSpectrum
    from customs_lab.common.node_support import subject_to_msg
    from customs_lab.common.subjects import Subject, SubjectKind

    stream = lane_spectra_stream(subjects, warmup=warmup)
    for seq, (spec, t, name, counts, occupied, subject) in enumerate(stream, start=1):
        detector = next(d for d in spec.spectrometers if d.id == name)
        msg = GammaSpectrum(sensor_id=spec.hardware_id, detector_id=name, sequence=seq,
                            live_time=spec.spectrum_period, real_time=spec.spectrum_period,
                            energy_calibration=[0.0, detector.max_kev / detector.channels],
                            gain=1.0, temperature=20.0, counts=[int(c) for c in counts],
                            occupied=occupied)
        msg.header.stamp = Time(sec=int(t), nanosec=round((t % 1) * 1e9) % 10**9)
        msg.header.frame_id = spec.frame_id
        if subject:
            msg.subject = subject_to_msg(Subject(SubjectKind.CONTAINER, subject))
        yield msg


def test_a_shielded_cs137_is_identified_and_published_as_evidence_and_data(harness):
    from customs_interfaces.msg import Evidence, IsotopeIdentification
    from customs_lab.common.node_support import IDENTIFICATIONS_TOPIC
    from customs_lab.radiation.isotope_id_node import IsotopeId

    node = harness.add(IsotopeId(context=harness.context))
    listener = harness.node('listener')
    evidence, found = [], []
    listener.create_subscription(Evidence, '/evidence', evidence.append, 10)
    listener.create_subscription(IsotopeIdentification, IDENTIFICATIONS_TOPIC, found.append, 10)
    subjects = [container(3001, 0.0), container(3002, 45.0, source('Cs-137', 1e8, lead=0.02))]
    for msg in spectra(subjects):
        node.on_spectrum(msg)
    assert harness.spin_until(lambda: len(found) == 2 and len(evidence) == 2, 10)
    clean, hot = found
    assert clean.nuclides == [] and clean.log_likelihood_ratio < 0
    assert hot.nuclides == ['Cs-137'] and hot.categories == ['industrial']
    assert hot.confidences[0] > 0.99 and hot.counts[0] > 0 and hot.live_time > 0
    assert hot.log_likelihood_ratio > 5.0 and 'Cs-137' in hot.explanation
    assert hot.subject.id == evidence[1].subject.id and hot.subject.id == subjects[1].subject.id
    assert bytes(hot.evidence_id.uuid) == bytes(evidence[1].evidence_id.uuid)
    assert evidence[1].kind == Evidence.KIND_RADIATION_ISOTOPE
    # a spectrum of another channel count is refused, counted, and does not stop the node
    bad = next(spectra([], warmup=1.0))
    bad.counts = bad.counts[:512]
    node.on_spectrum(bad)
    assert node.portal.stats['rejected'] == 1


def test_the_parameters_are_read_only_since_the_templates_depend_on_them(harness):
    from rclpy.parameter import Parameter

    from customs_lab.radiation.isotope_id_node import IsotopeId

    node = harness.add(IsotopeId(context=harness.context))
    result = node.set_parameters([Parameter('spectral.min_deviance', value=9.0)])[0]
    assert not result.successful and node.portal.parameters.min_deviance == 25.0
