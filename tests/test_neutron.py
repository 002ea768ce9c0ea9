"""Tests of the neutron channel: yields, transport, He-3 modules, background, passage alarm."""

import math
from types import SimpleNamespace

import numpy as np
import pytest
from scipy.stats import poisson

from customs_lab.radiation import neutron, physics


def _module(**overrides):
    return neutron.NeutronModule('left', (0.0, 0.0, 0.0), (0.0, 1.0, 0.0), **overrides)


# ---------------------------------------------------------------------------------------------
# Emission


@pytest.mark.parametrize(
    'nuclide, published',
    [('Cf-252', 2.3e12), ('Pu-240', 1.02e3), ('Pu-238', 2.59e3), ('Pu-242', 1.72e3),
     ('Cm-244', 1.08e7), ('U-238', 1.36e-2)],
)
def test_sf_yield_per_gram_and_its_cross_check_with_icrp107(nuclide, published):
    # Published SF yields (n/s per g; PANDA table 11-1); the independent ICRP-107 half-life x
    # SF branch x nu-bar must agree with them within 4 %.
    assert neutron.neutron_emission_rate(nuclide, mass_g=1.0) == pytest.approx(published, 0.03)
    from_decay = neutron.sf_yield_from_decay_data(nuclide)
    assert from_decay == pytest.approx(neutron.SF_YIELD_PER_GRAM[nuclide], rel=0.04)


def test_sf_cross_check_needs_an_sf_branch():
    with pytest.raises(ValueError, match='no spontaneous-fission branch'):
        neutron.sf_yield_from_decay_data('Pu-239')


def test_mass_and_activity_give_the_same_cf252_rate():
    # 1 microgram of Cf-252: ~2.3e6 n/s, ~0.54 mCi (19.9 GBq/g).
    activity = neutron.specific_activity('Cf-252') * 1e-6
    assert activity == pytest.approx(0.536e-3 * neutron.CURIE, rel=0.01)
    by_mass = neutron.neutron_emission_rate('cf252', mass_g=1e-6)
    assert neutron.neutron_emission_rate('Cf-252', activity_bq=activity) == pytest.approx(by_mass)
    assert by_mass == pytest.approx(2.3e6, rel=0.03)


def test_plutonium_grades():
    weapons = neutron.neutron_emission_rate('weapons-grade Pu', mass_g=1000.0)
    reactor = neutron.neutron_emission_rate('Reactor-grade Pu', mass_g=1000.0)
    assert 5.5e4 < weapons < 7.0e4  # ~6e4 n/s per kg (Pu-240 at 5.8 %)
    assert reactor == pytest.approx(3.6e5, rel=0.1)  # Mark (1993): ~360 n/s per g
    oxide = neutron.neutron_emission_rate('weapons-grade Pu', mass_g=1000.0, form='oxide')
    assert 1.3 * weapons < oxide < 2.5 * weapons  # (alpha,n) on oxygen adds about as much again


def test_am_be_rating():
    assert neutron.neutron_emission_rate('Am-Be', activity_bq=neutron.CURIE) == pytest.approx(
        2.2e6)
    # 1 g of Am-241 is 3.4 Ci.
    one_gram = neutron.neutron_emission_rate('AmBe', mass_g=1.0)
    assert one_gram == pytest.approx(3.43 * 2.2e6, rel=0.01)


