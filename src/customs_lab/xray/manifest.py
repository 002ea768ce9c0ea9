"""The scan against the declaration: mass and material mix, as a log-likelihood ratio.

Core module (numpy, no ROS). Input: a scan's Segmentation (segmentation.py: total mass and
mass by material class) and the declaration (goods description, declared net mass of the
goods, weighed gross mass); output: ManifestEvidence, a log-likelihood ratio in nats of
"hidden undeclared goods" against "as declared", with its terms and a one-line explanation.

Terms (independent by assumption, so they add):
  mass: the scan's mass in excess of what is declared, excess = scan mass - declared net mass
        - typical packaging (PACKAGING_KG), in kg; Gaussian under each hypothesis. A parcel
        packed as declared shows the goods within the scan's error (~6 %) and the goods'
        own spread; hidden goods add their mass (and smugglers understate the net mass).
        Skipped (0 nats) when no net mass is declared. NB: the weighed gross mass minus the
        declared net mass carries the same information without an X-ray; a fusion that also
        uses that difference must not count both. The scan's mass against the gross mass is
        reported (a scan far lighter than the weighed parcel means matter the scan cannot
        weigh: opaque shielding) but not scored.
  mix:  the shares of the scan's mass that are mixed / inorganic and metal (opaque counted as
        metal), as ln(share + 0.01), against what parcels of the declared kind of goods show
        (GOODS_KINDS, by keyword of the description; 'other' for anything else): a diagonal
        Gaussian per kind and hypothesis. Powder adds organic matter, weapons and ammunition
        metal, undeclared batteries mixed matter: the hidden-goods Gaussian is broader.
Parameters (DEFAULT_MODEL): fitted by `fit_model` on simulated parcels of the scenario's goods
(config/scenarios/default.yaml: mobile phone, clothing, cosmetics, toys), honest and with one
hidden threat (powder, weapon, ammunition, battery), by benchmarks/bench_xray_manifest.py
--print-model. The LLR is clipped to [-LLR_LIMIT, LLR_LIMIT]: a model fitted on simulated
parcels should not be trusted beyond a few nats.
"""

from dataclasses import dataclass
import math

import numpy as np

from customs_lab.xray.segmentation import Segmentation

PACKAGING_KG = 0.3  # typical box and filling of a parcel, kg
GOODS_KINDS = ('mobile phone', 'clothing', 'cosmetics', 'toys', 'other')
_KEYWORDS = (('phone', 'mobile phone'), ('cloth', 'clothing'), ('shirt', 'clothing'),
             ('apparel', 'clothing'), ('garment', 'clothing'), ('cosmetic', 'cosmetics'),
             ('perfume', 'cosmetics'), ('lotion', 'cosmetics'), ('toy', 'toys'))
MIX_FLOOR = 0.01  # added to the shares before the logarithm
LLR_LIMIT = 8.0  # nats
MIN_SIGMA = 0.05  # floor of every fitted standard deviation
# floors applied when scoring: the simulated honest parcels are packed to their declared mass
# exactly and in a box of fixed packaging; real declarations are rounded and packaging varies
# (the scenario's 0.2-0.4 kg has an sd of 0.06 kg), and a mix share is never known to better
# than ~30 %
MASS_SIGMA_FLOOR = 0.1  # kg
MIX_SIGMA_FLOOR = 0.3  # in ln(share + MIX_FLOOR)


@dataclass(frozen=True)
class Declaration:
    """What the declaration says about a parcel: goods description, masses in kg."""

    description: str
    net_mass: float = 0.0  # declared net mass of the goods (0: not declared)
    gross_mass: float = 0.0  # weighed gross mass (0: not known)

    def __post_init__(self):
        """Check the masses (ValueError)."""
        for name in ('net_mass', 'gross_mass'):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
                    math.isfinite(value) and value >= 0):
                raise ValueError(f'{name} must be a non-negative number of kg, got {value!r}')


@dataclass(frozen=True)
class ManifestEvidence:
    """The scan against the declaration: LLR (nats, > 0: hidden goods likelier) and terms."""

    llr: float
    mass_term: float
    mix_term: float
    kind: str  # the goods kind the description was read as
    scan_mass: float  # kg
    excess: float  # kg, scan - declared net - packaging (NaN without a declared net mass)
    shares: dict  # class name -> share of the scan's mass
    explanation: str


def goods_kind(description: str) -> str:
    """Return the GOODS_KINDS entry of a goods description (by keyword; 'other' if none)."""
    text = str(description).lower()
    for keyword, kind in _KEYWORDS:
        if keyword in text:
            return kind
    return 'other'


def mix_features(shares: dict) -> np.ndarray:
    """Return [ln(mixed share + floor), ln(metal + opaque share + floor)]."""
    inorganic = float(shares.get('inorganic', 0.0))
    metal = float(shares.get('metal', 0.0)) + float(shares.get('opaque', 0.0))
    return np.log(np.array([inorganic, metal]) + MIX_FLOOR)


def _gauss(x, mean, sigma) -> float:
    x, mean, sigma = (np.asarray(v, dtype=float) for v in (x, mean, sigma))
    return float(np.sum(-0.5 * ((x - mean) / sigma) ** 2 - np.log(sigma)
                        - 0.5 * math.log(2 * math.pi)))


