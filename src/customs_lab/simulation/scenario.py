"""Scenario files and the day's traffic they generate (containers, parcels, passengers).

A scenario (config/scenarios/*.yaml) says how many subjects arrive, what they declare, what they
really carry and how often they hide contraband. `generate_traffic` draws all of it from the
scenario's seed, so that a run replays exactly. The result holds both what the clearance system
sees (declarations) and the ground truth (what is really inside): the simulator publishes the
first to everyone and the second to the evaluator only.
"""

from dataclasses import dataclass, field
import math
import pathlib

import numpy as np
import yaml

from customs_lab.common import iso6346, upu_s10
from customs_lab.common.subjects import Subject, SubjectKind

# ISO 1496-1 internal dimensions (m): length, width, height
CONTAINER_INTERIOR = {'20ft': (5.898, 2.352, 2.393), '40ft': (12.032, 2.352, 2.393)}
CONTAINER_WALL_STEEL = 0.002  # m, corrugated steel side wall (Corten), as a steel shield
PARCEL_SIZE = (0.4, 0.3, 0.3)  # m, a typical express box


@dataclass(frozen=True)
class Shield:
    """A layer between a source and the outside: xraydb formula, density g/cm3, thickness m."""

    material: str
    density: float
    thickness: float


@dataclass(frozen=True)
class TrueItem:
    """Something a subject really carries (ground truth)."""

    category: str  # 'goods', 'norm_cargo', 'radioactive_source', 'narcotics'
    description: str
    contraband: bool
    nuclide: str = ''
    activity: float = 0.0  # Bq
    position: tuple[float, float, float] = (0.0, 0.0, 0.0)  # m, subject frame
    shields: tuple[Shield, ...] = ()
    # Distributed radioactivity (NORM in bulk cargo): nuclide -> Bq per gram of cargo
    specific_activity: dict = field(default_factory=dict)
    mass: float = 0.0  # kg


@dataclass(frozen=True)
class DeclaredLine:
    """One declared line: HS code, description, quantity, net mass (kg), value and currency."""

    hs_code: str
    description: str
    quantity: int
    net_mass: float
    value: float
    currency: str = 'USD'


@dataclass(frozen=True)
class SimSubject:
    """One subject of the day, with its declaration and its truth."""

    subject: Subject
    arrival: float  # s of sim time when it reaches its device's lane
    device: str  # device name from the site file ('' for none)
    declaration_id: str
    declarant_id: str
    origin_country: str
    declared: tuple[DeclaredLine, ...]
    gross_mass: float  # kg
    declared_arrival: float  # s, the ETA in the declaration
    filed_at: float  # s, when the declaration was filed
    size: tuple[float, float, float]  # m, interior length, width, height (0 for passengers)
    cargo_material: str  # xraydb formula of the bulk cargo
    cargo_density: float  # g/cm3, bulk density of the cargo
    truth: tuple[TrueItem, ...]

    @property
    def contraband(self) -> bool:
        """Return True if the subject carries anything that makes it a seizure."""
        return any(item.contraband for item in self.truth)


@dataclass(frozen=True)
class Scenario:
    """A parsed scenario file."""

    name: str
    seed: int
    duration: float
    declaration_lead: float
    eta_error: float
    spec: dict

    @classmethod
    def load(cls, path) -> 'Scenario':
        """Read a scenario YAML file; raise ValueError naming the file on a bad or missing key."""
        path = pathlib.Path(path)
        try:
            spec = yaml.safe_load(path.read_text())
            scenario = cls(
                name=str(spec.get('name', path.stem)),
                seed=int(spec['seed']),
                duration=float(spec['duration']),
                declaration_lead=float(spec.get('declaration_lead', 0.0)),
                eta_error=float(spec.get('eta_error', 0.0)),
                spec=spec,
            )
        except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError) as error:
            raise ValueError(f'{path}: not a valid scenario: {error!r}') from None
        if scenario.duration <= 0:
            raise ValueError(f'{path}: duration must be positive')
        return scenario


