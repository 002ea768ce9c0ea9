"""Score decisions against the simulator's ground truth. Core module: no ROS.

Only the evaluator uses this: it is the one place where decisions meet the truth. A subject
counts as flagged when its final decision sends it to an inspection that can find contraband
(X-ray, robot or physical inspection, hold: the actions that use inspection capacity); a
document check is YELLOW but opens nothing. caught = contraband and flagged; missed =
contraband and not flagged (or never decided); false alarm = clean and flagged; cleared =
clean and not flagged. The inspection rate is the flagged share, comparable to the budget.
"""

from dataclasses import dataclass, field

from customs_lab.fusion.policy import CAPACITY_ACTIONS

CHANNEL_NAMES = ('GREEN', 'YELLOW', 'RED')


@dataclass
class TruthRecord:
    """What the evaluator knows of one subject."""

    key: str
    kind: str
    contraband: bool
    categories: tuple  # categories of the contraband items
    description: str


@dataclass
class DecisionRecord:
    """The latest decision about one subject."""

    key: str
    channel: int
    posterior: float
    action: str
    explanation: str
    decisions: int = 1


@dataclass
class Evaluation:
    """Collect truth and decisions; produce the report."""

    truth: dict = field(default_factory=dict)
    decisions: dict = field(default_factory=dict)

    def add_truth(self, record: TruthRecord):
        """Record a subject's truth."""
        self.truth[record.key] = record

    def add_decision(
        self, key: str, channel: int, posterior: float, action: str, explanation: str
    ):
        """Record a decision; a later one supersedes an earlier one for the same subject."""
        previous = self.decisions.get(key)
        count = previous.decisions + 1 if previous else 1
        self.decisions[key] = DecisionRecord(key, channel, posterior, action, explanation, count)

    @property
    def undecided(self) -> list:
        """Return the keys of subjects with truth but no decision yet."""
        return sorted(k for k in self.truth if k not in self.decisions)

    def report(self) -> dict:
        """Return the scores as a JSON-ready dict."""
        by_kind, by_category = {}, {}
        totals = {'caught': 0, 'missed': 0, 'false_alarms': 0, 'cleared': 0}
        outcomes = []
        for key, truth in sorted(self.truth.items()):
            decision = self.decisions.get(key)
            flagged = decision is not None and decision.action in CAPACITY_ACTIONS
            outcome = (
                ('caught' if flagged else 'missed')
                if truth.contraband
                else ('false_alarms' if flagged else 'cleared')
            )
            totals[outcome] += 1
            kind = by_kind.setdefault(
                truth.kind,
                {
                    'subjects': 0,
                    'caught': 0,
                    'missed': 0,
                    'false_alarms': 0,
                    'cleared': 0,
                    'channels': dict.fromkeys(CHANNEL_NAMES, 0),
                },
            )
            kind['subjects'] += 1
            kind[outcome] += 1
            if decision is not None:
                kind['channels'][CHANNEL_NAMES[decision.channel]] += 1
            for category in truth.categories:
                entry = by_category.setdefault(category, {'caught': 0, 'missed': 0})
                entry[outcome] += 1
            outcomes.append(
                {
                    'subject': key,
                    'contraband': truth.contraband,
                    'truth': truth.description,
                    'outcome': outcome,
                    'channel': CHANNEL_NAMES[decision.channel] if decision else None,
                    'posterior_risk': decision.posterior if decision else None,
                    'action': decision.action if decision else None,
                    'explanation': decision.explanation if decision else None,
                }
            )
        channels = dict.fromkeys(CHANNEL_NAMES, 0)
        for decision in self.decisions.values():
            channels[CHANNEL_NAMES[decision.channel]] += 1
        contraband = totals['caught'] + totals['missed']
        flagged = totals['caught'] + totals['false_alarms']
        return {
            'subjects_seen': len(self.truth),
            'subjects_decided': sum(1 for k in self.truth if k in self.decisions),
            'decisions_for_unknown_subjects': sorted(
                k for k in self.decisions if k not in self.truth
            ),
            'decisions_by_channel': channels,
            **totals,
            'detection_rate': totals['caught'] / contraband if contraband else None,
            'precision': totals['caught'] / flagged if flagged else None,
            'inspection_rate': flagged / len(self.truth) if self.truth else None,
            'by_kind': by_kind,
            'by_contraband_category': by_category,
            'subjects': outcomes,
        }


