"""Where in a container is the source, from one passage through the container portal.

Passages are simulated with the simulator's pieces (radiation/physics.py for exact frames,
simulation/portal_lane.py for the whole lane: cargo, the subject's shadow on the background,
the speed sensor's error) and located with radiation/passage_localization.py.
"""

import math
import pathlib
import time

import numpy as np
import pytest

from customs_lab.common import iso6346
from customs_lab.common.subjects import Subject, SubjectKind
from customs_lab.radiation import physics
from customs_lab.radiation.passage_localization import (
    container_size,
    estimate_length,
    estimate_speed,
    localize_passage,
)
from customs_lab.simulation.lane_spectra import subject_transmission
from customs_lab.simulation.portal_lane import PortalLane
from customs_lab.simulation.scenario import (
    CONTAINER_INTERIOR,
    CONTAINER_WALL_STEEL,
    SimSubject,
    TrueItem,
)
from customs_lab.site.layout import load_site

ROOT = pathlib.Path(__file__).resolve().parents[1]
SPEC = load_site(ROOT / 'config' / 'site.yaml').portals['portal_lane_1']
FORTY_FOOT = CONTAINER_INTERIOR['40ft']
BACKGROUND = np.array([p.background for p in SPEC.panels])
PERIOD, SPEED, HALF = SPEC.frame_period, SPEC.speed, SPEC.occupancy_half_width
MARGIN = 3.0  # s of frames kept before and after the occupancy


def lane_arguments(**extra) -> dict:
    """Return the keyword arguments a processing node has for the container portal."""
    return dict(size=FORTY_FOOT, nuclide='Cs-137', occupancy_half_width=HALF,
                floor_height=SPEC.subject_floor_height, wall_steel=CONTAINER_WALL_STEEL, **extra)


def exact_frames(position, activity, seed):
    """Return (stamps, live times, counts, occupied_on) of a passage of an empty 40 ft container.

    Each frame ends at its stamp and averages the physics' rates at two instants within it.
    """
    length, width, _ = FORTY_FOOT
    on = (SPEC.approach - HALF) / SPEED  # the front reaches x = -h
    stamps = np.arange(math.ceil((on - MARGIN) / PERIOD),
                       math.ceil((on + (length + 2 * HALF) / SPEED + MARGIN) / PERIOD)) * PERIOD
    panels = physics.detector_panels(SPEC.panels)
    wall = (physics.Shield('Fe', 7.874, CONTAINER_WALL_STEEL),)
    rates = np.zeros((len(stamps), len(panels)))
    for part in (0.25, 0.75):
        for i, t in enumerate(stamps - PERIOD + part * PERIOD):
            where = np.asarray(position) + [-SPEC.approach + SPEED * t - length, -width / 2,
                                            SPEC.subject_floor_height]
            rates[i] += 0.5 * physics.expected_count_rates(
                panels, [physics.PointSource('Cs-137', activity, where, wall)])
    counts = np.random.default_rng(seed).poisson((BACKGROUND + rates) * PERIOD)
    return stamps, np.full(len(stamps), PERIOD), counts, on


def container(position, activity, cargo=('', 0.0)) -> SimSubject:
    """Return a 40 ft container with a Cs-137 source at `position` (its frame) and cargo."""
    source = TrueItem('radioactive_source', 'Cs-137 source', True, nuclide='Cs-137',
                      activity=activity, position=tuple(position))
    return SimSubject(
        subject=Subject(SubjectKind.CONTAINER, iso6346.make_number('CSQ', 4242, 'U')),
        arrival=0.0, device='portal_lane_1', declaration_id='IMP-TEST-1', declarant_id='TRD100',
        origin_country='CN', declared=(), gross_mass=7400.0, declared_arrival=0.0, filed_at=0.0,
        size=FORTY_FOOT, cargo_material=cargo[0], cargo_density=cargo[1], truth=(source,),
        consignee_id='CNE00001')


def lane_passage(sim: SimSubject, seed: int):
    """Drive the portal lane; return (stamps, counts, occupied_on, measured speed)."""
    lane = PortalLane(SPEC, np.random.default_rng(seed))
    lane.enqueue(sim)
    t, stamps, counts, on, off, speed = 0.0, [], [], None, None, None
    while lane.busy:
        t = round(t + PERIOD, 9)
        frame = lane.step(t)
        for event in frame.events:
            if event.occupied:
                on, speed = t, event.speed
            else:
                off = t
        stamps.append(t)
        counts.append(frame.counts)
    stamps, counts = np.array(stamps), np.array(counts)
    keep = (stamps > on - MARGIN) & (stamps < off + MARGIN)
    # An edge reported with a frame happened within it: take the frame's middle.
    return stamps[keep], counts[keep], on - PERIOD / 2, speed


def true_shadow(sim: SimSubject) -> float:
    """Return the lane's shadowed fraction s for a subject (what localize_passage fits)."""
    return SPEC.background_front_fraction * (1.0 - subject_transmission(sim))


