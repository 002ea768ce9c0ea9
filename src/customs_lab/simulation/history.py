"""Past declarations with the inspection records a clearance database holds (selective labels).

`generate_history(scenario, days)` draws `days` past days of traffic (each `scale` times the
scenario's counts) from the scenario's trader population with the same generative model as the
day's traffic (scenario.draw_day), from another random stream. Each day, per kind, the legacy
targeting inspects the declarations with the highest rule score (`targeted_rate` of them; a point
for a watch-listed origin, a point for a watch-listed HS chapter, two for a declarant or consignee
with a recent seizure), and a uniform random audit inspects `random_rate` of all declarations. Only
inspected declarations get an outcome: a seizure (True, when the inspection finds contraband that
is there, with probability `inspection_sensitivity`) or a clean inspection (False). The others keep
None: nobody knows what they carried, as in a real clearance database.

`clearance_records(history)` turns the history into the declarations and inspection results a
clearance database would hold, and `seed_database` writes them (idempotent: a declaration or
result already stored is skipped), so that the site's risk model learns from the database as a
real site's would (fusion/prior_training.py). Day d before the scenario is site-clock time
-d * 86400 s.

Part of the simulator: the outcomes come from the ground truth, which stays here.
"""

import copy
import dataclasses
from dataclasses import dataclass
import hashlib
import json
import uuid

import numpy as np

from customs_lab.clearance.records import DeclarationRecord, InspectionRecord
from customs_lab.fusion.declaration_prior import DeclarationFeatures
from customs_lab.simulation.scenario import (
    HISTORY_STREAM,
    Scenario,
    draw_day,
    make_population,
)

KINDS = ('container', 'parcel', 'passenger')
DEFAULT_HISTORY = {
    'days': 90, 'scale': 1, 'targeted_rate': 0.02, 'random_rate': 0.01,
    'inspection_sensitivity': 0.9,
    'legacy_rules': {'origins': [], 'hs_chapters': [], 'trader_flag_days': 30},
}


@dataclass(frozen=True)
class HistoricalDeclaration:
    """A past declaration (one line) and its inspection record, if it was inspected."""

    declaration_id: str
    day: int  # days before the scenario's day (1 = the day before)
    subject_kind: str  # 'container', 'parcel' or 'passenger'
    subject_id: str
    declarant_id: str
    consignee_id: str
    origin_country: str
    hs_code: str  # '' for passengers
    description: str
    quantity: int
    net_mass: float  # kg
    gross_mass: float  # kg
    declared_value: float
    currency: str
    selection: str  # 'targeted', 'random' (the uniform audit) or '' (not inspected)
    outcome: bool | None  # True: seizure; False: inspected, nothing found; None: not inspected
    finding: str = ''  # categories seized, comma-separated

    @property
    def inspected(self) -> bool:
        """Return True if the declaration was inspected."""
        return bool(self.selection)

    def features(self) -> DeclarationFeatures:
        """Return what the declaration prior sees of this declaration."""
        return DeclarationFeatures(
            subject_kind=self.subject_kind, hs_code=self.hs_code,
            origin_country=self.origin_country, declarant_id=self.declarant_id,
            consignee_id=self.consignee_id, quantity=self.quantity, net_mass=self.net_mass,
            gross_mass=self.gross_mass, declared_value=self.declared_value,
            currency=self.currency)


def declared_features(sim) -> DeclarationFeatures:
    """Return what the prior sees of a simulated subject's declaration (its first line).

    The fusion node reads the same fields from the Declaration the bridge serves.
    """
    line = sim.declared[0] if sim.declared else None
    return DeclarationFeatures(
        subject_kind=sim.subject.kind.name.lower(), hs_code=line.hs_code if line else '',
        origin_country=sim.origin_country, declarant_id=sim.declarant_id,
        consignee_id=sim.consignee_id, quantity=line.quantity if line else 0,
        net_mass=line.net_mass if line else 0.0, gross_mass=sim.gross_mass,
        declared_value=line.value if line else 0.0, currency=line.currency if line else 'USD')


