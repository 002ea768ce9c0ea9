"""Decision policy: the action of least expected cost, under an inspection budget, with overrides.

Expected cost of action a for a subject with posterior risk p (a CostModel per subject kind):

    E[a] = cost(a) + p * (1 - detect(a)) * miss_cost

in one unit for all terms (officer minutes by default: the miss cost is the officer time the site
would trade to avoid releasing one item of contraband). The channel follows the action (release
GREEN; document_check, xray_inspection YELLOW; robot_inspection, physical_inspection, hold RED).

Capacity budget (a BudgetController per subject kind): of the subjects decided in a shift, at
most a target share should go to an action that consumes inspection capacity (by default the
X-ray, robot, physical inspections and holds; a document check does not). The controller prices
capacity with a shadow price lambda (a Lagrange multiplier, in cost units) that is added to the
cost of every capacity action when choosing. Within a shift,

    lambda = max(0, lambda_0 + step * (inspections - target * subjects)),
    step = price_step * miss_cost,

where lambda_0 is the price the shift started with and the counts are the shift's so far: the
price rises while the shift runs over budget (which makes only the riskiest subjects worth
inspecting) and falls back to 0 while it runs under. Hence the realised rate of a shift exceeds
the target by at most (lambda_end - lambda_0) / (step * subjects), a fraction of a percentage
point once the price has settled: the budget holds whenever the risk stream would exceed it, and
does not bind when it would not. A subject decided again in the same shift
(new evidence) replaces its earlier count. Shifts are `shift_length` s long from `shift_origin`;
a new shift restarts the counts from the previous shift's price (unused budget is not carried
over). Deterministic: the same stream of (subject, posterior, time) gives the same decisions.

Safety floor: a subject with posterior >= must_inspect goes to the capacity action of least
expected cost whatever the price (and still counts against the budget).

Random audit: of the subjects the costs would not inspect, a share `random_audit_rate` goes to
the kind's cheapest capacity action anyway, chosen by a keyed hash of the subject key (the same
subject always draws the same way; without the key, which is site configuration, a trader cannot
predict it). These inspections are what lets the site learn without bias: targeted inspections
only see what the model already suspects, a uniform audit sees the whole flow (the declaration
prior's fit needs them). They count against the budget like any inspection. Each decision says
how it was selected: 'targeted' (the costs, the floor or an officer chose inspection), 'random'
(the audit) or '' (no inspection).

Officer overrides: `override(...)` records an officer's action for a subject; every decision of
that subject takes it from then on (late evidence re-decides the subject but does not undo an
officer's hold), names the officer and reason, and carries the Override for the audit log. It
stays in force until it is withdrawn (`cancel_override`) or replaced by another officer's.
Core module: no ROS.
"""

from dataclasses import asdict, dataclass, field
import hashlib
import hmac
import json
import math
import numbers

from customs_lab.common.subjects import Subject, SubjectKind
from customs_lab.fusion.logodds import CHANNELS

POLICY_NAME = 'policy-cost'
POLICY_VERSION = '0.1.0'
ACTION_CHANNEL = {  # the known actions and the channel each puts a subject in
    'release': 0, 'document_check': 1, 'xray_inspection': 1,
    'robot_inspection': 2, 'physical_inspection': 2, 'hold': 2,
}
ACTIONS = tuple(ACTION_CHANNEL)
CAPACITY_ACTIONS = ('xray_inspection', 'robot_inspection', 'physical_inspection', 'hold')


@dataclass(frozen=True)
class CostModel:
    """Costs, detection probabilities and inspection target of one subject kind."""

    allowed: tuple[str, ...]
    cost: dict  # action -> cost of taking it (officer minutes)
    detect: dict  # action -> probability it finds contraband that is there
    miss_cost: float  # cost of releasing a subject that carries contraband
    target_rate: float = 0.03  # share of subjects per shift sent to capacity actions

    def validate(self, name: str = 'cost model'):
        """Raise ValueError naming the first inconsistency."""
        if not self.allowed or len(set(self.allowed)) != len(self.allowed):
            raise ValueError(f'{name}: allowed actions must be non-empty and distinct')
        for action in self.allowed:
            if action not in ACTIONS:
                raise ValueError(f'{name}: unknown action {action!r} (known: {ACTIONS})')
            for table, label, upper in ((self.cost, 'cost', math.inf), (self.detect, 'detect', 1)):
                value = table.get(action)
                if not (isinstance(value, numbers.Real) and 0.0 <= value <= upper):
                    raise ValueError(f'{name}: {label} of {action} must be in [0, {upper}]')
        if 'release' in self.allowed and self.detect['release'] != 0.0:
            raise ValueError(f'{name}: release cannot detect anything (detect must be 0)')
        if not (isinstance(self.miss_cost, numbers.Real) and 0 < self.miss_cost < math.inf):
            raise ValueError(f'{name}: miss_cost must be finite and > 0: {self.miss_cost!r}')
        if not 0.0 < self.target_rate < 1.0:
            raise ValueError(f'{name}: target_rate must be in (0, 1): {self.target_rate!r}')

    def expected_cost(self, action: str, p: float) -> float:
        """Return cost(action) + p * (1 - detect(action)) * miss_cost."""
        return self.cost[action] + p * (1.0 - self.detect[action]) * self.miss_cost


