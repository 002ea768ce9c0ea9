"""Scenario files, the traffic they generate, the site file and the site map."""

import pathlib

import numpy as np
import pytest

from customs_lab.common.subjects import SubjectKind
from customs_lab.simulation.scenario import Scenario, generate_traffic
from customs_lab.site.layout import load_map, load_site, read_pgm, write_pgm

ROOT = pathlib.Path(__file__).resolve().parents[1]
SCENARIOS = sorted((ROOT / 'config' / 'scenarios').glob('*.yaml'))


@pytest.mark.parametrize('path', SCENARIOS, ids=lambda p: p.stem)
def test_every_scenario_loads_and_generates_valid_subjects(path):
    scenario = Scenario.load(path)
    traffic = generate_traffic(scenario)
    spec = scenario.spec
    expected = sum(
        int(spec.get(k, {}).get('count', 0)) for k in ('containers', 'parcels', 'passengers')
    )
    assert len(traffic) == expected
    assert len({s.subject.key for s in traffic}) == expected  # ids are unique
    arrivals = [s.arrival for s in traffic]
    assert arrivals == sorted(arrivals) and 0 <= arrivals[0] and arrivals[-1] <= scenario.duration
    for sim in traffic:
        assert sim.subject.validate() == (True, ''), sim.subject
        assert sim.filed_at <= sim.arrival
    site = load_site(ROOT / 'config' / 'site.yaml')
    assert {s.device for s in traffic if s.device} <= set(site.portals)


def test_traffic_is_reproducible_from_the_seed():
    scenario = Scenario.load(ROOT / 'config' / 'scenarios' / 'default.yaml')
    assert generate_traffic(scenario) == generate_traffic(scenario)


def test_contraband_rates_follow_the_scenario():
    scenario = Scenario.load(ROOT / 'config' / 'scenarios' / 'default.yaml')
    scenario.spec['containers']['count'] = 4000
    traffic = [s for s in generate_traffic(scenario) if s.subject.kind == SubjectKind.CONTAINER]
    sources = sum(any(i.category == 'radioactive_source' for i in s.truth) for s in traffic)
    # Cs-137 (5 %), Co-60 (3 %) or Am-Be (0.5 %): P(at least one) = 1 - 0.95 * 0.97 * 0.995
    p = 1 - 0.95 * 0.97 * 0.995
    assert abs(sources / len(traffic) - p) < 4 * np.sqrt(p * (1 - p) / len(traffic))
    norm = [s for s in traffic if any(i.category == 'norm_cargo' for i in s.truth)]
    assert all(not s.contraband or any(i.contraband for i in s.truth) for s in norm)
    assert all(
        i.activity > 0 for s in traffic for i in s.truth if i.category == 'radioactive_source'
    )


def test_bad_scenario_files_are_refused_with_the_file_name(tmp_path):
    bad = tmp_path / 'bad.yaml'
    bad.write_text('name: x\nduration: 10\n')  # no seed
    with pytest.raises(ValueError, match='bad.yaml'):
        Scenario.load(bad)
    bad.write_text('seed: 1\nduration: -5\n')
    with pytest.raises(ValueError, match='duration'):
        Scenario.load(bad)


def test_site_file_and_map():
    site = load_site(ROOT / 'config' / 'site.yaml')
    portal = site.portals['portal_lane_1']
    assert len(portal.panels) == 4 and portal.subject_kind == 'container'
    grid = load_map(ROOT / site.map_file)
    assert grid.resolution == 0.25 and grid.data.shape == (280, 400)
    assert set(np.unique(grid.data)) <= {-1, 0, 100}
    # the perimeter fence is occupied, the middle of the truck lane is free
    assert grid.data[0, 100] == 100
    row, column = int(30.0 / grid.resolution), int(55.0 / grid.resolution)
    assert grid.data[row, column] == 0


def test_bad_site_file_names_the_device(tmp_path):
    bad = tmp_path / 'site.yaml'
    bad.write_text((ROOT / 'config' / 'site.yaml').read_text().replace('speed: 2.2', 'speed: -1'))
    with pytest.raises(ValueError, match='portal_lane_1'):
        load_site(bad)


