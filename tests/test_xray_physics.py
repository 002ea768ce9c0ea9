"""The parcel X-ray scanner's physics: materials, spectrum, Beer-Lambert, noise, backscatter."""

import math
import time

import numpy as np
import pytest
import xraydb

from customs_lab.simulation.parcel_scene import ParcelScene, XrayObject, random_scene
from customs_lab.simulation.xray_physics import XrayPhysics
from customs_lab.xray import materials, spectrum
from customs_lab.xray.scanner_model import ScannerModel

MODEL = ScannerModel()
PIXEL = 176  # just off the central ray


@pytest.fixture(scope='module')
def physics():
    return XrayPhysics(MODEL, serial_seed=3)


def _slabs(layers, size=(0.04, 0.3, 0.45), density=1e-6):
    """Return a scene of wide slabs stacked from the box floor: [(material or '', m), ...]."""
    objects, z = [], 0.004
    for n, (material, thickness) in enumerate(layers):
        if material:
            objects.append(XrayObject(f'slab{n}', material, 'box', (0.02, 0.15, z + thickness / 2),
                                      (0.03, 0.28, thickness)))
        z += thickness
    return ParcelScene('TEST00001', size, tuple(objects), box_density=density)


def _measure(physics, layers):
    """Return (T low, T high, back keV-ADU without the pixel gain) of the middle line."""
    expected = physics.expected(_slabs(layers), lead=0, trail=0)
    air = physics.expected_air()
    line = expected.shape[1] // 2
    return (expected[0, line, PIXEL] / air[0, PIXEL], expected[1, line, PIXEL] / air[1, PIXEL],
            expected[2, line, PIXEL] / physics.pixel_gain[2, PIXEL])


# ---------------------------------------------------------------------------------------------
# materials


@pytest.mark.parametrize('name', ['water', 'steel', 'cocaine_hcl', 'pcb', 'li_ion_cell', 'lead',
                                  'rdx', 'clothes'])
def test_mu_equals_xraydb(name):
    material = materials.MATERIALS[name]
    energies = np.array([15.0, 33.2, 60.0, 88.5, 140.0])
    expected = xraydb.material_mu(material.formula, energies * 1000.0, material.density)
    np.testing.assert_allclose(materials.mu(name, energies), expected, rtol=1e-12)
    packed = material.at_density(0.45)
    np.testing.assert_allclose(materials.mu(packed, energies),
                               xraydb.material_mu(material.formula, energies * 1000.0, 0.45),
                               rtol=1e-12)
    np.testing.assert_allclose(materials.mass_attenuation(name, energies),
                               expected / material.density, rtol=1e-12)


def test_mu_against_nist_values():
    # NIST XCOM total attenuation with coherent scattering (cm^2/g)
    assert materials.mass_attenuation('water', 60.0)[0] == pytest.approx(0.2059, rel=0.02)
    assert materials.mass_attenuation('lead', 100.0)[0] == pytest.approx(5.549, rel=0.03)
    assert materials.mass_attenuation('Fe', 50.0)[0] == pytest.approx(1.958, rel=0.03)
    # a packed powder attenuates in proportion to its packing density
    heroin = materials.MATERIALS['heroin']
    ratio = materials.mu(heroin.at_density(0.5), 60.0) / materials.mu(heroin, 60.0)
    assert ratio[0] == pytest.approx(0.5 / heroin.density)


def test_electron_density_and_effective_z():
    assert materials.electron_density('water') == pytest.approx(3.343e23, rel=0.002)
    assert materials.effective_z('H2O') == pytest.approx(7.42, abs=0.03)
    assert materials.effective_z('Fe') == pytest.approx(26.0)
    assert 29.0 < materials.effective_z('brass') < 30.0
    assert materials.effective_z('cocaine_hcl') > materials.effective_z('heroin')  # chlorine
    organics = [m for m in materials.MATERIALS.values() if m.category == 'organic']
    metals = [m for m in materials.MATERIALS.values() if m.category == 'metal']
    assert max(materials.effective_z(m) for m in organics) < 11.0
    assert min(materials.effective_z(m) for m in metals) > 12.99


