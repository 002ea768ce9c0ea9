"""Decision quality of risk fusion (issue 3): contraband caught at 3 % inspected, calibration.

    tools/with_env.sh python benchmarks/bench_decisions.py [--scenarios default smoke]
        [--days default=30 smoke=100] [--rates 0.03 0.01] [--jobs 2] [--seed N]

Per scenario of the suite (config/scenarios/<name>.yaml):

1. Prior. The scenario's history (simulation/history.py: `history.days` past days, inspected by
   the legacy targeting and a 1 % random audit) and the declaration prior fitted on it, as the
   site fits it from the clearance database (tests/test_prior_training.py: the same model).
2. Held-out traffic: `--days` days' worth, the scenario's counts and duration multiplied by that
   number (same traders, same arrival rate, one continuous stretch of time; the day's random
   stream, never seen by the fit). Every subject with a device passes its portal lane
   (simulation/portal_lane.py: the physics, the one place that reads what a subject carries)
   and the portal's processing chain (simulation/offline_site.py: what the driver and alarm
   nodes do, with config/radiation.yaml), which yields the radiation Evidence the alarm node
   would publish, for the subject id the lane reader read (misreads included). Each lane runs
   60 s empty first so that its background is learned (a site's nodes run continuously).
3. Decisions, inspecting a share `rate` of each subject kind:
   oracle        the ceiling: only contraband inspected (min(1, rate / prevalence) caught)
   (a) full      the risk engine (fusion/engine.py) with the prior and the evidence, fed as the
                 fusion node feeds it (declarations when filed, evidence when it arrives, a
                 decision once the expected evidence is in or at the decision timeout), its
                 budget policy set to `rate` (config/fusion.yaml for everything else); the
                 realised inspection rate is reported, not imposed
   (a+) learning the same, with the simulated officers' results fed back as on a running site
                 (each inspection finds each item with the history's inspection sensitivity,
                 120 s later; the engine updates its prior counts and, after 200 results, uses
                 its evidence calibration). Truth enters here as the officers' findings, as on
                 the site.
   (b) hindsight the final posteriors of (a), the top `rate` of each kind (ranked by their
                 log-odds: as a float, a posterior saturates at 1 beyond ~37 nats)
                 (not done for (a+): its posteriors before and after its calibration
                 starts are not on one scale)
   (c) prior     the declaration prior alone, top `rate` of each kind
   (d) portal    the radiation evidence alone (its LLR; base-rate prior), top `rate` of each
                 kind; passengers pass no portal, so it picks them at random
   (e) legacy    the legacy targeting rules of the history (watch-listed origins and HS
                 chapters, traders with a seizure in the last 30 days), top `rate` of each kind
   random        what uniform random inspection catches in expectation
   Rankings break ties at random (seeded). A subject counts as inspected when its final
   decision is an inspection that can find contraband (fusion/policy.py CAPACITY_ACTIONS), as
   the evaluator scores it (in (a+) the officers inspect at a subject's first inspection
   decision, so a subject re-decided to release after one counts as learned from but not as
   inspected, and the other way round). Caught shares per kind and per contraband category
   (and nuclide); 'of ceiling' compares each row with an oracle that inspects as many
   subjects of each kind as the row did.
4. Calibration of the full system's final posteriors ((a), (a+)) and of the prior alone
   against ground truth (contraband or not): reliability diagram (quantile bins), Brier score
   with Murphy's decomposition, ECE, log loss, overall and per kind (fusion/calibration.py).

Ground truth is read by the lane physics, by the simulated officers of (a+) and by the scoring,
nowhere in the processing path (offline_site, the engine, the prior). Deterministic for a given
seed (the scenario's unless --seed is given): evidence ids, lanes' and officers' random streams
and tie-breaks are all derived from it. The portal physics costs 2-3 s of CPU per container of
NORM cargo: it runs in --jobs processes, then each lane's frames go through the processing
chain in order (one process per lane).
"""

import argparse
import copy
import dataclasses
import heapq
import multiprocessing
import os
import pathlib
import shlex
import subprocess
import sys
import time

import numpy as np
import yaml

from customs_lab.common.subjects import Subject, SubjectKind
from customs_lab.fusion.calibration import (
    brier_decomposition,
    expected_calibration_error,
    format_reliability_table,
    log_loss,
    reliability_diagram,
)
from customs_lab.fusion.declaration_prior import DeclarationPrior
from customs_lab.fusion.engine import KIND_NAMES, EngineConfig, RiskEngine, coverage_config
from customs_lab.fusion.evidence_store import DEFAULT_TTL
from customs_lab.fusion.logodds import FusionConfig, logit, sigmoid
from customs_lab.fusion.policy import CAPACITY_ACTIONS, PolicyConfig, default_models
from customs_lab.radiation.shadow import LaneGeometry
from customs_lab.simulation.history import (
    declared_features,
    generate_history,
    history_config,
    training_records,
)
from customs_lab.simulation.offline_site import OfflinePortal, alarm_parameters
from customs_lab.simulation.portal_lane import PortalLane
from customs_lab.simulation.scenario import Scenario, generate_traffic
from customs_lab.site.layout import load_site

