"""Tests of the portal's gamma physics: lines, attenuation, solid angle, count rates."""

import math
import warnings

import numpy as np
import pytest
from scipy import integrate

from customs_lab.radiation import physics

# NIST X-ray mass attenuation coefficients (Hubbell & Seltzer, NISTIR 5632), mu/rho in cm^2/g,
# total with coherent scattering, at 0.6, 0.8, 1.0, 1.25, 1.5, 2.0 and 3.0 MeV.
NIST_ENERGIES_KEV = np.array([600.0, 800.0, 1000.0, 1250.0, 1500.0, 2000.0, 3000.0])
NIST_MU_RHO = {
    'Pb': [1.248e-01, 8.870e-02, 7.102e-02, 5.876e-02, 5.222e-02, 4.606e-02, 4.234e-02],
    'Fe': [7.704e-02, 6.699e-02, 5.995e-02, 5.350e-02, 4.883e-02, 4.265e-02, 3.621e-02],
    # plastic scintillator (vinyltoluene)
    'C9H10': [8.732e-02, 7.668e-02, 6.894e-02, 6.166e-02, 5.611e-02, 4.810e-02, 3.848e-02],
}
# NIST values at 662 keV by log-log interpolation between 600 and 800 keV.
CS137_KEV = 661.657


def nist_at(material, energy_kev):
    log_mu = np.interp(
        np.log(energy_kev), np.log(NIST_ENERGIES_KEV), np.log(NIST_MU_RHO[material])
    )
    return float(np.exp(log_mu))


def line_yield(nuclide, energy_kev, tolerance_kev=0.5):
    return sum(
        line.yield_per_decay
        for line in physics.gamma_lines(nuclide)
        if abs(line.energy_kev - energy_kev) < tolerance_kev
    )


def panel(**overrides):
    values = dict(
        panel_id='p',
        center=[0.0, 0.0, 0.0],
        normal=[0.0, 1.0, 0.0],
        width=0.5,
        height=0.5,
        thickness=0.05,
    )
    values.update(overrides)
    return physics.DetectorPanel(**values)


# --- emission lines -------------------------------------------------------------------------


def test_cs137_line_comes_from_ba137m_in_equilibrium():
    # ICRP-107: Cs-137 -> Ba-137m with BF 0.94399, Ba-137m 661.657 keV with 0.897393 per decay.
    assert line_yield('Cs-137', 661.657) == pytest.approx(0.94399 * 0.897393, rel=0.01)
    assert line_yield('Cs-137', 661.657) == pytest.approx(0.85, rel=0.01)
    # Its own (Cs-137) gamma lines alone do not have it: the parent's lines only
    assert line_yield('Cs-137', 661.657) > 0
    own = physics.gamma_lines('Cs-137', equilibrium_ratio=0.0)
    assert all(abs(line.energy_kev - 661.657) > 1 for line in own)


def test_co60_and_am241_lines():
    assert line_yield('Co-60', 1173.2) == pytest.approx(1.0, abs=0.01)
    assert line_yield('Co-60', 1332.5) == pytest.approx(1.0, abs=0.01)
    assert line_yield('Am-241', 59.54) == pytest.approx(0.36, rel=0.02)
    # The name is normalised: the same lines for another spelling
    assert physics.gamma_lines('co60') == physics.gamma_lines('Co-60')
    # Sorted by energy, thresholds honoured
    lines = physics.gamma_lines('Ra-226', min_energy_kev=100.0, min_yield=0.01)
    energies = [line.energy_kev for line in lines]
    assert energies == sorted(energies)
    assert min(energies) >= 100.0
    assert min(line.yield_per_decay for line in lines) >= 0.01


