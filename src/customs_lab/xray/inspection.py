"""One parcel's scan in, its evidence out: threats, powder and the declaration, as LLRs.

Core module (numpy / torch, no ROS). `Inspector.inspect(scan, declaration)` runs, on an
XrayScan: the dual-energy decomposition (decomposition.py, for the colour image), the threat
detector (threats.py), the powder detector with backscatter (backscatter.py, the fused model),
the segmentation (segmentation.py) and, when the declaration is known, the comparison of the
scan with it (manifest.py). It returns an Inspection: those results, the parcel's features,
and one Finding per evidence kind, each with its log-likelihood ratio, image region and
explanation.

Features of a parcel (FEATURES):
  threat       logit of the highest calibrated score among weapon, ammunition and battery
               detections; logit(min_score) when there is none (the detector's floor)
  powder       the same for the detector's powder class
  backscatter  the fused powder model's scan score: ln of the expected number of powder
               blocks (backscatter.grid_score)
  manifest     the manifest's mix term (material mix against the declared kind of goods), in
               nats, plus its mass term if the model was fitted with `manifest_mass`, clipped
               to +-manifest.LLR_LIMIT as the manifest's own LLR is. 0 without
               a declaration. Off by default: the scan's mass against the declared net mass
               says what the weighed gross mass against the net mass already says, and the
               risk fusion's declaration prior weighs that (fusion/declaration_prior.py).

Evidence model (EvidenceModel): one logistic regression of "the parcel hides goods" on the
four features, fitted jointly on simulated parcels (simulation/xray_evidence_set.py) so that
features that see the same thing (the detector's powder class and the backscatter model see
the same bag; a hidden weapon also shifts the material mix) are not counted twice. Its
log-odds minus the training set's prior log-odds is the parcel's LLR; it is split into one
term per evidence kind around the features' medians c over the clean training parcels:

  xray.threat   = constant + w_threat (x_threat - c_threat)
  xray.material = w_powder (x_powder - c_powder) + w_back (x_back - c_back)
  xray.manifest = w_manifest (x_manifest - c_manifest)

with constant the LLR of a parcel whose features are all at c (a typical clean parcel). The
three add up to the joint LLR, so fusion adds them as they are (no correlation group). Without
a declaration x_manifest = c_manifest and no manifest finding is made. Each term's standard
deviation is from the fit's covariance (Laplace approximation) of that linear form.

Contraband the model does not cover (a radioactive source in a small pot, which the portals
see) is fusion's business: it mixes each sensor family's evidence with the share of the site's
contraband that family cannot see (fusion/logodds.cover, `coverage_*` in config/fusion.yaml).
"""

from dataclasses import dataclass, field
import json
import math
import pathlib

import numpy as np

from customs_lab.xray import backscatter, manifest, threats
from customs_lab.xray.decomposition import DualEnergyCalibration, colour_image
from customs_lab.xray.scan import XrayScan
from customs_lab.xray.segmentation import Segmentation, segment

FEATURES = ('threat', 'powder', 'backscatter', 'manifest')
KIND_FEATURES = {  # evidence kind -> its features; the first kind carries the constant
    'xray.threat': ('threat',),
    'xray.material': ('powder', 'backscatter'),
    'xray.manifest': ('manifest',),
}
OBJECT_THREATS = ('weapon', 'ammunition', 'battery')  # threats.CLASSES but powder
FORMAT = 'customs_lab.xray_parcel_evidence'
FORMAT_VERSION = 1
LLR_LIMIT = 12.0  # nats: no term beyond this (the model saw simulated parcels only)
THREAT_COLOUR = (255, 0, 0)
POWDER_COLOUR = (255, 0, 255)


def logit(p: float) -> float:
    """Return ln(p / (1 - p)), p clipped to [1e-6, 1 - 1e-6]."""
    p = min(max(float(p), 1e-6), 1.0 - 1e-6)
    return math.log(p / (1.0 - p))


@dataclass(frozen=True)
class Finding:
    """One evidence item of a scan: kind, LLR (nats), region (inclusive indices) and text."""

    kind: str
    llr: float
    llr_std: float
    explanation: str
    region: tuple | None = None  # (first_line, last_line, first_pixel, last_pixel)


@dataclass
class Inspection:
    """Everything `Inspector.inspect` found in one scan."""

    features: dict  # FEATURES -> value
    detections: list  # threats.Detection, best first
    powder_score: float  # backscatter.grid_score
    powder_candidates: list  # backscatter.Candidate, best first
    segmentation: Segmentation
    manifest: manifest.ManifestEvidence | None
    colour: np.ndarray  # (lines, pixels, 3) uint8, the standard colour coding
    findings: list = field(default_factory=list)

    @property
    def llr(self) -> float:
        """Return the parcel's joint LLR (the findings' sum), nats."""
        return float(sum(f.llr for f in self.findings))


