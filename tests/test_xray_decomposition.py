"""Dual-energy decomposition: Zeff of materials left out of the calibration, flags, the file."""

import json
import pathlib

import numpy as np
import pytest

from customs_lab.simulation import xray_phantoms
from customs_lab.simulation.parcel_scene import ParcelScene, XrayObject
from customs_lab.simulation.xray_physics import XrayPhysics
from customs_lab.xray import decomposition, materials
from customs_lab.xray.decomposition import (
    AIR,
    INVALID,
    METAL,
    OK,
    OPAQUE,
    ORGANIC,
    DualEnergyCalibration,
    ReferenceWedge,
)
from customs_lab.xray.materials import Material, mixture_formula
from customs_lab.xray.scanner_model import ScannerModel

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHIPPED = ROOT / 'config' / 'xray' / 'CL-XR-2E_dual_energy.json'
MODEL = ScannerModel()
# materials that are not among the calibration's references (nor mixtures of only them)
HELD_OUT = {
    'nylon': Material('nylon', 'C6H11NO', 1.14, 'organic'),
    'pvc': Material('pvc', 'C2H3Cl', 1.38, 'mixed'),
    'salt': Material('salt', 'NaCl', 2.16, 'inorganic'),
    'al_2024': Material('al_2024', mixture_formula({'Al': 0.935, 'Cu': 0.044, 'Mg': 0.015,
                                                    'Mn': 0.006}), 2.78, 'metal'),
    'stainless_304': Material('stainless_304', mixture_formula(
        {'Fe': 0.70, 'Cr': 0.19, 'Ni': 0.09, 'Mn': 0.02}), 7.9, 'metal'),
}
TARGETS = (0.3, 1.0, 3.0)  # A_high of the slabs: thin, medium, thick
REGION_TOLERANCE = 0.05  # relative error of a region's Zeff (the benchmark's max is 4.3 %)
PIXEL_TOLERANCE = 0.06  # relative error of the median of the per-pixel Zeff


@pytest.fixture(scope='module')
def calibration():
    return DualEnergyCalibration.load(SHIPPED)


@pytest.fixture(scope='module')
def physics():
    return XrayPhysics(MODEL, serial_seed=23)  # not the unit the phantoms were scanned with


def _slabs(physics, material, targets):
    grid = np.geomspace(1e-4, 300.0, 1500)
    attenuation = xray_phantoms.high_attenuation(physics, material, grid)
    masses = np.exp(np.interp(np.log(targets), np.log(attenuation), np.log(grid)))
    return xray_phantoms.wedge_scene(material, masses)


def test_shipped_calibration_covers_organics_to_zinc(calibration):
    assert calibration.model == MODEL.model
    assert calibration.zeff_range[0] < 5.5 and calibration.zeff_range[1] >= 29.0
    names = {ref.name for ref in calibration.references}
    assert not names & set(HELD_OUT)
    assert 4.0 <= calibration.max_high_attenuation <= 6.0


@pytest.mark.parametrize('name', sorted(HELD_OUT))
def test_zeff_of_held_out_materials(calibration, physics, name):
    material = HELD_OUT[name]
    truth = materials.effective_z(material.formula)
    scene = _slabs(physics, material, TARGETS)
    scan = xray_phantoms.simulated_scan(physics, scene, np.random.default_rng(len(name)))
    regions = xray_phantoms.step_regions(MODEL, scene)
    calibrated = scan.calibrated()
    result = calibration.decompose(calibrated['low'], calibrated['high'])
    assert len(regions) == len(TARGETS)
    for (lines, pixels), target in zip(regions, TARGETS, strict=True):
        status = result.status[lines, pixels]
        assert np.all(status == OK)
        a_high = result.a_high[lines, pixels].mean()
        assert a_high == pytest.approx(target, rel=0.1)
        region = calibration.zeff_from_attenuation(result.a_low[lines, pixels].mean(), a_high)
        assert abs(region - truth) / truth < REGION_TOLERANCE, (name, target, region, truth)
        median = np.median(result.zeff[lines, pixels])
        assert abs(median - truth) / truth < PIXEL_TOLERANCE, (name, target, median, truth)
        # and the class of the display
        expected = decomposition.classify(np.array([truth]))[0]
        share = np.mean(result.classes[lines, pixels] == expected)
        assert share > (0.6 if abs(truth - 10.0) > 1.0 and abs(truth - 18.0) > 1.0 else 0.3)