def default_models() -> dict:
    """Return the default cost models (officer minutes; comments: where each action pays)."""
    return {
        # switch points: document check from p 0.02, X-ray 0.05, robot 0.3, physical 0.6
        SubjectKind.CONTAINER: CostModel(
            ('release', 'document_check', 'xray_inspection', 'robot_inspection',
             'physical_inspection'),
            {'release': 0.0, 'document_check': 10.0, 'xray_inspection': 91.0,
             'robot_inspection': 143.5, 'physical_inspection': 233.5},
            {'release': 0.0, 'document_check': 0.2, 'xray_inspection': 0.85,
             'robot_inspection': 0.92, 'physical_inspection': 0.98},
            2500.0,
        ),
        # X-ray from p 0.047, hold from 0.54
        SubjectKind.PARCEL: CostModel(
            ('release', 'xray_inspection', 'hold'),
            {'release': 0.0, 'xray_inspection': 4.0, 'hold': 11.0},
            {'release': 0.0, 'xray_inspection': 0.85, 'hold': 0.98},
            100.0,
        ),
        # document check from p 0.067, physical search from 0.17
        SubjectKind.PASSENGER: CostModel(
            ('release', 'document_check', 'physical_inspection'),
            {'release': 0.0, 'document_check': 2.0, 'physical_inspection': 20.0},
            {'release': 0.0, 'document_check': 0.2, 'physical_inspection': 0.9},
            150.0,
        ),
    }


@dataclass
class PolicyConfig:
    """Cost models per kind, the budget controller's settings and the safety floor."""

    models: dict = field(default_factory=default_models)  # SubjectKind -> CostModel
    capacity_actions: tuple[str, ...] = CAPACITY_ACTIONS
    shift_length: float = 8 * 3600.0  # s
    shift_origin: float = 0.0  # clock time (s) at which a shift starts
    price_step: float = 0.01  # shadow price step, as a share of the kind's miss cost
    must_inspect: float = 0.5  # posterior from which a subject is inspected regardless
    random_audit_rate: float = 0.002  # share of subjects inspected at random (learning)
    audit_key: str = 'customs-lab'  # key of the audit draw (set a secret one per site)

    def validate(self):
        """Raise ValueError if the configuration is inconsistent."""
        if not self.models:
            raise ValueError('policy needs a cost model for at least one subject kind')
        unknown = set(self.capacity_actions) - set(ACTIONS)
        if unknown or 'release' in self.capacity_actions:
            raise ValueError(f'capacity actions must be known, non-release actions: {unknown}')
        for kind, model in self.models.items():
            name = f'{SubjectKind(kind).name} cost model'
            model.validate(name)
            if not set(model.allowed) & set(self.capacity_actions):
                raise ValueError(f'{name}: no allowed action consumes capacity (safety floor)')
        if not (0 < self.shift_length < math.inf and math.isfinite(self.shift_origin)):
            raise ValueError('shift_length must be finite and > 0, shift_origin finite')
        if not 0.0 < self.price_step < math.inf:
            raise ValueError(f'price_step must be finite and > 0: {self.price_step!r}')
        if not 0.0 < self.must_inspect <= 1.0:
            raise ValueError(f'must_inspect must be in (0, 1]: {self.must_inspect!r}')
        if not 0.0 <= self.random_audit_rate < 1.0:
            raise ValueError(f'random_audit_rate must be in [0, 1): {self.random_audit_rate!r}')
        if not self.audit_key:
            raise ValueError('audit_key must not be empty')

    @property
    def version(self) -> str:
        """Return the policy version: code version + a digest of this configuration."""
        blob = json.dumps({
            'models': {int(k): asdict(m) for k, m in self.models.items()},
            'capacity': list(self.capacity_actions),
            'shift': [self.shift_length, self.shift_origin],
            'price_step': self.price_step, 'must_inspect': self.must_inspect,
            'random_audit_rate': self.random_audit_rate,
        }, sort_keys=True).encode()  # the audit key stays out: versions are published
        return f'{POLICY_NAME}/{POLICY_VERSION}+cfg.{hashlib.sha256(blob).hexdigest()[:8]}'


