"""X-ray inspection: the parcel evidence model, the inspector's findings, the annotated image.

The parcels are rendered by a scanner unit (serial 402) that neither the detector's training,
the evidence model's fit nor the benchmarks used.
"""

import json
import math
import pathlib

import numpy as np
import pytest

from customs_lab.simulation import xray_dataset, xray_phantoms
from customs_lab.simulation.parcel_scene import build_scene
from customs_lab.simulation.scenario import TrueItem
from customs_lab.xray import inspection, manifest
from customs_lab.xray.decomposition import DualEnergyCalibration
from customs_lab.xray.inspection import FEATURES, EvidenceModel, Inspector
from customs_lab.xray.threats import ThreatDetector

ROOT = pathlib.Path(__file__).resolve().parents[1]
XRAY = ROOT / 'config' / 'xray'
SERIAL = 402
MARGIN = 25


def _synthetic(n=4000, seed=3):
    """Features whose log-odds is known: y ~ Bernoulli(sigmoid(-1 + x . w)), x ~ N(0, 1)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, len(FEATURES)))
    w = np.array([1.5, 0.8, 0.5, -0.7])
    y = (rng.random(n) < 1 / (1 + np.exp(-(-1.0 + x @ w)))).astype(float)
    return x, y, w


def test_fit_recovers_the_weights_and_the_terms_add_up_to_the_llr():
    x, y, w = _synthetic()
    model = EvidenceModel.fit(x, y, l2=0.01)
    assert np.allclose(model.weights, w, atol=0.15)
    assert model.prior_log_odds == pytest.approx(math.log(y.sum() / (len(y) - y.sum())))
    assert np.allclose(model.centres, np.median(x[y == 0], axis=0))
    for row in x[:20]:
        features = dict(zip(FEATURES, row, strict=True))
        terms = model.terms(features)
        assert set(terms) == {'xray.threat', 'xray.material', 'xray.manifest'}
        joint = model.intercept + row @ model.weights - model.prior_log_odds
        assert sum(llr for llr, _ in terms.values()) == pytest.approx(joint, abs=1e-9)
        assert all(std > 0 for _, std in terms.values())
        # the material term depends on its two features only
        moved = dict(features, threat=features['threat'] + 1.0, manifest=0.0)
        assert model.terms(moved)['xray.material'] == terms['xray.material']


def test_without_a_declaration_the_manifest_term_is_neutral_and_absent():
    x, y, _ = _synthetic()
    model = EvidenceModel.fit(x, y)
    features = dict(zip(FEATURES, x[0], strict=True))
    declared, undeclared = model.terms(features), model.terms(features, declared=False)
    assert 'xray.manifest' not in undeclared
    assert undeclared['xray.threat'] == declared['xray.threat']
    assert undeclared['xray.material'] == declared['xray.material']
    at_centre = dict(features, manifest=model.centres[FEATURES.index('manifest')])
    assert model.terms(at_centre)['xray.manifest'][0] == pytest.approx(0.0, abs=1e-12)


def test_model_file_round_trip_and_bad_files(tmp_path):
    x, y, _ = _synthetic(500)
    model = EvidenceModel.fit(x, y, meta={'parcels': 500})
    model.save(tmp_path / 'm.json')
    again = EvidenceModel.load(tmp_path / 'm.json')
    features = dict(zip(FEATURES, x[1], strict=True))
    assert again.terms(features) == model.terms(features) and again.meta == {'parcels': 500}
    with pytest.raises(ValueError, match='no such file'):
        EvidenceModel.load(tmp_path / 'missing.json')
    (tmp_path / 'bad.json').write_text('{"format": "other"}')
    with pytest.raises(ValueError, match='not an X-ray parcel evidence model'):
        EvidenceModel.load(tmp_path / 'bad.json')
    document = model.to_dict()
    document['weights'][0] = float('nan')
    (tmp_path / 'nan.json').write_text(json.dumps(document))
    with pytest.raises(ValueError, match='non-finite'):
        EvidenceModel.load(tmp_path / 'nan.json')
    document = dict(model.to_dict(), features=['a', 'b'])
    (tmp_path / 'features.json').write_text(json.dumps(document))
    with pytest.raises(ValueError, match='features'):
        EvidenceModel.load(tmp_path / 'features.json')
    with pytest.raises(ValueError, match='both classes'):
        EvidenceModel.fit(x, np.zeros(len(x)))
    with pytest.raises(ValueError, match='non-finite features'):
        model.terms(dict(features, threat=float('nan')))


def test_shipped_model_is_fitted_on_held_out_parcels_and_weighs_what_it_should():
    model = EvidenceModel.load(XRAY / 'parcel_evidence.json')
    meta = model.meta
    assert meta['command'].startswith('python -m customs_lab.simulation.xray_evidence_set')
    from customs_lab.simulation import xray_evidence_set as evidence_set

    assert meta['seed'] != evidence_set.TEST_SEED
    assert meta['scanner_serial'] not in (evidence_set.TEST_SERIAL, SERIAL)
    assert meta['parcels'] >= 400 and 0 < meta['hidden'] < meta['parcels']
    weights = dict(zip(FEATURES, model.weights, strict=True))
    # a stronger threat detection, powder score or manifest mismatch raises the risk
    assert weights['threat'] > 0 and weights['manifest'] > 0
    assert weights['powder'] + weights['backscatter'] > 0
    assert not model.manifest_mass


@pytest.fixture(scope='module')
def inspector():
    return Inspector(DualEnergyCalibration.load(XRAY / 'CL-XR-2E_dual_energy.json'),
                     ThreatDetector.load(XRAY / 'threat_detector.pt'),
                     EvidenceModel.load(XRAY / 'parcel_evidence.json'))


@pytest.fixture(scope='module')
def physics():
    return xray_dataset.physics_for(SERIAL)


def _scan(physics, scene, seed):
    return xray_phantoms.simulated_scan(physics, scene, np.random.default_rng([seed, 2]),
                                        MARGIN, MARGIN)


def _parcel(hidden, seed):
    return build_scene('TEST00010', (0.4, 0.3, 0.15), [('clothing', 0.8)], hidden,
                       np.random.default_rng(seed), clutter=0.2)


def test_a_hidden_handgun_raises_the_threat_evidence_of_a_clothes_parcel(inspector, physics):
    declaration = manifest.Declaration('clothing', 0.8, 1.2)
    clean = inspector.inspect(_scan(physics, _parcel([], 31), 31), declaration)
    gun = _parcel([TrueItem('weapon', 'handgun', True, mass=0.8)], 32)
    armed_scan = _scan(physics, gun, 32)
    armed = inspector.inspect(armed_scan, declaration)
    assert [f.kind for f in clean.findings] == ['xray.threat', 'xray.material',
                                                'xray.manifest']
    threat = {f.kind: f for f in armed.findings}['xray.threat']
    assert threat.llr > 2.0 > {f.kind: f for f in clean.findings}['xray.threat'].llr
    assert armed.llr > clean.llr + 2.0 and clean.llr < 0
    assert 'weapon' in threat.explanation
    # the region is the weapon's: inside the scan and overlapping the truth box
    truth = [b for b in physics.truth_boxes(gun, MARGIN) if b.threat == 'weapon'][0]
    first_line, last_line, first_pixel, last_pixel = threat.region
    assert 0 <= first_line <= last_line < armed_scan.lines
    assert 0 <= first_pixel <= last_pixel < armed_scan.pixels
    assert first_line <= truth.last_line and truth.first_line <= last_line
    assert first_pixel <= truth.last_pixel and truth.first_pixel <= last_pixel
    for finding in armed.findings:
        assert math.isfinite(finding.llr) and finding.llr_std >= 0 and finding.explanation
    # the annotated image: colour-coded, with the weapon's box drawn in red
    image = inspection.annotate(armed)
    assert image.shape == (armed_scan.lines, armed_scan.pixels, 3) and image.dtype == np.uint8
    assert tuple(image[first_line, first_pixel]) == inspection.THREAT_COLOUR
    assert not np.array_equal(image, armed.colour)


def test_without_a_declaration_there_is_no_manifest_finding(inspector, physics):
    result = inspector.inspect(_scan(physics, _parcel([], 33), 33))
    assert [f.kind for f in result.findings] == ['xray.threat', 'xray.material']
    assert result.manifest is None and result.features['manifest'] == 0.0