def test_mass_thickness_of_slabs(calibration, physics):
    for material in (materials.MATERIALS['water'], HELD_OUT['al_2024'], HELD_OUT['nylon']):
        scene = _slabs(physics, material, (0.5, 2.0))
        scan = xray_phantoms.simulated_scan(physics, scene, np.random.default_rng(3))
        calibrated = scan.calibrated()
        result = calibration.decompose(calibrated['low'], calibrated['high'])
        for item, (lines, pixels) in zip(scene.objects, xray_phantoms.step_regions(MODEL, scene),
                                         strict=True):
            truth = item.size[2] * 100.0 * item.density  # g/cm^2
            estimate = result.mass_thickness[lines, pixels].mean()
            assert estimate == pytest.approx(truth, rel=0.05), material.name


def test_air_and_opaque_pixels_are_flagged(calibration, physics):
    scene = ParcelScene('FLAGS0001', (0.2, 0.3, 0.05), (
        XrayObject('lead', 'lead', 'box', (0.1, 0.15, 0.015), (0.06, 0.1, 0.02)),),
        box_density=1e-6)
    scan = xray_phantoms.simulated_scan(physics, scene, np.random.default_rng(9))
    calibrated = scan.calibrated()
    result = calibration.decompose(calibrated['low'], calibrated['high'])
    assert np.all(result.status[:10] == AIR)  # lead lines: belt only
    assert np.all(np.isnan(result.zeff[:10]))
    middle = result.status.shape[0] // 2
    centre = MODEL.pixels // 2
    assert np.all(result.status[middle - 3:middle + 3, centre - 5:centre + 5] == OPAQUE)
    assert np.all(np.isnan(result.zeff[result.status != OK]))
    image = calibration.colour_image(calibrated['low'], calibrated['high'])
    assert image.shape == calibrated['low'].shape + (3,) and image.dtype == np.uint8
    assert np.all(image[middle, centre] == 0)  # impenetrable: black
    assert np.all(image[2, centre] > 240)  # air: white


def test_garbage_pixels_do_not_crash(calibration):
    t_low = np.array([[np.nan, 0.0, -1.0, np.inf, 1.0, 1.3, 1e-6, 0.5, 0.9]])
    t_high = np.array([[0.5, 0.5, 0.5, 0.5, 1.0, 1.2, 1e-6, 0.6, 0.999]])
    result = calibration.decompose(t_low, t_high)
    assert result.status[0, :4].tolist() == [INVALID] * 4
    assert result.status[0, 4] == AIR and result.status[0, 5] == AIR
    assert result.status[0, 6] == OPAQUE
    assert result.status[0, 7] == OK and np.isfinite(result.zeff[0, 7])
    assert np.all(np.isnan(result.zeff[0, :7]))
    assert np.all(np.isfinite(result.mass_thickness))
    smoothed = calibration.decompose(t_low, t_high, smoothing=1.0)
    assert smoothed.status[0, :4].tolist() == [INVALID] * 4
    assert np.all(np.isfinite(smoothed.a_high[0, 4:]))
    empty = calibration.decompose(np.zeros((0, 5)), np.zeros((0, 5)))
    assert empty.zeff.shape == (0, 5)
    assert calibration.colour_image(t_low, t_high).shape == (1, 9, 3)
    with pytest.raises(ValueError):
        calibration.decompose(np.ones((2, 3)), np.ones((3, 2)))


def test_organic_is_orange_and_metal_blue(calibration):
    a_high = np.array([1.0, 1.0])
    # a ratio on the water line and one on the iron line at A_high = 1
    water = next(r for r in calibration.references if r.name == 'water')
    iron = next(r for r in calibration.references if r.name == 'iron')
    ratios = [np.interp(0.0, np.log(r.high), r.ratio) for r in (water, iron)]
    t_low = np.exp(-a_high * ratios)
    result = calibration.decompose(t_low[None, :], np.exp(-a_high)[None, :])
    assert result.classes[0].tolist() == [ORGANIC, METAL]
    image = decomposition.colour_image(result)
    red, green, blue = image[0, 0].astype(int)
    assert red > green > blue  # orange
    red, green, blue = image[0, 1].astype(int)
    assert blue > red and blue > green  # blue


