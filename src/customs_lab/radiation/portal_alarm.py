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
  background expected during the passage is corrected for the subject's shadow;
- when the device reports neutron modules (He-3), the same empty-lane frames teach their
  background (its own, longer memory: a few cps of cosmic-ray neutrons need minutes) and each
  passage's neutron counts, summed over its frames and the modules, go through
  neutron.evaluate_neutron_passage against that background times `neutron_ship_effect`, the
  rise a heavy load's cosmic-ray spallation brings (the "ship effect"; neutron.py's model with
  steel's enhancement gives 1.10-1.15 over the passage of 20 t in a container): the verdict's
  `neutron` part, its own evidence (kind radiation.neutron).

Core module: no ROS.
"""

from dataclasses import asdict, dataclass, fields
import math
import uuid

import numpy as np

from customs_lab.radiation import alarm, neutron
from customs_lab.radiation.energy_windows import Discrimination, discriminate
from customs_lab.radiation.passage import Passage, PassageTracker
from customs_lab.radiation.shadow import LaneGeometry
from customs_lab.radiation.spectrometer import Spectrometer

# evidence ids: uuid5 of the sensor id and the passage's frame numbers, so a re-sent item keeps
# its id (rpm_alarm, and simulation/offline_site.py for the benchmarks)
EVIDENCE_NAMESPACE = uuid.UUID('0c7d5e3a-4b1f-4e8a-9d26-7f3b2a1c5e90')
PANEL_MODEL = Spectrometer.pvt_panel()  # the energy windows' templates: a portal's PVT panel


def neutron_correlation_group(sensor_id: str) -> str:
    """Return the correlation group of a portal's neutron evidence.

    Not the gamma item's (the sensor id): other detectors, independent counts, so fusion
    counts both.
    """
    return f'{sensor_id}/neutrons'


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
    fission_share: float = 0.1  # share of fission sources (Cf-252, Pu) among radiological threats
    neutron_false_alarm_probability: float = 1e-3  # per passage, of the neutron test
    neutron_excess_prior_min: float = 0.5  # cps (all modules), weakest neutron excess H1 considers
    neutron_excess_prior_max: float = 500.0  # cps, strongest
    neutron_background_time_constant: float = 600.0  # s, memory of the neutron background
    neutron_background_min_live_time: float = 30.0  # s of empty lane before neutron evidence
    neutron_ship_effect: float = 1.15  # background factor allowed while a subject passes

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
        if not 0.0 < self.fission_share < 1.0:
            raise ValueError(f'fission_share must be in (0, 1), got {self.fission_share!r}')
        if not (math.isfinite(self.neutron_ship_effect) and 0.5 <= self.neutron_ship_effect
                <= 3.0):
            raise ValueError('neutron_ship_effect must be in [0.5, 3] (a factor on the '
                             f'background), got {self.neutron_ship_effect!r}')
        self.neutron_config()  # ValueError on a bad false-alarm probability or prior

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

    def neutron_config(self) -> neutron.NeutronAlarmConfig:
        """Return the neutron test's configuration (ValueError on bad values)."""
        return neutron.NeutronAlarmConfig(
            false_alarm_probability=self.neutron_false_alarm_probability,
            excess_prior_min=self.neutron_excess_prior_min,
            excess_prior_max=self.neutron_excess_prior_max,
        )


@dataclass(frozen=True)
class NeutronVerdict:
    """A passage's neutron test (counts of all modules), as its evidence reports it."""

    first_seq: int  # the passage's frames, as PassageVerdict's
    last_seq: int
    module_ids: tuple[str, ...]
    result: neutron.NeutronAlarmResult | None  # None while the background is not learned
    log_likelihood_ratio_std: float = 0.0  # nats, from the background's uncertainty

    @property
    def background_ready(self) -> bool:
        """Return True if the passage was tested against a learned background."""
        return self.result is not None

    @property
    def alarm(self) -> bool:
        """Return True if the neutron test alarmed."""
        return bool(self.result is not None and self.result.alarm)

    @property
    def log_likelihood_ratio(self) -> float:
        """Return the evidence's LLR, nats: the test's Bayes factor (0 while not learned)."""
        return 0.0 if self.result is None else float(self.result.log_likelihood_ratio)

    def evidence_id(self, sensor_id: str) -> uuid.UUID:
        """Return the neutron evidence's id: the same for the same device and frames."""
        return uuid.uuid5(EVIDENCE_NAMESPACE,
                          f'{sensor_id}/neutrons/{self.first_seq}-{self.last_seq}')

    @property
    def explanation(self) -> str:
        """Return the officer's one-line explanation."""
        if self.result is None:
            return 'neutron background not yet learned: no neutron evidence for this passage'
        return neutron.explain_neutron(self.result)


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