@pytest.mark.parametrize(
    'kwargs, message',
    [(dict(source='Pu-240', mass_g=float('nan')), 'mass_g must be finite'),
     (dict(source='Pu-240', mass_g=-1.0), 'mass_g must be finite and >= 0'),
     (dict(source='Xx-999', mass_g=1.0), 'unknown neutron source'),
     (dict(source='', mass_g=1.0), 'unknown neutron source'),
     (dict(source='Cs-137', mass_g=1.0), 'no neutron yield data for Cs-137'),
     (dict(source='Pu-240'), 'exactly one of mass_g and activity_bq'),
     (dict(source='Pu-240', mass_g=1.0, activity_bq=1.0), 'exactly one'),
     (dict(source='Pu-240', mass_g=1.0, form='fluoride'), "form must be 'metal' or 'oxide'"),
     (dict(source='weapons-grade Pu', activity_bq=1e9), 'not an activity'),
     (dict(source='Cf-252', activity_bq=float('inf')), 'activity_bq must be finite')],
)
def test_bad_emission_inputs(kwargs, message):
    with pytest.raises(ValueError, match=message):
        neutron.neutron_emission_rate(**kwargs)


# ---------------------------------------------------------------------------------------------
# Transport


@pytest.mark.parametrize(
    'material, density, tabulated',
    [('H2O', 1.0, 0.103), ('CH2', 0.94, 0.123), ('Fe', 7.874, 0.1576), ('Pb', 11.35, 0.1175)],
)
def test_removal_cross_sections_match_the_tabulated_ones(material, density, tabulated):
    sigma = neutron.mass_removal_cross_section(material) * density
    assert sigma == pytest.approx(tabulated, rel=0.03)
    shield = physics.Shield(material, density, 0.10)
    assert neutron.removal_transmission([shield]) == pytest.approx(math.exp(-10 * sigma))


def test_lead_barely_stops_what_a_he3_module_counts_polyethylene_does():
    lead = [physics.Shield('Pb', 11.35, 0.05)]
    poly = [physics.Shield('CH2', 0.94, 0.05)]
    assert neutron.count_transmission(lead) == pytest.approx(1.0)
    assert neutron.count_transmission(poly) < 0.9
    # the measurement count_transmission is fitted to: 25 % -> 10 % behind 25.4 cm of HDPE
    thick = [physics.Shield('CH2', 0.95, 0.254)]
    assert neutron.count_transmission(thick) == pytest.approx(0.10 / 0.25, rel=0.01)
    # The same lead stops gamma rays: Cs-137's 662 keV line is cut ~500-fold.
    assert float(physics.transmission(lead, [661.657])[0]) < 0.01
    # Removal (fast, dose-relevant flux) is similar per cm for both: energy loss, not absorption.
    assert neutron.removal_transmission(lead) == pytest.approx(
        neutron.removal_transmission(poly), abs=0.05)


def test_count_rate_falls_as_inverse_square_far_away():
    module = _module()
    near = neutron.count_rate(module, [neutron.NeutronSource(1e5, (0.0, 10.0, 0.0))])
    far = neutron.count_rate(module, [neutron.NeutronSource(1e5, (0.0, 20.0, 0.0))])
    assert near / far == pytest.approx(4.0, rel=0.01)
    behind = neutron.count_rate(module, [neutron.NeutronSource(1e5, (0.0, -2.0, 0.0))])
    assert behind == 0.0


def test_reference_module_meets_the_rpm_benchmark_and_iec_source():
    module = _module()
    one_ng = neutron.NeutronSource(neutron.CF252_PER_NG, (0.0, 2.0, 0.0))
    assert neutron.count_rate(module, [one_ng]) == pytest.approx(2.5, rel=1e-6)
    assert 0.05 < module.intrinsic_efficiency < 0.2
    iec = neutron.count_rate(module, [neutron.NeutronSource(2e4, (0.0, 2.0, 0.0))])
    assert iec == pytest.approx(21.4, rel=0.02)
    background = neutron.cosmic_background_rate(module)
    assert 1.0 < background < 10.0  # a few cps per module


def test_efficiency_scales_with_tubes_and_pressure():
    reference = _module().intrinsic_efficiency
    assert _module(tubes=2).intrinsic_efficiency == pytest.approx(reference / 2)
    assert _module(tubes=8).intrinsic_efficiency == pytest.approx(reference)  # face covered
    assert _module(pressure_atm=1.0).intrinsic_efficiency < 0.75 * reference
    assert _module(active_length=0.9).intrinsic_efficiency == pytest.approx(reference / 2)


