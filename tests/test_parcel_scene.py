"""Parcels' contents for the X-ray simulator: objects, masses, placement, determinism."""

import math
import pathlib

import numpy as np
import pytest

from customs_lab.common.subjects import Subject, SubjectKind
from customs_lab.simulation import parcel_scene as ps
from customs_lab.simulation.parcel_scene import ParcelScene, XrayObject
from customs_lab.simulation.scenario import (
    Scenario,
    Shield,
    SimSubject,
    TrueItem,
    generate_traffic,
)
from customs_lab.xray import materials

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _parcel(goods, hidden=(), packaging=0.3, size=(0.4, 0.3, 0.3)):
    """Return a parcel SimSubject with goods [(description, kg)] and contraband TrueItems."""
    truth = tuple(TrueItem('goods', d, False, mass=m) for d, m in goods) + tuple(hidden)
    gross = sum(m for _, m in goods) + sum(item.mass for item in hidden) + packaging
    return SimSubject(subject=Subject(SubjectKind.PARCEL, 'EE123456785KR'), arrival=0.0,
                      device='parcel_line_1', declaration_id='EXP-0001-P00001',
                      declarant_id='EXP01', origin_country='TH', declared=(), gross_mass=gross,
                      declared_arrival=0.0, filed_at=0.0, size=size, cargo_material='C6H10O5',
                      cargo_density=0.2, truth=truth, consignee_id='P123456789012')


def _groups(scene, prefix):
    return {o.group for o in scene.objects if o.group.startswith(prefix)}


def _contraband_mass(scene):
    return sum(o.mass for o in scene.objects if o.contraband)


def _goods_mass(scene):
    return sum(o.mass for o in scene.objects if not o.contraband)


def test_object_geometry_and_mass():
    box = XrayObject('b', 'water', 'box', (0.1, 0.1, 0.1), (0.1, 0.2, 0.05))
    assert box.volume == pytest.approx(0.001)
    assert box.mass == pytest.approx(1.0)  # a litre of water
    cylinder = XrayObject('c', 'steel', 'cylinder', (0.1, 0.1, 0.1), (0.02, 0.02, 0.1), 'z')
    assert cylinder.volume == pytest.approx(math.pi * 0.01**2 * 0.1)
    assert cylinder.mass == pytest.approx(cylinder.volume * 7870.0)
    ellipsoid = XrayObject('e', 'sugar', 'ellipsoid', (0.1, 0.1, 0.1), (0.1, 0.1, 0.1),
                           density=0.8)
    assert ellipsoid.mass == pytest.approx(4 / 3 * math.pi * 0.05**3 * 800.0)
    assert ellipsoid.category == 'organic' and ellipsoid.group == 'e'
    assert ellipsoid.substance.density == 0.8
    np.testing.assert_allclose(box.lo, (0.05, 0.0, 0.075))
    np.testing.assert_allclose(box.hi, (0.15, 0.2, 0.125))


@pytest.mark.parametrize('kwargs,match', [
    (dict(material='kryptonite'), 'unknown material'),
    (dict(shape='torus'), 'shape'),
    (dict(shape='cylinder'), 'axis'),
    (dict(axis='z'), 'only cylinders'),
    (dict(size=(0.1, 0.0, 0.1)), 'size'),
    (dict(centre=(0.1, 0.1)), 'centre'),
    (dict(threat='drugs'), 'threat'),
    (dict(density=-1.0), 'density'),
    (dict(category='plastic'), 'category'),
])
def test_object_bad_input(kwargs, match):
    fields = dict(name='x', material='water', shape='box', centre=(0.1, 0.1, 0.1),
                  size=(0.05, 0.05, 0.05))
    fields.update(kwargs)
    with pytest.raises(ValueError, match=match):
        XrayObject(**fields)


