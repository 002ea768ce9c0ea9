"""Powder-like organic masses (narcotics in bags) from transmission, with and without backscatter.

Core module (numpy / scipy, no ROS). Input: an XrayScan and the scanner's dual-energy
calibration; output: candidate regions (line and pixel ranges in the scan's arrays) with a
score in nats (the log-odds that the region is a powder package, from a logistic model).

Why backscatter: a bag of powder (0.3-0.7 g/cm^3, 0.1-2 kg) is an organic mass like the
clothes, books and cosmetics around it; in transmission it adds a few g/cm^2 of organic matter
to whatever lies above or below it, with a Zeff within one or two units of cellulose. The
backscatter channel sees the parcel from the tube's side, mostly its first few g/cm^2: Compton
scatter grows with the electron density there and is attenuated on the way in and out, so a
dense organic layer near the belt (where a packer puts what goes in first) returns more than
loose clothes of the same transmitted attenuation, and what is stacked above it adds little.
The fused detector reads the backscatter relative to what the transmission predicts.

Features, per block of BLOCK x BLOCK pixels (~2.2 cm x 2.4 cm at the belt) that holds matter:
transmission: ln A_high of the block's mean attenuation, the region Zeff of its mean
attenuations (decomposition), the pixel-to-pixel relative spread of A_high (texture) and the
share of organic pixels; backscatter: ln of the backscatter relative to the empty belt's (the
air reference of the backscatter channel, which removes pixel gains). Each also as its mean
over the NEIGHBOURHOOD x NEIGHBOURHOOD blocks around (a package is larger than a block). Each
enters with its square, and ln B_rel with its product with ln A_high (the backscatter relative
to what the transmission predicts), into a logistic model per block: log-odds that the block
lies in a powder package. Two models: 'transmission' (transmission features only) and 'fused'
(both). Weights: fitted by `fit_model` on simulated parcels with and without powder, the truth
used only to label the training blocks; the shipped DEFAULT_MODELS come from
`benchmarks/bench_xray_powder.py --print-models` (its training set, not its test set).

Outputs: candidate regions are connected blocks (8-neighbours) whose probability, averaged
over 2 x 2 blocks, exceeds `threshold`, scored by the largest block log-odds inside; a scan's
score is ln of the expected number of powder blocks (the sum of the block probabilities), a
continuous score for ROC curves, NO_SCORE for a scan without matter.
"""

from dataclasses import dataclass
import math

import numpy as np
from scipy import ndimage

from customs_lab.xray.decomposition import ORGANIC, DualEnergyCalibration
from customs_lab.xray.scan import XrayScan

BLOCK = 12  # pixels (and lines) per block side
MIN_ATTENUATION = 0.05  # mean A_high below which a block holds no matter worth scoring
BASE_TRANSMISSION = ('ln_a_high', 'zeff', 'texture', 'organic_share')
BASE_BACKSCATTER = ('ln_back',)
NEIGHBOURHOOD = 3  # blocks: the side of the neighbourhood whose mean features are added
TRANSMISSION_FEATURES = BASE_TRANSMISSION + tuple(f'{n}_n' for n in BASE_TRANSMISSION)
BACKSCATTER_FEATURES = BASE_BACKSCATTER + tuple(f'{n}_n' for n in BASE_BACKSCATTER)
FUSED_FEATURES = TRANSMISSION_FEATURES + BACKSCATTER_FEATURES
NO_SCORE = -50.0  # score of a scan without any block of matter


@dataclass(frozen=True)
class BlockGrid:
    """Per-block features of a scan: features (rows, cols, F) and which blocks hold matter."""

    block: int
    features: np.ndarray  # (rows, cols, len(names)) raw features (NaN where no matter)
    names: tuple
    matter: np.ndarray  # (rows, cols) bool

    def rows_cols(self) -> tuple[int, int]:
        """Return the grid's (rows, cols)."""
        return self.matter.shape

    def region(self, row: int, col: int) -> tuple[int, int, int, int]:
        """Return (first_line, last_line, first_pixel, last_pixel) of one block."""
        b = self.block
        return row * b, row * b + b - 1, col * b, col * b + b - 1


