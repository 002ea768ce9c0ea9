"""Isotope identification from a gamma spectrum: a Poisson fit of the nuclide library.

Core module (numpy / scipy, no ROS). A measured spectrum y (counts per channel over a live
time) is explained as

    lambda = b * B + sum over nuclides k and shieldings s of a_ks * T_ks

with B the background spectrum measured while the lane was empty (counts/s per channel, scaled
by the live time; b free, near 1: cargo shadows the background), T_ks the detector's response
(radiation/spectrometer.py) to nuclide k's photon lines (ICRP-107, progeny in equilibrium,
radiation/physics.py) behind shielding s, normalised to one count, and a_ks >= 0 the counts
each explains. The shieldings span bare, steel and lead of several thicknesses, so that a
shielded source keeps its identity (its low-energy lines go, its high-energy ones stay) and a
mixture is a sum of nuclides. The fit maximises the Poisson likelihood by the EM
(Richardson-Lucy) iteration, which keeps every amplitude non-negative. A scintillator's gain
drifts with temperature and age, and a 2 % drift moves a peak by a third of its width:
`estimate_gain` finds it from the empty lane's accumulated background (its K-40 and Tl-208
peaks, a likelihood scan over +-7 %), and `identify` puts each spectrum back on the calibrated
axis with it.

Nuclides are chosen by forward selection: the one whose templates raise the likelihood most is
added while it is worth `min_deviance` (twice the log-likelihood ratio; 25, about 5 sigma, by
default: the library has a dozen nuclides to choose from), so that nuclides whose lines
overlap (U-238 and its Ra-226 progeny, I-131 and Ba-133 at 364 / 356 keV) compete for the
counts rather than hide each other. A chosen nuclide is reported if removing it from the final
set still costs `min_deviance`; its confidence is 1 - p with p the chi-square (one degree of
freedom, halved for the boundary a >= 0) tail of that deviance, and its category
is NORM (naturally occurring: K-40, the U-238 and Th-232 series, Ra-226), medical (Tc-99m,
I-131, F-18), industrial (Cs-137, Co-60, Ir-192, Am-241, Ba-133) or SNM (special nuclear
material: U-235, Pu-239). The best-fitting shielding of each reported nuclide is reported too.
"""

from dataclasses import dataclass
from functools import lru_cache
import math

import numpy as np
from scipy.stats import chi2

from customs_lab.radiation.physics import Shield, gamma_lines
from customs_lab.radiation.spectrometer import Spectrometer

CATEGORIES = {
    'K-40': 'NORM', 'Ra-226': 'NORM', 'Th-232': 'NORM', 'U-238': 'NORM',
    'Tc-99m': 'medical', 'I-131': 'medical', 'F-18': 'medical',
    'Cs-137': 'industrial', 'Co-60': 'industrial', 'Ir-192': 'industrial',
    'Am-241': 'industrial', 'Ba-133': 'industrial',
    'U-235': 'SNM', 'Pu-239': 'SNM',
}
LIBRARY = tuple(CATEGORIES)
# (name, material, density g/cm^3, thickness m): what a smuggler or a shipper puts around a source
SHIELDINGS = (
    ('bare', '', 0.0, 0.0),
    ('2 cm steel', 'Fe', 7.874, 0.02),
    ('6 cm steel', 'Fe', 7.874, 0.06),
    ('1 cm lead', 'Pb', 11.35, 0.01),
    ('3 cm lead', 'Pb', 11.35, 0.03),
)


@dataclass(frozen=True)
class Identified:
    """One nuclide the spectrum needs."""

    nuclide: str
    category: str
    counts: float  # counts it explains
    deviance: float  # 2 ln L(with) / L(without)
    confidence: float  # 1 - p
    shielding: str  # the template that explains most of its counts


@dataclass(frozen=True)
class Identification:
    """The fit of one spectrum."""

    identified: tuple[Identified, ...]
    background_scale: float  # b: the background's level relative to the empty lane
    source_counts: float  # counts explained by nuclides (all, reported or not)
    deviance_per_channel: float  # goodness of fit (about 1 when the model fits)
    gain: float = 1.0  # the gain the spectrum was corrected for (energy scale / calibration)

    def explanation(self) -> str:
        """Return a one-line summary for an officer."""
        if not self.identified:
            return (f'no nuclide identified ({self.source_counts:.0f} counts above background '
                    f'unexplained by the library at the reporting threshold)')
        return '; '.join(f'{i.nuclide} ({i.category}, {i.confidence:.3g} confidence, '
                         f'{i.counts:.0f} counts, {i.shielding})' for i in self.identified)