def compare(segmentation: Segmentation, declaration: Declaration,
            model: dict | None = None) -> ManifestEvidence:
    """Return the ManifestEvidence of a scan's segmentation against its declaration."""
    if not isinstance(declaration, Declaration):
        raise ValueError(f'expected a Declaration, got {type(declaration).__name__}')
    model = DEFAULT_MODEL if model is None else model
    kind = goods_kind(declaration.description)
    scan_mass = segmentation.total_mass
    shares = segmentation.class_shares()
    if declaration.net_mass > 0:
        excess = scan_mass - declaration.net_mass - PACKAGING_KG
        honest, hidden = model['mass']['honest'], model['mass']['hidden']
        mass_term = (_gauss(excess, hidden[0], max(hidden[1], MASS_SIGMA_FLOOR))
                     - _gauss(excess, honest[0], max(honest[1], MASS_SIGMA_FLOOR)))
    else:
        excess, mass_term = float('nan'), 0.0
    mix = model['mix'].get(kind, model['mix']['other'])
    features = mix_features(shares)
    mix_term = (_gauss(features, mix['hidden'][0], np.maximum(mix['hidden'][1], MIX_SIGMA_FLOOR))
                - _gauss(features, mix['honest'][0],
                         np.maximum(mix['honest'][1], MIX_SIGMA_FLOOR)))
    llr = float(np.clip(mass_term + mix_term, -LLR_LIMIT, LLR_LIMIT))
    parts = [f'scan {scan_mass:.2f} kg']
    if declaration.net_mass > 0:
        parts.append(f'declared net {declaration.net_mass:.2f} kg + ~{PACKAGING_KG:.1f} kg '
                     f'packaging: {excess:+.2f} kg unexplained ({mass_term:+.1f} nats)')
    if declaration.gross_mass > 0:
        parts.append(f'weighed {declaration.gross_mass:.2f} kg')
    parts.append(f'mix organic {shares.get("organic", 0.0):.0%}, mixed '
                 f'{shares.get("inorganic", 0.0):.0%}, metal '
                 f'{shares.get("metal", 0.0) + shares.get("opaque", 0.0):.0%} for '
                 f'{kind!r} ({mix_term:+.1f} nats)')
    return ManifestEvidence(llr, float(mass_term), float(mix_term), kind, float(scan_mass),
                            float(excess), shares, '; '.join(parts))


def fit_model(samples) -> dict:
    """Return a manifest model fitted to samples (kind, excess kg, mix features, hidden?).

    Gaussians per hypothesis: the mass excess pooled over kinds, the mix features per kind
    (a kind with fewer than 5 samples of a hypothesis takes the pooled ones); standard
    deviations floored at MIN_SIGMA.
    """
    samples = list(samples)
    if not samples:
        raise ValueError('fitting the manifest model needs samples')

    def gaussian(values):
        values = np.asarray(values, dtype=float)
        return ([float(v) for v in np.atleast_1d(values.mean(axis=0))],
                [float(max(v, MIN_SIGMA)) for v in np.atleast_1d(values.std(axis=0))])

    out = {'mass': {}, 'mix': {}}
    for hypothesis, flag in (('honest', False), ('hidden', True)):
        excess = [s[1] for s in samples if s[3] == flag and math.isfinite(s[1])]
        if len(excess) < 5:
            raise ValueError(f'fewer than 5 {hypothesis} samples with a mass excess')
        mean, sigma = gaussian(excess)
        out['mass'][hypothesis] = [mean[0], sigma[0]]
    for kind in GOODS_KINDS:
        out['mix'][kind] = {}
        for hypothesis, flag in (('honest', False), ('hidden', True)):
            chosen = [s[2] for s in samples if s[3] == flag and s[0] == kind]
            if len(chosen) < 5:
                chosen = [s[2] for s in samples if s[3] == flag]
            out['mix'][kind][hypothesis] = list(gaussian(np.array(chosen)))
    return out


# fitted by benchmarks/bench_xray_manifest.py --print-model (200 training parcels, seeds
# 30000+, scanner unit 51): [mean, sigma] of the mass excess (kg), [[means], [sigmas]] of the mix
DEFAULT_MODEL = {
    'mass': {'honest': [-0.001266, 0.0622], 'hidden': [0.8205, 0.4684]},
    'mix': {
        'mobile phone': {
            'honest': [[-0.5517, -3.154], [0.1224, 0.4818]],
            'hidden': [[-0.9712, -1.783], [0.4419, 1.307]],
        },
        'clothing': {
            'honest': [[-4.282, -4.339], [0.5693, 0.4748]],
            'hidden': [[-2.877, -2.519], [1.2, 1.342]],
        },
        'cosmetics': {
            'honest': [[-1.626, -4.575], [0.393, 0.05]],
            'hidden': [[-1.472, -2.202], [0.7307, 1.397]],
        },
        'toys': {
            'honest': [[-1.986, -1.935], [0.4519, 0.4144]],
            'hidden': [[-2.067, -1.56], [0.6454, 0.8839]],
        },
        'other': {
            'honest': [[-2.112, -3.501], [1.423, 1.124]],
            'hidden': [[-1.847, -2.016], [1.073, 1.303]],
        },
    },
}