ROOT = pathlib.Path(__file__).resolve().parents[1]
KINDS = ('container', 'parcel', 'passenger')
WARM_UP = 60.0  # s of empty lane before the first subject: the background is learned
INSPECTION_DELAY = 120.0  # s from a decision to inspect to the officer's result (simulator)
# Random streams (numpy SeedSequence entropy [seed, stream]); scenario.py uses 1-3 and the
# site simulator's officers 4: the lanes, officers and tie-breaks of this benchmark
LANE_STREAM, OFFICER_STREAM, TIE_STREAM = 101, 4, 102
DEFAULT_DAYS = {'default': 30, 'smoke': 100}
CATEGORIES = ('radioactive_source', 'narcotics', 'weapon', 'ammunition', 'undeclared_battery',
              'explosive')  # printed first, in this order; any others follow


# -- the world: scenario, history, held-out traffic ----------------------------------------

def scenario_path(name: str) -> pathlib.Path:
    """Return a scenario file given as a path or as a name in config/scenarios/."""
    path = pathlib.Path(name)
    return path if path.suffix == '.yaml' else ROOT / 'config' / 'scenarios' / f'{name}.yaml'


def held_out(scenario: Scenario, days: int) -> Scenario:
    """Return `days` of the scenario in one stretch: counts and duration times `days`."""
    spec = copy.deepcopy(scenario.spec)
    for kind in KINDS:
        section = spec.get(kind + 's')
        if section:
            section['count'] = int(section.get('count', 0)) * days
    return Scenario(scenario.name, scenario.seed, scenario.duration * days,
                    scenario.declaration_lead, scenario.eta_error, spec)


def bulk_radioactivity(sim) -> bool:
    """Return True if the subject carries NORM cargo (the lane's physics takes seconds)."""
    return any(item.specific_activity for item in sim.truth)


# -- portal physics (parallel) and the processing chain (one process per lane) --------------

class PrecomputedLane(PortalLane):
    """A PortalLane whose expected count rates per subject were computed beforehand.

    PortalLane computes a subject's expected rates per frame and panel when it enters the lane
    (_enter: the physics, seconds for NORM cargo) and then steps through them. Here _enter was
    run in a worker process (`physics`) with the same code; the result is looked up.
    """

    def __init__(self, spec, rng, expected: dict):
        super().__init__(spec, rng, spectra=False)
        self._precomputed = expected

    def _enter(self, sim, t0: float):
        found = self._precomputed.pop(sim.subject.key, None)
        if found is None:
            super()._enter(sim, t0)
        else:
            expected, model = found
            self._active = (sim, t0, expected, self._length(sim), model)


def physics(task) -> dict:
    """Return {subject key: (expected rates (frames, panels), detector model)} for a batch.

    The detector model holds the panels' energy-window shares and the subject's shadow per
    frame (no spectra: the benchmark's lanes have no spectrometers).
    """
    spec, sims = task
    lane = PortalLane(spec, np.random.default_rng(0), spectra=False)  # _enter draws nothing
    out = {}
    for sim in sims:
        lane._enter(sim, 0.0)
        expected, model = lane._active[2], lane._active[4]
        if not (isinstance(expected, np.ndarray) and expected.shape[1:] == (len(spec.panels),)
                and isinstance(model, dict)):
            raise RuntimeError('PortalLane._enter changed: update PrecomputedLane')
        out[sim.subject.key] = (expected, model)
    return out


def run_lane(task) -> dict:
    """Pass a lane's subjects through physics and the offline driver + alarm; return evidence.

    Returns the evidence (offline_site.PortalEvidence, keyed by the id read) with, for scoring
    only, the key of the subject that really passed (from the lane's log of passages), and the
    portal's statistics.
    """
    spec, sims, expected, seed, index, parameters = task
    lane = PrecomputedLane(spec, np.random.default_rng([seed, LANE_STREAM, index]), expected)
    kind = SubjectKind[spec.subject_kind.upper()]
    portal = OfflinePortal(spec.hardware_id, kind, parameters, LaneGeometry.from_spec(spec),
                           spec.window_edges_kev)
    pending = sorted(sims, key=lambda s: (s.arrival, s.subject.key))
    found, t, i = [], round(-WARM_UP, 9), 0
    while i < len(pending) or lane.busy:
        t = round(t + spec.frame_period, 9)
        while i < len(pending) and pending[i].arrival <= t:
            lane.enqueue(pending[i])
            i += 1
        frame = lane.step(t)
        evidence = portal.feed(t, frame.counts, frame.live_time, frame.occupied, frame.events,
                               frame.windows, frame.neutron_counts)
        if evidence is not None:
            found.append(evidence)
    # which subject was in the lane when each passage ended (the lane holds one at a time)
    passed = sorted(lane.passed, key=lambda p: p[1])
    starts = [p[1] for p in passed]
    truth_keys = []
    for evidence in found:
        j = int(np.searchsorted(starts, evidence.stamp, side='right')) - 1
        inside = j >= 0 and passed[j][1] <= evidence.stamp <= passed[j][2]
        truth_keys.append(passed[j][0] if inside else '')
    return {'evidence': found, 'truth_keys': truth_keys, 'stats': dict(portal.stats),
            'frames': portal.frames}


