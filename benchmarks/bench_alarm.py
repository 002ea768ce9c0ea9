"""Gross-count alarm benchmark (issue 4): measured false-alarm rate and detection of Cs-137.

    tools/with_env.sh python benchmarks/bench_alarm.py [--background 100000] [--trials 400]
                                                       [--loaded 1000]

In the style of the IEC 62244 / ANSI N42.35 portal tests: the alarm (radiation/alarm.py, with
the rpm_alarm node's parameters from config/radiation.yaml) is run on

1. background-only passages of the site's portals (config/site.yaml: panels and their
   background), `--background` of them, lengths 3 to 8 s: the measured false-alarm rate per
   passage against the configured bound (1 in 1,000);
2. a Cs-137 source carried through the portal at the lane's centre, 1 m above the floor, at
   walking speed (1.2 m/s, a person carrying it) and vehicle speed (2.2 m/s, the container
   lane's truck speed), `--trials` passages per activity: the probability of detection, and
   the activity detected with 95 % probability (interpolated in log activity).

The background is learned from 120 s of empty lane, as the node learns it. Counting physics:
radiation/physics.py (solid angle, air, the panel's PVT efficiency; a 2 mm steel wall around
the source), Poisson counts per 0.1 s frame.

3. loaded containers through the simulated container lane (simulation/portal_lane.py, which
   shadows the panels from part of their background), as the offline alarm chain sees them
   (simulation/offline_site.py), with and without the shadow correction (radiation/shadow.py):
   `--loaded` clean containers of the default scenario's goods without NORM: false alarms per
   passage and the median evidence (a background-only passage: about -1.9 nats); then Cs-137
   at the centre of a container of cotton T-shirts, `--loaded` / 10 passages per activity:
   the probability of detection.
"""

import argparse
import math
import pathlib
import shlex
import sys

import numpy as np
import yaml

from customs_lab.common import iso6346
from customs_lab.common.subjects import Subject, SubjectKind
from customs_lab.radiation import alarm, physics
from customs_lab.radiation.shadow import LaneGeometry
from customs_lab.simulation.offline_site import OfflinePortal, alarm_parameters
from customs_lab.simulation.portal_lane import PortalLane
from customs_lab.simulation.scenario import SimSubject, TrueItem
from customs_lab.site.layout import load_site

ROOT = pathlib.Path(__file__).resolve().parents[1]
FRAME = 0.1  # s
ACTIVITIES = (10e3, 20e3, 40e3, 80e3, 160e3, 320e3, 640e3)  # Bq
SPEEDS = {'walking (1.2 m/s)': 1.2, 'vehicle (2.2 m/s)': 2.2}
FORTY_FOOT = (12.03, 2.35, 2.39)  # m, interior
LOADED_ACTIVITIES = (2e6, 3e6, 5e6, 1e7)  # Bq, Cs-137 in cotton


def panels_of(spec):
    """Return the portal's panels as physics detector panels, and their background (cps)."""
    return physics.detector_panels(spec.panels), np.array([p.background for p in spec.panels])


def learned_background(rng, rates):
    """Return an estimator taught 120 s of empty lane."""
    estimator = alarm.BackgroundEstimator(len(rates), time_constant=60.0, min_live_time=10.0)
    frames = int(120.0 / FRAME)
    estimator.update(rng.poisson(rates * FRAME, (frames, len(rates))), np.full(frames, FRAME))
    return estimator


def false_alarms(rng, rates, config, n):
    """Return (alarms, passages) on background alone, the background relearned as it goes."""
    estimator = learned_background(rng, rates)
    alarms = 0
    for _ in range(n):
        gap = int(rng.integers(20, 60))
        estimator.update(rng.poisson(rates * FRAME, (gap, len(rates))), np.full(gap, FRAME))
        frames = int(rng.integers(30, 81))
        counts = rng.poisson(rates * FRAME, (frames, len(rates)))
        result = alarm.evaluate_passage(counts, np.full(frames, FRAME), estimator.rate(),
                                        estimator.rate_std(), config)
        alarms += result.alarm
    return alarms, n