def test_scene_rejects_interpenetration_and_escape():
    a = XrayObject('a', 'water', 'box', (0.1, 0.1, 0.1), (0.1, 0.1, 0.1))
    b = XrayObject('b', 'steel', 'ellipsoid', (0.18, 0.1, 0.1), (0.1, 0.1, 0.1))
    with pytest.raises(ValueError, match='interpenetrate'):
        ParcelScene('TEST00001', (0.4, 0.3, 0.3), (a, b))
    touching = XrayObject('c', 'steel', 'box', (0.2, 0.1, 0.1), (0.1, 0.1, 0.1))
    ParcelScene('TEST00001', (0.4, 0.3, 0.3), (a, touching))  # sharing a face is fine
    outside = XrayObject('d', 'water', 'box', (0.38, 0.1, 0.1), (0.1, 0.1, 0.1))
    with pytest.raises(ValueError, match='inside'):
        ParcelScene('TEST00001', (0.4, 0.3, 0.3), (outside,))
    with pytest.raises(ValueError):
        ParcelScene('TEST00001', (0.4, 0.3, -0.3), ())
    with pytest.raises(ValueError):
        ParcelScene('TEST00001', (0.4, 0.3, 0.3), (), box_material='marble')


def test_box_walls():
    scene = ParcelScene('TEST00001', (0.4, 0.3, 0.2), (), box_density=0.15)
    walls = scene.walls()
    assert len(walls) == 6 and not ps.interpenetrating(walls)
    volume = 0.4 * 0.3 * 0.2 - (0.4 - 0.008) * (0.3 - 0.008) * (0.2 - 0.008)
    assert scene.box_mass == pytest.approx(volume * 150.0)
    assert scene.all_objects()[:6] == walls


@pytest.mark.parametrize('seed', range(6))
def test_random_scenes_are_valid_and_deterministic(seed):
    clutter = seed / 5.0
    threats = ps.THREAT_CLASSES[:seed % 4 + 1]
    scene = ps.random_scene(np.random.default_rng(seed), threats=threats, clutter=clutter)
    again = ps.random_scene(np.random.default_rng(seed), threats=threats, clutter=clutter)
    assert scene == again
    other = ps.random_scene(np.random.default_rng(seed + 100), threats=threats, clutter=clutter)
    assert scene != other
    assert not ps.interpenetrating(scene.objects)
    assert {o.threat for o in scene.objects if o.threat} == set(threats)
    for item in scene.objects:
        assert np.all(item.lo >= scene.wall - 1e-9)
        assert np.all(item.hi <= np.subtract(scene.size, scene.wall) + 1e-9)
        assert item.contraband == bool(item.threat)


def test_goods_templates_match_mass():
    rng = np.random.default_rng(3)
    for kind in ps.GOODS_KINDS + ('garden furniture',):
        for mass in (0.6, 1.2, 3.0):
            kits = ps.goods_kits(kind, mass, rng)
            total = sum(o.mass for kit in kits for o in kit)
            if kind in ('electronics',) and mass < 1.5:
                continue  # a laptop alone outweighs a small declaration
            assert total == pytest.approx(mass, rel=0.15), (kind, mass, total)
    assert ps.goods_kind('Mobile phone (smartphone)') == 'mobile phone'
    assert ps.goods_kind('garden furniture') == 'mixed'


def test_parcel_scene_of_declared_goods_and_narcotics():
    hidden = (TrueItem('narcotics', 'methamphetamine powder, 0.8 kg', True, mass=0.8,
                       position=(0.2, 0.15, 0.1)),)
    subject = _parcel([('clothing', 1.2)], hidden, packaging=0.35)
    scene = ps.parcel_scene(subject, np.random.default_rng(7))
    assert scene.waybill == 'EE123456785KR' and scene.size == (0.4, 0.3, 0.3)
    assert _contraband_mass(scene) == pytest.approx(0.8, rel=1e-6)
    assert _goods_mass(scene) == pytest.approx(1.2, rel=0.15)
    assert scene.box_mass == pytest.approx(0.35, rel=0.02)
    bags = [o for o in scene.objects if o.contraband]
    assert {o.material for o in bags} == {'methamphetamine_hcl'}
    assert all(0.3 <= o.density <= 0.7 for o in bags)  # packed powder
    assert all(o.threat == 'powder' for o in bags)
    assert {o.material for o in scene.objects if not o.contraband} & {'clothes',
                                                                      'polyester_fabric'}
    assert not ps.interpenetrating(scene.objects)
    assert scene == ps.parcel_scene(subject, np.random.default_rng(7))


