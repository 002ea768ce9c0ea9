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
    # Cs-137 (5 %) or Co-60 (3 %): P(at least one) = 1 - 0.95 * 0.97
    p = 1 - 0.95 * 0.97
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
    # every device frame hangs off the fixed frame, so the TF display can place it
    frames = static_transforms(load_site(ROOT / 'config' / 'site.yaml'))
    children = {child for _, child, _, _ in frames}
    assert all(parent == 'map' or parent in children for parent, _, _, _ in frames)
