"""Threat detection in parcel X-ray scans: a small convolutional detector trained on the simulator.

Core module (numpy and torch, no rclpy). It finds weapons (knives, handguns), ammunition,
powder packages (narcotics in bags) and batteries (18650 cells, pouch packs) in one parcel's
XrayScan and gives each a box in the raw image and a calibrated score.

Input (`prepare`): the scan's calibrated channels (XrayScan.calibrated: dark and air
references applied), as attenuations A = -ln T of the low- and high-energy layers, a
dual-energy ratio (A_low - A_high) / (A_high + 0.1) (higher for higher Z: metal against
organic) and the backscatter over the empty belt's (ln of the dark-subtracted signal over the
air reference's, 0 on the bare belt, ~1.9 for 10 cm of water), each averaged over 2 x 2 raw
pixels (lines x detector pixels): (4, ceil(lines / 2), pixels / 2) float32. Padding is air
(zeros in every channel).

Network (`ThreatNet`, 126 k parameters): a CenterNet/TTFNet-style anchor-free detector.
Convolutions (3 x 3, batch norm folded at load, ReLU) down to 1/8 of the input (1/16 of the raw
image) with dilated layers there for a receptive field the size of a handgun, one top-down
merge back to 1/4 (8 raw pixels, 16 mm along the belt and 15 mm across it at the belt), and
two heads there: a heatmap per class (object centres, a Gaussian shaped like the box) and the
distances from the cell's centre to the box's four sides (exp of the output, in cells).
Decoding: the heatmap's local maxima (3 x 3), the box at the peak, per-class non-maximum
suppression (IoU 0.6), boxes mapped back to inclusive raw indices (first/last line, first/last
pixel, XrayScan array coordinates).

Scores: the heatmap's sigmoid at the peak is calibrated per class by Platt scaling,
p = sigmoid(a_c logit(s) + b_c), fitted on a validation split of simulated parcels (scanners
the training never saw): p estimates the probability that the box is a true threat of that
class, i.e. that it matches a true object of the class with IoU >= the calibration's `iou`
(stored with the model; duplicates of an object already matched count as false). It is a
probability for parcels like the simulator's (its scene mix, its clutter levels); on another
mix of parcels the base rates, hence the calibration, differ.

The model file (`ThreatDetector.save` / `load`, torch.save of plain types, loaded with
weights_only=True) holds the weights, the calibration, the classes, the input definition and
the training's record (command, dataset seeds, code version, losses). `detect` runs on
`threads` CPU threads (1 by default: restored afterwards) and is deterministic for a given
thread count. Bad input (not a scan, wrong pixel count, too few lines, non-finite references or
features) raises ValueError before anything reaches torch.

Also here, shared by the training script and the benchmark: box IoU, greedy matching of
detections to truth, average precision (VOC 2010-2012 all-points interpolation) and the
expected calibration error.
"""

from contextlib import contextmanager
from dataclasses import dataclass
import math
import pathlib

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F  # noqa: N812 (the usual torch alias)

from customs_lab.xray.scan import XrayScan
from customs_lab.xray.scanner_model import CHANNELS

CLASSES = ('weapon', 'ammunition', 'powder', 'battery')  # simulation.parcel_scene.THREAT_CLASSES
FEATURES = ('attenuation_low', 'attenuation_high', 'dual_energy_ratio', 'backscatter')
FEATURE_VERSION = 1
DOWNSAMPLE = 2  # raw lines and pixels per input pixel
STRIDE = 4  # input pixels per output cell (8 raw)
ALIGN = 8  # input padded to a multiple of this (the network's deepest stride)
MIN_LINES = 16  # shorter scans are refused
MAX_ATTENUATION = 12.0  # -ln T is clipped to [-1, this] (T is floored at 1e-6 by calibrated())
FORMAT = 'customs_lab.threat_detector'
FORMAT_VERSION = 1
NMS_IOU = 0.6  # per-class suppression of overlapping boxes
MAX_CANDIDATES = 100  # heatmap peaks decoded per scan
RAW_FLOOR = 0.01  # peaks below this raw score are never decoded
DEFAULT_MIN_SCORE = 0.05  # calibrated score below which detect() drops a detection


# ---------------------------------------------------------------------------------------------
# input