def radiation_evidence(worlds, site, parameters, jobs: int) -> float:
    """Add each world's radiation evidence (world['lanes']); return the CPU s of the workers.

    The physics of bulk (NORM) cargo, seconds per subject, is computed in `jobs` processes
    first; lanes without any start at once, the others once their physics is in.
    """
    physics_tasks, lanes = [], {}
    for w, world in enumerate(worlds):
        for index, (name, spec) in enumerate(sorted(site.portals.items())):
            sims = [s for s in world['traffic'] if s.device == name]
            if not sims:
                continue
            bulk = sorted((s for s in sims if bulk_radioactivity(s)), key=lambda s: s.subject.key)
            chunks = [bulk[k:k + 4] for k in range(0, len(bulk), 4)]
            physics_tasks += [((w, name), (spec, chunk)) for chunk in chunks]
            lanes[(w, name)] = {'task': [spec, sims, {}, world['seed'], index, parameters],
                                'waiting': len(chunks)}
    started = cpu_children()
    with multiprocessing.get_context('fork').Pool(jobs) as pool:
        running = {}
        for key, lane in sorted(lanes.items(), key=lambda kv: -len(kv[1]['task'][1])):
            if not lane['waiting']:
                running[key] = pool.apply_async(run_lane, (tuple(lane['task']),))
        computing = [(key, pool.apply_async(physics, (task,))) for key, task in physics_tasks]
        for key, result in computing:
            lane = lanes[key]
            lane['task'][2].update(result.get())
            lane['waiting'] -= 1
            if not lane['waiting']:
                running[key] = pool.apply_async(run_lane, (tuple(lane['task']),))
        for (w, name), result in running.items():
            worlds[w]['lanes'][name] = result.get()
    return cpu_children() - started


def source_version() -> str:
    """Return the git commit of the code and config measured, noting uncommitted changes."""
    try:
        commit = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], cwd=ROOT, text=True,
                                capture_output=True, check=True).stdout.strip()
        changed = subprocess.run(['git', 'status', '--porcelain', '--', 'src', 'config'],
                                 cwd=ROOT, text=True, capture_output=True,
                                 check=True).stdout.splitlines()
    except (OSError, subprocess.CalledProcessError):
        return 'unknown (not a git checkout)'
    return commit + (f' + {len(changed)} uncommitted or new files in src/ and config/'
                     if changed else '')


def cpu_children() -> float:
    """Return the CPU s used by finished child processes."""
    times = os.times()
    return times.children_user + times.children_system


# -- the fusion node, offline ---------------------------------------------------------------

OFFLINE_ABSENT = ('xray.',)  # evidence kinds the offline site does not simulate


def fusion_parameters(path) -> dict:
    """Return the risk_fusion node's parameters from config/fusion.yaml."""
    document = yaml.safe_load(pathlib.Path(path).read_text()) or {}
    section = document.get('/**/risk_fusion', document.get('risk_fusion', {})) or {}
    return section.get('ros__parameters', {}) or {}


def engine_config(parameters: dict, target_rate: float) -> EngineConfig:
    """Return the engine's configuration as the node builds it, every kind's target `rate`."""
    get = parameters.get
    models = {kind: dataclasses.replace(model, target_rate=target_rate,
                                        miss_cost=float(get(f'miss_cost_{KIND_NAMES[kind]}',
                                                            model.miss_cost)))
              for kind, model in default_models().items()}
    defaults = PolicyConfig()
    policy = PolicyConfig(
        models=models,
        shift_length=float(get('shift_length', defaults.shift_length)),
        shift_origin=float(get('shift_origin', defaults.shift_origin)),
        price_step=float(get('price_step', defaults.price_step)),
        must_inspect=float(get('must_inspect', defaults.must_inspect)),
        random_audit_rate=float(get('random_audit_rate', defaults.random_audit_rate)),
        audit_key=str(get('audit_key', defaults.audit_key)))
    base = FusionConfig().base_rate
    fusion = FusionConfig(base_rate={kind: float(get(f'base_rate_{name}', base[kind]))
                                     for kind, name in KIND_NAMES.items()})
    ttl = dict(zip(get('evidence_ttl_prefixes', list(DEFAULT_TTL)),
                   get('evidence_ttl_seconds', list(DEFAULT_TTL.values())), strict=True))
    prefixes = get('coverage_prefixes', [])
    coverage = coverage_config(prefixes, {name: get(f'coverage_{name}', [1.0] * len(prefixes))
                                          for name in KIND_NAMES.values()})
    config = EngineConfig(fusion=fusion, policy=policy, ttl=ttl, coverage=coverage)
    for field in dataclasses.fields(config):  # the scalar settings the node takes as parameters
        value = getattr(config, field.name)
        if field.name in parameters and isinstance(value, (int, float)):
            setattr(config, field.name, type(value)(parameters[field.name]))
    config.validate()
    return config


@dataclasses.dataclass
class Track:
    """What the fusion node tracks about one subject (its SubjectFile)."""

    subject: Subject
    id_valid: bool = True
    declared: bool = False
    due: float | None = None
    kinds: set = dataclasses.field(default_factory=set)
    decisions: int = 0