def test_dead_time_is_non_paralysable_and_invertible():
    assert neutron.measured_rate(1e5, 4e-6) == pytest.approx(1e5 / 1.4)
    assert neutron.dead_time_corrected_rate(neutron.measured_rate(3e4, 4e-6), 4e-6) == (
        pytest.approx(3e4))
    with pytest.raises(ValueError, match='saturates'):
        neutron.dead_time_corrected_rate(3e5, 4e-6)


@pytest.mark.parametrize(
    'overrides, message',
    [(dict(width=0.0), 'module width'), (dict(height=float('nan')), 'module height'),
     (dict(tubes=0), 'module tubes must be'), (dict(tubes=2.5), 'tubes must be a positive'),
     (dict(tubes=float('nan')), 'module tubes must be finite'),
     (dict(pressure_atm=-3.0), 'module pressure_atm'), (dict(dead_time=-1e-6), 'dead_time')],
)
def test_bad_modules(overrides, message):
    with pytest.raises(ValueError, match=message):
        _module(**overrides)


def test_bad_geometry_and_shields():
    with pytest.raises(ValueError, match='module normal'):
        neutron.NeutronModule('m', (0, 0, 0), (0, 0, 0))
    with pytest.raises(ValueError, match='source position'):
        neutron.NeutronSource(1.0, (0.0, float('nan'), 0.0))
    with pytest.raises(ValueError, match='emission_rate'):
        neutron.NeutronSource(-1.0, (0.0, 1.0, 0.0))
    with pytest.raises(ValueError, match='shield thickness'):
        neutron.count_transmission([SimpleNamespace(material='Pb', density=11.35, thickness=-1)])
    with pytest.raises(ValueError, match='unknown material'):
        neutron.removal_transmission([SimpleNamespace(material='Qq', density=1.0, thickness=1)])


# ---------------------------------------------------------------------------------------------
# Background


def test_ship_effect():
    assert neutron.ship_effect_factor(0.0) == 1.0
    truck = neutron.ship_effect_factor(20e6 / (1200 * 240))  # 20 t of steel over 12 m x 2.4 m
    assert 1.05 < truck < 1.3
    assert neutron.ship_effect_factor(1e5) == pytest.approx(1.0 + neutron.SHIP_EFFECT_STEEL)
    assert neutron.ship_effect_factor(100.0, enhancement=-0.1) < 1.0  # shadow shielding
    module = _module()
    assert neutron.cosmic_background_rate(module, ship_effect=truck) == pytest.approx(
        truck * neutron.cosmic_background_rate(module))
    with pytest.raises(ValueError, match='areal_mass'):
        neutron.ship_effect_factor(float('nan'))
    with pytest.raises(ValueError, match='enhancement'):
        neutron.ship_effect_factor(10.0, enhancement=-1.0)


# ---------------------------------------------------------------------------------------------
# Alarm


def test_false_alarm_rate_by_monte_carlo_is_within_its_bound():
    rng = np.random.default_rng(20240611)
    background, live_time, alpha = neutron.cosmic_background_rate(_module()), 4.0, 0.01
    expected = background * live_time
    threshold = neutron.neutron_threshold(expected, alpha)
    exact = float(poisson.sf(threshold - 1, expected))
    assert exact <= alpha < float(poisson.sf(threshold - 2, expected))  # the smallest such k
    trials = 200_000
    counts = rng.poisson(expected, size=trials)
    measured = float(np.mean(counts >= threshold))
    sigma = math.sqrt(exact * (1 - exact) / trials)
    assert abs(measured - exact) < 4 * sigma
    assert measured <= alpha + 3 * math.sqrt(alpha / trials)
    config = neutron.NeutronAlarmConfig(false_alarm_probability=alpha)
    for n in counts[:200]:
        result = neutron.evaluate_neutron_passage(int(n), live_time, background, config)
        assert result.alarm == (n >= threshold)


