"""Labelled simulated parcels for the X-ray evidence model: fit it, or measure it.

Parcels of the default scenario's declared goods (config/scenarios/default.yaml: mobile phone
0.6 kg, clothing 1.2 kg, cosmetics 0.8 kg, toys 1.0 kg, each x U(0.7, 1.3)) in the scenario's
0.4 x 0.3 x 0.3 m box, clutter U(0, 1); a share `hidden_share` (default half) hides one threat
of parcel_scene.THREAT_CLASSES (weapon, ammunition, powder, battery; equally likely). The
declaration as bench_xray_manifest.py draws it: the goods' description, the weighed gross mass
(hidden goods included), the declared net mass (understated by U(0.6, 0.9) for three in ten
parcels with hidden goods). Each parcel is scanned by the simulator (XrayPhysics of scanner unit
`serial`) and inspected (customs_lab.xray.inspection.Inspector, without an evidence model): its
features, the manifest's mass term apart, the detector's outputs and the CPU time of the
inspection are recorded with the label. The truth gives the label and nothing else.

Work runs on `workers` spawned processes (OPENBLAS_NUM_THREADS=1, one torch thread each).
About 1 s of CPU per parcel.

Fit the shipped model (about 5 minutes on 2 cores):

    OPENBLAS_NUM_THREADS=1 python -m customs_lab.simulation.xray_evidence_set \
        --fit config/xray/parcel_evidence.json

The benchmark (benchmarks/bench_xray_evidence.py) scores it on parcels of another seed and
another scanner unit.
"""

import argparse
from concurrent.futures import ProcessPoolExecutor
import multiprocessing
import os
import shlex
import sys
import time

import numpy as np

from customs_lab.simulation import xray_phantoms
from customs_lab.simulation.parcel_scene import THREAT_CLASSES, random_scene
from customs_lab.simulation.scenario import PARCEL_SIZE
from customs_lab.simulation.xray_physics import XrayPhysics
from customs_lab.xray import manifest
from customs_lab.xray.decomposition import DualEnergyCalibration, default_calibration_path
from customs_lab.xray.inspection import (
    FEATURES,
    EvidenceModel,
    Inspector,
    default_detector_path,
)
from customs_lab.xray.scanner_model import ScannerModel
from customs_lab.xray.threats import ThreatDetector

GOODS = (('mobile phone', 0.6), ('clothing', 1.2), ('cosmetics', 0.8), ('toys', 1.0))
FIT_SEED, FIT_SERIAL = 50000, 71  # the shipped model's parcels and scanner unit
TEST_SEED, TEST_SERIAL = 60000, 81  # the benchmark's (held out)
MAX_WORKERS = 2

_worker = {}


def draw(seed: int, hidden_share: float = 0.5):
    """Return (scene, declaration, threat or '', clutter, rng) of parcel `seed`."""
    rng = np.random.default_rng([seed, 9100])
    description, nominal = GOODS[int(rng.integers(len(GOODS)))]
    threat = (str(THREAT_CLASSES[int(rng.integers(len(THREAT_CLASSES)))])
              if rng.random() < hidden_share else '')
    mass = nominal * float(rng.uniform(0.7, 1.3))
    clutter = float(rng.uniform(0.0, 1.0))
    while True:
        try:
            scene = random_scene(rng, threats=(threat,) if threat else (), clutter=clutter,
                                 size=PARCEL_SIZE, goods=[(description, mass)],
                                 waybill=f'EV{seed:07d}')
            break
        except ValueError:  # the threat did not fit among the goods: draw again
            continue
    net = mass * (float(rng.uniform(0.6, 0.9)) if threat and rng.random() < 0.3 else 1.0)
    declaration = manifest.Declaration(description, round(net, 2), round(scene.mass, 2))
    return scene, declaration, threat, clutter, rng


def _init(serial: int, calibration_path: str, detector_path: str):
    os.environ.setdefault('OPENBLAS_NUM_THREADS', '1')
    _worker['physics'] = XrayPhysics(ScannerModel(), serial)
    _worker['inspector'] = Inspector(DualEnergyCalibration.load(calibration_path),
                                     ThreatDetector.load(detector_path, threads=1), None)


