"""Gross-count alarm of a radiation portal: background learning, per-passage test, Bayes factor.

Core module (numpy / scipy, no ROS). SI units: s, cps; counts are photon counts.

Per passage (the frames while the lane is occupied, all channels summed), the gross count of
every sliding window of `window` seconds is compared with the background expected in it. The
threshold is the smallest k with P(Poisson(expected) >= k) <= alpha / n_windows: by the union
bound over the window positions the false-alarm probability per background-only passage is at
most alpha (conservatively: overlapping windows are strongly correlated), provided the
background is known; it is estimated from the empty lane with a relative error of order
1 / sqrt(counts learned), small against the window's Poisson noise with the defaults.

The evidence is a Bayes factor of the passage's window counts for H1 "a source passes" against
H0 "background only". Under H1 the source adds an excess s (cps, all channels) during one
window-length stretch of the passage, s log-uniform between `excess_prior_min` and
`excess_prior_max` and its window uniform over the window positions:

    BF = mean over windows w of  integral Pois(n_w; mu_w + s T_w) / Pois(n_w; mu_w) p(s) ds

(T_w: the window's live time, mu_w its expected background counts). It is exactly a Bayes
factor of the passage's frames when the excess is spread over the window's frames in proportion
to their live time (the other frames cancel). Its expectation under H0 is 1, so it is calibrated
only as far as the source-strength prior and the Poisson model with a known background hold:
anything that raises the gross count raises it too (NORM cargo such as fertiliser, ceramics or
granite also gives large ratios; telling it from a threat needs energy windows or spectra,
which a later stage adds). Its 1-sigma spread from the background's uncertainty comes from
evaluating it at background +- 1 sigma.

A subject in the lane shadows the detectors from part of the natural background
(radiation/shadow.py): the caller can pass the passage's factors on the background per frame
and channel, and the windows' expected counts, thresholds and Bayes factors use them.
"""

from dataclasses import dataclass
from functools import lru_cache
import math

import numpy as np
from scipy.special import pdtrc, pdtrik
from scipy.stats import poisson

_MIN_EXPECTED = 1e-9  # counts: floor of a window's background (an unlearned background of 0)


class BackgroundEstimator:
    """Learn each channel's background count rate from the frames of the empty lane.

    An exponentially weighted sum of counts and of live time, with memory `time_constant`
    (s of live time): rate = sum(w counts) / sum(w live). Its 1-sigma uncertainty is the
    Poisson one of the effective counts, sqrt(rate / T_eff) with T_eff = (sum w t)^2 /
    sum(w^2 t) the effective live time (at least one count is assumed). `ready` once
    `min_live_time` s of empty-lane live time have been learned in all.
    """

    def __init__(self, n_channels: int, time_constant: float = 60.0, min_live_time: float = 10.0):
        if int(n_channels) != n_channels or n_channels < 1:
            raise ValueError(f'n_channels must be a positive integer, got {n_channels!r}')
        if not (math.isfinite(time_constant) and time_constant > 0):
            raise ValueError(f'time_constant must be positive s, got {time_constant!r}')
        if not (math.isfinite(min_live_time) and min_live_time >= 0):
            raise ValueError(f'min_live_time must be >= 0 s, got {min_live_time!r}')
        self.n_channels = int(n_channels)
        self.time_constant = float(time_constant)
        self.min_live_time = float(min_live_time)
        self.reset()

    def reset(self):
        """Forget everything learned."""
        self._counts = np.zeros(self.n_channels)  # sum of w * counts
        self._live = 0.0  # sum of w * live time, s
        self._live_sq = 0.0  # sum of w^2 * live time, s
        self.total_live_time = 0.0  # s learned in all (not decayed)

    def update(self, counts, live_time):
        """Learn one frame (counts per channel, live time s) or several ((frames, channels))."""
        counts = np.asarray(counts, dtype=float)
        frames = counts if counts.ndim == 2 else counts.reshape(1, -1)
        if counts.ndim > 2 or frames.shape[1] != self.n_channels:
            raise ValueError(
                f'expected {self.n_channels} counts per frame, got shape {counts.shape}'
            )
        live = np.broadcast_to(np.asarray(live_time, dtype=float), (frames.shape[0],))
        _check_counts(frames)
        _check_live_times(live)
        # Weight of frame i after the batch: exp(-(live time after it) / tau).
        after = np.cumsum(live[::-1])[::-1] - live
        weights = np.exp(-after / self.time_constant)
        decay = math.exp(-float(np.sum(live)) / self.time_constant)
        self._counts = self._counts * decay + weights @ frames
        self._live = self._live * decay + float(weights @ live)
        self._live_sq = self._live_sq * decay * decay + float((weights * weights) @ live)
        self.total_live_time += float(np.sum(live))

    @property
    def ready(self) -> bool:
        """Return True once enough empty-lane live time has been learned."""
        return self._live > 0 and self.total_live_time >= self.min_live_time

    @property
    def effective_live_time(self) -> float:
        """Return the effective live time (s) behind the estimate."""
        return self._live**2 / self._live_sq if self._live_sq > 0 else 0.0

    def rate(self) -> np.ndarray:
        """Return the background count rate per channel, cps (zeros before any frame)."""
        if self._live <= 0:
            return np.zeros(self.n_channels)
        return self._counts / self._live

    def rate_std(self) -> np.ndarray:
        """Return the 1-sigma uncertainty of rate() per channel, cps (zeros before any frame)."""
        effective = self.effective_live_time
        if effective <= 0:
            return np.zeros(self.n_channels)
        effective_counts = np.maximum(self.rate() * effective, 1.0)
        return np.sqrt(effective_counts) / effective


