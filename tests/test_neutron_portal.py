"""The neutron channel end to end without ROS: the lane's He-3 modules, and the alarm chain.

The lane (simulation/portal_lane.py) must count what radiation/neutron.py predicts; the alarm
chain (portal_alarm via simulation/offline_site.py, as rpm_alarm runs it) must keep its stated
false-alarm probability on clean loads, heavy ones included, and catch plutonium that lead hides
from the gamma panels.
"""

import dataclasses
import math
import pathlib
import uuid

import numpy as np
import pytest
from scipy.stats import poisson

from customs_lab.common import iso6346
from customs_lab.common.subjects import Subject, SubjectKind
from customs_lab.radiation import neutron, physics
from customs_lab.radiation.portal_alarm import EVIDENCE_NAMESPACE, PortalAlarmParameters
from customs_lab.radiation.shadow import LaneGeometry
from customs_lab.simulation.offline_site import OfflinePortal, alarm_parameters
from customs_lab.simulation.portal_lane import PortalLane, areal_mass
from customs_lab.simulation.scenario import (
    CONTAINER_INTERIOR,
    CONTAINER_WALL_STEEL,
    Shield,
    SimSubject,
    TrueItem,
    special_nuclear_material,
)
from customs_lab.site.layout import load_site

ROOT = pathlib.Path(__file__).resolve().parents[1]
SPEC = load_site(ROOT / 'config' / 'site.yaml').portals['portal_lane_1']
LEAD = Shield('Pb', 11.35, 0.05)


def container(serial, arrival, size='40ft', material='C6H10O5', density=0.3, mass=7000.0,
              *extra):
    """Return a container of `mass` kg of bulk cargo (formula, g/cm^3) with `extra` items."""
    goods = TrueItem('goods', material, False, mass=mass)
    return SimSubject(
        subject=Subject(SubjectKind.CONTAINER, iso6346.make_number('TGH', serial, 'U')),
        arrival=arrival, device='portal_lane_1', declaration_id=f'IMP-N-{serial}',
        declarant_id='TRD100', origin_country='CN', declared=(), gross_mass=mass,
        declared_arrival=arrival, filed_at=0.0, size=CONTAINER_INTERIOR[size],
        cargo_material=material, cargo_density=density, truth=(goods, *extra),
        consignee_id='CNE00001')


def plutonium(grams, position, shield=LEAD) -> TrueItem:
    """Return weapons-grade plutonium metal behind `shield` (scenario.py's model)."""
    fields = special_nuclear_material({'material': 'weapons-grade Pu'}, grams)
    fields['shields'] += (shield,)
    return TrueItem('special_nuclear_material', f'{grams} g Pu', True, position=position,
                    mass=grams / 1000.0, **fields)


def auto_parts(serial, arrival, *extra):
    """Return a 40 ft container of 16 t of steel auto parts (no hydrogen: neutrons pass)."""
    return container(serial, arrival, '40ft', 'Fe', 1.2, 16000.0, *extra)


def juice(serial, arrival):
    """Return a 20 ft container of 21 t of fruit juice (the largest ship effect of the goods)."""
    return container(serial, arrival, '20ft', 'H2O', 0.9, 21000.0)


def drive(spec, subjects, seed, start=-40.0, parameters=None, gamma_windows=False):
    """Pass subjects through a lane and the offline chain; return (lane, portal, evidence)."""
    lane = PortalLane(spec, np.random.default_rng(seed), spectra=False)
    portal = OfflinePortal(spec.hardware_id, SubjectKind.CONTAINER,
                           parameters or alarm_parameters(ROOT / 'config' / 'radiation.yaml'),
                           LaneGeometry.from_spec(spec),
                           spec.window_edges_kev if gamma_windows else ())
    pending, found, t = sorted(subjects, key=lambda s: s.arrival), [], start
    while pending or lane.busy:
        t = round(t + spec.frame_period, 9)
        while pending and pending[0].arrival <= t:
            lane.enqueue(pending.pop(0))
        frame = lane.step(t)
        evidence = portal.feed(t, frame.counts, frame.live_time, frame.occupied, frame.events,
                               frame.windows if gamma_windows else None, frame.neutron_counts)
        if evidence is not None:
            found.append(evidence)
    return lane, portal, found


