"""Isotope identification: each passage's spectra, named nuclides, published as Evidence.

Subscribes to the driver's `spectrum` (customs_interfaces/GammaSpectrum, every spectrum of
every spectrometer of the device, reliable). Empty-lane spectra teach each detector's
background and gain; the spectra of a passage are summed on the calibrated energy axis and
identified (`customs_lab.radiation.spectral_passage`). The result goes to /evidence with kind
radiation.isotope: the nuclides, their category (NORM / medical / industrial / SNM),
confidence and shielding in the explanation, and the Bayes factor of "a threat nuclide is
present" as the log-likelihood ratio; and, as data, to /radiation/identifications
(IsotopeIdentification, the same evidence id). One diagnostic status per spectrometer: background
learned, gain, spectra refused.

The detector model (crystal size, channels, energy range, resolution) is a parameter: every
spectrometer of the device must match it (a spectrum with another channel count is refused).
The parameters are read at start-up and are read-only: the templates and the backgrounds
learned depend on them, so a change means a restart.
"""

from dataclasses import fields
import math
import uuid

from rclpy.node import Node
from std_msgs.msg import Header

from customs_interfaces.msg import Evidence, GammaSpectrum, IsotopeIdentification
from customs_lab.common.node_support import (
    EVIDENCE_TOPIC,
    IDENTIFICATIONS_TOPIC,
    Diagnostics,
    declare,
    portal_evidence,
    reliable,
    run_node,
    time_msg_to_seconds,
)
from customs_lab.radiation.spectral_passage import SpectralParameters, SpectralPortal
from customs_lab.radiation.spectrometer import Spectrometer

EVIDENCE_NAMESPACE = uuid.UUID('5b0e8c77-2f9b-4d0c-9a51-6c1d1d2c7a10')
GAIN_WARNING = 0.03  # a gain this far from 1 is reported: recalibrate the detector


