"""The scan against the declaration: mass estimates and the manifest LLR (X-ray issue).

    OPENBLAS_NUM_THREADS=1 tools/with_env.sh python benchmarks/bench_xray_manifest.py \
        [--train 200] [--test 200] [--print-model]

Parcels of the default scenario's declared goods (config/scenarios/default.yaml: mobile phone
0.6 kg, clothing 1.2 kg, cosmetics 0.8 kg, toys 1.0 kg, each x U(0.7, 1.3) as the scenario
draws them) in the scenario's 0.4 x 0.3 x 0.3 m box, clutter uniform in [0, 1]; half honest,
half with one hidden threat of parcel_scene.THREAT_CLASSES (powder 0.1-2 kg, weapon, ammunition,
battery). The declaration: the goods' description, the weighed gross mass (the scene's mass:
hidden goods included) and the declared net mass (the goods' mass; for parcels with hidden
goods understated by a factor U(0.6, 0.9) three times in ten, as the scenario's
misdeclaration does). Scanned by the simulator (training and test parcels by different
scanner units), segmented (customs_lab.xray.segmentation) and compared (manifest.py).

Printed: the estimated mass against the true gross mass (ratio: mean, sd, 5-95 % range, by
goods kind), then the manifest model fitted on the training parcels and scored on the test
parcels: mean LLR of honest and hidden-goods parcels, AUC, detection at 5 % and 10 % false
alarms, by threat; the mass term and the mix term apart.
"""

import argparse
import json
import math
import shlex
import sys
import time

import numpy as np

from customs_lab.simulation import xray_phantoms
from customs_lab.simulation.parcel_scene import THREAT_CLASSES, random_scene
from customs_lab.simulation.xray_physics import XrayPhysics
from customs_lab.xray import manifest
from customs_lab.xray.decomposition import DualEnergyCalibration
from customs_lab.xray.scanner_model import ScannerModel
from customs_lab.xray.segmentation import segment

GOODS = (('mobile phone', 0.6), ('clothing', 1.2), ('cosmetics', 0.8), ('toys', 1.0))
BOX = (0.4, 0.3, 0.3)  # m, scenario.PARCEL_SIZE
TRAIN_SEED, TEST_SEED = 30000, 40000
TRAIN_UNIT, TEST_UNIT = 51, 61


