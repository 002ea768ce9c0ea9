"""Where in the container (or parcel) is the source? Localization from one portal passage.

Core module (numpy / scipy, no ROS). The panels stand still beside the lane (device frame: x
along travel, detector plane x = 0, y left, z up) while the subject passes at speed v: in the
subject's frame the panels move past it, and every frame is another viewpoint. The subject
frame is the simulator's (simulation/portal_lane.py): origin at the rear, right, bottom corner
of the subject's box (L, W, H), x forward, y left, z up. The occupancy sensor sees a subject
within +-h of x = 0, so the front is at -h when the occupancy turns on (t_on), and

    rear(t) = -h + v (t - t_on) - L;

a device point p is at p - (rear(t), c - W / 2, f) in the subject frame (f: the height of its
bottom, c: the y of its centre line). A frame ending at stamp s with live time T counts at the
position at s - T / 2. Frames are merged into bins of `bin_time` (pose at the live-time-weighted
mid-time; the sweep v * bin_time flattens the peak: 1-5 cm of bias at 0.5 s and 2.2 m/s). Each
(bin, panel) is a `localization.Measurement` with the panel moved into the subject frame, and
`localization.localize` searches the box [0, L] x [0, W] x [0, H].

Cargo (not known here) shields the source differently towards the left and the right panels,
which scales each side's counts without changing their shape along x. So with `sides` each side
is localized alone (its activity absorbs its cargo) and the two positions are combined by their
inverse covariances (scaled up when they disagree); the activity is the larger side's, a lower
bound (an unshielded equivalent). With one activity for both sides (sides=False: more precise
in an empty container) cargo pulls the source to the nearer wall and its height towards the
panels' middle by up to 0.5 m. The model has the container's steel side wall (`wall_steel`, a
scale on the activity) and a point source (NORM cargo spread in bulk gives a meaningless point).

Background: a subject beside a panel shadows the natural background coming through the lane
(5-30 % for loaded trucks). With `shadow`, a (bin, panel)'s background is B (1 - s phi), phi the
solid angle of the box's side face seen from the panel over 2 pi, and s is fitted (Poisson
likelihood, each side's activity free) where the source adds less than the background: first
for sources on the box's axis, then at the located ones (localized again if s moved by more
than SHADOW_TOLERANCE). Its uncertainty is not propagated.

Timing moves the source along x: an error dt in t_on by v dt (an edge known to a frame:
edge_std = T / sqrt(12)), a relative speed error e by e (h + L - x): both are added to the x
variance, and `model_std` to every coordinate's (the bins' bias, the timing jitter of real
frames, the shadow model: a few cm). A lane offset c that is not passed biases y.
"""

from dataclasses import dataclass, replace
import math

import numpy as np
from scipy.optimize import minimize

from customs_lab.radiation.localization import Localization, Measurement, localize
from customs_lab.radiation.physics import (
    PointSource,
    Shield,
    detector_panels,
    expected_count_rates,
)
from customs_lab.radiation.shadow import SubjectBox, face_fractions, rears

STEEL_DENSITY = 7.874  # g/cm^3
# ISO 668 external dimensions (m) by the ISO 6346 size code: length by its first character,
# height by its second; all are 8 ft wide.
ISO_LENGTH = {'2': 6.058, '4': 12.192, 'L': 13.716}
ISO_HEIGHT = {'0': 2.438, '2': 2.591, '5': 2.896}
ISO_WIDTH = 2.438
MIN_DEVIANCE = 25.0  # below it, the explanation says no clear source was seen
MAX_SHADOW = 0.95  # the largest shadowed fraction fitted
SHADOW_TOLERANCE = 0.05  # a refit s this far from the one used: localize again
MAX_ROUNDS = 2  # localizations at most


def container_size(size_type: str) -> tuple[float, float, float]:
    """Return the external (length, width, height), m, of an ISO 6346 size type ('45G1')."""
    code = str(size_type).strip().upper()
    if len(code) < 2 or code[0] not in ISO_LENGTH or code[1] not in ISO_HEIGHT:
        raise ValueError(f'unknown ISO 6346 size type {size_type!r} (e.g. 22G1, 42G1, 45G1)')
    return ISO_LENGTH[code[0]], ISO_WIDTH, ISO_HEIGHT[code[1]]