class IsotopeId(Node):
    """Identify the nuclides of each passage of one device."""

    def __init__(self, **kwargs):
        super().__init__('isotope_id', **kwargs)
        model, defaults = Spectrometer(), SpectralParameters()
        for name, description, low, high in (
            ('crystal_width', 'Crystal face width, m', 0.01, 2.0),
            ('crystal_height', 'Crystal face height, m', 0.01, 2.0),
            ('crystal_depth', 'Crystal depth, m', 0.01, 1.0),
            ('max_kev', 'Upper edge of the last channel at gain 1, keV', 100.0, 20000.0),
            ('resolution_662', 'FWHM / E at 662 keV', 0.005, 0.5),
        ):
            field_name = name.removeprefix('crystal_')
            declare(self, name, float(getattr(model, field_name)), description,
                    minimum=low, maximum=high, read_only=True)
        declare(self, 'channels', model.channels, 'Channels per spectrum', minimum=16,
                maximum=16384, read_only=True)
        for name, description, low, high in (
            ('time_constant', 'Memory of the background, s of live time', 1.0, 86400.0),
            ('min_live_time', 'Empty-lane live time before identification, s', 0.0, 3600.0),
            ('holdoff', 'Time after a passage before the empty lane teaches again, s', 0.0,
             600.0),
            ('gate_sigma', 'Empty-lane spectra above background by this many sigma are not '
             'learned', 1.0, 1000.0),
            ('min_deviance', 'Reporting threshold of a nuclide (2 ln likelihood ratio)', 1.0,
             1000.0),
            ('threat_rate_min', 'Weakest threat H1 considers, cps', 1e-3, 1e6),
            ('threat_rate_max', 'Strongest threat H1 considers, cps', 1.0, 1e9),
            ('prior_time', "Weight of the detector model's background shape in each "
             'background, s', 0.0, 3600.0),
        ):
            declare(self, f'spectral.{name}', float(getattr(defaults, name)), description,
                    minimum=low, maximum=high, read_only=True)
        declare(self, 'spectral.gain_every', defaults.gain_every,
                'Learned spectra between two gain estimates', minimum=1, maximum=100000,
                read_only=True)
        get = self.get_parameter
        self.spectrometer = Spectrometer(
            width=get('crystal_width').value, height=get('crystal_height').value,
            depth=get('crystal_depth').value, channels=get('channels').value,
            max_kev=get('max_kev').value, resolution_662=get('resolution_662').value)
        parameters = SpectralParameters(**{
            f.name: get(f'spectral.{f.name}').value for f in fields(SpectralParameters)})
        self.portal = SpectralPortal(self.spectrometer, parameters)
        self.sensor_id, self.frame_id, self.subject = '', '', None
        self.evidence_pub = self.create_publisher(Evidence, EVIDENCE_TOPIC, reliable(100))
        self.identification_pub = self.create_publisher(
            IsotopeIdentification, IDENTIFICATIONS_TOPIC, reliable(50))
        self.create_subscription(GammaSpectrum, 'spectrum', self.on_spectrum, reliable(100))
        self.diagnostics = Diagnostics(self)
        self.create_timer(1.0, self._report)

    def on_spectrum(self, msg: GammaSpectrum):
        """Feed a spectrum; on a completed passage, publish its evidence."""
        self.sensor_id, self.frame_id = msg.sensor_id, msg.header.frame_id
        if msg.occupied and msg.subject.id:
            self.subject = msg.subject
        calibration = list(msg.energy_calibration)
        expected = [0.0, self.spectrometer.max_kev / self.spectrometer.channels]
        if len(calibration) >= 2 and not all(
                math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9)
                for a, b in zip(calibration[:2], expected, strict=True)):
            self.portal.stats['rejected'] += 1
            self.portal.last_rejection = (f'{msg.detector_id}: calibration {calibration} is not '
                                          f"the model's {expected}")
            self.get_logger().error(self.portal.last_rejection, throttle_duration_sec=10.0)
            return
        try:
            verdict = self.portal.feed(
                time_msg_to_seconds(msg.header.stamp), msg.sequence, msg.detector_id,
                msg.counts, msg.live_time, msg.occupied, msg.subject.id)
        except ValueError as error:
            self.get_logger().error(f'spectrum not used: {error}', throttle_duration_sec=10.0)
            return
        if verdict is not None:
            self._publish(verdict, msg)

    def _publish(self, verdict, msg):
        if not verdict.ready:
            self.get_logger().warning(f'{verdict.subject_id or "(unread)"}: {verdict.explanation}')
            return
        key = f'{self.sensor_id}/spectra/{verdict.first_seq}-{verdict.last_seq}'
        header = Header(stamp=msg.header.stamp, frame_id=self.frame_id)
        evidence = portal_evidence(
            self, Evidence.KIND_RADIATION_ISOTOPE, self.sensor_id,
            uuid.uuid5(EVIDENCE_NAMESPACE, key), verdict, f'{self.sensor_id}/spectra',
            f'rpm://{key}', header, self.subject if verdict.subject_id else None)
        self.subject = None
        self.evidence_pub.publish(evidence)
        self.identification_pub.publish(identification_msg(evidence, verdict))
        self.get_logger().info(f'{verdict.subject_id or "(unread)"}: {evidence.explanation}')

    def _report(self):
        stats = self.portal.stats
        if not self.portal.backgrounds:
            self.diagnostics.update(
                f'isotope_id: {self.sensor_id or self.get_namespace()}', self.sensor_id,
                Diagnostics.ERROR if stats['rejected'] else Diagnostics.WARN,
                f'{stats["rejected"]} spectra refused ({self.portal.last_rejection})'
                if stats['rejected'] else 'no spectra yet')
            return
        for detector, background in sorted(self.portal.backgrounds.items()):
            level, message = Diagnostics.OK, 'background learned'
            if not background.ready:
                level, message = Diagnostics.WARN, 'learning background'
            if abs(background.gain - 1.0) > GAIN_WARNING:
                level = Diagnostics.WARN
                message += f'; gain {background.gain:.3f}: recalibrate or adjust its HV'
            if stats['rejected']:
                level = Diagnostics.WARN
                message += f'; {stats["rejected"]} spectra refused ({self.portal.last_rejection})'
            self.diagnostics.update(
                f'isotope_id: {self.sensor_id}/{detector}', f'{self.sensor_id}/{detector}',
                level, message,
                {'gain': round(background.gain, 4),
                 'background_cps': round(float(background.rate().sum()), 1),
                 'background_live_time': round(background.learned_live_time, 1),
                 'gated_spectra': background.gated, 'passages': stats['passages'],
                 'spectra': stats['spectra']})


def identification_msg(evidence: Evidence, verdict) -> IsotopeIdentification:
    """Return a passage's identification as data, beside the evidence that weighs it."""
    found = verdict.identification.identified if verdict.identification else ()
    return IsotopeIdentification(
        header=evidence.header, sensor_id=evidence.sensor_id, subject=evidence.subject,
        evidence_id=evidence.evidence_id, nuclides=[i.nuclide for i in found],
        categories=[i.category for i in found], confidences=[float(i.confidence) for i in found],
        counts=[float(i.counts) for i in found], shieldings=[i.shielding for i in found],
        live_time=float(verdict.live_time),
        log_likelihood_ratio=float(evidence.log_likelihood_ratio),
        explanation=evidence.explanation)


def main(args=None):
    """Run the isotope identification node."""
    return run_node(IsotopeId, args)


if __name__ == '__main__':
    raise SystemExit(main())
