"""Alembic environment: runs the revisions on the connection that ClearanceDatabase.migrate passes.

There is no alembic.ini: the project calls Alembic from code (customs-lab clearance migrate, or the
bridge at configure). To make a new revision during development:
    python -c "from customs_lab.clearance.database import alembic_config; \
from alembic import command; command.revision(alembic_config(), 'what changed')"
"""

from alembic import context

from customs_lab.clearance.schema import metadata

connection = context.config.attributes.get('connection')
if connection is None:
    raise RuntimeError('run the clearance migrations through ClearanceDatabase.migrate()')
# render_as_batch: SQLite cannot ALTER most things; batch mode copies the table instead.
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