def true_mean_counts(spec, subject) -> float:
    """Return the neutron counts (all modules) a subject's passage gives on average.

    From the lane's model of the passage (its true rates per frame: background, ship effect,
    sources), over the frames the occupancy sensor sees it in (those the alarm sums).
    """
    probe = PortalLane(spec, np.random.default_rng(0), spectra=False)
    probe._enter(subject, 0.0)
    rates = probe._active[4]['neutron_rates'].sum(axis=1)
    times = (np.arange(len(rates)) + 1) * spec.frame_period
    front = -spec.approach + spec.speed * times
    occupied = ((front - subject.size[0] <= spec.occupancy_half_width)
                & (front >= -spec.occupancy_half_width))
    return float(rates[occupied].sum() * spec.frame_period)


def offsets(spec, length):
    """Return the subject frame's origin in the device frame at each frame of its passage.

    The lane's kinematics: its front enters at x = -approach and moves at `speed`; frame i is
    taken at the middle of the i-th frame period; the subject frame's origin is its rear, right,
    bottom corner.
    """
    frames = int(math.ceil((spec.approach + length + spec.exit) / spec.speed
                           / spec.frame_period)) + 1
    times = (np.arange(frames) + 0.5) * spec.frame_period
    rear = -spec.approach + spec.speed * times - length
    return np.column_stack([rear, np.full(frames, -CONTAINER_INTERIOR['40ft'][1] / 2.0),
                            np.full(frames, spec.subject_floor_height)])


# ---------------------------------------------------------------------------------------------
# The lane counts what neutron.py predicts


def test_the_site_file_gives_each_portal_its_he3_modules():
    site = load_site(ROOT / 'config' / 'site.yaml')
    container_modules = site.portals['portal_lane_1'].neutron_modules
    assert [m.id for m in container_modules] == ['he3_left', 'he3_right']
    assert [m.normal[1] for m in container_modules] == [-1.0, 1.0]  # facing the lane
    parcel = PortalLane(site.portals['parcel_line_1'], np.random.default_rng(0))
    container_lane = PortalLane(site.portals['portal_lane_1'], np.random.default_rng(0))
    # the reference module (4 tubes, 5.08 cm, 3 atm): a few cps of cosmic-ray neutrons each;
    # the parcel line's 2 tubes of 2.54 cm behind a quarter of the face: a few tenths
    assert container_lane._neutron_background == pytest.approx([3.54, 3.54], rel=0.01)
    assert 0.1 < parcel._neutron_background[0] < 0.3 * container_lane._neutron_background[0]


def test_the_empty_lane_counts_the_cosmic_background():
    lane = PortalLane(SPEC, np.random.default_rng(11), spectra=False)
    frames = [lane.step(0.1 * (k + 1)).neutron_counts for k in range(3000)]  # 300 s
    for module in lane.neutron_modules:
        counts = sum(f[module.module_id] for f in frames)
        expected = neutron.measured_rate(
            neutron.cosmic_background_rate(module, SPEC.cosmic_neutron_flux),
            module.dead_time) * 300.0
        assert abs(counts - expected) < 4.0 * math.sqrt(expected), (module.module_id, counts)


