"""One portal's alarm chain: frames in, a tested passage out.

What the rpm_alarm node does with every counting frame, without ROS, so that the node and the
offline benchmarks (simulation/offline_site.py) run the same code:

- frames of the empty lane teach the background, the frames of each passage are collected
  (passage.PassageTracker, built on the first frame, when the channel count is known, and
  rebuilt when it changes or the background parameters change);
- a completed passage goes through the gross-count test and its Bayes factor
  (alarm.evaluate_passage); while the background is not learned the verdict carries no evidence
  (log-likelihood ratio 0);
- given the lane's geometry (shadow.LaneGeometry) and the speed the lane measured, the
  background expected during the passage is corrected for the subject's shadow.

Core module: no ROS.
"""

from dataclasses import asdict, dataclass, fields
import math
import uuid

import numpy as np

from customs_lab.radiation import alarm
from customs_lab.radiation.energy_windows import Discrimination, discriminate
from customs_lab.radiation.passage import Passage, PassageTracker
from customs_lab.radiation.shadow import LaneGeometry
from customs_lab.radiation.spectrometer import Spectrometer

# evidence ids: uuid5 of the sensor id and the passage's frame numbers, so a re-sent item keeps
# its id (rpm_alarm, and simulation/offline_site.py for the benchmarks)
EVIDENCE_NAMESPACE = uuid.UUID('0c7d5e3a-4b1f-4e8a-9d26-7f3b2a1c5e90')
PANEL_MODEL = Spectrometer.pvt_panel()  # the energy windows' templates: a portal's PVT panel


@dataclass(frozen=True)
class PortalAlarmParameters:
    """The rpm_alarm node's parameters (names, units and defaults are the node's)."""

    window: float = 1.0  # s, sliding window summed by the gross-count test
    false_alarm_probability: float = 1e-3  # per passage
    excess_prior_min: float = 50.0  # cps, weakest source excess H1 considers
    excess_prior_max: float = 2e5  # cps, strongest
    background_time_constant: float = 60.0  # s, memory of the background estimator
    background_min_live_time: float = 10.0  # s of empty lane before alarms are trusted
    background_holdoff: float = 5.0  # s after a passage before the empty lane teaches again
    background_gate_sigma: float = 5.0  # empty-lane frames this far above are not learned
    shadow_correction: bool = True  # correct the subject's shadow (needs the lane's geometry)
    norm_prior: float = 0.1  # share of subjects with NORM cargo, for the energy-window evidence

    @classmethod
    def from_dict(cls, values: dict) -> 'PortalAlarmParameters':
        """Return parameters from a {name: value} mapping; ValueError on an unknown name."""
        names = {f.name for f in fields(cls)}
        unknown = set(values) - names
        if unknown:
            raise ValueError(f'unknown rpm_alarm parameters {sorted(unknown)}')
        kinds = {f.name: f.type for f in fields(cls)}
        return cls(**{k: (bool(v) if kinds[k] is bool else float(v)) for k, v in values.items()})

    def __post_init__(self):
        if not 0.0 < self.norm_prior < 1.0:
            raise ValueError(f'norm_prior must be in (0, 1), got {self.norm_prior!r}')

    def as_dict(self) -> dict:
        """Return {name: value}."""
        return asdict(self)

    def alarm_config(self) -> alarm.AlarmConfig:
        """Return the gross-count test's configuration (ValueError on bad values)."""
        return alarm.AlarmConfig(
            window=self.window,
            false_alarm_probability=self.false_alarm_probability,
            excess_prior_min=self.excess_prior_min,
            excess_prior_max=self.excess_prior_max,
        )


def combined_log_likelihood_ratio(gross: float, windows: float, norm_prior: float) -> float:
    """Return ln P(data | threat) / P(data | background or NORM cargo).

    gross: ln P(data | threat) / P(data | background) (the gross-count Bayes factor); windows:
    ln P(data | threat) / P(data | NORM) (the energy windows' ratio of the best threat template
    to the best NORM template; about 0 without an excess); norm_prior: the share of subjects
    carrying NORM, the prior of NORM under "no threat". A threat hidden in NORM cargo fits
    neither template and reads NORM-like here: the spectrometers' identification (mixtures)
    is what sees it.
    """
    return -float(np.logaddexp(math.log1p(-norm_prior) - gross, math.log(norm_prior) - windows))


@dataclass(frozen=True)
class PassageVerdict:
    """A passage and its test, as the evidence reports them."""

    passage: Passage
    result: alarm.AlarmResult
    background_ready: bool
    discrimination: Discrimination | None = None  # the energy windows' verdict, if reported
    norm_prior: float = 0.1

    @property
    def alarm(self) -> bool:
        """Return True if the test alarmed with a learned background."""
        return bool(self.result.alarm and self.background_ready)

    @property
    def log_likelihood_ratio(self) -> float:
        """Return the evidence's LLR, nats (0 while the background is not learned).

        The gross-count Bayes factor, combined with the energy windows' threat-versus-NORM
        ratio when the device reports windows (`combined_log_likelihood_ratio`).
        """
        if not self.background_ready:
            return 0.0
        gross = float(self.result.log_likelihood_ratio)
        if self.discrimination is None:
            return gross
        return combined_log_likelihood_ratio(gross, self.discrimination.log_likelihood_ratio,
                                             self.norm_prior)

    @property
    def log_likelihood_ratio_std(self) -> float:
        """Return the LLR's standard deviation, nats (0 while the background is not learned)."""
        return float(self.result.log_likelihood_ratio_std) if self.background_ready else 0.0

    def evidence_id(self, sensor_id: str) -> uuid.UUID:
        """Return the evidence's id: the same for the same device and frames."""
        passage = self.passage
        return uuid.uuid5(EVIDENCE_NAMESPACE,
                          f'{sensor_id}/{passage.first_seq}-{passage.last_seq}')

    @property
    def explanation(self) -> str:
        """Return the officer's one-line explanation."""
        text = alarm.explain(self.result, self.background_ready)
        if self.discrimination is not None and self.background_ready:
            text += '; ' + self.discrimination.explanation()
        return text