def test_the_xray_scanner_sits_on_its_conveyor(tmp_path):
    site = load_site(ROOT / 'config' / 'site.yaml')
    scanner = site.xray_scanners['parcel_xray_1']
    assert scanner.conveyor == 'parcel_line_1' and scanner.subject_kind == 'parcel'
    assert scanner.model.belt_speed == site.portals['parcel_line_1'].speed
    assert scanner.model.pixels * scanner.model.belt_pitch >= scanner.model.tunnel_width * 0.95
    text = (ROOT / 'config' / 'site.yaml').read_text()
    for old, new, message in [
        ('belt_speed: 0.5 ', 'belt_speed: 0.7 ', 'differs from its conveyor'),
        ('conveyor: parcel_line_1', 'conveyor: nowhere', 'not a portal'),
        ('      kvp: 160.0', '      kvp: 900.0', 'kvp'),
        ('      pixels: 352', '      pixels: 100', 'covers'),
        ('      line_rate: 250.0', '      line_rat: 250.0', 'unknown keys'),
    ]:
        assert old in text, old
        bad = tmp_path / 'site.yaml'
        bad.write_text(text.replace(old, new))
        with pytest.raises(ValueError, match=message):
            load_site(bad)


def test_pgm_round_trip(tmp_path):
    pixels = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    write_pgm(tmp_path / 'a.pgm', pixels)
    assert np.array_equal(read_pgm(tmp_path / 'a.pgm'), pixels)


def test_rviz_view_matches_what_the_site_map_publishes():
    import yaml

    from customs_lab.site.site_map_node import static_transforms

    rviz = yaml.safe_load((ROOT / 'config' / 'rviz' / 'site.rviz').read_text())
    view = rviz['Visualization Manager']
    assert view['Global Options']['Fixed Frame'] == 'map'
    displays = {d['Class']: d for d in view['Displays']}
    assert displays['rviz_default_plugins/Map']['Topic']['Value'] == '/map'
    assert displays['rviz_default_plugins/Map']['Topic']['Durability Policy'] == 'Transient Local'
    # the X-ray inspection's annotated image, on the topic the site launch gives it
    image = displays['rviz_default_plugins/Image']['Topic']
    assert image['Value'] == '/xray/parcel_xray_1/image_annotated'
    assert image['Reliability Policy'] == 'Reliable'
    # every device frame hangs off the fixed frame, so the TF display can place it
    frames = static_transforms(load_site(ROOT / 'config' / 'site.yaml'))
    children = {child for _, child, _, _ in frames}
    assert all(parent == 'map' or parent in children for parent, _, _, _ in frames)
    # every detector of the container portal has its frame: panels, NaI logs, He-3 modules
    assert {'portal_lane_1/left_upper', 'portal_lane_1/nai_right',
            'portal_lane_1/he3_left'} <= children


# -- who hides contraband: the declaration-risk model ---------------------------------------


def _big(name='default', factor=40):
    import copy

    scenario = Scenario.load(ROOT / 'config' / 'scenarios' / f'{name}.yaml')
    spec = copy.deepcopy(scenario.spec)
    for kind in ('containers', 'parcels', 'passengers'):
        spec[kind]['count'] = int(spec[kind]['count']) * factor
    return Scenario(scenario.name, scenario.seed, scenario.duration, scenario.declaration_lead,
                    scenario.eta_error, spec)


@pytest.fixture(scope='module')
def big_day():
    """Forty days' worth of the default scenario's traffic in one draw (13,200 subjects)."""
    scenario = _big()
    return scenario, generate_traffic(scenario)


def test_each_contraband_entry_keeps_its_rate_from_the_scenario_file(big_day):
    scenario, traffic = big_day
    for kind in ('container', 'parcel', 'passenger'):
        subjects = [s for s in traffic if s.subject.kind.name.lower() == kind]
        for entry in scenario.spec['contraband'][kind]:
            label = entry.get('nuclide', entry.get('description'))
            found = sum(any(i.category == entry['category'] and label in i.description
                            for i in s.truth) for s in subjects)
            p, n = float(entry['probability']), len(subjects)
            assert abs(found / n - p) < 4 * np.sqrt(p * (1 - p) / n), (kind, label, found, n)


def test_parties_have_the_documented_id_formats(big_day):
    import re

    _, traffic = big_day
    patterns = {
        'container': (r'TRD[1-9]\d\d', r'CNE\d{5}'),
        'parcel': (r'EXP\d\d', r'P\d{12}'),  # express brokers; Korean personal customs codes
        'passenger': (r'', r''),
    }
    for sim in traffic:
        declarant, consignee = patterns[sim.subject.kind.name.lower()]
        assert re.fullmatch(declarant, sim.declarant_id), sim.declarant_id
        assert re.fullmatch(consignee, sim.consignee_id), sim.consignee_id
    # a trader files many declarations: parties repeat, with a heavy-tailed volume
    containers = [s.declarant_id for s in traffic if s.subject.kind == SubjectKind.CONTAINER]
    counts = sorted(np.unique(containers, return_counts=True)[1])
    assert len(counts) <= 150 and counts[-1] >= 5 * np.median(counts)