def test_ra226_and_th232_bring_their_progeny():
    # Ra-226 itself emits 186 keV only; Pb-214 (352 keV) and Bi-214 (609, 1764 keV) come from
    # the short-lived progeny (ICRP-107: 0.376, 0.461, 0.154 per decay).
    assert line_yield('Ra-226', 186.2) == pytest.approx(0.036, rel=0.1)
    assert line_yield('Ra-226', 351.9) == pytest.approx(0.376, rel=0.03)
    assert 0.44 < line_yield('Ra-226', 609.3) < 0.47
    assert line_yield('Ra-226', 1764.5) == pytest.approx(0.154, rel=0.03)
    # Th-232: Ac-228 911 keV (0.258) and Tl-208 2614.5 keV (0.359 branch of Bi-212 x 0.99)
    assert line_yield('Th-232', 911.2) == pytest.approx(0.258, rel=0.05)
    assert line_yield('Th-232', 2614.5) == pytest.approx(0.3594 * 0.99, rel=0.02)
    members = physics.equilibrium_members('Th-232')
    assert members['Tl-208'] == pytest.approx(0.3594, rel=1e-3)
    assert members['Ra-228'] == pytest.approx(1.0, rel=1e-6)
    # Am-241's daughter Np-237 (2.1 million years) is not in equilibrium
    assert set(physics.equilibrium_members('Am-241')) == {'Am-241'}


def test_unknown_nuclide_is_a_value_error():
    with pytest.raises(ValueError, match='unknown nuclide'):
        physics.gamma_lines('Xx-999')
    with pytest.raises(ValueError, match='unknown nuclide'):
        physics.gamma_lines('')
    with pytest.raises(ValueError, match='unknown nuclide'):
        physics.expected_count_rate(panel(), [physics.PointSource('Unobtainium', 1e6, [0, 1, 0])])


# --- attenuation ----------------------------------------------------------------------------


def test_lead_transmission_and_half_value_layer_at_662_kev():
    mu = physics.mass_attenuation('Pb', CS137_KEV)[0] * 11.35  # 1/cm
    assert mu / 11.35 == pytest.approx(nist_at('Pb', CS137_KEV), rel=0.02)
    half_value_layer = math.log(2.0) / mu  # cm, narrow beam
    # Narrow-beam HVL of lead for Cs-137 is 0.55 cm (the ~0.65 cm of shielding tables is the
    # broad-beam value, with scattered photons built up; this model has no build-up).
    assert half_value_layer == pytest.approx(0.55, rel=0.05)
    for thickness_cm in (0.5, 1.0, 2.0):
        shield = physics.Shield('Pb', 11.35, thickness_cm / 100.0)
        got = physics.transmission([shield], CS137_KEV)[0]
        assert got == pytest.approx(math.exp(-mu * thickness_cm), rel=1e-9)
    two_layers = physics.transmission(
        [physics.Shield('Pb', 11.35, half_value_layer / 100.0)] * 2, CS137_KEV
    )[0]
    assert two_layers == pytest.approx(0.25, rel=1e-6)
    assert physics.transmission([], [100.0, 1000.0]) == pytest.approx([1.0, 1.0])


def test_attenuation_above_800_kev_matches_nist():
    with warnings.catch_warnings():
        warnings.simplefilter('error')  # xraydb warns when its tables are used above 800 keV
        for material, values in NIST_MU_RHO.items():
            got = physics.mass_attenuation(material, NIST_ENERGIES_KEV)
            assert got == pytest.approx(values, rel=0.02), material
    # Continuity across the 800 keV seam and monotonic decrease to 3 MeV (Pb: pair production
    # flattens it)
    energies = np.linspace(700.0, 3000.0, 200)
    curve = physics.mass_attenuation('Fe', energies)
    assert np.all(np.diff(curve) < 0)
    assert np.max(np.abs(np.diff(np.log(curve)))) < 0.01