@dataclass(frozen=True)
class PowderModel:
    """A logistic block model: which raw features it uses, their scaling and weights."""

    name: str
    features: tuple  # raw feature names used (a subset of the BlockGrid's)
    mean: tuple  # per expanded feature
    scale: tuple
    weights: tuple  # per expanded feature
    bias: float

    def expand(self, grid: BlockGrid) -> np.ndarray:
        """Return the expanded, standardised design (rows, cols, E) of a grid."""
        index = [grid.names.index(name) for name in self.features]
        design = _expand(grid.features[..., index], self.features)
        return (design - np.asarray(self.mean)) / np.asarray(self.scale)

    def block_scores(self, grid: BlockGrid) -> np.ndarray:
        """Return the log-odds of every block (NO_SCORE where no matter)."""
        design = np.nan_to_num(self.expand(grid), nan=0.0)
        logit = design @ np.asarray(self.weights) + self.bias
        return np.where(grid.matter, logit, NO_SCORE)


@dataclass(frozen=True)
class Candidate:
    """A region of a scan that may hold a powder package (inclusive array indices)."""

    first_line: int
    last_line: int
    first_pixel: int
    last_pixel: int
    score: float  # nats: log-odds that the region is a powder package
    blocks: int  # blocks in the region
    zeff: float  # region Zeff (of its mean attenuations)
    a_high: float  # mean -ln T_high


def backscatter_relative(scan: XrayScan) -> np.ndarray:
    """Return the backscatter per pixel relative to the empty belt's (1.0: nothing on the belt).

    (back - dark) / (air - dark) of the backscatter channel; the air reference's backscatter
    is the belt's own, which carries each pixel's gain.
    """
    back = scan.calibrated()['back']
    level = np.maximum(scan.air[2] - scan.dark[2], 1.0)
    return back / level


def block_features(scan: XrayScan, calibration: DualEnergyCalibration,
                   block: int = BLOCK) -> BlockGrid:
    """Return the per-block transmission and backscatter features of a scan."""
    calibrated = scan.calibrated()
    return features_of(calibrated['low'], calibrated['high'], backscatter_relative(scan),
                       calibration, block)


def features_of(t_low, t_high, back, calibration: DualEnergyCalibration,
                block: int = BLOCK) -> BlockGrid:
    """Return the block features of transmission images and relative backscatter (arrays)."""
    if not (isinstance(block, int) and 2 <= block <= 64):
        raise ValueError(f'block must be an integer in [2, 64], got {block!r}')
    result = calibration.decompose(t_low, t_high)
    back = np.asarray(back, dtype=float)
    if back.shape != result.a_high.shape:
        raise ValueError(f'backscatter image {back.shape} differs from the transmission '
                         f'images {result.a_high.shape}')
    rows, cols = back.shape[0] // block, back.shape[1] // block
    names = FUSED_FEATURES
    features = np.full((rows, cols, len(names)), np.nan)
    if rows == 0 or cols == 0:
        return BlockGrid(block, features, names, np.zeros((rows, cols), dtype=bool))

    def blocks(image):
        cut = image[:rows * block, :cols * block]
        return cut.reshape(rows, block, cols, block).swapaxes(1, 2).reshape(rows, cols, -1)

    a_low = np.nan_to_num(blocks(result.a_low), nan=0.0).mean(axis=-1)
    a_high_pixels = np.nan_to_num(blocks(result.a_high), nan=0.0)
    a_high = a_high_pixels.mean(axis=-1)
    spread = a_high_pixels.std(axis=-1)
    organic = (blocks(result.classes) == ORGANIC).mean(axis=-1)
    opaque = blocks(result.status == 2).mean(axis=-1)  # decomposition.OPAQUE
    back_mean = np.clip(blocks(back).mean(axis=-1), 1e-3, None)
    matter = (a_high >= MIN_ATTENUATION) & (opaque < 0.5) & np.isfinite(back_mean)
    limit = calibration.max_high_attenuation
    a_high_c = np.clip(a_high, MIN_ATTENUATION, limit)
    zeff = calibration.zeff_from_attenuation(np.clip(a_low, 1e-6, None), a_high_c)
    ln_a = np.log(a_high_c)
    values = {
        'ln_a_high': ln_a,
        'zeff': zeff,
        'texture': spread / a_high_c,
        'organic_share': organic,
        'ln_back': np.log(back_mean),
    }
    weight = ndimage.uniform_filter(matter.astype(float), NEIGHBOURHOOD, mode='constant')
    for name in BASE_TRANSMISSION + BASE_BACKSCATTER:
        total = ndimage.uniform_filter(np.where(matter, values[name], 0.0), NEIGHBOURHOOD,
                                       mode='constant')
        values[f'{name}_n'] = total / np.maximum(weight, 1e-9)
    for k, name in enumerate(names):
        features[..., k] = np.where(matter, values[name], np.nan)
    return BlockGrid(block, features, names, matter)