@dataclasses.dataclass(frozen=True)
class Decided:
    """A subject's final decision."""

    time: float
    action: str
    selection: str
    posterior: float
    log_odds: float  # the posterior's log-odds (a posterior beyond ~37 nats is 1.0 in a float)
    prior_log_odds: float
    must_inspect: bool
    decisions: int


def replay(world, prior: DeclarationPrior, config: EngineConfig, parameters: dict,
           officers: bool) -> dict:
    """Feed the world's declarations and evidence to a RiskEngine as the fusion node does.

    Declarations arrive when filed; evidence when its passage ends; a subject is decided as
    soon as every expected evidence kind of its kind has arrived, and otherwise at its due time
    (declared arrival + decision_timeout, or first evidence + timeout if never declared);
    evidence after a decision decides again. With `officers`, each subject sent to an
    inspection is inspected once, INSPECTION_DELAY s later, by the simulated officers (who find
    each contraband item with the history's sensitivity) and the engine learns the result.
    Returns 'final': {subject key: Decided} for every key decided (misread ids included),
    and what the engine learned.
    """
    engine = RiskEngine(config, DeclarationPrior.from_dict(prior.to_dict()) if prior else None)
    timeout = float(parameters.get('decision_timeout', 600.0))
    # the offline site has the radiation portals only: kinds it cannot produce (the X-ray's)
    # are not waited for (NB: the X-ray evidence is not in this benchmark yet)
    expected = {SubjectKind[name.upper()]:
                {k for k in parameters.get(f'expected_evidence_{name}', [''])
                 if k and not k.startswith(OFFLINE_ABSENT)}
                for name in KINDS}
    events, tracks, final = [], {}, {}
    order = iter(range(10**9))
    for sim in world['traffic']:
        heapq.heappush(events, (sim.filed_at, 0, next(order), 'declare', sim))
    for lane in world['lanes'].values():
        for evidence in lane['evidence']:  # the node publishes the neutron item first
            for item in (evidence.neutron, evidence):
                if item is not None:
                    heapq.heappush(events, (item.stamp, 1, next(order), 'evidence', item))
    by_key = {s.subject.key: s for s in world['traffic']}
    sensitivity = world['sensitivity']
    officer_rng = np.random.default_rng([world['seed'], OFFICER_STREAM])
    inspected, learned = set(), 0

    def decide(track, now):
        d = engine.decide(track.subject, now, track.id_valid)
        track.decisions += 1
        key = track.subject.key
        a = d.assessment
        final[key] = Decided(now, d.action, d.policy.selection, a.posterior, a.log_odds,
                             a.prior_log_odds, d.policy.must_inspect, track.decisions)
        if officers and d.policy.selection and key not in inspected:
            inspected.add(key)
            sim = by_key.get(key)
            if sim is not None:  # a misread id: the paperwork does not match, no inspection
                found = {t.category for t in sim.truth
                         if t.contraband and officer_rng.random() < sensitivity}
                heapq.heappush(events, (now + INSPECTION_DELAY, 2, next(order), 'result',
                                        (key, sim.declaration_id, bool(found))))

    while events:
        now, _, _, what, payload = heapq.heappop(events)
        if what == 'declare':
            sim = payload
            key = sim.subject.key
            engine.declare(key, sim.declaration_id, declared_features(sim))
            track = tracks.setdefault(key, Track(sim.subject))
            track.declared, track.due = True, sim.declared_arrival + timeout
            heapq.heappush(events, (track.due, 3, next(order), 'due', key))
        elif what == 'evidence':
            evidence = payload
            key = evidence.subject.key
            engine.add_evidence(key, evidence.item, evidence.stamp)
            track = tracks.get(key)
            if track is None:
                track = tracks[key] = Track(evidence.subject, evidence.id_valid)
            track.id_valid = track.id_valid and evidence.id_valid
            track.kinds.add(evidence.item.kind)
            if track.due is None:
                track.due = now + timeout
                heapq.heappush(events, (track.due, 3, next(order), 'due', key))
            if track.decisions or expected.get(track.subject.kind, set()) <= track.kinds:
                decide(track, now)
        elif what == 'due':
            track = tracks[payload]
            if not track.decisions and track.due == now:
                decide(track, now)
        else:  # an inspection result
            key, declaration_id, seizure = payload
            if engine.learn(key, declaration_id, seizure):
                learned += 1
    return {'final': final, 'learned': learned, 'calibrated': engine.calibrated,
            'labels': list(engine.labels), 'version': engine.version,
            'calibration': engine.calibrator.describe()}


# -- scoring --------------------------------------------------------------------------------

def labels_of(sim) -> set:
    """Return the contraband labels of a subject: categories and, for sources, the nuclide."""
    found = set()
    for item in sim.truth:
        if item.contraband:
            found.add(item.category)
            if item.nuclide:
                found.add(f'{item.category}:{item.nuclide}')
    return found