def test_materials_and_shield_validation():
    water = physics.mass_attenuation('H2O', 1000.0)[0]
    assert physics.mass_attenuation('water', 1000.0)[0] == pytest.approx(water, rel=1e-3)
    assert water == pytest.approx(0.07072, rel=0.01)  # NIST
    # Coherent scattering is left out of the detector's interaction coefficient only
    assert physics.mass_attenuation('C9H10', 100.0, coherent=False)[0] < physics.mass_attenuation(
        'C9H10', 100.0
    )[0]
    with pytest.raises(ValueError, match='unknown material'):
        physics.Shield('Qq7', 1.0, 0.01)
    with pytest.raises(ValueError, match='density'):
        physics.Shield('Pb', -1.0, 0.01)
    with pytest.raises(ValueError, match='thickness'):
        physics.Shield('Pb', 11.35, float('nan'))
    with pytest.raises(ValueError, match='energies'):
        physics.transmission([], [-5.0])


# --- solid angle ----------------------------------------------------------------------------


def numeric_solid_angle(point, width, height):
    """Integrate d / r^3 over a rectangle centred at the origin in the z = 0 plane (normal +z)."""
    x0, y0, d = point

    def integrand(y, x):
        return d / ((x - x0) ** 2 + (y - y0) ** 2 + d * d) ** 1.5

    value, _ = integrate.dblquad(
        integrand, -width / 2, width / 2, -height / 2, height / 2, epsabs=1e-12, epsrel=1e-10
    )
    return value


def test_solid_angle_exact_close_up_against_numeric_integral():
    width, height = 0.38, 1.5
    for point in ([0.0, 0.0, 0.05], [0.1, 0.3, 0.02], [0.5, -0.9, 0.2], [0.0, 0.0, 1.0]):
        # up = +y, so height runs along y and width along x
        exact = physics.solid_angle_rectangle(
            point, [0, 0, 0], [0, 0, 1], width, height, up=[0, 1, 0]
        )
        assert exact == pytest.approx(numeric_solid_angle(point, width, height), rel=1e-6)
    # Very close to the centre of the face: the half space
    near = physics.solid_angle_rectangle([0, 0, 1e-6], [0, 0, 0], [0, 0, 1], 1.0, 1.0, [0, 1, 0])
    assert near == pytest.approx(2.0 * math.pi, rel=1e-5)


def test_solid_angle_far_away_matches_small_panel_approximation():
    width, height = 0.38, 1.5
    center = np.array([1.0, 2.0, 1.25])
    normal = np.array([0.0, -1.0, 0.0])
    for offset in ([0.0, -30.0, 0.0], [12.0, -25.0, 5.0]):
        point = center + np.array(offset)
        r = np.linalg.norm(point - center)
        cos_theta = np.dot(point - center, normal) / r
        approx = width * height * cos_theta / r**2
        exact = physics.solid_angle_rectangle(point, center, normal, width, height)
        assert exact == pytest.approx(approx, rel=1e-3)
    # Vectorised over points, and zero behind the face or in its plane
    points = np.array([center + [0, -2, 0], center + [0, 2, 0], center + [3, 0, 0]])
    omegas = physics.solid_angle_rectangle(points, center, normal, width, height)
    assert omegas[0] > 0 and omegas[1] == 0.0 and omegas[2] == 0.0


def test_panel_orientation_up_vector():
    # A panel 0.2 m wide and 2 m tall, seen from 0.3 m in front at a height of 0.9 m: larger
    # when its long side is vertical (up = +z) than when it is turned (up = +x), and turning it
    # is the same as swapping width and height.
    kwargs = dict(center=[0, 0, 0], normal=[0, 1, 0], width=0.2, height=2.0)
    point = [0.0, 0.3, 0.9]
    tall = physics.solid_angle_rectangle(point, up=[0, 0, 1], **kwargs)
    turned = physics.solid_angle_rectangle(point, up=[1, 0, 0], **kwargs)
    swapped = physics.solid_angle_rectangle(point, [0, 0, 0], [0, 1, 0], 2.0, 0.2, up=[0, 0, 1])
    assert turned == pytest.approx(swapped, rel=1e-12)
    assert tall > 3 * turned
    # An up vector not perpendicular to the normal is projected onto the face
    tilted = physics.solid_angle_rectangle(point, up=[0, 0.5, 1], **kwargs)
    assert tilted == pytest.approx(tall, rel=1e-12)
    with pytest.raises(ValueError, match='parallel'):
        physics.solid_angle_rectangle(point, up=[0, 1, 0], **kwargs)