def test_a_source_in_the_cargo_counts_as_count_rate_predicts():
    """Plutonium behind lead in cotton: every frame's counts against neutron.count_rate.

    The cosmic background is switched off (a site flux of 1e-9) so that the source alone
    counts; the expected counts are computed here from the lane's kinematics, the source's own
    shields, the cargo between it and each module and the container wall.
    """
    spec = dataclasses.replace(SPEC, cosmic_neutron_flux=1e-9)
    position = (6.0, 0.6, 1.0)  # m in the container: 0.6 m from its right wall
    pu = plutonium(2000.0, position)
    subjects = [container(100 + k, 40.0 * k, '40ft', 'C6H10O5', 0.3, 7000.0, pu)
                for k in range(8)]
    lane = PortalLane(spec, np.random.default_rng(5), spectra=False)
    totals = dict.fromkeys((m.module_id for m in lane.neutron_modules), 0)
    pending, t = list(subjects), 0.0
    while pending or lane.busy:
        t = round(t + spec.frame_period, 9)
        while pending and pending[0].arrival <= t:
            lane.enqueue(pending.pop(0))
        for module_id, count in lane.step(t).neutron_counts.items():
            totals[module_id] += count
    width = CONTAINER_INTERIOR['40ft'][1]
    for module in lane.neutron_modules:
        depth = width - position[1] if module.normal[1] < 0 else position[1]
        shields = (*pu.shields, physics.Shield('C6H10O5', 0.3, depth),
                   physics.Shield('Fe', 7.874, CONTAINER_WALL_STEEL))
        rates = [neutron.count_rate(module, [neutron.NeutronSource(
            pu.neutron_rate, np.array(position) + offset, shields)])
            for offset in offsets(spec, CONTAINER_INTERIOR['40ft'][0])]
        expected = len(subjects) * spec.frame_period * sum(
            neutron.measured_rate(r, module.dead_time) for r in rates)
        observed = totals[module.module_id]
        print(f'\n{module.module_id}: {observed} counts, {expected:.0f} expected')
        assert expected > 150  # enough statistics to see a 30 % error
        assert abs(observed - expected) < 4.0 * math.sqrt(expected)
    # the module on the source's side (right: less cotton between) counts more
    assert totals['he3_right'] > 1.5 * totals['he3_left']


def test_a_heavy_load_raises_the_background_by_the_ship_effect():
    lane = PortalLane(SPEC, np.random.default_rng(0), spectra=False)
    load = juice(1, 0.0)
    lane._enter(load, 0.0)
    rates = lane._active[4]['neutron_rates']  # the lane's model of the passage (true cps)
    factor = neutron.ship_effect_factor(areal_mass(load))
    assert 1.1 < factor < 1.3  # 21 t over a 20 ft container's floor: ~165 g/cm^2
    background = lane._neutron_background
    # far from the portal: the cosmic background; centred on the modules: times the factor
    assert rates[0] == pytest.approx(background, rel=1e-3)
    assert rates.max(axis=0) == pytest.approx(background * factor, rel=0.01)
    assert np.all(rates >= background - 1e-12)


# ---------------------------------------------------------------------------------------------
# The alarm chain


def test_background_passages_keep_the_stated_false_alarm_probability():
    """Clean heavy loads (the largest ship effect) alarm at most at the stated rate.

    The stated rate is 0.01 here so that 400 passages can measure it. The exact false-alarm
    probability of each passage is P(Poisson(its true mean) >= the threshold the alarm used),
    the true mean from the lane's model (cosmic background times the load's ship effect): it
    must be within the bound, and the measured rate must agree with it. Without the ship-effect
    allowance (neutron_ship_effect 1) the same passages would alarm several times as often.
    """
    loads = [juice(k, 20.0 + 31.0 * k) for k in range(400)]
    alpha = 0.01
    allowed = dataclasses.replace(alarm_parameters(ROOT / 'config' / 'radiation.yaml'),
                                  neutron_false_alarm_probability=alpha)
    _, portal, found = drive(SPEC, loads, seed=21, parameters=allowed)
    tests = [e.neutron for e in found]
    assert len(tests) == len(loads) and all(t.background_ready for t in tests)
    mean = true_mean_counts(SPEC, loads[0])
    exact = np.mean([float(poisson.sf(t.result.threshold - 1, mean)) for t in tests])
    rate = sum(t.alarm for t in tests) / len(tests)
    print(f'\nneutron alarms on {len(tests)} clean 21 t loads: {rate:.4f}, exact {exact:.4f} '
          f'(bound {alpha})')
    assert exact <= alpha
    assert abs(rate - exact) < 4.0 * math.sqrt(exact / len(tests)) + 1.0 / len(tests)
    assert portal.portal.neutron_stats['alarms'] == sum(t.alarm for t in tests)
    # the same passages against the empty lane's background alone
    naive = np.mean([float(poisson.sf(neutron.neutron_threshold(
        t.result.expected / t.result.ship_effect, alpha) - 1, mean)) for t in tests])
    assert naive > 3 * alpha
    # clean passages give evidence of no source: the Bayes factor's mean is at most 1
    assert np.mean([math.exp(t.item.log_likelihood_ratio) for t in tests]) < 1.5


