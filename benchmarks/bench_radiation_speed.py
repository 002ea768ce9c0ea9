"""Radiation processing speed benchmark (issue 4): time per detector frame and spectrum, one core.

    tools/with_env.sh python benchmarks/bench_radiation_speed.py [--passages 150]
        [--source-every 5] [--activity 8e7] [--temperature 25] [--concurrent 3]
        [--blas-threads 1] [--seed 20261130] [--cpu 0]

About 3 minutes with the defaults (--passages 6 --concurrent 1 for a 40 s check). Issue 4: "the
pipeline must keep up with 10 Hz spectra from every detector of a portal on one core". The
process is pinned to one core (every thread of it: os.sched_setaffinity), with one BLAS thread
(`--blas-threads`: more threads on one core only wait for each other), and runs the
core modules the nodes run, without rclpy, the serial link or DDS, on the frames of the
simulated container lane (simulation/portal_lane.py, device portal_lane_1 of config/site.yaml:
4 PVT panels in 0.1 s frames with their energy windows, 2 NaI(Tl) spectrometers of 1,024
channels). Containers of the default scenario's goods (config/scenarios/default.yaml: their
20 ft / 40 ft mix, NORM cargo such as potash fertiliser and tiles included) queue at the lane,
one in `--source-every` carrying a bare Cs-137 source of `--activity` Bq at its centre (in
cargo without NORM). Nothing of the simulation is timed; every call of the chains is, with
time.perf_counter_ns, after a warm-up (120 s of empty lane and two passages, one with a source
and one of NORM cargo, so that every cache and code path is hot). Each top-level call's CPU time
(time.thread_time_ns) is reported beside its wall time: on a shared machine, a wall time well
above it is the core taken by another process, not the code.

1. Gross counts, as rpm_alarm runs them (radiation/portal_alarm.PortalAlarm with the node's
   parameters from config/radiation.yaml, the lane's geometry for the shadow correction, the
   frames' window counts, occupancy, the id read and the speed measured, as the driver gives
   them): the cost of one frame (all 4 panels) (a) of the empty lane, (b) inside a passage,
   (c) the frame that completes a passage (the per-passage test: shadow fit, gross-count test,
   energy windows), and (d) after an alarm that looks like a threat, the source localization
   the node runs on its worker thread (radiation/located_source.locate, and the dose-rate field
   it publishes).
2. Spectra, as isotope_id runs them (radiation/spectral_passage.SpectralPortal with the
   default parameters): every spectrometer's spectrum at 10 Hz (0.1 s live time; the site file
   sends one per second, the issue asks for 10 Hz), recorded at the gain the firmware's thermal
   drift gives at `--temperature` (simulation/rpm_firmware.py): empty-lane spectra (background
   learning; every `gain_every` learned spectra also the gain estimate, timed apart), spectra
   inside a passage, and the spectrum that completes a passage (identification and the threat
   Bayes factor).
3. The budget on one core for one portal: frames/s x mean frame cost + spectra/s x mean
   spectrum cost + passages/s x per-passage costs, with the lane's passage rate from
   config/site.yaml (trucks queued back to back: (approach + length + exit) / speed + headway
   per truck, the simulated lane's rule), and the load measured directly on the run (all
   processing time over the simulated time); the localization per alarm is reported apart (a
   worker thread of rpm_alarm, competing for the same core and the GIL).
4. As rpm_alarm runs it: `--concurrent` alarms of the run localized on a ThreadPoolExecutor
   worker while the main thread is fed empty-lane frames at their 0.1 s ticks: the frames'
   latency (tick to verdict, including the wait for the GIL) with and without it.
"""

import argparse
from concurrent.futures import ThreadPoolExecutor
import datetime
import functools
import math
import os
import pathlib
import platform
import shlex
import subprocess
import sys
import time

import numpy as np
import scipy
import yaml

