"""Gross-count alarm benchmark (issue 4): measured false-alarm rate and detection of Cs-137.

    tools/with_env.sh python benchmarks/bench_alarm.py [--background 100000] [--trials 400]

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
"""

import argparse
import math
import pathlib
import shlex
import sys

import numpy as np

from customs_lab.radiation import alarm, physics
from customs_lab.simulation.offline_site import alarm_parameters
from customs_lab.site.layout import load_site

ROOT = pathlib.Path(__file__).resolve().parents[1]
FRAME = 0.1  # s
ACTIVITIES = (10e3, 20e3, 40e3, 80e3, 160e3, 320e3, 640e3)  # Bq
SPEEDS = {'walking (1.2 m/s)': 1.2, 'vehicle (2.2 m/s)': 2.2}


def panels_of(spec):
    """Return the portal's panels as physics detector panels, and their background (cps)."""
    panels = [physics.DetectorPanel(p.id, np.array(p.center), np.array(p.normal), p.width,
                                    p.height, p.thickness) for p in spec.panels]
    return panels, np.array([p.background for p in spec.panels])


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


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--background', type=int, default=100000,
                        help='background-only passages per portal for the false-alarm rate')
    parser.add_argument('--trials', type=int, default=400, help='source passages per activity')
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


if __name__ == '__main__':
    main()