@pytest.mark.parametrize('description,material', [('cocaine hydrochloride bricks', 'cocaine_hcl'),
                                                  ('heroin', 'heroin'),
                                                  ('ketamine powder', 'white_powder')])
def test_narcotics_materials(description, material):
    hidden = (TrueItem('narcotics', description, True, mass=1.5),)
    scene = ps.parcel_scene(_parcel([('toys', 1.0)], hidden), np.random.default_rng(1))
    assert {o.material for o in scene.objects if o.contraband} == {material}
    assert _contraband_mass(scene) == pytest.approx(1.5, rel=1e-6)


@pytest.mark.parametrize('category,description,mass,tolerance,threat,metal', [
    ('weapon', 'kitchen knife', 0.2, 0.02, 'weapon', 'steel'),
    ('weapon', 'handgun', 0.8, 0.02, 'weapon', 'steel'),
    ('ammunition', '9 mm ammunition', 0.3, 0.013, 'ammunition', 'lead'),
    ('ammunition', '9 mm ammunition', 0.9, 0.013, 'ammunition', 'packed_cartridges'),
    ('undeclared_battery', '18650 Li-ion cells', 0.5, 0.047, 'battery', 'li_ion_cell'),
    ('undeclared_battery', 'Li-ion power bank', 0.3, 0.003, 'battery', 'li_ion_pouch'),
    ('explosive', 'TNT simulant', 1.0, 0.01, 'powder', 'tnt'),
])
def test_contraband_kits_are_mass_consistent(category, description, mass, tolerance, threat,
                                             metal):
    hidden = (TrueItem(category, description, True, mass=mass),)
    scene = ps.parcel_scene(_parcel([('cosmetics', 0.8)], hidden), np.random.default_rng(5))
    assert _contraband_mass(scene) == pytest.approx(mass, abs=tolerance)
    found = [o for o in scene.objects if o.contraband]
    assert {o.threat for o in found} == {threat}
    assert metal in {o.material for o in found}
    assert len({o.group for o in found}) == 1  # one item, one truth box


def test_radioactive_source_in_a_lead_pot():
    source = TrueItem('radioactive_source', 'Cs-137 source, 3.7e8 Bq, 2.0 cm Pb shielding', True,
                      nuclide='Cs-137', position=(0.3, 0.1, 0.2),
                      shields=(Shield('Pb', 11.35, 0.02),))
    scene = ps.parcel_scene(_parcel([('mobile phone', 0.6)], (source,)),
                            np.random.default_rng(2))
    parts = [o for o in scene.objects if o.contraband]
    assert {o.material for o in parts} == {'steel', 'lead'}
    assert all(o.threat == '' for o in parts)
    lead = [o for o in parts if o.material == 'lead']
    capsule = [o for o in parts if o.material == 'steel'][0]
    assert len(lead) == 6
    for axis in range(3):  # the capsule is enclosed by 2 cm of lead on every side
        assert min(o.lo[axis] for o in lead) == pytest.approx(capsule.lo[axis] - 0.02)
        assert max(o.hi[axis] for o in lead) == pytest.approx(capsule.hi[axis] + 0.02)
    bare = TrueItem('radioactive_source', 'Am-241 source', True, nuclide='Am-241')
    scene = ps.parcel_scene(_parcel([('toys', 1.0)], (bare,)), np.random.default_rng(2))
    assert [o.material for o in scene.objects if o.contraband] == ['steel']


