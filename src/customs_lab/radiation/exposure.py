"""Officers' exposure to the sources the portals locate, as those sources drive through the lane.

Core module (numpy, no ROS). The dose monitor knows where officers work (the site file's
`officer_posts`) and each source a portal located (LocatedSource: nuclide, activity as an
unshielded equivalent, where it was in the map when its passage ended, the subject's velocity
as the lane measured it). A located source keeps moving with its subject, so its track is:

- the lane's straight line at the measured velocity, from where the subject's source entered
  the lane (the device's `approach` before the detector plane) to where it leaves it (`exit`
  after it): `lane_track`. Before the passage ended the source was where the portal saw it;
  after, the subject is assumed to keep its speed to the lane's end (trucks are waved through
  at a steady pace). Beyond the lane's ends the site measures nothing of where the subject
  goes, so the track ends there and the ledger says so: a source parked next to an officer
  after the lane is not counted (what a site with yard tracking would add).

Each post's air-kerma rate along the track is dose.kerma_rate of the source at each sampled
position (every `step` s), its dose the trapezoidal integral; `ExposureLedger` sums the tracks
of a shift per post and tells, at any time, the rate now, the peak rate so far, the dose so far
(the part of a track already driven: a track learned late counts its past at once), and the
alert level against two limits. The activity is what the portal saw from outside: the source's
own shielding and the cargo between it and the panels are already in it, so the dose is that
of what reaches the outside on the panels' side (an estimate, not a bound; the evaluation
compares it with the truth).
"""

from dataclasses import dataclass, field
import math

import numpy as np

from customs_lab.radiation import dose

LEVEL_OK, LEVEL_RATE, LEVEL_DOSE = 0, 1, 2
LEVEL_NAMES = ('ok', 'dose rate above its limit', 'dose above its limit')


@dataclass(frozen=True)
class SourceTrack:
    """A source moving in a straight line over [start, end] (s), map frame (m, m/s)."""

    label: str  # what the officer reads: the subject and the nuclide
    nuclide: str
    activity: float  # Bq
    reference_time: float  # s, when the source was at `reference_position`
    reference_position: tuple
    velocity: tuple
    start: float
    end: float

    def __post_init__(self):
        if not (math.isfinite(self.activity) and self.activity >= 0):
            raise ValueError(f'activity must be finite and >= 0 Bq, got {self.activity!r}')
        values = (self.reference_time, self.start, self.end, *self.reference_position,
                  *self.velocity)
        if not all(math.isfinite(v) for v in values) or not self.start <= self.end:
            raise ValueError(f'{self.label}: a track needs finite values and start <= end')

    def positions(self, times) -> np.ndarray:
        """Return the source's positions (n x 3, m) at times (s)."""
        offset = np.asarray(times, dtype=float)[:, None] - self.reference_time
        return np.asarray(self.reference_position) + offset * np.asarray(self.velocity)


MIN_LANE_SPEED = 0.05  # m/s: slower subjects' tracks are refused (see lane_track)


def lane_track(label: str, nuclide: str, activity: float, position, velocity, time: float,
               lane_start, lane_end) -> SourceTrack:
    """Return the track of a source through a lane (its ends lane_start -> lane_end, map, m).

    position: where the source was at `time`; velocity: the subject's (m/s), along the lane.
    The track spans the times its projection on the lane's axis is between the two ends. A
    subject slower than MIN_LANE_SPEED (a stop in the lane, or a speed misread) is refused:
    its track would be hours long and wrong, and its samples unbounded.
    """
    start, end = np.asarray(lane_start, dtype=float), np.asarray(lane_end, dtype=float)
    axis = end - start
    length = float(np.linalg.norm(axis[:2]))
    if length <= 0:
        raise ValueError('a lane needs two distinct ends')
    axis = axis / length
    speed = float(np.dot(np.asarray(velocity, dtype=float), axis))
    if not (math.isfinite(speed) and speed >= MIN_LANE_SPEED):
        raise ValueError(f'{label}: the subject does not move along the lane at '
                         f'{MIN_LANE_SPEED} m/s or more (speed {speed!r} m/s along it); its '
                         f'track is unknown')
    along = float(np.dot(np.asarray(position, dtype=float) - start, axis))
    return SourceTrack(label, nuclide, float(activity), float(time),
                       tuple(float(v) for v in position),
                       tuple(float(v) for v in velocity),
                       float(time) - along / speed, float(time) + (length - along) / speed)


