"""Foundation schema: declarations (items as JSON), decisions and their evidence.

Revision ID: 0001
Revises:
Create Date: 2026-11-20

The schema the foundation issue created with metadata.create_all; a database made then, with no
alembic_version table, is stamped at this revision and upgraded from here (database.migrate).
"""

from alembic import op
import sqlalchemy as sa

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    """Create the foundation tables."""
    op.create_table(
        'declarations',
        sa.Column('declaration_id', sa.String(64), primary_key=True),
        sa.Column('subject_kind', sa.String(16), nullable=False),
        sa.Column('subject_id', sa.String(64), nullable=False, index=True),
        sa.Column('zone', sa.String(64), nullable=False),
        sa.Column('declarant_id', sa.String(64), nullable=False),
        sa.Column('origin_country', sa.String(2), nullable=False),
        sa.Column('gross_mass', sa.Float, nullable=False),
        sa.Column('expected_arrival', sa.Float, nullable=False),
        sa.Column('filed_at', sa.Float, nullable=False),
        sa.Column('items', sa.Text, nullable=False),
    )
    op.create_table(
        'decisions',
        sa.Column('decision_id', sa.String(36), primary_key=True),
        sa.Column('subject_kind', sa.String(16), nullable=False),
        sa.Column('subject_id', sa.String(64), nullable=False, index=True),
        sa.Column('zone', sa.String(64), nullable=False),
        sa.Column('id_valid', sa.Boolean, nullable=False),
        sa.Column('channel', sa.String(8), nullable=False),
        sa.Column('recommended_action', sa.String(32), nullable=False),
        sa.Column('prior_risk', sa.Float, nullable=False),
        sa.Column('posterior_risk', sa.Float, nullable=False),
        sa.Column('posterior_log_odds', sa.Float, nullable=False),
        sa.Column('model_version', sa.String(64), nullable=False),
        sa.Column('decided_at', sa.Float, nullable=False),
        sa.Column('stored_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('explanation', sa.Text, nullable=False),
    )
    op.create_table(
        'decision_evidence',
        sa.Column(
            'decision_id',
            sa.String(36),
            sa.ForeignKey('decisions.decision_id'),
            primary_key=True,
        ),
        sa.Column('evidence_id', sa.String(36), primary_key=True),
        sa.Column('kind', sa.String(64), nullable=False),
        sa.Column('sensor_id', sa.String(128), nullable=False),
        sa.Column('log_likelihood_ratio', sa.Float, nullable=False),
        sa.Column('weight', sa.Float, nullable=False),
        sa.Column('contribution', sa.Float, nullable=False),
        sa.Column('explanation', sa.Text, nullable=False),
    )
    op.create_table('schema_info', sa.Column('version', sa.Integer, nullable=False))
    op.execute('INSERT INTO schema_info (version) VALUES (1)')


def downgrade():
    """Drop the foundation tables."""
    for table in ('schema_info', 'decision_evidence', 'decisions', 'declarations'):
        op.drop_table(table)