class EvidenceModel:
    """The joint logistic model of the parcel features (module docstring)."""

    def __init__(self, weights, intercept: float, centres, prior_log_odds: float,
                 covariance=None, manifest_mass: bool = False, meta: dict | None = None):
        """Check and keep the parameters (ValueError on a bad shape or a non-finite value)."""
        self.weights = np.asarray(weights, dtype=float)
        self.centres = np.asarray(centres, dtype=float)
        n = len(FEATURES)
        if self.weights.shape != (n,) or self.centres.shape != (n,):
            raise ValueError(f'weights and centres need {n} values ({FEATURES})')
        self.intercept = float(intercept)
        self.prior_log_odds = float(prior_log_odds)
        covariance = np.zeros((n + 1, n + 1)) if covariance is None else covariance
        self.covariance = np.asarray(covariance, dtype=float)
        if self.covariance.shape != (n + 1, n + 1):
            raise ValueError(f'covariance must be {n + 1} x {n + 1} (intercept first)')
        values = np.concatenate([self.weights, self.centres, self.covariance.ravel(),
                                 [self.intercept, self.prior_log_odds]])
        if not np.all(np.isfinite(values)):
            raise ValueError('the evidence model has non-finite parameters')
        self.manifest_mass = bool(manifest_mass)
        self.meta = dict(meta or {})

    def terms(self, features: dict, declared: bool = True) -> dict:
        """Return {kind: (llr, std)} of a parcel's features (manifest absent if not declared)."""
        x = np.array([float(features[name]) for name in FEATURES])
        if not np.all(np.isfinite(x)):
            raise ValueError(f'non-finite features: {features}')
        if not declared:
            x[FEATURES.index('manifest')] = self.centres[FEATURES.index('manifest')]
        theta = np.concatenate([[self.intercept], self.weights])
        values, stds = {}, {}
        for position, (kind, names) in enumerate(KIND_FEATURES.items()):
            gradient = np.zeros(len(FEATURES) + 1)  # d term / d (intercept, weights)
            if position == 0:
                gradient[0] = 1.0
                gradient[1:] = self.centres
            for name in names:
                j = FEATURES.index(name)
                gradient[1 + j] += x[j] - self.centres[j]
            values[kind] = float(gradient @ theta) - (self.prior_log_odds if position == 0
                                                      else 0.0)
            stds[kind] = math.sqrt(max(float(gradient @ self.covariance @ gradient), 0.0))
        return {kind: (float(np.clip(values[kind], -LLR_LIMIT, LLR_LIMIT)), stds[kind])
                for kind in KIND_FEATURES if declared or kind != 'xray.manifest'}

    @classmethod
    def fit(cls, features, labels, l2: float = 0.1, manifest_mass: bool = False,
            meta: dict | None = None) -> 'EvidenceModel':
        """Fit on (n, 4) features and 0/1 labels by penalised Newton iterations.

        The centres are the medians over the clean parcels; the prior log-odds is the
        training set's ln(positives / negatives); the covariance is the inverse Hessian of the
        penalised log-likelihood at the optimum. ValueError without both classes.
        """
        x = np.asarray(features, dtype=float)
        y = np.asarray(labels, dtype=float)
        if x.ndim != 2 or x.shape[1] != len(FEATURES) or len(y) != len(x):
            raise ValueError(f'features must be (n, {len(FEATURES)}) with n labels')
        positives = int(np.sum(y == 1))
        if positives == 0 or positives == len(y) or not np.all((y == 0) | (y == 1)):
            raise ValueError('labels must be 0/1 with both classes present')
        design = np.column_stack([np.ones(len(x)), x])
        penalty = np.full(design.shape[1], float(l2))
        penalty[0] = 0.0
        theta = np.zeros(design.shape[1])
        for _ in range(100):
            p = 1.0 / (1.0 + np.exp(-np.clip(design @ theta, -50, 50)))
            gradient = design.T @ (y - p) - penalty * theta
            hessian = (design * (p * (1 - p))[:, None]).T @ design + np.diag(penalty)
            step = np.linalg.solve(hessian, gradient)
            theta += step
            if np.max(np.abs(step)) < 1e-9:
                break
        p = 1.0 / (1.0 + np.exp(-np.clip(design @ theta, -50, 50)))
        hessian = (design * (p * (1 - p))[:, None]).T @ design + np.diag(penalty)
        centres = np.median(x[y == 0], axis=0)
        return cls(theta[1:], theta[0], centres, math.log(positives / (len(y) - positives)),
                   np.linalg.inv(hessian), manifest_mass, meta)

    def to_dict(self) -> dict:
        """Return the model as a JSON-able dict."""
        return {'format': FORMAT, 'version': FORMAT_VERSION, 'features': list(FEATURES),
                'weights': self.weights.tolist(), 'intercept': self.intercept,
                'centres': self.centres.tolist(), 'prior_log_odds': self.prior_log_odds,
                'covariance': self.covariance.tolist(), 'manifest_mass': self.manifest_mass,
                'meta': self.meta}

    @classmethod
    def from_dict(cls, document, where: str = 'evidence model') -> 'EvidenceModel':
        """Return the model of a `to_dict` document (ValueError naming what is wrong)."""
        if not isinstance(document, dict) or document.get('format') != FORMAT:
            raise ValueError(f'{where}: not an X-ray parcel evidence model')
        if document.get('version') != FORMAT_VERSION:
            raise ValueError(f'{where}: version {document.get("version")!r}, this code reads '
                             f'{FORMAT_VERSION}')
        if tuple(document.get('features', ())) != FEATURES:
            raise ValueError(f'{where}: features {document.get("features")}, expected '
                             f'{list(FEATURES)}')
        try:
            return cls(document['weights'], document['intercept'], document['centres'],
                       document['prior_log_odds'], document.get('covariance'),
                       document.get('manifest_mass', False), document.get('meta', {}))
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f'{where}: {error}') from None

    def save(self, path):
        """Write the model as JSON."""
        pathlib.Path(path).write_text(json.dumps(self.to_dict(), indent=1) + '\n')

    @classmethod
    def load(cls, path) -> 'EvidenceModel':
        """Read a model written by `save` (ValueError if missing or not one)."""
        path = pathlib.Path(path)
        try:
            document = json.loads(path.read_text())
        except FileNotFoundError:
            raise ValueError(f'{path}: no such file') from None
        except (OSError, json.JSONDecodeError) as error:
            raise ValueError(f'{path}: {error}') from None
        return cls.from_dict(document, str(path))