from customs_lab.common import iso6346
from customs_lab.common.subjects import Subject, SubjectKind
from customs_lab.radiation import alarm, located_source, portal_alarm, spectral_passage
from customs_lab.radiation.shadow import LaneGeometry
from customs_lab.radiation.spectral_passage import SpectralParameters, SpectralPortal
from customs_lab.simulation import lane_spectra
from customs_lab.simulation.offline_site import alarm_parameters
from customs_lab.simulation.portal_lane import PortalLane
from customs_lab.simulation.rpm_firmware import CALIBRATION_C
from customs_lab.simulation.scenario import CONTAINER_INTERIOR, SimSubject, TrueItem
from customs_lab.site.layout import load_site

ROOT = pathlib.Path(__file__).resolve().parents[1]
DEVICE = 'portal_lane_1'
SPECTRUM_LIVE_TIME = 0.1  # s: 10 Hz spectra, as issue 4 asks
WARM_UP = 120.0  # s of empty lane before the first subject
BUDGET = 0.1  # s: one frame period at 10 Hz
BLAS_VARIABLES = ('OPENBLAS_NUM_THREADS', 'OMP_NUM_THREADS', 'MKL_NUM_THREADS')
now = time.perf_counter_ns


# ----------------------------------------------------------------------------------------------
# the machine


def pin(cpu: int) -> int:
    """Pin every thread of this process (numpy's BLAS threads too) to `cpu`; return how many."""
    tasks = os.listdir('/proc/self/task')
    for tid in tasks:
        os.sched_setaffinity(int(tid), {cpu})
    return len(tasks)


def cpu_model() -> str:
    """Return the CPU's model name from /proc/cpuinfo."""
    for line in pathlib.Path('/proc/cpuinfo').read_text().splitlines():
        if line.startswith('model name'):
            return line.split(':', 1)[1].strip()
    return platform.processor() or 'unknown'


