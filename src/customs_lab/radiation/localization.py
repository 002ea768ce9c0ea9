"""Locate a radioactive source in 3D from counts seen by several detectors and viewpoints.

Core module (numpy / scipy, no ROS). The data are measurements: a detector panel (its pose
given in the frame where the source is at rest: the container's or parcel's frame for a
portal the subject drives through, the map for a robot's detector head), a live time, the
counts, and the background rate expected without a source (the empty-lane or empty-container
estimate). The model for measurement i, for a point source of the identified nuclide at x with
activity A (Bq):

    lambda_i = t_i * (b_i + A * g_i(x))

g_i(x): the panel's count rate per Bq (radiation/physics.expected_count_rates: solid angle,
air, the source's shields, the panel's efficiency). The estimate maximises the Poisson
log-likelihood sum(y_i ln lambda_i - lambda_i): for each candidate position the activity is
profiled out (the one-dimensional score equation is monotone in A), a grid over the search box
gives the three best starts, Nelder-Mead refines each, and a bounded quasi-Newton step polishes
the best (a source can sit against a wall of the box).

Its uncertainty is the inverse of the Fisher information at the estimate,
I = sum_i (d lambda_i / d theta)(d lambda_i / d theta)^T / lambda_i over theta = (x, y, z, A)
(derivatives by central differences); the same information at the true source gives the
Cramer-Rao bound (`cramer_rao_bound`), the smallest covariance any unbiased estimator can
reach, against which the benchmark compares the estimator's error.
"""

from dataclasses import dataclass
import math

import numpy as np
from scipy.optimize import brentq, minimize

from customs_lab.radiation.physics import DetectorPanel, PointSource, expected_count_rates

STEP_M = 1e-3  # central-difference step for the Fisher information, m


@dataclass(frozen=True)
class Measurement:
    """One detector's counts over a live time, with its pose in the source's rest frame."""

    panel: DetectorPanel
    live_time: float  # s
    counts: float
    background_rate: float  # cps expected without a source

    def __post_init__(self):
        for name in ('live_time', 'counts', 'background_rate'):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f'measurement {name} must be finite and >= 0, got {value!r}')
        if self.live_time <= 0:
            raise ValueError('measurement live_time must be > 0')


@dataclass(frozen=True)
class Localization:
    """The maximum-likelihood source, its covariance and how much it beats no source."""

    position: np.ndarray  # m, in the measurements' frame
    activity: float  # Bq
    covariance: np.ndarray  # 4x4 over (x, y, z, A), inverse Fisher information at the estimate
    deviance: float  # 2 ln L(source) / L(background only)
    nuclide: str

    @property
    def position_std(self) -> np.ndarray:
        """Return the standard deviation of each coordinate, m."""
        return np.sqrt(np.clip(np.diag(self.covariance)[:3], 0.0, None))

    @property
    def activity_std(self) -> float:
        """Return the standard deviation of the activity, Bq."""
        return float(math.sqrt(max(self.covariance[3, 3], 0.0)))


class _Model:
    """The measurements as arrays, and the unit responses g_i at a position."""

    def __init__(self, measurements, nuclide: str, shields=()):
        if not measurements:
            raise ValueError('no measurements to localize from')
        self.panels = [m.panel for m in measurements]
        self.t = np.array([m.live_time for m in measurements])
        self.y = np.array([m.counts for m in measurements], dtype=float)
        self.b = np.array([m.background_rate for m in measurements]) * self.t
        self.nuclide, self.shields = nuclide, tuple(shields)

    def unit(self, position) -> np.ndarray:
        """Return expected counts per Bq of each measurement for a source at `position`."""
        source = PointSource(self.nuclide, 1.0, np.asarray(position, dtype=float), self.shields)
        return self.t * expected_count_rates(self.panels, [source])

    def log_likelihood(self, expected) -> float:
        expected = np.maximum(expected, 1e-300)
        return float(np.sum(self.y * np.log(expected) - expected))

    def profile(self, g) -> float:
        """Return the activity that maximises the likelihood for unit responses g (>= 0)."""
        total = float(g.sum())
        if total <= 0:
            return 0.0

        def score(a):
            return float(np.sum(self.y * g / np.maximum(self.b + a * g, 1e-300))) - total

        if score(0.0) <= 0:
            return 0.0
        high = max(float(self.y.sum()) / total, 1e-12)
        while score(high) > 0:
            high *= 2.0
        return brentq(score, 0.0, high, xtol=1e-12 * high, rtol=1e-10)