def test_save_load_round_trip(calibration, tmp_path):
    path = tmp_path / 'cal.json'
    calibration.save(path)
    again = DualEnergyCalibration.load(path)
    rng = np.random.default_rng(1)
    t_high = rng.uniform(0.01, 1.0, (20, 30))
    t_low = t_high ** rng.uniform(1.1, 3.5, (20, 30))
    np.testing.assert_allclose(again.zeff(t_low, t_high), calibration.zeff(t_low, t_high),
                               rtol=1e-4, equal_nan=True)
    assert again.to_dict() == calibration.to_dict()


def _bad_documents(document):
    bad = []
    for key, value in (('format', 'something.else'), ('version', 2), ('references', {}),
                       ('air_attenuation', -1.0), ('max_high_attenuation', float('nan')),
                       ('kvp', 'high')):
        changed = json.loads(json.dumps(document))
        changed[key] = value
        bad.append(changed)
    missing = json.loads(json.dumps(document))
    del missing['references']
    bad.append(missing)
    extra = json.loads(json.dumps(document))
    extra['colour'] = 'red'
    bad.append(extra)
    few = json.loads(json.dumps(document))
    few['references'] = few['references'][:2]
    bad.append(few)
    swapped = json.loads(json.dumps(document))  # water labelled as iron and the other way
    names = [r['name'] for r in swapped['references']]
    water, iron = names.index('water'), names.index('iron')
    swapped['references'][water]['zeff'], swapped['references'][iron]['zeff'] = 26.0, 7.42
    bad.append(swapped)
    unordered = json.loads(json.dumps(document))
    steps = unordered['references'][0]['steps']
    steps[1], steps[2] = steps[2], steps[1]
    bad.append(unordered)
    not_number = json.loads(json.dumps(document))
    not_number['references'][3]['steps'][0]['low'] = None
    bad.append(not_number)
    return bad


def test_bad_files_are_refused(calibration, tmp_path):
    document = calibration.to_dict()
    for n, bad in enumerate(_bad_documents(document)):
        path = tmp_path / f'bad{n}.json'
        path.write_text(json.dumps(bad))
        with pytest.raises(ValueError):
            DualEnergyCalibration.load(path)
    path = tmp_path / 'garbage.json'
    path.write_text('{"format": "customs_lab.xray.dual_energy_calibration", ')
    with pytest.raises(ValueError):
        DualEnergyCalibration.load(path)
    path.write_bytes(b'\xff\xfe\x00garbage')
    with pytest.raises(ValueError):
        DualEnergyCalibration.load(path)
    path.write_text('[1, 2, 3]')
    with pytest.raises(ValueError):
        DualEnergyCalibration.load(path)


def test_fit_refuses_mislabelled_wedges(calibration):
    refs = list(calibration.references)
    refit = DualEnergyCalibration.fit(refs, model='x')
    assert refit.max_high_attenuation == pytest.approx(calibration.max_high_attenuation)
    water = next(r for r in refs if r.name == 'water')
    fake = ReferenceWedge('not_iron', water.formula, 26.5, 1.0, water.mass_thickness,
                          water.low, water.high)
    with pytest.raises(ValueError):
        DualEnergyCalibration.fit([r for r in refs if r.name != 'iron'] + [fake])
    with pytest.raises(ValueError):
        DualEnergyCalibration.fit(refs[:2])
    with pytest.raises(ValueError):
        ReferenceWedge('w', 'H2O', 7.4, 1.0, (1.0, 2.0), (0.1, 0.2), (0.1, 0.2))


def test_phantom_calibration_from_three_wedges(physics):
    """The generator's path on a small set: three wedges fit and order by Zeff."""
    calibration = xray_phantoms.calibrate(physics, np.random.default_rng(2),
                                          names=('polyethylene', 'aluminium', 'iron'))
    assert [r.name for r in calibration.references] == ['polyethylene', 'aluminium', 'iron']
    # water lies between polyethylene and aluminium
    t_high = np.exp(-np.array([[1.0]]))
    t_low = np.exp(-np.array([[1.0 * 1.27]]))
    assert 5.5 < calibration.zeff(t_low, t_high)[0, 0] < 13.0
