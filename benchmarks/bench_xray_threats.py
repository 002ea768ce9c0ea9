"""X-ray threat detection benchmark: per-class AP, precision/recall, calibration, CPU time.

    tools/with_env.sh python benchmarks/bench_xray_threats.py
        [--model config/xray/threat_detector.pt] [--count 600] [--seed 20260915]
        [--serials 301 302] [--workers 2] [--cpu 0]

About 5 minutes with the defaults on 2 free cores (most of it rendering the parcels). The
held-out test split of customs_lab.simulation.xray_dataset (SPLITS['test']: its own seed and
two scanners, serial seeds 301 and 302, that neither the training nor the calibration saw) is
regenerated here from its seed, with the concealment of every threat box, on `--workers`
processes; then the processes are gone and the detector runs alone, pinned to one core
(`--cpu`, os.sched_setaffinity) with one torch thread, on every parcel's XrayScan, as the
inspection node would call it (ThreatDetector.detect: calibrated channels, features, network,
decoding, calibration).

Printed:
1. Per class: average precision at IoU 0.5 and at a looser 0.3 (PASCAL VOC 2010-2012
   convention: every detection down to the detector's floor ranked by score, greedy matching
   in score order to the unmatched truth box of highest IoU, duplicates false, the area under
   the precision-recall curve made monotone, all points; not COCO's 101-point average over
   IoU 0.5:0.95), mAP over the 4 classes; precision and recall of the detections whose
   calibrated score is >= 0.5 (what an alarm at 0.5 would give).
2. The same by clutter level (the scene's packing parameter: low < 1/3, medium, high >= 2/3;
   parcels as a whole) and, per threat box, recall at score 0.5 by concealment: the median
   attenuation -ln T_low of the rest of the parcel over the box (light < 0.5, medium 0.5-1.5,
   heavy >= 1.5, i.e. the other contents let through > 61 %, 22-61 %, < 22 % of the low-energy
   beam there). Threat-free parcels: share with an alarm (any detection >= 0.5).
3. Calibration: reliability table (10 equal bins of calibrated score: detections, mean score,
   share true at the calibration's IoU) and the expected calibration error, over all classes
   and per class, for detections >= 0.05.
4. Time per parcel (detect(), one core): mean and 95th percentile, wall and CPU (thread time;
   wall above CPU is the core taken by other processes), and the scans' sizes.
"""

import argparse
import math
import os
import pathlib
import platform
import shlex
import sys
import time

import numpy as np

from customs_lab.simulation import xray_dataset
from customs_lab.simulation.parcel_scene import THREAT_CLASSES
from customs_lab.xray import threats
from customs_lab.xray.threats import ThreatDetector

ROOT = pathlib.Path(__file__).resolve().parents[1]
CLUTTER_LEVELS = (('low', 0.0, 1 / 3), ('medium', 1 / 3, 2 / 3), ('high', 2 / 3, 1.01))
CONCEALMENT_LEVELS = (('light', -math.inf, 0.5), ('medium', 0.5, 1.5), ('heavy', 1.5, math.inf))
ALARM = 0.5


class Results:
    """Every parcel's detections and truth, flattened for matching."""

    def __init__(self, items):
        """items: [(detections, truth boxes (m, 4), truth classes, concealment, clutter)]."""
        self.items = items
        self.clutter = np.array([item[4] for item in items])

    def match(self, iou: float, threshold: float = 0.0, images=None):
        """Return (detections [(class, score, true, image)], truths [(class, conceal, hit)])."""
        images = range(len(self.items)) if images is None else images
        records, truths = [], []
        for i in images:
            detections, boxes, classes, hidden, _ = self.items[i]
            for c, name in enumerate(THREAT_CLASSES):
                mine = [d for d in detections if d.threat == name and d.score >= threshold]
                theirs = boxes[classes == c]
                which, taken = threats.match([d.box for d in mine], [d.score for d in mine],
                                             theirs, iou)
                records += [(c, d.score, w >= 0, i) for d, w in zip(mine, which, strict=True)]
                truths += [(c, h, t >= 0) for h, t in zip(hidden[classes == c], taken,
                                                          strict=True)]
        return records, truths