def git(*args) -> str:
    """Return a git command's output in the repository ('?' if it fails)."""
    try:
        return subprocess.run(('git', *args), cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return '?'


def header(options, threads: int):
    """Print what was run, where and when."""
    print(f'command: tools/with_env.sh python {shlex.join(sys.argv)}')
    print(f'date: {datetime.datetime.now().astimezone().isoformat(timespec="seconds")}')
    changed = [line.split(maxsplit=1)[-1]
               for line in git('status', '--porcelain', '--', 'src', 'config').splitlines()]
    print(f'code: {git("rev-parse", "--short", "HEAD")}'
          + (f' + working tree changes in {", ".join(changed)}' if changed else ''))
    print(f'python {platform.python_version()}, numpy {np.__version__}, scipy {scipy.__version__}')
    print(f'cpu: {cpu_model()} ({os.cpu_count()} logical cores); pinned to core {options.cpu} '
          f'(all {threads} threads of the process); BLAS threads: '
          + ', '.join(f'{v}={os.environ.get(v, "unset")}' for v in BLAS_VARIABLES[:2])
          + '; load average before: ' + ' '.join(f'{v:.2f}' for v in os.getloadavg()))


# ----------------------------------------------------------------------------------------------
# timing


def timed_call(fn, *args):
    """Return (fn(*args), wall ns by perf_counter_ns, CPU ns of this thread around it)."""
    cpu = time.thread_time_ns()
    start = now()
    result = fn(*args)
    wall = now() - start
    return result, wall, time.thread_time_ns() - cpu


class Timings:
    """Durations (ns) by label; module functions wrapped to time each call."""

    def __init__(self):
        self.ns, self.cpu_ns = {}, {}
        self.on = False

    def add(self, label: str, ns: int, cpu_ns: int | None = None):
        """Record a duration (and the thread's CPU time, if measured) if timing is on."""
        if self.on:
            self.ns.setdefault(label, []).append(ns)
            if cpu_ns is not None:
                self.cpu_ns.setdefault(label, []).append(cpu_ns)

    def wrap(self, owner, name: str, label: str):
        """Replace owner.name by a wrapper that records each call's duration under `label`."""
        inner = getattr(owner, name)

        @functools.wraps(inner)
        def wrapper(*args, **kwargs):
            start = now()
            try:
                return inner(*args, **kwargs)
            finally:
                self.add(label, now() - start)

        setattr(owner, name, wrapper)

    def get(self, label: str) -> np.ndarray:
        """Return the durations of a label, s."""
        return np.array(self.ns.get(label, []), dtype=float) / 1e9

    def cpu(self, label: str) -> np.ndarray:
        """Return the CPU times of a label, s (empty if not measured)."""
        return np.array(self.cpu_ns.get(label, []), dtype=float) / 1e9

    def mean(self, *labels: str) -> float:
        """Return the mean duration over the labels together, s (0 if none)."""
        values = np.concatenate([self.get(label) for label in labels])
        return float(values.mean()) if len(values) else 0.0


def fmt(seconds: float) -> str:
    """Return a duration in us below 1 ms, else in ms."""
    if not math.isfinite(seconds):
        return '-'
    if seconds < 1e-3:
        return f'{seconds * 1e6:.0f} us'
    return f'{seconds * 1e3:.2f} ms'


def table(title: str, rows):
    """Print a table of (label, wall times s[, CPU times s]) rows: n, mean, median, p99, max.

    The last column is the mean CPU time of the thread over the same calls, where measured
    (well below the wall time: the core was taken by something else meanwhile).
    """
    print(f'\n{title}')
    print(f'  {"":52s} {"n":>6s} {"mean":>10s} {"median":>10s} {"p99":>10s} {"max":>10s} '
          f'{"CPU mean":>10s}')
    for label, values, *cpu in rows:
        cpu = cpu[0] if cpu else ()
        cpu_text = fmt(cpu.mean()) if len(cpu) else '-'
        if len(values) == 0:
            print(f'  {label:52s} {0:6d} {"-":>10s} {"-":>10s} {"-":>10s} {"-":>10s} '
                  f'{"-":>10s}')
            continue
        print(f'  {label:52s} {len(values):6d} {fmt(values.mean()):>10s} '
              f'{fmt(np.median(values)):>10s} {fmt(np.percentile(values, 99)):>10s} '
              f'{fmt(values.max()):>10s} {cpu_text:>10s}')


# ----------------------------------------------------------------------------------------------
# the traffic


def weights(items) -> np.ndarray:
    """Return normalised weights of scenario entries."""
    w = np.array([float(item['weight']) for item in items])
    return w / w.sum()


def container(rng, serial: int, arrival: float, goods: dict, size, source: float = 0.0):
    """Return a container of `goods` (its NORM included), a bare Cs-137 source at its centre."""
    mass = float(goods['mass']) * float(rng.uniform(0.8, 1.1))
    items = [TrueItem('goods', goods['description'], False, mass=mass)]
    if goods.get('norm'):
        items.append(TrueItem('norm_cargo', f'{goods["description"]} (NORM)', False,
                              specific_activity={k: float(v) for k, v in goods['norm'].items()},
                              mass=mass))
    if source:
        items.append(TrueItem('radioactive_source', 'Cs-137', True, nuclide='Cs-137',
                              activity=source, position=tuple(0.5 * v for v in size)))
    return SimSubject(
        subject=Subject(SubjectKind.CONTAINER, iso6346.make_number('SPD', serial, 'U')),
        arrival=arrival, device=DEVICE, declaration_id=f'S-{serial}', declarant_id='TRD100',
        origin_country='CN', declared=(), gross_mass=mass, declared_arrival=arrival,
        filed_at=0.0, size=size, cargo_material=goods['material'],
        cargo_density=float(goods['bulk_density']), truth=tuple(items))


def traffic(rng, n: int, source_every: int, activity: float) -> list:
    """Return the warm-up's two containers, then `n` queued ones of the default scenario's mix."""
    scenario = yaml.safe_load((ROOT / 'config' / 'scenarios' / 'default.yaml').read_text())
    goods = scenario['goods']['container']
    clean = [g for g in goods if not g.get('norm')]
    norm = [g for g in goods if g.get('norm')]
    types = container_types()
    names = sorted(types)
    p_types = np.array([types[k] for k in names], dtype=float)
    p_types /= p_types.sum()
    out = [container(rng, 0, WARM_UP, clean[0], CONTAINER_INTERIOR['40ft'], activity),
           container(rng, 1, WARM_UP + 1.0, norm[0], CONTAINER_INTERIOR['40ft'])]
    for i in range(n):
        size = CONTAINER_INTERIOR[names[rng.choice(len(names), p=p_types)]]
        arrival = WARM_UP + 2.0 + i
        if source_every and i % source_every == source_every - 1:
            g = clean[rng.choice(len(clean), p=weights(clean))]
            out.append(container(rng, 2 + i, arrival, g, size, activity))
        else:
            g = goods[rng.choice(len(goods), p=weights(goods))]
            out.append(container(rng, 2 + i, arrival, g, size))
    return out


def container_types() -> dict:
    """Return the default scenario's container type shares."""
    scenario = yaml.safe_load((ROOT / 'config' / 'scenarios' / 'default.yaml').read_text())
    return {k: float(v) for k, v in scenario['containers']['types'].items()}


# ----------------------------------------------------------------------------------------------
# the run


def run(options, spec, timings: Timings) -> dict:
    """Drive the lane; feed both chains every frame; return what they decided (for the tables)."""
    sim_rng = np.random.default_rng(options.seed)
    subjects = traffic(sim_rng, options.passages, options.source_every, options.activity)
    truth = {s.subject.id: s for s in subjects}
    lane = PortalLane(spec, sim_rng, spectra=True)
    gains = {d.id: 1.0 + d.gain_temperature_coefficient * (options.temperature - CALIBRATION_C)
             for d in spec.spectrometers}
    geometry = LaneGeometry.from_spec(spec)
    gross = portal_alarm.PortalAlarm(alarm_parameters(ROOT / 'config' / 'radiation.yaml'),
                                     geometry)
    model = lane_spectra.spectrometer_of(spec.spectrometers[0])
    spectral = SpectralPortal(model, SpectralParameters())
    edges = tuple(spec.window_edges_kev)
    # the driver's state: the read id and speed of the last occupancy edge
    read_id, speed, seq, spectrum_seq = '', math.nan, 0, 0
    pending, t = list(subjects), 0.0
    warm = 2  # passages of the warm-up
    verdicts, spectral_verdicts, located = [], [], []
    simulated, timed_frames, ticks = 0.0, 0, []
    started = time.monotonic()
    while pending or lane.busy:
        t = round(t + spec.frame_period, 9)
        while pending and pending[0].arrival <= t:
            lane.enqueue(pending.pop(0))
        frame = lane.step(t, gains)
        for event in frame.events:
            read_id = event.subject_id if event.occupied else ''
            speed = event.speed if event.occupied else math.nan
        subject_id = read_id if frame.occupied else ''
        timings.on = len(verdicts) >= warm and len(spectral_verdicts) >= warm
        tick = 0
        # 1. gross counts: one frame of all panels
        verdict, spent, cpu = timed_call(
            gross.feed, t, seq, frame.counts, frame.live_time, frame.occupied, subject_id,
            speed if frame.occupied else math.nan, frame.windows, edges)
        seq += 1
        tick += spent
        if verdict is not None:
            timings.add('gross: passage end', spent, cpu)
            verdicts.append((verdict, timings.on))
            threat_like = verdict.discrimination is None or (
                verdict.discrimination.log_likelihood_ratio > 0)
            if verdict.alarm and threat_like:
                located.append((verdict, locate(timings, verdict, geometry,
                                                gross.tracker.background.rate()),
                                timings.on))
        else:
            timings.add('gross: occupied' if frame.occupied else 'gross: empty', spent, cpu)
        # 2. spectra: each spectrometer's 0.1 s spectrum
        for name in sorted(frame.spectra):
            estimates = len(timings.ns.get('gain estimate', ()))
            found, spent, cpu = timed_call(
                spectral.feed, t, spectrum_seq, name, frame.spectra[name], SPECTRUM_LIVE_TIME,
                frame.occupied, subject_id)
            spectrum_seq += 1
            tick += spent
            if found is not None:
                label = 'spectrum: passage end'
                spectral_verdicts.append((found, timings.on))
            elif frame.occupied:
                label = 'spectrum: occupied'
            elif len(timings.ns.get('gain estimate', ())) > estimates:
                label = 'spectrum: empty, with gain estimate'
            else:
                label = 'spectrum: empty'
            timings.add(label, spent, cpu)
        if timings.on:
            simulated += spec.frame_period
            timed_frames += 1
            ticks.append(tick)
        if options.progress and seq % 3000 == 0:
            print(f'  [sim t {t:.0f} s, {len(verdicts)} passages, '
                  f'{time.monotonic() - started:.0f} s wall]', file=sys.stderr, flush=True)
    return dict(verdicts=verdicts, spectral=spectral_verdicts, located=located, truth=truth,
                simulated=simulated, frames=timed_frames, ticks=np.array(ticks) / 1e9,
                gains=gains, spectral_portal=spectral, gross=gross, geometry=geometry, lane=lane,
                t=t, seq=seq, wall=time.monotonic() - started)


def locate(timings: Timings, verdict, geometry, background):
    """Run what rpm_alarm's worker thread runs after an alarm; time it; return the source."""
    def run_locate():
        try:
            return located_source.locate(verdict.passage, geometry, background,
                                         located_source.nuclide_of(verdict.discrimination),
                                         'container')
        except ValueError:
            return None

    found, wall, cpu = timed_call(run_locate)
    timings.add('localization: locate', wall, cpu)
    if found is not None and found.clear:
        _, wall, cpu = timed_call(found.field)
        timings.add('localization: dose-rate field', wall, cpu)
    return found


# ----------------------------------------------------------------------------------------------
# the report


def kind_of(sim: SimSubject) -> str:
    """Return what a subject carries: its goods, NORM or a source in them."""
    goods = sim.truth[0].description
    if any(item.nuclide for item in sim.truth):
        return f'Cs-137 in {goods}'
    if any(item.specific_activity for item in sim.truth):
        return f'{goods} (NORM)'
    return goods


def decisions(result: dict, activity: float):
    """Print what the chains decided on the timed passages (a sanity check of the inputs)."""
    truth = result['truth']
    rows = {}
    for verdict, timed in result['verdicts']:
        if not timed:
            continue
        sim = truth.get(verdict.passage.subject_id)
        row = rows.setdefault(kind_of(sim) if sim else 'unread id', [0, 0, 0, 0])
        row[0] += 1
        row[1] += int(verdict.alarm)
    for found, timed in result['spectral']:
        if not timed or found.identification is None:
            continue
        sim = truth.get(found.subject_id)
        row = rows.setdefault(kind_of(sim) if sim else 'unread id', [0, 0, 0, 0])
        row[2] += int('Cs-137' in {i.nuclide for i in found.identification.identified})
        row[3] += int(found.log_likelihood_ratio > 0)
    print(f'\nthe timed passages (Cs-137 sources: {activity / 1e6:g} MBq, bare, at the '
          'container centre)')
    print(f'  {"cargo":38s} {"passages":>9s} {"gross alarms":>13s} {"Cs-137 named":>13s} '
          f'{"isotope LLR>0":>14s}')
    for kind, (n, alarms, named, positive) in sorted(rows.items()):
        print(f'  {kind:38s} {n:9d} {alarms:13d} {named:13d} {positive:14d}')
    placed = [(v, f) for v, f, timed in result['located'] if timed]
    clear = [(v, f) for v, f in placed if f is not None and f.clear]
    errors = []
    for verdict, found in clear:
        sim = truth.get(verdict.passage.subject_id)
        sources = [i for i in sim.truth if i.nuclide] if sim else []
        if sources:
            errors.append(float(np.linalg.norm(found.in_subject - np.array(sources[0].position))))
    text = (f'  localizations after a threat-like alarm: {len(placed)}, {len(clear)} clear')
    if errors:
        text += (f'; position error in the subject median {np.median(errors):.2f} m '
                 f'(max {max(errors):.2f} m)')
    print(text)


def budget(result: dict, timings: Timings, spec, options):
    """Print the load of one portal on one core at 10 Hz frames and spectra."""
    frames_per_s = 1.0 / spec.frame_period
    spectra_per_s = len(spec.spectrometers) / SPECTRUM_LIVE_TIME
    types = container_types()
    total = sum(types.values())
    length = sum(CONTAINER_INTERIOR[k][0] * v / total for k, v in types.items())
    cycle = (spec.approach + length + spec.exit) / spec.speed + spec.headway
    passages_per_s = 1.0 / cycle
    frame = timings.mean('gross: empty', 'gross: occupied')
    spectrum = timings.mean('spectrum: empty', 'spectrum: empty, with gain estimate',
                            'spectrum: occupied')
    gross_passage = timings.mean('gross: passage end')
    spectral_passage_cost = timings.mean('spectrum: passage end')
    localization = timings.mean('localization: locate') + timings.mean(
        'localization: dose-rate field')
    parts = [
        (f'gross counts: {frames_per_s:g} frames/s (4 panels each) x {fmt(frame)}',
         frames_per_s * frame),
        (f'spectra: {spectra_per_s:g} spectra/s ({len(spec.spectrometers)} NaI x 10 Hz) x '
         f'{fmt(spectrum)}', spectra_per_s * spectrum),
        (f'passages: {passages_per_s:.4f}/s x ({fmt(gross_passage)} gross + '
         f'{fmt(spectral_passage_cost)} identification)',
         passages_per_s * (gross_passage + spectral_passage_cost)),
    ]
    load = sum(share for _, share in parts)

    def cpu_mean(*labels):
        values = np.concatenate([timings.cpu(label) for label in labels])
        return float(values.mean()) if len(values) else 0.0

    load_cpu = (frames_per_s * cpu_mean('gross: empty', 'gross: occupied')
                + spectra_per_s * cpu_mean('spectrum: empty', 'spectrum: occupied',
                                           'spectrum: empty, with gain estimate')
                + passages_per_s * (cpu_mean('gross: passage end')
                                    + cpu_mean('spectrum: passage end')))
    print(f'\n3. budget on one core for {spec.name}: each frame / spectrum has '
          f'{BUDGET * 1e3:g} ms at 10 Hz')
    print(f'  passage rate: trucks queued back to back, ({spec.approach:g} m approach + '
          f'{length:.2f} m mean length ({", ".join(f"{k} {v:g}" for k, v in types.items())}) + '
          f'{spec.exit:g} m exit) / {spec.speed:g} m/s + {spec.headway:g} s headway = '
          f'{cycle:.1f} s per truck (config/site.yaml)')
    for label, share in parts:
        print(f'  {label:86s} {100 * share:7.3f} %')
    print(f'  {"total":86s} {100 * load:7.3f} %')
    label = 'the same on the CPU time of the thread (time taken by other processes left out)'
    print(f'  {label:86s} {100 * load_cpu:7.3f} %')
    processed = result['ticks'].sum()
    measured = processed / result['simulated'] if result['simulated'] else math.nan
    spectra = len(result['ticks']) * len(spec.spectrometers)
    passages = sum(timed for _, timed in result['verdicts'])
    print(f'  measured on this run: {fmt(processed)} of processing for {result["simulated"]:.0f} '
          f's of lane ({result["frames"]} frames, {spectra} spectra, {passages} passages) = '
          f'{100 * measured:.3f} % (localization not included)')
    ticks = result['ticks']
    over = int(np.sum(ticks > BUDGET))
    print(f'  per 0.1 s tick (1 frame + {len(spec.spectrometers)} spectra): median '
          f'{fmt(np.median(ticks))}, p99 {fmt(np.percentile(ticks, 99))}, max {fmt(ticks.max())};'
          f' {over} of {len(ticks)} ticks over {BUDGET * 1e3:g} ms')
    print(f'one core keeps up: {"yes" if load < 1.0 else "no"}, load {100 * load:.2f} %')
    if localization > 0:
        worst = load + passages_per_s * localization
        print(f"  plus, per threat-like alarm, the localization on rpm_alarm's worker thread: "
              f'{fmt(localization)} of the same core (mean; longest '
              f'{fmt(timings.get("localization: locate").max())} + its field); if every '
              f'passage alarmed: load {100 * worst:.1f} % (one core keeps up: '
              f'{"yes" if worst < 1.0 else "no"})')


def concurrent(result: dict, spec, count: int):
    """Print part 4: frame latency at 10 Hz while a worker thread localizes, as in the node.

    rpm_alarm feeds frames in its executor's thread and localizes on a ThreadPoolExecutor
    worker of the same process: on one core they share the core and the GIL. Frames of the empty
    lane (the lane after the run) are fed at their 0.1 s ticks (time.sleep in between), while
    the worker localizes an alarm of the run; latency = tick to verdict.
    """
    alarms = [verdict for verdict, _, timed in result['located'] if timed][:count]
    if not alarms:
        return
    gross, geometry, lane = result['gross'], result['geometry'], result['lane']
    t, seq, frames = result['t'], result['seq'], []
    for _ in range(600):
        t = round(t + spec.frame_period, 9)
        frames.append((t, lane.step(t)))
    background = gross.tracker.background.rate()
    edges = tuple(spec.window_edges_kev)
    period = round(spec.frame_period * 1e9)
    state = {'i': 0, 'seq': seq}

    def paced(until):
        """Feed frames at their ticks until until() is true; return latencies (s)."""
        out, tick = [], now()
        while not until(len(out)):
            tick += period
            time.sleep(max(0.0, (tick - now()) / 1e9))
            stamp, frame = frames[state['i'] % len(frames)]
            state['i'] += 1
            gross.feed(stamp, state['seq'], frame.counts, frame.live_time, False, '',
                       math.nan, frame.windows, edges)
            state['seq'] += 1
            out.append((now() - tick) / 1e9)
        return np.array(out)

    def work(verdict):
        wall, cpu = now(), time.thread_time_ns()
        found = located_source.locate(verdict.passage, geometry, background,
                                      located_source.nuclide_of(verdict.discrimination),
                                      'container')
        if found is not None and found.clear:
            found.field()
        return (now() - wall) / 1e9, (time.thread_time_ns() - cpu) / 1e9

    alone = paced(lambda n: n >= 50)
    during, walls, cpus = [], [], []
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix='locate') as pool:
        for verdict in alarms:
            future = pool.submit(work, verdict)
            during.append(paced(lambda n, f=future: f.done()))
            wall, cpu = future.result()
            walls.append(wall)
            cpus.append(cpu)
    during = np.concatenate(during)
    print(f'\n4. rpm_alarm on one core: frames of the empty lane at 10 Hz in the main thread '
          f'while the worker thread localizes ({len(alarms)} alarm(s) of the run, one after the '
          'other)')
    print(f'  localization: wall {", ".join(f"{w:.2f}" for w in walls)} s; CPU of the worker '
          f'{", ".join(f"{c:.2f}" for c in cpus)} s')
    table('  frame latency, tick to verdict (PortalAlarm.feed, including the wait for the GIL)', [
        ('no localization running', alone),
        ('while the worker localizes', during),
    ])
    print(f'  frames later than {BUDGET * 1e3:g} ms while localizing: '
          f'{int(np.sum(during > BUDGET))} of {len(during)}')