def _choose(rng, weighted: list[dict]) -> dict:
    weights = np.array([float(g['weight']) for g in weighted])
    return weighted[rng.choice(len(weighted), p=weights / weights.sum())]


def _log_uniform(rng, bounds) -> float:
    low, high = (float(b) for b in bounds)
    return float(math.exp(rng.uniform(math.log(low), math.log(high))))


def _uniform(rng, bounds) -> float:
    low, high = (float(b) for b in bounds)
    return float(rng.uniform(low, high))


def _contraband(rng, kind: str, spec: dict, size) -> list[TrueItem]:
    items = []
    for entry in spec.get('contraband', {}).get(kind, []):
        if rng.random() >= float(entry['probability']):
            continue
        category = entry['category']
        position = (
            tuple(float(rng.uniform(0.1 * s, 0.9 * s)) for s in size)
            if size[0]
            else (0.0, 0.0, 0.0)
        )
        if category == 'radioactive_source':
            activity = _log_uniform(rng, entry['activity'])
            shields = ()
            shield_spec = entry.get('shield')
            if shield_spec:
                thickness = _uniform(rng, shield_spec['thickness'])
                if thickness > 0:
                    shields = (
                        Shield(shield_spec['material'], float(shield_spec['density']), thickness),
                    )
            text = f'{entry["nuclide"]} source, {activity:.3g} Bq'
            if shields:
                text += f', {shields[0].thickness * 100:.1f} cm {shields[0].material} shielding'
            items.append(
                TrueItem(
                    category,
                    text,
                    True,
                    nuclide=entry['nuclide'],
                    activity=activity,
                    position=position,
                    shields=shields,
                )
            )
        else:
            mass = _uniform(rng, entry.get('mass', [0.0, 0.0]))
            items.append(
                TrueItem(
                    category,
                    f'{entry.get("description", category)}, {mass:.3g} kg',
                    True,
                    position=position,
                    mass=mass,
                )
            )
    return items


def _arrivals(rng, count: int, duration: float) -> np.ndarray:
    return np.sort(rng.uniform(0.0, duration, size=count))