@dataclass(frozen=True)
class AlarmConfig:
    """Parameters of the per-passage gross-count test and of its Bayes factor.

    window: s, length of the sliding window summed over frames (rounded to whole frames).
    false_alarm_probability: per background-only passage (bound, union over window positions).
    excess_prior_min, excess_prior_max: cps summed over channels, the range of source excess
        rates H1 considers (log-uniform prior).
    integration_points: Gauss-Legendre nodes of the Bayes factor's integral over the excess.
    """

    window: float = 1.0
    false_alarm_probability: float = 1e-3
    excess_prior_min: float = 50.0
    excess_prior_max: float = 2e5
    integration_points: int = 48

    def __post_init__(self):
        if not (math.isfinite(self.window) and self.window > 0):
            raise ValueError(f'window must be positive s, got {self.window!r}')
        if not (0 < self.false_alarm_probability < 1):
            raise ValueError(
                f'false_alarm_probability must be in (0, 1), got {self.false_alarm_probability!r}'
            )
        low, high = self.excess_prior_min, self.excess_prior_max
        if not (math.isfinite(low) and math.isfinite(high) and 0 < low < high):
            raise ValueError(
                f'need 0 < excess_prior_min < excess_prior_max (cps), got {low!r}, {high!r}'
            )
        if int(self.integration_points) != self.integration_points or self.integration_points < 8:
            raise ValueError(
                f'integration_points must be an integer >= 8, got {self.integration_points!r}'
            )


@dataclass(frozen=True)
class AlarmResult:
    """Outcome of one passage's test, counts summed over channels.

    The reported window is the most significant alarming one, else the most significant one.
    """

    alarm: bool
    max_window_counts: int  # counts in the reported window (the largest, for equal live times)
    expected_window_counts: float  # background counts expected in it
    threshold: int  # counts that would have alarmed in it
    window_index: int  # index of its first frame
    n_windows: int  # window positions tested
    excess_rate: float  # cps, (counts - expected) / window live time
    significance: float  # z-score (counts - expected) / sqrt(expected + background variance)
    log_likelihood_ratio: float  # nats, ln of the Bayes factor H1 (source) : H0 (background)
    log_likelihood_ratio_std: float  # nats, from the background's uncertainty
    false_alarm_probability: float  # per passage, the bound used
    window_frames: int = 1  # frames per window
    window_live_time: float = 0.0  # s, live time of the reported window
    background_factor: float = 1.0  # the subject's shadow on the background in that window