def test_mixture_formula_keeps_mass_fractions():
    formula = materials.mixture_formula({'H2O': 0.89, 'C12H22O11': 0.11})
    fractions = dict(materials.composition(formula))
    water = dict(materials.composition('H2O'))
    sugar = dict(materials.composition('C12H22O11'))
    for element in ('H', 'O', 'C'):
        want = 0.89 * water.get(element, 0.0) + 0.11 * sugar.get(element, 0.0)
        assert fractions[element] == pytest.approx(want, rel=1e-5)


def test_required_materials_exist():
    for name in ('cotton', 'clothes', 'paper', 'book', 'polyethylene', 'polystyrene', 'abs',
                 'rubber', 'shoe_sole', 'leather', 'water', 'juice', 'ethanol', 'vegetable_oil',
                 'sugar', 'flour', 'glass', 'aluminium', 'steel', 'copper', 'brass', 'lead',
                 'pcb', 'li_ion_cell', 'cocaine_hcl', 'heroin', 'methamphetamine_hcl',
                 'white_powder', 'tnt', 'rdx', 'ammonium_nitrate', 'petn',
                 *materials.REFERENCE_MATERIALS):
        assert name in materials.MATERIALS, name
    assert materials.MATERIALS['cocaine_hcl'].formula == 'C17H22ClNO4'
    assert materials.MATERIALS['steel'].density == pytest.approx(7.87)


def test_compton_helpers():
    assert materials.compton_energy(511.0, 180.0) == pytest.approx(511.0 / 3.0, rel=1e-4)
    assert materials.compton_energy(60.0, 0.0) == pytest.approx(60.0)
    # Thomson limit at 180 degrees: r_e^2 (1 + cos^2) / 2 = r_e^2
    thomson = materials.ELECTRON_RADIUS_CM**2
    assert materials.klein_nishina(0.01, 180.0) == pytest.approx(thomson, rel=1e-3)
    assert materials.klein_nishina(150.0, 180.0) < 0.7 * thomson


def test_materials_bad_input():
    with pytest.raises(ValueError, match='unknown material'):
        materials.mu('unobtainium', 60.0)
    with pytest.raises(ValueError, match='unknown formula'):
        materials.mass_attenuation('Xq2O', 60.0)
    with pytest.raises(ValueError, match='energies'):
        materials.mu('water', [0.5, 60.0])
    with pytest.raises(ValueError, match='energies'):
        materials.mu('water', 900.0)
    with pytest.raises(ValueError, match='density'):
        materials.Material('x', 'H2O', -1.0, 'organic')
    with pytest.raises(ValueError, match='category'):
        materials.Material('x', 'H2O', 1.0, 'liquid')
    with pytest.raises(ValueError):
        materials.MATERIALS['water'].at_density(0.0)
    with pytest.raises(ValueError):
        materials.mixture_formula({'H2O': -1.0})


# ---------------------------------------------------------------------------------------------
# spectrum and detectors


def test_tube_spectrum_against_spekpy():
    import spekpy

    energies, photons = spectrum.tube_spectrum(MODEL)
    assert energies[0] == pytest.approx(spectrum.ENERGY_MIN_KEV + spectrum.ENERGY_BIN_KEV / 2)
    assert energies[-1] < MODEL.kvp and photons.min() >= 0
    # an independent spekpy run with 1 keV bins, integrated over the same range
    spek = spekpy.Spek(kvp=MODEL.kvp, th=MODEL.anode_angle_deg, dk=1.0)
    spek.filter('Al', 2.0)
    k, fluence = spek.get_spectrum()
    inside = k > spectrum.ENERGY_MIN_KEV
    assert photons.sum() == pytest.approx(fluence[inside].sum() * 1.0, rel=0.01)
    mean = np.sum(photons * energies) / photons.sum()
    assert mean == pytest.approx(np.sum(fluence[inside] * k[inside]) / fluence[inside].sum(),
                                 rel=0.01)
    # more filtration hardens the beam and costs photons
    filtered = ScannerModel(filtration=(('Al', 2.0), ('Cu', 0.5)))
    e2, p2 = spectrum.tube_spectrum(filtered)
    assert p2.sum() < 0.6 * photons.sum()
    assert np.sum(p2 * e2) / p2.sum() > mean + 10.0