def training_records(history) -> list[tuple[DeclarationFeatures, bool | None, str]]:
    """Return (features, outcome, selection) of every declaration, for DeclarationPrior.fit."""
    return [(h.features(), h.outcome, h.selection) for h in history]


DAY = 86400.0
RESULT_NAMESPACE = uuid.UUID('5b0f3c1e-8f7a-4d1c-9a53-6e1c2f0d9b47')  # result ids of the history


def clearance_records(history) -> list:
    """Return the history as a clearance database holds it: declarations, inspection results."""
    records = []
    for h in history:
        filed = -h.day * DAY + (hash_fraction(h.declaration_id) * 0.5 * DAY)
        records.append(DeclarationRecord(
            declaration_id=h.declaration_id, subject_kind=h.subject_kind,
            subject_id=h.subject_id, zone='', declarant_id=h.declarant_id,
            consignee_id=h.consignee_id, origin_country=h.origin_country,
            gross_mass=h.gross_mass, expected_arrival=filed + 0.25 * DAY, filed_at=filed,
            items=({'hs_code': h.hs_code, 'description': h.description,
                    'quantity': h.quantity, 'net_mass': h.net_mass,
                    'value': h.declared_value, 'currency': h.currency},) if h.hs_code else ()))
        if h.inspected:
            records.append(InspectionRecord(
                result_id=str(uuid.uuid5(RESULT_NAMESPACE, h.declaration_id)),
                subject_kind=h.subject_kind, subject_id=h.subject_id, zone='',
                declaration_id=h.declaration_id, decision_id='', officer_id='legacy-records',
                action='physical_inspection', outcome='seizure' if h.outcome else 'no_finding',
                categories=tuple(c for c in h.finding.split(',') if c),
                findings='imported from the legacy clearance records',
                inspected_at=filed + 0.3 * DAY, selection=h.selection))
    return records


def hash_fraction(text: str) -> float:
    """Return a number in [0, 1) fixed by `text` (spreads filing times over a day)."""
    return uuid.uuid5(RESULT_NAMESPACE, text).int / 2.0**128


def history_tag(scenario: Scenario) -> str:
    """Return the 6 hex digits that start (after 'H') the history's declaration numbers."""
    blob = json.dumps([scenario.seed, scenario.spec], sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:6]


def history_size(scenario: Scenario, days: int | None = None) -> int:
    """Return how many declarations generate_history(scenario, days) draws."""
    config = history_config(scenario, days)
    per_day = sum(int(scenario.spec.get(k + 's', {}).get('count', 0)) for k in KINDS)
    return config['days'] * per_day * config['scale']


def ensure_history(database, scenario: Scenario, days: int | None = None) -> tuple[int, int]:
    """Write the scenario's history to the database unless it is all there already.

    Returns (declarations in the history, records newly written). The check is a count of the
    history's declaration numbers, so a second run on the same database costs one query.
    """
    size = history_size(scenario, days)
    if database.count_declarations(f'H{history_tag(scenario)}-') == size:
        return size, 0
    history = generate_history(scenario, days)
    return len(history), seed_database(database, history)


def seed_database(database, history, batch: int = 2000) -> int:
    """Write the history's records to a ClearanceDatabase; return how many were new."""
    records, new = clearance_records(history), 0
    for start in range(0, len(records), batch):
        new += sum(database.write(records[start:start + batch], actor='legacy-records'))
    return new


def history_config(scenario: Scenario, days: int | None = None) -> dict:
    """Return the scenario's `history:` block with defaults; raise ValueError on a bad value."""
    given = scenario.spec.get('history', {}) or {}
    config = {**DEFAULT_HISTORY, **given}
    config['legacy_rules'] = {**DEFAULT_HISTORY['legacy_rules'], **given.get('legacy_rules', {})}
    if days is not None:
        config['days'] = days
    if not isinstance(config['days'], int) or config['days'] < 1:
        raise ValueError(f'history.days must be a positive integer: {config["days"]!r}')
    if not isinstance(config['scale'], int) or config['scale'] < 1:
        raise ValueError(f'history.scale must be a positive integer: {config["scale"]!r}')
    for key in ('targeted_rate', 'random_rate'):
        if not 0.0 <= float(config[key]) <= 1.0:
            raise ValueError(f'history.{key} must be in [0, 1]: {config[key]!r}')
    if not 0.0 < float(config['inspection_sensitivity']) <= 1.0:
        raise ValueError('history.inspection_sensitivity must be in (0, 1]')
    return config


