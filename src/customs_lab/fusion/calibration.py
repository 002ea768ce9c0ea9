"""Calibration: is a risk of 0.1 right one time in ten? Diagnostics, and a Platt calibrator.

Diagnostics take forecasts p (probabilities) and outcomes y (0/1, e.g. inspection results):

- `reliability_diagram`: forecasts binned ('uniform': equal-width bins on [0, 1], each [low,
  high) and the last closed; 'quantile': bins of (nearly) equal counts, edges at the quantiles of
  p); per non-empty bin the mean forecast, the observed frequency and its Wilson 95 % interval.
- `brier_score`, `log_loss` (p clipped to [eps, 1 - eps]), `expected_calibration_error`
  (count-weighted mean |observed - predicted| over the bins).
- `brier_decomposition`: Murphy's BS = REL - RES + UNC over the bins. The identity is exact when
  every forecast in a bin has the same value; for continuous forecasts the remainder is the
  within-bin variance minus twice the within-bin covariance (Stephenson et al. 2008), returned
  as `within_bin` so that BS = REL - RES + UNC + within_bin always holds.

`PlattCalibrator` maps a raw score s (a log-odds or a log-likelihood ratio) to the calibrated
log-odds a * s + b. It is fitted by weighted maximum a posteriori: logistic likelihood plus a
Gaussian prior on (a, b) centred on (prior_a, prior_b), by default the identity for log-odds
(for LLRs, set prior_b to the logit of the base rate), so that few samples or labels of one
class (inspection results are rare positives) give a finite fit that stays near the prior. The
default prior trusts the score's scale (slope 1 +- 0.5) and leaves the level free (intercept
+- 4, so base rates down to 1 in 3000 lie within 2 std): with negatives only, the slope is not
identified by the data and stays near 1 while the intercept learns how rare positives are.
`update` refits online: the previous fit's Gaussian (Laplace) approximation is the prior of
the new batch, so no past sample is stored. Bad input raises ValueError naming the problem.

`EvidenceCalibrator` is the risk engine's: the same kind of fit over the declaration prior and
each evidence kind separately (its docstring). Core module: no ROS.
"""

from dataclasses import dataclass
import hashlib
import json
import math

import numpy as np

Z95 = 1.959963984540054


@dataclass(frozen=True)
class ReliabilityBin:
    """One row of a reliability diagram."""

    low: float
    high: float
    count: int
    mean_predicted: float
    observed: float
    ci_low: float  # Wilson 95 % interval of the observed frequency
    ci_high: float


@dataclass(frozen=True)
class BrierDecomposition:
    """Murphy's decomposition: brier = reliability - resolution + uncertainty + within_bin."""

    brier: float
    reliability: float
    resolution: float
    uncertainty: float
    within_bin: float


