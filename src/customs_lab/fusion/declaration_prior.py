"""A risk prior from the customs declaration, learned from past declarations and inspections.

A regularised logistic regression on interpretable features of one declaration:

  declarant, consignee,   log of the empirical-Bayes smoothed seizure ratio of the party, HS
  hs_chapter, origin      chapter or origin country: seizures / expected seizures (the kind's
                          mean rate per inspection), with a Gamma(a, a) prior whose strength a
                          maximises the negative-binomial marginal likelihood of all entities
  unit_value              how far the declared value per kg lies below its HS line's median,
                          as a robust z beyond the line's 95th percentile (0 for 95 % of the
                          line; medians and quantiles from all declarations, inspected or not)
  mass_balance            the same for |log(gross / net mass)| around the line's median

plus one intercept per subject kind. Labels are selective: only inspected declarations have an
outcome, and most inspections were targeted (they find more than random ones would). The fit
carries a 'targeted' indicator per kind whose coefficient absorbs that enrichment beyond what
the features explain; the prior is read with the indicators at 0, as a uniformly random audit
sees the flow, so each kind's random-audit records pin its intercept. The odds of a seizure
become the odds of contraband by dividing by `inspection_sensitivity` (an assumption the site
configures: the share of contraband an inspection finds; exact for small probabilities).
Training rows use leave-one-out ratios, so a row's own label never feeds its features.
Coefficients are >= 0: a higher seizure ratio or a larger deviation never lowers the risk.

The std of an estimate combines the coefficients' uncertainty (inverse Hessian) and the
posterior spread of each smoothed ratio: an unknown trader, chapter or origin falls back to
ratio 1 (its kind's mean) with the prior's larger spread. update() adds an inspection result to
the counts (no refit) and changes the version, a digest of the whole state.

Core module (numpy / scipy, no ROS): it learns from records, as from a clearance database.
"""

from dataclasses import dataclass
import hashlib
import json
import math
import numbers

import numpy as np
from scipy.optimize import minimize, minimize_scalar
from scipy.special import expit, gammaln, polygamma

MODEL_NAME = 'declaration-prior'
MODEL_VERSION = '1.0.0'
FORMAT = 'declaration-prior/1'
KINDS = ('container', 'parcel', 'passenger')
ENTITIES = ('declarant', 'consignee', 'hs_chapter', 'origin')
FEATURES = ENTITIES + ('unit_value', 'mass_balance')
MIN_REFERENCE = 20  # declarations of an HS line before its medians are trusted
Q = 0.95  # deviations count beyond this quantile of their HS line (most lines are honest)
Z_CAP = 6.0  # excess z-scores are capped: beyond this, more deviation adds no evidence
STRENGTH_RANGE = (0.5, 1000.0)  # bounds of the Gamma prior's strength a (expected seizures)
INTERCEPT_SD, TARGETED_SD = 2.0, 3.0  # nats, weak Gaussian priors (only matter without data)


@dataclass(frozen=True)
class DeclarationFeatures:
    """What the prior reads from a declaration (one line; passengers have no line)."""

    subject_kind: str  # 'container', 'parcel' or 'passenger'
    hs_code: str = ''
    origin_country: str = ''
    declarant_id: str = ''
    consignee_id: str = ''
    quantity: int = 0
    net_mass: float = 0.0  # kg
    gross_mass: float = 0.0  # kg
    declared_value: float = 0.0
    currency: str = 'USD'


@dataclass(frozen=True)
class PriorEstimate:
    """Log-odds of contraband, its std, a text and each feature's contribution (nats)."""

    log_odds: float
    std: float
    explanation: str
    contributions: tuple  # ((name, nats), ...), summing to log_odds

    @property
    def probability(self) -> float:
        """Return the prior probability of contraband."""
        return float(expit(self.log_odds))


def _keys(f: DeclarationFeatures) -> dict:
    """Return each entity's key ('' when the declaration has none, e.g. a passenger's HS)."""
    return {'declarant': f.declarant_id, 'consignee': f.consignee_id,
            'hs_chapter': f.hs_code[:2], 'origin': f.origin_country}