def ap_table(results: Results, iou: float, images=None) -> dict:
    records, truths = results.match(iou, 0.0, images)
    out = {}
    for c, name in enumerate(THREAT_CLASSES):
        mine = [r for r in records if r[0] == c]
        count = sum(1 for t in truths if t[0] == c)
        out[name] = threats.average_precision([r[1] for r in mine], [r[2] for r in mine], count)
    values = [out[name] for name in THREAT_CLASSES if not math.isnan(out[name])]
    out['mAP'] = float(np.mean(values)) if values else math.nan
    return out


def pr_table(results: Results, iou: float, images=None) -> dict:
    records, truths = results.match(iou, ALARM, images)
    out = {}
    for c, name in enumerate(THREAT_CLASSES):
        hits = [r[2] for r in records if r[0] == c]
        found = [t[2] for t in truths if t[0] == c]
        out[name] = (float(np.mean(hits)) if hits else math.nan,
                     float(np.mean(found)) if found else math.nan, len(hits), len(found))
    hits = [r[2] for r in records]
    found = [t[2] for t in truths]
    out['all'] = (float(np.mean(hits)) if hits else math.nan,
                  float(np.mean(found)) if found else math.nan, len(hits), len(found))
    return out


def _f(value, digits: int = 3) -> str:
    return '  n/a' if value is None or (isinstance(value, float) and math.isnan(value)) else (
        f'{value:.{digits}f}')


def print_ap(title: str, results: Results, images=None):
    print(f'  {title}')
    print('    AP at IoU   ' + ''.join(f'{name:>12}' for name in THREAT_CLASSES) + '         mAP')
    for iou in (0.5, 0.3):
        table = ap_table(results, iou, images)
        cells = [_f(table[name]) for name in (*THREAT_CLASSES, 'mAP')]
        print(f'    {iou:.1f}         ' + ''.join(f'{cell:>12}' for cell in cells))
    print(f'    at score >= {ALARM}' + ''.join(f'{name:>12}' for name in THREAT_CLASSES)
          + '         all')
    for iou in (0.5, 0.3):
        table = pr_table(results, iou, images)
        keys = (*THREAT_CLASSES, 'all')
        print(f'    precision {iou:.1f}' + ''.join(f'{_f(table[k][0]):>12}' for k in keys))
        print(f'    recall {iou:.1f}   ' + ''.join(f'{_f(table[k][1]):>12}' for k in keys))
    table = pr_table(results, 0.5, images)
    print('    (alarms, truths)' + ''.join(f'{f"({table[k][2]}, {table[k][3]})":>12}'
                                             for k in (*THREAT_CLASSES, 'all')))


def false_alarms(samples, items):
    """Print what lies under the alarms (>= ALARM) that match no truth box of their class.

    Each is put down to the content box it overlaps most (IoU): a threat of another class, or
    goods as '<goods kind>: <material of the kit's heaviest part>'.
    """
    tally = {}
    for sample, (detections, boxes, classes, _, _) in zip(samples, items, strict=True):
        for d in detections:
            if d.score < ALARM:
                continue
            c = THREAT_CLASSES.index(d.threat)
            mine = boxes[classes == c]
            if len(mine) and threats.box_iou([d.box], mine).max() >= 0.3:
                continue
            content = sample.truth + sample.others
            overlap = threats.box_iou([d.box], [(b.first_line, b.last_line, b.first_pixel,
                                                  b.last_pixel) for b in content])[0] if (
                content) else np.zeros(0)
            if not len(overlap) or overlap.max() < 0.1:
                cause = 'nothing (IoU < 0.1 with every content box)'
            else:
                box = content[int(np.argmax(overlap))]
                cause = (f'a {box.threat} (threat)' if box.threat else
                         f'{box.name.split(".", 1)[-1].rsplit("-", 1)[0]}: {box.material}')
            tally.setdefault(d.threat, {}).setdefault(cause, 0)
            tally[d.threat][cause] += 1
    total = sum(sum(causes.values()) for causes in tally.values())
    print(f'    alarms matching no truth box of their class at IoU 0.3: {total}, by class and '
          'what they overlap most:')
    for name in THREAT_CLASSES:
        causes = sorted(tally.get(name, {}).items(), key=lambda kv: -kv[1])
        if causes:
            print(f'      {name} ({sum(n for _, n in causes)}): '
                  + ', '.join(f'{cause} {n}' for cause, n in causes))