def default_model_path() -> pathlib.Path:
    """Return where the shipped evidence model is: config/xray/parcel_evidence.json."""
    from customs_lab.common.data_dir import share_dir

    return share_dir() / 'config' / 'xray' / 'parcel_evidence.json'


def default_detector_path() -> pathlib.Path:
    """Return where the shipped threat detector is: config/xray/threat_detector.pt."""
    from customs_lab.common.data_dir import share_dir

    return share_dir() / 'config' / 'xray' / 'threat_detector.pt'


def _region_text(scan: XrayScan, region) -> str:
    first_line, last_line, first_pixel, last_pixel = region
    along = (first_line + last_line + 1) / 2 * scan.line_pitch
    across = ((first_pixel + last_pixel + 1) / 2 - scan.pixels / 2) * scan.pixel_pitch
    size = ((last_line - first_line + 1) * scan.line_pitch,
            (last_pixel - first_pixel + 1) * scan.pixel_pitch)
    return (f'{size[0] * 100:.0f} x {size[1] * 100:.0f} cm at {along:.2f} m along the scan, '
            f'{across:+.2f} m across')


class Inspector:
    """Run every X-ray analysis of a scan and turn the results into findings."""

    def __init__(self, calibration: DualEnergyCalibration, detector: threats.ThreatDetector,
                 model: EvidenceModel | None, powder_model='fused', smoothing: float = 1.0):
        """Keep the scanner's dual-energy calibration, the threat detector and the model.

        model: None computes the features only (no findings), to fit a model.
        """
        self.calibration, self.detector, self.model = calibration, detector, model
        self.powder_model = backscatter.get_model(powder_model)
        self.smoothing = float(smoothing)
        self.floor = logit(detector.min_score)

    def inspect(self, scan: XrayScan, declaration: manifest.Declaration | None = None
                ) -> Inspection:
        """Return the Inspection of a scan (declaration: None when it is not known)."""
        calibrated = scan.calibrated()
        decomposition = self.calibration.decompose(calibrated['low'], calibrated['high'],
                                                   self.smoothing)
        detections = self.detector.detect(scan)
        grid = backscatter.block_features(scan, self.calibration)
        powder_score = backscatter.grid_score(self.powder_model, grid)
        candidates = backscatter.candidates_of(self.powder_model, grid)
        segmentation = segment(scan, self.calibration, self.smoothing)
        compared = (manifest.compare(segmentation, declaration)
                    if declaration is not None else None)
        features = self.features(detections, powder_score, compared)
        inspection = Inspection(features, detections, powder_score, candidates, segmentation,
                                compared, colour_image(decomposition))
        if self.model is not None:
            inspection.findings = self.findings(scan, inspection)
        return inspection

    def features(self, detections, powder_score: float, compared) -> dict:
        """Return the FEATURES of a parcel from its analyses' results."""
        best = {name: self.floor for name in ('threat', 'powder')}
        for detection in detections:
            name = 'powder' if detection.threat == 'powder' else 'threat'
            best[name] = max(best[name], logit(detection.score))
        manifest_term = 0.0
        if compared is not None:
            mass = self.model is not None and self.model.manifest_mass
            total = compared.mix_term + (compared.mass_term if mass else 0.0)
            manifest_term = float(np.clip(total, -manifest.LLR_LIMIT, manifest.LLR_LIMIT))
        return {'threat': best['threat'], 'powder': best['powder'],
                'backscatter': float(powder_score), 'manifest': float(manifest_term)}

    def findings(self, scan: XrayScan, inspection: Inspection) -> list[Finding]:
        """Return one Finding per evidence kind (no manifest finding without a declaration)."""
        terms = self.model.terms(inspection.features, inspection.manifest is not None)
        out = []
        objects = [d for d in inspection.detections if d.threat in OBJECT_THREATS]
        llr, std = terms['xray.threat']
        joint = sum(value for value, _ in terms.values())
        baseline = (f'; the scan in all {joint:+.1f} nats (this item carries the parcel '
                    "model's baseline)")
        if objects:
            top = objects[0]
            listed = ', '.join(f'{d.threat} {d.score:.2f}' for d in objects[:3])
            text = (f'{top.threat} (score {top.score:.2f}), {_region_text(scan, top.box)}; '
                    f'detections: {listed}{baseline}')
            out.append(Finding('xray.threat', llr, std, text, top.box))
        else:
            out.append(Finding('xray.threat', llr, std,
                               "no weapon, ammunition or battery above the detector's floor "
                               f'({self.detector.min_score:.2f}){baseline}'))
        llr, std = terms['xray.material']
        powder = [d for d in inspection.detections if d.threat == 'powder']
        region, parts = None, []
        if powder:
            region = powder[0].box
            parts.append(f'powder-like package (score {powder[0].score:.2f}), '
                         f'{_region_text(scan, region)}')
        if inspection.powder_candidates:
            candidate = inspection.powder_candidates[0]
            box = (candidate.first_line, candidate.last_line, candidate.first_pixel,
                   candidate.last_pixel)
            region = region or box
            parts.append(f'dense organic mass in backscatter (Zeff {candidate.zeff:.1f}, '
                         f'{candidate.score:+.1f} nats), {_region_text(scan, box)}')
        if not parts:
            parts.append('no powder-like organic mass in transmission or backscatter')
        parts.append(f'backscatter score {inspection.powder_score:+.1f}')
        out.append(Finding('xray.material', llr, std, '; '.join(parts), region))
        if inspection.manifest is not None:
            llr, std = terms['xray.manifest']
            text = inspection.manifest.explanation
            if not self.model.manifest_mass:
                text += ' (mass not scored: the declaration prior weighs gross against net)'
            out.append(Finding('xray.manifest', llr, std, text))
        return out


def annotate(inspection: Inspection, thickness: int = 2) -> np.ndarray:
    """Return the colour image with threat (red) and powder (magenta) boxes drawn, uint8 RGB."""
    image = inspection.colour.copy()
    boxes = [(d.box, THREAT_COLOUR if d.threat != 'powder' else POWDER_COLOUR)
             for d in inspection.detections if d.score >= 0.5]
    boxes += [((c.first_line, c.last_line, c.first_pixel, c.last_pixel), POWDER_COLOUR)
              for c in inspection.powder_candidates]
    lines, pixels = image.shape[:2]
    for (first_line, last_line, first_pixel, last_pixel), colour in boxes:
        l0, l1 = max(first_line, 0), min(last_line, lines - 1)
        p0, p1 = max(first_pixel, 0), min(last_pixel, pixels - 1)
        if l0 > l1 or p0 > p1:
            continue
        t = thickness
        image[l0:min(l0 + t, l1 + 1), p0:p1 + 1] = colour
        image[max(l1 - t + 1, l0):l1 + 1, p0:p1 + 1] = colour
        image[l0:l1 + 1, p0:min(p0 + t, p1 + 1)] = colour
        image[l0:l1 + 1, max(p1 - t + 1, p0):p1 + 1] = colour
    return image
