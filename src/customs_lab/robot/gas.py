"""Gases inside a container: the robot's readings against exposure limits, as alarm levels.

Core module (no ROS). Fumigated containers hold phosphine (PH3, from aluminium or magnesium
phosphide) or methyl bromide (CH3Br); closed cargo builds up CO2 and loses O2. An officer must
not open or enter a container before its air is known: the robot measures it first. The levels
(config/robot.yaml `gas_limits`, defaults below) follow the published occupational limits
(NIOSH Pocket Guide; OSHA 29 CFR 1910.1000 Table Z-1; ACGIH TLVs; OSHA 1910.146 for oxygen):

| gas | caution (8 h TWA) | warning (short term / ceiling) | danger (IDLH) |
|---|---|---|---|
| phosphine | 0.3 ppm (OSHA PEL, NIOSH REL) | 1 ppm (NIOSH STEL) | 50 ppm |
| methyl bromide | 1 ppm (ACGIH TLV) | 20 ppm (OSHA ceiling) | 250 ppm |
| carbon dioxide | 5,000 ppm (TWA) | 30,000 ppm (STEL) | 40,000 ppm |
| oxygen | below 19.5 % or above 23.5 % (OSHA 1910.146: hazardous atmosphere) | | below 16 % |

(16 % O2 is where impaired judgement and breathing begin: the usual alarm point below the
19.5 % deficiency line; an assumption of this module, not a regulatory figure.)
A level is 'ok', 'caution', 'warning' or 'danger'; the worst gas sets the container's.
"""

from dataclasses import dataclass
import math

LEVELS = ('ok', 'caution', 'warning', 'danger')
GASES = ('phosphine', 'methyl_bromide', 'carbon_dioxide', 'oxygen')
UNITS = {'phosphine': 'ppm', 'methyl_bromide': 'ppm', 'carbon_dioxide': 'ppm', 'oxygen': '%'}
DEFAULT_LIMITS = {  # gas -> (caution, warning, danger) thresholds, rising
    'phosphine': (0.3, 1.0, 50.0),
    'methyl_bromide': (1.0, 20.0, 250.0),
    'carbon_dioxide': (5000.0, 30000.0, 40000.0),
}
OXYGEN_LIMITS = (19.5, 23.5, 16.0)  # % vol: caution below / above, danger below


@dataclass(frozen=True)
class GasReading:
    """One reading of the four gases: ppm, and oxygen in % by volume."""

    phosphine: float
    methyl_bromide: float
    carbon_dioxide: float
    oxygen: float

    def __post_init__(self):
        """Refuse values no sensor gives (ValueError): negative, non-finite, O2 above 100 %."""
        for name in GASES:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
                    math.isfinite(value) and value >= 0):
                raise ValueError(f'{name}: not a concentration: {value!r}')
        if self.oxygen > 100.0:
            raise ValueError(f'oxygen above 100 %: {self.oxygen}')


@dataclass(frozen=True)
class Assessment:
    """A reading's level, each gas's level and the reasons."""

    level: str
    levels: dict  # gas -> level
    reasons: tuple  # one per gas not ok


def check_limits(limits: dict) -> dict:
    """Return the toxic gases' limits, checked (ValueError: unknown gas, not rising)."""
    out = dict(DEFAULT_LIMITS)
    for gas, values in limits.items():
        if gas not in DEFAULT_LIMITS:
            raise ValueError(f'unknown gas {gas!r} (known: {sorted(DEFAULT_LIMITS)})')
        values = tuple(float(v) for v in values)
        if len(values) != 3 or not (0 < values[0] < values[1] < values[2]) or not all(
                math.isfinite(v) for v in values):
            raise ValueError(f'{gas}: limits must be three rising positive numbers, got '
                             f'{values}')
        out[gas] = values
    return out


def assess(reading: GasReading, limits: dict | None = None) -> Assessment:
    """Return the alarm levels of a reading (limits: check_limits' output, or the defaults)."""
    limits = DEFAULT_LIMITS if limits is None else limits
    levels, reasons = {}, []
    for gas, (caution, warning, danger) in limits.items():
        value = getattr(reading, gas)
        level = 3 if value >= danger else 2 if value >= warning else 1 if value >= caution \
            else 0
        levels[gas] = LEVELS[level]
        if level:
            bound = (caution, warning, danger)[level - 1]
            reasons.append(f'{gas.replace("_", " ")} {value:.3g} ppm >= {bound:g} ppm '
                           f'({LEVELS[level]})')
    low, high, danger = OXYGEN_LIMITS
    level = 3 if reading.oxygen < danger else 1 if not low <= reading.oxygen <= high else 0
    levels['oxygen'] = LEVELS[level]
    if level:
        reasons.append(f'oxygen {reading.oxygen:.1f} % outside {low:g}-{high:g} %'
                       + (' (danger)' if level == 3 else ' (caution)'))
    worst = max(LEVELS.index(v) for v in levels.values())
    return Assessment(LEVELS[worst], levels, tuple(reasons))
