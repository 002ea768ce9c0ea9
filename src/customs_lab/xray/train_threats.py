"""Training of the X-ray threat detector (customs_lab.xray.threats) on simulated parcels.

    python -m customs_lab.xray.train_threats --data DIR --out config/xray/threat_detector.pt
        [--epochs 14] [--batch 16] [--lr 0.002] [--seed 7] [--threads 2]
        [--calibration-iou 0.5]

DIR holds train.npz and val.npz of customs_lab.simulation.xray_dataset (generate them under
/tmp, never in the repository):

    python -m customs_lab.simulation.xray_dataset --out DIR --split train --count 3000 --seed 1
    python -m customs_lab.simulation.xray_dataset --out DIR --split val --count 500 --seed 2

CPU only, `--threads` torch threads (2 at most on the shared machine), a fixed seed (the
batches, the flips and the initial weights follow from it). Targets (TTFNet, Liu et al. 2020):
per class a heatmap with an elliptical Gaussian at each box's centre cell (sigma = 0.54 x the
box's extent / 6 per axis, at least 0.4 cell), trained with CenterNet's focal loss (alpha 2,
beta 4; Zhou et al. 2019); the box's four sides regressed at the cells of the Gaussian's core
inside the box (Gaussian > 0.1; smaller boxes win a shared cell) with a GIoU loss weighted by
the Gaussian and log of the box's area (weight 5). Augmentation: flips along the belt and
across it (the scanner's geometry is symmetric in both). AdamW, one-cycle learning rate
(warm-up 5 %, cosine decay). The losses are printed every 50 steps and per epoch.

After training: the detector is run on the val split (scanners the training never saw), the
per-class Platt calibration fitted on its detections (a detection is true if it matches an
unmatched box of its class at --calibration-iou), and the model file written with the training's
record: the command, the datasets' seeds, scanners and generator version, the code version (git
commit and the SHA-256 of the files that define the model and its data), the per-epoch losses,
the CPU and wall time, the validation's AP and calibration error.
"""

import argparse
import datetime
import hashlib
import math
import pathlib
import shlex
import subprocess
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 (the usual torch alias)

from customs_lab.simulation import xray_dataset
from customs_lab.xray import threats
from customs_lab.xray.threats import (
    ALIGN,
    CLASSES,
    DOWNSAMPLE,
    STRIDE,
    Calibration,
    ThreatDetector,
    ThreatNet,
)

ROOT = pathlib.Path(__file__).resolve().parents[3]
GAUSSIAN_ALPHA = 0.54  # TTFNet: sigma = alpha x extent / 6
MIN_SIGMA = 0.4  # cells
REGRESSION_CORE = 0.1  # cells whose Gaussian exceeds this regress the box
BOX_WEIGHT = 5.0
CODE_FILES = ('src/customs_lab/xray/threats.py', 'src/customs_lab/xray/train_threats.py',
              'src/customs_lab/simulation/xray_dataset.py',
              'src/customs_lab/simulation/xray_physics.py',
              'src/customs_lab/simulation/parcel_scene.py')
CELL = DOWNSAMPLE * STRIDE  # raw pixels per output cell