@lru_cache(maxsize=8)
def templates(spectrometer: Spectrometer, library: tuple = LIBRARY,
              shieldings: tuple = SHIELDINGS) -> tuple[np.ndarray, tuple]:
    """Return (T, labels): each row the response to a nuclide behind a shielding, summing to 1.

    labels[i] = (nuclide, shielding name). A combination that puts (nearly) nothing in the
    detector's range is left out.
    """
    rows, labels = [], []
    for nuclide in library:
        emitted = sum(line.yield_per_decay
                      for line in gamma_lines(nuclide, min_energy_kev=20.0, min_yield=1e-6))
        for name, material, density, thickness in shieldings:
            shields = (Shield(material, density, thickness),) if thickness else ()
            row = spectrometer.nuclide_response(nuclide, shields)
            if row.sum() > 1e-6 * emitted:
                rows.append(row / row.sum())
                labels.append((nuclide, name))
    matrix = np.array(rows)
    matrix.setflags(write=False)
    return matrix, tuple(labels)


def _fit(y, components, start, iterations):
    """Return Poisson-ML amplitudes of `components` (rows) for counts y, by EM."""
    amplitudes = start.copy()
    norms = components.sum(axis=1)
    for _ in range(iterations):
        expected = amplitudes @ components
        ratio = np.divide(y, expected, out=np.zeros_like(y), where=expected > 0)
        amplitudes *= (components @ ratio) / norms
    return amplitudes


def _log_likelihood(y, expected) -> float:
    mask = expected > 0
    return float(np.sum(y[mask] * np.log(expected[mask]) - expected[mask]))


def rebin_for_gain(counts, spectrometer: Spectrometer, gain: float) -> np.ndarray:
    """Return the spectrum on the calibrated energy axis of a detector whose gain is `gain`.

    A photon of energy E was recorded at gain * E: the counts of calibrated channel [a, b) are
    those recorded in [gain a, gain b) (cumulative counts, linear within a channel).
    """
    edges = spectrometer.edges_kev
    cumulative = np.concatenate([[0.0], np.cumsum(np.asarray(counts, dtype=float))])
    return np.diff(np.interp(edges * gain, edges, cumulative))


GAINS = tuple(np.round(np.arange(0.93, 1.0701, 0.005), 4))


def apply_gain(expected, spectrometer: Spectrometer, gain: float) -> np.ndarray:
    """Return a calibrated-axis spectrum as a detector of gain `gain` records it (E -> gain E)."""
    edges = spectrometer.edges_kev
    cumulative = np.concatenate([[0.0], np.cumsum(np.asarray(expected, dtype=float))])
    return np.diff(np.interp(edges / gain, edges, cumulative))


def estimate_gain(counts, reference_rate, spectrometer: Spectrometer,
                  gains: tuple = GAINS, min_kev: float = 200.0) -> float:
    """Return the gain under which background counts best match the reference background shape.

    Gain stabilisation, as spectroscopic portals do it: `counts` is the empty lane's spectrum
    accumulated over minutes (its K-40 and Tl-208 peaks carry the energy scale), `reference_rate`
    the natural background on the calibrated axis (Spectrometer.natural_background, or one
    recorded at calibration). A likelihood scan over `gains`, refined by a parabola, on the
    channels from `min_kev` to 95 % of the range: the peaks, not the steep low-energy scatter
    continuum or the discriminator's edge.
    """
    centres = spectrometer.centres_kev
    use = (centres >= min_kev) & (centres <= 0.95 * spectrometer.max_kev)
    y = np.asarray(counts, dtype=float)[use]
    values = []
    for gain in gains:  # the data stay as recorded; the reference is drifted (energies x gain)
        drifted = apply_gain(reference_rate, spectrometer, gain)[use]
        values.append(_log_likelihood(y, drifted * (y.sum() / drifted.sum())))
    best = int(np.argmax(values))
    if 0 < best < len(gains) - 1:
        left, mid, right = values[best - 1], values[best], values[best + 1]
        curvature = left - 2.0 * mid + right
        if curvature < 0:
            return float(gains[best] + 0.5 * (gains[1] - gains[0]) * (left - right) / curvature)
    return float(gains[best])