def excess_profile(panels, activity, speed, height):
    """Return expected excess cps (frames, panels) of Cs-137 crossing the portal plane."""
    half = 4.0  # m before and after the detector plane: the occupancy window of a passage
    xs = np.arange(-half, half, speed * FRAME) + 0.5 * speed * FRAME
    wall = (physics.Shield('Fe', 7.874, 0.002),)
    return np.array([physics.expected_count_rates(
        panels, [physics.PointSource('Cs-137', activity, [x, 0.0, height], wall)])
        for x in xs])


def detection(rng, panels, rates, config, speed, height, trials):
    """Return {activity: probability of detection} for Cs-137 at `speed`."""
    estimator = learned_background(rng, rates)
    out = {}
    for activity in ACTIVITIES:
        profile = excess_profile(panels, activity, speed, height)
        detected = 0
        for _ in range(trials):
            counts = rng.poisson((rates + profile) * FRAME)
            detected += alarm.evaluate_passage(counts, np.full(len(counts), FRAME),
                                               estimator.rate(), estimator.rate_std(),
                                               config).alarm
        out[activity] = detected / trials
    return out


def activity_at(pd: dict, target: float = 0.95) -> float:
    """Return the activity detected with probability `target` (log-linear interpolation)."""
    items = sorted(pd.items())
    for (a0, p0), (a1, p1) in zip(items, items[1:], strict=False):
        if p0 < target <= p1:
            f = (target - p0) / (p1 - p0)
            return math.exp(math.log(a0) + f * (math.log(a1) - math.log(a0)))
    return math.nan


def container(serial, arrival, material, density, source=0.0):
    """Return a 40 ft container of a bulk cargo, with a bare Cs-137 source at its centre."""
    items = [TrueItem('goods', material, False)]
    if source:
        items.append(TrueItem('radioactive_source', 'Cs-137', True, nuclide='Cs-137',
                              activity=source, position=tuple(0.5 * v for v in FORTY_FOOT)))
    return SimSubject(
        subject=Subject(SubjectKind.CONTAINER, iso6346.make_number('BNC', serial, 'U')),
        arrival=arrival, device='portal_lane_1', declaration_id=f'B-{serial}',
        declarant_id='TRD100', origin_country='CN', declared=(), gross_mass=1.0,
        declared_arrival=arrival, filed_at=0.0, size=FORTY_FOOT, cargo_material=material,
        cargo_density=density, truth=tuple(items))


def lane_run(spec, subjects, corrected, seed):
    """Return the evidence of subjects passing the lane (offline driver + alarm)."""
    lane = PortalLane(spec, np.random.default_rng(seed), spectra=False)
    portal = OfflinePortal(spec.hardware_id, SubjectKind.CONTAINER,
                           alarm_parameters(ROOT / 'config' / 'radiation.yaml'),
                           LaneGeometry.from_spec(spec) if corrected else None)
    pending, found, t = list(subjects), [], -120.0
    while pending or lane.busy:
        t = round(t + spec.frame_period, 9)
        while pending and pending[0].arrival <= t:
            lane.enqueue(pending.pop(0))
        evidence = portal.feed(t, *_frame(lane.step(t)))
        if evidence is not None:
            found.append(evidence)
    return found


def _frame(frame):
    return frame.counts, frame.live_time, frame.occupied, frame.events