def _array(values, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    if array.ndim != 1:
        raise ValueError(f'{name} must be one-dimensional, got shape {array.shape}')
    if not np.all(np.isfinite(array)):
        raise ValueError(f'{name} contains NaN or infinite values (first at index '
                         f'{int(np.flatnonzero(~np.isfinite(array))[0])})')
    return array


def _labels(y, n: int) -> np.ndarray:
    labels = _array(y, 'y')
    if len(labels) != n:
        raise ValueError(f'lengths differ: {n} forecasts/scores but {len(labels)} labels')
    if not np.all((labels == 0) | (labels == 1)):
        raise ValueError('labels y must be 0 or 1')
    return labels


def _check(p, y) -> tuple[np.ndarray, np.ndarray]:
    forecasts = _array(p, 'p')
    if len(forecasts) == 0:
        raise ValueError('no forecasts: p is empty')
    if np.any((forecasts < 0) | (forecasts > 1)):
        raise ValueError('forecasts p must lie in [0, 1]')
    return forecasts, _labels(y, len(forecasts))


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Return the Wilson score interval of a binomial proportion (0, 1 when n is 0)."""
    if n == 0:
        return 0.0, 1.0
    centre = (successes + z * z / 2) / (n + z * z)
    half = z / (n + z * z) * math.sqrt(successes * (n - successes) / n + z * z / 4)
    return max(0.0, centre - half), min(1.0, centre + half)


def _bin_index(p: np.ndarray, bins: int, strategy: str) -> tuple[np.ndarray, np.ndarray]:
    if not (isinstance(bins, int) and bins >= 1):
        raise ValueError(f'bins must be an int >= 1, got {bins!r}')
    if strategy == 'uniform':
        edges = np.linspace(0.0, 1.0, bins + 1)
    elif strategy == 'quantile':
        edges = np.unique(np.quantile(p, np.linspace(0.0, 1.0, bins + 1)))
        edges[0], edges[-1] = min(edges[0], 0.0), max(edges[-1], 1.0)  # cover [0, 1]
    else:
        raise ValueError(f"strategy must be 'uniform' or 'quantile', got {strategy!r}")
    return np.searchsorted(edges[1:-1], p, side='right'), edges


def _binned(p, y, bins, strategy):
    index, edges = _bin_index(p, bins, strategy)
    for k in range(len(edges) - 1):
        member = index == k
        if np.any(member):
            yield edges[k], edges[k + 1], p[member], y[member]


def reliability_diagram(p, y, bins: int = 10, strategy: str = 'uniform') -> list[ReliabilityBin]:
    """Return the non-empty bins of a reliability diagram of forecasts p against outcomes y."""
    p, y = _check(p, y)
    rows = []
    for low, high, pk, yk in _binned(p, y, bins, strategy):
        positives = int(yk.sum())
        rows.append(ReliabilityBin(float(low), float(high), len(pk), float(pk.mean()),
                                   positives / len(pk), *wilson_interval(positives, len(pk))))
    return rows


def brier_score(p, y) -> float:
    """Return the mean squared difference between forecasts and outcomes."""
    p, y = _check(p, y)
    return float(np.mean((p - y) ** 2))


def brier_decomposition(p, y, bins: int = 10, strategy: str = 'uniform') -> BrierDecomposition:
    """Return Murphy's decomposition of the Brier score over the bins (module docstring)."""
    p, y = _check(p, y)
    n, base = len(p), float(y.mean())
    rel = res = within = 0.0
    for _, _, pk, yk in _binned(p, y, bins, strategy):
        pbar, obar = pk.mean(), yk.mean()
        rel += len(pk) * (pbar - obar) ** 2 / n
        res += len(pk) * (obar - base) ** 2 / n
        within += (np.sum((pk - pbar) ** 2) - 2 * np.sum((yk - obar) * (pk - pbar))) / n
    return BrierDecomposition(brier_score(p, y), float(rel), float(res), base * (1 - base),
                              float(within))


def log_loss(p, y, eps: float = 1e-15) -> float:
    """Return the mean negative log-likelihood (nats) of outcomes y under forecasts p."""
    p, y = _check(p, y)
    p = np.clip(p, eps, 1 - eps)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log1p(-p)))


def expected_calibration_error(p, y, bins: int = 10, strategy: str = 'uniform') -> float:
    """Return the count-weighted mean |observed - predicted| over the bins."""
    rows = reliability_diagram(p, y, bins, strategy)
    total = sum(r.count for r in rows)
    return float(sum(r.count * abs(r.observed - r.mean_predicted) for r in rows) / total)


def format_reliability_table(rows) -> str:
    """Return a plain-text table of reliability diagram rows (for benchmark output)."""
    lines = [f'{"bin":>13} {"count":>7} {"predicted":>9} {"observed":>8}  {"95% interval":>15}']
    for r in rows:
        lines.append(f'[{r.low:.3f},{r.high:.3f}) {r.count:>7d} {r.mean_predicted:>9.4f} '
                     f'{r.observed:>8.4f}  [{r.ci_low:.4f},{r.ci_high:.4f}]')
    return '\n'.join(lines)