def test_contraband_depends_on_trader_origin_and_hs_chapter(big_day):
    from customs_lab.simulation.scenario import make_population

    scenario, traffic = big_day
    population = make_population(scenario)
    high = {p.id for kind in ('container', 'parcel')
            for group in (population.declarants[kind], population.consignees[kind])
            for p in group if p.propensity > 1.5}
    goods = [s for s in traffic if s.declared]
    risky = [s.contraband for s in goods if {s.declarant_id, s.consignee_id} & high]
    others = [s.contraband for s in goods if not {s.declarant_id, s.consignee_id} & high]
    # high-propensity parties (~3 nats) carry contraband several times as often
    assert len(risky) > 100 and np.mean(risky) > 4 * np.mean(others)
    narcotics = [('narcotics' in {i.category for i in s.truth}, s.origin_country == 'TH')
                 for s in traffic if s.subject.kind == SubjectKind.PASSENGER]
    from_th = np.mean([n for n, th in narcotics if th])
    elsewhere = np.mean([n for n, th in narcotics if not th])
    # risk.origin.narcotics: TH +1.5 nats, against a mix of CN, JP (0), US (+0.6), VN (+0.8):
    # expected ratio ~3
    assert from_th > 1.8 * elsewhere

    def narcotics_rate(chapters):
        return np.mean([any(i.category == 'narcotics' for i in s.truth) for s in goods
                        if s.subject.kind == SubjectKind.CONTAINER
                        and s.declared[0].hs_code[:2] in chapters])

    # risk.hs_chapter.narcotics: juice drums (20) +1.0 nats, against the container goods with no
    # offset (fertiliser, tiles, laptops, T-shirts, auto parts): expected ratio ~2.5
    assert narcotics_rate({'20'}) > 1.8 * narcotics_rate({'31', '69', '84', '61', '87'})


def test_contraband_declarations_are_misdeclared_and_hidden_mass_is_weighed(big_day):
    _, traffic = big_day
    goods = [s for s in traffic if s.declared]
    by_line = {}
    for sim in goods:
        line = sim.declared[0]
        by_line.setdefault(line.hs_code, []).append(np.log(line.value / line.net_mass))
    medians = {hs: np.median(v) for hs, v in by_line.items()}

    def undervalued(sim):
        line = sim.declared[0]
        return np.log(line.value / line.net_mass) - medians[line.hs_code] < np.log(0.45)

    smuggled = [undervalued(s) for s in goods if s.contraband]
    honest = [undervalued(s) for s in goods if not s.contraband]
    # undervalue_share 0.5 of contraband vs honest_undervalue_share 0.03 plus the honest spread
    assert np.mean(smuggled) > 0.3 and np.mean(honest) < 0.06
    for sim in goods:
        line, goods_mass = sim.declared[0], sim.truth[0].mass
        hidden = sum(i.mass for i in sim.truth if i.contraband)
        assert sim.gross_mass >= goods_mass + hidden - 0.01  # weighed: goods, hidden, packaging
        if not sim.contraband:
            assert line.net_mass == pytest.approx(goods_mass, abs=0.06)  # honest net mass
    understated = [s.declared[0].net_mass < 0.95 * s.truth[0].mass for s in goods if s.contraband]
    assert 0.2 < np.mean(understated) < 0.4  # net_mass_share 0.3


def test_population_is_drawn_from_the_seed_and_checked(tmp_path):
    from customs_lab.simulation.scenario import make_population

    scenario = Scenario.load(ROOT / 'config' / 'scenarios' / 'default.yaml')
    assert make_population(scenario) == make_population(scenario)
    text = (ROOT / 'config' / 'scenarios' / 'default.yaml').read_text()
    bad = tmp_path / 'bad.yaml'
    bad.write_text(text.replace('declarants: {count: 150', 'declarants: {count: 5000'))
    with pytest.raises(ValueError, match='parties.container.declarants'):
        Scenario.load(bad)
    bad.write_text(text.replace('probability: 0.05', 'probability: 1.5'))
    with pytest.raises(ValueError, match='probability'):
        Scenario.load(bad)


