"""Simulated parcel scans for the X-ray threat detector: generation, storage and loading.

    python -m customs_lab.simulation.xray_dataset --out DIR [--split train] [--count N]
        [--seed S] [--serials 101 102 ...] [--workers 2] [--concealment] [--keep-raw]

writes DIR/<split>.npz. Each parcel `index` of a split with seed S is drawn from its own
random streams (np.random.default_rng([S, index, k])), so a split is the same whatever the
number of workers, and any parcel can be regenerated alone (`simulate`):
- the contents (`draw`): 0, 1, 2 or 3 threats (probabilities THREAT_COUNT_P), each of a class
  drawn uniformly from THREAT_CLASSES (repeats allowed: two knives, three powder bags), a
  clutter level uniform in [0, 1], a random box of random goods (parcel_scene.random_scene;
  a draw whose contraband does not fit is drawn again), one of the split's scanners (serial
  seeds: each an XrayPhysics with its own pixel gains and dark offsets), 15-30 lines of empty
  belt before and after the parcel (the driver keeps 25), and a small drift of the tube output
  (+-1.5 % in 0.5 % steps) and of the dark offset (2 ADU rms) between the references and the
  parcel (the driver recalibrates at 2 %);
- the references measured as the scanner measures them: the mean of REFERENCE_LINES dark
  lines and of REFERENCE_LINES air lines (xray_firmware: a calibration run's sum over its
  lines), never the simulator's expected values;
- the parcel rendered with noise (XrayPhysics.render), assembled into an XrayScan with those
  references, and turned into the detector's input by customs_lab.xray.threats.prepare, exactly
  what ThreatDetector.detect computes (stored as float16: 1e-3 relative, far below the noise);
- the labels (`threat_boxes`): truth_boxes(scene, lead, groups=True) of the threat objects (a
  knife's blade and handle are one box), with their class index in THREAT_CLASSES; the bags of
  one powder consignment (the simulator's groups 'narcotics-0.0', 'narcotics-0.1', ...) are
  merged into one box where they lie on one another (the intersection covers at least
  STACK_OVERLAP of the smaller bag's box): stacked bags of one powder look like one thicker
  bag in a projection, no detector can split them, and an officer opens the stack anyway
  (without the merge two thirds of the powder boxes overlap another at IoU > 0.3);
- with `concealment`: per threat box, the median attenuation -ln T_low of everything else in
  the parcel over the box (the scene without its threats, rendered without noise): how much the
  clutter hides it.

Splits (`SPLITS`): train and val on disjoint scanners, test (the benchmark's held-out split)
with its own seed and scanners; train and val are refused the test's seed or scanners.
Generation runs on at most 2 processes (spawned, OPENBLAS_NUM_THREADS=1); a parcel costs
~0.4 s of CPU (~1 s with concealment).
"""

import argparse
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
import itertools
import json
import math
import multiprocessing
import os
import pathlib
import shlex
import sys
import time

import numpy as np

from customs_lab.simulation.parcel_scene import THREAT_CLASSES, ParcelScene, random_scene
from customs_lab.simulation.xray_physics import TruthBox, XrayPhysics
from customs_lab.xray import threats
from customs_lab.xray.scan import XrayScan
from customs_lab.xray.scanner_model import ScannerModel

VERSION = 2  # of the generator's recipe (bump when a drawn parcel or its labels change)
STACK_OVERLAP = 0.5  # share of the smaller box covered: bags of one consignment merged
MAX_WORKERS = 2
REFERENCE_LINES = 64  # lines averaged into a dark or air reference (the firmware's default)
THREAT_COUNT_P = (0.2, 0.45, 0.25, 0.1)  # P(0, 1, 2, 3 threats in a parcel)
MARGIN_LINES = (15, 30)  # empty-belt lines before and after a parcel (inclusive range)
DRIFT_STEPS = 3  # tube output drift: 1 + 0.005 k, k in [-3, 3]
DARK_SHIFT_RMS = 2.0  # ADU


