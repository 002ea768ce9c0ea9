"""`customs-lab db ...`: the clearance database from the command line.

    customs-lab db status        revision, row counts, records waiting in the bridge's outbox
    customs-lab db migrate       upgrade the schema to the newest revision (the bridge also does)
    customs-lab db verify-audit  check the audit log's hash chain and every audited row;
                                 exit 0 if intact, 1 if not (each problem is printed)

The database is --database-url, else SQLite <data_dir>/clearance.db as the bridge uses it
(<data_dir>: --data-dir, $CUSTOMS_LAB_DATA_DIR, ~/.local/share/customs_lab).
"""

import argparse
import sys

import sqlalchemy as sa

from customs_lab.clearance.database import ClearanceDatabase, sqlite_url
from customs_lab.clearance.outbox import Outbox
from customs_lab.clearance.schema import (
    audit_log,
    decisions,
    declarations,
    inspection_results,
    subjects,
)
from customs_lab.common.data_dir import data_dir

USAGE_ERROR = 2


def _status(database, directory):
    print(f'database: {database.engine.url!r}')
    print(f'revision: {database.revision() or "(empty: run customs-lab db migrate)"}')
    if database.revision():
        with database.engine.connect() as connection:
            for table in (subjects, declarations, decisions, inspection_results, audit_log):
                count = connection.execute(sa.select(sa.func.count()).select_from(table)).scalar()
                print(f'  {table.name:<20} {count:>9}')
    path = directory / 'clearance_outbox.db'
    if path.exists():
        outbox = Outbox(path)
        print(f'outbox: {path}: {len(outbox)} waiting, {len(outbox.rejected())} rejected')
        for key, error in outbox.rejected()[:20]:
            print(f'  rejected {key}: {error}')
        outbox.close()
    return 0


def _verify(database):
    result = database.verify_audit()
    for problem in result.problems:
        print(f'PROBLEM: {problem}')
    verdict = 'intact' if result.ok else 'NOT intact'
    print(f'audit log: {result.entries} entries, head at {result.head_seq}: {verdict}')
    return 0 if result.ok else 1


def main(argv) -> int:
    """Run `customs-lab db ...`; return the exit status."""
    parser = argparse.ArgumentParser(
        prog='customs-lab db',
        description='The clearance database: status, migrations, audit-log verification.',
    )
    parser.add_argument('action', choices=['status', 'migrate', 'verify-audit'])
    parser.add_argument('--database-url', default='',
                        help='SQLAlchemy URL (default: SQLite <data_dir>/clearance.db)')
    parser.add_argument('--data-dir', default='', help='data directory of the site')
    options = parser.parse_args(argv)
    directory = data_dir(options.data_dir)
    try:
        database = ClearanceDatabase(
            options.database_url or sqlite_url(directory / 'clearance.db'), actor='customs-lab db'
        )
        if options.action == 'migrate':
            database.migrate()
            print(f'{database.engine.url!r} at revision {database.revision()}')
            return 0
        if options.action == 'verify-audit':
            return _verify(database)
        return _status(database, directory)
    except (ValueError, sa.exc.SQLAlchemyError) as error:
        print(f'customs-lab db: error: {error}'.splitlines()[0], file=sys.stderr)
        return USAGE_ERROR