# --- count rates ----------------------------------------------------------------------------


def test_count_rate_of_1_mbq_cs137_against_hand_computation():
    # 1 MBq Cs-137, 1 m in front of the centre of a 0.5 m x 0.5 m x 5 cm PVT panel, in air.
    detector = panel(width=0.5, height=0.5, thickness=0.05)
    source = physics.PointSource('Cs-137', 1.0e6, [0.0, 1.0, 0.0])
    # Hand computation: only the 661.7 keV line is above the 60 keV threshold.
    photons = 1.0e6 * 0.94399 * 0.897393  # per second
    omega = 4.0 * math.atan(0.25 * 0.25 / (1.0 * math.sqrt(0.25**2 + 0.25**2 + 1.0)))
    air = math.exp(-0.0776 * 1.205e-3 * 100.0)  # NIST dry air 0.0776 cm^2/g, 100 cm
    efficiency = 1.0 - math.exp(-nist_at('C9H10', CS137_KEV) * 1.032 * 5.0)
    hand = photons * omega / (4.0 * math.pi) * air * efficiency
    assert hand == pytest.approx(5.5e3, rel=0.05)  # the hand numbers themselves
    assert physics.expected_count_rate(detector, [source]) == pytest.approx(hand, rel=0.02)
    # Shielding a single-line source scales it by the transmission at that line
    lead = physics.Shield('Pb', 11.35, 0.01)
    shielded = physics.PointSource('Cs-137', 1.0e6, [0.0, 1.0, 0.0], (lead,))
    ratio = physics.expected_count_rate(detector, [shielded]) / physics.expected_count_rate(
        detector, [source]
    )
    assert ratio == pytest.approx(physics.transmission([lead], 661.657)[0], rel=1e-6)
    # Lowering the threshold lets the Ba K X-rays (32-37 keV) in
    low = panel(width=0.5, height=0.5, thickness=0.05, low_energy_threshold_kev=20.0)
    assert physics.expected_count_rate(low, [source]) > physics.expected_count_rate(
        detector, [source]
    )


def test_inverse_square_far_from_the_panel():
    detector = panel()
    near = physics.PointSource('Co-60', 1e9, [0.0, 20.0, 0.0])
    far = physics.PointSource('Co-60', 1e9, [0.0, 40.0, 0.0])
    ratio = physics.expected_count_rate(detector, [near], 0.0) / physics.expected_count_rate(
        detector, [far], 0.0
    )
    assert ratio == pytest.approx(4.0, rel=0.02)
    # With air the farther source loses more
    with_air = physics.expected_count_rate(detector, [near]) / physics.expected_count_rate(
        detector, [far]
    )
    assert with_air > ratio * 1.05


def test_sources_behind_the_panel_count_nothing_and_rates_add():
    detector = panel()
    behind = physics.PointSource('Cs-137', 1e9, [0.0, -0.5, 0.0])
    in_plane = physics.PointSource('Cs-137', 1e9, [2.0, 0.0, 0.0])
    front = physics.PointSource('Cs-137', 1e6, [0.3, 1.5, 0.2])
    other = physics.PointSource('Ra-226', 1e6, [-0.3, 2.0, -0.2])
    assert physics.expected_count_rate(detector, [behind]) == 0.0
    assert physics.expected_count_rate(detector, [in_plane]) == 0.0
    assert physics.expected_count_rate(detector, []) == 0.0
    both = physics.expected_count_rate(detector, [front, behind, other])
    separate = physics.expected_count_rate(detector, [front]) + physics.expected_count_rate(
        detector, [other]
    )
    assert both == pytest.approx(separate, rel=1e-12)
    # Doubling the activity doubles the rate; the Am-241 line (59.5 keV) is below 60 keV
    double = physics.PointSource('Cs-137', 2e6, front.position)
    assert physics.expected_count_rate(detector, [double]) == pytest.approx(
        2 * physics.expected_count_rate(detector, [front]), rel=1e-12
    )
    americium = physics.PointSource('Am-241', 1e9, [0.0, 1.0, 0.0])
    assert physics.expected_count_rate(detector, [americium]) < 1e-4 * 1e9