def simulate(physics, calibration, seed: int):
    """Return a dict of one parcel: truth, declaration, segmentation figures."""
    rng = np.random.default_rng(seed)
    description, nominal = GOODS[seed % len(GOODS)]
    hidden = (seed // len(GOODS)) % 2 == 1
    threat = str(THREAT_CLASSES[int(rng.integers(len(THREAT_CLASSES)))]) if hidden else ''
    mass = nominal * float(rng.uniform(0.7, 1.3))
    clutter = float(rng.uniform(0.0, 1.0))
    while True:
        try:
            scene = random_scene(rng, threats=(threat,) if threat else (), clutter=clutter,
                                 size=BOX, goods=[(description, mass)],
                                 waybill=f'MAN{seed:06d}')
            break
        except ValueError:
            continue
    net = mass * (float(rng.uniform(0.6, 0.9)) if hidden and rng.random() < 0.3 else 1.0)
    declaration = manifest.Declaration(description, round(net, 2), round(scene.mass, 2))
    segmentation = segment(xray_phantoms.simulated_scan(physics, scene, rng), calibration)
    return dict(seed=seed, kind=manifest.goods_kind(description), threat=threat,
                hidden=hidden, truth=scene.mass, declaration=declaration,
                segmentation=segmentation)


def sample_of(parcel) -> tuple:
    declaration, segmentation = parcel['declaration'], parcel['segmentation']
    excess = segmentation.total_mass - declaration.net_mass - manifest.PACKAGING_KG
    return (parcel['kind'], excess, manifest.mix_features(segmentation.class_shares()),
            parcel['hidden'])


def auc(scores, positive) -> float:
    scores, positive = np.asarray(scores, dtype=float), np.asarray(positive, dtype=bool)
    pos, neg = scores[positive], scores[~positive]
    return float((pos[:, None] > neg[None, :]).mean() + 0.5 * (pos[:, None] == neg[None, :])
                 .mean())


def detection(scores, positive, rate: float) -> float:
    scores, positive = np.asarray(scores, dtype=float), np.asarray(positive, dtype=bool)
    clean = np.sort(scores[~positive])[::-1]
    allowed = int(math.floor(rate * len(clean)))
    threshold = clean[allowed] if allowed < len(clean) else -np.inf
    return float(np.mean(scores[positive] > threshold))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--train', type=int, default=200)
    parser.add_argument('--test', type=int, default=200)
    parser.add_argument('--calibration', default='config/xray/CL-XR-2E_dual_energy.json')
    parser.add_argument('--print-model', action='store_true')
    parser.add_argument('--shipped', action='store_true',
                        help='score the shipped DEFAULT_MODEL instead of fitting one')
    args = parser.parse_args(argv)
    print('command: OPENBLAS_NUM_THREADS=1 tools/with_env.sh python '
          'benchmarks/bench_xray_manifest.py ' + shlex.join(sys.argv[1:] if argv is None
                                                             else list(argv)))
    started = time.perf_counter()
    calibration = DualEnergyCalibration.load(args.calibration)
    sets = {}
    for label, count, seed0, unit in (('train', args.train, TRAIN_SEED, TRAIN_UNIT),
                                      ('test', args.test, TEST_SEED, TEST_UNIT)):
        if args.shipped and label == 'train':
            continue
        physics = XrayPhysics(ScannerModel(), serial_seed=unit)
        sets[label] = [simulate(physics, calibration, seed0 + i) for i in range(count)]
        print(f'{label}: {count} parcels, scanner unit {unit}, '
              f'{time.perf_counter() - started:.0f} s')
    everything = [p for parcels in sets.values() for p in parcels]
    ratio = np.array([p['segmentation'].total_mass / p['truth'] for p in everything])
    print()
    print(f'estimated / true gross mass, all {len(ratio)} parcels: mean {ratio.mean():.3f}, '
          f'sd {ratio.std():.3f}, 5-95 % [{np.percentile(ratio, 5):.3f}, '
          f'{np.percentile(ratio, 95):.3f}], max error {np.abs(ratio - 1).max():.1%}')
    for kind, _ in GOODS:
        pick = np.array([p['kind'] == kind for p in everything])
        print(f'  {kind:13s} mean {ratio[pick].mean():.3f} sd {ratio[pick].std():.3f} '
              f'(n={pick.sum()})')
    for threat in THREAT_CLASSES:
        pick = np.array([p['threat'] == threat for p in everything])
        if pick.any():
            print(f'  with {threat:10s} mean {ratio[pick].mean():.3f} sd {ratio[pick].std():.3f}'
                  f' (n={pick.sum()})')
    model = (manifest.DEFAULT_MODEL if args.shipped
             else manifest.fit_model([sample_of(p) for p in sets['train']]))
    test = sets['test']
    evidence = [manifest.compare(p['segmentation'], p['declaration'], model) for p in test]
    hidden = np.array([p['hidden'] for p in test])
    print()
    for name, values in (('LLR', [e.llr for e in evidence]),
                         ('mass term', [e.mass_term for e in evidence]),
                         ('mix term', [e.mix_term for e in evidence])):
        values = np.asarray(values)
        print(f'{name:9s} honest mean {values[~hidden].mean():+5.2f} (sd '
              f'{values[~hidden].std():.2f})  hidden mean {values[hidden].mean():+5.2f}  '
              f'AUC {auc(values, hidden):.3f}  Pd @ FA 5 % {detection(values, hidden, 0.05):.0%}'
              f'  @ 10 % {detection(values, hidden, 0.10):.0%}')
    llr = np.array([e.llr for e in evidence])
    for threat in THREAT_CLASSES:
        pick = np.array([p['threat'] == threat for p in test])
        if pick.any():
            both = pick | ~hidden
            print(f'  {threat:10s} mean LLR {llr[pick].mean():+5.2f}  AUC vs honest '
                  f'{auc(llr[both], hidden[both]):.3f} (n={pick.sum()})')
    print(f'example: {evidence[1].explanation}')
    if args.print_model:
        print()
        print('DEFAULT_MODEL = ' + json.dumps(model, indent=None))
    print(f'elapsed {time.perf_counter() - started:.0f} s')
    return 0


if __name__ == '__main__':
    sys.exit(main())
