"""Powder detection with and without the backscatter channel (X-ray issue).

    OPENBLAS_NUM_THREADS=1 tools/with_env.sh python benchmarks/bench_xray_powder.py \
        [--train 160] [--test 240] [--print-models] [--cache DIR]

Parcels: parcel_scene.random_scene, half with a 'powder' threat (0.1-2 kg of
methamphetamine HCl, cocaine HCl, heroin or a lactose cut, in 1-3 bags packed at 0.3-0.7
g/cm^3, put in the box first) and half without, clutter uniform in [0, 1], random box sizes
and goods (clothing, books, shoes, food, cosmetics, toys, phones, electronics). A random_scene
whose powder does not fit its box is drawn again. Training parcels (seeds 10000+) are scanned
by one simulated scanner unit, test parcels (seeds 20000+) by another; the dual-energy
calibration is the shipped one. Both detectors of customs_lab.xray.backscatter are fitted on
the training parcels (block labels from the truth boxes of the powder) and scored on the test
parcels: per parcel its score (ln of the expected number of powder blocks), then the ROC
(AUC), and the detection rate at the thresholds that give 1 %, 5 % and 10 % false alarms on
the test parcels without powder (matched false-alarm rates; with N clean parcels a rate below
1/N cannot be resolved), with 95 % Wilson intervals. Block-level AUC too (blocks inside the
powder vs blocks of clean parcels).

--print-models prints DEFAULT_MODELS as Python, to paste into backscatter.py (the shipped
weights are the ones fitted here on the training parcels). --cache keeps each parcel's block
features in DIR (rendering is ~1.5 s a parcel; reruns then take seconds).
"""

import argparse
import math
import pathlib
import shlex
import sys
import time

import numpy as np

from customs_lab.simulation import xray_phantoms
from customs_lab.simulation.parcel_scene import random_scene
from customs_lab.simulation.xray_physics import XrayPhysics
from customs_lab.xray import backscatter
from customs_lab.xray.decomposition import DualEnergyCalibration
from customs_lab.xray.scanner_model import ScannerModel

TRAIN_SEED, TEST_SEED = 10000, 20000
TRAIN_UNIT, TEST_UNIT = 31, 41
FALSE_ALARMS = (0.01, 0.05, 0.10)


def draw_scene(seed: int, powder: bool):
    """Return (scene, rng) of parcel `seed`, drawn again until its powder fits."""
    rng = np.random.default_rng(seed)
    clutter = float(rng.uniform(0.0, 1.0))
    while True:
        try:
            scene = random_scene(rng, threats=('powder',) if powder else (), clutter=clutter,
                                 waybill=f'BENCH{seed:06d}')
            return scene, rng, clutter
        except ValueError:
            continue


def parcel(physics, calibration, seed: int, powder: bool, cache: pathlib.Path | None):
    """Return (BlockGrid, block labels, powder?, clutter) of one parcel (cached if asked)."""
    path = cache / f'parcel_{seed}_{int(powder)}.npz' if cache else None
    if path is not None and path.exists():
        data = np.load(path)
        grid = backscatter.BlockGrid(int(data['block']), data['features'],
                                     tuple(str(n) for n in data['names']), data['matter'])
        return grid, data['labels'], powder, float(data['clutter'])
    scene, rng, clutter = draw_scene(seed, powder)
    scan = xray_phantoms.simulated_scan(physics, scene, rng)
    grid = backscatter.block_features(scan, calibration)
    mask = np.zeros((scan.lines, scan.pixels), dtype=bool)
    for box in physics.truth_boxes(scene):  # truth: labels for training and scoring only
        if box.threat == 'powder':
            mask[box.first_line:box.last_line + 1, box.first_pixel:box.last_pixel + 1] = True
    labels = backscatter.block_labels(grid, mask)
    if path is not None:
        np.savez_compressed(path, block=grid.block, features=grid.features,
                            names=np.array(grid.names), matter=grid.matter, labels=labels,
                            clutter=clutter)
    return grid, labels, powder, clutter