@dataclass(frozen=True)
class BudgetState:
    """A kind's budget as a decision saw it (counts before that decision)."""

    shift: int
    subjects: int
    inspections: int
    target_rate: float
    shadow_price: float

    @property
    def used_rate(self) -> float:
        """Return inspections / subjects this shift (0 before the first subject)."""
        return self.inspections / self.subjects if self.subjects else 0.0


class BudgetController:
    """The shadow price of inspection capacity for one subject kind (module docstring)."""

    def __init__(self, target_rate, shift_length, step, shift_origin=0.0):
        self.target_rate, self.step = float(target_rate), float(step)
        self.shift_length, self.shift_origin = float(shift_length), float(shift_origin)
        self._level = 0.0  # lambda_0 + step * (inspections - target * subjects)
        self._shift = None
        self._decided = {}  # subject key -> 1 if sent to a capacity action this shift, else 0

    @property
    def shadow_price(self) -> float:
        """Return the current price of one inspection (cost units, >= 0)."""
        return max(0.0, self._level)

    def state(self, now: float) -> BudgetState:
        """Return the budget at `now`, starting a new shift if `now` lies in a later one.

        Shifts only move forward: a time in an earlier shift counts in the current one.
        """
        shift = math.floor((now - self.shift_origin) / self.shift_length)
        if self._shift is None or shift > self._shift:
            self._shift, self._decided, self._level = shift, {}, self.shadow_price
        counts = self._decided.values()
        return BudgetState(
            self._shift, len(counts), sum(counts), self.target_rate, self.shadow_price
        )

    def record(self, subject_key: str, inspected: bool, now: float):
        """Count a decided subject (a repeat in the same shift replaces its earlier count)."""
        self.state(now)
        x = 1 if inspected else 0
        previous = self._decided.get(subject_key)
        self._level += self.step * (x - self.target_rate if previous is None else x - previous)
        self._decided[subject_key] = x


@dataclass(frozen=True)
class Override:
    """An officer's decision for a subject, for its decisions and the audit log."""

    subject_key: str
    action: str
    officer_id: str
    reason: str
    at: float = -math.inf  # s, when the officer gave it (the site clock)


@dataclass(frozen=True)
class PolicyDecision:
    """The policy's choice for one subject and why."""

    subject_key: str
    posterior: float
    action: str
    channel: int
    expected_costs: dict  # allowed action -> expected cost (without the shadow price)
    budget: BudgetState
    must_inspect: bool  # the safety floor applied (posterior >= must_inspect)
    override: Override | None
    explanation: str
    policy_version: str
    selection: str = ''  # 'targeted', 'random' (audit) or '' (not inspected)