def ranked(scores, kinds, rate: float, rng) -> np.ndarray:
    """Return a mask of the top `rate` of each kind by score (ties broken at random)."""
    scores, kinds = np.asarray(scores, dtype=float), np.asarray(kinds)
    tie = rng.random(len(scores))
    mask = np.zeros(len(scores), dtype=bool)
    for kind in KINDS:
        index = np.flatnonzero(kinds == kind)
        k = int(round(rate * len(index)))
        order = np.lexsort((tie[index], -scores[index]))
        mask[index[order[:k]]] = True
    return mask


def score(mask, truth) -> dict:
    """Return the counts behind caught shares, precision and inspection rate of a selection."""
    mask = np.asarray(mask, dtype=bool)
    out = {'all': (int(mask.sum()), len(mask), int((mask & truth['contraband']).sum()),
                   int(truth['contraband'].sum()))}
    for kind in KINDS:
        of = truth['kinds'] == kind
        out[kind] = (int((mask & of).sum()), int(of.sum()),
                     int((mask & of & truth['contraband']).sum()),
                     int((of & truth['contraband']).sum()))
    for label in truth['label_names']:
        has = np.array([label in ls for ls in truth['labels']])
        out[label] = (int((mask & has).sum()), int(has.sum()), int((mask & has).sum()),
                      int(has.sum()))
    return out


def ceiling(counts) -> int:
    """Return what an oracle catches inspecting as many subjects of each kind as `counts` did."""
    return sum(min(counts[kind][0], counts[kind][3]) for kind in KINDS)


def pct(part: float, whole: float) -> str:
    """Return part / whole as a percentage ('-' for 0 / 0)."""
    return f'{100.0 * part / whole:.1f}%' if whole else '-'


def caught_cell(counts) -> str:
    """Return 'caught/contraband (share)'."""
    _, _, caught, positives = counts
    return f'{caught}/{positives} ({pct(caught, positives)})'


# -- output ---------------------------------------------------------------------------------

def print_decision_tables(rate, rows, truth):
    """Print the decision-quality tables of one inspection rate."""
    print(f'\n-- inspecting {rate:.0%} of each kind --')
    print('(of ceiling: caught / what an oracle inspecting as many of each kind would catch)')
    print(f'{"method":44} {"inspected":>17} {"contraband caught":>20} {"precision":>10} '
          f'{"of ceiling":>10}')
    for name, s in rows:
        inspected, n, caught, positives = s['all']
        print(f'{name:44} {inspected:>7} ({pct(inspected, n):>6}) '
              f'{caught_cell(s["all"]):>20} {pct(caught, inspected):>10} '
              f'{pct(caught, ceiling(s)):>10}')
    print('\nper kind: contraband caught (share) | precision | inspection rate')
    header = ''.join(f' {k:>36}' for k in KINDS)
    print(f'{"method":44}{header}')
    for name, s in rows:
        cells = ''
        for kind in KINDS:
            inspected, n, caught, _ = s[kind]
            cells += (f' {caught_cell(s[kind]):>18} {pct(caught, inspected):>7} '
                      f'{pct(inspected, n):>8}')
        print(f'{name:44}{cells}')
    names = truth['label_names']
    print('\nper contraband category (and nuclide): caught (share)')
    short = [n.replace('radioactive_source', 'radioactive') for n in names]
    print(f'{"method":44}' + ''.join(f' {n:>22}' for n in short))
    for name, s in rows:
        print(f'{name:44}' + ''.join(f' {caught_cell(s[n]):>22}' for n in names))


def strategy(p) -> str:
    """Return 'quantile', or 'uniform' when p has one value (quantile bins would be empty)."""
    return 'quantile' if len(np.unique(p)) > 1 else 'uniform'


def calibration_section(name: str, p, truth, bins: int):
    """Print calibration figures of forecasts p (overall and per kind) and their diagrams."""
    p = np.clip(np.asarray(p, dtype=float), 0.0, 1.0)
    y = truth['contraband'].astype(float)
    print(f'\n{name}: calibration against ground truth (contraband or not), {bins} quantile '
          'bins')
    print(f'{"subjects":>10} {"n":>6} {"observed":>9} {"mean p":>8} {"Brier":>8} '
          f'{"reliab.":>8} {"resol.":>8} {"uncert.":>8} {"skill":>7} {"ECE":>7} '
          f'{"log loss":>8}')
    groups = [('all', np.ones(len(y), dtype=bool))] + [
        (k, truth['kinds'] == k) for k in KINDS]
    for label, member in groups:
        pk, yk = p[member], y[member]
        d = brier_decomposition(pk, yk, bins, strategy(pk))
        skill = 1.0 - d.brier / d.uncertainty if d.uncertainty > 0 else float('nan')
        print(f'{label:>10} {len(pk):>6} {yk.mean():>9.4f} {pk.mean():>8.4f} {d.brier:>8.5f} '
              f'{d.reliability:>8.5f} {d.resolution:>8.5f} {d.uncertainty:>8.5f} '
              f'{skill:>7.3f} {expected_calibration_error(pk, yk, bins, strategy(pk)):>7.4f} '
              f'{log_loss(pk, yk):>8.4f}')
    for label, member in groups:
        pk = p[member]
        print(f'\n{name}, reliability diagram, {label}'
              + ('' if strategy(pk) == 'quantile' else ' (one forecast value: uniform bins)')
              + ':')
        print(format_reliability_table(reliability_diagram(pk, y[member], bins, strategy(pk))))