@dataclass
class _PostTrack:
    """One track's rate (uGy/h) and cumulative dose (uGy) at one post, sampled in time."""

    label: str
    times: np.ndarray
    rates: np.ndarray
    doses: np.ndarray


@dataclass
class PostExposure:
    """What a post has received by some time."""

    post: str
    position: tuple
    rate: float  # uGy/h now
    peak_rate: float  # uGy/h, highest so far
    dose: float  # uGy so far
    level: int  # LEVEL_OK / LEVEL_RATE / LEVEL_DOSE
    main_source: str  # label of the track that gave most of the dose ('' if none)
    main_dose: float  # uGy from it

    def message(self, rate_limit: float, dose_limit: float) -> str:
        """Return one line for the officer."""
        text = (f'{self.post}: {self.dose:.3g} uGy this shift (limit {dose_limit:g}), '
                f'{self.rate:.3g} uGy/h now, peak {self.peak_rate:.3g} uGy/h '
                f'(limit {rate_limit:g})')
        if self.main_source:
            text += f'; most from {self.main_source} ({self.main_dose:.3g} uGy)'
        return text


@dataclass
class ExposureLedger:
    """The posts' doses over a shift from the tracks added, with alerts at two limits."""

    posts: dict  # post id -> (x, y, z) in the map, m
    rate_limit: float = 6.0  # uGy/h
    dose_limit: float = 3.3  # uGy per shift
    step: float = 0.1  # s between the samples of a track
    _tracks: dict = field(default_factory=dict)  # post -> [_PostTrack]
    _levels: dict = field(default_factory=dict)  # post -> level last reported by `alerts`

    def __post_init__(self):
        for name in ('rate_limit', 'dose_limit', 'step'):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f'{name} must be finite and > 0, got {value!r}')
        self.posts = {str(k): tuple(float(v) for v in p) for k, p in self.posts.items()}
        for post, position in self.posts.items():
            if len(position) != 3 or not all(math.isfinite(v) for v in position):
                raise ValueError(f'post {post}: position must be three finite coordinates')
            self._tracks.setdefault(post, [])
            self._levels.setdefault(post, LEVEL_OK)

    @property
    def track_count(self) -> int:
        """Return how many tracks the ledger holds."""
        return max((len(tracks) for tracks in self._tracks.values()), default=0)

    def add(self, track: SourceTrack) -> dict:
        """Add a track; return each post's whole dose from it (uGy), driven or still to drive."""
        n = max(2, int(math.ceil((track.end - track.start) / self.step)) + 1)
        times = np.linspace(track.start, track.end, n)
        at = track.positions(times)
        source = [dose.DoseSource(track.nuclide, track.activity, (0.0, 0.0, 0.0))]
        totals = {}
        for post, position in self.posts.items():
            # the rate depends on the distance only: put the source at the origin
            rates = dose.kerma_rate(source, np.asarray(position) - at)
            doses = np.concatenate(([0.0], np.cumsum(
                0.5 * (rates[1:] + rates[:-1]) * np.diff(times)))) / dose.SECONDS_PER_HOUR
            self._tracks[post].append(_PostTrack(track.label, times, rates, doses))
            totals[post] = float(doses[-1])
        return totals

    def exposure(self, post: str, time: float) -> PostExposure:
        """Return a post's exposure at `time` (s)."""
        rate = peak = total = 0.0
        by_source = {}
        for track in self._tracks[post]:
            if time < track.times[0]:
                continue
            rate += float(np.interp(time, track.times, track.rates, left=0.0, right=0.0))
            past = track.times <= time
            peak = max(peak, float(track.rates[past].max()),
                       float(np.interp(time, track.times, track.rates)))
            received = float(np.interp(time, track.times, track.doses))
            total += received
            by_source[track.label] = by_source.get(track.label, 0.0) + received
        level = (LEVEL_DOSE if total >= self.dose_limit
                 else LEVEL_RATE if peak >= self.rate_limit else LEVEL_OK)
        main = max(by_source, key=by_source.get) if by_source else ''
        return PostExposure(post, self.posts[post], rate, peak, total, level, main,
                            by_source.get(main, 0.0))

    def alerts(self, time: float) -> list[PostExposure]:
        """Return the posts whose level rose since the last call (each rise once)."""
        raised = []
        for post in self.posts:
            exposure = self.exposure(post, time)
            if exposure.level > self._levels[post]:
                raised.append(exposure)
            self._levels[post] = max(self._levels[post], exposure.level)
        return raised