class DecisionPolicy:
    """Choose actions by expected cost under the inspection budget; honour officer overrides."""

    def __init__(self, config: PolicyConfig | None = None):
        self.config = config or PolicyConfig()
        self.config.validate()
        self.version = self.config.version
        c = self.config
        self._budgets = {
            SubjectKind(kind): BudgetController(
                m.target_rate, c.shift_length, c.price_step * m.miss_cost, c.shift_origin
            )
            for kind, m in c.models.items()
        }
        self._overrides: dict[str, Override] = {}

    def override(self, subject_key: str, action: str, officer_id: str, reason: str,
                 at: float = -math.inf) -> Override:
        """Record an officer's action for the subject's decisions (replaces one in force).

        at: when it was given (s, the site clock): a release given before evidence that lifts
        the risk to the safety floor is set aside (`decide`).
        """
        if action not in ACTIONS:
            raise ValueError(f'unknown action {action!r} (known: {", ".join(ACTIONS)})')
        for name, value in (('subject_key', subject_key), ('officer_id', officer_id),
                            ('reason', reason)):
            if not (isinstance(value, str) and value.strip()):
                raise ValueError(f'an override needs a non-empty {name}')
        if not (isinstance(at, numbers.Real) and not math.isnan(at)):
            raise ValueError(f'an override needs a time, got {at!r}')
        self._overrides[subject_key] = Override(subject_key, action, officer_id, reason,
                                                float(at))
        return self._overrides[subject_key]

    def override_in_force(self, subject_key: str) -> Override | None:
        """Return the officer's override the subject's decisions take, if any."""
        return self._overrides.get(subject_key)

    def cancel_override(self, subject_key: str) -> bool:
        """Withdraw an override (the policy decides again); return True if there was one."""
        return self._overrides.pop(subject_key, None) is not None

    def budget(self, kind: SubjectKind, now: float) -> BudgetState:
        """Return the budget of a subject kind at `now`."""
        return self._budgets[self._kind(kind)].state(now)

    def decide(self, subject: Subject, posterior: float, now: float, commit=True,
               no_release: str = '', newest_evidence: float = -math.inf):
        """Return the PolicyDecision for `subject` at risk `posterior`, time `now` (s).

        With commit (the default) the decision counts against the budget; commit=False
        previews it (nothing counted). An officer's override in force takes the decision,
        except an override that releases (no inspection) when the risk is at the safety floor
        and evidence observed after the override (`newest_evidence`, s) brought it there: the
        officer did not see that evidence, so the floor holds and the override is dropped
        (on commit) until an officer gives it again.
        A non-empty `no_release` (the reason, e.g. an unreadable subject id) turns a release
        into the allowed non-release action of least expected cost (price included).
        """
        if not (isinstance(posterior, numbers.Real) and 0.0 <= posterior <= 1.0):
            raise ValueError(f'posterior must be a probability in [0, 1], got {posterior!r}')
        if not (isinstance(now, numbers.Real) and math.isfinite(now)):
            raise ValueError(f'now must be a finite time in s, got {now!r}')
        kind = self._kind(subject.kind)
        model, controller = self.config.models[kind], self._budgets[kind]
        capacity = set(self.config.capacity_actions)
        state = controller.state(now)
        expected = {a: model.expected_cost(a, posterior) for a in model.allowed}
        price = {a: state.shadow_price if a in capacity else 0.0 for a in model.allowed}
        action = min(model.allowed, key=lambda a: expected[a] + price[a])
        floor = posterior >= self.config.must_inspect
        notes = []
        if floor:
            budget_choice = action
            action = min((a for a in model.allowed if a in capacity), key=expected.get)
            changed = f' (the budget alone: {budget_choice})' if action != budget_choice else ''
            notes.append(
                f'safety floor: risk >= must-inspect {self.config.must_inspect:g}, '
                f'inspected regardless of the budget{changed}'
            )
        if no_release and action == 'release':
            action = min((a for a in model.allowed if a != 'release'),
                         key=lambda a: expected[a] + price[a])
            notes.append(f'not released: {no_release}')
        if action not in capacity and self._audited(subject.key):
            action = min((a for a in model.allowed if a in capacity), key=model.cost.get)
            notes.append(
                f'random audit ({self.config.random_audit_rate:.2%} of subjects, '
                'for unbiased learning)'
            )
            selection = 'random'
        else:
            selection = 'targeted' if action in capacity else ''
        override = self._overrides.get(subject.key)
        if (override is not None and floor and override.action not in capacity
                and newest_evidence > override.at):
            notes.append(
                f'officer override by {override.officer_id}: {override.action} set aside: '
                f'evidence observed after it puts the risk at the safety floor; an officer '
                f'must give it again'
            )
            if commit:
                self._overrides.pop(subject.key, None)
            override = None
        if override is not None:
            notes.append(
                f'officer override by {override.officer_id}: {override.action} '
                f'({override.reason}); the policy chose {action}'
            )
            action = override.action
            selection = 'targeted' if action in capacity else ''
        name = kind.name.lower()
        costs = ', '.join(
            f'{a} {expected[a]:.1f}' + (f'+{price[a]:.1f}' if price[a] else '')
            for a in model.allowed
        )
        explanation = (
            f'{CHANNELS[ACTION_CHANNEL[action]]} ({action}): risk {posterior:.3g}; '
            f'expected cost {costs}; inspection budget: {state.used_rate:.1%} used of '
            f'{state.target_rate:.1%} this shift ({state.inspections} of {state.subjects} '
            f'{name}s), shadow cost +{state.shadow_price:.1f}'
        ) + ''.join(f'; {n}' for n in notes)
        if commit:
            controller.record(subject.key, action in capacity, now)
        return PolicyDecision(
            subject.key, float(posterior), action, ACTION_CHANNEL[action], expected, state,
            floor, override, explanation, self.version, selection,
        )

    def _audited(self, subject_key: str) -> bool:
        """Return True if the subject falls in the random audit (keyed hash, uniform)."""
        if self.config.random_audit_rate <= 0.0:
            return False
        digest = hmac.new(
            self.config.audit_key.encode(), subject_key.encode(), hashlib.sha256
        ).digest()
        return int.from_bytes(digest[:8], 'big') / 2.0**64 < self.config.random_audit_rate

    def _kind(self, kind) -> SubjectKind:
        kind = SubjectKind(kind)
        if kind not in self._budgets:
            raise ValueError(f'no cost model for subject kind {kind.name}')
        return kind