def fisher_information(model: _Model, position, activity: float) -> np.ndarray:
    """Return the Fisher information over (x, y, z, A) for the model's geometry."""
    position = np.asarray(position, dtype=float)
    g = model.unit(position)
    expected = np.maximum(model.b + activity * g, 1e-300)
    jacobian = np.empty((len(g), 4))
    for axis in range(3):
        step = np.zeros(3)
        step[axis] = STEP_M
        jacobian[:, axis] = activity * (model.unit(position + step)
                                        - model.unit(position - step)) / (2 * STEP_M)
    jacobian[:, 3] = g
    return (jacobian.T / expected) @ jacobian


def _inverse(information: np.ndarray) -> np.ndarray:
    try:
        return np.linalg.inv(information)
    except np.linalg.LinAlgError:
        return np.full((4, 4), np.inf)


def cramer_rao_bound(measurements, position, activity: float, nuclide: str,
                     shields=()) -> np.ndarray:
    """Return the Cramer-Rao bound (4x4 covariance over x, y, z, A) at the true source.

    Uses the measurements' geometry, live times and background rates (not their counts).
    """
    model = _Model(measurements, nuclide, shields)
    return _inverse(fisher_information(model, position, float(activity)))


def localize(measurements, nuclide: str, low, high, shields=(), grid: int = 7) -> Localization:
    """Return the maximum-likelihood source in the box [low, high] (m, the measurements' frame).

    nuclide: what identification found (its lines set g); shields: if known. grid: points per
    axis of the starting grid. Raises ValueError on bad input.
    """
    model = _Model(measurements, nuclide, shields)
    low, high = np.asarray(low, dtype=float), np.asarray(high, dtype=float)
    if low.shape != (3,) or high.shape != (3,) or not np.all(high > low):
        raise ValueError('the search box needs low < high in x, y and z')
    if not (isinstance(grid, int) and grid >= 2):
        raise ValueError(f'grid must be an int >= 2, got {grid!r}')
    null = model.log_likelihood(model.b)

    def negative(position):
        if np.any(position < low) or np.any(position > high):
            return math.inf
        g = model.unit(position)
        return -model.log_likelihood(model.b + model.profile(g) * g)

    axes = [np.linspace(low[k], high[k], grid) for k in range(3)]
    candidates = np.array(np.meshgrid(*axes, indexing='ij')).reshape(3, -1).T
    values = np.array([negative(c) for c in candidates])
    spacing = (high - low) / (grid - 1)
    best_value, position = math.inf, candidates[int(np.argmin(values))]
    for index in np.argsort(values)[:3]:  # the likelihood can have several local maxima
        start = candidates[index]
        simplex = np.vstack([start] + [start + np.sign(0.5 * (low + high) - start)[k]
                                       * np.eye(3)[k] * spacing[k] * 0.5 for k in range(3)])
        found = minimize(negative, start, method='Nelder-Mead',
                         options={'initial_simplex': np.clip(simplex, low, high),
                                  'xatol': 1e-3, 'fatol': 1e-6, 'maxiter': 600})
        if found.fun < best_value:
            best_value, position = found.fun, found.x
    polished = minimize(negative, position, method='L-BFGS-B',  # on the box's faces too
                        bounds=list(zip(low, high, strict=True)),
                        options={'eps': STEP_M, 'maxiter': 200})
    if polished.fun < best_value:
        position = polished.x
    g = model.unit(position)
    activity = model.profile(g)
    deviance = 2.0 * (model.log_likelihood(model.b + activity * g) - null)
    covariance = _inverse(fisher_information(model, position, max(activity, 1e-9)))
    return Localization(np.asarray(position, dtype=float), float(activity), covariance,
                        float(deviance), nuclide)
