"""Isotope identification of portal passages from spectrometer spectra, with gain stabilisation.

Core module (numpy, no ROS). Fed each spectrum of a device's spectrometers (counts per channel
over a live time, the lane's occupancy during it, the subject id the lane read):

- While the lane is empty a spectrum teaches its detector's background: counts and live time
  summed with exponential forgetting (`time_constant` s of live time). A spectrum whose total
  is `gate_sigma` standard deviations above the background learned so far is not learned (a
  source parked near the portal), nor are those within `holdoff` s after a passage.
- Gain stabilisation: every `gain_every` learned spectra the detector's gain is re-estimated
  from its accumulated background (identification.estimate_gain: the K-40 and Tl-208 peaks
  against the detector model's natural background), so that a crystal warming by 5 degrees
  (-1.5 % gain) does not move Cs-137's peak out of its template.
- The spectra of one passage (occupied spectra, until the first empty one) are put back on the
  calibrated energy axis, each with its detector's gain, and summed over the device's
  detectors, as are their backgrounds; `identification.identify` names the nuclides and
  `identification.threat_log_bayes_factor` weighs them as evidence.

Every detector of a device must share one model (`Spectrometer`), as the templates do.
"""

from dataclasses import dataclass, field
import math

import numpy as np

from customs_lab.radiation.identification import (
    Identification,
    estimate_gain,
    identify,
    rebin_for_gain,
    threat_log_bayes_factor,
)
from customs_lab.radiation.spectrometer import Spectrometer


@dataclass(frozen=True)
class SpectralParameters:
    """Parameters of the background learning and of the identification."""

    time_constant: float = 600.0  # s of live time, memory of the background
    min_live_time: float = 30.0  # s of empty-lane live time before a detector is ready
    holdoff: float = 5.0  # s after a passage before the empty lane teaches again
    gate_sigma: float = 5.0
    gain_every: int = 30  # learned spectra between two gain estimates
    min_deviance: float = 25.0  # identification's reporting threshold
    threat_rate_min: float = 1.0  # cps, the weakest threat H1 considers
    threat_rate_max: float = 1e5  # cps, the strongest
    prior_time: float = 20.0  # s: weight of the detector model's background shape (see rate)

    def __post_init__(self):
        for name in ('time_constant', 'gate_sigma', 'min_deviance', 'threat_rate_min'):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f'{name} must be finite and > 0, got {value!r}')
        for name in ('min_live_time', 'holdoff', 'prior_time'):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f'{name} must be finite and >= 0, got {value!r}')
        if not self.threat_rate_min < self.threat_rate_max:
            raise ValueError('threat_rate_min must be below threat_rate_max')
        if int(self.gain_every) != self.gain_every or self.gain_every < 1:
            raise ValueError(f'gain_every must be a positive integer, got {self.gain_every!r}')


class DetectorBackground:
    """One detector's empty-lane spectrum and gain."""

    def __init__(self, spectrometer: Spectrometer, parameters: SpectralParameters):
        self.spectrometer, self.parameters = spectrometer, parameters
        self.counts = np.zeros(spectrometer.channels)
        self.live_time = 0.0
        self.learned_live_time = 0.0  # in all, without forgetting
        self.gain = 1.0
        self.learned = self.gated = 0
        self._reference = spectrometer.natural_background()

    @property
    def ready(self) -> bool:
        """Return True once enough empty-lane live time is learned."""
        return self.learned_live_time >= self.parameters.min_live_time and self.live_time > 0

    def rate(self) -> np.ndarray:
        """Return the background on the calibrated axis, cps per channel.

        Each channel's rate is the posterior mean under a prior from the detector model's
        natural background (its shape, scaled to the total rate learned) worth `prior_time` s:
        (counts + prior rate x prior_time) / (live time + prior_time). Without it a young
        background has empty channels (200 of 1,024 after 30 s of a NaI log), where any count
        of a passage looks like a line no background explains: a clean passage read e^60 of
        threat evidence. After the 600 s of the background's memory the prior weighs ~3 %.
        """
        calibrated = rebin_for_gain(self.counts, self.spectrometer, self.gain)
        live, prior_time = max(self.live_time, 1e-12), self.parameters.prior_time
        prior = self._reference * (calibrated.sum() / live / max(self._reference.sum(), 1e-300))
        return (calibrated + prior * prior_time) / (live + prior_time)

    def learn(self, counts: np.ndarray, live_time: float) -> bool:
        """Learn an empty-lane spectrum unless it stands out; return True if learned."""
        if self.live_time > 0:
            expected = self.counts.sum() / self.live_time * live_time
            if counts.sum() - expected > self.parameters.gate_sigma * math.sqrt(expected + 1.0):
                self.gated += 1
                return False
        keep = math.exp(-live_time / self.parameters.time_constant)
        self.counts = self.counts * keep + counts
        self.live_time = self.live_time * keep + live_time
        self.learned_live_time += live_time
        self.learned += 1
        if self.learned % self.parameters.gain_every == 0 and self.counts.sum() > 1e4:
            self.gain = estimate_gain(self.counts, self._reference,
                                                     self.spectrometer)
        return True


