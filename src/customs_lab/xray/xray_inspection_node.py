"""X-ray inspection: each parcel's scan, analysed, as Evidence with an annotated image.

Subscribes, in the device's namespace, to the driver's `scan` (customs_interfaces/XrayScan),
and to the declarations (/clearance/declarations, latched: the declared goods and masses of
every parcel, kept by waybill for `declaration_ttl` s of sim time). Each scan goes through
customs_lab.xray.inspection.Inspector: threat detection (weapons, ammunition, batteries,
powder), the powder detector with backscatter, segmentation and mass, and the comparison with
the declaration. Published:

- /evidence: one item per kind, xray.threat (constant of the parcel model + the strongest
  object threat), xray.material (powder: the detector's powder class and the backscatter
  model), xray.manifest (the material mix against the declared goods; only when the
  declaration is known). Their LLRs are the terms of one jointly fitted model
  (config/xray/parcel_evidence.json), so fusion adds them (and mixes them with the contraband
  the X-ray cannot see: `coverage_parcel` in config/fusion.yaml). Each carries the image
  region of its strongest finding (pixels x, lines y of the raw scan), the explanation and
  the raw scan's DICOS URI.
- `image_annotated` (sensor_msgs/Image rgb8, one row per scan line): the standard colour coding
  (organic orange, mixed green, metal blue, opaque black) with threat boxes in red and powder
  in magenta, for RViz and the officer.
- /diagnostics: scans inspected and refused, processing time, declarations held.

A scan that cannot be read (malformed images, bad references) is refused with an error on the
log and /diagnostics; a declaration that cannot be read is skipped (no manifest item for that
parcel). The models are parameters, read at start (a change means a restart): `detector_model`,
`evidence_model` and `dual_energy_calibration` ('' = the shipped files of config/xray; the
calibration of the scan's scanner model).
"""

from collections import OrderedDict
import math
import time
import uuid

from rclpy.node import Node
from sensor_msgs.msg import Image, RegionOfInterest
from std_msgs.msg import Header

from customs_interfaces.msg import Declaration, Evidence
from customs_interfaces.msg import XrayScan as XrayScanMsg
from customs_lab.common.node_support import (
    DECLARATIONS_TOPIC,
    EVIDENCE_TOPIC,
    LATCHED_ALL,
    Diagnostics,
    declare,
    reliable,
    run_node,
    uuid_to_msg,
)
from customs_lab.xray import manifest
from customs_lab.xray.decomposition import DualEnergyCalibration, default_calibration_path
from customs_lab.xray.inspection import (
    EvidenceModel,
    Inspector,
    annotate,
    default_detector_path,
    default_model_path,
)
from customs_lab.xray.scan_messages import image_msg, msg_to_scan
from customs_lab.xray.threats import ThreatDetector

EVIDENCE_NAMESPACE = uuid.UUID('9c4f3a52-1d0b-4e8e-a7c2-31f0d6b5e8a4')
MAX_DECLARATIONS = 200000  # declarations held at most (oldest dropped first)


def declaration_of(msg: Declaration) -> manifest.Declaration:
    """Return the manifest's view of a declaration message (ValueError if unusable)."""
    descriptions = [item.description for item in msg.items if item.description]
    net = sum(float(item.net_mass) for item in msg.items)
    if not math.isfinite(net):
        raise ValueError(f'net mass {net!r}')
    return manifest.Declaration('; '.join(descriptions), net, float(msg.gross_mass))


def region_msg(region) -> RegionOfInterest:
    """Return the RegionOfInterest of (first_line, last_line, first_pixel, last_pixel)."""
    if region is None:
        return RegionOfInterest()
    first_line, last_line, first_pixel, last_pixel = (int(v) for v in region)
    return RegionOfInterest(x_offset=first_pixel, y_offset=first_line,
                            width=last_pixel - first_pixel + 1,
                            height=last_line - first_line + 1)