def neutron_aware_log_likelihood_ratio(gross: float, windows: float, norm_prior: float,
                                       neutron_llr: float, fission_share: float) -> float:
    """Return the gamma evidence of a passage whose neutron test was run.

    The energy windows' threat templates are gamma sources; a fission source (Cf-252,
    plutonium) has a hard gamma spectrum the windows read as NORM (its fission gamma rays), and
    the neutrons it emits (NORM emits none). The threat is a mixture: a gamma source (1 - f,
    whose neutrons are background: ln P(n | gamma source) / P(n | background) = 0) or a fission
    source (f, neutrons as the neutron test's H1: its LLR L_n, gamma NORM-like), against
    background or NORM (prior pi):

        joint = ln[(1 - f) e^w + f e^L_n] - ln[(1 - pi) e^(w - gross) + pi]

    (both terms over P(g | NORM); w is the windows' threat-versus-NORM ratio). The neutron item
    (L_n) reaches fusion on its own; this returns joint - L_n, so that their sum is the joint.
    The sum rises with L_n whether or not the neutron test alarmed, so the fused evidence has
    no step at the neutron alarm threshold; with no neutrons (L_n well below 0) it is the
    gamma-only `combined_log_likelihood_ratio` plus ln(1 - f): the fission half of the threats
    is excluded by the neutrons' absence. f is the prior share of fission sources among
    radiological threats (parameter fission_share: an assumption a site sets from its threat
    picture; it was 0.5 while this weighed only passages whose neutron test alarmed, where NORM
    cannot be the explanation, and read NORM cargo as +ln(f / pi) = +1.6 nats once it weighed
    every passage).
    """
    numerator = np.logaddexp(math.log1p(-fission_share) + windows,
                             math.log(fission_share) + neutron_llr)
    denominator = np.logaddexp(math.log1p(-norm_prior) + windows - gross, math.log(norm_prior))
    return float(numerator - denominator - neutron_llr)


@dataclass(frozen=True)
class PassageVerdict:
    """A passage and its test, as the evidence reports them."""

    passage: Passage
    result: alarm.AlarmResult
    background_ready: bool
    discrimination: Discrimination | None = None  # the energy windows' verdict, if reported
    norm_prior: float = 0.1
    neutron: NeutronVerdict | None = None  # the neutron test, if the device has neutron modules
    fission_share: float = 0.1  # prior share of fission sources among radiological threats

    @property
    def alarm(self) -> bool:
        """Return True if the test alarmed with a learned background."""
        return bool(self.result.alarm and self.background_ready)

    @property
    def log_likelihood_ratio(self) -> float:
        """Return the evidence's LLR, nats (0 while the background is not learned).

        The gross-count Bayes factor, combined with the energy windows' threat-versus-NORM
        ratio when the device reports windows (`combined_log_likelihood_ratio`), and with the
        neutron test when it was run against a learned background
        (`neutron_aware_log_likelihood_ratio`: NORM emits no neutrons, a fission source's gamma
        rays read NORM-like).
        """
        if not self.background_ready:
            return 0.0
        gross = float(self.result.log_likelihood_ratio)
        if self.discrimination is None:
            return gross
        windows = self.discrimination.log_likelihood_ratio
        if self.neutron is not None and self.neutron.background_ready:
            return neutron_aware_log_likelihood_ratio(gross, windows, self.norm_prior,
                                                      self.neutron.log_likelihood_ratio,
                                                      self.fission_share)
        return combined_log_likelihood_ratio(gross, windows, self.norm_prior)

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
            if self.neutron is not None and self.neutron.alarm:
                text += '; with the neutron alarm NORM cannot explain it (a fission source?)'
        return text


