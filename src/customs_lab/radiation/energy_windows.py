"""NORM discrimination by energy windows: a portal's excess, threat source or legal NORM.

Core module (numpy / scipy, no ROS). A plastic (PVT) portal panel has no photopeaks, but how its
counts split between a few energy windows still tells hard spectra from soft ones: the K-40
(1,461 keV) of fertiliser puts most of its excess in the high window, Cs-137 (662 keV) in the
middle one, Am-241 and medical isotopes in the low one. Portals use this "energy windowing" to
stop alarming on every load of fertiliser, ceramics or cat litter.

For a passage's counts per window y_w (summed over panels) and the background expected in them
b_w, each class template (the fractions f_w of a nuclide's excess, through the panel's response
(radiation/spectrometer.py, `Spectrometer.pvt_panel`), bare or behind shielding or cargo) gives

    L_t = max over s >= 0 of sum_w [ y_w ln(b_w + s f_w) - (b_w + s f_w) ]

and the evidence is the log-likelihood ratio of the best threat template over the best NORM
template (nats; > 0: more like a threat source). With no excess both fit alike (ratio ~ 0).
Limits, by physics: Co-60 (1,173 and 1,332 keV) looks like K-40 in the three windows of
WINDOWS_KEV; a fourth edge at 1,100 keV, between Co-60's Compton edges (963, 1,118 keV) and
K-40's (1,243 keV), separates them (config/site.yaml uses it: 3,000 counts of excess then give
about +22 nats for Co-60 and -25 for K-40 in cargo). A threat hidden in NORM cargo fits
neither template; the spectrometers' identification (mixtures) sees it.
"""

from dataclasses import dataclass
from functools import lru_cache
import math

import numpy as np
from scipy.optimize import brentq

from customs_lab.radiation.physics import Shield
from customs_lab.radiation.spectrometer import Spectrometer

WINDOWS_KEV = ((60.0, 250.0), (250.0, 600.0), (600.0, 3000.0))
THREATS = ('Cs-137', 'Am-241', 'Ir-192', 'Co-60', 'Ba-133', 'Tc-99m', 'I-131', 'F-18',
           'U-235', 'Pu-239')
NORM = ('K-40', 'Th-232', 'Ra-226', 'U-238')
# bulk NORM sits inside its own cargo: a few cm to tens of cm of it between source and panel
NORM_COVERS = (('bare', '', 0.0, 0.0), ('10 cm cargo', 'KCl', 1.0, 0.10),
               ('30 cm cargo', 'KCl', 1.0, 0.30))
THREAT_COVERS = (('bare', '', 0.0, 0.0), ('2 cm steel', 'Fe', 7.874, 0.02),
                 ('1 cm lead', 'Pb', 11.35, 0.01))


def window_counts(spectrum, spectrometer: Spectrometer, windows=WINDOWS_KEV) -> np.ndarray:
    """Return the counts of a spectrum (per channel) in each window [low, high) keV."""
    centres = spectrometer.centres_kev
    spectrum = np.asarray(spectrum, dtype=float)
    return np.array([spectrum[(centres >= low) & (centres < high)].sum()
                     for low, high in windows])


@lru_cache(maxsize=32)
def templates(spectrometer: Spectrometer, windows=WINDOWS_KEV) -> dict:
    """Return {'threat': {label: fractions}, 'norm': {label: fractions}} for the panel."""
    out = {'threat': {}, 'norm': {}}
    for group, nuclides, covers in (('threat', THREATS, THREAT_COVERS),
                                    ('norm', NORM, NORM_COVERS)):
        for nuclide in nuclides:
            for name, material, density, thickness in covers:
                shields = (Shield(material, density, thickness),) if thickness else ()
                response = spectrometer.nuclide_response(nuclide, shields, min_yield=1e-5)
                counts = window_counts(response, spectrometer, windows)
                if counts.sum() > 0:
                    out[group][f'{nuclide} {name}'] = counts / counts.sum()
    return out


def _profile(y, b, f) -> float:
    """Return the Poisson log-likelihood of y for b + s f at the best s >= 0."""
    def score(s):
        return float(np.sum(y * f / (b + s * f)) - f.sum())

    s = 0.0
    if score(0.0) > 0:
        high = max(float(y.sum()), 1.0)
        while score(high) > 0:
            high *= 2.0
        s = brentq(score, 0.0, high, xtol=1e-9 * high)
    expected = b + s * f
    return float(np.sum(y * np.log(expected) - expected))


@dataclass(frozen=True)
class Discrimination:
    """The windows' verdict on a passage's excess."""

    log_likelihood_ratio: float  # nats, best threat template over best NORM template
    threat: str  # the best threat template
    norm: str  # the best NORM template
    excess: float  # counts above background, all windows

    def explanation(self) -> str:
        """Return a one-line summary."""
        if self.excess <= 0:
            return 'energy windows: no excess over background'
        verdict = 'threat-like' if self.log_likelihood_ratio > 0 else 'NORM-like'
        return (f'energy windows: {verdict} ({self.log_likelihood_ratio:+.1f} nats; best threat '
                f'{self.threat}, best NORM {self.norm}; {self.excess:.0f} counts above '
                'background)')


def discriminate(counts, background, spectrometer: Spectrometer,
                 windows=WINDOWS_KEV) -> Discrimination:
    """Return threat-versus-NORM evidence from counts and expected background per window."""
    y = np.asarray(counts, dtype=float)
    b = np.asarray(background, dtype=float)
    if y.shape != (len(windows),) or b.shape != y.shape:
        raise ValueError(f'need {len(windows)} window counts and backgrounds, got '
                         f'{y.shape} and {b.shape}')
    if not (np.all(np.isfinite(y)) and np.all(y >= 0) and np.all(np.isfinite(b))
            and np.all(b > 0)):
        raise ValueError('window counts must be finite and >= 0, backgrounds finite and > 0')
    table = templates(spectrometer, tuple(windows))
    best = {}
    for group in ('threat', 'norm'):
        scored = [(_profile(y, b, f), label) for label, f in table[group].items()]
        best[group] = max(scored)
    llr = best['threat'][0] - best['norm'][0]
    return Discrimination(float(llr) if math.isfinite(llr) else 0.0, best['threat'][1],
                          best['norm'][1], float(max(y.sum() - b.sum(), 0.0)))
