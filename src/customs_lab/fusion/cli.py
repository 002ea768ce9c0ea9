"""`customs-lab risk ...`: the risk model from the command line (the analysts' tools).

    customs-lab risk fit    fit the declaration prior on the clearance database's declarations
                            and inspection results, and the evidence calibration on its
                            inspected decisions; write the model file the fusion node loads
    customs-lab risk show   print a model file: version, training data, coefficients

The database is --database-url, else SQLite <data_dir>/clearance.db; the model file is --model,
else <data_dir>/declaration_prior.json (<data_dir>: --data-dir, $CUSTOMS_LAB_DATA_DIR,
~/.local/share/customs_lab). The fusion node picks a new model file up by itself.
"""

import argparse
import sys

import sqlalchemy as sa

from customs_lab.common.data_dir import data_dir
from customs_lab.fusion.prior_training import (
    MODEL_FILE,
    fit_calibration_from_database,
    fit_from_database,
    load_calibration,
    load_model,
    save_model,
)

USAGE_ERROR = 2


def _fit(options, directory, model_path):
    from customs_lab.clearance.database import ClearanceDatabase, sqlite_url

    url = options.database_url or sqlite_url(directory / 'clearance.db')
    database = ClearanceDatabase(url, actor='customs-lab risk')
    try:
        model = fit_from_database(database, options.inspection_sensitivity, options.since)
        calibration = fit_calibration_from_database(database, options.llr_cap)
    finally:
        database.dispose()
    save_model(model, model_path, source=str(database.engine.url), calibration=calibration)
    print(f'{model_path}: {model.version}')
    _summary(model, calibration)
    return 0


def _summary(model, calibration=None):
    t = model.training
    print(f"  trained on {t['records']} declarations, {t['inspected']} inspected "
          f"({t['random_audits']} by random audit), {t['seizures']} seizures")
    params = model.params
    print('  intercepts: ' + ', '.join(f'{k} {v:+.2f}' for k, v in params['intercept'].items()))
    print('  weights:    ' + ', '.join(f'{k} {v:.2f}' for k, v in params['beta'].items()))
    if calibration is None:
        print('  evidence calibration: none in the file')
        return
    calibrator, labels = calibration
    print(f'  evidence calibration {calibrator.version}: {sum(labels)} inspected decisions '
          f'({labels[1]} seizures); {calibrator.describe()}')


def main(argv) -> int:
    """Run `customs-lab risk ...`; return the exit status."""
    parser = argparse.ArgumentParser(prog='customs-lab risk',
                                     description='Fit and inspect the declaration risk prior.')
    parser.add_argument('action', choices=['fit', 'show'])
    parser.add_argument('--database-url', default='',
                        help='SQLAlchemy URL (default: SQLite <data_dir>/clearance.db)')
    parser.add_argument('--data-dir', default='', help='data directory of the site')
    parser.add_argument('--model', default='',
                        help=f'model file (default: <data_dir>/{MODEL_FILE})')
    parser.add_argument('--inspection-sensitivity', type=float, default=0.9,
                        help='share of contraband an inspection finds (default 0.9)')
    parser.add_argument('--llr-cap', type=float, default=20.0,
                        help="the fusion node's llr_cap (nats), which the calibration assumes")
    parser.add_argument('--since', type=float, default=None,
                        help='learn only from declarations filed from this site-clock time (s)')
    options = parser.parse_args(argv)
    directory = data_dir(options.data_dir)
    model_path = options.model or directory / MODEL_FILE
    try:
        if options.action == 'fit':
            return _fit(options, directory, model_path)
        model = load_model(model_path)
        print(f'{model_path}: {model.version}')
        _summary(model, load_calibration(model_path))
        return 0
    except (ValueError, OSError, sa.exc.SQLAlchemyError) as error:
        print(f'customs-lab risk: error: {error}'.splitlines()[0], file=sys.stderr)
        return USAGE_ERROR