def test_detector_weights():
    weights = spectrum.detector_weights(MODEL)
    energies = weights.energies_kev
    assert len(energies) == len(spectrum.tube_spectrum(MODEL)[0])
    assert np.interp(20.0, energies, weights.low) > 0.9 * 20.0  # 0.3 mm CsI stops 20 keV
    assert np.interp(20.0, energies, weights.high) < 1e-3  # front and 0.5 mm Cu stop them
    ratio = weights.high / np.maximum(weights.low, 1e-12)
    assert np.all(np.diff(ratio[energies > 40]) > 0)  # the rear layer sees the harder part
    # independent: E (1 - exp(-mu t)) of 0.3 mm CsI; the rear layer behind it and 0.5 mm Cu
    for index in (5, 30, 60):
        energy = energies[index]
        front = math.exp(-xraydb.material_mu('CsI', energy * 1e3, 4.51) * 0.03)
        copper = math.exp(-xraydb.material_mu('Cu', energy * 1e3, 8.96) * 0.05)
        rear = 1.0 - math.exp(-xraydb.material_mu('CsI', energy * 1e3, 4.51) * 0.4)
        assert weights.low[index] == pytest.approx(energy * (1.0 - front), rel=1e-9)
        assert weights.high[index] == pytest.approx(energy * front * copper * rear, rel=1e-9)
    assert weights.back_energy_kev[-1] == pytest.approx(energies[-1] / (1 + 2 * energies[-1]
                                                                         / 510.99895))
    np.testing.assert_allclose(weights.second_moment('low'), weights.low * energies)
    with pytest.raises(ValueError):
        weights.weights('mid')


def test_spectrum_bad_input():
    with pytest.raises(ValueError):
        spectrum.tube_spectrum('160 kV')
    with pytest.raises(ValueError):
        spectrum.tube_spectrum(ScannerModel(filtration=(('Xx', 1.0),)))
    with pytest.raises(ValueError):
        spectrum.energy_grid(160.0, bin_kev=0.0)
    with pytest.raises(ValueError):
        spectrum.layer_absorption(('CsI', -1.0, 0.3), [60.0])


# ---------------------------------------------------------------------------------------------
# geometry: chords


def _inside(obj, x, y, z):
    cx, cy, cz = obj.centre
    sx, sy, sz = obj.size
    u, v, w = (x - cx) / (sx / 2), (y - cy) / (sy / 2), (z - cz) / (sz / 2)
    if obj.shape == 'box':
        return (np.abs(u) <= 1) & (np.abs(v) <= 1) & (np.abs(w) <= 1)
    if obj.shape == 'ellipsoid':
        return u * u + v * v + w * w <= 1
    along = {'x': u, 'y': v, 'z': w}[obj.axis]
    across = [c for a, c in zip('xyz', (u, v, w), strict=True) if a != obj.axis]
    return (np.abs(along) <= 1) & (across[0] ** 2 + across[1] ** 2 <= 1)


def test_chords_against_brute_force(physics):
    objects = (
        XrayObject('box', 'steel', 'box', (0.2, 0.05, 0.05), (0.1, 0.06, 0.06)),
        XrayObject('cyl_x', 'water', 'cylinder', (0.21, 0.15, 0.05), (0.1, 0.06, 0.04), 'x'),
        XrayObject('cyl_y', 'water', 'cylinder', (0.19, 0.25, 0.05), (0.06, 0.05, 0.06), 'y'),
        XrayObject('cyl_z', 'water', 'cylinder', (0.185, 0.07, 0.18), (0.05, 0.08, 0.1), 'z'),
        XrayObject('ell', 'sugar', 'ellipsoid', (0.215, 0.2, 0.2), (0.06, 0.1, 0.08)),
    )
    scene = ParcelScene('TEST00002', (0.4, 0.3, 0.3), objects, belt_y=0.02)
    line = 99  # lead 0: samples x = 0.4 - 99.5 * 0.002 = 0.201, inside every object
    x = 0.4 - (line + 0.5) * MODEL.line_pitch
    entry, chord = physics.chords(scene, line, lead=0)
    contents = chord[:, 6:]
    assert contents.shape == (MODEL.pixels, len(objects))
    step = 2e-5
    s = np.arange(0.75, 1.25, step)
    base_y = scene.belt_y - scene.size[1] / 2
    total_hits = 0
    for pixel in range(0, MODEL.pixels, 3):
        direction = np.array(MODEL.pixel_y()[pixel:pixel + 1] + [MODEL.source_to_detector])
        direction /= np.linalg.norm(direction)
        y, z = s * direction[0] - base_y, s * direction[1] - MODEL.source_to_belt
        for k, obj in enumerate(objects):
            inside = _inside(obj, x, y, z)
            brute = inside.sum() * step
            assert contents[pixel, k] == pytest.approx(brute, abs=3 * step), (pixel, obj.name)
            if brute > 0:
                total_hits += 1
                assert entry[pixel, 6 + k] == pytest.approx(s[inside][0], abs=3 * step)
    assert total_hits > 40  # the test really went through the objects


