"""The subject's shadow on a portal's background: geometry, fit, and the alarm that corrects it."""

import dataclasses
import math

import numpy as np
import pytest
from test_offline_site import ROOT, container, cs137, run

from customs_lab.radiation import shadow
from customs_lab.radiation.passage import Passage
from customs_lab.simulation import lane_spectra
from customs_lab.simulation.portal_lane import PortalLane
from customs_lab.site.layout import load_site

SPEC = load_site(ROOT / 'config' / 'site.yaml').portals['portal_lane_1']
GEOMETRY = shadow.LaneGeometry.from_spec(SPEC)


def test_the_face_covers_half_a_panels_view_when_it_fills_it_and_none_when_far():
    box = shadow.SubjectBox(200.0, 2.4, 200.0, floor=-100.0)  # a huge face close to the panel
    centres, normals = [(0.0, 2.6, 1.0), (0.0, -2.6, 1.0)], [-1.0, 1.0]
    phi = shadow.face_fractions(centres, normals, [-100.0, -400.0], box)
    assert phi[0] == pytest.approx([1.0, 1.0], abs=0.02)  # the whole lane-side half-space
    assert phi[1] == pytest.approx([0.0, 0.0], abs=1e-3)  # 200 m past the panels
    small = shadow.face_fractions(centres, normals, [-6.0], shadow.SubjectBox(12.0, 2.4, 2.6))
    assert small[0, 0] == pytest.approx(small[0, 1])  # the lane is symmetric
    assert 0.05 < small[0, 0] < 0.5


def test_the_fraction_is_recovered_with_its_stated_error():
    rng = np.random.default_rng(5)
    phi = np.tile(np.linspace(0.0, 0.4, 60)[:, None], (1, 4))
    background = np.full(phi.shape, 200.0)
    fits = [shadow.fit_fraction(rng.poisson(background * (1 - 0.3 * phi)), background, phi)
            for _ in range(200)]
    s, errors = np.array(fits).T
    assert np.mean(s) == pytest.approx(0.3, abs=0.01)
    assert np.std(s) == pytest.approx(np.mean(errors), rel=0.2)
    assert shadow.fit_fraction(background, background, np.zeros_like(phi)) == (0.0, 0.0)
    with pytest.raises(ValueError):
        shadow.SubjectBox(math.nan, 2.4, 2.6)


def passages(subjects, geometry, seed=0):
    return run(subjects, start=-60.0, seed=seed, geometry=geometry)[1]


CARGO = [('C6H10O5', 0.3), ('Fe', 1.2), ('H2O', 0.9)]


def loaded(serial, arrival, *extra):
    material, density = CARGO[serial % len(CARGO)]
    return dataclasses.replace(container(serial, arrival, *extra), cargo_material=material,
                               cargo_density=density)


@pytest.fixture(scope='module')
def clean():
    subjects = [loaded(5000 + i, 25.0 * i) for i in range(30)]
    return {name: passages(subjects, geometry, seed=3)
            for name, geometry in (('corrected', GEOMETRY), ('uncorrected', None))}


def test_clean_loaded_containers_read_like_background_once_the_shadow_is_corrected(clean):
    corrected = np.array([e.item.log_likelihood_ratio for e in clean['corrected']])
    uncorrected = np.array([e.item.log_likelihood_ratio for e in clean['uncorrected']])
    print(f'\nclean loaded containers, median LLR: corrected {np.median(corrected):.2f}, '
          f'uncorrected {np.median(uncorrected):.2f} (a background-only passage: about -1.9)')
    assert not any(e.alarm for e in clean['corrected'] + clean['uncorrected'])
    assert np.median(uncorrected) < -8.0  # the empty lane's background overstates the passage
    assert -4.0 < np.median(corrected) < 0.0
    factors = [e.result.background_factor for e in clean['corrected']]
    assert all(0.6 < f < 1.0 for f in factors)
    assert 'shadow' in clean['corrected'][0].item.explanation


@pytest.mark.parametrize('activity', [0.0, 3e6])
def test_the_fitted_shadow_is_close_to_the_lanes_with_or_without_a_source(activity):
    sim = container(5101, 0.0, *((cs137(activity),) if activity else ()))
    lane = PortalLane(SPEC, np.random.default_rng(9), spectra=False)
    true = SPEC.background_front_fraction * (1.0 - lane_spectra.subject_transmission(sim))
    lane.enqueue(sim)
    rows, t, speed = [], 0.0, math.nan
    while lane.busy:
        t = round(t + SPEC.frame_period, 9)
        frame = lane.step(t)
        for event in frame.events:
            speed = event.speed if event.occupied else speed
        if frame.occupied:
            rows.append((t, frame.counts))
    stamps = np.array([r[0] for r in rows])
    counts = np.array([r[1] for r in rows])
    live = np.full(len(stamps), SPEC.frame_period)
    rates = np.array([p.background for p in SPEC.panels])
    passage = Passage('', counts, live, stamps[0], stamps[-1] + SPEC.frame_period, 0,
                      len(stamps) - 1, stamps, speed)
    found = GEOMETRY.background_factors(passage, rates, sigmas=0.0)
    assert found is not None
    if not activity:
        assert found[1] == pytest.approx(true, abs=0.08)
    else:  # the source's frames left out: closer to the truth than a fit over all
        mid, occupied_on, box = GEOMETRY.subject_box(passage)
        phi = shadow.face_fractions(GEOMETRY.panel_centres, GEOMETRY.panel_normals_y,
                                    shadow.rears(mid, occupied_on, speed,
                                                 SPEC.occupancy_half_width, box.length), box)
        naive = shadow.fit_fraction(counts, np.outer(live, rates), phi)[0]
        print(f'\nshadow: true {true:.3f}, fitted {found[1]:.3f}, over all frames {naive:.3f}')
        assert abs(found[1] - true) < abs(naive - true)


def test_a_weak_source_masked_by_the_shadow_is_seen_once_it_is_corrected():
    # 5 MBq of Cs-137 in a container of cotton T-shirts: its excess is smaller than the shadow
    subjects = [container(5200 + i, 25.0 * i, cs137(5e6)) for i in range(20)]
    corrected = sum(e.alarm for e in passages(subjects, GEOMETRY, seed=4))
    uncorrected = sum(e.alarm for e in passages(subjects, None, seed=4))
    print(f'\n5 MBq Cs-137 in cotton: {corrected}/20 alarms corrected, '
          f'{uncorrected}/20 uncorrected')
    assert corrected >= 17 and uncorrected <= 2


def test_no_correction_without_a_speed_or_for_a_passage_too_short():
    def passage(frames, speed, channels=4):
        stamps = np.arange(1, frames + 1) * 0.1
        return Passage('', np.full((frames, channels), 200.0), np.full(frames, 0.1), 0.1,
                       stamps[-1] + 0.1, 0, frames - 1, stamps, speed)

    rates = np.full(4, 2000.0)
    assert GEOMETRY.background_factors(passage(80, 2.2), rates) is not None
    assert GEOMETRY.background_factors(passage(80, math.nan), rates) is None
    assert GEOMETRY.background_factors(passage(5, 2.2), rates) is None  # 1.1 m of occupancy
    assert GEOMETRY.background_factors(passage(80, 2.2, channels=2), rates) is None