def _targeted(rng, scores: np.ndarray, rate: float) -> np.ndarray:
    """Return the indices of the `rate` share with the highest positive score (ties random)."""
    quota = int(np.floor(rate * len(scores) + rng.random()))  # unbiased rounding
    order = np.lexsort((rng.random(len(scores)), -scores))
    return np.array([i for i in order[:quota] if scores[i] > 0], dtype=int)


def generate_history(scenario: Scenario, days: int | None = None) -> list[HistoricalDeclaration]:
    """Draw `days` (default: the scenario's history.days) past days, oldest first."""
    config = history_config(scenario, days)
    rules = config['legacy_rules']
    flag_days = int(rules['trader_flag_days'])
    watch_origins, watch_chapters = set(rules['origins']), {str(c) for c in rules['hs_chapters']}
    population = make_population(scenario)
    rng = np.random.default_rng([scenario.seed, HISTORY_STREAM])
    day_spec = copy.deepcopy(scenario.spec)  # a past day: `scale` times the scenario's traffic
    for kind in KINDS:
        if kind + 's' in day_spec:
            day_spec[kind + 's']['count'] = int(day_spec[kind + 's'].get('count', 0)) * int(
                config['scale'])
    past = dataclasses.replace(scenario, spec=day_spec)
    last_seizure = {}  # party id -> day of its last seizure
    history = []
    # declaration numbers unique to this scenario's traders: histories of several scenarios
    # can share one database without one scenario's number amending another's declaration
    tag = history_tag(scenario)
    for day in range(config['days'], 0, -1):
        prefixes = {k: f'H{tag}-{day:03d}-{k[:3].upper()}-' for k in KINDS}
        traffic = draw_day(past, population, rng, prefixes)
        selection = [''] * len(traffic)
        for kind in KINDS:
            index = [i for i, s in enumerate(traffic) if s.subject.kind.name.lower() == kind]
            scores = np.array([
                (s.origin_country in watch_origins)
                + (bool(s.declared) and s.declared[0].hs_code[:2] in watch_chapters)
                + 2 * any(p in last_seizure and last_seizure[p] - day <= flag_days
                          for p in (s.declarant_id, s.consignee_id) if p)
                for s in (traffic[i] for i in index)], dtype=float)
            for j in _targeted(rng, scores, float(config['targeted_rate'])):
                selection[index[j]] = 'targeted'
        audit = rng.random(len(traffic)) < float(config['random_rate'])
        found = rng.random(len(traffic)) < float(config['inspection_sensitivity'])
        for i, sim in enumerate(traffic):
            chosen = 'random' if audit[i] else selection[i]
            outcome, finding = None, ''
            if chosen:
                seized = sorted({t.category for t in sim.truth if t.contraband and found[i]})
                outcome, finding = bool(seized), ','.join(seized)
                if seized:
                    for party in (sim.declarant_id, sim.consignee_id):
                        if party:
                            last_seizure[party] = day
            line = sim.declared[0] if sim.declared else None
            history.append(HistoricalDeclaration(
                declaration_id=sim.declaration_id, day=day,
                subject_kind=sim.subject.kind.name.lower(), subject_id=sim.subject.id,
                declarant_id=sim.declarant_id,
                consignee_id=sim.consignee_id, origin_country=sim.origin_country,
                hs_code=line.hs_code if line else '',
                description=line.description if line else '',
                quantity=line.quantity if line else 0, net_mass=line.net_mass if line else 0.0,
                gross_mass=sim.gross_mass, declared_value=line.value if line else 0.0,
                currency=line.currency if line else 'USD', selection=chosen, outcome=outcome,
                finding=finding))
    return history