def _parcel(seed: int, hidden_share: float) -> dict:
    scene, declaration, threat, clutter, rng = draw(seed, hidden_share)
    scan = xray_phantoms.simulated_scan(_worker['physics'], scene, rng)
    start = time.thread_time()
    inspection = _worker['inspector'].inspect(scan, declaration)
    cpu = time.thread_time() - start
    return {'seed': seed, 'hidden_threat': threat, 'hidden': bool(threat), 'clutter': clutter,
            'kind': manifest.goods_kind(declaration.description), 'lines': scan.lines,
            **inspection.features, 'mass_term': inspection.manifest.mass_term,
            'detections': [(d.threat, d.score) for d in inspection.detections],
            'cpu': cpu}


def generate(count: int, seed: int, serial: int, workers: int = MAX_WORKERS,
             hidden_share: float = 0.5, calibration_path=None, detector_path=None,
             progress=None) -> list[dict]:
    """Return the records of parcels seed .. seed + count - 1 (module docstring)."""
    calibration_path = str(calibration_path or default_calibration_path(ScannerModel().model))
    detector_path = str(detector_path or default_detector_path())
    workers = max(1, min(int(workers), MAX_WORKERS))
    context = multiprocessing.get_context('spawn')
    os.environ.setdefault('OPENBLAS_NUM_THREADS', '1')
    records = []
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_init,
                             initargs=(serial, calibration_path, detector_path)) as pool:
        futures = [pool.submit(_parcel, seed + i, hidden_share) for i in range(count)]
        for done, future in enumerate(futures, 1):
            records.append(future.result())
            if progress is not None and done % 50 == 0:
                progress(done, count)
    return records


def feature_matrix(records, manifest_mass: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Return (n, 4) features and 0/1 labels of records (mass term added if asked)."""
    x = np.array([[r[name] + (r['mass_term'] if name == 'manifest' and manifest_mass else 0.0)
                   for name in FEATURES] for r in records])
    return x, np.array([1.0 if r['hidden'] else 0.0 for r in records])


def main(argv=None) -> int:
    """Fit the evidence model and write it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--fit', required=True, help='where to write the model (JSON)')
    parser.add_argument('--count', type=int, default=600)
    parser.add_argument('--seed', type=int, default=FIT_SEED)
    parser.add_argument('--serial', type=int, default=FIT_SERIAL)
    parser.add_argument('--workers', type=int, default=MAX_WORKERS)
    parser.add_argument('--l2', type=float, default=0.1)
    parser.add_argument('--manifest-mass', action='store_true',
                        help="score the manifest's mass term too (only for a fusion without "
                             'the declaration prior)')
    args = parser.parse_args(argv)
    if args.seed == TEST_SEED or args.serial == TEST_SERIAL:
        parser.error("the benchmark's seed and scanner unit are held out")
    started = time.time()
    records = generate(args.count, args.seed, args.serial, args.workers,
                       progress=lambda k, n: print(f'{k}/{n} parcels', file=sys.stderr))
    x, y = feature_matrix(records, args.manifest_mass)
    command = 'python -m customs_lab.simulation.xray_evidence_set ' + shlex.join(
        sys.argv[1:] if argv is None else argv)
    model = EvidenceModel.fit(x, y, args.l2, args.manifest_mass, meta={
        'command': command, 'parcels': len(records), 'hidden': int(y.sum()),
        'seed': args.seed, 'scanner_serial': args.serial, 'l2': args.l2})
    model.save(args.fit)
    print(f'{len(records)} parcels ({int(y.sum())} hiding goods) in '
          f'{time.time() - started:.0f} s; weights '
          + ', '.join(f'{n} {w:+.3f}' for n, w in zip(FEATURES, model.weights, strict=True))
          + f'; intercept {model.intercept:+.3f}; written to {args.fit}')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