def main(argv=None) -> int:
    split = xray_dataset.SPLITS['test']
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--model', default=str(ROOT / 'config/xray/threat_detector.pt'))
    parser.add_argument('--count', type=int, default=split.count)
    parser.add_argument('--seed', type=int, default=split.seed)
    parser.add_argument('--serials', type=int, nargs='+', default=list(split.serials))
    parser.add_argument('--workers', type=int, default=2, help='rendering processes (1 or 2)')
    parser.add_argument('--cpu', type=int, default=0, help='core the detector is pinned to')
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    print('command: tools/with_env.sh python benchmarks/bench_xray_threats.py '
          + shlex.join(argv))
    print(f'host: {platform.node()}, {os.cpu_count()} cores, {platform.processor() or "cpu"}, '
          f'torch {threats.torch.__version__}')
    xray_dataset.check_split('test', args.seed, args.serials)
    detector = ThreatDetector.load(args.model, threads=1, min_score=0.0)
    training = detector.meta.get('training', {})
    print(f'model: {args.model} ({pathlib.Path(args.model).stat().st_size / 1024:.0f} kB, '
          f'{detector.meta["architecture"]["parameters"]} parameters); trained by '
          f'`{training.get("command", "?")}` on {training.get("date", "?")}; calibration '
          f'{detector.calibration.note} (IoU {detector.calibration.iou})')
    began = time.monotonic()
    samples = list(xray_dataset.samples(args.seed, args.count, args.serials, args.workers,
                                        with_concealment=True))
    print(f'test split: {len(samples)} parcels (seed {args.seed}, scanners {args.serials}), '
          f'rendered in {time.monotonic() - began:.0f} s on {args.workers} processes')

    os.sched_setaffinity(0, {args.cpu})
    for sample in samples[:3]:  # warm-up
        detector.detect(sample.scan)
    items, wall, cpu, sizes = [], [], [], []
    for sample in samples:
        t0, c0 = time.perf_counter_ns(), time.thread_time_ns()
        detections = detector.detect(sample.scan)
        cpu.append((time.thread_time_ns() - c0) / 1e9)
        wall.append((time.perf_counter_ns() - t0) / 1e9)
        sizes.append(sample.scan.lines)
        boxes = np.array([[b.first_line, b.last_line, b.first_pixel, b.last_pixel]
                          for b in sample.truth], dtype=int).reshape(-1, 4)
        classes = np.array([THREAT_CLASSES.index(b.threat) for b in sample.truth], dtype=int)
        items.append((detections, boxes, classes, np.asarray(sample.concealment, dtype=float),
                      sample.parcel.clutter))
    results = Results(items)
    counts = np.bincount(np.concatenate([item[2] for item in items]),
                         minlength=len(THREAT_CLASSES))
    empty = [i for i, item in enumerate(items) if not len(item[1])]
    print('threat boxes: ' + ', '.join(f'{name} {int(n)}' for name, n in
                                         zip(THREAT_CLASSES, counts, strict=True))
          + f'; {len(empty)} threat-free parcels')

    print('\n1. Average precision (VOC 2010-2012 all points, greedy matching) and P/R at '
          f'calibrated score >= {ALARM}')
    print_ap(f'all {len(items)} parcels', results)

    print('\n2a. By clutter level (parcels)')
    for name, lo, hi in CLUTTER_LEVELS:
        subset = [i for i in range(len(items)) if lo <= results.clutter[i] < hi]
        boxes = sum(len(items[i][1]) for i in subset)
        print_ap(f'clutter {name} [{lo:.2f}, {min(hi, 1.0):.2f}): {len(subset)} parcels, '
                 f'{boxes} threat boxes', results, subset)
    print(f'\n2b. Recall at calibrated score >= {ALARM} by concealment (median -ln T_low of the '
          'rest of the parcel over the threat box)')
    print('    level     [from, to)   ' + ''.join(f'{name:>16}' for name in THREAT_CLASSES)
          + '             all')
    for iou in (0.5, 0.3):
        _, truths = results.match(iou, ALARM)
        print(f'    IoU {iou}')
        for name, lo, hi in CONCEALMENT_LEVELS:
            mine = [t for t in truths if lo <= t[1] < hi]
            cells = []
            for c in range(len(THREAT_CLASSES)):
                hit = [t[2] for t in mine if t[0] == c]
                cells.append(f'{_f(np.mean(hit) if hit else math.nan, 2)} ({len(hit)})')
            hit = [t[2] for t in mine]
            cells.append(f'{_f(np.mean(hit) if hit else math.nan, 2)} ({len(hit)})')
            print(f'    {name:<8}  [{lo:>4}, {hi:>4})' + ''.join(f'{c:>16}' for c in cells))
    false_alarms(samples, items)
    alarms = [i for i in empty if any(d.score >= ALARM for d in items[i][0])]
    false_per_parcel = np.mean([sum(d.score >= ALARM for d in items[i][0]) for i in empty]
                               ) if empty else math.nan
    print(f'    threat-free parcels with an alarm (a detection >= {ALARM}): {len(alarms)} of '
          f'{len(empty)} ({_f(len(alarms) / max(len(empty), 1), 3)}), '
          f'{_f(false_per_parcel, 3)} detections >= {ALARM} per threat-free parcel')

    iou = detector.calibration.iou
    records, _ = results.match(iou, threats.DEFAULT_MIN_SCORE)
    print(f'\n3. Calibration (detections >= {threats.DEFAULT_MIN_SCORE}, true = matches its '
          f'class at IoU {iou})')
    ece, table = threats.expected_calibration_error([r[1] for r in records],
                                                    [r[2] for r in records])
    print('    score bin      detections  mean score  share true')
    for lo, hi, n, mean, share in table:
        print(f'    [{lo:.1f}, {hi:.1f})  {n:>12}  {mean:>10.3f}  {share:>10.3f}')
    per_class = []
    for c, name in enumerate(THREAT_CLASSES):
        mine = [r for r in records if r[0] == c]
        value, _ = threats.expected_calibration_error([r[1] for r in mine], [r[2] for r in mine])
        per_class.append(f'{name} {value:.3f} ({len(mine)})')
    print(f'    ECE (10 bins): all {ece:.3f} ({len(records)} detections); ' + ', '.join(per_class))

    wall, cpu = np.array(wall), np.array(cpu)
    print(f'\n4. Time per parcel, detect() on core {args.cpu}, 1 torch thread '
          f'({len(wall)} parcels of {int(np.min(sizes))}-{int(np.max(sizes))} lines, median '
          f'{int(np.median(sizes))}, x {detector.pixels} pixels)')
    print(f'    wall: mean {1e3 * wall.mean():.1f} ms, p95 '
          f'{1e3 * np.percentile(wall, 95):.1f} ms, max {1e3 * wall.max():.1f} ms')
    print(f'    CPU:  mean {1e3 * cpu.mean():.1f} ms, p95 '
          f'{1e3 * np.percentile(cpu, 95):.1f} ms, max {1e3 * cpu.max():.1f} ms')
    return 0


if __name__ == '__main__':
    sys.exit(main())