def _pool(array: np.ndarray) -> np.ndarray:
    """Average 2 x 2 blocks of a (lines, pixels) array (an odd last line is repeated)."""
    if array.shape[0] % 2:
        array = np.concatenate([array, array[-1:]], axis=0)
    lines, pixels = array.shape
    return array.reshape(lines // 2, 2, pixels // 2, 2).mean(axis=(1, 3))


def prepare(scan: XrayScan, pixels: int | None = None) -> np.ndarray:
    """Return the detector's input of a scan: (4, ceil(lines / 2), pixels / 2) float32.

    `pixels`: the detector pixel count the model was trained for (ValueError if the scan has
    another). ValueError on anything that is not a usable scan.
    """
    if not isinstance(scan, XrayScan):
        raise ValueError(f'expected an XrayScan, got {type(scan).__name__}')
    arrays = [np.asarray(scan.raw(name)) for name in CHANNELS]
    shape = arrays[0].shape
    if len(shape) != 2 or any(a.shape != shape for a in arrays):
        raise ValueError(f"the scan's channels must be (lines, pixels) arrays of one shape, got "
                         f'{[a.shape for a in arrays]}')
    lines, width = shape
    if pixels is not None and width != pixels:
        raise ValueError(f'the scan has {width} detector pixels, the model expects {pixels}')
    if width < 2 * ALIGN or width % DOWNSAMPLE:
        raise ValueError(f'the scan needs an even number of at least {2 * ALIGN} pixels, '
                         f'got {width}')
    if lines < MIN_LINES:
        raise ValueError(f'the scan has {lines} lines, at least {MIN_LINES} are needed')
    for name, array in zip(CHANNELS, arrays, strict=True):
        if array.dtype.kind not in 'uif':
            raise ValueError(f'{name}: expected numbers, got {array.dtype}')
        if array.dtype.kind == 'f' and not np.all(np.isfinite(array)):
            raise ValueError(f'{name}: the scan holds non-finite values')
    dark, air = np.asarray(scan.dark, dtype=float), np.asarray(scan.air, dtype=float)
    if dark.shape != (len(CHANNELS), width) or air.shape != dark.shape:
        raise ValueError(f'dark and air references must be (3, {width}), got {dark.shape} and '
                         f'{air.shape}')
    if not (np.all(np.isfinite(dark)) and np.all(np.isfinite(air))):
        raise ValueError("the scan's dark or air reference holds non-finite values")
    calibrated = scan.calibrated()
    low = -np.log(np.clip(calibrated['low'], 1e-6, 10.0))
    high = -np.log(np.clip(calibrated['high'], 1e-6, 10.0))
    low = _pool(np.clip(low, -1.0, MAX_ATTENUATION))
    high = _pool(np.clip(high, -1.0, MAX_ATTENUATION))
    span = air[2] - dark[2]  # the bare belt's backscatter, per pixel
    span = np.maximum(span, max(1.0, 0.25 * float(np.median(span))))
    back = _pool(np.log(np.clip(calibrated['back'] / span, 0.02, 50.0)))
    ratio = np.clip((low - high) / (np.maximum(high, 0.0) + 0.1), -1.0, 3.0)
    out = np.stack([low, high, ratio, back]).astype(np.float32)
    if not np.all(np.isfinite(out)):
        raise ValueError('the scan gives non-finite features')
    return out


def pad_features(features: np.ndarray, lines: int | None = None) -> np.ndarray:
    """Return features padded with air (zeros) to `lines` (default: the next multiple of 8)."""
    channels, height, width = features.shape
    target = lines if lines is not None else -(-height // ALIGN) * ALIGN
    wide = -(-width // ALIGN) * ALIGN
    if target == height and wide == width:
        return features
    out = np.zeros((channels, target, wide), dtype=features.dtype)
    out[:, :height, :width] = features
    return out


# ---------------------------------------------------------------------------------------------
# network


def _block(cin: int, cout: int, stride: int = 1, dilation: int = 1,
           fused: bool = False) -> nn.Sequential:
    """Return conv 3 x 3, batch norm, ReLU (fused: a conv with a bias and no batch norm)."""
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, padding=dilation, dilation=dilation,
                                   bias=fused),
                         nn.Identity() if fused else nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class ThreatNet(nn.Module):
    """The detector network: input (B, 4, H, W), H and W multiples of 8.

    Returns (heatmap logits (B, classes, H/4, W/4), log box distances (B, 4, H/4, W/4)): the
    distances from each cell's centre to the box's top, left, bottom, right sides, in cells.
    """

    def __init__(self, width=(16, 24, 32, 48), classes: int = len(CLASSES),
                 channels: int = len(FEATURES), fused: bool = False):
        """Build the layers; width: channels at 1/2, 1/2, 1/4 and 1/8 of the input.

        fused: the inference form (batch norms folded into the convolutions, `fused()`).
        """
        super().__init__()
        a, b, c, d = (int(w) for w in width)
        self.width = (a, b, c, d)
        self.is_fused = bool(fused)

        def block(cin, cout, stride=1, dilation=1):
            return _block(cin, cout, stride, dilation, self.is_fused)

        self.stem = nn.Sequential(block(channels, a, 2), block(a, b))  # 1/2
        self.down4 = nn.Sequential(block(b, c, 2), block(c, c))  # 1/4
        self.down8 = nn.Sequential(block(c, d, 2), block(d, d, 1, 2), block(d, d, 1, 4),
                                   block(d, d, 1, 2))  # 1/8, dilated: a wide receptive field
        self.lateral = nn.Conv2d(d, c, 1)
        self.merge = block(c, c)
        self.heat = nn.Sequential(block(c, c), nn.Conv2d(c, classes, 1))
        self.box = nn.Sequential(block(c, c), nn.Conv2d(c, 4, 1))
        nn.init.constant_(self.heat[-1].bias, -4.0)  # a prior of ~2 % at every cell
        nn.init.normal_(self.box[-1].weight, std=0.01)
        nn.init.constant_(self.box[-1].bias, 1.0)  # boxes of ~5 cells to start with

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (heatmap logits, log distances) at 1/4 of the input."""
        f4 = self.down4(self.stem(x))
        f8 = self.down8(f4)
        top = F.interpolate(self.lateral(f8), size=f4.shape[-2:], mode='nearest')
        merged = self.merge(f4 + top)
        return self.heat(merged), self.box(merged)

    def fused(self) -> 'ThreatNet':
        """Fold every batch norm into its convolution (for inference; eval mode)."""
        self.eval()
        for module in self.modules():
            if isinstance(module, nn.Sequential) and len(module) == 3 and isinstance(
                    module[1], nn.BatchNorm2d):
                module[0] = torch.nn.utils.fusion.fuse_conv_bn_eval(module[0], module[1])
                module[1] = nn.Identity()
        self.is_fused = True
        return self


def parameter_count(net: nn.Module) -> int:
    """Return the number of parameters of a network."""
    return int(sum(p.numel() for p in net.parameters()))


# ---------------------------------------------------------------------------------------------
# calibration


def _logit(p) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=float), 1e-6, 1.0 - 1e-6)
    return np.log(p) - np.log1p(-p)


def _sigmoid(z) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(z, dtype=float)))


@dataclass(frozen=True)
class Calibration:
    """Per-class Platt scaling of raw scores: p = sigmoid(a logit(raw) + b)."""

    a: tuple  # per class, > 0
    b: tuple
    iou: float = 0.5  # a detection is a true threat if it matches its class's truth at this IoU
    counts: tuple = ()  # per class: (detections, true) of the fit
    note: str = ''

    def __post_init__(self):
        """Check the parameters (ValueError)."""
        a, b = tuple(float(v) for v in self.a), tuple(float(v) for v in self.b)
        if len(a) != len(b) or not a:
            raise ValueError(f'calibration needs as many a as b, got {len(a)} and {len(b)}')
        if not all(math.isfinite(v) and v > 0 for v in a) or not all(math.isfinite(v)
                                                                      for v in b):
            raise ValueError(f'calibration slopes must be positive and offsets finite, got '
                             f'a={a}, b={b}')
        if not 0.0 < float(self.iou) < 1.0:
            raise ValueError(f'calibration iou must be in (0, 1), got {self.iou!r}')
        object.__setattr__(self, 'a', a)
        object.__setattr__(self, 'b', b)
        object.__setattr__(self, 'iou', float(self.iou))
        object.__setattr__(self, 'counts', tuple(tuple(int(v) for v in c) for c in self.counts))

    @classmethod
    def identity(cls, classes: int = len(CLASSES)) -> 'Calibration':
        """Return the calibration that leaves raw scores as they are."""
        return cls((1.0,) * classes, (0.0,) * classes, note='identity (not fitted)')

    def apply(self, class_index, raw) -> np.ndarray:
        """Return calibrated scores of raw scores of the given class indices."""
        index = np.asarray(class_index, dtype=int)
        a, b = np.asarray(self.a)[index], np.asarray(self.b)[index]
        return _sigmoid(a * _logit(raw) + b)

    @classmethod
    def fit(cls, class_index, raw, true, classes: int = len(CLASSES), iou: float = 0.5,
            prior: float = 1.0, note: str = '') -> 'Calibration':
        """Fit a and b per class by maximum likelihood (Newton) on detections of a validation set.

        class_index, raw, true: per detection. `prior` is the weight of a Gaussian prior (unit
        variance) pulling (a, b) towards (1, 0), so that a class with few detections keeps
        its raw scores; a fitted slope is kept >= 0.05 (scores stay monotonic).
        """
        index = np.asarray(class_index, dtype=int)
        z, y = _logit(raw), np.asarray(true, dtype=float)
        if not (len(index) == len(z) == len(y)):
            raise ValueError('class_index, raw and true must have the same length')
        slopes, offsets, counts = [], [], []
        for c in range(classes):
            mine = index == c
            zc, yc = z[mine], y[mine]
            theta = np.array([1.0, 0.0])
            for _ in range(100):
                p = _sigmoid(theta[0] * zc + theta[1])
                design = np.stack([zc, np.ones_like(zc)], axis=1)
                grad = design.T @ (p - yc) + prior * (theta - [1.0, 0.0])
                hess = (design.T * (p * (1.0 - p))) @ design + prior * np.eye(2)
                step = np.linalg.solve(hess, grad)
                theta = theta - step
                if np.max(np.abs(step)) < 1e-10:
                    break
            slopes.append(max(float(theta[0]), 0.05))
            offsets.append(float(theta[1]))
            counts.append((int(mine.sum()), int(yc.sum())))
        return cls(tuple(slopes), tuple(offsets), iou, tuple(counts), note)

    def to_dict(self) -> dict:
        """Return the calibration as plain types (the model file's entry)."""
        return {'method': 'platt', 'a': list(self.a), 'b': list(self.b), 'iou': self.iou,
                'counts': [list(c) for c in self.counts], 'note': self.note}

    @classmethod
    def from_dict(cls, entry: dict) -> 'Calibration':
        """Return the calibration of a model file's entry (ValueError if it is not one)."""
        if not isinstance(entry, dict) or entry.get('method') != 'platt':
            raise ValueError(f'unknown calibration {entry!r}')
        return cls(tuple(entry['a']), tuple(entry['b']), entry.get('iou', 0.5),
                   tuple(tuple(c) for c in entry.get('counts', ())), entry.get('note', ''))


# ---------------------------------------------------------------------------------------------
# detections


@dataclass(frozen=True)
class Detection:
    """One threat found in a scan: class, calibrated score and box (inclusive raw indices)."""

    threat: str  # one of CLASSES
    score: float  # calibrated: probability that this is a true threat of the class
    first_line: int  # rows of XrayScan's arrays
    last_line: int
    first_pixel: int  # columns (detector pixels)
    last_pixel: int
    raw_score: float = math.nan  # the heatmap's peak before calibration

    @property
    def box(self) -> tuple[int, int, int, int]:
        """Return (first_line, last_line, first_pixel, last_pixel)."""
        return (self.first_line, self.last_line, self.first_pixel, self.last_pixel)


def box_iou(a, b) -> np.ndarray:
    """Return the IoU matrix of inclusive boxes (first_line, last_line, first_pixel, last_pixel).

    a (n, 4), b (m, 4) -> (n, m); a box covers (last - first + 1) lines times pixels.
    """
    a = np.asarray(a, dtype=float).reshape(-1, 4)
    b = np.asarray(b, dtype=float).reshape(-1, 4)
    lines = (np.minimum(a[:, None, 1], b[None, :, 1])
             - np.maximum(a[:, None, 0], b[None, :, 0]) + 1.0)
    pixels = (np.minimum(a[:, None, 3], b[None, :, 3])
              - np.maximum(a[:, None, 2], b[None, :, 2]) + 1.0)
    inter = np.clip(lines, 0.0, None) * np.clip(pixels, 0.0, None)
    area_a = (a[:, 1] - a[:, 0] + 1.0) * (a[:, 3] - a[:, 2] + 1.0)
    area_b = (b[:, 1] - b[:, 0] + 1.0) * (b[:, 3] - b[:, 2] + 1.0)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def match(detected, scores, truth, iou: float) -> tuple[np.ndarray, np.ndarray]:
    """Greedy matching of one image's detections of one class to its truth boxes.

    Detections in descending score order take the unmatched truth box of highest IoU >= `iou`
    (VOC). Returns (per detection: index of the matched truth box or -1, per truth box: index
    of its detection or -1).
    """
    detected = np.asarray(detected, dtype=float).reshape(-1, 4)
    truth = np.asarray(truth, dtype=float).reshape(-1, 4)
    which = np.full(len(detected), -1)
    taken = np.full(len(truth), -1)
    if not len(detected) or not len(truth):
        return which, taken
    overlap = box_iou(detected, truth)
    for d in np.argsort(-np.asarray(scores, dtype=float), kind='stable'):
        free = np.where(taken < 0, overlap[d], -1.0)
        t = int(np.argmax(free))
        if free[t] >= iou:
            which[d], taken[t] = t, d
    return which, taken


def average_precision(scores, true, truths: int) -> float:
    """Return the average precision of ranked detections (VOC 2010-2012: all points).

    scores, true: per detection (true: matched to a truth box); truths: the number of truth
    boxes. The area under the precision-recall curve with precision made monotonically
    decreasing (each recall level takes the best precision at that recall or beyond). NaN if
    there are no truth boxes.
    """
    if truths <= 0:
        return math.nan
    order = np.argsort(-np.asarray(scores, dtype=float), kind='stable')
    hits = np.asarray(true, dtype=float)[order]
    if not len(hits):
        return 0.0
    tp = np.cumsum(hits)
    precision = tp / np.arange(1, len(hits) + 1)
    recall = tp / truths
    precision = np.concatenate([[0.0], precision, [0.0]])
    recall = np.concatenate([[0.0], recall, [recall[-1]]])
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    steps = np.flatnonzero(recall[1:] != recall[:-1])
    return float(np.sum((recall[steps + 1] - recall[steps]) * precision[steps + 1]))


def expected_calibration_error(scores, true, bins: int = 10) -> tuple[float, list]:
    """Return (ECE, [(bin low, bin high, count, mean score, true share)]) over equal-width bins.

    ECE = sum over bins of count / total x |mean score - true share|.
    """
    scores = np.asarray(scores, dtype=float)
    true = np.asarray(true, dtype=float)
    edges = np.linspace(0.0, 1.0, bins + 1)
    table, ece = [], 0.0
    where = np.clip(np.digitize(scores, edges[1:-1]), 0, bins - 1)
    for k in range(bins):
        mine = where == k
        n = int(mine.sum())
        if n:
            mean, share = float(scores[mine].mean()), float(true[mine].mean())
            ece += n / max(len(scores), 1) * abs(mean - share)
            table.append((float(edges[k]), float(edges[k + 1]), n, mean, share))
    return float(ece), table


def _nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> list[int]:
    order = list(np.argsort(-scores, kind='stable'))
    keep = []
    while order:
        best = order.pop(0)
        keep.append(int(best))
        if order:
            overlap = box_iou(boxes[best][None], boxes[order])[0]
            order = [o for o, v in zip(order, overlap, strict=True) if v <= iou]
    return keep


@contextmanager
def _threads(count: int):
    previous = torch.get_num_threads()
    torch.set_num_threads(int(count))
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def decode(heat: torch.Tensor, box: torch.Tensor, valid_cells: tuple[int, int],
           floor: float = RAW_FLOOR, candidates: int = MAX_CANDIDATES) -> tuple:
    """Return (class indices, raw scores, boxes in input pixels (y1, y2, x1, x2)) of one image.

    heat, box: the network's outputs for one image (classes, h, w) and (4, h, w); only the
    first valid_cells (rows, columns) are decoded (the rest is padding). Boxes are continuous
    input-pixel coordinates (y2, x2 exclusive).
    """
    rows, cols = valid_cells
    prob = torch.sigmoid(heat[:, :rows, :cols])
    peak = F.max_pool2d(prob[None], 3, stride=1, padding=1)[0]
    prob = torch.where(prob == peak, prob, torch.zeros_like(prob)).flatten()
    count = min(candidates, int(prob.numel()))
    values, flat = torch.topk(prob, count)
    keep = values >= floor
    values, flat = values[keep].numpy().astype(float), flat[keep].numpy()
    cls, rest = np.divmod(flat, rows * cols)
    i, j = np.divmod(rest, cols)
    dist = torch.exp(box[:, :rows, :cols].clamp(-6.0, 6.0)).numpy()[:, i, j]  # (4, n) cells
    cy, cx = i + 0.5, j + 0.5
    boxes = np.stack([cy - dist[0], cy + dist[2], cx - dist[1], cx + dist[3]], axis=1) * STRIDE
    return cls.astype(int), values, boxes


class ThreatDetector:
    """A trained ThreatNet with its calibration: `load(path)`, then `detect(scan)`."""

    def __init__(self, net: ThreatNet, calibration: Calibration | None = None,
                 classes=CLASSES, pixels: int = 352, meta: dict | None = None,
                 threads: int = 1, min_score: float = DEFAULT_MIN_SCORE):
        """Wrap a network (fused for inference) with its calibration and metadata."""
        if not isinstance(net, ThreatNet):
            raise ValueError(f'expected a ThreatNet, got {type(net).__name__}')
        self.classes = tuple(str(c) for c in classes)
        self.calibration = calibration or Calibration.identity(len(self.classes))
        if len(self.calibration.a) != len(self.classes):
            raise ValueError(f'the calibration has {len(self.calibration.a)} classes, the '
                             f'model {len(self.classes)}')
        self.pixels = int(pixels)
        self.meta = dict(meta or {})
        self.threads = _check_threads(threads)
        self.min_score = float(min_score)
        self.net = net.fused()

    @classmethod
    def load(cls, path, threads: int = 1, min_score: float = DEFAULT_MIN_SCORE
             ) -> 'ThreatDetector':
        """Load a model file written by `save` (ValueError if it is not one)."""
        path = pathlib.Path(path)
        try:
            entry = torch.load(path, map_location='cpu', weights_only=True)
        except FileNotFoundError:
            raise ValueError(f'{path}: no such model file') from None
        except Exception as error:  # noqa: BLE001 (torch raises many kinds on a bad file)
            raise ValueError(f'{path}: not a threat detector model file ({error})') from None
        if not isinstance(entry, dict) or entry.get('format') != FORMAT:
            raise ValueError(f'{path}: not a threat detector model file')
        if int(entry.get('format_version', 0)) != FORMAT_VERSION:
            raise ValueError(f'{path}: model file version {entry.get("format_version")}, this '
                             f'code reads {FORMAT_VERSION}')
        if tuple(entry.get('features', ())) != FEATURES or int(
                entry.get('feature_version', 0)) != FEATURE_VERSION:
            raise ValueError(f'{path}: the model was trained on other input features')
        classes = tuple(entry['classes'])
        architecture = entry['architecture']
        net = ThreatNet(tuple(architecture['width']), classes=len(classes),
                        fused=bool(architecture.get('fused', False)))
        state = {k: v.float() if v.is_floating_point() else v
                 for k, v in entry['state_dict'].items()}
        try:
            net.load_state_dict(state)
        except RuntimeError as error:
            raise ValueError(f'{path}: weights do not fit the network ({error})') from None
        meta = {k: v for k, v in entry.items() if k not in ('state_dict',)}
        return cls(net.fused(), Calibration.from_dict(entry['calibration']), classes,
                   int(entry['pixels']), meta, threads, min_score)

    def save(self, path, meta: dict | None = None, half: bool = False):
        """Write the model file: the fused weights (float16 if `half`), calibration, metadata."""
        state = {k: (v.half() if half and v.is_floating_point() else v).clone()
                 for k, v in self.net.state_dict().items()}
        entry = dict(self.meta)
        entry.update(meta or {})
        entry.update({'format': FORMAT, 'format_version': FORMAT_VERSION,
                      'classes': list(self.classes), 'features': list(FEATURES),
                      'feature_version': FEATURE_VERSION, 'downsample': DOWNSAMPLE,
                      'stride': STRIDE, 'pixels': self.pixels,
                      'architecture': {'name': 'ThreatNet', 'width': list(self.net.width),
                                       'fused': True, 'parameters': parameter_count(self.net)},
                      'calibration': self.calibration.to_dict(), 'state_dict': state})
        pathlib.Path(path).parent.mkdir(parents=True, exist_ok=True)
        torch.save(entry, path)

    def detect(self, scan: XrayScan, min_score: float | None = None) -> list[Detection]:
        """Return the threats found in a scan, highest calibrated score first."""
        features = prepare(scan, self.pixels)
        return self.detect_features(features, scan.lines, min_score)

    def detect_features(self, features: np.ndarray, lines: int,
                        min_score: float | None = None) -> list[Detection]:
        """Return the detections of prepared features (`prepare`) of a scan of `lines` lines."""
        threshold = self.min_score if min_score is None else float(min_score)
        classes, raw, boxes = self.raw_detections(features, lines)
        if not len(raw):
            return []
        score = self.calibration.apply(classes, raw)
        out = []
        for k in np.argsort(-score, kind='stable'):
            if score[k] < threshold:
                continue
            out.append(Detection(self.classes[classes[k]], float(score[k]),
                                 *(int(v) for v in boxes[k]),
                                 raw_score=float(raw[k])))
        return out

    def raw_detections(self, features: np.ndarray, lines: int
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Return (class indices, raw scores, raw boxes (n, 4) int) before calibration.

        Boxes are (first_line, last_line, first_pixel, last_pixel), inclusive, inside the scan;
        per-class non-maximum suppression applied.
        """
        features = np.asarray(features)
        width = self.pixels // DOWNSAMPLE
        height = -(-int(lines) // DOWNSAMPLE)
        if features.shape != (len(FEATURES), height, width):
            raise ValueError(f'features must be ({len(FEATURES)}, {height}, {width}) for a '
                             f'{lines}-line scan, got {features.shape}')
        if not np.all(np.isfinite(features)):
            raise ValueError('features hold non-finite values')
        padded = pad_features(features.astype(np.float32, copy=False))
        cells = (-(-height // STRIDE), -(-width // STRIDE))
        with _threads(self.threads), torch.inference_mode():
            heat, box = self.net(torch.from_numpy(np.ascontiguousarray(padded))[None])
            classes, raw, boxes = decode(heat[0], box[0], cells)
        keep = []
        for c in np.unique(classes):
            mine = np.flatnonzero(classes == c)
            keep += [int(mine[k]) for k in _nms(boxes[mine][:, [0, 1, 2, 3]], raw[mine],
                                                NMS_IOU)]
        keep = np.array(sorted(keep, key=lambda k: -raw[k]), dtype=int)
        classes, raw, boxes = classes[keep], raw[keep], boxes[keep]
        return classes, raw, to_raw_boxes(boxes, int(lines), self.pixels)


def to_raw_boxes(boxes: np.ndarray, lines: int, pixels: int) -> np.ndarray:
    """Return input-pixel boxes (y1, y2, x1, x2; continuous) as inclusive raw index boxes."""
    boxes = np.asarray(boxes, dtype=float).reshape(-1, 4) * DOWNSAMPLE
    first_line = np.clip(np.rint(boxes[:, 0]), 0, lines - 1)
    last_line = np.clip(np.rint(boxes[:, 1]) - 1, first_line, lines - 1)
    first_pixel = np.clip(np.rint(boxes[:, 2]), 0, pixels - 1)
    last_pixel = np.clip(np.rint(boxes[:, 3]) - 1, first_pixel, pixels - 1)
    return np.stack([first_line, last_line, first_pixel, last_pixel], axis=1).astype(int)


def _check_threads(threads) -> int:
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 1:
        raise ValueError(f'threads must be a positive integer, got {threads!r}')
    return int(threads)