def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--passages', type=int, default=150,
                        help='timed container passages (after the 2 of the warm-up)')
    parser.add_argument('--source-every', type=int, default=5,
                        help='one container in this many carries a Cs-137 source (0: none)')
    parser.add_argument('--activity', type=float, default=8e7,
                        help='Bq of the Cs-137 sources (alarm and are located)')
    parser.add_argument('--temperature', type=float, default=25.0,
                        help='deg C of the spectrometers (their gain drifts from 20 deg C)')
    parser.add_argument('--seed', type=int, default=20261130)
    parser.add_argument('--cpu', type=int, default=0, help='the core to pin the process to')
    parser.add_argument('--concurrent', type=int, default=3,
                        help='alarms localized on a worker thread while frames come at 10 Hz '
                        '(0: skip)')
    parser.add_argument('--blas-threads', type=int, default=1,
                        help='BLAS threads (OPENBLAS_NUM_THREADS, OMP_NUM_THREADS; the script '
                        're-executes itself to set them); 0: leave the environment as it is')
    parser.add_argument('--progress', action='store_true', help='progress lines on stderr')
    options = parser.parse_args()
    wanted = str(options.blas_threads)
    if options.blas_threads > 0 and any(os.environ.get(v) != wanted for v in BLAS_VARIABLES):
        os.environ.update({v: wanted for v in BLAS_VARIABLES})  # before numpy loads BLAS
        os.execv(sys.executable, [sys.executable, *sys.argv])
    threads = pin(options.cpu)
    header(options, threads)
    site = load_site(ROOT / 'config' / 'site.yaml')
    spec = site.portals[DEVICE]
    timings = Timings()
    timings.wrap(alarm, 'evaluate_passage', 'gross passage: gross-count test')
    timings.wrap(portal_alarm, 'discriminate', 'gross passage: energy windows')
    timings.wrap(LaneGeometry, 'background_factors', 'gross passage: shadow fit')
    timings.wrap(spectral_passage, 'estimate_gain', 'gain estimate')
    timings.wrap(spectral_passage, 'identify', 'identification: identify')
    timings.wrap(spectral_passage, 'threat_log_bayes_factor',
                 'identification: threat Bayes factor')
    p = SpectralParameters()
    print(f'{DEVICE}: {len(spec.panels)} PVT panels, {spec.frame_period:g} s frames, energy '
          f'windows {list(spec.window_edges_kev)} keV; {len(spec.spectrometers)} NaI '
          f'({spec.spectrometers[0].channels} channels) fed at 10 Hz ({SPECTRUM_LIVE_TIME:g} s '
          f'spectra; site file: one per {spec.spectrum_period:g} s); spectral gain estimate '
          f'every {p.gain_every} learned spectra per detector')
    result = run(options, spec, timings)
    gains = ', '.join(f'{k} {v:.4f}' for k, v in sorted(result['gains'].items()))
    learned = ', '.join(f'{k} {b.gain:.4f}' for k, b in
                        sorted(result['spectral_portal'].backgrounds.items()))
    print(f'{options.passages} timed passages + 2 of warm-up, {result["simulated"]:.0f} s of '
          f'lane timed; simulation and processing took {result["wall"]:.0f} s of wall time')
    print(f'spectrometer gains at {options.temperature:g} deg C: recorded {gains}; '
          f'estimated {learned}')
    decisions(result, options.activity)
    g = timings.get

    def w(label):  # wall and CPU times of a top-level call
        return timings.get(label), timings.cpu(label)

    table('1. gross counts (radiation/portal_alarm.PortalAlarm.feed: one frame of 4 panels)', [
        ('(a) frame of the empty lane', *w('gross: empty')),
        ('(b) frame inside a passage', *w('gross: occupied')),
        ('(c) frame completing a passage (per-passage test)', *w('gross: passage end')),
        ('    of which: shadow fit (LaneGeometry)', g('gross passage: shadow fit')),
        ('    of which: gross-count test (evaluate_passage)',
         g('gross passage: gross-count test')),
        ('    of which: energy windows (discriminate)', g('gross passage: energy windows')),
        ('(d) localization after an alarm (worker thread)', *w('localization: locate')),
        ('    and its dose-rate field (published with it)', *w('localization: dose-rate field')),
    ])
    table('2. spectra at 10 Hz (radiation/spectral_passage.SpectralPortal.feed: one 1,024-channel '
          'spectrum)', [
              ('empty lane (background learning)', *w('spectrum: empty')),
              ('empty lane, with the gain estimate', *w('spectrum: empty, with gain estimate')),
              ('    of which: estimate_gain', g('gain estimate')),
              ('inside a passage (rebinned and summed)', *w('spectrum: occupied')),
              ('completing a passage (identification)', *w('spectrum: passage end')),
              ('    of which: identify', g('identification: identify')),
              ('    of which: threat Bayes factor', g('identification: threat Bayes factor')),
          ])
    budget(result, timings, spec, options)
    if options.concurrent:
        concurrent(result, spec, options.concurrent)


if __name__ == '__main__':
    main()