class PlattCalibrator:
    """Calibrated log-odds a * s + b of a raw score s, fitted by MAP (module docstring)."""

    def __init__(self, prior_a=1.0, prior_b=0.0, prior_std_a=0.5, prior_std_b=4.0):
        for name, value in (('prior_a', prior_a), ('prior_b', prior_b)):
            if not math.isfinite(value):
                raise ValueError(f'{name} must be finite, got {value!r}')
        for name, value in (('prior_std_a', prior_std_a), ('prior_std_b', prior_std_b)):
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f'{name} must be finite and > 0, got {value!r}')
        self.prior_mean = np.array([prior_a, prior_b], dtype=float)
        self.prior_precision = np.diag([prior_std_a**-2.0, prior_std_b**-2.0])
        self.reset()

    def reset(self):
        """Forget every fit: back to the prior (a, b) = (prior_a, prior_b)."""
        self.mean, self.precision = self.prior_mean.copy(), self.prior_precision.copy()
        self.samples, self.positives = 0.0, 0.0

    @property
    def a(self) -> float:
        """Return the slope."""
        return float(self.mean[0])

    @property
    def b(self) -> float:
        """Return the intercept."""
        return float(self.mean[1])

    @property
    def version(self) -> str:
        """Return 'platt+' and a digest of (a, b): it changes whenever the mapping changes."""
        blob = json.dumps([repr(self.a), repr(self.b)]).encode()
        return f'platt+{hashlib.sha256(blob).hexdigest()[:8]}'

    def log_odds(self, scores):
        """Return the calibrated log-odds a * s + b (a float for a scalar score)."""
        s = np.asarray(scores, dtype=float)
        if not np.all(np.isfinite(s)):
            raise ValueError('scores contain NaN or infinite values')
        out = self.a * s + self.b
        return float(out) if out.ndim == 0 else out

    def probability(self, scores):
        """Return the calibrated probability sigmoid(a * s + b)."""
        z = np.asarray(self.log_odds(scores), dtype=float)
        out = np.exp(-np.logaddexp(0.0, -z))
        return float(out) if out.ndim == 0 else out

    def fit(self, scores, labels, weights=None) -> 'PlattCalibrator':
        """Fit from the prior to this data alone (earlier fits are forgotten)."""
        data = _samples(scores, labels, weights)
        self.reset()
        return self._update(*data)

    def update(self, scores, labels, weights=None) -> 'PlattCalibrator':
        """Refit with a new batch, the current fit acting as the prior (Laplace approximation)."""
        return self._update(*_samples(scores, labels, weights))

    def _update(self, s, y, w) -> 'PlattCalibrator':
        x = np.column_stack([s, np.ones_like(s)])
        self.mean, self.precision = _newton(x, y, w, self.mean, self.precision)
        self.samples += float(w.sum())
        self.positives += float(w @ y)
        return self

    def to_dict(self) -> dict:
        """Return a JSON-serialisable state (parameters, their precision, the prior)."""
        return {
            'a': self.a, 'b': self.b, 'precision': self.precision.tolist(),
            'prior_mean': self.prior_mean.tolist(),
            'prior_precision': self.prior_precision.tolist(),
            'samples': self.samples, 'positives': self.positives, 'version': self.version,
        }

    @classmethod
    def from_dict(cls, data: dict) -> 'PlattCalibrator':
        """Rebuild a calibrator from `to_dict` output (checks the stored version)."""
        try:
            calibrator = cls()
            calibrator.prior_mean = np.array(data['prior_mean'], dtype=float).reshape(2)
            calibrator.prior_precision = np.array(data['prior_precision'], dtype=float)
            calibrator.mean = np.array([data['a'], data['b']], dtype=float)
            calibrator.precision = np.array(data['precision'], dtype=float).reshape(2, 2)
            calibrator.samples, calibrator.positives = data['samples'], data['positives']
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f'not a PlattCalibrator state: {error}') from error
        if not np.all(np.isfinite(calibrator.mean)):
            raise ValueError('PlattCalibrator state has non-finite parameters')
        if 'version' in data and data['version'] != calibrator.version:
            raise ValueError(f"state version {data['version']} does not match its parameters")
        return calibrator


def _samples(scores, labels, weights):
    s = _array(scores, 'scores')
    y = _labels(labels, len(s))
    w = np.ones_like(s) if weights is None else _array(weights, 'weights')
    if len(w) != len(s):
        raise ValueError(f'lengths differ: {len(s)} scores but {len(w)} weights')
    if np.any(w < 0):
        raise ValueError('weights must be >= 0')
    if len(s) == 0 or not np.any(w > 0):
        raise ValueError('no samples to fit (empty, or all weights 0)')
    return s, y, w


def _newton(x, y, w, mean, precision, iterations=100):
    """Return the MAP parameters of a logistic model (design matrix x) and the Hessian there.

    Newton steps with backtracking on the negative log posterior (logistic likelihood, Gaussian
    prior N(mean, precision^-1)).
    """

    def objective(theta):
        z = x @ theta
        d = theta - mean
        return float(w @ (np.logaddexp(0.0, z) - y * z) + 0.5 * d @ precision @ d)

    theta, value = mean.copy(), objective(mean)
    for _ in range(iterations):
        q = np.exp(-np.logaddexp(0.0, -(x @ theta)))  # sigmoid
        gradient = x.T @ (w * (q - y)) + precision @ (theta - mean)
        hessian = (x.T * (w * q * (1 - q))) @ x + precision
        step = np.linalg.solve(hessian, gradient)
        t = 1.0
        while objective(theta - t * step) > value and t > 1e-10:
            t /= 2
        theta = theta - t * step
        value = objective(theta)
        if np.max(np.abs(t * step)) < 1e-10:
            break
    q = np.exp(-np.logaddexp(0.0, -(x @ theta)))
    return theta, (x.T * (w * q * (1 - q))) @ x + precision