def auc(scores, positive) -> float:
    """Return the area under the ROC curve (ties count half)."""
    scores, positive = np.asarray(scores, dtype=float), np.asarray(positive, dtype=bool)
    pos, neg = scores[positive], scores[~positive]
    if not len(pos) or not len(neg):
        return float('nan')
    greater = (pos[:, None] > neg[None, :]).mean()
    equal = (pos[:, None] == neg[None, :]).mean()
    return float(greater + 0.5 * equal)


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Return the 95 % Wilson interval of k successes in n."""
    if n == 0:
        return float('nan'), float('nan')
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def at_false_alarm(scores, positive, rate: float) -> tuple[float, int, int, float]:
    """Return (threshold, detected, positives, actual false-alarm rate) at a false-alarm rate."""
    scores, positive = np.asarray(scores, dtype=float), np.asarray(positive, dtype=bool)
    clean = np.sort(scores[~positive])[::-1]
    allowed = int(math.floor(rate * len(clean)))
    threshold = clean[allowed] if allowed < len(clean) else -np.inf  # strictly above
    detected = int(np.sum(scores[positive] > threshold))
    actual = float(np.mean(clean > threshold))
    return float(threshold), detected, int(positive.sum()), actual


def model_literal(models) -> str:
    lines = ['DEFAULT_MODELS = {']
    for model in models:
        lines.append(f'    {model.name!r}: PowderModel(')
        lines.append(f'        {model.name!r}, {model.features!r},')
        for field in ('mean', 'scale', 'weights'):
            values = ', '.join(f'{v:.6g}' for v in getattr(model, field))
            lines.append(f'        ({values}),')
        lines.append(f'        {model.bias:.6g}),')
    lines.append('}')
    return '\n'.join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--train', type=int, default=160, help='training parcels')
    parser.add_argument('--test', type=int, default=240, help='test parcels')
    parser.add_argument('--calibration', default='config/xray/CL-XR-2E_dual_energy.json')
    parser.add_argument('--l2', type=float, default=3.0, help='L2 penalty of the fit')
    parser.add_argument('--print-models', action='store_true')
    parser.add_argument('--shipped', action='store_true',
                        help='score the shipped DEFAULT_MODELS instead of fitting')
    parser.add_argument('--cache', default='', help='directory for per-parcel features')
    args = parser.parse_args(argv)
    print('command: OPENBLAS_NUM_THREADS=1 tools/with_env.sh python '
          'benchmarks/bench_xray_powder.py ' + shlex.join(sys.argv[1:] if argv is None
                                                           else list(argv)))
    started = time.perf_counter()
    cache = pathlib.Path(args.cache) if args.cache else None
    if cache:
        cache.mkdir(parents=True, exist_ok=True)
    calibration = DualEnergyCalibration.load(args.calibration)
    model = ScannerModel()
    sets = {}
    for label, count, seed0, unit in (('train', args.train, TRAIN_SEED, TRAIN_UNIT),
                                      ('test', args.test, TEST_SEED, TEST_UNIT)):
        if args.shipped and label == 'train':
            continue
        physics = XrayPhysics(model, serial_seed=unit)
        sets[label] = [parcel(physics, calibration, seed0 + i, i % 2 == 0, cache)
                       for i in range(count)]
        print(f'{label}: {count} parcels ({(count + 1) // 2} with powder), scanner unit '
              f'{unit}, {time.perf_counter() - started:.0f} s')
    if args.shipped:
        models = [backscatter.get_model('transmission'), backscatter.get_model('fused')]
    else:
        train = sets['train']
        models = [backscatter.fit_model(name, features, [g for g, *_ in train],
                                        [lab for _, lab, *_ in train], l2=args.l2)
                  for name, features in (('transmission', backscatter.TRANSMISSION_FEATURES),
                                         ('fused', backscatter.FUSED_FEATURES))]
    test = sets['test']
    positive = np.array([p for _, _, p, _ in test])
    clutter = np.array([c for *_, c in test])
    print()
    print(f'{"detector":13s} {"AUC":>5s} {"block AUC":>9s} '
          + ' '.join(f'{"Pd @ FA " + format(r, ".0%"):>24s}' for r in FALSE_ALARMS))
    results = {}
    for detector in models:
        scores = np.array([backscatter.grid_score(detector, g) for g, *_ in test])
        results[detector.name] = scores
        blocks = np.concatenate([detector.block_scores(g)[lab >= 0] for g, lab, *_ in test])
        block_truth = np.concatenate([lab[lab >= 0] == 1 for _, lab, *_ in test])
        cells = []
        for rate in FALSE_ALARMS:
            _, detected, total, actual = at_false_alarm(scores, positive, rate)
            low, high = wilson(detected, total)
            cells.append(f'{detected / total:5.1%} [{low:4.0%},{high:4.0%}] FA {actual:4.1%}')
        print(f'{detector.name:13s} {auc(scores, positive):5.3f} '
              f'{auc(blocks, block_truth):9.3f} ' + ' '.join(f'{c:>24s}' for c in cells))
    print()
    for name in ('low clutter (< 0.5)', 'high clutter (>= 0.5)'):
        pick = clutter < 0.5 if name.startswith('low') else clutter >= 0.5
        print(f'{name:22s} ' + '  '.join(f'{d}: AUC {auc(results[d][pick], positive[pick]):.3f}'
                                         for d in results) + f'  (n={pick.sum()})')
    difference = results['fused'] - results['transmission']
    print(f'paired: the fused score ranks {auc(results["fused"], positive):.3f} vs '
          f'{auc(results["transmission"], positive):.3f}; '
          f'mean score change powder {difference[positive].mean():+.2f}, clean '
          f'{difference[~positive].mean():+.2f}')
    if args.print_models:
        print()
        print(model_literal(models))
    print(f'elapsed {time.perf_counter() - started:.0f} s')
    return 0


if __name__ == '__main__':
    sys.exit(main())
