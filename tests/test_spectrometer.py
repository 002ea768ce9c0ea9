"""The NaI(Tl) spectrometer's response: peaks, continua, escape peaks, the natural background."""

import math

import numpy as np
import pytest

from customs_lab.radiation.physics import gamma_lines
from customs_lab.radiation.spectrometer import Spectrometer

DETECTOR = Spectrometer()


def spectrum(nuclide, photons=1000.0, detector=DETECTOR):
    """Return counts/s for `photons` decays/s worth of the nuclide's lines through the face."""
    return detector.response([(line.energy_kev, photons * line.yield_per_decay)
                              for line in gamma_lines(nuclide)])


def window(counts, low, high, detector=DETECTOR):
    c = detector.centres_kev
    return counts[(c >= low) & (c < high)]


def local_peak(counts, energy, detector=DETECTOR, half_width=None):
    """Return the centre energy of the largest channel within +-1 FWHM of `energy`."""
    width = half_width or float(detector.fwhm_kev(energy))
    c = detector.centres_kev
    inside = np.flatnonzero((c > energy - width) & (c < energy + width))
    return c[inside[np.argmax(counts[inside])]]


def test_a_cs137_line_gives_a_peak_of_the_stated_resolution_at_662_kev():
    counts = spectrum('Cs-137')
    c = DETECTOR.centres_kev
    top = int(np.argmax(counts))
    assert abs(c[top] - 661.657) < DETECTOR.max_kev / DETECTOR.channels
    above = np.flatnonzero(counts > counts[top] / 2)
    above = above[np.abs(above - top) < 40]
    width = c[above[-1]] - c[above[0]] + DETECTOR.max_kev / DETECTOR.channels
    assert width == pytest.approx(float(DETECTOR.fwhm_kev(661.657)), rel=0.1)
    assert float(DETECTOR.fwhm_kev(661.657)) / 661.657 == pytest.approx(0.07, rel=0.02)


def test_counts_are_the_interactions_and_the_peak_a_realistic_share():
    rate = 1000.0
    counts = DETECTOR.response([(661.657, rate)])
    interacting = rate * float(DETECTOR.efficiency([661.657])[0])
    below_lld = rate * 0.05  # generous: the continuum below 30 keV is a few per cent at most
    assert interacting - below_lld < counts.sum() <= interacting * 1.0001
    peak_to_total = DETECTOR.peak_efficiency(661.657) / float(DETECTOR.efficiency([661.657])[0])
    assert 0.45 < peak_to_total < 0.75  # large NaI logs: ~0.5-0.7 at 662 keV
    # mu/rho of NaI at 662 keV is 0.0746 cm^2/g (NIST XCOM, without coherent scattering)
    assert float(DETECTOR.efficiency([661.657])[0]) == pytest.approx(
        1 - math.exp(-0.0746 * 3.667 * 10.0), rel=0.01)
    # a thin crystal stops fewer photons and keeps fewer in the peak
    thin = Spectrometer(depth=0.0254)
    assert thin.efficiency([661.657])[0] == pytest.approx(1 - math.exp(-0.0746 * 3.667 * 2.54),
                                                          rel=0.01)
    assert thin.peak_efficiency(661.657) < 0.5 * DETECTOR.peak_efficiency(661.657)


def test_the_compton_edge_and_valley_of_cs137():
    counts = spectrum('Cs-137')
    edge = 661.657 * (1 - 1 / (1 + 2 * 661.657 / 510.999))  # 477 keV
    assert edge == pytest.approx(477.3, abs=0.5)
    plateau = window(counts, edge - 90, edge - 40).mean()
    valley = window(counts, edge + 50, edge + 100).mean()
    assert plateau > 1.5 * valley


def test_co60_shows_both_lines_and_a_high_energy_line_its_escape_peaks():
    counts = spectrum('Co-60')
    for energy in (1173.2, 1332.5):
        assert abs(local_peak(counts, energy) - energy) < 8.0
    tl208 = DETECTOR.response([(2614.5, 1000.0)])
    for energy in (2614.5 - 511.0, 2614.5 - 1022.0):  # single and double escape
        inside = window(tl208, energy - 10, energy + 10).mean()
        beside = window(tl208, energy - 120, energy - 60).mean()
        assert inside > 1.1 * beside


def test_am241_has_its_iodine_k_escape_peak_below_the_full_energy_one():
    detector = Spectrometer(lld_kev=0.0, noise_kev=3.0)
    counts = detector.response([(59.54, 1000.0)])
    assert abs(local_peak(counts, 59.54, detector, 8.0) - 59.54) < 4.0
    escape = window(counts, 28.0, 34.0, detector).sum()
    assert 0.2 * window(counts, 55.0, 65.0, detector).sum() < escape


def test_the_natural_background_shows_k40_and_tl208_and_falls_with_energy():
    background = DETECTOR.natural_background()
    assert np.all(background >= 0)
    for energy in (1460.8, 2614.5, 609.3):
        inside = window(background, energy - 15, energy + 15).mean()
        beside = 0.5 * (window(background, energy - 120, energy - 60).mean()
                        + window(background, energy + 60, energy + 120).mean())
        assert inside > 1.2 * beside, energy
    assert window(background, 100, 400).sum() > window(background, 1500, 3000).sum()
    # hundreds of counts per second in a 4x4x16 inch log: field portals see a few hundred
    assert 100.0 < background.sum() < 3000.0


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match='depth'):
        Spectrometer(depth=0.0)
    with pytest.raises(ValueError, match='channels'):
        Spectrometer(channels=8)
    with pytest.raises(ValueError, match='resolution'):
        Spectrometer(resolution_662=0.9)
    with pytest.raises(ValueError, match='line'):
        DETECTOR.response([(662.0, math.nan)])
    with pytest.raises(ValueError, match='line'):
        DETECTOR.response([(-5.0, 1.0)])
    assert DETECTOR.response([(4000.0, 10.0)]).sum() == 0.0  # beyond the range: not counted