def evidence_section(world, site):
    """Print what the portals reported, by what the subjects really carried (for reading)."""
    by_key = {s.subject.key: s for s in world['traffic']}
    print('\nradiation evidence (offline driver + alarm with config/radiation.yaml): LLR nats '
          'by what the subject really carried')
    print(f'{"device":16} {"passages":>8} {"alarms":>7} {"misread":>7} {"no bg":>6}  '
          f'{"carried":26} {"n":>5} {"LLR median":>11} {"LLR p95":>9} {"LLR>5":>7} '
          f'{"alarm":>7}')
    for name, lane in sorted(world['lanes'].items()):
        misread = sum(1 for e, k in zip(lane['evidence'], lane['truth_keys'], strict=True)
                      if e.subject.key != k)
        groups = {}
        for evidence, key in zip(lane['evidence'], lane['truth_keys'], strict=True):
            sim = by_key.get(key)
            if sim is None:
                continue
            nuclides = sorted({t.nuclide for t in sim.truth if t.contraband and t.nuclide})
            if nuclides:
                group = 'source ' + '+'.join(nuclides)
            elif any(t.category == 'norm_cargo' for t in sim.truth):
                group = 'NORM cargo, no source'
            elif sim.contraband:
                group = 'narcotics only'
            else:
                group = 'clean, no NORM'
            groups.setdefault(group, []).append(evidence)
        stats = lane['stats']
        first = True
        for group, items in sorted(groups.items()):
            llr = np.array([e.item.log_likelihood_ratio for e in items])
            alarms = sum(e.alarm for e in items)
            head = (f'{site.portals[name].hardware_id:16} {stats["passages"]:>8} '
                    f'{stats["alarms"]:>7} {misread:>7} {stats["not_ready"]:>6}' if first
                    else ' ' * 49)
            print(f'{head}  {group:26} {len(items):>5} {np.median(llr):>11.3g} '
                  f'{np.quantile(llr, 0.95):>9.3g} {pct(np.sum(llr > 5), len(llr)):>7} '
                  f'{pct(alarms, len(items)):>7}')
            first = False


def budget_section(replays, truth_keys, world):
    """Print how the full system's inspections came about (per kind, each rate)."""
    print('\nfull system (a): how its inspections came about, per kind')
    print('(floor: risk >= must_inspect; audit: the random audit; by cost: the cost policy '
          'under the budget; clean: no contraband; NORM: clean, with NORM cargo; misread ids: '
          'decisions for ids the lane reader misread)')
    print(f'{"rate":>5} {"kind":10} {"subjects":>8} {"inspected":>9} {"rate":>6} {"floor":>6} '
          f'{"audit":>6} {"by cost":>7} {"clean":>6} {"NORM":>5} {"1st shift":>9} {"later":>7} '
          f'{"misread ids":>11} {"inspected":>9}')
    kinds = {s.subject.key: s.subject.kind.name.lower() for s in world['traffic']}
    sims = {s.subject.key: s for s in world['traffic']}
    shift = world['shift_length']
    for rate, result in replays:
        final = result['final']
        for kind in KINDS:
            real = [final[k] for k in truth_keys if kinds[k] == kind]
            insp = [d for d in real if d.action in CAPACITY_ACTIONS]
            clean = [sims[k] for k in truth_keys if kinds[k] == kind
                     and final[k].action in CAPACITY_ACTIONS and not sims[k].contraband]
            norm = sum(any(t.category == 'norm_cargo' for t in s.truth) for s in clean)
            floor = sum(d.must_inspect for d in insp)
            audit = sum(d.selection == 'random' for d in insp)
            first = [d for d in real if d.time < shift]
            later = [d for d in real if d.time >= shift]
            phantom = [d for k, d in final.items()
                       if k not in kinds and k.startswith(kind + ':')]
            print(f'{rate:>5.0%} {kind:10} {len(real):>8} {len(insp):>9} '
                  f'{pct(len(insp), len(real)):>6} {floor:>6} {audit:>6} '
                  f'{len(insp) - floor - audit:>7} {len(clean):>6} {norm:>5} '
                  f'{pct(sum(d.action in CAPACITY_ACTIONS for d in first), len(first)):>9} '
                  f'{pct(sum(d.action in CAPACITY_ACTIONS for d in later), len(later)):>7} '
                  f'{len(phantom):>11} '
                  f'{sum(d.action in CAPACITY_ACTIONS for d in phantom):>9}')


# -- main -----------------------------------------------------------------------------------

def parse_days(values, names) -> dict:
    """Return {scenario name: held-out days} from 'N' or 'name=N' items."""
    days = {name: DEFAULT_DAYS.get(name, 30) for name in names}
    for value in values or []:
        if '=' in value:
            name, count = value.split('=', 1)
            days[name] = int(count)
        else:
            days = dict.fromkeys(names, int(value))
    if any(d < 1 for d in days.values()):
        raise SystemExit('--days must be >= 1')
    return days


