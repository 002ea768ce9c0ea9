"""NORM discrimination by energy windows on a PVT portal panel."""

import numpy as np
import pytest

from customs_lab.radiation.energy_windows import (
    WINDOWS_KEV,
    discriminate,
    templates,
    window_counts,
)
from customs_lab.radiation.physics import Shield
from customs_lab.radiation.spectrometer import Spectrometer

PANEL = Spectrometer.pvt_panel()
BACKGROUND = window_counts(PANEL.natural_background(), PANEL) * 4 * 3.0  # 4 panels, 3 s


def excess_shape(nuclide, shield=None):
    response = PANEL.nuclide_response(nuclide, (shield,) if shield is not None else (),
                                      min_yield=1e-5)
    counts = window_counts(response, PANEL)
    return counts / counts.sum()


def passages(rng, nuclide, excess, n=200, shield=None):
    expected = BACKGROUND + excess * excess_shape(nuclide, shield)
    return [discriminate(rng.poisson(expected), BACKGROUND, PANEL).log_likelihood_ratio
            for _ in range(n)]


def auc(threat, norm):
    threat, norm = np.asarray(threat), np.asarray(norm)
    return float(np.mean(threat[:, None] > norm[None, :])
                 + 0.5 * np.mean(threat[:, None] == norm[None, :]))


def test_the_windows_split_hard_and_soft_spectra():
    table = templates(PANEL)
    assert len(WINDOWS_KEV) == 3
    k40, cs137 = table['norm']['K-40 bare'], table['threat']['Cs-137 bare']
    assert k40[2] > 0.5 > cs137[2]  # K-40 mostly in the high window, Cs-137 not
    assert table['threat']['Am-241 bare'][0] > 0.95  # 59.5 keV: all in the low window
    assert all(abs(f.sum() - 1.0) < 1e-9 for group in table.values() for f in group.values())


def test_fertiliser_and_a_cs137_source_of_the_same_excess_are_told_apart():
    rng = np.random.default_rng(3)
    excess = 3000.0  # counts above ~29,000 of background: a 5 sigma gross-count alarm
    norm = passages(rng, 'K-40', excess, shield=Shield('KCl', 1.0, 0.2))
    cs137 = passages(rng, 'Cs-137', excess)
    print(f'\nAUC Cs-137 vs fertiliser {auc(cs137, norm):.3f}; median LLR {np.median(cs137):+.1f}'
          f' / {np.median(norm):+.1f} nats')
    assert auc(cs137, norm) > 0.95
    assert np.median(cs137) > 0 > np.median(norm)
    am241 = passages(rng, 'Am-241', excess, n=50)
    assert np.median(am241) > 5.0


def test_no_excess_says_nothing_and_bad_input_is_refused():
    rng = np.random.default_rng(4)
    quiet = passages(rng, 'Cs-137', 0.0, n=100)
    assert abs(np.median(quiet)) < 2.0
    result = discriminate(BACKGROUND, BACKGROUND, PANEL)
    assert result.excess == 0.0 and 'energy windows' in result.explanation()
    with pytest.raises(ValueError, match='window counts'):
        discriminate(BACKGROUND[:2], BACKGROUND, PANEL)
    with pytest.raises(ValueError, match='finite'):
        discriminate(BACKGROUND * np.nan, BACKGROUND, PANEL)
    with pytest.raises(ValueError, match='density'):
        Spectrometer(density=0.0)


def test_a_window_edge_at_1100_kev_tells_co60_from_k40():
    rng = np.random.default_rng(8)
    edges = (60.0, 250.0, 600.0, 1100.0, 3000.0)
    bands = tuple(zip(edges[:-1], edges[1:], strict=True))
    background = window_counts(PANEL.natural_background(), PANEL, bands) * 20.0

    def median_llr(nuclide, shields, windows):
        f = window_counts(PANEL.nuclide_response(nuclide, shields), PANEL, windows)
        b = window_counts(PANEL.natural_background(), PANEL, windows) * 20.0
        return np.median([discriminate(rng.poisson(b + 3000 * f / f.sum()), b, PANEL,
                                       windows).log_likelihood_ratio for _ in range(15)])

    fertiliser = (Shield('KCl', 1.0, 0.3),)
    assert background.shape == (4,)
    assert abs(median_llr('Co-60', (), WINDOWS_KEV)) < 5.0  # three windows: undecided
    assert median_llr('Co-60', (), bands) > 10.0
    assert median_llr('K-40', fertiliser, bands) < -10.0