class XrayInspection(Node):
    """Turn one scanner's scans into Evidence and annotated images."""

    def __init__(self, **kwargs):
        super().__init__('xray_inspection', **kwargs)
        declare(self, 'detector_model', '', 'Threat detector file (.pt); "" = the shipped '
                'config/xray/threat_detector.pt', read_only=True)
        declare(self, 'evidence_model', '', 'Parcel evidence model (JSON); "" = the shipped '
                'config/xray/parcel_evidence.json', read_only=True)
        declare(self, 'dual_energy_calibration', '', 'Dual-energy calibration (JSON); "" = '
                "the shipped one of the scan's scanner model", read_only=True)
        declare(self, 'powder_model', 'fused', "Powder detector: 'fused' (transmission and "
                "backscatter) or 'transmission'", read_only=True)
        declare(self, 'declaration_ttl', 7 * 86400.0, 'How long a declaration is kept for '
                'its parcel, s', minimum=1.0, maximum=365 * 86400.0)
        declare(self, 'publish_annotated', True, 'Publish image_annotated')
        get = self.get_parameter
        if get('powder_model').value not in ('fused', 'transmission'):
            raise ValueError(f"powder_model must be 'fused' or 'transmission', got "
                             f"{get('powder_model').value!r}")
        detector = ThreatDetector.load(get('detector_model').value or default_detector_path(),
                                       threads=1)
        model = EvidenceModel.load(get('evidence_model').value or default_model_path())
        self._calibration_path = get('dual_energy_calibration').value
        self._inspectors = {}  # scanner model -> Inspector (they share detector and model)
        self._detector, self._model = detector, model
        self._declarations = OrderedDict()  # waybill -> (Declaration, sim s received)
        self.stats = {'scans': 0, 'refused': 0, 'unread': 0, 'undeclared': 0,
                      'declarations': 0, 'bad_declarations': 0, 'seconds': 0.0,
                      'max_seconds': 0.0}
        self.last_error, self.sensor_id = '', ''
        self.evidence_pub = self.create_publisher(Evidence, EVIDENCE_TOPIC, reliable(100))
        self.image_pub = self.create_publisher(Image, 'image_annotated', reliable(2))
        self.create_subscription(Declaration, DECLARATIONS_TOPIC, self.on_declaration,
                                 LATCHED_ALL)
        # a burst of scans (a belt restarting) waits here rather than being dropped: ~0.5 MB each
        self.create_subscription(XrayScanMsg, 'scan', self.on_scan, reliable(50))
        self.diagnostics = Diagnostics(self)
        self.create_timer(1.0, self._report)
        self.get_logger().info(
            f"threat detector of {', '.join(detector.classes)}; evidence model fitted on "
            f"{model.meta.get('parcels', '?')} parcels; waiting for scans")

    def inspector(self, scanner_model: str) -> Inspector:
        """Return the Inspector of a scanner model (its dual-energy calibration)."""
        if scanner_model not in self._inspectors:
            path = self._calibration_path or default_calibration_path(scanner_model)
            calibration = DualEnergyCalibration.load(path)
            self._inspectors[scanner_model] = Inspector(
                calibration, self._detector, self._model,
                self.get_parameter('powder_model').value)
        return self._inspectors[scanner_model]

    def on_declaration(self, msg: Declaration):
        """Keep a parcel's declaration for the comparison with its scan."""
        if not msg.subject.id:
            return
        try:
            declaration = declaration_of(msg)
        except ValueError as error:
            self.stats['bad_declarations'] += 1
            self.get_logger().warning(f'declaration {msg.declaration_id!r} of '
                                      f'{msg.subject.id}: not used ({error})')
            return
        self._declarations[msg.subject.id] = (declaration, self._now())
        self._declarations.move_to_end(msg.subject.id)
        self.stats['declarations'] += 1
        ttl = self.get_parameter('declaration_ttl').value
        while self._declarations and (
                len(self._declarations) > MAX_DECLARATIONS
                or self._now() - next(iter(self._declarations.values()))[1] > ttl):
            self._declarations.popitem(last=False)

    def on_scan(self, msg: XrayScanMsg):
        """Inspect a scan; publish its evidence and annotated image."""
        self.sensor_id = msg.sensor_id
        started = time.perf_counter()
        try:
            scan = msg_to_scan(msg)
            for name in ('line_period', 'belt_speed', 'pixel_pitch'):
                value = getattr(scan, name)
                if not (math.isfinite(value) and value > 0):
                    raise ValueError(f'{name} {value!r} is not a positive number')
            inspector = self.inspector(scan.model)
            declared = self._declarations.get(msg.subject.id) if msg.subject.id else None
            inspection = inspector.inspect(scan, declared[0] if declared else None)
        except (ValueError, OSError) as error:
            self.stats['refused'] += 1
            self.last_error = f'scan of {msg.subject.id or "(unread)"}: {error}'
            self.get_logger().error(f'{self.last_error}: not inspected')
            return
        self.stats['unread'] += not msg.subject.id
        self.stats['undeclared'] += bool(msg.subject.id) and declared is None
        header = Header(stamp=msg.header.stamp, frame_id=msg.header.frame_id)
        scan_key = bytes(bytearray(msg.scan_id.uuid)).hex()
        # xray.threat last: fusion decides once the kinds it expects are in (config/fusion.yaml),
        # and by then the scan's other items are in too
        for finding in sorted(inspection.findings, key=lambda f: f.kind == 'xray.threat'):
            text = finding.explanation
            if finding.kind == 'xray.threat' and msg.subject.id and declared is None:
                text += '; declaration not known (no manifest check)'
            if msg.missing_lines or msg.truncated:
                text += (f'; scan incomplete ({msg.missing_lines} lines lost'
                         + (', cut at the longest parcel' if msg.truncated else '') + ')')
            self.evidence_pub.publish(Evidence(
                header=header,
                evidence_id=uuid_to_msg(uuid.uuid5(EVIDENCE_NAMESPACE,
                                                   f'{scan_key}/{finding.kind}')),
                subject=msg.subject, sensor_id=msg.sensor_id,
                source_node=self.get_fully_qualified_name(), kind=finding.kind,
                log_likelihood_ratio=finding.llr, log_likelihood_ratio_std=finding.llr_std,
                explanation=text, raw_data_uri=msg.raw_data_uri,
                image_region=region_msg(finding.region)))
        if self.get_parameter('publish_annotated').value:
            self.image_pub.publish(image_msg(annotate(inspection), msg.header.stamp,
                                             msg.header.frame_id))
        elapsed = time.perf_counter() - started
        self.stats['scans'] += 1
        self.stats['seconds'] += elapsed
        self.stats['max_seconds'] = max(self.stats['max_seconds'], elapsed)
        self.get_logger().info(
            f'{msg.subject.id or "(unread)"}: LLR {inspection.llr:+.2f} ('
            + ', '.join(f'{f.kind} {f.llr:+.2f}' for f in inspection.findings)
            + f') in {elapsed * 1000:.0f} ms')

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _report(self):
        stats = self.stats
        level, message = Diagnostics.OK, f'{stats["scans"]} scans inspected'
        if not stats['scans'] and not stats['refused']:
            level, message = Diagnostics.OK, 'waiting for scans'
        if stats['refused']:
            level = Diagnostics.WARN
            message += f'; {stats["refused"]} refused (last: {self.last_error})'
        mean = stats['seconds'] / stats['scans'] if stats['scans'] else 0.0
        self.diagnostics.update(
            f'xray_inspection: {self.sensor_id or self.get_namespace()}', self.sensor_id,
            level, message,
            {'scans': stats['scans'], 'refused': stats['refused'],
             'unread_waybills': stats['unread'], 'without_declaration': stats['undeclared'],
             'declarations_held': len(self._declarations),
             'declarations_refused': stats['bad_declarations'],
             'mean_ms': round(mean * 1000, 1), 'max_ms': round(stats['max_seconds'] * 1000, 1)})


def main(args=None):
    """Run the X-ray inspection node."""
    return run_node(XrayInspection, args)


if __name__ == '__main__':
    raise SystemExit(main())