def test_smoke_scenario_keeps_its_character():
    traffic = generate_traffic(Scenario.load(ROOT / 'config' / 'scenarios' / 'smoke.yaml'))
    kinds = [s.subject.kind for s in traffic]
    assert [kinds.count(k) for k in SubjectKind if k] == [6, 12, 6]

    def has(kind, category):
        return any(s.subject.kind == kind and any(i.category == category for i in s.truth)
                   for s in traffic)

    assert has(SubjectKind.CONTAINER, 'radioactive_source')
    assert has(SubjectKind.PARCEL, 'radioactive_source')
    assert has(SubjectKind.CONTAINER, 'norm_cargo')  # K-40 fertiliser: the honest false alarm
    assert any(any(i.category == 'narcotics' for i in s.truth) for s in traffic)
    # plutonium behind lead, in a container without a gamma source: the neutron test's to catch
    hidden = [s for s in traffic if any(i.category == 'special_nuclear_material'
                                        for i in s.truth)]
    assert len(hidden) == 1 and hidden[0].subject.kind == SubjectKind.CONTAINER
    assert not any(i.category == 'radioactive_source' for i in hidden[0].truth)
    assert scenario_arrival_after_background(hidden[0])


def scenario_arrival_after_background(sim) -> bool:
    """Return True if a subject arrives after the neutron background is learned (radiation.yaml).

    The site starts with an empty lane at t = 0: the neutron background needs its
    neutron_background_min_live_time of empty lane first (twice that here, for the hold-offs of
    the subjects before it).
    """
    import yaml

    parameters = yaml.safe_load((ROOT / 'config' / 'radiation.yaml').read_text())
    needed = parameters['/**/rpm_alarm']['ros__parameters']['neutron_background_min_live_time']
    return sim.arrival > 2 * needed


# -- neutron emitters ------------------------------------------------------------------------


def test_neutron_emitters_carry_their_emission_rate():
    from customs_lab.radiation import neutron

    scenario = _big(factor=40)
    traffic = generate_traffic(scenario)
    items = [i for s in traffic for i in s.truth]
    by_kind = {}
    for item in items:
        by_kind.setdefault((item.category, item.nuclide), []).append(item)
    # Cf-252 sources: spontaneous fission, 0.116 n/s per Bq (3.09 % SF x nu-bar 3.757)
    for item in by_kind[('radioactive_source', 'Cf-252')]:
        assert item.neutron_rate == pytest.approx(
            neutron.neutron_emission_rate('Cf-252', activity_bq=item.activity))
        assert item.neutron_rate / item.activity == pytest.approx(0.116, rel=0.02)
    # Am-Be: 2.2e6 n/s per Ci of Am-241; plain Am-241 sources (no beryllium) almost none
    ambe = [i for i in by_kind[('radioactive_source', 'Am-241')] if '(Am-Be)' in i.description]
    plain = [i for i in by_kind[('radioactive_source', 'Am-241')] if i not in ambe]
    assert ambe and plain
    assert all(i.neutron_rate == pytest.approx(2.2e6 * i.activity / 3.7e10) for i in ambe)
    assert all(i.neutron_rate < 1e-2 for i in plain)
    # plutonium: ~60 n/s per g of weapons grade, its gamma rays those of Pu-239 (2.3 GBq/g x
    # 93.8 %) seen through a sphere of itself, then lead
    for item in [i for i in items if i.category == 'special_nuclear_material']:
        grams = item.mass * 1000.0
        assert item.neutron_rate / grams == pytest.approx(59.9, rel=0.02)
        assert item.nuclide == 'Pu-239'
        assert item.activity / grams == pytest.approx(0.938 * 2.296e9, rel=0.01)
        assert [s.material for s in item.shields] == ['Pu', 'Pb']
        radius = (3 * grams / 19.84 / (4 * np.pi)) ** (1 / 3) / 100.0
        assert item.shields[0].thickness == pytest.approx(2 * radius / 3)
        assert 0.02 <= item.shields[1].thickness <= 0.10
    assert all(i.neutron_rate == 0.0 for i in by_kind[('radioactive_source', 'Cs-137')])