def test_a_strong_source_in_an_empty_container_is_found_within_its_stated_uncertainty():
    truth = np.array([7.9, 1.9, 1.1])
    stamps, live, counts, on = exact_frames(truth, 3.7e7, seed=3)
    started = time.perf_counter()
    found = localize_passage(SPEC.panels, stamps, live, counts, BACKGROUND, occupied_on=on,
                             speed=SPEED, **lane_arguments())
    elapsed = time.perf_counter() - started
    error = found.position - truth
    print(f'\nerror {np.round(error, 3)} m, sigma {np.round(found.position_std, 3)} m, '
          f'shadow {found.shadow:.3f}, {elapsed:.1f} s; {found.explanation}')
    assert np.all(np.abs(error) < 3 * found.position_std)
    assert abs(error[0]) < 0.5
    assert found.localization.activity == pytest.approx(3.7e7, rel=0.2)
    assert found.shadow < 0.05  # these frames have no shadow
    assert found.explanation.startswith("Cs-137 source about 7.9 m from the container's rear")
    assert 'near the left wall' in found.explanation
    assert 'above its floor' in found.explanation
    # Where it is on the lane when it passes the detector plane, in the device frame
    passing = on + (HALF + FORTY_FOOT[0] - truth[0]) / SPEED
    expected = truth + [-truth[0], -FORTY_FOOT[1] / 2, SPEC.subject_floor_height]
    assert np.allclose(found.device_position(passing), expected, atol=0.2)


def test_in_light_cargo_each_side_alone_finds_the_source_one_activity_is_pulled_to_a_wall():
    truth = np.array([3.0, 0.6, 1.8])  # near the right wall, in cotton T-shirts (0.3 g/cm3)
    loaded = container(truth, 3.7e7, ('C6H10O5', 0.3))
    stamps, counts, on, speed = lane_passage(loaded, seed=1)
    live = np.full(len(stamps), PERIOD)
    started = time.perf_counter()
    sides = localize_passage(SPEC.panels, stamps, live, counts, BACKGROUND, occupied_on=on,
                             speed=speed, **lane_arguments())
    elapsed = time.perf_counter() - started
    joint = localize_passage(SPEC.panels, stamps, live, counts, BACKGROUND, occupied_on=on,
                             speed=speed, **lane_arguments(sides=False))
    for name, found in (('per side', sides), ('one activity', joint)):
        print(f'\n{name}: error {np.round(found.position - truth, 3)} m, sigma '
              f'{np.round(found.position_std, 3)} m, activity {found.localization.activity:.3g}'
              f' Bq, shadow {found.shadow:.2f}; {found.explanation}')
    print(f'per side: {elapsed:.1f} s')
    # The occupancy edge is known to a frame and the speed sensor errs by 1 %: along x the error
    # stays within the 0.5 m asked (0.13 m here).
    assert abs(sides.position[0] - truth[0]) < 0.5
    assert abs(joint.position[0] - truth[0]) < 0.5
    assert np.all(np.abs(sides.position[1:] - truth[1:]) < 3 * sides.position_std[1:])
    assert 'near the right wall' in sides.explanation
    assert sides.localization.activity < 3.7e7  # cargo not modelled: a lower bound
    assert sides.shadow == pytest.approx(true_shadow(loaded), abs=0.1)
    # One activity for both sides: the contrast left / right made by the cargo puts the source
    # against the nearer wall and its height towards the panels' middle.
    assert joint.position[1] < 0.1
    assert joint.position[2] < truth[2] - 0.25


def test_a_passage_without_a_source_says_so():
    empty = container([3.0, 1.0, 1.0], 0.0)
    stamps, counts, on, speed = lane_passage(empty, seed=2)
    found = localize_passage(SPEC.panels, stamps, np.full(len(stamps), PERIOD), counts,
                             BACKGROUND, occupied_on=on, speed=speed,
                             **lane_arguments(grid=3, bin_time=1.0))
    assert found.localization.deviance < 25
    assert found.explanation.startswith('no clear Cs-137 source')
    # its walls only; the fit reads 0.12-0.17 over seeds for a true 0.114 (the lane's shadow
    # varies along the passage more than the fitted one-parameter profile)
    assert found.shadow == pytest.approx(true_shadow(empty), abs=0.06)


def test_container_sizes_and_the_lane_estimates():
    assert container_size('22G1') == (6.058, 2.438, 2.591)
    assert container_size('42G1')[0] == 12.192
    assert container_size('45g1') == (12.192, 2.438, 2.896)
    with pytest.raises(ValueError):
        container_size('99X1')
    length, on = 12.192, 10.0
    off = on + (length + 2 * HALF) / SPEED
    assert estimate_length(SPEED, on, off, HALF) == pytest.approx(length)
    assert estimate_speed(length, on, off, HALF) == pytest.approx(SPEED)
    with pytest.raises(ValueError):
        estimate_length(SPEED, on, on, HALF)


@pytest.mark.parametrize('change, message', [
    (dict(stamps=[], live_times=[], counts=np.zeros((0, 4))), 'no frames'),
    (dict(speed=0.0), 'speed'),
    (dict(speed=-2.2), 'speed'),
    (dict(counts=np.full((3, 4), np.nan)), 'counts'),
    (dict(counts=np.full((3, 3), 10.0)), 'counts'),
    (dict(live_times=[0.1, 0.0, 0.1]), 'live'),
    (dict(background_rates=[2000.0] * 3), 'background'),
    (dict(size=(12.0, 2.4)), 'size'),
    (dict(occupied_on=math.nan), 'occupied_on'),
])
def test_bad_input_raises_value_error(change, message):
    arguments = dict(panels=SPEC.panels, stamps=[0.1, 0.2, 0.3], live_times=[0.1] * 3,
                     counts=np.full((3, 4), 200.0), background_rates=BACKGROUND,
                     occupied_on=0.0, speed=SPEED, **lane_arguments())
    arguments.update(change)
    with pytest.raises(ValueError, match=message):
        localize_passage(**arguments)
