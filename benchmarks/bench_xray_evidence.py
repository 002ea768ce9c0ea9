"""X-ray parcel evidence: how well the joint LLR separates and how well it is calibrated.

    OPENBLAS_NUM_THREADS=1 tools/with_env.sh python benchmarks/bench_xray_evidence.py \
        [--count 600] [--model config/xray/parcel_evidence.json] [--workers 2]

About 2 minutes on 2 free cores. Parcels from customs_lab.simulation.xray_evidence_set with
its held-out seed and scanner unit (TEST_SEED, TEST_SERIAL: the fit used others): half clean,
half hiding one weapon, ammunition, powder package or battery pack, each declared. Each is
scanned and inspected (Inspector.inspect, one torch thread); the shipped evidence model turns
the features into the three evidence terms (uncovered share 0: the model's own hypothesis).

Printed:
1. Separation: AUC of the joint LLR and of each term alone; per threat class the detection rate
   at 1 % and 5 % of clean parcels flagged (thresholds from the clean parcels), the share with
   LLR > 0, and the median LLR.
2. Calibration: the posterior sigmoid(LLR + ln(prior odds of this set)) in 10 equal bins:
   parcels, mean posterior, share hiding goods, and the expected calibration error. An LLR
   that is right gives a posterior that is right at any prior.
3. Time: CPU seconds of one inspection (thread time, one torch thread): mean and 95th
   percentile, and the parcels per hour one core sustains on inspection alone.
"""

import argparse
import math
import platform
import shlex
import sys
import time

import numpy as np

from customs_lab.simulation import xray_evidence_set as evidence_set
from customs_lab.simulation.parcel_scene import THREAT_CLASSES
from customs_lab.xray.inspection import FEATURES, KIND_FEATURES, EvidenceModel


def auc(scores, positive) -> float:
    scores, positive = np.asarray(scores, dtype=float), np.asarray(positive, dtype=bool)
    pos, neg = scores[positive], scores[~positive]
    return float((pos[:, None] > neg[None, :]).mean()
                 + 0.5 * (pos[:, None] == neg[None, :]).mean())


def threshold_at(clean, rate: float) -> float:
    """Return the score above which `rate` of the clean scores lie."""
    ordered = np.sort(np.asarray(clean))[::-1]
    allowed = int(math.floor(rate * len(ordered)))
    return float(ordered[allowed]) if allowed < len(ordered) else -math.inf


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--count', type=int, default=600)
    parser.add_argument('--model', default='config/xray/parcel_evidence.json')
    parser.add_argument('--workers', type=int, default=2)
    args = parser.parse_args(argv)
    model = EvidenceModel.load(args.model)
    print('command: OPENBLAS_NUM_THREADS=1 tools/with_env.sh python '
          'benchmarks/bench_xray_evidence.py ' + shlex.join(sys.argv[1:] if argv is None
                                                            else argv))
    print(f'machine: {platform.processor() or platform.machine()}, python '
          f'{platform.python_version()}; model fitted on {model.meta.get("parcels")} parcels '
          f'(seed {model.meta.get("seed")}, scanner {model.meta.get("scanner_serial")}); '
          f'test: seed {evidence_set.TEST_SEED}, scanner {evidence_set.TEST_SERIAL}')
    started = time.time()
    records = evidence_set.generate(args.count, evidence_set.TEST_SEED,
                                    evidence_set.TEST_SERIAL, args.workers)
    print(f'{len(records)} parcels rendered and inspected in {time.time() - started:.0f} s')
    x, y = evidence_set.feature_matrix(records, model.manifest_mass)
    hidden = y == 1
    terms = [model.terms(dict(zip(FEATURES, row, strict=True))) for row in x]
    joint = np.array([sum(v for v, _ in t.values()) for t in terms])
    print(f'\n1. separation ({int(hidden.sum())} hiding goods, {int((~hidden).sum())} clean)')
    print(f'   AUC joint LLR {auc(joint, hidden):.3f}; ' + ', '.join(
        f'{kind} alone {auc([t[kind][0] for t in terms], hidden):.3f}'
        for kind in KIND_FEATURES))
    clean = joint[~hidden]
    cuts = {rate: threshold_at(clean, rate) for rate in (0.01, 0.05)}
    print(f'   clean parcels: median LLR {np.median(clean):+.2f}, LLR > 0 in '
          f'{np.mean(clean > 0):.1%}')
    print(f'   {"threat":<11} {"parcels":>7} {"@1% FA":>7} {"@5% FA":>7} {"LLR>0":>6} '
          f'{"median LLR":>10}')
    threats = np.array([r['hidden_threat'] for r in records])
    for name in (*THREAT_CLASSES, 'all'):
        chosen = hidden if name == 'all' else threats == name
        values = joint[chosen]
        print(f'   {name:<11} {len(values):>7} {np.mean(values > cuts[0.01]):>7.1%} '
              f'{np.mean(values > cuts[0.05]):>7.1%} {np.mean(values > 0):>6.1%} '
              f'{np.median(values):>+10.2f}')
    prior = math.log(hidden.sum() / (~hidden).sum())
    posterior = 1.0 / (1.0 + np.exp(-(joint + prior)))
    print(f'\n2. calibration: posterior = sigmoid(LLR {prior:+.3f}), 10 equal bins')
    print(f'   {"bin":<11} {"parcels":>7} {"mean p":>7} {"observed":>8}')
    ece = 0.0
    for k in range(10):
        low, high = k / 10, (k + 1) / 10
        inside = (posterior >= low) & ((posterior < high) if k < 9 else (posterior <= high))
        if not inside.any():
            continue
        mean, observed = posterior[inside].mean(), y[inside].mean()
        ece += inside.sum() / len(y) * abs(mean - observed)
        print(f'   {low:.1f}-{high:.1f}    {int(inside.sum()):>7} {mean:>7.3f} {observed:>8.3f}')
    print(f'   expected calibration error {ece:.3f}')
    cpu = np.array([r['cpu'] for r in records])
    print(f'\n3. inspection time, one core: mean {cpu.mean() * 1000:.0f} ms, 95th percentile '
          f'{np.percentile(cpu, 95) * 1000:.0f} ms per parcel ({records[0]["lines"]}+ lines x '
          f'352 pixels): {3600 / cpu.mean():,.0f} parcels/h')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