def _number(name: str, value, minimum: float = -math.inf, strict: bool = False) -> float:
    value = float(value)
    if not math.isfinite(value) or value < minimum or (strict and value == minimum):
        raise ValueError(f'{name} must be finite and {">" if strict else ">="} {minimum}, '
                         f'got {value!r}')
    return value


def estimate_length(speed: float, occupied_on: float, occupied_off: float,
                    half_width: float) -> float:
    """Return the subject's length, m: occupied from front = -h to rear = +h, L = v dt - 2 h."""
    duration = _number('occupied_off - occupied_on', occupied_off - occupied_on, 0.0, True)
    length = _number('speed', speed, 0.0, True) * duration - 2 * _number('h', half_width, 0.0)
    return _number('the estimated length', length, 0.0, True)


def estimate_speed(length: float, occupied_on: float, occupied_off: float,
                   half_width: float) -> float:
    """Return the subject's speed, m/s, from its known length and its occupancy edges."""
    duration = _number('occupied_off - occupied_on', occupied_off - occupied_on, 0.0, True)
    return (_number('length', length, 0.0, True) + 2 * _number('h', half_width, 0.0)) / duration


@dataclass(frozen=True)
class PassageLocalization:
    """A source located from one passage: in the subject frame, and where it is on the lane."""

    localization: Localization  # subject frame; its covariance is the statistical one
    covariance: np.ndarray  # 3x3, m^2: statistical + model_std^2 + the timing errors along x
    shadow: float  # fitted fraction s of the background shadowed where phi = 1
    size: tuple  # (L, W, H) m, the box searched
    measurements: tuple  # the Measurements in the subject frame (for cramer_rao_bound)
    explanation: str  # one line for an officer
    speed: float  # m/s
    occupied_on: float  # s
    half_width: float  # m
    floor_height: float  # m
    lane_offset: float  # m

    @property
    def position(self) -> np.ndarray:
        """Return the source's position in the subject frame, m."""
        return self.localization.position

    @property
    def position_std(self) -> np.ndarray:
        """Return the standard deviation of each coordinate (timing included), m."""
        return np.sqrt(np.clip(np.diag(self.covariance), 0.0, None))

    def device_position(self, t: float) -> np.ndarray:
        """Return the source's position in the device frame at time t (s), m."""
        rear = -self.half_width + self.speed * (t - self.occupied_on) - self.size[0]
        return self.position + [rear, self.lane_offset - self.size[1] / 2.0, self.floor_height]


def explain(found: Localization, size, subject: str = 'container', std=None) -> str:
    """Return one line for an officer: where the source is in the subject, with its error."""
    if not found.deviance >= MIN_DEVIANCE:
        return f'no clear {found.nuclide} source in this passage: position not determined'
    (x, y, z), (sx, sy, sz) = found.position, found.position_std if std is None else std
    width = size[1]
    side = ('side not determined' if not sy < width / 3.0 else 'near the left wall'
            if y > 2.0 * width / 3.0 else 'near the right wall' if y < width / 3.0
            else 'in the middle of its width')
    level = (f'{z:.1f} m above its floor (+-{max(sz, 0.05):.1f} m)' if sz < size[2] / 2.0
             else 'height not determined')
    return (f"{found.nuclide} source about {x:.1f} m from the {subject}'s rear "
            f'(+-{max(sx, 0.05):.1f} m), {side} (as driven), {level}')


def _fit_shadow(y, background, phi, shapes) -> tuple:
    """Return (s, -ln L, a): y ~ Poisson(background (1 - s phi) + sum_k a_k shapes_k), a >= 0."""
    scales = [max(float(y.sum()) / max(float(g.sum()), 1e-300), 1e-300) for g in shapes]
    basis = np.array([g * c for g, c in zip(shapes, scales, strict=True)])

    def negative(p):
        rate = np.maximum(background * (1.0 - p[-1] * phi) + p[:-1] @ basis, 1e-300)
        ratio = 1.0 - y / rate
        return (float(np.sum(rate - y * np.log(rate))),
                np.append(basis @ ratio, -float(np.sum(background * phi * ratio))))

    found = minimize(negative, np.append(np.full(len(shapes), 1e-3), 0.0), jac=True,
                     method='L-BFGS-B', bounds=[(0.0, None)] * len(shapes) + [(0, MAX_SHADOW)])
    return float(found.x[-1]), float(found.fun), found.x[:-1] * scales