class PortalAlarm:
    """Feed one portal's frames in order; get a PassageVerdict when a passage completes."""

    def __init__(self, parameters: PortalAlarmParameters | None = None,
                 geometry: LaneGeometry | None = None):
        """Build the alarm; with the lane's geometry the subject's shadow is corrected."""
        self.geometry = geometry
        self.tracker = None
        self._window_edges, self._window_background, self._passage_windows = (), None, None
        self.neutron_ids, self.neutron_background = (), None
        self._passage_neutrons, self._passage_neutron_live = None, 0.0
        self.stats = {'passages': 0, 'alarms': 0, 'not_ready': 0}
        self.neutron_stats = {'passages': 0, 'alarms': 0, 'not_ready': 0}
        self.configure(parameters or PortalAlarmParameters(), rebuild=True)

    def configure(self, parameters: PortalAlarmParameters, rebuild: bool = False):
        """Take new parameters; `rebuild` forgets the backgrounds (a *background_* changed)."""
        self.config = parameters.alarm_config()
        self.neutron_config = parameters.neutron_config()
        self.parameters = parameters
        if rebuild:
            self.tracker = None  # rebuilt on the next frame
            self.neutron_ids = ()  # the neutron background too, on the next neutron counts

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
             edges=(), neutrons=None) -> PassageVerdict | None:
        """Take one frame; return the verdict of a passage it completed, else None.

        subject_id: what the lane reader read, on occupied frames; speed: the subject's, as the
        lane measured it, m/s; windows (channels, k) and edges (k + 1, keV): the channels'
        energy-window counts, when the device reports them; neutrons: {module id: counts} of
        the frame's neutron modules, when it has any. Raises ValueError if a completed passage
        cannot be tested (the caller reports it; the frames are gone).
        """
        self.ensure_tracker(len(counts))
        if occupied and subject_id:
            self.tracker.set_subject(subject_id)
        learned = self.tracker.background.total_live_time
        passage = self.tracker.feed(stamp, seq, counts, live_time, occupied, speed)
        learned = self.tracker.background.total_live_time > learned
        self._feed_windows(windows, edges, live_time, occupied, learned)
        self._feed_neutrons(neutrons, live_time, occupied, learned)
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
                                 self.parameters.norm_prior, self._neutron_verdict(passage),
                                 self.parameters.fission_share)
        self.stats['passages'] += 1
        self.stats['alarms'] += int(verdict.alarm)
        self.stats['not_ready'] += int(not ready)
        if verdict.neutron is not None:
            self.neutron_stats['passages'] += 1
            self.neutron_stats['alarms'] += int(verdict.neutron.alarm)
            self.neutron_stats['not_ready'] += int(not verdict.neutron.background_ready)
        return verdict

    def _feed_neutrons(self, neutrons, live_time: float, occupied: bool, learned: bool):
        """Sum a frame's neutron counts into the passage, or teach the empty lane's background.

        The empty-lane frames the gamma tracker learns from (not in a passage's hold-off, not
        above the gamma background) teach it; a new set of modules starts it again. A frame
        without a finite, positive live time is skipped, as the gamma tracker skips it.
        """
        if not neutrons or not (math.isfinite(live_time) and live_time > 0):
            return
        ids = tuple(neutrons)
        counts = np.array([neutrons[i] for i in ids], dtype=float)
        if ids != self.neutron_ids:
            p = self.parameters
            self.neutron_ids = ids
            self.neutron_background = alarm.BackgroundEstimator(
                len(ids), p.neutron_background_time_constant, p.neutron_background_min_live_time)
            self._passage_neutrons, self._passage_neutron_live = None, 0.0
        if occupied:
            held = self._passage_neutrons
            self._passage_neutrons = counts if held is None else held + counts
            self._passage_neutron_live += live_time
        elif learned:
            self.neutron_background.update(counts, live_time)

    def _neutron_verdict(self, passage: Passage) -> NeutronVerdict | None:
        """Return a completed passage's neutron test (None if its frames had no neutron counts)."""
        counts, live = self._passage_neutrons, self._passage_neutron_live
        self._passage_neutrons, self._passage_neutron_live = None, 0.0
        if counts is None or live <= 0:
            return None
        background = self.neutron_background
        if not background.ready:
            return NeutronVerdict(passage.first_seq, passage.last_seq, self.neutron_ids, None)
        ship = self.parameters.neutron_ship_effect
        result = neutron.evaluate_neutron_passage(counts, live, background.rate(),
                                                  self.neutron_config, ship_effect=ship)
        # the LLR's spread from the background's: the Bayes factor at background +- 1 sigma
        sigma = float(np.sqrt(np.sum(background.rate_std() ** 2))) * ship * live
        low, high = (alarm.log_bayes_factors(
            result.counts, max(result.expected + sign * sigma, 1e-9), live,
            self.neutron_config.excess_prior_min, self.neutron_config.excess_prior_max)[0]
            for sign in (-1.0, 1.0))
        return NeutronVerdict(passage.first_seq, passage.last_seq, self.neutron_ids, result,
                              abs(float(high - low)) / 2.0)

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