def _check_counts(counts: np.ndarray):
    if not np.all(np.isfinite(counts)):
        raise ValueError('counts must be finite (got NaN or infinity)')
    if np.any(counts < 0):
        raise ValueError('counts must be >= 0 (got a negative count)')


def _check_live_times(live: np.ndarray):
    if not np.all(np.isfinite(live)):
        raise ValueError('live times must be finite (got NaN or infinity)')
    if np.any(live <= 0):
        raise ValueError('live times must be positive s (got a zero or negative one)')


def _tail(k: np.ndarray, expected: np.ndarray) -> np.ndarray:
    """Return P(Poisson(expected) >= k) (1 for k <= 0)."""
    return np.where(k > 0, pdtrc(np.maximum(k - 1.0, 0.0), expected), 1.0)


def _thresholds(expected: np.ndarray, tail: float) -> np.ndarray:
    """Return, per expected count, the smallest k with P(Poisson(expected) >= k) <= tail.

    The Poisson functions are scipy's (scipy.special's pdtrc / pdtrik, which scipy.stats.poisson
    uses underneath), called directly for speed; round-off in the inverse is corrected by
    stepping k until the definition holds exactly.
    """
    expected = np.asarray(expected, dtype=float)
    if tail > 1e-12:
        guess = np.ceil(pdtrik(1.0 - tail, expected)) + 1.0
    else:  # 1 - tail is not representable well enough: the slower, exact inverse
        guess = np.asarray(poisson.isf(tail, expected), dtype=float) + 1.0
    k = np.where(np.isfinite(guess), np.maximum(guess, 0.0), 0.0)
    for _ in range(100000):
        too_low = _tail(k, expected) > tail
        too_high = (k > 0) & (_tail(k - 1.0, expected) <= tail)
        if not (np.any(too_low) or np.any(too_high)):
            break
        k = k + too_low - too_high
    return k.astype(np.int64)


def passage_threshold(expected_counts: float, n_windows: int, false_alarm_probability: float):
    """Return the smallest k with P(Poisson(expected_counts) >= k) <= alpha / n_windows."""
    if not (math.isfinite(expected_counts) and expected_counts >= 0):
        raise ValueError(f'expected_counts must be >= 0, got {expected_counts!r}')
    if int(n_windows) != n_windows or n_windows < 1:
        raise ValueError(f'n_windows must be a positive integer, got {n_windows!r}')
    if not (0 < false_alarm_probability < 1):
        raise ValueError(
            f'false_alarm_probability must be in (0, 1), got {false_alarm_probability!r}'
        )
    tail = false_alarm_probability / int(n_windows)
    return int(_thresholds(np.array([float(expected_counts)]), tail)[0])


def log_bayes_factors(
    counts, expected, live_time, excess_prior_min, excess_prior_max, n_points=48
) -> np.ndarray:
    """Return ln of integral Pois(n; mu + s T) / Pois(n; mu) p(s) ds per window (nats).

    counts n, expected background mu (counts) and live time T (s) are per window (arrays);
    p(s) is log-uniform on [excess_prior_min, excess_prior_max] (cps). The integral over
    u = ln s is Gauss-Legendre in t, with u = centre + scale sinh(t) centred on the likelihood's
    peak (s = (n - mu) / T, or the prior's bound nearest to it) and scaled to its width, so a
    sharp peak or boundary layer (thousands of counts) is resolved as well as a flat integrand
    (within ~1e-4 nats of adaptive quadrature with 48 nodes).
    """
    if not (0 < excess_prior_min < excess_prior_max and math.isfinite(excess_prior_max)):
        raise ValueError(
            f'need 0 < excess_prior_min < excess_prior_max, got {excess_prior_min!r}, '
            f'{excess_prior_max!r}'
        )
    values, _ = _log_bayes_factors(
        np.atleast_1d(counts), np.atleast_1d(expected), np.atleast_1d(live_time),
        excess_prior_min, excess_prior_max, n_points,
    )
    return values