def test_partial_volume_of_a_thin_plate(physics):
    # line 99's slice is x in [0.200, 0.202], line 98's [0.202, 0.204]: a 1 mm plate at
    # [0.2015, 0.2025] fills a quarter of each
    plate = XrayObject('plate', 'steel', 'box', (0.202, 0.15, 0.1), (0.001, 0.1, 0.01))
    scene = ParcelScene('TEST00003', (0.4, 0.3, 0.3), (plate,))
    full = 0.01 / physics.dir_z[PIXEL]
    _, chord = physics.chords(scene, 99, lead=0)
    assert chord[PIXEL, 6] == pytest.approx(0.25 * full, rel=1e-9)
    _, next_line = physics.chords(scene, 98, lead=0)
    assert next_line[PIXEL, 6] == pytest.approx(0.25 * full, rel=1e-9)
    _, far = physics.chords(scene, 97, lead=0)
    assert far[PIXEL, 6] == 0.0


# ---------------------------------------------------------------------------------------------
# Beer-Lambert


def _background(pixel):
    """Return the air and belt attenuation (pixels or pixel x energies) and the rays' cosine."""
    energies, _ = spectrum.tube_spectrum(MODEL)
    y = np.array(MODEL.pixel_y())[pixel]
    distance = np.hypot(y, MODEL.source_to_detector)
    cos = MODEL.source_to_detector / distance
    air = xraydb.material_mu(materials.MATERIALS['air'].formula, energies * 1e3, 1.205e-3)
    belt = xraydb.material_mu('C5H8', energies * 1e3, 0.95)
    path = np.multiply.outer(distance * 100, air) + np.multiply.outer(
        MODEL.belt_thickness * 100 / cos, belt)
    return path, cos


@pytest.mark.parametrize('material,thickness', [('water', 0.1), ('steel', 0.004),
                                                ('sugar', 0.03)])
def test_slab_transmission_is_spectrum_weighted_beer_lambert(physics, material, thickness):
    energies, photons = spectrum.tube_spectrum(MODEL)
    weights = spectrum.detector_weights(MODEL)
    background, cos = _background(PIXEL)
    m = materials.MATERIALS[material]
    slab = xraydb.material_mu(m.formula, energies * 1e3, m.density) * thickness * 100 / cos
    low, high, _ = _measure(physics, [(material, thickness)])
    for measured, w in ((low, weights.low), (high, weights.high)):
        open_beam = photons * w * np.exp(-background)
        predicted = np.sum(open_beam * np.exp(-slab)) / np.sum(open_beam)
        assert measured == pytest.approx(predicted, rel=1e-5)
    # a monoenergetic guess at the mean energy would be wrong: the beam hardens
    mean = np.sum(photons * weights.low * energies) / np.sum(photons * weights.low)
    naive = math.exp(-np.interp(mean, energies, slab))
    assert abs(low - naive) > 0.01 * low


def test_unobstructed_pixel_reads_air_level(physics):
    rng = np.random.default_rng(5)
    low, high, back = physics.air_lines(200, rng)
    centre = MODEL.pixels // 2
    for channel, lines in ((0, low), (1, high)):
        signal = lines[:, centre - 1:centre + 1].mean(0) - physics.pixel_dark[channel,
                                                                             centre - 1:centre + 1]
        flat = signal / physics.pixel_gain[channel, centre - 1:centre + 1]
        assert flat == pytest.approx([MODEL.air_level] * 2, rel=0.01)
    # the edges get fewer photons (inverse square, obliquity): air calibration corrects that
    air = physics.expected_air() / physics.pixel_gain
    assert air[0, 0] < 0.9 * air[0, centre]
    assert back.mean() > physics.pixel_dark[2].mean() + 1000  # the belt scatters back


# ---------------------------------------------------------------------------------------------
# noise