def generate_traffic(scenario: Scenario) -> list[SimSubject]:
    """Draw the scenario's subjects, sorted by arrival time."""
    rng = np.random.default_rng(scenario.seed)
    spec = scenario.spec
    subjects = []
    used_ids = set()

    def declaration_times(arrival):
        eta = (
            arrival + float(rng.normal(0.0, scenario.eta_error)) if scenario.eta_error else arrival
        )
        return max(0.0, eta), max(0.0, arrival - scenario.declaration_lead)

    containers = spec.get('containers', {})
    types = containers.get('types', {'40ft': 1.0})
    type_names = list(types)
    type_p = np.array([float(types[t]) for t in type_names])
    for n, arrival in enumerate(
        _arrivals(rng, int(containers.get('count', 0)), scenario.duration)
    ):
        while True:
            owner = str(rng.choice(containers.get('owners', ['CSQU'])))
            number = iso6346.make_number(owner[:3], int(rng.integers(0, 1_000_000)), owner[3])
            if number not in used_ids:
                used_ids.add(number)
                break
        size_type = type_names[rng.choice(len(type_names), p=type_p / type_p.sum())]
        size = CONTAINER_INTERIOR[size_type]
        goods = _choose(rng, spec['goods']['container'])
        mass = float(goods['mass']) * float(rng.uniform(0.8, 1.1))
        truth = [TrueItem('goods', goods['description'], False, mass=mass)]
        if goods.get('norm'):
            truth.append(
                TrueItem(
                    'norm_cargo',
                    f'{goods["description"]} (NORM)',
                    False,
                    specific_activity={k: float(v) for k, v in goods['norm'].items()},
                    mass=mass,
                )
            )
        truth += _contraband(rng, 'container', spec, size)
        eta, filed = declaration_times(float(arrival))
        value = mass * float(rng.uniform(1.0, 6.0))
        subjects.append(
            SimSubject(
                subject=Subject(SubjectKind.CONTAINER, number),
                arrival=float(arrival),
                device=containers.get('device', ''),
                declaration_id=f'IMP-{scenario.seed % 10000:04d}-C{n:05d}',
                declarant_id=f'TRD{int(rng.integers(100, 999))}',
                origin_country=str(rng.choice(['CN', 'VN', 'US', 'DE', 'TH', 'MY'])),
                declared=(
                    DeclaredLine(
                        str(goods['hs_code']),
                        goods['description'],
                        int(rng.integers(50, 2000)),
                        round(mass, 1),
                        round(value, 2),
                    ),
                ),
                gross_mass=round(mass * 1.05 + (2300.0 if size_type == '20ft' else 3750.0), 1),
                declared_arrival=eta,
                filed_at=filed,
                size=size,
                cargo_material=goods.get('material', 'C6H10O5'),
                cargo_density=float(goods.get('bulk_density', 0.3)),
                truth=tuple(truth),
            )
        )

    parcels = spec.get('parcels', {})
    services = parcels.get('services', {'EE': 1.0})
    service_names = list(services)
    service_p = np.array([float(services[s]) for s in service_names])
    for n, arrival in enumerate(_arrivals(rng, int(parcels.get('count', 0)), scenario.duration)):
        origin = str(rng.choice(parcels.get('origins', ['CN'])))
        while True:
            service = service_names[rng.choice(len(service_names), p=service_p / service_p.sum())]
            number = upu_s10.make_identifier(service, int(rng.integers(0, 100_000_000)), origin)
            if number not in used_ids:
                used_ids.add(number)
                break
        goods = _choose(rng, spec['goods']['parcel'])
        mass = float(goods['mass']) * float(rng.uniform(0.7, 1.3))
        truth = [TrueItem('goods', goods['description'], False, mass=mass)]
        truth += _contraband(rng, 'parcel', spec, PARCEL_SIZE)
        eta, filed = declaration_times(float(arrival))
        subjects.append(
            SimSubject(
                subject=Subject(SubjectKind.PARCEL, number),
                arrival=float(arrival),
                device=parcels.get('device', ''),
                declaration_id=f'EXP-{scenario.seed % 10000:04d}-P{n:05d}',
                declarant_id='',
                origin_country=origin,
                declared=(
                    DeclaredLine(
                        str(goods['hs_code']),
                        goods['description'],
                        1,
                        round(mass, 2),
                        round(mass * float(rng.uniform(20, 200)), 2),
                    ),
                ),
                gross_mass=round(mass + 0.3, 2),
                declared_arrival=eta,
                filed_at=filed,
                size=PARCEL_SIZE,
                cargo_material=goods.get('material', 'C6H10O5'),
                cargo_density=float(goods.get('bulk_density', 0.3)),
                truth=tuple(truth),
            )
        )

    passengers = spec.get('passengers', {})
    zone = passengers.get('zone', 'arrival_hall')
    for n, arrival in enumerate(
        _arrivals(rng, int(passengers.get('count', 0)), scenario.duration)
    ):
        truth = tuple(_contraband(rng, 'passenger', spec, (0.0, 0.0, 0.0)))
        eta, filed = declaration_times(float(arrival))
        subjects.append(
            SimSubject(
                subject=Subject(SubjectKind.PASSENGER, f'trk-{n:05d}', zone),
                arrival=float(arrival),
                device='',
                declaration_id=f'TRV-{scenario.seed % 10000:04d}-{n:05d}',
                declarant_id='',
                origin_country=str(rng.choice(['CN', 'US', 'JP', 'TH', 'VN'])),
                declared=(),
                gross_mass=0.0,
                declared_arrival=eta,
                filed_at=filed,
                size=(0.0, 0.0, 0.0),
                cargo_material='',
                cargo_density=0.0,
                truth=truth,
            )
        )
    return sorted(subjects, key=lambda s: (s.arrival, s.subject.key))