def prepare(name: str, days: int, seed: int | None) -> dict:
    """Return a scenario's world: history, fitted prior and held-out traffic."""
    scenario = Scenario.load(scenario_path(name))
    if seed is not None:
        scenario = dataclasses.replace(scenario, seed=seed)
    started = time.process_time()
    history = generate_history(scenario)
    config = history_config(scenario)
    prior, problem = DeclarationPrior(
        inspection_sensitivity=float(config['inspection_sensitivity'])), ''
    try:
        prior.fit(training_records(history))
    except ValueError as error:  # the site's fit fails alike: fusion runs on base rates
        prior, problem = None, str(error)
    fit_cpu = time.process_time() - started
    traffic = generate_traffic(held_out(scenario, days))
    return {'name': scenario.name, 'seed': scenario.seed, 'days': days, 'scenario': scenario,
            'history': history, 'config': config, 'prior': prior, 'traffic': traffic,
            'sensitivity': float(config['inspection_sensitivity']), 'lanes': {},
            'fit_cpu': fit_cpu, 'prior_problem': problem}


def legacy_scores(world) -> np.ndarray:
    """Return the legacy rule score of each subject (history.py's rules at the history's end)."""
    rules = world['config']['legacy_rules']
    flagged = {p for h in world['history'] if h.outcome and h.day <= rules['trader_flag_days']
               for p in (h.declarant_id, h.consignee_id) if p}
    watch_origins, watch_chapters = set(rules['origins']), {str(c) for c in rules['hs_chapters']}
    return np.array([
        (s.origin_country in watch_origins)
        + (bool(s.declared) and s.declared[0].hs_code[:2] in watch_chapters)
        + 2 * bool({s.declarant_id, s.consignee_id} & flagged)
        for s in world['traffic']], dtype=float)