@pytest.mark.parametrize(
    'old, new, message',
    [('material: weapons-grade Pu, form', 'material: plutonium-ish, form',
      'unknown neutron source'),
     ('form: metal,', 'form: nitrate,', "form must be 'metal' or 'oxide'"),
     ('form: metal, mass: [0.1, 2.0]', 'form: metal, mass: [0.0, 2.0]', 'mass must be a range'),
     ('neutron_source: Am-Be,', 'neutron_source: Am-Bee,', 'unknown neutron source')],
)
def test_bad_neutron_emitters_are_refused_at_load(tmp_path, old, new, message):
    text = (ROOT / 'config' / 'scenarios' / 'default.yaml').read_text()
    assert text.count(old) == 1
    bad = tmp_path / 'bad.yaml'
    bad.write_text(text.replace(old, new))
    with pytest.raises(ValueError, match=message) as error:
        Scenario.load(bad)
    assert 'bad.yaml' in str(error.value)


@pytest.mark.parametrize(
    'old, new, message',
    [('id: he3_left,', 'id: "he3:left",', 'neutron module id'),
     ('id: he3_right, center: [-0.40, -2.6', 'id: he3_left, center: [-0.40, -2.6',
      'must be unique'),
     ('normal: [0.0, -1.0, 0.0], width: 0.30', 'normal: [0.0, -2.0, 0.0], width: 0.30',
      'normal must be a unit'),
     ('tubes: 4,', 'tubes: 0,', 'tubes must be'),
     ('pressure_atm: 3.0', 'pressure_atm: -3.0', 'pressure_atm must be a positive'),
     ('dead_time: 4.0e-6}', 'dead_time: -1.0}', 'dead_time must be'),
     ('cosmic_neutron_flux: 0.012            # n/cm^2/s, cosmic',
      'cosmic_neutron_flux: 0.0            # n/cm^2/s, cosmic', 'cosmic_neutron_flux')],
)
def test_bad_neutron_modules_name_the_device(tmp_path, old, new, message):
    text = (ROOT / 'config' / 'site.yaml').read_text()
    assert text.count(old) >= 1, old
    bad = tmp_path / 'site.yaml'
    bad.write_text(text.replace(old, new, 1))
    with pytest.raises(ValueError, match=message) as error:
        load_site(bad)
    assert 'portal_lane_1' in str(error.value)


def test_neutron_modules_are_optional_and_parsed_with_their_units():
    site = load_site(ROOT / 'config' / 'site.yaml')
    left, right = site.portals['portal_lane_1'].neutron_modules
    assert left.center == (-0.4, 2.6, 2.05) and right.normal == (0.0, 1.0, 0.0)
    assert (left.tubes, left.tube_diameter, left.pressure_atm, left.active_length) == (
        4, 0.0508, 3.0, 1.8)
    assert left.dead_time == 4e-6 and site.portals['portal_lane_1'].cosmic_neutron_flux == 0.012
    (parcel,) = site.portals['parcel_line_1'].neutron_modules
    assert (parcel.width, parcel.height, parcel.tubes) == (0.2, 0.5, 2)
    assert site.officer_posts  # the other sections are still read


def test_a_loaded_container_shadows_the_portal_from_part_of_its_background():
    """Baseline suppression: 5-30 % for loaded trucks (Lo Presti et al., NIM A 2006)."""
    import dataclasses

    from customs_lab.common import iso6346
    from customs_lab.common.subjects import Subject, SubjectKind
    from customs_lab.simulation.portal_lane import PortalLane
    from customs_lab.simulation.scenario import SimSubject, TrueItem

    spec = load_site(ROOT / 'config' / 'site.yaml').portals['portal_lane_1']

    def dip(material, density):
        sim = SimSubject(
            subject=Subject(SubjectKind.CONTAINER, iso6346.make_number('CSQ', 1, 'U')),
            arrival=0.0, device='portal_lane_1', declaration_id='D', declarant_id='TRD100',
            origin_country='CN', declared=(), gross_mass=1.0, declared_arrival=0.0,
            filed_at=0.0, size=(12.03, 2.35, 2.39), cargo_material=material,
            cargo_density=density, truth=(TrueItem('goods', 'x', False),))
        lane = PortalLane(dataclasses.replace(spec), np.random.default_rng(0))
        lane.enqueue(sim)
        totals = []
        for k in range(1, 400):
            frame = lane.step(k * spec.frame_period)
            if frame.occupied:
                totals.append(frame.counts.sum())
        background = sum(p.background for p in spec.panels) * spec.frame_period
        return 1.0 - np.median(totals) / background

    light, dense = dip('C6H10O5', 0.05), dip('Fe', 1.2)
    assert 0.0 < light < dense
    assert 0.05 < dense < 0.30