def identify(counts, live_time: float, background_rate, spectrometer: Spectrometer,
             min_deviance: float = 25.0, iterations: int = 400,
             gain: float = 1.0) -> Identification:
    """Identify the nuclides in a spectrum (counts per channel over `live_time` s).

    background_rate: the empty lane's spectrum, counts/s per channel, on the calibrated energy
    axis. gain: the detector's current gain (from `estimate_gain` on the accumulated
    background); the spectrum is put back on the calibrated axis first. Raises ValueError on a
    spectrum that does not match the detector, negative or non-finite counts, a live time that
    is not positive or a gain outside 0.5-2.
    """
    y = np.asarray(counts, dtype=float)
    background = np.asarray(background_rate, dtype=float) * live_time
    if y.shape != (spectrometer.channels,) or background.shape != y.shape:
        raise ValueError(f'spectra must have {spectrometer.channels} channels, got '
                         f'{y.shape} and {background.shape}')
    if not (math.isfinite(live_time) and live_time > 0):
        raise ValueError(f'live time must be positive, got {live_time!r}')
    if not (np.all(np.isfinite(y)) and np.all(y >= 0)):
        raise ValueError('counts must be finite and >= 0')
    if not (np.all(np.isfinite(background)) and np.all(background >= 0)) or background.sum() <= 0:
        raise ValueError('the background must be finite, >= 0 and not empty')
    if not (math.isfinite(gain) and 0.5 <= gain <= 2.0):
        raise ValueError(f'gain must be in [0.5, 2], got {gain!r}')
    if gain != 1.0:
        y = rebin_for_gain(y, spectrometer, gain)
    library, labels = templates(spectrometer)
    names = tuple(dict.fromkeys(n for n, _ in labels))
    rows_of = {n: [1 + i for i, (m, _) in enumerate(labels) if m == n] for n in names}
    components = np.vstack([background / background.sum(), library])
    excess = max(y.sum() - background.sum(), 1.0)

    def fit(chosen, iterations):
        rows = [0] + [r for n in chosen for r in rows_of[n]]
        start = np.concatenate([[background.sum()], np.full(len(rows) - 1, excess / 5.0)])
        amplitudes = _fit(y, components[rows], start, iterations)
        return rows, amplitudes, _log_likelihood(y, amplitudes @ components[rows])

    # forward selection: add the nuclide that raises the likelihood most, while it is worth
    # min_deviance (nuclides whose lines overlap, as U-238 and its Ra-226 progeny, compete for
    # the same counts: the better one is chosen instead of neither)
    chosen, (rows, amplitudes, best) = [], fit([], iterations)
    while len(chosen) < len(names):
        trials = [(fit(chosen + [n], iterations), n) for n in names if n not in chosen]
        (trial_rows, trial_amplitudes, value), nuclide = max(trials, key=lambda t: t[0][2])
        if 2.0 * (value - best) < min_deviance:
            break
        chosen.append(nuclide)
        rows, amplitudes, best = trial_rows, trial_amplitudes, value
    found = []
    for nuclide in chosen:  # each one's deviance given the others
        deviance = 2.0 * (best - fit([n for n in chosen if n != nuclide], iterations)[2])
        if deviance < min_deviance:
            continue
        own = [k for k, r in enumerate(rows) if r in rows_of[nuclide]]
        top = rows[own[int(np.argmax(amplitudes[own]))]] - 1
        found.append(Identified(nuclide, CATEGORIES[nuclide], float(amplitudes[own].sum()),
                                deviance, float(1.0 - 0.5 * chi2.sf(deviance, 1)),
                                labels[top][1]))
    components = components[rows]
    expected = amplitudes @ components
    mask = expected > 0
    with np.errstate(divide='ignore', invalid='ignore'):
        terms = np.where(y[mask] > 0, y[mask] * np.log(y[mask] / expected[mask]), 0.0)
    deviance_total = 2.0 * float(np.sum(terms - (y[mask] - expected[mask])))
    return Identification(
        tuple(sorted(found, key=lambda i: -i.deviance)),
        float(amplitudes[0] / background.sum()),
        float(amplitudes[1:].sum()),
        deviance_total / max(int(mask.sum()), 1),
        gain,
    )


THREAT_CATEGORIES = ('industrial', 'SNM')


def threat_log_bayes_factor(counts, live_time: float, background_rate,
                            spectrometer: Spectrometer, identification: Identification,
                            rate_min: float = 1.0, rate_max: float = 1e5,
                            grid: int = 48) -> float:
    """Return ln of the Bayes factor: "a threat nuclide is present" against "it is not".

    The spectrum (counts over `live_time`, already on the calibrated axis) is explained under H0
    by the background (its scale fitted) and the non-threat nuclides `identification` reported
    (NORM, medical); under H1 also by one threat nuclide (category industrial or SNM), chosen
    uniformly among the library's threats and their shieldings, with a count rate log-uniform
    between `rate_min` and `rate_max` cps (H0's amplitudes held at their fit). It is near 0 or
    below on a clean or NORM-only spectrum and large when a threat's lines are there: the
    evidence fusion weighs, where `identify` gives names for the officer.
    """
    y = np.asarray(counts, dtype=float)
    background = np.asarray(background_rate, dtype=float) * live_time
    library, labels = templates(spectrometer)
    keep = {i.nuclide for i in identification.identified if i.category not in THREAT_CATEGORIES}
    base_rows = [k for k, (n, _) in enumerate(labels) if n in keep]
    components = np.vstack([background / background.sum(), library[base_rows]])
    start = np.concatenate([[background.sum()],
                            np.full(len(base_rows), max(y.sum() - background.sum(), 1.0))])
    mu0 = np.maximum(_fit(y, components, start, 400) @ components, 1e-12)
    threat = [k for k, (n, _) in enumerate(labels) if CATEGORIES[n] in THREAT_CATEGORIES]
    amplitudes = np.geomspace(rate_min, rate_max, grid) * live_time  # counts
    ratio = library[threat] / mu0  # (templates, channels)
    used = y > 0
    gains = np.log1p(amplitudes[None, :, None] * ratio[:, None, used]) @ y[used]
    log_terms = gains - amplitudes[None, :]  # sum of each template is 1
    top = float(np.max(log_terms))
    return top + math.log(float(np.mean(np.exp(log_terms - top))))