def report(world, parameters, rates, bins, feedback: bool):
    """Decide, score and print one scenario."""
    traffic, prior = world['traffic'], world['prior']
    keys = [s.subject.key for s in traffic]
    truth = {
        'kinds': np.array([s.subject.kind.name.lower() for s in traffic]),
        'contraband': np.array([s.contraband for s in traffic], dtype=bool),
        'labels': [labels_of(s) for s in traffic],
    }
    present = set().union(*truth['labels'])
    truth['label_names'] = ([c for c in CATEGORIES if c in present]
                            + sorted(n for n in present if ':' not in n and n not in CATEGORIES)
                            + sorted(n for n in present if ':' in n))
    history = world['history']
    print(f'\n=== scenario {world["name"]} (seed {world["seed"]}): {world["days"]} held-out '
          f'days ===')
    inspected = [h for h in history if h.inspected]
    print(f'history: {world["config"]["days"]} days, {len(history)} declarations, '
          f'{len(inspected)} inspected ({sum(h.selection == "random" for h in inspected)} '
          f'random audits), {sum(bool(h.outcome) for h in inspected)} seizures -> '
          + (prior.version if prior else f'NO PRIOR: the fit fails ({world["prior_problem"]}); '
             'the engine runs on its base rates, as the fusion node does without a model')
          + f' (history + fit {world["fit_cpu"]:.1f} s CPU)')
    hours = world['scenario'].duration * world['days'] / 3600.0
    parts = []
    for kind in KINDS:
        of = truth['kinds'] == kind
        positives = int((of & truth['contraband']).sum())
        parts.append(f'{int(of.sum())} {kind}s ({positives} with contraband, '
                     f'{pct(positives, int(of.sum()))})')
    print(f'held-out traffic over {hours:.1f} h: ' + ', '.join(parts))
    evidence_section(world, world['site'])

    # the portal alone: the newest evidence of each subject key (as the store fuses it)
    llr = {}
    for lane in world['lanes'].values():
        for evidence in sorted(lane['evidence'], key=lambda e: e.stamp):
            llr[evidence.subject.key] = evidence.item.log_likelihood_ratio
    portal = np.array([llr.get(k, 0.0) for k in keys])
    base = engine_config(parameters, rates[0]).fusion.base_rate
    prior_lo = np.array([prior.log_odds(declared_features(s)).log_odds if prior
                         else logit(base[s.subject.kind]) for s in traffic])
    tie = np.random.default_rng([world['seed'], TIE_STREAM])
    legacy = legacy_scores(world)

    replays, learning, all_rows = [], [], {}
    for rate in rates:
        config = engine_config(parameters, rate)
        static = replay(world, prior, config, parameters, officers=False)
        replays.append((rate, static))
        full = np.array([static['final'][k].action in CAPACITY_ACTIONS for k in keys])
        rows = [
            ('oracle (truth: the ceiling)', score(ranked(truth['contraband'], truth['kinds'],
                                                         rate, tie), truth)),
            ('(a) full system: engine + budget policy', score(full, truth)),
        ]
        if feedback:
            learned = replay(world, prior, config, parameters, officers=True)
            learning.append((rate, learned))
            mask = np.array([learned['final'][k].action in CAPACITY_ACTIONS for k in keys])
            rows.append(('(a+) full system, learning from officers', score(mask, truth)))
        log_odds = np.array([static['final'][k].log_odds for k in keys])
        rows.append(('(b) full-system posterior, top share',
                     score(ranked(log_odds, truth['kinds'], rate, tie), truth)))
        rows += [
            ('(c) declaration prior alone', score(ranked(prior_lo, truth['kinds'], rate, tie),
                                                  truth)),
            ('(d) radiation portal alone', score(ranked(portal, truth['kinds'], rate, tie),
                                                 truth)),
            ('(e) legacy rules', score(ranked(legacy, truth['kinds'], rate, tie), truth)),
        ]
        expected = {}
        for group, counts in rows[0][1].items():
            _, n, _, positives = counts
            expected[group] = (rate * n, n, rate * positives, positives)
        all_rows[rate] = rows
        print_decision_tables(rate, rows, truth)
        print(f'{"random inspection (expected)":44} caught {rate:.0%} of each kind and '
              f'category; precision = prevalence ({pct(truth["contraband"].sum(), len(keys))} '
              'overall)')
    budget_section(replays, keys, world)
    for rate, result in learning:
        print(f'(a+) at {rate:.0%}: {result["learned"]} inspection results learned '
              f'({result["labels"][1]} seizures); calibrator in use at the end: '
              f'{result["calibrated"]} ({result["calibration"]}); model {result["version"]}')
    static = replays[0][1]
    posterior = np.array([static['final'][k].posterior for k in keys])
    calibration_section(f'(a) full system at {rates[0]:.0%}, final posterior', posterior, truth,
                        bins)
    if learning:
        learned = learning[0][1]
        calibration_section(f'(a+) learning from officers at {rates[0]:.0%}, final posterior',
                            np.array([learned['final'][k].posterior for k in keys]), truth,
                            bins)
    calibration_section('(c) declaration prior alone', np.array([sigmoid(x) for x in prior_lo]),
                        truth, bins)
    radiation_p = np.array([
        sigmoid(logit(base[SubjectKind[k.upper()]]) + x)
        for k, x in zip(truth['kinds'], portal, strict=True)])
    y = truth['contraband'].astype(float)
    print('\n(d) radiation portal alone (base rate + LLR): Brier '
          + ', '.join(f'{k} {np.mean((radiation_p[m] - y[m]) ** 2):.5f}'
                      for k, m in [('all', np.ones(len(y), bool))]
                      + [(k, truth['kinds'] == k) for k in KINDS]))
    return all_rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--scenarios', nargs='+', default=['default', 'smoke'],
                        help='scenario names (config/scenarios) or files')
    parser.add_argument('--days', nargs='*', metavar='[NAME=]N',
                        help='held-out days: N for every scenario, or NAME=N '
                        f'(default: {DEFAULT_DAYS})')
    parser.add_argument('--rates', nargs='+', type=float, default=[0.03, 0.01],
                        help='inspection rates per kind (the first one is used for calibration)')
    parser.add_argument('--jobs', type=int, default=2, help='processes for the portal physics')
    parser.add_argument('--seed', type=int, default=None,
                        help="override the scenarios' seeds (new traders, history and traffic)")
    parser.add_argument('--bins', type=int, default=10, help='reliability diagram bins')
    parser.add_argument('--no-feedback', action='store_true',
                        help="skip (a+), the full system learning from officers' results")
    options = parser.parse_args()
    if not all(0.0 < r < 1.0 for r in options.rates):
        raise SystemExit('--rates must lie in (0, 1)')
    wall, cpu = time.monotonic(), time.process_time()
    names = [Scenario.load(scenario_path(n)).name for n in options.scenarios]
    days = parse_days(options.days, names)
    site = load_site(ROOT / 'config' / 'site.yaml')
    parameters = fusion_parameters(ROOT / 'config' / 'fusion.yaml')
    alarm = alarm_parameters(ROOT / 'config' / 'radiation.yaml')
    print(f'command: python {shlex.join(sys.argv)}')
    print(f'code: {source_version()}')
    print(f'held-out days: {days}; inspection rates {options.rates}; {options.jobs} processes')
    worlds = [prepare(path, days[name], options.seed)
              for path, name in zip(options.scenarios, names, strict=True)]
    for world in worlds:
        world['site'] = site
        world['shift_length'] = float(parameters.get('shift_length', 8 * 3600.0))
        unknown = {s.device for s in world['traffic'] if s.device} - set(site.portals)
        if unknown:
            raise SystemExit(f'{world["name"]}: devices missing from the site file: {unknown}')
    phases = [time.monotonic()]
    worker_cpu = radiation_evidence(worlds, site, alarm, options.jobs)
    phases.append(time.monotonic())
    for world in worlds:
        report(world, parameters, options.rates, options.bins, not options.no_feedback)
    phases.append(time.monotonic())
    total_cpu = time.process_time() - cpu + worker_cpu
    load = os.getloadavg()[1]
    print(f'\nrun time: {phases[2] - wall:.0f} s wall (history, prior fit and traffic '
          f'{phases[0] - wall:.0f} s; portals {phases[1] - phases[0]:.0f} s in {options.jobs} '
          f'processes; decisions and scoring {phases[2] - phases[1]:.0f} s), {total_cpu:.0f} s '
          f'CPU in all; {os.cpu_count()} CPUs, load average {load:.1f} over the last 5 min')


if __name__ == '__main__':
    main()