def test_air_noise_is_compound_poisson(physics):
    rng = np.random.default_rng(11)
    lines = 2000
    low, high, _ = physics.air_lines(lines, rng)
    energies, photons = spectrum.tube_spectrum(MODEL)
    weights = spectrum.detector_weights(MODEL)
    y = np.array(MODEL.pixel_y())
    distance = np.hypot(y, MODEL.source_to_detector)
    fluence = MODEL.tube_current_ma * MODEL.line_period * (MODEL.detector_pitch * 100) ** 2 * (
        MODEL.source_to_detector / distance) / distance**2  # per (photons / mAs cm^2 at 1 m)
    background, _ = _background(np.arange(MODEL.pixels))
    for channel, data, w in ((0, low, weights.low), (1, high, weights.high)):
        ratios = []
        for pixel in range(0, MODEL.pixels, 2):
            n = photons * fluence[pixel] * np.exp(-background[pixel])
            first, second = np.sum(n * w), np.sum(n * w * energies)  # keV, keV^2
            signal = data[:, pixel].astype(float)
            mean = signal.mean() - physics.pixel_dark[channel, pixel]
            predicted = mean**2 * second / first**2 + MODEL.read_noise**2 + 1.0 / 12.0
            ratios.append(signal.var(ddof=1) / predicted)
            assert signal.var() > 100 * MODEL.read_noise**2  # not electronics noise
        ratios = np.array(ratios)
        assert ratios.mean() == pytest.approx(1.0, abs=0.02)
        assert np.all(np.abs(ratios - 1.0) < 0.25)  # 2000 lines: sd 3 % per pixel


def test_dark_lines_and_drift(physics):
    rng = np.random.default_rng(2)
    dark = physics.dark_lines(3000, rng)
    for channel in range(3):
        data = dark[channel].astype(float)
        np.testing.assert_allclose(data.mean(0), physics.pixel_dark[channel], atol=0.3)
        assert data.std(0).mean() == pytest.approx(math.sqrt(MODEL.read_noise**2 + 1 / 12),
                                                   rel=0.05)
    assert np.std(physics.pixel_dark[0]) > 0.05 * MODEL.dark_offset  # fixed pattern
    air = physics.expected_air()
    try:
        physics.set_drift(tube_output=0.9, dark_shift=40.0)
        np.testing.assert_allclose(physics.expected_air(), 0.9 * air, rtol=1e-9)
        shifted = physics.dark_lines(500, rng)[0].astype(float).mean(0)
        np.testing.assert_allclose(shifted, physics.pixel_dark[0] + 40.0, atol=0.6)
        drifted = physics.air_lines(200, rng)[0].astype(float).mean(0) - physics.pixel_dark[0]
        np.testing.assert_allclose(drifted, 0.9 * air[0] + 40.0, rtol=0.01)
    finally:
        physics.set_drift()
    with pytest.raises(ValueError):
        physics.set_drift(tube_output=0.0)


# ---------------------------------------------------------------------------------------------
# backscatter and dual energy


def test_backscatter_grows_and_saturates_with_thickness(physics):
    signal = [_measure(physics, [('water', t)])[2] for t in (0.01, 0.02, 0.05, 0.1, 0.2, 0.4)]
    assert np.all(np.diff(signal) > 0)
    assert signal[3] == pytest.approx(MODEL.backscatter_level, rel=0.03)  # the scale
    assert signal[5] - signal[4] < 0.05 * (signal[1] - signal[0])  # saturated
    belt = physics.expected_air()[2, PIXEL] / physics.pixel_gain[2, PIXEL]
    assert belt < signal[0]
    # low Z scatters more than high Z of the same thickness
    assert _measure(physics, [('polyethylene', 0.05)])[2] > 2 * _measure(
        physics, [('steel', 0.05)])[2]


def test_steel_in_front_hides_backscatter(physics):
    water = _measure(physics, [('', 0.002), ('water', 0.1)])[2]
    behind_steel = _measure(physics, [('steel', 0.002), ('water', 0.1)])[2]
    steel_behind = _measure(physics, [('', 0.002), ('water', 0.1), ('steel', 0.002)])[2]
    assert behind_steel < 0.5 * water
    assert steel_behind == pytest.approx(water, rel=0.05)  # what is behind hardly matters
    # transmission does not care about the order
    a = _measure(physics, [('steel', 0.002), ('water', 0.1)])[:2]
    b = _measure(physics, [('', 0.002), ('water', 0.1), ('steel', 0.002)])[:2]
    np.testing.assert_allclose(a, b, rtol=1e-9)