def test_all_panels_at_once_and_oblique_efficiency():
    size = dict(width=0.38, height=1.5)
    left = panel(panel_id='left', center=[0, 2.6, 1.25], normal=[0, -1, 0], **size)
    right = panel(panel_id='right', center=[0, -2.6, 1.25], normal=[0, 1, 0], **size)
    source = physics.PointSource('Co-60', 3.7e7, [0.0, 0.0, 1.25])
    rates = physics.expected_count_rates([left, right], [source])
    assert rates.shape == (2,)
    assert rates[0] == pytest.approx(rates[1], rel=1e-12)
    assert rates[0] == pytest.approx(physics.expected_count_rate(left, [source]), rel=1e-12)
    # Oblique incidence: a longer path through the slab, so a higher efficiency per photon
    # reaching the face than head-on (geometry divided out).
    head_on = physics.PointSource('Cs-137', 1e6, [0.0, 0.0, 1.25])
    oblique = physics.PointSource('Cs-137', 1e6, [2.0, 0.0, 1.25])

    def per_photon(source):
        omega = physics.solid_angle_rectangle(
            source.position, left.center, left.normal, left.width, left.height
        )
        return physics.expected_count_rate(left, [source], 0.0) / omega

    cos_theta = 2.6 / math.hypot(2.6, 2.0)
    mu = physics.mass_attenuation('C9H10', 661.657, coherent=False)[0] * 1.032  # 1/cm
    expected = (1 - math.exp(-mu * 5.0 / cos_theta)) / (1 - math.exp(-mu * 5.0))
    assert expected == pytest.approx(1.2, abs=0.02)
    assert per_photon(oblique) / per_photon(head_on) == pytest.approx(expected, rel=1e-9)


def test_count_rates_are_cheap_enough_for_real_time():
    import time

    panels = [
        panel(panel_id=str(i), center=[0, side * 2.6, z], normal=[0, -side, 0], height=1.5)
        for i, (side, z) in enumerate([(1, 1.25), (1, 2.85), (-1, 1.25), (-1, 2.85)] * 2)
    ]
    rng = np.random.default_rng(3)
    cargo = (physics.Shield('SiO2', 1.6, 0.5), physics.Shield('Fe', 7.874, 0.002))
    sources = [
        physics.PointSource(nuclide, 1e6, rng.uniform([-6, -1, 0.5], [6, 1, 2.5]), cargo)
        for nuclide in ['Th-232', 'Ra-226', 'K-40', 'Cs-137', 'Co-60'] * 2
    ]
    physics.expected_count_rates(panels, sources)  # warm the caches
    start = time.perf_counter()
    for _ in range(20):
        rates = physics.expected_count_rates(panels, sources)
    per_frame = (time.perf_counter() - start) / 20
    assert np.all(rates > 0)
    assert per_frame < 0.05  # s per 10 Hz frame of 10 sources x 8 panels (measured ~3 ms)


def test_bad_geometry_is_a_value_error():
    with pytest.raises(ValueError, match='width'):
        panel(width=0.0)
    with pytest.raises(ValueError, match='normal'):
        panel(normal=[0, 0, 0])
    with pytest.raises(ValueError, match='position'):
        physics.PointSource('Cs-137', 1e6, [0.0, float('nan'), 0.0])
    with pytest.raises(ValueError, match='activity'):
        physics.PointSource('Cs-137', -1.0, [0.0, 1.0, 0.0])