def test_plutonium_behind_lead_is_caught_by_the_neutron_test_not_the_gamma_one():
    """400 g of weapons-grade Pu (2.4e4 n/s) in 5 cm of lead among steel auto parts, at 8 km/h.

    The detection rate measured through the whole chain must match the one predicted from the
    lane's expected counts and the alarm's threshold, and be high; the gamma panels (whose
    test has the energy windows too) do not see it.
    """
    middle = tuple(0.5 * s for s in CONTAINER_INTERIOR['40ft'])
    pu = plutonium(400.0, middle)
    loads = [auto_parts(k, 20.0 + 40.0 * k, pu) for k in range(60)]
    parameters = alarm_parameters(ROOT / 'config' / 'radiation.yaml')
    _, _, found = drive(SPEC, loads, seed=8, parameters=parameters, gamma_windows=True)
    tests = [e.neutron for e in found]
    assert len(tests) == len(loads) and all(t.background_ready for t in tests)
    detected = np.mean([t.alarm for t in tests])
    # predicted: the passage's true mean counts against the threshold the alarm set from the
    # learned background
    mean = true_mean_counts(SPEC, loads[0])
    predicted = np.mean([float(poisson.sf(t.result.threshold - 1, mean)) for t in tests])
    sigma = math.sqrt(max(predicted * (1 - predicted), 0.01) / len(tests))
    gamma = np.mean([e.alarm for e in found])
    print(f'\nPu 400 g in 5 cm Pb: neutron alarms {detected:.2f} (predicted {predicted:.2f}), '
          f'gamma alarms {gamma:.2f}; {tests[0].item.explanation}')
    assert predicted > 0.9
    assert abs(detected - predicted) < 4 * sigma + 0.02
    assert gamma <= 0.05  # lead hides its gamma rays
    alarm = next(t for t in tests if t.alarm)
    assert alarm.item.explanation.startswith('NEUTRON ALARM') and 'plutonium' in (
        alarm.item.explanation)
    assert alarm.item.log_likelihood_ratio > 5.0 and alarm.item.log_likelihood_ratio_std >= 0


def test_neutron_evidence_is_its_own_item_with_a_stable_id():
    _, _, first = drive(SPEC, [auto_parts(1, 40.0)], seed=3)
    _, _, again = drive(SPEC, [auto_parts(1, 40.0)], seed=3)
    gamma, found = first[0], first[0].neutron
    assert found.item == again[0].neutron.item  # the same frames, the same evidence
    assert found.item.kind == 'radiation.neutron' and gamma.item.kind == 'radiation.gamma'
    assert found.item.correlation_group == 'rpm/portal_lane_1/neutrons' != (
        gamma.item.correlation_group)
    assert found.item.evidence_id == str(uuid.uuid5(
        EVIDENCE_NAMESPACE, f'rpm/portal_lane_1/neutrons/{gamma.first_frame}-{gamma.last_frame}'))
    assert found.item.evidence_id != gamma.item.evidence_id
    assert found.subject == gamma.subject and found.stamp == gamma.stamp


def test_no_neutron_evidence_before_the_neutron_background_is_learned():
    parameters = PortalAlarmParameters(neutron_background_min_live_time=60.0)
    _, portal, found = drive(SPEC, [auto_parts(1, 20.0), auto_parts(2, 120.0)], seed=4,
                             start=0.0, parameters=parameters)
    early, late = found[0].neutron, found[1].neutron
    assert found[0].background_ready and not early.background_ready  # gamma: 10 s suffice
    assert early.item.log_likelihood_ratio == 0.0 and not early.alarm
    assert early.item.explanation.startswith('neutron background not yet learned')
    assert late.background_ready
    assert portal.portal.neutron_stats == {'passages': 2, 'alarms': 0, 'not_ready': 1}


