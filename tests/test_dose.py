"""Air kerma from located sources: coefficients against NIST, rate constants, fields, tracks."""

import math

import numpy as np
import pytest

from customs_lab.radiation.dose import (
    DoseSource,
    dose_field,
    kerma_rate,
    mass_energy_absorption,
    track_dose,
)
from customs_lab.radiation.physics import AIR_FORMULA, Shield

# NIST X-ray mass energy-absorption coefficients of dry air (Hubbell & Seltzer), cm^2/g
NIST_AIR_MU_EN = {60.0: 0.03041, 100.0: 0.02325, 200.0: 0.02672, 1250.0: 0.02666,
                  2000.0: 0.02345, 3000.0: 0.02057}


@pytest.mark.parametrize('energy', sorted(NIST_AIR_MU_EN))
def test_air_energy_absorption_matches_nist(energy):
    value = float(mass_energy_absorption(AIR_FORMULA, [energy])[0])
    assert value == pytest.approx(NIST_AIR_MU_EN[energy], rel=0.03)


@pytest.mark.parametrize('nuclide, constant', [('Cs-137', 0.0779), ('Co-60', 0.306)])
def test_air_kerma_rate_constants_match_the_published_ones(nuclide, constant):
    """UGy m^2 / (MBq h) at 1 m (e.g. Unger & Trubey 1982; the 1 m of air costs ~1 %)."""
    rate = float(kerma_rate([DoseSource(nuclide, 1e6, (0.0, 0.0, 0.0))], [[1.0, 0.0, 0.0]])[0])
    assert rate == pytest.approx(constant, rel=0.03)


def test_inverse_square_shielding_and_superposition():
    cs = DoseSource('Cs-137', 3.7e10, (0.0, 0.0, 1.0))  # 1 Ci
    near, far = kerma_rate([cs], [[1.0, 0.0, 1.0], [3.0, 0.0, 1.0]])
    assert near / far == pytest.approx(9.0 * math.exp(0.0093 * 2.0), rel=0.01)  # air: 0.0093/m
    lead = DoseSource('Cs-137', 3.7e10, (0.0, 0.0, 1.0), (Shield('Pb', 11.35, 0.05),))
    shielded = float(kerma_rate([lead], [[1.0, 0.0, 1.0]])[0])
    # narrow beam through 5 cm of lead: mu/rho = 0.111 cm^2/g at 662 keV (NIST) -> ~0.2 %
    assert shielded / near == pytest.approx(math.exp(-0.1110 * 11.35 * 5.0), rel=0.1)
    both = float(kerma_rate([cs, lead], [[1.0, 0.0, 1.0]])[0])
    assert both == pytest.approx(near + shielded)


def test_a_field_peaks_at_the_source_and_a_walk_past_it_integrates_like_a_line():
    source = DoseSource('Co-60', 1e9, (5.0, 0.0, 1.0))
    points, rates = dose_field([source], [0, -2, 1], [10, 2, 1], 0.5)
    assert np.allclose(points[np.argmax(rates)], [5.0, 0.0, 1.0])
    # walking at 1 m/s on a line 2 m from the source, from 200 m before to 200 m after:
    # (rate at 2 m) * 2 d / v * arctan(v L / d) without air; the air takes a few per cent
    v, d = 1.0, 2.0
    times = np.linspace(-200.0, 200.0, 40001)
    track = np.column_stack([5.0 + v * times, np.full_like(times, d), np.ones_like(times)])
    received = track_dose([source], times, track)
    at_d = float(kerma_rate([source], [[5.0, d, 1.0]])[0]) / 3600.0
    line = at_d * 2.0 * d / v * math.atan(v * 200.0 / d)
    assert 0.94 * line < received < line


def test_bad_input_is_refused():
    source = DoseSource('Cs-137', 3.7e9, (0.0, 0.0, 1.0))
    with pytest.raises(ValueError, match='activity'):
        DoseSource('Cs-137', -1.0, (0, 0, 0))
    with pytest.raises(ValueError, match='points'):
        kerma_rate([source], [[0.0, math.nan, 1.0]])
    with pytest.raises(ValueError, match='track'):
        track_dose([source], [0.0], [[0.0, 0.0, 0.0]])