class PortalAlarm:
    """Feed one portal's frames in order; get a PassageVerdict when a passage completes."""

    def __init__(self, parameters: PortalAlarmParameters | None = None,
                 geometry: LaneGeometry | None = None):
        """Build the alarm; with the lane's geometry the subject's shadow is corrected."""
        self.geometry = geometry
        self.tracker = None
        self._window_edges, self._window_background, self._passage_windows = (), None, None
        self.stats = {'passages': 0, 'alarms': 0, 'not_ready': 0}
        self.configure(parameters or PortalAlarmParameters(), rebuild=True)

    def configure(self, parameters: PortalAlarmParameters, rebuild: bool = False):
        """Take new parameters; `rebuild` forgets the background (background_* changed)."""
        self.config = parameters.alarm_config()
        self.parameters = parameters
        if rebuild:
            self.tracker = None  # rebuilt on the next frame

    def ensure_tracker(self, n_channels: int) -> bool:
        """Build the passage tracker for `n_channels` if needed; return True if built."""
        if self.tracker is not None and self.tracker.background.n_channels == n_channels:
            return False
        p = self.parameters
        self.tracker = PassageTracker(
            alarm.BackgroundEstimator(n_channels, time_constant=p.background_time_constant,
                                      min_live_time=p.background_min_live_time),
            holdoff=p.background_holdoff, gate_sigma=p.background_gate_sigma)
        return True

    def feed(self, stamp: float, seq: int, counts, live_time: float, occupied: bool,
             subject_id: str = '', speed: float = math.nan, windows=None,
             edges=()) -> PassageVerdict | None:
        """Take one frame; return the verdict of a passage it completed, else None.

        subject_id: what the lane reader read, on occupied frames; speed: the subject's, as the
        lane measured it, m/s; windows (channels, k) and edges (k + 1, keV): the channels'
        energy-window counts, when the device reports them. Raises ValueError if a completed
        passage cannot be tested (the caller reports it; the frames are gone).
        """
        self.ensure_tracker(len(counts))
        if occupied and subject_id:
            self.tracker.set_subject(subject_id)
        learned = self.tracker.background.total_live_time
        passage = self.tracker.feed(stamp, seq, counts, live_time, occupied, speed)
        self._feed_windows(windows, edges, live_time, occupied,
                           self.tracker.background.total_live_time > learned)
        if passage is None:
            return None
        background = self.tracker.background
        ready = background.ready
        shadow = None
        if self.geometry is not None and self.parameters.shadow_correction and ready:
            shadow = self.geometry.background_factors(passage, background.rate())
        factors = None if shadow is None else shadow[0]
        result = alarm.evaluate_passage(passage.counts, passage.live_times, background.rate(),
                                        background.rate_std(), self.config, factors)
        verdict = PassageVerdict(passage, result, ready, self._discriminate(passage, factors),
                                 self.parameters.norm_prior)
        self.stats['passages'] += 1
        self.stats['alarms'] += int(verdict.alarm)
        self.stats['not_ready'] += int(not ready)
        return verdict

    def _feed_windows(self, windows, edges, live_time: float, occupied: bool, learned: bool):
        """Sum a frame's energy-window counts into the passage or the empty lane's background."""
        if windows is None or len(edges) < 2:
            return
        summed = np.asarray(windows, dtype=float).reshape(-1, len(edges) - 1).sum(axis=0)
        edges = tuple(float(e) for e in edges)
        if edges != self._window_edges:  # a new device configuration: learn again
            self._window_edges = edges
            self._window_background = alarm.BackgroundEstimator(
                len(edges) - 1, self.parameters.background_time_constant,
                self.parameters.background_min_live_time)
            self._passage_windows = None
        if occupied:
            held = self._passage_windows
            self._passage_windows = summed if held is None else held + summed
        elif learned:
            self._window_background.update(summed[None, :], [live_time])

    def _discriminate(self, passage: Passage, factors) -> Discrimination | None:
        """Return the energy windows' verdict on a completed passage, if they were reported."""
        counts, self._passage_windows = self._passage_windows, None
        background = self._window_background
        if counts is None or background is None or not background.ready:
            return None
        shade = 1.0
        if factors is not None:  # the shadow, weighted by where the background counts fall
            rate = self.tracker.background.rate()
            weights = np.outer(passage.live_times, rate)
            shade = float(np.sum(weights * factors) / max(np.sum(weights), 1e-300))
        expected = background.rate() * float(np.sum(passage.live_times)) * shade
        if not np.all(expected > 0):
            return None
        bands = tuple(zip(self._window_edges[:-1], self._window_edges[1:], strict=True))
        return discriminate(counts, expected, PANEL_MODEL, bands)
