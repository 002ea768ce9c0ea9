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

from customs_lab.radiation import alarm
from customs_lab.radiation.passage import Passage, PassageTracker
from customs_lab.radiation.shadow import LaneGeometry


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

    @classmethod
    def from_dict(cls, values: dict) -> 'PortalAlarmParameters':
        """Return parameters from a {name: value} mapping; ValueError on an unknown name."""
        names = {f.name for f in fields(cls)}
        unknown = set(values) - names
        if unknown:
            raise ValueError(f'unknown rpm_alarm parameters {sorted(unknown)}')
        kinds = {f.name: f.type for f in fields(cls)}
        return cls(**{k: (bool(v) if kinds[k] is bool else float(v)) for k, v in values.items()})

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


@dataclass(frozen=True)
class PassageVerdict:
    """A passage and its test, as the evidence reports them."""

    passage: Passage
    result: alarm.AlarmResult
    background_ready: bool

    @property
    def alarm(self) -> bool:
        """Return True if the test alarmed with a learned background."""
        return bool(self.result.alarm and self.background_ready)

    @property
    def log_likelihood_ratio(self) -> float:
        """Return the evidence's LLR, nats (0 while the background is not learned)."""
        return float(self.result.log_likelihood_ratio) if self.background_ready else 0.0

    @property
    def log_likelihood_ratio_std(self) -> float:
        """Return the LLR's standard deviation, nats (0 while the background is not learned)."""
        return float(self.result.log_likelihood_ratio_std) if self.background_ready else 0.0

    @property
    def explanation(self) -> str:
        """Return the officer's one-line explanation."""
        return alarm.explain(self.result, self.background_ready)


class PortalAlarm:
    """Feed one portal's frames in order; get a PassageVerdict when a passage completes."""

    def __init__(self, parameters: PortalAlarmParameters | None = None,
                 geometry: LaneGeometry | None = None):
        """Build the alarm; with the lane's geometry the subject's shadow is corrected."""
        self.geometry = geometry
        self.tracker = None
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
             subject_id: str = '', speed: float = math.nan) -> PassageVerdict | None:
        """Take one frame; return the verdict of a passage it completed, else None.

        subject_id: what the lane reader read, on occupied frames; speed: the subject's, as the
        lane measured it, m/s. Raises ValueError if a completed passage cannot be tested (the
        caller reports it; the frames are gone).
        """
        self.ensure_tracker(len(counts))
        if occupied and subject_id:
            self.tracker.set_subject(subject_id)
        passage = self.tracker.feed(stamp, seq, counts, live_time, occupied, speed)
        if passage is None:
            return None
        background = self.tracker.background
        ready = background.ready
        shadow = None
        if self.geometry is not None and self.parameters.shadow_correction and ready:
            shadow = self.geometry.background_factors(
                passage.counts, passage.live_times, passage.stamps, stamp, passage.speed,
                background.rate())
        result = alarm.evaluate_passage(passage.counts, passage.live_times, background.rate(),
                                        background.rate_std(), self.config,
                                        None if shadow is None else shadow[0])
        verdict = PassageVerdict(passage, result, ready)
        self.stats['passages'] += 1
        self.stats['alarms'] += int(verdict.alarm)
        self.stats['not_ready'] += int(not ready)
        return verdict