def test_clutter_increases_overlap_in_projection():
    def overlap(scene):
        lo = np.array([o.lo[:2] for o in scene.objects])
        hi = np.array([o.hi[:2] for o in scene.objects])
        width = np.clip(np.minimum(hi[:, None], hi[None]) - np.maximum(lo[:, None], lo[None]),
                        0, None)
        area = width[..., 0] * width[..., 1]
        np.fill_diagonal(area, 0.0)
        return area.sum() / 2.0
    goods = [('mixed', 2.0)]
    spread = [overlap(ps.random_scene(np.random.default_rng(s), clutter=0.0, goods=goods,
                                      size=(0.5, 0.35, 0.25))) for s in range(8)]
    piled = [overlap(ps.random_scene(np.random.default_rng(s), clutter=1.0, goods=goods,
                                     size=(0.5, 0.35, 0.25))) for s in range(8)]
    assert np.mean(piled) > 1.3 * np.mean(spread)
    assert min(spread) > 0  # even a spread-out parcel has things overlapping


def test_contraband_is_hidden_under_goods():
    hidden = (TrueItem('narcotics', 'cocaine', True, mass=0.5),)
    scene = ps.parcel_scene(_parcel([('books', 3.0)], hidden), np.random.default_rng(4),
                            clutter=1.0)
    bag = [o for o in scene.objects if o.contraband][0]
    above = [o for o in scene.objects if not o.contraband and o.lo[2] >= bag.hi[2]
             and o.lo[0] < bag.hi[0] and bag.lo[0] < o.hi[0]
             and o.lo[1] < bag.hi[1] and bag.lo[1] < o.hi[1]]
    assert above  # something lies on top of the bag


def test_scene_bad_input():
    with pytest.raises(ValueError, match='clutter'):
        ps.random_scene(np.random.default_rng(0), clutter=1.5)
    with pytest.raises(ValueError, match='unknown threat'):
        ps.random_scene(np.random.default_rng(0), threats=('drone',))
    container = _parcel([('clothing', 1.0)])
    container = SimSubject(**{**container.__dict__,
                              'subject': Subject(SubjectKind.CONTAINER, 'CSQU3054383')})
    with pytest.raises(ValueError, match='parcel'):
        ps.parcel_scene(container, np.random.default_rng(0))
    too_much = (TrueItem('narcotics', 'cocaine', True, mass=30.0),)
    with pytest.raises(ValueError, match='does not fit'):
        ps.parcel_scene(_parcel([('clothing', 1.0)], too_much, size=(0.25, 0.2, 0.1)),
                        np.random.default_rng(0))
    with pytest.raises(ValueError):
        ps.goods_kits('clothing', -1.0, np.random.default_rng(0))
    unknown = (TrueItem('radioactive_source', 'Co-60', True, shields=(Shield('Xe', 3.0, 0.01),)),)
    with pytest.raises(ValueError, match='shield'):
        ps.parcel_scene(_parcel([('toys', 1.0)], unknown), np.random.default_rng(0))


def test_every_material_of_a_scene_is_in_the_table():
    for seed in range(4):
        scene = ps.random_scene(np.random.default_rng(seed), threats=('explosive',
                                                                      'radioactive_source'))
        for item in scene.all_objects():
            assert item.material in materials.MATERIALS


def test_scenes_of_a_scenario_day():
    scenario = Scenario.load(ROOT / 'config' / 'scenarios' / 'smoke.yaml')
    parcels = [s for s in generate_traffic(scenario) if s.subject.kind == SubjectKind.PARCEL]
    assert len(parcels) >= 5
    for n, subject in enumerate(parcels):
        scene = ps.parcel_scene(subject, np.random.default_rng(n))
        goods = sum(t.mass for t in subject.truth if t.category == 'goods')
        assert _goods_mass(scene) == pytest.approx(goods, rel=0.15)
        hidden = [t for t in subject.truth if t.contraband]
        assert any(o.contraband for o in scene.objects) == bool(hidden)
        assert scene.mass == pytest.approx(subject.gross_mass, rel=0.2)
        assert not ps.interpenetrating(scene.objects)