@dataclass
class SpectralVerdict:
    """The identification of one passage."""

    subject_id: str
    stamp: float  # s, end of the passage's last spectrum
    first_seq: int
    last_seq: int
    live_time: float  # s, summed over the detectors
    ready: bool  # False: a detector's background was not learned; no evidence
    identification: Identification | None = None
    log_likelihood_ratio: float = 0.0
    # 0: the background's level is fitted with each passage, so its uncertainty does not move
    # the Bayes factor; that of its shape (the counts per channel learned) is not propagated
    log_likelihood_ratio_std: float = 0.0
    gains: dict = field(default_factory=dict)

    @property
    def explanation(self) -> str:
        """Return the officer's summary."""
        if not self.ready:
            return 'spectrometer background not yet learned: no isotope evidence'
        gains = ', '.join(f'{k} gain {v:.3f}' for k, v in sorted(self.gains.items()))
        return (f'{self.identification.explanation()}; threat Bayes factor '
                f'e^{self.log_likelihood_ratio:.1f} over {self.live_time:.1f} s of spectra '
                f'({gains})')


class SpectralPortal:
    """Track one device's spectra: backgrounds, gains, passages; identify each passage."""

    def __init__(self, spectrometer: Spectrometer, parameters: SpectralParameters | None = None):
        self.spectrometer = spectrometer
        self.parameters = parameters or SpectralParameters()
        self.backgrounds = {}
        self._passage = {}  # detector -> [summed calibrated counts, live time]
        self._subject, self._first_seq, self._last_seq, self._ended_at = '', None, None, -math.inf
        self.stats = {'spectra': 0, 'passages': 0, 'rejected': 0, 'not_ready': 0}
        self.last_rejection = ''

    def background(self, detector: str) -> DetectorBackground:
        """Return (creating it) a detector's background."""
        if detector not in self.backgrounds:
            self.backgrounds[detector] = DetectorBackground(self.spectrometer, self.parameters)
        return self.backgrounds[detector]

    def feed(self, stamp: float, seq: int, detector: str, counts, live_time: float,
             occupied: bool, subject_id: str = '') -> SpectralVerdict | None:
        """Feed one spectrum; return the verdict of a passage this spectrum ended, if any.

        Raises ValueError on a spectrum that does not fit the detector model (it is counted
        and not used).
        """
        counts = np.asarray(counts, dtype=float)
        if counts.shape != (self.spectrometer.channels,) or not np.all(np.isfinite(counts)) \
                or np.any(counts < 0) or not (math.isfinite(live_time) and live_time > 0):
            self.stats['rejected'] += 1
            self.last_rejection = (f'{detector} spectrum {seq}: {counts.shape} channels, live '
                                   f'time {live_time!r}')
            raise ValueError(self.last_rejection + f' (need {self.spectrometer.channels} '
                                                   'finite counts >= 0 and live time > 0)')
        self.stats['spectra'] += 1
        background = self.background(detector)
        if occupied:
            if self._first_seq is None:
                self._first_seq = seq
            self._last_seq, self._subject = seq, subject_id or self._subject
            calibrated = rebin_for_gain(counts, self.spectrometer,
                                                       background.gain)
            held = self._passage.setdefault(detector, [np.zeros_like(calibrated), 0.0])
            held[0] += calibrated
            held[1] += live_time
            return None
        verdict = self._finish(stamp) if self._passage else None
        if stamp - self._ended_at >= self.parameters.holdoff:
            background.learn(counts, live_time)
        return verdict

    def _finish(self, stamp: float) -> SpectralVerdict:
        passage, self._passage = self._passage, {}
        self._ended_at = stamp
        self.stats['passages'] += 1
        detectors = sorted(passage)
        verdict = SpectralVerdict(
            self._subject, stamp, self._first_seq, self._last_seq,
            sum(passage[d][1] for d in detectors),
            all(self.background(d).ready for d in detectors),
            gains={d: self.background(d).gain for d in detectors})
        self._subject, self._first_seq = '', None
        if not verdict.ready:
            self.stats['not_ready'] += 1
            return verdict
        # the same live time for the whole passage: identify works on counts over one live time
        live = passage[detectors[0]][1]
        y = sum(passage[d][0] for d in detectors)
        rate = sum(self.background(d).rate() * passage[d][1] / live for d in detectors)
        p = self.parameters
        verdict.identification = identify(
            y, live, rate, self.spectrometer, min_deviance=p.min_deviance)
        verdict.log_likelihood_ratio = threat_log_bayes_factor(
            y, live, rate, self.spectrometer, verdict.identification, p.threat_rate_min,
            p.threat_rate_max)
        return verdict