@lru_cache(maxsize=16)
def _gauss_legendre(points: int) -> tuple[np.ndarray, np.ndarray]:
    nodes, weights = np.polynomial.legendre.leggauss(points)
    return nodes, weights


def _log_bayes_factors(counts, expected, live_time, prior_min, prior_max, n_points):
    """Return (ln BF per window, d ln BF / d mu per window)."""
    n = np.asarray(counts, dtype=float)[:, None]
    mu = np.maximum(np.asarray(expected, dtype=float), _MIN_EXPECTED)[:, None]
    exposure = np.asarray(live_time, dtype=float)[:, None]
    low, high = math.log(prior_min), math.log(prior_max)
    peak = np.maximum(n - mu, np.sqrt(mu + 1.0))  # counts
    centre = np.clip(np.log(peak / exposure), low, high)
    # Width in u of the integrand's peak, or of its boundary layer when the peak lies outside
    # the prior (then the log-integrand's slope there sets it).
    centre_excess = np.exp(centre) * exposure
    slope = np.abs(centre_excess * (n / (mu + centre_excess) - 1.0))
    scale = np.clip(
        np.minimum(np.sqrt(n + 1.0) / peak, 1.0 / np.maximum(slope, 1e-300)), 1e-12, 1.0
    )
    t_low = np.arcsinh((low - centre) / scale)
    t_high = np.arcsinh((high - centre) / scale)
    nodes, node_weights = _gauss_legendre(int(n_points))
    half = 0.5 * (t_high - t_low)
    grow = np.exp((t_low + half) + half * nodes)  # e^t on the nodes
    shrink = 1.0 / grow
    # s T on the nodes: u = centre + scale sinh(t)
    excess = np.exp((np.log(exposure) + centre) + (0.5 * scale) * (grow - shrink))
    log_ratio = n * np.log1p(excess / mu) - excess
    # Gauss-Legendre in t with du = scale cosh(t) dt; cosh(t) >= 1 and the largest log_ratio
    # is subtracted, so the sum neither overflows nor vanishes.
    top = np.max(log_ratio, axis=1, keepdims=True)
    terms = np.exp(log_ratio - top) * (grow + shrink) * node_weights
    total = np.sum(terms, axis=1)
    values = np.log(total * (0.5 * scale[:, 0] * half[:, 0])) + top[:, 0] - math.log(high - low)
    # d ln BF / d mu: the posterior-weighted mean of d log_ratio / d mu = -n s T / (mu (mu + s T)).
    derivative = -np.sum(terms * (excess / (mu + excess)), axis=1) * (n[:, 0] / mu[:, 0]) / total
    return values, derivative


def _window_sums(values: np.ndarray, frames: int) -> np.ndarray:
    cumulative = np.concatenate([np.zeros(1), np.cumsum(values)])
    return cumulative[frames:] - cumulative[:-frames]