def test_detection_probability_of_the_iec_source_matches_monte_carlo():
    module = _module()
    background = neutron.cosmic_background_rate(module)
    source = neutron.count_rate(module, [neutron.NeutronSource(2e4, (0.0, 2.0, 0.0))])
    live_time = 0.5
    claimed = neutron.detection_probability(source, background, live_time)
    assert 0.5 < claimed < 0.99
    assert neutron.detection_probability(source, background, 5.0) > 0.999999
    rng = np.random.default_rng(7)
    alarms = [
        neutron.evaluate_neutron_passage(
            neutron.simulate_counts(rng, source + background, live_time, module.dead_time),
            live_time, background).alarm
        for _ in range(4000)
    ]
    sigma = math.sqrt(claimed * (1 - claimed) / len(alarms))
    assert abs(np.mean(alarms) - claimed) < 4 * sigma


def test_lead_shielded_plutonium_is_caught_by_neutrons():
    # 1 kg of weapons-grade Pu in 5 cm of lead, in a container 2.6 m from each module's face.
    modules = [neutron.NeutronModule(side, (0.0, y, 1.25), (0.0, -np.sign(y), 0.0))
               for side, y in (('left', 2.6), ('right', -2.6))]
    pu = neutron.NeutronSource(neutron.neutron_emission_rate('weapons-grade Pu', mass_g=1000.0),
                               (0.0, 0.0, 1.8), (physics.Shield('Pb', 11.35, 0.05),))
    source = sum(neutron.count_rate(m, [pu]) for m in modules)
    background = sum(neutron.cosmic_background_rate(m) for m in modules)
    assert source > 10 * background
    assert neutron.detection_probability(source, background, 2.0) > 0.999


def test_evidence_and_explanation():
    strong = neutron.evaluate_neutron_passage(14, 4.2, 3.1 / 4.2)
    assert strong.alarm and strong.threshold <= 14
    assert strong.p_value == pytest.approx(float(poisson.sf(13, 3.1)))
    assert strong.log_likelihood_ratio > 3.0
    text = neutron.explain_neutron(strong)
    assert 'neutron counts 14 in 4.2 s against 3.1 expected' in text
    assert 'p=5e-06' in text and 'plutonium' in text
    quiet = neutron.evaluate_neutron_passage([2, 1], 4.0, [0.4, 0.4], ship_effect=1.1)
    assert not quiet.alarm and quiet.expected == pytest.approx(3.52)
    assert quiet.log_likelihood_ratio < 0.0
    text = neutron.explain_neutron(quiet)
    assert text.startswith('no neutron alarm') and 'ship effect x1.10' in text
    assert f'threshold of {quiet.threshold} counts' in text


@pytest.mark.parametrize(
    'args, kwargs, message',
    [((-1, 4.0, 1.0), {}, 'non-negative integers'), ((2.5, 4.0, 1.0), {}, 'integers'),
     ((float('nan'), 4.0, 1.0), {}, 'finite'), ((3, 0.0, 1.0), {}, 'live_time'),
     ((3, 4.0, float('nan')), {}, 'background rate'), ((3, 4.0, -1.0), {}, 'background'),
     ((3, 4.0, 1.0), {'ship_effect': float('nan')}, 'ship_effect')],
)
def test_bad_passages(args, kwargs, message):
    with pytest.raises(ValueError, match=message):
        neutron.evaluate_neutron_passage(*args, **kwargs)


def test_bad_alarm_config():
    with pytest.raises(ValueError, match='false_alarm_probability'):
        neutron.NeutronAlarmConfig(false_alarm_probability=0.0)
    with pytest.raises(ValueError, match='excess_prior'):
        neutron.NeutronAlarmConfig(excess_prior_min=10.0, excess_prior_max=1.0)
