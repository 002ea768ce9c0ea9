"""Powder detection with and without backscatter: the fused model ranks powder blocks better."""

import pathlib

import numpy as np
import pytest

from customs_lab.simulation import xray_phantoms
from customs_lab.simulation.parcel_scene import ParcelScene, XrayObject, random_scene
from customs_lab.simulation.xray_physics import XrayPhysics
from customs_lab.xray import backscatter
from customs_lab.xray.decomposition import DualEnergyCalibration
from customs_lab.xray.scan import XrayScan
from customs_lab.xray.scanner_model import ScannerModel

ROOT = pathlib.Path(__file__).resolve().parents[1]
MODEL = ScannerModel()
PARCELS = 16  # 8 with powder, 8 without (seeds 50000+, not the benchmark's)


@pytest.fixture(scope='module')
def calibration():
    return DualEnergyCalibration.load(ROOT / 'config' / 'xray' / 'CL-XR-2E_dual_energy.json')


@pytest.fixture(scope='module')
def physics():
    return XrayPhysics(MODEL, serial_seed=71)


def _scene(seed, powder):
    rng = np.random.default_rng(seed)
    clutter = float(rng.uniform(0.0, 1.0))
    while True:
        try:
            return random_scene(rng, threats=('powder',) if powder else (), clutter=clutter,
                                waybill=f'T{seed}'), rng
        except ValueError:  # the powder did not fit the box drawn: draw again
            continue


@pytest.fixture(scope='module')
def parcels(physics, calibration):
    out = []
    for i in range(PARCELS):
        scene, rng = _scene(50000 + i, i % 2 == 0)
        scan = xray_phantoms.simulated_scan(physics, scene, rng)
        grid = backscatter.block_features(scan, calibration)
        mask = np.zeros((scan.lines, scan.pixels), dtype=bool)
        for box in physics.truth_boxes(scene):  # truth only to score
            if box.threat == 'powder':
                mask[box.first_line:box.last_line + 1, box.first_pixel:box.last_pixel + 1] = 1
        out.append((scan, grid, backscatter.block_labels(grid, mask), i % 2 == 0))
    return out


def _auc(scores, positive):
    pos, neg = scores[positive], scores[~positive]
    return float((pos[:, None] > neg[None, :]).mean() + 0.5 * (pos[:, None] == neg[None, :])
                 .mean())


def test_backscatter_adds_little_and_costs_nothing(parcels):
    """Block-level AUC of both models on a fixed set; the fused one is not worse.

    What the benchmark found (benchmarks/bench_xray_powder.py, 240 test parcels): block AUC
    0.874 fused vs 0.846 transmission, parcel AUC 0.752 vs 0.733, detection at 5 % false
    alarms 10.8 % vs 10.0 %: in this simulation the backscatter channel adds little (see
    backscatter.py). The fused model led in 14 of 15 disjoint 16-parcel subsets of that test
    set, but not on this one (0.841 vs 0.847): a claim that it "beats" transmission-only on a
    small set would be a claim about noise, so this test bounds it instead.
    """
    results = {}
    for name in ('transmission', 'fused'):
        model = backscatter.get_model(name)
        scores = np.concatenate([model.block_scores(g)[lab >= 0] for _, g, lab, _ in parcels])
        truth = np.concatenate([lab[lab >= 0] == 1 for _, g, lab, _ in parcels])
        results[name] = _auc(scores, truth)
    assert results['transmission'] > 0.75  # both far better than chance
    assert results['fused'] > 0.75
    assert results['fused'] > results['transmission'] - 0.03


def test_parcel_scores_are_finite_and_ordered(parcels):
    for name in ('transmission', 'fused'):
        model = backscatter.get_model(name)
        scores = np.array([backscatter.grid_score(model, g) for _, g, _, _ in parcels])
        assert np.all(np.isfinite(scores)) and np.all(scores > backscatter.NO_SCORE)
        # the score is ln of the expected number of powder blocks: never above ln(blocks)
        blocks = np.array([g.matter.sum() for _, g, _, _ in parcels])
        assert np.all(scores <= np.log(blocks) + 1e-9)


def test_candidates_cover_a_plain_powder_bag(physics, calibration):
    bag = XrayObject('bag', 'cocaine_hcl', 'box', (0.15, 0.15, 0.029), (0.16, 0.12, 0.05),
                     density=0.5)
    shirt = XrayObject('shirt', 'clothes', 'box', (0.15, 0.15, 0.075), (0.25, 0.2, 0.04))
    scene = ParcelScene('BAG000001', (0.3, 0.3, 0.12), (bag, shirt))
    scan = xray_phantoms.simulated_scan(physics, scene, np.random.default_rng(4))
    score, candidates = backscatter.detect(scan, calibration, 'fused')
    assert candidates, 'no candidate over a 0.5 kg bag of cocaine under a shirt'
    best = candidates[0]
    box = next(b for b in physics.truth_boxes(scene) if b.name == 'bag')
    overlap_lines = min(best.last_line, box.last_line) - max(best.first_line, box.first_line)
    overlap_pixels = min(best.last_pixel, box.last_pixel) - max(best.first_pixel,
                                                               box.first_pixel)
    assert overlap_lines > 0 and overlap_pixels > 0
    assert best.zeff < 10.5  # organic
    assert np.isfinite(score)


def _scan(low, high, back):
    pixels = low.shape[1]
    dark = np.full((3, pixels), 1000.0)
    air = np.stack([np.full(pixels, 51000.0), np.full(pixels, 51000.0),
                    np.full(pixels, 3000.0)])
    return XrayScan('x', 'W', 0, 0.0, MODEL.line_period, MODEL.belt_speed, MODEL.belt_pitch,
                    low, high, back, dark, air)


def test_empty_and_opaque_scans_do_not_crash(calibration):
    shape = (40, MODEL.pixels)
    empty = np.full(shape, 51000, dtype=np.uint16)
    back = np.full(shape, 3000, dtype=np.uint16)
    for scan in (_scan(empty, empty, back),  # air only
                 _scan(np.full(shape, 1000, np.uint16), np.full(shape, 1001, np.uint16),
                       back),  # opaque everywhere
                 _scan(np.zeros(shape, np.uint16), np.zeros(shape, np.uint16),
                       np.zeros(shape, np.uint16)),  # below dark: garbage
                 _scan(empty[:5], empty[:5], back[:5])):  # fewer lines than a block
        for model in ('transmission', 'fused'):
            score, candidates = backscatter.detect(scan, calibration, model)
            assert score == backscatter.NO_SCORE and candidates == []
    with pytest.raises(ValueError):
        backscatter.get_model('nope')