def _robust(values) -> tuple[float, float]:
    values = np.asarray(values, dtype=float)
    median = float(np.median(values))
    return median, 1.4826 * float(np.median(np.abs(values - median)))


class DeclarationPrior:
    """The declaration prior: fit() on past records, log_odds() per declaration, update()."""

    def __init__(self, l2: float = 1.0, inspection_sensitivity: float = 1.0,
                 exchange_rates: dict | None = None):
        if not (math.isfinite(l2) and l2 >= 0):
            raise ValueError(f'l2 must be finite and >= 0: {l2}')
        if not 0.0 < inspection_sensitivity <= 1.0:
            raise ValueError(f'inspection_sensitivity must be in (0, 1]: {inspection_sensitivity}')
        self.l2, self.sensitivity = float(l2), float(inspection_sensitivity)
        self.rates = dict(exchange_rates or {'USD': 1.0})  # currency -> USD per unit
        self.kind_rates = {}  # kind -> seizures per inspection (the expected-count baseline)
        self.counts = {e: {} for e in ENTITIES}  # entity -> key -> [seizures, expected, n]
        self.strength = {}  # entity -> a of its Gamma(a, a) prior
        self.references = {}  # 'kind:hs' -> [median, scale, Q-quantile of z] x (uv, mass), n
        self.params = None  # {'intercept': {kind: b}, 'beta': {feature: b}, 'targeted': g}
        self.cov = None  # covariance of [intercepts, betas, targeted]
        self.training = {}
        self._version = None

    # -- input ---------------------------------------------------------------------------

    def _check(self, f, where: str = 'features') -> None:
        if not isinstance(f, DeclarationFeatures):
            raise ValueError(f'{where}: expected DeclarationFeatures, got {type(f).__name__}')
        if f.subject_kind not in KINDS:
            raise ValueError(f'{where}.subject_kind must be one of {KINDS}: {f.subject_kind!r}')
        for name in ('quantity', 'net_mass', 'gross_mass', 'declared_value'):
            value = getattr(f, name)
            if not isinstance(value, numbers.Real) or not math.isfinite(value) or value < 0:
                raise ValueError(f'{where}.{name} must be a finite number >= 0: {value!r}')
        if f.subject_kind == 'passenger':
            return
        if not (f.hs_code.isdigit() and 6 <= len(f.hs_code) <= 10):
            raise ValueError(f'{where}.hs_code must be 6 to 10 digits: {f.hs_code!r}')
        for name in ('net_mass', 'gross_mass'):
            if getattr(f, name) <= 0:
                raise ValueError(f'{where}.{name} must be > 0 for a {f.subject_kind}')
        if f.currency not in self.rates:
            raise ValueError(f'{where}.currency {f.currency!r} has no exchange rate')

    def _require_fit(self):
        if self.params is None:
            raise ValueError('the declaration prior is not fitted: call fit() or from_dict()')

    # -- features ------------------------------------------------------------------------

    def _entity(self, entity: str, key: str, kind: str, own: int | None = None):
        """Return (log smoothed ratio, its posterior variance, seizures, expected, n)."""
        if not key:
            return 0.0, 0.0, 0, 0.0, 0
        a = self.strength[entity]
        s, expected, n = self.counts[entity].get(key, (0, 0.0, 0))
        if own is not None:  # leave-one-out for a training row
            s, expected, n = s - own, expected - self.kind_rates[kind], n - 1
        value = math.log((s + a) / (max(expected, 0.0) + a))
        return value, float(polygamma(1, s + a)), s, expected, n

    def _continuous(self, f) -> tuple[float, float, str, str]:
        """Return the unit_value and mass_balance z-scores and their texts."""
        if f.subject_kind == 'passenger':
            return 0.0, 0.0, '', ''
        ref = self.references.get(f'{f.subject_kind}:{f.hs_code}')
        if ref is None:
            text = f'HS {f.hs_code}: too few declarations for a reference'
            return 0.0, 0.0, text, text
        uv_med, uv_scale, uv_q, mb_med, mb_scale, mb_q, _ = ref
        uv, mb = self._measures(f)
        return (min(Z_CAP, max(0.0, (uv_med - uv) / uv_scale - uv_q)),
                min(Z_CAP, max(0.0, abs(mb - mb_med) / mb_scale - mb_q)),
                f'unit value {math.exp(uv - uv_med):.2g}x the HS {f.hs_code} median',
                f'gross/net {math.exp(mb):.3g}, HS {f.hs_code} typical {math.exp(mb_med):.3g}')

    def _measures(self, f) -> tuple[float, float]:
        """Return (log unit value USD/kg, log gross/net mass) of a goods declaration."""
        usd = max(f.declared_value * self.rates[f.currency], 0.01)
        return math.log(usd / f.net_mass), math.log(f.gross_mass / f.net_mass)

    def _row(self, f, own: int | None = None) -> list:
        keys = _keys(f)
        return ([float(f.subject_kind == k) for k in KINDS]
                + [self._entity(e, keys[e], f.subject_kind, own)[0] for e in ENTITIES]
                + list(self._continuous(f)[:2]))

    # -- fit -----------------------------------------------------------------------------

    def fit(self, records) -> 'DeclarationPrior':
        """Learn from (features, outcome: bool | None, selection: 'random'|'targeted'|'')."""
        rows = self._validated(records)
        labelled = [r for r in rows if r[1] is not None]
        audits = [r for r in labelled if r[2] == 'random']
        if not audits:
            raise ValueError('records: no random-audit inspection, so the targeting bias cannot '
                             'be corrected')
        if len({r[1] for r in labelled}) < 2:
            raise ValueError('records: need both seizures and clean inspections')
        lines = {}  # HS-line references from every declaration, inspected or not
        for f, _, _ in rows:
            if f.subject_kind != 'passenger':
                lines.setdefault(f'{f.subject_kind}:{f.hs_code}', []).append(self._measures(f))
        self.references = {}
        for line, values in lines.items():
            if len(values) >= MIN_REFERENCE:
                values = np.array(values)
                uv_med, uv_scale = _robust(values[:, 0])
                mb_med, mb_scale = _robust(values[:, 1])
                uv_scale, mb_scale = max(uv_scale, 0.05), max(mb_scale, 0.01)
                self.references[line] = [
                    uv_med, uv_scale, float(np.quantile((uv_med - values[:, 0]) / uv_scale, Q)),
                    mb_med, mb_scale, float(np.quantile(abs(values[:, 1] - mb_med) / mb_scale, Q)),
                    len(values)]
        pooled = (sum(r[1] for r in labelled) + 0.5) / (len(labelled) + 1.0)
        self.kind_rates = {}
        for kind in KINDS:
            ys = [r[1] for r in labelled if r[0].subject_kind == kind]
            self.kind_rates[kind] = (sum(ys) + 2 * pooled) / (len(ys) + 2)
        self.counts = {e: {} for e in ENTITIES}
        for f, y, _ in labelled:
            self._count(f, y)
        self.strength = {e: self._strength(e) for e in ENTITIES}
        x = np.array([self._row(f, int(y)) + [float(sel == 'targeted' and f.subject_kind == k)
                                                for k in KINDS] for f, y, sel in labelled])
        y = np.array([float(r[1]) for r in labelled])
        # weak priors: each kind's intercept near its random-audit seizure rate (2 pseudo-records
        # at the pooled audit rate), the betas near 0 (L2), the targeting shift near 0
        audit_rate = (sum(r[1] for r in audits) + 0.5) / (len(audits) + 1.0)
        centre = np.zeros(x.shape[1])
        for i, kind in enumerate(KINDS):
            ys = [r[1] for r in audits if r[0].subject_kind == kind]
            rate = (sum(ys) + 2 * audit_rate) / (len(ys) + 2)
            centre[i] = math.log(rate / (1 - rate))
        precision = np.full(x.shape[1], self.l2)
        precision[:len(KINDS)] = INTERCEPT_SD ** -2
        precision[-len(KINDS):] = TARGETED_SD ** -2
        bounds = ([(None, None)] * len(KINDS) + [(0.0, None)] * len(FEATURES)
                  + [(None, None)] * len(KINDS))

        def objective(theta):
            z, d = x @ theta, theta - centre
            value = float(np.sum(np.logaddexp(0.0, z) - y * z) + 0.5 * np.sum(precision * d * d))
            return value, x.T @ (expit(z) - y) + precision * d

        result = minimize(objective, centre, jac=True, method='L-BFGS-B', bounds=bounds)
        if not np.all(np.isfinite(result.x)):
            raise ValueError(f'records: the fit did not converge ({result.message})')
        theta = result.x
        p = expit(x @ theta)
        self.cov = np.linalg.inv((x.T * (p * (1 - p))) @ x + np.diag(precision)).tolist()
        self.params = {
            'intercept': {k: float(theta[i]) for i, k in enumerate(KINDS)},
            'beta': {name: float(theta[len(KINDS) + i]) for i, name in enumerate(FEATURES)},
            'targeted': {k: float(theta[-len(KINDS) + i]) for i, k in enumerate(KINDS)},
        }
        self.training = {'records': len(rows), 'inspected': len(labelled),
                         'seizures': int(y.sum()), 'random_audits': len(audits)}
        self._version = None
        return self

    def _validated(self, records) -> list:
        rows = []
        for i, record in enumerate(records):
            if not isinstance(record, (tuple, list)) or len(record) != 3:
                raise ValueError(f'records[{i}]: expected (features, outcome, selection)')
            f, outcome, selection = record
            self._check(f, f'records[{i}].features')
            if selection not in ('random', 'targeted', ''):
                raise ValueError(f'records[{i}].selection must be random, targeted or empty: '
                                 f'{selection!r}')
            if (outcome is None) != (selection == '') or not (
                    outcome is None or isinstance(outcome, (bool, np.bool_))):
                raise ValueError(f'records[{i}].outcome must be a bool exactly when the '
                                 f'declaration was inspected (selection {selection!r})')
            rows.append((f, None if outcome is None else bool(outcome), selection))
        if not rows:
            raise ValueError('records: empty, nothing to learn from')
        return rows

    def _count(self, f, outcome: bool):
        for entity, key in _keys(f).items():
            if key:
                s, expected, n = self.counts[entity].get(key, (0, 0.0, 0))
                self.counts[entity][key] = [s + int(outcome),
                                            expected + self.kind_rates[f.subject_kind], n + 1]

    def _strength(self, entity: str) -> float:
        """Return the strength a of an entity's Gamma(a, a) prior (empirical Bayes).

        a maximises the marginal likelihood of the keys' seizures, seizures ~ Poisson(ratio *
        expected) with ratio ~ Gamma(a, a), i.e. negative binomial.
        """
        data = np.array([v[:2] for v in self.counts[entity].values()], dtype=float)
        if not len(data):
            return STRENGTH_RANGE[1]
        s, e = data[:, 0], data[:, 1]

        def negative_log_likelihood(log_a):
            a = math.exp(log_a)
            return -float(np.sum(gammaln(s + a) - gammaln(a) + a * np.log(a / (a + e))
                                 + s * np.log(e / (a + e))))

        best = minimize_scalar(negative_log_likelihood, method='bounded',
                               bounds=[math.log(b) for b in STRENGTH_RANGE])
        return float(math.exp(best.x))

    # -- use -----------------------------------------------------------------------------

    def log_odds(self, features: DeclarationFeatures) -> PriorEstimate:
        """Return the prior log-odds of contraband for a declaration, with its explanation."""
        self._require_fit()
        self._check(features)
        kind, keys, beta = features.subject_kind, _keys(features), self.params['beta']
        base = self.params['intercept'][kind]
        contributions, texts, unknown, variance = [('base', base)], {}, [], 0.0
        for entity in ENTITIES:
            value, var, s, expected, n = self._entity(entity, keys[entity], kind)
            contributions.append((entity, beta[entity] * value))
            variance += beta[entity] ** 2 * var
            if keys[entity] and n:
                texts[entity] = (f'{entity} {keys[entity]}: {s} seizures in {n} inspections, '
                                 f'{expected:.2g} expected')
            elif keys[entity]:
                unknown.append(f'{entity} {keys[entity]}')
        z_uv, z_mb, texts['unit_value'], texts['mass_balance'] = self._continuous(features)
        contributions += [('unit_value', beta['unit_value'] * z_uv),
                          ('mass_balance', beta['mass_balance'] * z_mb)]
        z = np.array(self._row(features) + [0.0] * len(KINDS))
        variance += float(z @ np.array(self.cov) @ z)
        if self.sensitivity < 1.0:  # odds of contraband = odds of a seizure / sensitivity
            contributions.append(('inspection_sensitivity', -math.log(self.sensitivity)))
        total, std = sum(c for _, c in contributions), math.sqrt(variance)
        top = sorted(contributions[1:], key=lambda c: -abs(c[1]))[:3]
        reasons = ''.join(f'; {name} {nats:+.2f}' + (f' ({texts[name]})' if texts.get(name)
                                                     else '')
                          for name, nats in top if abs(nats) >= 0.005)
        explanation = (f'declaration prior {float(expit(total)):.3g} (log-odds {total:+.2f} '
                       f'+/- {std:.2f}): base {kind} {base:+.2f}{reasons}'
                       + (f'; no inspection record, population rate: {", ".join(unknown)}'
                          if unknown else ''))
        return PriorEstimate(float(total), float(std), explanation, tuple(contributions))

    def update(self, features: DeclarationFeatures, outcome: bool) -> None:
        """Add a new inspection result (seizure or not) to the counts; the version changes."""
        self._require_fit()
        self._check(features)
        if not isinstance(outcome, (bool, np.bool_)):
            raise ValueError(f'outcome must be a bool: {outcome!r}')
        self._count(features, bool(outcome))
        self._version = None

    @property
    def version(self) -> str:
        """Return 'declaration-prior/<code version>+<digest of the learned state>'."""
        if self._version is None:
            blob = json.dumps(self.to_dict(), sort_keys=True).encode()
            self._version = f'{MODEL_NAME}/{MODEL_VERSION}+{hashlib.sha256(blob).hexdigest()[:12]}'
        return self._version

    def to_dict(self) -> dict:
        """Return the whole model as JSON-safe data."""
        return {'format': FORMAT, 'l2': self.l2, 'inspection_sensitivity': self.sensitivity,
                'exchange_rates': dict(self.rates), 'kind_rates': dict(self.kind_rates),
                'counts': {e: {k: list(v) for k, v in c.items()} for e, c in self.counts.items()},
                'strength': dict(self.strength),
                'references': {k: list(v) for k, v in self.references.items()},
                'params': self.params, 'cov': self.cov, 'training': dict(self.training)}

    @classmethod
    def from_dict(cls, data: dict) -> 'DeclarationPrior':
        """Rebuild a model from to_dict()'s output; raise ValueError on a bad document."""
        try:
            if data['format'] != FORMAT:
                raise ValueError(f'format {data["format"]!r}, expected {FORMAT!r}')
            model = cls(float(data['l2']), float(data['inspection_sensitivity']),
                        {k: float(v) for k, v in data['exchange_rates'].items()})
            model.kind_rates = {k: float(data['kind_rates'][k]) for k in KINDS}
            model.counts = {e: {k: [int(s), float(x), int(n)]
                                for k, (s, x, n) in data['counts'][e].items()}
                            for e in ENTITIES}
            model.strength = {e: float(data['strength'][e]) for e in ENTITIES}
            model.references = {k: [float(x) for x in v[:-1]] + [int(v[-1])]
                                for k, v in data['references'].items()}
            params = data['params']
            model.params = {'intercept': {k: float(params['intercept'][k]) for k in KINDS},
                            'beta': {k: float(params['beta'][k]) for k in FEATURES},
                            'targeted': {k: float(params['targeted'][k]) for k in KINDS}}
            model.cov = [[float(x) for x in row] for row in data['cov']]
            model.training = dict(data.get('training', {}))
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise ValueError(f'not a declaration prior: {error!r}') from None
        return model