def _expand(raw: np.ndarray, names) -> np.ndarray:
    """Return raw features, their squares, and ln_back x ln_a_high when both are present."""
    columns = [raw, raw**2]
    if 'ln_back' in names and 'ln_a_high' in names:
        columns.append((raw[..., names.index('ln_back')]
                        * raw[..., names.index('ln_a_high')])[..., None])
    return np.concatenate(columns, axis=-1)


def smoothed_probability(model: PowderModel, grid: BlockGrid) -> np.ndarray:
    """Return the block probabilities averaged over 2 x 2 blocks (0 where no matter)."""
    scores = model.block_scores(grid)
    if scores.size == 0:
        return np.zeros(scores.shape)
    probability = np.where(grid.matter, 1.0 / (1.0 + np.exp(-np.clip(scores, -50.0, 50.0))),
                           0.0)
    weight = grid.matter.astype(float)
    kernel = np.ones((2, 2))
    total = ndimage.convolve(probability, kernel, mode='constant', origin=(-1, -1))
    count = ndimage.convolve(weight, kernel, mode='constant', origin=(-1, -1))
    return np.where(grid.matter, total / np.maximum(count, 1.0), 0.0)


def candidates_of(model: PowderModel, grid: BlockGrid,
                  threshold: float = 0.5) -> list[Candidate]:
    """Return the candidate regions of a block grid, best first."""
    smooth = smoothed_probability(model, grid)
    if smooth.size == 0:
        return []
    scores = model.block_scores(grid)
    labels, count = ndimage.label(smooth > threshold, structure=np.ones((3, 3)))
    ln_a = grid.features[..., grid.names.index('ln_a_high')]
    zeff = grid.features[..., grid.names.index('zeff')]
    out = []
    for label in range(1, count + 1):
        rows, cols = np.nonzero((labels == label) & grid.matter)
        if not len(rows):
            continue
        first_line, _, first_pixel, _ = grid.region(rows.min(), cols.min())
        _, last_line, _, last_pixel = grid.region(rows.max(), cols.max())
        out.append(Candidate(int(first_line), int(last_line), int(first_pixel),
                             int(last_pixel), float(scores[rows, cols].max()), int(len(rows)),
                             float(np.mean(zeff[rows, cols])),
                             float(np.exp(np.mean(ln_a[rows, cols])))))
    return sorted(out, key=lambda c: -c.score)


def grid_score(model: PowderModel, grid: BlockGrid) -> float:
    """Return ln of the expected number of powder blocks of a grid (NO_SCORE if no matter)."""
    if not np.any(grid.matter):
        return NO_SCORE
    scores = model.block_scores(grid)[grid.matter]
    total = float(np.sum(1.0 / (1.0 + np.exp(-np.clip(scores, -50.0, 50.0)))))
    return max(math.log(max(total, 1e-300)), NO_SCORE)


def detect(scan: XrayScan, calibration: DualEnergyCalibration, model='fused',
           threshold: float = 0.5) -> tuple[float, list[Candidate]]:
    """Return (scan score, candidate regions best first) of a scan.

    model: a PowderModel or a DEFAULT_MODELS name ('transmission' or 'fused').
    """
    model = get_model(model)
    grid = block_features(scan, calibration)
    return grid_score(model, grid), candidates_of(model, grid, threshold)


# ---------------------------------------------------------------------------------------------
# training


def block_labels(grid: BlockGrid, mask: np.ndarray, positive: float = 0.5) -> np.ndarray:
    """Return 1 / 0 / -1 (ignore) per block from a pixel mask of the powder (training only).

    1 where more than `positive` of the block lies in the mask, 0 where none of it does.
    """
    rows, cols = grid.rows_cols()
    b = grid.block
    cut = np.asarray(mask, dtype=float)[:rows * b, :cols * b]
    share = cut.reshape(rows, b, cols, b).mean(axis=(1, 3))
    labels = np.full((rows, cols), -1, dtype=int)
    labels[share > positive] = 1
    labels[share == 0] = 0
    labels[~grid.matter] = -1
    return labels