@dataclass(frozen=True)
class Split:
    """A named dataset split: its seed, default size and scanners (serial seeds)."""

    name: str
    seed: int
    count: int
    serials: tuple


SPLITS = {
    'train': Split('train', 1, 3000, (101, 102, 103, 104)),
    'val': Split('val', 2, 500, (201, 202)),
    'test': Split('test', 20260915, 600, (301, 302)),  # held out: the benchmark's
}


@dataclass(frozen=True)
class Parcel:
    """What `draw` decides about one parcel."""

    seed: int
    index: int
    scene: ParcelScene
    threats: tuple  # the threat classes asked for
    clutter: float
    serial: int
    lead: int
    trail: int
    tube_output: float
    dark_shift: float


@dataclass
class Sample:
    """One simulated parcel: its scan, threat boxes and how it was drawn."""

    parcel: Parcel
    scan: XrayScan
    truth: list  # TruthBox of the threat objects (threat_boxes)
    concealment: list  # per truth box, median -ln T_low of the rest over it (nan if not asked)
    others: list  # TruthBox of every other content group (goods), to tell what a false alarm is


def _check_serials(serials) -> tuple:
    out = tuple(int(s) for s in serials)
    if not out or any(s < 0 for s in out):
        raise ValueError(f'serials must be non-negative integers, got {serials!r}')
    return out


def draw(seed: int, index: int, serials) -> Parcel:
    """Return parcel `index` of a split with `seed` (deterministic)."""
    serials = _check_serials(serials)
    rng = np.random.default_rng([int(seed), int(index), 0])
    count = int(rng.choice(len(THREAT_COUNT_P), p=THREAT_COUNT_P))
    asked = tuple(THREAT_CLASSES[int(k)] for k in rng.integers(0, len(THREAT_CLASSES), count))
    clutter = float(rng.uniform(0.0, 1.0))
    serial = serials[int(rng.integers(len(serials)))]
    lead, trail = (int(v) for v in rng.integers(MARGIN_LINES[0], MARGIN_LINES[1] + 1, 2))
    output = 1.0 + 0.005 * int(rng.integers(-DRIFT_STEPS, DRIFT_STEPS + 1))
    shift = float(rng.normal(0.0, DARK_SHIFT_RMS))
    waybill = f'SIM{int(seed) % 10**6:06d}{int(index):06d}'
    wanted = asked
    for attempt in range(12):
        try:
            scene = random_scene(rng, threats=wanted, clutter=clutter, waybill=waybill)
            break
        except ValueError:
            if attempt >= 5 and wanted:  # three threats in the smallest box: give one up
                wanted = wanted[:-1]
    else:
        scene = random_scene(rng, threats=(), clutter=clutter, waybill=waybill)
        wanted = ()
    return Parcel(int(seed), int(index), scene, wanted, clutter, serial, lead, trail, output,
                  shift)


_PHYSICS: dict = {}


def physics_for(serial: int, model: ScannerModel | None = None) -> XrayPhysics:
    """Return the (cached, per process) simulated scanner of a serial seed."""
    model = model or ScannerModel()
    key = (int(serial), model)
    if key not in _PHYSICS:
        _PHYSICS[key] = XrayPhysics(model, int(serial))
    return _PHYSICS[key]