def test_a_device_without_neutron_modules_gives_no_neutron_evidence():
    gamma_only = dataclasses.replace(SPEC, neutron_modules=())
    lane, _, found = drive(gamma_only, [auto_parts(1, 30.0)], seed=2)
    assert lane.step(1e6).neutron_counts is None
    assert len(found) == 1 and found[0].neutron is None


@pytest.mark.parametrize(
    'change, message',
    [(dict(neutron_ship_effect=0.1), 'neutron_ship_effect'),
     (dict(neutron_false_alarm_probability=0.0), 'false_alarm_probability'),
     (dict(fission_share=1.0), 'fission_share'),
     (dict(neutron_excess_prior_min=10.0, neutron_excess_prior_max=1.0), 'excess_prior')],
)
def test_bad_neutron_parameters_are_refused(change, message):
    with pytest.raises(ValueError, match=message):
        PortalAlarmParameters(**change)


def test_a_neutron_alarm_stops_the_energy_windows_from_clearing_a_fission_source():
    from customs_lab.radiation.portal_alarm import (
        combined_log_likelihood_ratio,
        neutron_aware_log_likelihood_ratio,
    )

    # Cf-252's gamma rays read NORM-like in the windows (w hugely negative): alone they would
    # clear it; with its neutrons the NORM branch is gone, the fission branch explains both
    gross, windows, neutrons = 3e4, -2.6e4, 40.0
    assert combined_log_likelihood_ratio(gross, windows, 0.1) < -1e4
    gamma = neutron_aware_log_likelihood_ratio(gross, windows, 0.1, neutrons, 0.5)
    assert gamma == pytest.approx(math.log(0.5 / 0.1), abs=1e-6)  # ln(f / pi)
    # a gamma threat with neutrons: the sum of both items is the joint, no more than the
    # gamma evidence alone would have said (the neutrons add nothing to a certain threat)
    joint = neutron_aware_log_likelihood_ratio(7000.0, 500.0, 0.1, 30.0, 0.5) + 30.0
    assert joint == pytest.approx(combined_log_likelihood_ratio(7000.0, 500.0, 0.1)
                                  + math.log(0.5), abs=1e-6)


@pytest.mark.parametrize('gross, windows', [(30.0, 2.0), (3e4, -2.6e4), (-1.0, 0.0), (12.0, -8.0)])
def test_the_fused_radiation_evidence_rises_with_the_neutron_evidence_without_a_step(gross,
                                                                                    windows):
    from customs_lab.radiation import alarm
    from customs_lab.radiation.passage import Passage
    from customs_lab.radiation.portal_alarm import NeutronVerdict, PassageVerdict

    # the gamma item plus the neutron item, as fusion sums them, for neutron LLRs on both
    # sides of the neutron alarm threshold: it must never fall as the neutrons rise
    passage = Passage('', np.ones((5, 2)), np.full(5, 0.1), 0.0, 1.0, 1, 5)
    gamma = alarm.AlarmResult(
        alarm=gross > 10, max_window_counts=1, expected_window_counts=1.0, threshold=5,
        window_index=0, n_windows=1, excess_rate=0.0, significance=0.0,
        log_likelihood_ratio=gross, log_likelihood_ratio_std=0.0, false_alarm_probability=1e-3)
    windows_verdict = type('W', (), {'log_likelihood_ratio': windows})()
    sums = []
    for n_llr in np.linspace(-4.0, 40.0, 89):
        result = neutron.NeutronAlarmResult(
            alarm=n_llr > 9.0, counts=10, expected=8.0, threshold=20, live_time=1.0,
            p_value=0.5, log_likelihood_ratio=float(n_llr), false_alarm_probability=1e-4)
        verdict = PassageVerdict(passage, gamma, True, windows_verdict, 0.1,
                                 NeutronVerdict(1, 5, ('N1',), result), 0.1)
        sums.append(verdict.log_likelihood_ratio + verdict.neutron.log_likelihood_ratio)
    assert np.all(np.diff(sums) >= -1e-9)
