"""Why a subject was inspected: `selection` on decisions and inspection results.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25

A risk model learns from inspection results only if it knows how each inspected subject was
chosen: 'targeted' (the risk rules or an officer picked it) or 'random' (the uniform audit).
Rows stored before this revision get '' (not known); their audit digests are unchanged, as
records leave a default selection out of their digest (clearance/records.py).
"""

from alembic import op
import sqlalchemy as sa

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

TABLES = ('decisions', 'inspection_results')


def upgrade():
    """Add the columns (existing rows: '')."""
    for table in TABLES:
        op.add_column(
            table, sa.Column('selection', sa.String(16), nullable=False, server_default='')
        )


def downgrade():
    """Drop the columns."""
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_column('selection')