def measure_references(physics: XrayPhysics, rng, lines: int = REFERENCE_LINES
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Return (dark, air) (3, pixels) ADU: the mean of `lines` dark and air lines."""
    dark = np.stack(physics.dark_lines(lines, rng)).astype(float).mean(axis=1)
    air = np.stack(physics.air_lines(lines, rng)).astype(float).mean(axis=1)
    return dark, air


def make_scan(physics: XrayPhysics, low, high, back, dark, air, waybill: str = '',
              serial: str = '') -> XrayScan:
    """Return the XrayScan the driver would assemble of rendered lines and references."""
    model = physics.model
    return XrayScan('xray_sim', waybill, 0, 0.0, model.line_period, model.belt_speed,
                    model.belt_pitch, low, high, back, dark, air, model.kvp,
                    model.tube_current_ma, model.model, serial)


def concealment(physics: XrayPhysics, parcel: Parcel, truth) -> list[float]:
    """Return per truth box the median -ln T_low of the parcel without its threats over it."""
    rest = replace(parcel.scene, objects=tuple(o for o in parcel.scene.objects if not o.threat))
    output, shift = physics.tube_output, physics.dark_shift
    physics.set_drift(1.0, 0.0)
    try:
        expected = physics.expected(rest, parcel.lead, parcel.trail)[0]
        air = physics.expected_air()[0]
    finally:
        physics.set_drift(output, shift)
    attenuation = -np.log(np.clip(expected / air, 1e-6, None))
    return [float(np.median(attenuation[b.first_line:b.last_line + 1,
                                        b.first_pixel:b.last_pixel + 1])) for b in truth]


def _item(name: str) -> str:
    """Return the contraband item a threat box belongs to ('narcotics-0.1' -> 'narcotics-0')."""
    first = name.split('+')[0]
    return first.rsplit('.', 1)[0] if '.' in first else first


def _covered(a: TruthBox, b: TruthBox) -> float:
    """Return the share of the smaller of two boxes that their intersection covers."""
    lines = min(a.last_line, b.last_line) - max(a.first_line, b.first_line) + 1
    pixels = min(a.last_pixel, b.last_pixel) - max(a.first_pixel, b.first_pixel) + 1
    if lines <= 0 or pixels <= 0:
        return 0.0
    area = min((box.last_line - box.first_line + 1) * (box.last_pixel - box.first_pixel + 1)
               for box in (a, b))
    return lines * pixels / area


def merge_stacked(boxes, overlap: float = STACK_OVERLAP) -> list[TruthBox]:
    """Merge the boxes of one item's parts (powder bags) that lie mostly on one another.

    Boxes of the same threat class and item whose intersection covers at least `overlap` of
    the smaller one become their union (named 'a+b', the first one's material), repeatedly.
    """
    boxes = list(boxes)
    changed = True
    while changed:
        changed = False
        for i, j in itertools.combinations(range(len(boxes)), 2):
            a, b = boxes[i], boxes[j]
            if (a.threat == b.threat and _item(a.name) == _item(b.name)
                    and _covered(a, b) >= overlap):
                boxes[i] = replace(a, name=f'{a.name}+{b.name}',
                                   first_line=min(a.first_line, b.first_line),
                                   last_line=max(a.last_line, b.last_line),
                                   first_pixel=min(a.first_pixel, b.first_pixel),
                                   last_pixel=max(a.last_pixel, b.last_pixel))
                del boxes[j]
                changed = True
                break
    return sorted(boxes, key=lambda box: (box.first_line, box.first_pixel, box.name))


def threat_boxes(physics: XrayPhysics, scene: ParcelScene, lead: int) -> list[TruthBox]:
    """Return the labels of a rendered scene: its threat boxes, stacked bags merged."""
    return merge_stacked(box for box in physics.truth_boxes(scene, lead, groups=True)
                         if box.threat)


def simulate(seed: int, index: int, serials, with_concealment: bool = False,
             model: ScannerModel | None = None) -> Sample:
    """Return parcel `index` of a split: drawn, referenced, rendered, labelled."""
    parcel = draw(seed, index, serials)
    physics = physics_for(parcel.serial, model)
    rng = np.random.default_rng([int(seed), int(index), 1])
    physics.set_drift(1.0, 0.0)
    dark, air = measure_references(physics, rng)
    physics.set_drift(parcel.tube_output, parcel.dark_shift)
    try:
        low, high, back = physics.render(parcel.scene, rng, parcel.lead, parcel.trail)
    finally:
        physics.set_drift(1.0, 0.0)
    scan = make_scan(physics, low, high, back, dark, air, parcel.scene.waybill,
                     f'SIM-{parcel.serial}')
    truth = threat_boxes(physics, parcel.scene, parcel.lead)
    hidden = (concealment(physics, parcel, truth) if with_concealment and truth
              else [math.nan] * len(truth))
    others = [box for box in physics.truth_boxes(parcel.scene, parcel.lead, groups=True)
              if not box.threat]
    return Sample(parcel, scan, truth, hidden, others)


def _init_worker():
    os.environ['OPENBLAS_NUM_THREADS'] = '1'
    threats.torch.set_num_threads(1)


def _simulate_job(job) -> Sample:
    seed, index, serials, with_concealment = job
    return simulate(seed, index, serials, with_concealment)


def samples(seed: int, count: int, serials, workers: int = MAX_WORKERS,
            with_concealment: bool = False, start: int = 0, progress=None):
    """Yield the Samples of parcels start .. start + count - 1 in order (<= 2 processes)."""
    serials = _check_serials(serials)
    workers = int(workers)
    if not 1 <= workers <= MAX_WORKERS:
        raise ValueError(f'workers must be 1 or 2, got {workers}')
    if count < 0:
        raise ValueError(f'count must be >= 0, got {count}')
    jobs = [(int(seed), index, serials, bool(with_concealment))
            for index in range(start, start + count)]
    began = time.monotonic()
    if workers == 1:
        results = map(_simulate_job, jobs)
        pool = None
    else:
        os.environ['OPENBLAS_NUM_THREADS'] = '1'  # inherited by the spawned workers
        pool = ProcessPoolExecutor(max_workers=workers,
                                   mp_context=multiprocessing.get_context('spawn'),
                                   initializer=_init_worker)
        results = pool.map(_simulate_job, jobs, chunksize=4)
    try:
        for done, sample in enumerate(results, 1):
            if progress is not None and (done % 100 == 0 or done == count):
                progress(f'{done}/{count} parcels, {time.monotonic() - began:.0f} s')
            yield sample
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)


def to_arrays(items, keep_raw: bool = False) -> dict:
    """Return the .npz arrays of Samples: features, labels, metadata (and raw scans)."""
    features, offsets, lines = [], [0], []
    image, boxes = {'clutter': [], 'serial': [], 'threat_count': [], 'index': [],
                    'tube_output': []}, []
    raw, references = [], []
    for number, sample in enumerate(items):
        scan, parcel = sample.scan, sample.parcel
        prepared = threats.prepare(scan)
        features.append(prepared.astype(np.float16))
        offsets.append(offsets[-1] + prepared.shape[1])
        lines.append(scan.lines)
        image['clutter'].append(parcel.clutter)
        image['serial'].append(parcel.serial)
        image['threat_count'].append(len(sample.truth))
        image['index'].append(parcel.index)
        image['tube_output'].append(parcel.tube_output)
        for box, hidden in zip(sample.truth, sample.concealment, strict=True):
            boxes.append((number, THREAT_CLASSES.index(box.threat), box.first_line,
                          box.last_line, box.first_pixel, box.last_pixel, hidden, box.name,
                          box.material))
        if keep_raw:
            raw.append(np.stack([scan.low, scan.high, scan.back]))
            references.append(np.stack([scan.dark, scan.air]).astype(np.float32))
    pixels = features[0].shape[2] if features else 0
    out = {
        'features': (np.concatenate(features, axis=1) if features
                     else np.zeros((len(threats.FEATURES), 0, pixels), np.float16)),
        'offsets': np.asarray(offsets, dtype=np.int64),
        'lines': np.asarray(lines, dtype=np.int32),
        'clutter': np.asarray(image['clutter'], dtype=np.float32),
        'serial': np.asarray(image['serial'], dtype=np.int32),
        'threat_count': np.asarray(image['threat_count'], dtype=np.int16),
        'index': np.asarray(image['index'], dtype=np.int64),
        'tube_output': np.asarray(image['tube_output'], dtype=np.float32),
        'box_image': np.asarray([b[0] for b in boxes], dtype=np.int32),
        'box_class': np.asarray([b[1] for b in boxes], dtype=np.int8),
        'box': np.asarray([b[2:6] for b in boxes], dtype=np.int32).reshape(-1, 4),
        'box_concealment': np.asarray([b[6] for b in boxes], dtype=np.float32),
        'box_name': np.asarray([b[7] for b in boxes], dtype=str),
        'box_material': np.asarray([b[8] for b in boxes], dtype=str),
    }
    if keep_raw:
        out['raw'] = np.concatenate(raw, axis=1)
        out['references'] = np.stack(references)
    return out


class ThreatDataset:
    """A split loaded from its .npz: per image features, lines and boxes."""

    def __init__(self, arrays: dict, meta: dict | None = None):
        """Wrap the arrays of `to_arrays` (checked for consistency: ValueError)."""
        self.arrays = arrays
        self.meta = dict(meta or {})
        self.offsets = np.asarray(arrays['offsets'])
        n = len(self.offsets) - 1
        for key in ('lines', 'clutter', 'serial', 'threat_count'):
            if len(arrays[key]) != n:
                raise ValueError(f'{key}: {len(arrays[key])} entries for {n} images')
        if n and self.offsets[-1] != arrays['features'].shape[1]:
            raise ValueError('offsets do not add up to the features')
        self.box_image = np.asarray(arrays['box_image'])
        self.box_class = np.asarray(arrays['box_class']).astype(int)
        self.box = np.asarray(arrays['box']).reshape(-1, 4)
        order = np.argsort(self.box_image, kind='stable')
        self._box_start = np.searchsorted(self.box_image[order], np.arange(n + 1))
        self._box_order = order

    def __len__(self) -> int:
        """Return the number of images."""
        return len(self.offsets) - 1

    @property
    def lines(self) -> np.ndarray:
        """Return each image's raw line count."""
        return np.asarray(self.arrays['lines'])

    def features(self, i: int) -> np.ndarray:
        """Return image i's features (4, ceil(lines / 2), pixels / 2) float32."""
        return self.arrays['features'][:, self.offsets[i]:self.offsets[i + 1]].astype(
            np.float32)

    def boxes(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Return image i's threat boxes (m, 4) (raw, inclusive) and class indices (m,)."""
        rows = self._box_order[self._box_start[i]:self._box_start[i + 1]]
        return self.box[rows], self.box_class[rows]

    def box_rows(self, i: int) -> np.ndarray:
        """Return the rows of the box arrays of image i."""
        return self._box_order[self._box_start[i]:self._box_start[i + 1]]

    def raw(self, i: int) -> tuple[np.ndarray, np.ndarray] | None:
        """Return image i's raw (3, lines, pixels) uint16 and (2, 3, pixels) dark/air, if kept."""
        if 'raw' not in self.arrays:
            return None
        start = int(np.sum(self.lines[:i]))
        return (self.arrays['raw'][:, start:start + self.lines[i]],
                self.arrays['references'][i])


def save(path, arrays: dict, meta: dict):
    """Write a split's arrays and metadata (JSON) to an .npz file."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, meta=np.asarray(json.dumps(meta, sort_keys=True)), **arrays)


def load(path) -> ThreatDataset:
    """Read a split written by `save` (ValueError if it is not one)."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise ValueError(f'{path}: no such dataset file')
    with np.load(path, allow_pickle=False) as data:
        arrays = {key: data[key] for key in data.files if key != 'meta'}
        meta = json.loads(str(data['meta'])) if 'meta' in data.files else {}
    if meta.get('feature_version') != threats.FEATURE_VERSION:
        raise ValueError(f'{path}: features of version {meta.get("feature_version")}, the '
                         f'detector reads {threats.FEATURE_VERSION}: regenerate it')
    return ThreatDataset(arrays, meta)


def check_split(name: str, seed: int, serials) -> None:
    """Refuse a train or val split that would share the test split's seed or scanners."""
    test = SPLITS['test']
    if name != 'test' and (int(seed) == test.seed or set(serials) & set(test.serials)):
        raise ValueError(f"the {name} split must not use the test split's seed {test.seed} or "
                         f'scanners {test.serials}')


def generate(out_dir, split: str = 'train', count: int | None = None,
             seed: int | None = None, serials=None, workers: int = MAX_WORKERS,
             with_concealment: bool | None = None, keep_raw: bool = False,
             command: str = '', progress=None) -> pathlib.Path:
    """Generate a split into out_dir/<split>.npz and return its path."""
    if split not in SPLITS:
        raise ValueError(f'unknown split {split!r} (known: {tuple(SPLITS)})')
    spec = SPLITS[split]
    count = spec.count if count is None else int(count)
    seed = spec.seed if seed is None else int(seed)
    serials = _check_serials(spec.serials if serials is None else serials)
    check_split(split, seed, serials)
    with_concealment = (split == 'test') if with_concealment is None else bool(with_concealment)
    began, cpu = time.monotonic(), time.process_time()
    items = list(samples(seed, count, serials, workers, with_concealment, progress=progress))
    arrays = to_arrays(items, keep_raw)
    meta = {'split': split, 'seed': seed, 'count': count, 'serials': list(serials),
            'generator_version': VERSION, 'feature_version': threats.FEATURE_VERSION,
            'features': list(threats.FEATURES), 'threat_classes': list(THREAT_CLASSES),
            'concealment': with_concealment, 'reference_lines': REFERENCE_LINES,
            'threat_count_p': list(THREAT_COUNT_P), 'command': command,
            'wall_seconds': round(time.monotonic() - began, 1),
            'parent_cpu_seconds': round(time.process_time() - cpu, 1)}
    path = pathlib.Path(out_dir) / f'{split}.npz'
    save(path, arrays, meta)
    return path


def truth_summary(truth: list[TruthBox]) -> dict:
    """Return {threat class: number of boxes} of a sample's truth."""
    out = {name: 0 for name in THREAT_CLASSES}
    for box in truth:
        out[box.threat] += 1
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--out', required=True, help='directory for <split>.npz')
    parser.add_argument('--split', default='train', choices=tuple(SPLITS))
    parser.add_argument('--count', type=int, default=None, help='parcels (split default)')
    parser.add_argument('--seed', type=int, default=None, help='split seed (split default)')
    parser.add_argument('--serials', type=int, nargs='+', default=None,
                        help='scanner serial seeds (split default)')
    parser.add_argument('--workers', type=int, default=MAX_WORKERS, help='processes (1 or 2)')
    parser.add_argument('--concealment', action=argparse.BooleanOptionalAction, default=None,
                        help="compute each threat box's concealment (default: test split)")
    parser.add_argument('--keep-raw', action='store_true',
                        help='also store the raw scans and references')
    args = parser.parse_args(argv)
    command = 'python -m customs_lab.simulation.xray_dataset ' + shlex.join(
        sys.argv[1:] if argv is None else list(argv))
    try:
        path = generate(args.out, args.split, args.count, args.seed, args.serials,
                        args.workers, args.concealment, args.keep_raw, command,
                        progress=lambda text: print(text, file=sys.stderr, flush=True))
    except ValueError as error:
        print(f'error: {error}', file=sys.stderr)
        return 2
    data = load(path)
    counts = np.bincount(data.box_class, minlength=len(THREAT_CLASSES))
    print(f'{path}: {len(data)} parcels, threat boxes ' + ', '.join(
        f'{name} {int(n)}' for name, n in zip(THREAT_CLASSES, counts, strict=True))
        + f'; {data.meta["wall_seconds"]} s')
    return 0


if __name__ == '__main__':
    sys.exit(main())