def evaluate_passage(counts, live_times, background_rate, background_rate_std, config=None,
                     background_factors=None):
    """Test one passage: counts (frames, channels), live_times (frames,) s, background cps.

    background_rate and background_rate_std are per channel (or scalars for all); they are
    summed (in quadrature for the std) over the channels, as the counts are. background_factors
    (frames, channels), each in (0, 1]: the subject's shadow on the background (None: none). A
    passage shorter than one window is tested as a single window. Empty passage, NaN / infinite
    / negative counts or live times, mismatched shapes: ValueError.
    """
    config = config or AlarmConfig()
    counts = np.asarray(counts, dtype=float)
    if counts.ndim == 1:
        counts = counts[:, None]
    if counts.ndim != 2 or counts.shape[0] == 0 or counts.shape[1] == 0:
        raise ValueError(f'empty passage or bad counts shape {counts.shape}: need (frames, ch)')
    live = np.asarray(live_times, dtype=float).reshape(-1)
    if live.shape[0] != counts.shape[0]:
        raise ValueError(f'{counts.shape[0]} frames of counts but {live.shape[0]} live times')
    _check_counts(counts)
    _check_live_times(live)
    n_channels = counts.shape[1]
    try:
        rate = np.broadcast_to(np.asarray(background_rate, dtype=float), (n_channels,))
        rate_std = np.broadcast_to(np.asarray(background_rate_std, dtype=float), (n_channels,))
    except ValueError:
        raise ValueError(
            f'background rate / std must have {n_channels} channels or be scalars'
        ) from None
    if not (np.all(np.isfinite(rate)) and np.all(rate >= 0)):
        raise ValueError('background rate must be finite and >= 0 cps')
    if not (np.all(np.isfinite(rate_std)) and np.all(rate_std >= 0)):
        raise ValueError('background rate std must be finite and >= 0 cps')
    total_rate = float(np.sum(rate))
    factors = np.ones(counts.shape)
    if background_factors is not None:
        factors = np.asarray(background_factors, dtype=float)
        if factors.shape != counts.shape or not np.all((factors > 0) & (factors <= 1)):
            raise ValueError(f'background factors must be in (0, 1] with shape {counts.shape}')

    n_frames = counts.shape[0]
    frames = int(min(max(round(config.window / float(np.median(live))), 1), n_frames))
    window_counts = _window_sums(counts.sum(axis=1), frames)
    window_live = _window_sums(live, frames)
    expected = _window_sums(live * (factors @ rate), frames)
    sigma = _window_sums(live * np.sqrt((factors * factors) @ (rate_std * rate_std)), frames)
    n_windows = window_counts.shape[0]

    distinct, where = np.unique(expected, return_inverse=True)
    thresholds = _thresholds(distinct, config.false_alarm_probability / n_windows)[where]
    alarms = window_counts >= thresholds
    z = (window_counts - expected) / np.sqrt(np.maximum(expected + sigma * sigma, 1.0))
    best = int(np.argmax(np.where(alarms, z, -np.inf))) if np.any(alarms) else int(np.argmax(z))

    per_window, derivative = _log_bayes_factors(
        window_counts,
        expected,
        window_live,
        config.excess_prior_min,
        config.excess_prior_max,
        config.integration_points,
    )
    top = float(np.max(per_window))
    softmax = np.exp(per_window - top)
    log_ratio = top + math.log(float(np.sum(softmax)) / n_windows)
    # Linear propagation of the background's uncertainty: every window's mu moves together.
    spread = abs(float(np.sum(softmax * derivative * sigma) / np.sum(softmax)))
    return AlarmResult(
        alarm=bool(np.any(alarms)),
        max_window_counts=int(round(window_counts[best])),
        expected_window_counts=float(expected[best]),
        threshold=int(thresholds[best]),
        window_index=best,
        n_windows=int(n_windows),
        excess_rate=float((window_counts[best] - expected[best]) / window_live[best]),
        significance=float(z[best]),
        log_likelihood_ratio=log_ratio,
        log_likelihood_ratio_std=float(spread),
        false_alarm_probability=float(config.false_alarm_probability),
        window_frames=frames,
        window_live_time=float(window_live[best]),
        background_factor=float(expected[best] / max(total_rate * window_live[best], 1e-300)),
    )


def explain(result: AlarmResult, background_ready: bool) -> str:
    """Return the officer's one-line explanation of a passage's alarm result."""
    if not background_ready:
        return 'background not yet learned: no radiation evidence for this passage'
    verdict = 'ALARM' if result.alarm else 'no alarm'
    ratio = (
        result.max_window_counts / result.expected_window_counts
        if result.expected_window_counts > 0
        else float('inf')
    )
    return (
        f'{verdict}: gross gamma {ratio:.2f}x background in the strongest '
        f'{result.n_windows}-window passage ({result.max_window_counts} counts vs '
        f'{result.expected_window_counts:.0f} expected, {result.significance:.1f} sigma; '
        f'threshold {result.threshold} at false-alarm probability '
        f'{result.false_alarm_probability:g} per passage'
        + (f"; background {result.background_factor:.2f}x in the subject's shadow)"
           if result.background_factor < 0.995 else ')')
    )