def targets(boxes, classes, height: int, width: int, count: int = len(CLASSES)):
    """Return the targets of one image of `height` x `width` input pixels.

    boxes: (m, 4) raw inclusive (first_line, last_line, first_pixel, last_pixel); classes (m,).
    Returns heat (count, h, w), box (4, h, w) (top, left, bottom, right in cells) and weight
    (h, w), on the grid of the image padded to a multiple of ALIGN (h = padded height / 4).
    """
    h = -(-height // ALIGN) * ALIGN // STRIDE
    w = -(-width // ALIGN) * ALIGN // STRIDE
    heat = np.zeros((count, h, w), np.float32)
    box = np.zeros((4, h, w), np.float32)
    weight = np.zeros((h, w), np.float32)
    boxes = np.asarray(boxes, dtype=float).reshape(-1, 4)
    area = (boxes[:, 1] - boxes[:, 0] + 1) * (boxes[:, 3] - boxes[:, 2] + 1)
    rows, cols = np.arange(h)[:, None], np.arange(w)[None, :]
    for k in np.argsort(-area, kind='stable'):  # small boxes last: they keep shared cells
        y1, y2 = boxes[k, 0] / CELL, (boxes[k, 1] + 1) / CELL
        x1, x2 = boxes[k, 2] / CELL, (boxes[k, 3] + 1) / CELL
        py = min(int((y1 + y2) / 2), h - 1)
        px = min(int((x1 + x2) / 2), w - 1)
        sy = max(GAUSSIAN_ALPHA * (y2 - y1) / 6.0, MIN_SIGMA)
        sx = max(GAUSSIAN_ALPHA * (x2 - x1) / 6.0, MIN_SIGMA)
        g = np.exp(-(rows - py) ** 2 / (2 * sy * sy) - (cols - px) ** 2 / (2 * sx * sx))
        c = int(classes[k])
        heat[c] = np.maximum(heat[c], g)
        inside = ((rows + 0.5 >= y1) & (rows + 0.5 <= y2) & (cols + 0.5 >= x1)
                  & (cols + 0.5 <= x2))
        core = (g > REGRESSION_CORE) & inside
        core[py, px] = True
        box[:, core] = np.array([y1, x1, y2, x2], np.float32)[:, None]
        weight[core] = g[core] * math.log(1.0 + (y2 - y1) * (x2 - x1)) / g[core].sum()
    return heat, box, weight


def _flip(features, heat, box, weight, lines: bool, pixels: bool):
    """Flip an image (padded to ALIGN) and its targets along lines and/or pixels."""
    if lines:
        h = heat.shape[1]
        features, heat, weight = features[:, ::-1], heat[:, ::-1], weight[::-1]
        box = box[:, ::-1].copy()
        box[[0, 2]] = h - box[[2, 0]]
    if pixels:
        w = heat.shape[2]
        features, heat, weight = features[:, :, ::-1], heat[:, :, ::-1], weight[:, ::-1]
        box = box[:, :, ::-1].copy()
        box[[1, 3]] = w - box[[3, 1]]
    return features, heat, box, weight


def focal_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Return CenterNet's focal loss (alpha 2, beta 4) normalised by the number of centres."""
    positive = target >= 1.0 - 1e-6
    log_p, log_q = F.logsigmoid(logits), F.logsigmoid(-logits)
    p = torch.exp(log_p)
    pos = -(log_p * (1.0 - p) ** 2)[positive].sum()
    neg = -(log_q * p**2 * (1.0 - target) ** 4)[~positive].sum()
    return (pos + neg) / positive.sum().clamp(min=1)


def giou_loss(log_dist: torch.Tensor, box: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Return the weighted mean of 1 - GIoU of the boxes predicted at the weighted cells."""
    mask = weight > 0
    if not bool(mask.any()):
        return log_dist.sum() * 0.0
    b, _, h, w = log_dist.shape
    cy = (torch.arange(h, dtype=torch.float32) + 0.5)[None, :, None].expand(b, h, w)[mask]
    cx = (torch.arange(w, dtype=torch.float32) + 0.5)[None, None, :].expand(b, h, w)[mask]
    dist = torch.exp(log_dist.clamp(-6.0, 6.0)).permute(0, 2, 3, 1)[mask]  # (n, 4)
    py1, px1, py2, px2 = cy - dist[:, 0], cx - dist[:, 1], cy + dist[:, 2], cx + dist[:, 3]
    t = box.permute(0, 2, 3, 1)[mask]
    ty1, tx1, ty2, tx2 = t[:, 0], t[:, 1], t[:, 2], t[:, 3]
    inter = ((torch.minimum(py2, ty2) - torch.maximum(py1, ty1)).clamp(min=0)
             * (torch.minimum(px2, tx2) - torch.maximum(px1, tx1)).clamp(min=0))
    union = (py2 - py1) * (px2 - px1) + (ty2 - ty1) * (tx2 - tx1) - inter
    hull = ((torch.maximum(py2, ty2) - torch.minimum(py1, ty1))
            * (torch.maximum(px2, tx2) - torch.minimum(px1, tx1)))
    giou = inter / union.clamp(min=1e-6) - (hull - union) / hull.clamp(min=1e-6)
    w = weight[mask]
    return ((1.0 - giou) * w).sum() / w.sum().clamp(min=1e-6)


def crop_columns(features: np.ndarray, width: int) -> int:
    """Return the first column (a multiple of ALIGN) of a `width` crop centred on the parcel.

    The parcel's columns are those whose mean low-energy attenuation exceeds 0.02 (the belt
    alone reads ~0); the crop is clipped to the image.
    """
    total = features.shape[2]
    if width >= total:
        return 0
    busy = np.flatnonzero(features[0].mean(axis=0) > 0.02)
    centre = (busy[0] + busy[-1] + 1) / 2.0 if len(busy) else total / 2.0
    start = int(round((centre - width / 2.0) / ALIGN)) * ALIGN
    return int(np.clip(start, 0, (total - width) // ALIGN * ALIGN))


class Batches:
    """Training images with their targets, served as padded, flipped batches.

    Each image is cropped across the belt to `width` input pixels around the parcel (the rest
    is empty belt: 128 holds the widest box, 0.4 m, anywhere the simulator puts it), to save
    computation; targets are computed on the whole image and cropped alike.
    """

    def __init__(self, data: xray_dataset.ThreatDataset, width: int = 128):
        """Precompute every image's padded, cropped features (float16) and targets."""
        if width % ALIGN:
            raise ValueError(f'the crop width must be a multiple of {ALIGN}, got {width}')
        self.images = []
        self.cut = 0  # truth centres outside their crop
        for i in range(len(data)):
            features = data.features(i)
            boxes, classes = data.boxes(i)
            padded = threats.pad_features(features.astype(np.float16))
            heat, box, weight = targets(boxes, classes, features.shape[1], features.shape[2])
            start = crop_columns(padded, width)
            cells = slice(start // STRIDE, (start + width) // STRIDE)
            centres = (boxes[:, 2] + boxes[:, 3] + 1) / 2.0 / DOWNSAMPLE
            self.cut += int(np.sum((centres < start) | (centres >= start + width)))
            box = box[:, :, cells].copy()
            box[[1, 3]] -= start // STRIDE
            self.images.append((padded[:, :, start:start + width], heat[:, :, cells], box,
                                weight[:, cells]))
        self.heights = np.array([image[0].shape[1] for image in self.images])

    def epoch(self, rng, batch: int):
        """Yield batches (features, heat, box, weight tensors) of one epoch in random order."""
        order = rng.permutation(len(self.images))
        # similar heights together (less padding): sort within windows of 8 batches
        window = 8 * batch
        for start in range(0, len(order), window):
            chunk = order[start:start + window]
            order[start:start + window] = chunk[np.argsort(self.heights[chunk], kind='stable')]
        groups = [order[k:k + batch] for k in range(0, len(order), batch)]
        for g in rng.permutation(len(groups)):
            yield self._collate(groups[g], rng)

    def _collate(self, members, rng):
        items = []
        for i in members:
            flips = rng.random(2) < 0.5
            items.append(_flip(*self.images[i], lines=bool(flips[0]), pixels=bool(flips[1])))
        height = max(item[0].shape[1] for item in items)
        n, channels, width = len(items), items[0][0].shape[0], items[0][0].shape[2]
        cells = height // STRIDE
        features = np.zeros((n, channels, height, width), np.float32)
        heat = np.zeros((n, items[0][1].shape[0], cells, width // STRIDE), np.float32)
        box = np.zeros((n, 4, cells, width // STRIDE), np.float32)
        weight = np.zeros((n, cells, width // STRIDE), np.float32)
        for k, (f, hm, bx, wt) in enumerate(items):
            features[k, :, :f.shape[1]] = f
            heat[k, :, :hm.shape[1]] = hm
            box[k, :, :bx.shape[1]] = bx
            weight[k, :wt.shape[0]] = wt
        return (torch.from_numpy(features), torch.from_numpy(heat), torch.from_numpy(box),
                torch.from_numpy(weight))


def evaluate(detector: ThreatDetector, data: xray_dataset.ThreatDataset, iou: float):
    """Return per detection (class, raw score, true at `iou`) and per class the truth count."""
    records, truths = [], np.zeros(len(CLASSES), int)
    for i in range(len(data)):
        classes, raw, boxes = detector.raw_detections(data.features(i), int(data.lines[i]))
        truth, truth_class = data.boxes(i)
        for c in range(len(CLASSES)):
            mine = np.flatnonzero(classes == c)
            theirs = truth[truth_class == c]
            truths[c] += len(theirs)
            which, _ = threats.match(boxes[mine], raw[mine], theirs, iou)
            records += [(c, float(raw[k]), bool(w >= 0)) for k, w in zip(mine, which,
                                                                          strict=True)]
    return records, truths


def average_precisions(records, truths) -> dict:
    """Return {class: AP} of evaluate()'s records and the mean."""
    out = {}
    for c, name in enumerate(CLASSES):
        mine = [r for r in records if r[0] == c]
        out[name] = threats.average_precision([r[1] for r in mine], [r[2] for r in mine],
                                              int(truths[c]))
    out['mAP'] = float(np.nanmean([out[name] for name in CLASSES]))
    return out


def code_version() -> dict:
    """Return the git commit, whether the tree differs from it, and the code files' SHA-256."""
    def git(*args):
        try:
            return subprocess.run(['git', *args], cwd=ROOT, capture_output=True, text=True,
                                  timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ''
    hashes = {}
    for name in CODE_FILES:
        path = ROOT / name
        hashes[name] = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ''
    status = git('status', '--porcelain', '--', *CODE_FILES)
    return {'git_commit': git('rev-parse', 'HEAD') or 'unknown',
            'files_differ_from_commit': bool(status), 'sha256': hashes}


def train(args) -> int:
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)
    data_dir = pathlib.Path(args.data)
    train_data = xray_dataset.load(data_dir / 'train.npz')
    val_data = xray_dataset.load(data_dir / 'val.npz')
    for name, data in (('train', train_data), ('val', val_data)):
        print(f'{name}: {len(data)} parcels, {len(data.box)} threat boxes '
              f'(seed {data.meta.get("seed")}, scanners {data.meta.get("serials")})', flush=True)
    began, cpu0 = time.monotonic(), time.process_time()
    batches = Batches(train_data, args.crop)
    net = ThreatNet()
    print(f'ThreatNet: {threats.parameter_count(net)} parameters; targets ready in '
          f'{time.monotonic() - began:.0f} s ({batches.cut} box centres outside the '
          f'{args.crop}-pixel crops)', flush=True)
    steps_per_epoch = math.ceil(len(batches.images) / args.batch)
    total = args.epochs * steps_per_epoch
    optimiser = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=args.lr, total_steps=total,
                                                   pct_start=0.05, div_factor=20.0,
                                                   final_div_factor=100.0)
    history, step = [], 0
    net.train()
    for epoch in range(args.epochs):
        sums, count, t0, c0 = np.zeros(2), 0, time.monotonic(), time.process_time()
        for features, heat, box, weight in batches.epoch(rng, args.batch):
            heat_logits, log_dist = net(features)
            focal = focal_loss(heat_logits, heat)
            regression = giou_loss(log_dist, box, weight)
            loss = focal + BOX_WEIGHT * regression
            optimiser.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 10.0)
            optimiser.step()
            schedule.step()
            step += 1
            sums += (float(focal.detach()), float(regression.detach()))
            count += 1
            if step % 50 == 0:
                print(f'  step {step}/{total}: focal {float(focal.detach()):.3f}, giou '
                      f'{float(regression.detach()):.3f}, lr {schedule.get_last_lr()[0]:.2e}',
                      flush=True)
        mean = sums / max(count, 1)
        history.append({'epoch': epoch + 1, 'focal': round(float(mean[0]), 4),
                        'giou': round(float(mean[1]), 4),
                        'loss': round(float(mean[0] + BOX_WEIGHT * mean[1]), 4),
                        'cpu_seconds': round(time.process_time() - c0, 1),
                        'wall_seconds': round(time.monotonic() - t0, 1)})
        print(f'epoch {epoch + 1}/{args.epochs}: focal {mean[0]:.4f}, giou {mean[1]:.4f}, '
              f'loss {mean[0] + BOX_WEIGHT * mean[1]:.4f} ({time.process_time() - c0:.0f} s CPU, '
              f'{time.monotonic() - t0:.0f} s wall)', flush=True)
    train_cpu, train_wall = time.process_time() - cpu0, time.monotonic() - began
    # calibration on the val split
    detector = ThreatDetector(net.fused(), None, CLASSES, 2 * val_data.features(0).shape[2],
                              threads=args.threads)
    records, truths = evaluate(detector, val_data, args.calibration_iou)
    classes = np.array([r[0] for r in records], int)
    raw = np.array([r[1] for r in records])
    true = np.array([r[2] for r in records])
    calibration = Calibration.fit(classes, raw, true, iou=args.calibration_iou,
                                  note=f'Platt per class on the val split '
                                  f'({len(val_data)} parcels, seed {val_data.meta.get("seed")}, '
                                  f'scanners {val_data.meta.get("serials")})')
    detector.calibration = calibration
    before, _ = threats.expected_calibration_error(raw, true)
    after, _ = threats.expected_calibration_error(calibration.apply(classes, raw), true)
    validation = {'ece_raw': round(before, 4), 'ece_calibrated_in_sample': round(after, 4),
                  'truth_boxes': [int(t) for t in truths]}
    for iou in (0.5, 0.3):
        recs, tr = (records, truths) if iou == args.calibration_iou else evaluate(
            detector, val_data, iou)
        validation[f'ap{int(iou * 100)}'] = {k: round(v, 4) for k, v in
                                             average_precisions(recs, tr).items()}
    print('calibration (a, b per class): ' + ', '.join(
        f'{name} ({a:.2f}, {b:+.2f})' for name, a, b in zip(CLASSES, calibration.a,
                                                              calibration.b, strict=True)))
    print(f'val: AP@0.5 {validation["ap50"]}, AP@0.3 {validation["ap30"]}; ECE raw '
          f'{before:.3f}, calibrated (in sample) {after:.3f}')
    command = 'python -m customs_lab.xray.train_threats ' + shlex.join(args.argv)
    meta = {'training': {
        'command': command,
        'datasets': {name: dict(data.meta)
                     for name, data in (('train', train_data), ('val', val_data))},
        'code_version': code_version(),
        'seed': args.seed, 'epochs': args.epochs, 'batch': args.batch, 'lr': args.lr,
        'threads': args.threads, 'losses': history,
        'cpu_seconds': round(train_cpu, 1), 'wall_seconds': round(train_wall, 1),
        'torch': str(torch.__version__),
        'date': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')},
        'validation': validation}
    detector.save(args.out, meta)
    size = pathlib.Path(args.out).stat().st_size
    print(f'wrote {args.out} ({size / 1024:.0f} kB); training {train_cpu:.0f} s CPU, '
          f'{train_wall:.0f} s wall, total {time.process_time() - cpu0:.0f} s CPU')
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--data', required=True, help='directory with train.npz and val.npz')
    parser.add_argument('--out', required=True, help='model file to write')
    parser.add_argument('--epochs', type=int, default=14)
    parser.add_argument('--batch', type=int, default=16)
    parser.add_argument('--lr', type=float, default=2e-3)
    parser.add_argument('--seed', type=int, default=7)
    parser.add_argument('--threads', type=int, default=2, help='torch CPU threads (<= 2 here)')
    parser.add_argument('--crop', type=int, default=128,
                        help='training crop across the belt, input pixels (multiple of 8)')
    parser.add_argument('--calibration-iou', type=float, default=0.5,
                        help='IoU at which a detection counts as a true threat')
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    args.argv = argv
    if args.epochs < 1 or args.batch < 1 or args.threads < 1 or not 0 < args.lr < 1:
        parser.error('epochs, batch and threads must be positive, lr in (0, 1)')
    try:
        return train(args)
    except ValueError as error:
        print(f'error: {error}', file=sys.stderr)
        return 2


if __name__ == '__main__':
    sys.exit(main())