def log_excess(llr: float, cap: float) -> float:
    """Return sign(llr) * ln(|llr| / cap) beyond the cap, 0 within it (nats, e-folds)."""
    magnitude = abs(llr)
    return math.copysign(math.log(magnitude / cap), llr) if magnitude > cap else 0.0


class EvidenceCalibrator:
    """Calibrated log-odds from the prior and each evidence kind, learned from inspections.

    The model (logistic, fitted by MAP like PlattCalibrator, online with the Laplace
    approximation):

        calibrated log-odds = c * prior + d + sum over evidence kinds k of
                              a_k * (weighted LLRs of kind k, each capped at +-cap)
                            + g_k * (their weighted log-excess beyond the cap, e-folds)

    Its prior is the identity (c = a_k = 1 +- 0.5, d = 0 +- 4, g_k = 0 +- 1): before data the
    calibrated log-odds are the raw ones (prior plus capped LLRs). What it can learn is what a
    sensor's LLR is worth against the outcomes of inspections: a portal's gross-count Bayes
    factor compares a source with background only, so legal NORM cargo (fertiliser, ceramics)
    reports tens to thousands of nats; inspections that find nothing there lower a_k, and the
    much larger excess of real sources raises g_k. The declaration prior's weight (c) is
    learned beside them rather than shrunk with them, as one Platt map on the sum would.
    Features are a {name: value} mapping ('prior', 'intercept', '<kind>|capped',
    '<kind>|excess'); kinds are added as they first appear in a fit, and a kind the model has
    not seen counts with its prior (the identity). Kind names come from messages, so their
    number is bounded: the first `max_kinds` - 1 get their own weights, later ones share
    'other'. Core module: no ROS.
    """

    PRIOR_MEAN = {'prior': 1.0, 'intercept': 0.0, 'capped': 1.0, 'excess': 0.0}

    OTHER = 'other'  # the kind that evidence kinds beyond `max_kinds` share

    def __init__(self, cap: float = 20.0, prior_std_slope: float = 0.5,
                 prior_std_intercept: float = 4.0, prior_std_excess: float = 1.0,
                 max_kinds: int = 16):
        if not 0.0 < cap < math.inf:
            raise ValueError(f'cap must be finite and > 0, got {cap!r}')
        if not (isinstance(max_kinds, int) and max_kinds >= 1):
            raise ValueError(f'max_kinds must be an int >= 1, got {max_kinds!r}')
        self.max_kinds = max_kinds
        for name, value in (('prior_std_slope', prior_std_slope),
                            ('prior_std_intercept', prior_std_intercept),
                            ('prior_std_excess', prior_std_excess)):
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f'{name} must be finite and > 0, got {value!r}')
        self.cap = float(cap)
        self.prior_std = {'prior': prior_std_slope, 'intercept': prior_std_intercept,
                          'capped': prior_std_slope, 'excess': prior_std_excess}
        self.reset()

    def reset(self):
        """Forget every fit: back to the identity."""
        self.names: list[str] = []
        self.mean = np.zeros(0)
        self.precision = np.zeros((0, 0))
        self.samples, self.positives = 0.0, 0.0
        self.kinds: list[str] = []  # evidence kinds with their own weights, first seen first
        self._ensure(['prior', 'intercept'])

    @staticmethod
    def _role(name: str) -> str:
        return name.rsplit('|', 1)[-1]

    def _ensure(self, names):
        new = [n for n in names if n not in self.names]
        if not new:
            return
        for name in new:
            if self._role(name) not in self.PRIOR_MEAN:
                raise ValueError(f'unknown calibration feature {name!r}')
        size = len(self.names) + len(new)
        precision = np.zeros((size, size))
        precision[:len(self.names), :len(self.names)] = self.precision
        for i, name in enumerate(new, start=len(self.names)):
            precision[i, i] = self.prior_std[self._role(name)] ** -2.0
        self.mean = np.concatenate([self.mean, [self.PRIOR_MEAN[self._role(n)] for n in new]])
        self.precision = precision
        self.names += new

    def coefficient(self, name: str) -> float:
        """Return a feature's coefficient (its prior mean if the model has not seen it)."""
        if name in self.names:
            return float(self.mean[self.names.index(name)])
        return self.PRIOR_MEAN[self._role(name)]

    def features(self, prior_log_odds: float, contributions) -> dict:
        """Return the features of a subject: its prior and (weight, raw LLR, kind) items."""
        out = {'prior': float(prior_log_odds), 'intercept': 1.0}
        for weight, llr, name in contributions:
            if not math.isfinite(llr):
                raise ValueError(f'{name} evidence has a non-finite LLR')
            kind = self._kind(name)
            capped = max(-self.cap, min(self.cap, llr))
            out[f'{kind}|capped'] = out.get(f'{kind}|capped', 0.0) + weight * capped
            out[f'{kind}|excess'] = (out.get(f'{kind}|excess', 0.0)
                                     + weight * log_excess(llr, self.cap))
        return out

    def _kind(self, name: str) -> str:
        """Return the kind an evidence kind is weighed as (a bounded set: messages name kinds)."""
        if name in self.kinds:
            return name
        if len(self.kinds) < self.max_kinds - 1 and name != self.OTHER:
            self.kinds.append(name)
            return name
        return self.OTHER

    def contribution(self, name: str, weight: float, llr: float) -> float:
        """Return what one item (weight, raw LLR) of a kind adds to the calibrated log-odds."""
        kind = self._kind(name)
        capped = max(-self.cap, min(self.cap, llr))
        return weight * (self.coefficient(f'{kind}|capped') * capped
                         + self.coefficient(f'{kind}|excess') * log_excess(llr, self.cap))

    def log_odds(self, features: dict) -> float:
        """Return the calibrated log-odds of a subject's features."""
        return float(sum(self.coefficient(name) * value for name, value in features.items()))

    def update(self, features: dict, label: bool, weight: float = 1.0) -> 'EvidenceCalibrator':
        """Learn one outcome (the current fit acting as the prior)."""
        if not all(math.isfinite(v) for v in features.values()):
            raise ValueError('features contain NaN or infinite values')
        if not (math.isfinite(weight) and weight > 0):
            raise ValueError(f'weight must be finite and > 0, got {weight!r}')
        self._ensure(list(features))
        x = np.array([[features.get(name, 0.0) for name in self.names]])
        self.mean, self.precision = _newton(x, np.array([float(bool(label))]),
                                            np.array([float(weight)]), self.mean,
                                            self.precision)
        self.samples += weight
        self.positives += weight * bool(label)
        return self

    def describe(self) -> str:
        """Return the fitted coefficients in a line ('prior x1.00 -2.10; radiation.gamma: ...')."""
        kinds = sorted({n.rsplit('|', 1)[0] for n in self.names if '|' in n})
        parts = [f'prior x{self.coefficient("prior"):.2f} {self.coefficient("intercept"):+.2f}']
        parts += [f'{k}: {self.coefficient(k + "|capped"):.2f} x capped LLR '
                  f'{self.coefficient(k + "|excess"):+.2f} per e-fold beyond +-{self.cap:g}'
                  for k in kinds]
        return '; '.join(parts)

    def to_dict(self) -> dict:
        """Return a JSON-serialisable state (coefficients, their precision, the settings)."""
        return {
            'cap': self.cap, 'max_kinds': self.max_kinds, 'prior_std': dict(self.prior_std),
            'names': list(self.names), 'mean': self.mean.tolist(),
            'precision': self.precision.tolist(), 'kinds': list(self.kinds),
            'samples': self.samples, 'positives': self.positives, 'version': self.version,
        }

    @classmethod
    def from_dict(cls, data: dict) -> 'EvidenceCalibrator':
        """Rebuild a calibrator from `to_dict` output (checks it, and the stored version)."""
        try:
            std = data['prior_std']
            calibrator = cls(float(data['cap']), std['prior'], std['intercept'], std['excess'],
                             int(data['max_kinds']))
            names = [str(n) for n in data['names']]
            mean = np.array(data['mean'], dtype=float).reshape(len(names))
            precision = np.array(data['precision'], dtype=float).reshape(len(names), len(names))
            for name in names:
                if calibrator._role(name) not in cls.PRIOR_MEAN:
                    raise ValueError(f'unknown calibration feature {name!r}')
            calibrator.names, calibrator.mean, calibrator.precision = names, mean, precision
            calibrator.kinds = [str(k) for k in data['kinds']]
            calibrator.samples = float(data['samples'])
            calibrator.positives = float(data['positives'])
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f'not an EvidenceCalibrator state: {error}') from error
        if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(precision))):
            raise ValueError('EvidenceCalibrator state has non-finite parameters')
        if data.get('version', calibrator.version) != calibrator.version:
            raise ValueError(f"state version {data['version']} does not match its parameters")
        return calibrator

    @property
    def version(self) -> str:
        """Return 'evcal+' and a digest of the coefficients: it changes whenever they do."""
        blob = json.dumps([[n, repr(float(v))] for n, v in zip(self.names, self.mean,
                                                                 strict=True)]).encode()
        return f'evcal+{hashlib.sha256(blob).hexdigest()[:8]}'
