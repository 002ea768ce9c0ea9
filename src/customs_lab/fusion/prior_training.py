"""Fit the risk model from the clearance database, save it, load it.

The analysts' batch job: `customs-lab risk fit` (fusion/cli.py) runs `fit_from_database` (the
declaration prior) and `fit_calibration_from_database` (the engine's evidence calibrator) on
the site's clearance database and writes the model file that the fusion node loads (parameter
`prior_model`). The model file is JSON: DeclarationPrior.to_dict(), the calibrator's state with
the count of inspection results of each outcome it learned from, and where and when they were
trained. It is written atomically (a temporary file renamed over the old one), so the node
never reads half a model; the node reloads it when it changes. A fusion node that restarts
thus keeps what the site's inspections taught it, up to the last fit.

Core module: no ROS. Reads only what the database holds: declarations, decisions with their
evidence, and inspection results.
"""

import datetime
import json
import os
import pathlib
import tempfile

from customs_lab.fusion.calibration import EvidenceCalibrator
from customs_lab.fusion.declaration_prior import DeclarationFeatures, DeclarationPrior
from customs_lab.fusion.logodds import logit

MODEL_FILE = 'declaration_prior.json'  # default name in the data directory


def features_from_row(row: dict) -> DeclarationFeatures:
    """Return the prior's view of a ClearanceDatabase.training_rows() row."""
    return DeclarationFeatures(
        subject_kind=row['subject_kind'], hs_code=row['hs_code'],
        origin_country=row['origin_country'], declarant_id=row['declarant_id'],
        consignee_id=row['consignee_id'], quantity=int(row['quantity']),
        net_mass=float(row['net_mass']), gross_mass=float(row['gross_mass']),
        declared_value=float(row['value']), currency=row['currency'])


def fit_from_database(database, inspection_sensitivity: float = 0.9,
                      since: float | None = None) -> DeclarationPrior:
    """Fit a DeclarationPrior on the database's declarations and inspection results.

    Raises ValueError when the database cannot support a fit (no random audit, no seizure).
    """
    rows = database.training_rows(since)
    records = [(features_from_row(r), r['outcome'], r['selection']) for r in rows]
    return DeclarationPrior(inspection_sensitivity=inspection_sensitivity).fit(records)


def fit_calibration_from_database(database, cap: float = 20.0) -> tuple:
    """Fit the evidence calibrator on the database's inspected decisions, oldest first.

    Returns (EvidenceCalibrator, [clean, seizure] counts): each decision an inspection result
    names, with its prior and its evidence as it counted them, and whether a seizure was made,
    as the engine learns online (RiskEngine.learn). An empty database gives the identity.
    """
    calibrator, labels = EvidenceCalibrator(cap=cap), [0, 0]
    for row in database.calibration_rows():
        p = min(max(row['prior_risk'], 1e-12), 1.0 - 1e-12)
        calibrator.update(calibrator.features(logit(p), row['evidence']), row['seizure'])
        labels[int(row['seizure'])] += 1
    return calibrator, labels


def save_model(model: DeclarationPrior, path, source: str = '',
               calibration: tuple | None = None) -> pathlib.Path:
    """Write the model file atomically; return its path.

    calibration: (EvidenceCalibrator, [clean, seizure] counts) to store beside the prior.
    """
    path = pathlib.Path(path).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {
        'model': model.to_dict(), 'version': model.version, 'source': source,
        'trained_at': datetime.datetime.now(datetime.timezone.utc).isoformat(),
    }
    if calibration is not None:
        calibrator, labels = calibration
        document['calibration'] = {'calibrator': calibrator.to_dict(),
                                   'labels': [int(n) for n in labels]}
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f'.{path.name}.')
    try:
        with os.fdopen(handle, 'w') as stream:
            json.dump(document, stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        pathlib.Path(temporary).unlink(missing_ok=True)
        raise
    return path


def load_model(path) -> DeclarationPrior:
    """Read a model file; raise ValueError (naming the file) if it is not a valid model."""
    path = pathlib.Path(path).expanduser()
    try:
        document = json.loads(path.read_text())
        model = DeclarationPrior.from_dict(document['model'])
    except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
        raise ValueError(f'{path}: not a declaration prior model file ({error})') from None
    if document.get('version') not in (None, model.version):
        raise ValueError(f'{path}: the stored version {document["version"]} does not match '
                         f'its content ({model.version}): the file was altered')
    return model


def load_calibration(path) -> tuple | None:
    """Return the model file's (EvidenceCalibrator, [clean, seizure]), or None if it has none.

    Raises ValueError (naming the file) if the stored calibration is not valid.
    """
    path = pathlib.Path(path).expanduser()
    try:
        section = json.loads(path.read_text()).get('calibration')
        if section is None:
            return None
        labels = [int(n) for n in section['labels']]
        if len(labels) != 2 or min(labels) < 0:
            raise ValueError(f'labels must be two counts >= 0, got {labels}')
        return EvidenceCalibrator.from_dict(section['calibrator']), labels
    except (OSError, json.JSONDecodeError, AttributeError, KeyError, TypeError,
            ValueError) as error:
        raise ValueError(f'{path}: not a valid calibration ({error})') from None