def _combine(fits, box) -> Localization:
    """Return the inverse-covariance mean of two sides' fits (scaled up if they disagree)."""
    usable = [f for f in fits if f.deviance >= MIN_DEVIANCE
              and np.all(np.isfinite(f.covariance[:3, :3]))] or fits
    if len(usable) == 1:
        return usable[0]
    (a, b), (ca, cb) = (f.position for f in usable), (f.covariance[:3, :3] for f in usable)
    try:
        covariance = np.linalg.inv(np.linalg.inv(ca) + np.linalg.inv(cb))
        position = covariance @ (np.linalg.solve(ca, a) + np.linalg.solve(cb, b))
        spread = float((a - b) @ np.linalg.solve(ca + cb, a - b)) / 3.0
    except np.linalg.LinAlgError:
        return max(usable, key=lambda f: f.deviance)
    strongest = max(usable, key=lambda f: f.activity)  # the side less shielded by cargo
    full = np.zeros((4, 4))
    full[:3, :3], full[3, 3] = covariance * max(spread, 1.0), strongest.covariance[3, 3]
    return Localization(np.clip(position, *box), strongest.activity, full,
                        sum(f.deviance for f in fits), strongest.nuclide)


def localize_passage(panels, stamps, live_times, counts, background_rates, *, occupied_on: float,
                     speed: float, size, nuclide: str, occupancy_half_width: float,
                     floor_height: float = 0.0, lane_offset: float = 0.0,
                     wall_steel: float = 0.0, sides: bool = True, shadow: bool = True,
                     edge_std: float | None = None, speed_std: float = 0.01,
                     model_std: float = 0.05, bin_time: float = 0.5, max_range: float = 10.0,
                     subject: str = 'container', grid: int = 5) -> PassageLocalization:
    """Return where in the subject the source is, from one passage's frames.

    panels: DetectorPanel or PanelSpec (device frame); stamps (s, each frame's end), live_times
    (s), counts (frames x panels): the passage (frames before and after the occupancy help);
    background_rates: cps per panel of the empty lane; occupied_on: s; speed: m/s; size:
    (L, W, H) m; nuclide: identification's; occupancy_half_width, floor_height, lane_offset: m;
    wall_steel: m (0.002 for a container); sides, shadow: see the module; edge_std (s, default
    a frame / sqrt 12), speed_std (relative): timing errors; model_std: m, a floor on each
    coordinate's error (bins, timing jitter, the shadow model); bin_time: s (0: no merging);
    max_range: m, (bin, panel) pairs farther along x from the box are left out; grid: the
    starting grid of localize. Raises ValueError on bad input.
    """
    panels = detector_panels(panels)
    stamps, live, background = (np.asarray(v, dtype=float).reshape(-1)
                                for v in (stamps, live_times, background_rates))
    counts = np.asarray(counts, dtype=float)
    if not len(stamps):
        raise ValueError('no frames to localize from')
    if counts.shape != (len(stamps), len(panels)) or live.shape != stamps.shape:
        raise ValueError(f'need a stamp and a live time per frame and counts (frames, panels) = '
                         f'({len(stamps)}, {len(panels)}), got {live.shape}, {counts.shape}')
    if background.shape != (len(panels),) or any(abs(p.normal[1]) < 0.5 for p in panels):
        raise ValueError('need one background rate per panel, panels facing the lane sideways')
    for name, values, low in (('stamps', stamps, -math.inf), ('live_times', live, 0.0),
                              ('counts', counts, 0.0), ('background_rates', background, 0.0)):
        if not np.all(np.isfinite(values) & (values >= low)):
            raise ValueError(f'{name} must be finite and >= {low}')
    if np.any(live == 0):
        raise ValueError('live_times must be > 0')
    size = tuple(_number('size', s, 0.0, True) for s in np.asarray(size, dtype=float).ravel())
    if len(size) != 3:
        raise ValueError(f'size must be (length, width, height), got {size!r}')
    speed, occupied_on = _number('speed', speed, 0.0, True), _number('occupied_on', occupied_on)
    half_width = _number('occupancy_half_width', occupancy_half_width, 0.0, True)
    floor_height, lane_offset = _number('floor_height', floor_height), _number('lane_offset',
                                                                               lane_offset)
    edge_std = float(np.median(live)) / math.sqrt(12) if edge_std is None else edge_std
    wall_steel, edge_std, speed_std, model_std, bin_time = (_number(n, v, 0.0) for n, v in (
        ('wall_steel', wall_steel), ('edge_std', edge_std), ('speed_std', speed_std),
        ('model_std', model_std), ('bin_time', bin_time)))
    max_range = _number('max_range', max_range, 0.0, True)

    mid = stamps - live / 2.0  # bins: counts and live times summed, live-time-weighted time
    bins = np.floor((mid - mid.min()) / bin_time + 1e-6) if bin_time > 0 else np.arange(len(mid))
    index = np.unique(bins, return_inverse=True)[1]
    live_sum = np.bincount(index, weights=live)
    when = np.bincount(index, weights=live * mid) / live_sum
    summed = np.stack([np.bincount(index, weights=c) for c in counts.T], axis=1)
    length, width, height = size
    rear_x = rears(when, occupied_on, speed, half_width, length)
    covered = face_fractions([p.center for p in panels], [p.normal[1] for p in panels], rear_x,
                             SubjectBox(length, width, height, floor_height, lane_offset))
    rows = []  # (panel in the subject frame, live time, counts, background, phi, side)
    for i, rear in enumerate(rear_x):
        for k, panel in enumerate(panels):
            centre = panel.center - [rear, lane_offset - width / 2.0, floor_height]
            if max(-centre[0], centre[0] - length, 0.0) > max_range:
                continue
            side = 1 if panel.normal[1] < 0 else -1  # it looks at the left (+y) face, or right
            rows.append((replace(panel, panel_id=f'{panel.panel_id}@{when[i]:.2f}', center=centre),
                         live_sum[i], summed[i, k], background[k], covered[i, k], side))
    if not rows:
        raise ValueError(f'no frame saw the {subject} within {max_range} m of the panels')
    moved = [row[0] for row in rows]
    t, y, b, phi, side = (np.array([row[j] for row in rows], dtype=float) for j in range(1, 6))
    shields = (Shield('Fe', STEEL_DENSITY, wall_steel),) if wall_steel > 0 else ()
    groups = [g for g in ([side > 0, side < 0] if sides else [side != 0]) if np.any(g)]
    box = ([0.0, 0.0, 0.0], [length, width, height])

    members = [[m for m, k in zip(moved, g, strict=True) if k] for g in groups]

    def shapes(positions):  # counts per Bq of each group's source (zero on other groups)
        out = [np.zeros_like(t) for _ in groups]
        for shape, g, panels_g, p in zip(out, groups, members, positions, strict=True):
            shape[g] = t[g] * expected_count_rates(panels_g, [PointSource(nuclide, 1, p, shields)])
        return out

    def refit(positions, activities=None):  # s where the sources add less than the background
        g = shapes(positions)
        if activities is None:
            activities = _fit_shadow(y, b * t, phi, g)[2]
        faint = sum(a * gk for a, gk in zip(activities, g, strict=True)) < b * t
        return (_fit_shadow(y[faint], b[faint] * t[faint], phi[faint], [gk[faint] for gk in g])[0]
                if np.any(faint) else 0.0)

    fraction = 0.0
    if shadow:  # a first s, for sources on the box's axis where they fit best
        axis = [[x, width / 2, height / 2] for x in np.linspace(0, length, 2 * int(length) + 3)]
        best = min(axis, key=lambda p: _fit_shadow(y, b * t, phi, shapes([p] * len(groups)))[1])
        fraction = refit([best] * len(groups))
    for _ in range(MAX_ROUNDS if shadow else 1):
        measurements = tuple(Measurement(p, ti, yi, bi * (1.0 - fraction * fi))
                             for p, ti, yi, bi, fi in zip(moved, t, y, b, phi, strict=True))
        fits = [localize([m for m, k in zip(measurements, g, strict=True) if k], nuclide, *box,
                         shields, grid) for g in groups]
        again = refit([f.position for f in fits], [f.activity for f in fits]) if shadow else 0
        if abs(again - fraction) < SHADOW_TOLERANCE:
            break
        fraction = again
    found = _combine(fits, box) if len(fits) > 1 else fits[0]
    covariance = np.array(found.covariance[:3, :3]) + model_std ** 2 * np.eye(3)
    covariance[0, 0] += (speed * edge_std) ** 2 + (
        speed_std * (half_width + length - found.position[0])) ** 2
    std = np.sqrt(np.clip(np.diag(covariance), 0.0, None))
    return PassageLocalization(found, covariance, fraction, size, measurements,
                               explain(found, size, subject, std), speed, occupied_on,
                               half_width, floor_height, lane_offset)