def loaded(spec, n, seed):
    """Print part 3: clean loaded containers, then Cs-137 in cotton, with and without."""
    scenario = yaml.safe_load((ROOT / 'config' / 'scenarios' / 'default.yaml').read_text())
    goods = [(g['material'], g['bulk_density'], g['description'])
             for g in scenario['goods']['container'] if not g.get('norm')]
    print(f'\nloaded 40 ft containers through {spec.name} (the lane shadows the panels): '
          f'{n} clean ones of {", ".join(d for _, _, d in goods)}')
    clean = [container(i, 25.0 * i, m, d) for i, (m, d, _) in
             ((i, goods[i % len(goods)]) for i in range(n))]
    for corrected in (False, True):
        found = lane_run(spec, clean, corrected, seed)
        llr = np.array([e.item.log_likelihood_ratio for e in found])
        factor = np.array([e.result.background_factor for e in found])
        alarms = sum(e.alarm for e in found)
        print(f'  shadow {"corrected" if corrected else "not corrected"}: {alarms} false alarms '
              f'in {len(found)} passages; evidence median {np.median(llr):.2f} nats '
              f'(5-95 %: {np.percentile(llr, 5):.2f} to {np.percentile(llr, 95):.2f}); '
              f'background factor used, median {np.median(factor):.3f}')
    trials = max(n // 10, 10)
    for corrected in (False, True):
        cells = []
        for activity in LOADED_ACTIVITIES:
            subjects = [container(i, 25.0 * i, 'C6H10O5', 0.3, activity) for i in range(trials)]
            found = lane_run(spec, subjects, corrected, seed + 1)
            cells.append(f'{activity / 1e6:g} MBq {100 * np.mean([e.alarm for e in found]):.0f} %')
        print(f'  Cs-137 at the centre of a container of cotton T-shirts, shadow '
              f'{"corrected" if corrected else "not corrected"}: PD {", ".join(cells)}')


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--background', type=int, default=100000,
                        help='background-only passages per portal for the false-alarm rate')
    parser.add_argument('--trials', type=int, default=400, help='source passages per activity')
    parser.add_argument('--loaded', type=int, default=1000,
                        help='clean loaded containers through the simulated lane (part 3)')
    parser.add_argument('--seed', type=int, default=20261130)
    options = parser.parse_args()
    print(f'command: python {shlex.join(sys.argv)}')
    p = alarm_parameters(ROOT / 'config' / 'radiation.yaml')
    config = p.alarm_config()
    site = load_site(ROOT / 'config' / 'site.yaml')
    rng = np.random.default_rng(options.seed)
    print(f'alarm: {config.window:g} s window, false-alarm bound '
          f'{config.false_alarm_probability:g} per passage (config/radiation.yaml)')
    for name, spec in sorted(site.portals.items()):
        panels, rates = panels_of(spec)
        alarms, n = false_alarms(rng, rates, config, options.background)
        rate = alarms / n
        upper = (rate + 1.96 * math.sqrt(max(rate * (1 - rate), 1.0 / n) / n))
        print(f'\n{name} ({len(panels)} panels, {rates.sum():.0f} cps background): '
              f'{alarms} false alarms in {n} background passages = {rate:.2e} per passage '
              f'(95 % upper bound {upper:.2e}; bound {config.false_alarm_probability:g})')
        height = spec.subject_floor_height + 1.0 if spec.subject_kind == 'container' else \
            spec.subject_floor_height + 0.2
        for label, speed in SPEEDS.items():
            pd = detection(rng, panels, rates, config, speed, height, options.trials)
            cells = ', '.join(f'{a / 1e3:g} kBq {100 * v:.0f} %' for a, v in pd.items())
            at = activity_at(pd)
            if math.isnan(at) and min(pd.values()) >= 0.95:
                reached = f'at or below {min(pd) / 1e3:g} kBq, the weakest tried'
            elif math.isnan(at):
                reached = 'not reached in the activities tried'
            else:
                reached = f'at {at / 1e3:.0f} kBq ({at / 3.7e4:.2f} uCi)'
            print(f'  Cs-137 {label}, {height:.1f} m high at the lane centre: PD {cells}; '
                  f'95 % detection {reached}')
    if options.loaded:
        loaded(site.portals['portal_lane_1'], options.loaded, options.seed)


if __name__ == '__main__':
    main()