def summary_table(report: dict) -> str:
    """Return a short plain-text table of the report, for the terminal."""
    lines = [
        f'{"kind":<10} {"subjects":>8} {"GREEN":>6} {"YELLOW":>6} {"RED":>5} '
        f'{"caught":>6} {"missed":>6} {"false alarms":>12}'
    ]
    for kind, row in sorted(report['by_kind'].items()):
        channels = row['channels']
        lines.append(
            f'{kind:<10} {row["subjects"]:>8} {channels["GREEN"]:>6} '
            f'{channels["YELLOW"]:>6} {channels["RED"]:>5} {row["caught"]:>6} '
            f'{row["missed"]:>6} {row["false_alarms"]:>12}'
        )
    channels = report['decisions_by_channel']
    lines.append(
        f'{"all":<10} {report["subjects_seen"]:>8} {channels["GREEN"]:>6} '
        f'{channels["YELLOW"]:>6} {channels["RED"]:>5} {report["caught"]:>6} '
        f'{report["missed"]:>6} {report["false_alarms"]:>12}'
    )

    def pct(value):
        return 'n/a' if value is None else f'{100 * value:.1f}%'

    lines.append(
        f'detection rate {pct(report["detection_rate"])}, precision '
        f'{pct(report["precision"])}, inspection rate {pct(report["inspection_rate"])}'
    )
    for category, row in sorted(report['by_contraband_category'].items()):
        lines.append(f'  {category}: caught {row["caught"]}, missed {row["missed"]}')
    if report['decisions_for_unknown_subjects']:
        lines.append(
            f'  decisions about ids not in the scenario (misreads): '
            f'{len(report["decisions_for_unknown_subjects"])}'
        )
    return '\n'.join(lines)


def score_identification(nuclides, categories, true_nuclides) -> str:
    """Return how a passage's identification compares with the subject's truth.

    'named': every source the subject carried is among the nuclides; 'missed': one is not;
    'false': the subject carried no source, yet a nuclide other than NORM was reported;
    'clean': no source, and nothing but NORM reported (NORM cargo, or natural background).
    (The evaluator calls a passage whose subject it has no truth for, one the lane could not
    read or misread, 'unattributed', and scores it as none of these.)
    """
    if true_nuclides:
        return 'named' if set(true_nuclides) <= set(nuclides) else 'missed'
    threats = [n for n, c in zip(nuclides, categories, strict=True) if c != 'NORM']
    return 'false' if threats else 'clean'


def identification_summary(entries) -> str:
    """Return one line on the scored identifications of a run."""
    outcomes = [e['outcome'] for e in entries]
    carrying = outcomes.count('named') + outcomes.count('missed')
    clean = outcomes.count('clean') + outcomes.count('false')
    missed = [f'{e["subject"]} ({", ".join(e["true_nuclides"])})' for e in entries
              if e['outcome'] == 'missed']
    return (f'identified sources: {outcomes.count("named")} of {carrying} passages carrying a '
            f'source named it{" (missed: " + "; ".join(missed) + ")" if missed else ""}; '
            f'{outcomes.count("false")} of {clean} passages without one reported a '
            f'non-NORM nuclide'
            + (f'; {outcomes.count("unattributed")} passages not attributed to a subject'
               if 'unattributed' in outcomes else ''))


def score_xray(llr: float, categories, attributed: bool = True) -> str:
    """Return how a parcel scan's joint X-ray LLR compares with the parcel's truth.

    categories: the parcel's contraband categories. 'flagged' / 'missed': it carried what the
    X-ray models cover (CONTRABAND_THREAT with a threat class) and the LLR was above / not above
    0; 'false' / 'clear': it carried nothing and the LLR was above / not above 0; 'uncovered':
    it carried only what the X-ray models do not cover (a radioactive source); 'unattributed':
    the scan's waybill was unread or is not a parcel of the scenario.
    """
    from customs_lab.simulation.parcel_scene import CONTRABAND_THREAT

    if not attributed:
        return 'unattributed'
    covered = [c for c in categories if CONTRABAND_THREAT.get(c)]
    if covered:
        return 'flagged' if llr > 0 else 'missed'
    if categories:
        return 'uncovered'
    return 'false' if llr > 0 else 'clear'


def xray_summary(entries) -> str:
    """Return one line on the scored X-ray scans of a run."""
    outcomes = [e['outcome'] for e in entries]
    carrying = outcomes.count('flagged') + outcomes.count('missed')
    clean = outcomes.count('false') + outcomes.count('clear')
    missed = [f'{e["subject"]} ({e["description"]})' for e in entries
              if e['outcome'] == 'missed']
    return (f'X-ray scans: {len(entries)}; {outcomes.count("flagged")} of {carrying} parcels '
            f'hiding what the X-ray models cover flagged (LLR > 0)'
            f'{" (missed: " + "; ".join(missed) + ")" if missed else ""}; '
            f'{outcomes.count("false")} of {clean} clean parcels flagged'
            + (f'; {outcomes.count("uncovered")} carrying only what they do not cover'
               if 'uncovered' in outcomes else '')
            + (f'; {outcomes.count("unattributed")} not attributed to a parcel'
               if 'unattributed' in outcomes else ''))