def test_low_high_ratio_separates_organic_from_metal(physics):
    def ratio(material, thickness):
        low, high, _ = _measure(physics, [(material, thickness)])
        return math.log(low) / math.log(high)
    organic = [ratio(m, t) for m, t in (('water', 0.1), ('polyethylene', 0.12), ('sugar', 0.05),
                                        ('heroin', 0.08), ('clothes', 0.3))]
    metal = [ratio(m, t) for m, t in (('aluminium', 0.02), ('steel', 0.003), ('copper', 0.002),
                                      ('brass', 0.003))]
    assert max(organic) < min(metal) - 0.15


# ---------------------------------------------------------------------------------------------
# rendering


def test_render_and_truth_boxes(physics):
    block = XrayObject('block', 'steel', 'box', (0.1, 0.2, 0.05), (0.04, 0.06, 0.02))
    powder = XrayObject('bag', 'cocaine_hcl', 'box', (0.3, 0.08, 0.1), (0.08, 0.1, 0.05),
                        density=0.5, threat='powder', contraband=True)
    scene = ParcelScene('TEST00004', (0.4, 0.3, 0.3), (block, powder), belt_y=-0.05)
    rng = np.random.default_rng(4)
    low, high, back = physics.render(scene, rng, lead=10, trail=5)
    lines = 10 + 200 + 5
    assert physics.scene_lines(scene, lead=10, trail=5) == lines
    for array in (low, high, back):
        assert array.shape == (lines, MODEL.pixels) and array.dtype == np.uint16
    again = physics.render(scene, np.random.default_rng(4), lead=10, trail=5)
    assert all(np.array_equal(a, b) for a, b in zip((low, high, back), again, strict=True))
    boxes = {box.name: box for box in physics.truth_boxes(scene, lead=10)}
    assert set(boxes) == {'block', 'bag'}
    assert boxes['bag'].threat == 'powder' and boxes['bag'].contraband
    assert boxes['block'].category == 'metal'
    # the parcel's leading face (x = 0.4) comes first: the bag (x ~ 0.3) before the block
    assert boxes['bag'].first_line < boxes['block'].first_line
    # the steel block is where the image is darkest
    expected = physics.expected(scene, lead=10, trail=5)
    transmission = expected[0] / physics.expected_air()[0]
    dark = np.argwhere(transmission < 0.05)
    box = boxes['block']
    assert dark[:, 0].min() >= box.first_line and dark[:, 0].max() <= box.last_line
    assert dark[:, 1].min() >= box.first_pixel and dark[:, 1].max() <= box.last_pixel
    assert dark[:, 0].max() - dark[:, 0].min() >= box.last_line - box.first_line - 2
    assert dark[:, 1].max() - dark[:, 1].min() >= box.last_pixel - box.first_pixel - 2
    # air lines before the parcel read the air level
    air_mean = low[:10].astype(float).mean(0) - physics.pixel_dark[0]
    np.testing.assert_allclose(air_mean, physics.expected_air()[0], rtol=0.01)


def test_render_speed(physics):
    rng = np.random.default_rng(8)
    scene = random_scene(rng, threats=('powder', 'weapon'), size=(0.4, 0.3, 0.3), clutter=0.5)
    physics.render(scene, rng)
    start = time.perf_counter()
    low, _, _ = physics.render(scene, rng, lead=0, trail=0)
    elapsed = time.perf_counter() - start
    print(f'render of {len(scene.objects)} objects, {low.shape} lines x pixels: '
          f'{elapsed:.3f} s')
    assert low.shape == (200, MODEL.pixels)
    assert elapsed < 3.0  # ~0.3-0.5 s on one free core; generous for a shared machine


def test_physics_bad_input(physics):
    with pytest.raises(ValueError):
        XrayPhysics('model', 1)
    with pytest.raises(ValueError):
        XrayPhysics(MODEL, -1)
    wide = ParcelScene('TEST00005', (0.4, 0.6, 0.3), (), belt_y=0.1)
    with pytest.raises(ValueError, match='tunnel'):
        physics.render(wide, np.random.default_rng(0))
    scene = ParcelScene('TEST00006', (0.4, 0.3, 0.3), ())
    with pytest.raises(ValueError):
        physics.render(scene, np.random.default_rng(0), lead=-1)
    with pytest.raises(ValueError):
        physics.air_lines(2.5, np.random.default_rng(0))
