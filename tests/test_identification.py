"""Isotope identification: the library fitted to simulated NaI spectra by Poisson likelihood."""

import numpy as np
import pytest

from customs_lab.radiation.identification import CATEGORIES, LIBRARY, apply_gain, identify
from customs_lab.radiation.physics import Shield
from customs_lab.radiation.spectrometer import Spectrometer

DETECTOR = Spectrometer()
BACKGROUND = DETECTOR.natural_background()  # counts/s: ~650 in this 4x4x16 inch log
LIVE = 2.0  # s


def spectrum(rng, sources, live=LIVE, background_scale=1.0):
    """Return Poisson counts: background plus {nuclide: (source counts, shield or None)}."""
    expected = BACKGROUND * live * background_scale
    for nuclide, (counts, shield) in sources.items():
        response = DETECTOR.nuclide_response(nuclide, (shield,) if shield is not None else ())
        expected = expected + counts * response / response.sum()
    return rng.poisson(expected)


@pytest.mark.parametrize('nuclide', LIBRARY)
def test_each_library_nuclide_is_identified_alone_and_categorised(nuclide):
    rng = np.random.default_rng(sum(map(ord, nuclide)))
    result = identify(spectrum(rng, {nuclide: (1500.0, None)}), LIVE, BACKGROUND, DETECTOR)
    assert [i.nuclide for i in result.identified] == [nuclide], result.explanation()
    found = result.identified[0]
    assert found.category == CATEGORIES[nuclide] and found.confidence > 0.999
    assert found.counts == pytest.approx(1500.0, rel=0.25)
    assert 0.9 < result.background_scale < 1.1
    assert result.deviance_per_channel < 1.5  # the model explains the spectrum


def test_background_alone_identifies_nothing():
    false = 0
    for seed in range(25):
        result = identify(spectrum(np.random.default_rng(seed), {}), LIVE, BACKGROUND, DETECTOR)
        false += bool(result.identified)
    assert false == 0
    assert 'no nuclide identified' in result.explanation()


def test_a_cargo_that_shadows_the_background_is_not_a_source():
    result = identify(spectrum(np.random.default_rng(3), {}, background_scale=0.8), LIVE,
                      BACKGROUND, DETECTOR)
    assert not result.identified and result.background_scale == pytest.approx(0.8, abs=0.05)


def test_mixtures_are_resolved_into_their_nuclides():
    rng = np.random.default_rng(11)
    for mix in (('Cs-137', 'Co-60'), ('Am-241', 'Cs-137'), ('K-40', 'Cs-137'),
                ('Tc-99m', 'I-131')):
        result = identify(spectrum(rng, {n: (1500.0, None) for n in mix}), LIVE, BACKGROUND,
                          DETECTOR)
        assert sorted(i.nuclide for i in result.identified) == sorted(mix), result.explanation()


def test_a_shielded_source_keeps_its_identity():
    rng = np.random.default_rng(5)
    lead = Shield('Pb', 11.35, 0.02)
    result = identify(spectrum(rng, {'Cs-137': (1500.0, lead)}), LIVE, BACKGROUND, DETECTOR)
    assert [i.nuclide for i in result.identified] == ['Cs-137']
    assert 'lead' in result.identified[0].shielding
    # behind lead, Am-241's 59.5 keV line is gone: what gets through are its weak lines from
    # 100 to 700 keV (10^-5 per decay), still Am-241's, and the fit says it was shielded
    result = identify(spectrum(rng, {'Am-241': (1500.0, lead)}), LIVE, BACKGROUND, DETECTOR)
    assert [i.nuclide for i in result.identified] == ['Am-241']
    assert 'lead' in result.identified[0].shielding


def test_fertiliser_is_norm_and_weak_sources_are_not_reported():
    rng = np.random.default_rng(8)
    result = identify(spectrum(rng, {'K-40': (3000.0, None)}), LIVE, BACKGROUND, DETECTOR)
    assert [(i.nuclide, i.category) for i in result.identified] == [('K-40', 'NORM')]
    weak = identify(spectrum(rng, {'Cs-137': (30.0, None)}), LIVE, BACKGROUND, DETECTOR)
    assert not weak.identified  # 30 counts under ~1,300 of background: below 5 sigma


def test_bad_spectra_are_refused():
    good = spectrum(np.random.default_rng(0), {})
    with pytest.raises(ValueError, match='channels'):
        identify(good[:100], LIVE, BACKGROUND, DETECTOR)
    with pytest.raises(ValueError, match='live time'):
        identify(good, 0.0, BACKGROUND, DETECTOR)
    with pytest.raises(ValueError, match='counts'):
        identify(np.where(np.arange(len(good)) == 5, -1, good), LIVE, BACKGROUND, DETECTOR)
    with pytest.raises(ValueError, match='background'):
        identify(good, LIVE, np.zeros_like(BACKGROUND), DETECTOR)


def test_gain_drift_is_found_on_the_background_and_corrected():
    from customs_lab.radiation.identification import estimate_gain, rebin_for_gain

    rng = np.random.default_rng(21)
    for gain in (0.96, 1.0, 1.03, 1.05):
        # two minutes of the empty lane
        accumulated = rng.poisson(apply_gain(BACKGROUND * 120.0, DETECTOR, gain))
        assert estimate_gain(accumulated, BACKGROUND, DETECTOR) == pytest.approx(gain, abs=0.004)
    # rebinning with the gain puts the drifted spectrum back where the calibration expects it
    back = rebin_for_gain(apply_gain(BACKGROUND * 120.0, DETECTOR, 1.05), DETECTOR, 1.05)
    inside = (DETECTOR.centres_kev > 100) & (DETECTOR.centres_kev < 2800)
    assert np.allclose(back[inside], BACKGROUND[inside] * 120.0, rtol=0.03, atol=1.0)
    # a 4 % drift breaks identification unless it is corrected
    expected = apply_gain(BACKGROUND * LIVE + 1500.0 * DETECTOR.response([(661.657, 1.0)])
                          / DETECTOR.response([(661.657, 1.0)]).sum(), DETECTOR, 1.04)
    results = [identify(rng.poisson(expected), LIVE, BACKGROUND, DETECTOR, gain=g)
               for g in (1.0, 1.04) for _ in range(5)]
    wrong = [r for r in results[:5] if [i.nuclide for i in r.identified] != ['Cs-137']]
    right = [r for r in results[5:] if [i.nuclide for i in r.identified] == ['Cs-137']]
    assert len(wrong) >= 3 and len(right) == 5
    with pytest.raises(ValueError, match='gain'):
        identify(rng.poisson(expected), LIVE, BACKGROUND, DETECTOR, gain=3.0)