def fit_model(name: str, features: tuple, grids, labels, l2: float = 1.0,
              iterations: int = 50) -> PowderModel:
    """Return a logistic PowderModel fitted to blocks of grids with labels (1, 0, -1 ignore).

    Newton iterations with an L2 penalty `l2` on the standardised weights; the classes are
    weighted to equal total weight (positive blocks are few).
    """
    rows = []
    ys = []
    for grid, label in zip(grids, labels, strict=True):
        index = [grid.names.index(n) for n in features]
        keep = label >= 0
        rows.append(_expand(grid.features[..., index], features)[keep])
        ys.append(label[keep])
    x = np.concatenate(rows)
    y = np.concatenate(ys).astype(float)
    if not (0 < y.sum() < len(y)):
        raise ValueError('training needs blocks of both classes')
    mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-9
    z = np.column_stack([(x - mean) / scale, np.ones(len(x))])
    weight = np.where(y > 0, 0.5 / y.sum(), 0.5 / (len(y) - y.sum())) * len(y)
    beta = np.zeros(z.shape[1])
    penalty = np.full(z.shape[1], l2)
    penalty[-1] = 0.0
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-np.clip(z @ beta, -30, 30)))
        gradient = z.T @ (weight * (p - y)) + penalty * beta
        hessian = (z * (weight * p * (1 - p))[:, None]).T @ z + np.diag(penalty)
        step = np.linalg.solve(hessian, gradient)
        beta -= step
        if np.max(np.abs(step)) < 1e-8:
            break
    # the class weighting shifts the bias by ln(n_neg / n_pos): undo it, so that the log-odds
    # are those of a block drawn from the training parcels
    bias = float(beta[-1] + math.log(y.sum() / (len(y) - y.sum())))
    return PowderModel(name, tuple(features), tuple(float(v) for v in mean),
                       tuple(float(v) for v in scale), tuple(float(v) for v in beta[:-1]),
                       bias)


# fitted by benchmarks/bench_xray_powder.py --print-models (160 training parcels, seeds 10000+,
# scanner unit 31, L2 3.0)
DEFAULT_MODELS = {
    'transmission': PowderModel(
        'transmission',
        ('ln_a_high', 'zeff', 'texture', 'organic_share', 'ln_a_high_n', 'zeff_n', 'texture_n',
         'organic_share_n'),
        (-1.22092, 8.77359, 0.540623, 0.640425, -1.19663, 8.79007, 0.52892, 0.642385, 2.62334,
         81.1844, 0.732978, 0.549478, 2.27074, 80.5824, 0.570346, 0.519864),
        (1.06428, 2.05148, 0.663855, 0.373274, 0.915866, 1.82128, 0.539064, 0.327423, 2.97903,
         43.6275, 1.60599, 0.413825, 2.55755, 37.0033, 1.15464, 0.364526),
        (-0.00919678, 1.34794, -0.362555, 0.447327, 0.673809, 0.273563, 0.690405, -0.00209202,
         -0.0208309, -1.15571, 0.159361, -0.312943, -1.12974, -0.985077, -2.19101, 0.0277624),
        -2.4574),
    'fused': PowderModel(
        'fused',
        ('ln_a_high', 'zeff', 'texture', 'organic_share', 'ln_a_high_n', 'zeff_n', 'texture_n',
         'organic_share_n', 'ln_back', 'ln_back_n'),
        (-1.22092, 8.77359, 0.540623, 0.640425, -1.19663, 8.79007, 0.52892, 0.642385, 1.04176,
         1.05148, 2.62334, 81.1844, 0.732978, 0.549478, 2.27074, 80.5824, 0.570346, 0.519864,
         1.28819, 1.25585, -0.822108),
        (1.06428, 2.05148, 0.663855, 0.373274, 0.915866, 1.82128, 0.539064, 0.327423, 0.450485,
         0.387597, 2.97903, 43.6275, 1.60599, 0.413825, 2.55755, 37.0033, 1.15464, 0.364526,
         0.914939, 0.787187, 0.64261),
        (0.0393915, 1.51161, 0.246384, 0.477781, -0.714669, 0.940678, 1.66791, -0.14829, -0.100892,
         3.17479, 0.556481, -1.12581, -0.118669, -0.35306, 0.188137, -1.11887, -2.55713, 0.243989,
         1.05549, -0.435563, -0.359304),
        -2.51632),
}


def get_model(model) -> PowderModel:
    """Return a PowderModel, or the shipped one by name ('transmission' or 'fused')."""
    if isinstance(model, PowderModel):
        return model
    if model in DEFAULT_MODELS:
        return DEFAULT_MODELS[model]
    raise ValueError(f'unknown powder model {model!r} (known: {sorted(DEFAULT_MODELS)})')
