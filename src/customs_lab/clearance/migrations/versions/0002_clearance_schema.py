"""Clearance schema: declaration lines and parties, subjects, inspection results, audit log.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25

- declarations: + subject_key, consignee_id, stored_at; the JSON `items` column becomes the
  declaration_items table (existing lines are moved, none dropped).
- decisions: + subject_key; model_version up to 128 characters.
- subjects: one row per subject seen, with its latest decision (filled from existing decisions).
- inspection_results: what officers found.
- audit_log + audit_head: the hash chain (clearance/audit.py); triggers refuse UPDATE and DELETE
  on audit_log. Rows that predate this revision are counted in the first entry, not audited.
- schema_info (the foundation's version table) is dropped: alembic_version replaces it.
"""

import datetime
import hashlib
import json

from alembic import op
import sqlalchemy as sa

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

GENESIS = '0' * 64
UTC_TIME = sa.DateTime(timezone=True)


def _key(kind, subject_id, zone):
    return f'{kind}:{zone}/{subject_id}' if zone else f'{kind}:{subject_id}'


def upgrade():
    """Apply the change, moving existing data."""
    bind = op.get_bind()
    now = datetime.datetime.now(datetime.timezone.utc)

    op.create_table(
        'declaration_items',
        sa.Column(
            'declaration_id',
            sa.String(64),
            sa.ForeignKey(
                'declarations.declaration_id',
                name='fk_declaration_items_declaration_id_declarations',
            ),
            primary_key=True,
        ),
        sa.Column('line_no', sa.Integer, primary_key=True),
        sa.Column('hs_code', sa.String(10), nullable=False),
        sa.Column('description', sa.Text, nullable=False),
        sa.Column('quantity', sa.Integer, nullable=False),
        sa.Column('net_mass', sa.Float, nullable=False),
        sa.Column('value', sa.Float, nullable=False),
        sa.Column('currency', sa.String(3), nullable=False),
    )
    op.create_index('ix_declaration_items_hs_code', 'declaration_items', ['hs_code'])
    with op.batch_alter_table('declarations') as batch:
        batch.add_column(
            sa.Column('subject_key', sa.String(160), nullable=False, server_default='')
        )
        batch.add_column(
            sa.Column('consignee_id', sa.String(64), nullable=False, server_default='')
        )
        batch.add_column(sa.Column('stored_at', UTC_TIME, nullable=True))
    old = sa.table(
        'declarations',
        sa.column('declaration_id'),
        sa.column('subject_kind'),
        sa.column('subject_id'),
        sa.column('zone'),
        sa.column('items'),
        sa.column('subject_key'),
        sa.column('stored_at'),
    )
    lines = sa.table(
        'declaration_items',
        *(
            sa.column(c)
            for c in (
                'declaration_id',
                'line_no',
                'hs_code',
                'description',
                'quantity',
                'net_mass',
                'value',
                'currency',
            )
        ),
    )
    for row in bind.execute(sa.select(old)).mappings().all():
        bind.execute(
            old.update()
            .where(old.c.declaration_id == row['declaration_id'])
            .values(
                subject_key=_key(row['subject_kind'], row['subject_id'], row['zone']),
                stored_at=now,
            )
        )
        items = json.loads(row['items'] or '[]')
        if items:
            bind.execute(
                lines.insert(),
                [
                    {
                        'declaration_id': row['declaration_id'],
                        'line_no': n,
                        'hs_code': str(item.get('hs_code', '')),
                        'description': str(item.get('description', '')),
                        'quantity': int(item.get('quantity', 0)),
                        'net_mass': float(item.get('net_mass', 0.0)),
                        'value': float(item.get('value', 0.0)),
                        'currency': str(item.get('currency', '')),
                    }
                    for n, item in enumerate(items, start=1)
                ],
            )
    with op.batch_alter_table('declarations') as batch:
        batch.drop_column('items')
        batch.alter_column('stored_at', existing_type=UTC_TIME, nullable=False)
        batch.create_index('ix_declarations_subject_key', ['subject_key'])

    with op.batch_alter_table('decisions') as batch:
        batch.add_column(
            sa.Column('subject_key', sa.String(160), nullable=False, server_default='')
        )
        batch.alter_column('model_version', existing_type=sa.String(64), type_=sa.String(128))
    decisions = sa.table(
        'decisions',
        *(
            sa.column(c)
            for c in (
                'decision_id',
                'subject_kind',
                'subject_id',
                'zone',
                'id_valid',
                'channel',
                'decided_at',
                'subject_key',
            )
        ),
    )
    latest = {}
    for row in bind.execute(sa.select(decisions).order_by(decisions.c.decided_at)).mappings():
        key = _key(row['subject_kind'], row['subject_id'], row['zone'])
        bind.execute(
            decisions.update()
            .where(decisions.c.decision_id == row['decision_id'])
            .values(subject_key=key)
        )
        latest[key] = row
    with op.batch_alter_table('decisions') as batch:
        batch.create_index('ix_decisions_subject_key', ['subject_key'])

    subjects = op.create_table(
        'subjects',
        sa.Column('subject_key', sa.String(160), primary_key=True),
        sa.Column('subject_kind', sa.String(16), nullable=False),
        sa.Column('subject_id', sa.String(64), nullable=False),
        sa.Column('zone', sa.String(64), nullable=False),
        sa.Column('id_valid', sa.Boolean, nullable=False),
        sa.Column('first_seen', UTC_TIME, nullable=False),
        sa.Column('latest_decision_id', sa.String(36), nullable=True),
        sa.Column('latest_decided_at', sa.Float, nullable=True),
        sa.Column('latest_channel', sa.String(8), nullable=True),
    )
    if latest:
        bind.execute(
            subjects.insert(),
            [
                {
                    'subject_key': key,
                    'subject_kind': row['subject_kind'],
                    'subject_id': row['subject_id'],
                    'zone': row['zone'],
                    'id_valid': row['id_valid'],
                    'first_seen': now,
                    'latest_decision_id': row['decision_id'],
                    'latest_decided_at': row['decided_at'],
                    'latest_channel': row['channel'],
                }
                for key, row in latest.items()
            ],
        )

    op.create_table(
        'inspection_results',
        sa.Column('result_id', sa.String(36), primary_key=True),
        sa.Column('subject_key', sa.String(160), nullable=False, index=True),
        sa.Column('subject_kind', sa.String(16), nullable=False),
        sa.Column('subject_id', sa.String(64), nullable=False),
        sa.Column('zone', sa.String(64), nullable=False),
        sa.Column('declaration_id', sa.String(64), nullable=False),
        sa.Column('decision_id', sa.String(36), nullable=False),
        sa.Column('officer_id', sa.String(64), nullable=False),
        sa.Column('action', sa.String(32), nullable=False),
        sa.Column('outcome', sa.String(16), nullable=False),
        sa.Column('categories', sa.Text, nullable=False),
        sa.Column('findings', sa.Text, nullable=False),
        sa.Column('inspected_at', sa.Float, nullable=False),
        sa.Column('recorded_at', UTC_TIME, nullable=False),
    )

    op.create_table(
        'audit_log',
        sa.Column('seq', sa.Integer, primary_key=True, autoincrement=False),
        sa.Column('recorded_at', sa.String(32), nullable=False),
        sa.Column('actor', sa.String(128), nullable=False),
        sa.Column('action', sa.String(64), nullable=False),
        sa.Column('object_type', sa.String(32), nullable=False),
        sa.Column('object_id', sa.String(160), nullable=False),
        sa.Column('payload', sa.Text, nullable=False),
        sa.Column('prev_hash', sa.String(64), nullable=False),
        sa.Column('hash', sa.String(64), nullable=False),
        sa.UniqueConstraint('hash', name='uq_audit_log_hash'),
    )
    head = op.create_table(
        'audit_head',
        sa.Column('id', sa.Integer, primary_key=True, autoincrement=False),
        sa.Column('seq', sa.Integer, nullable=False),
        sa.Column('hash', sa.String(64), nullable=False),
    )
    # The first entry records the migration and what it found (same formula as audit.entry_hash).
    counts = {
        table: bind.execute(sa.text(f'SELECT count(*) FROM {table}')).scalar()
        for table in ('declarations', 'decisions')
    }
    entry = {
        'seq': 1,
        'recorded_at': now.isoformat(timespec='microseconds'),
        'actor': 'alembic',
        'action': 'schema.migrated',
        'object_type': 'schema',
        'object_id': revision,
        'payload': json.dumps(
            {'from': down_revision, 'to': revision, 'unaudited_rows': counts},
            sort_keys=True,
            separators=(',', ':'),
        ),
    }
    content = json.dumps(entry, sort_keys=True, separators=(',', ':'), ensure_ascii=False)
    entry['prev_hash'] = GENESIS
    entry['hash'] = hashlib.sha256(f'{GENESIS}\n{content}'.encode()).hexdigest()
    bind.execute(sa.table('audit_log', *(sa.column(c) for c in entry)).insert(), [entry])
    bind.execute(head.insert(), [{'id': 1, 'seq': 1, 'hash': entry['hash']}])

    if bind.dialect.name == 'sqlite':
        for verb in ('UPDATE', 'DELETE'):
            op.execute(
                f'CREATE TRIGGER audit_log_no_{verb.lower()} BEFORE {verb} ON audit_log '
                "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END"
            )
    elif bind.dialect.name == 'postgresql':
        op.execute(
            'CREATE FUNCTION audit_log_append_only() RETURNS trigger AS $$ BEGIN '
            "RAISE EXCEPTION 'audit_log is append-only'; END $$ LANGUAGE plpgsql"
        )
        op.execute(
            'CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE OR TRUNCATE '
            'ON audit_log FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only()'
        )
    op.drop_table('schema_info')


def downgrade():
    """Undo the change (declaration lines go back into the JSON column)."""
    bind = op.get_bind()
    if bind.dialect.name == 'postgresql':
        op.execute('DROP TRIGGER audit_log_append_only ON audit_log')
        op.execute('DROP FUNCTION audit_log_append_only()')
    op.create_table('schema_info', sa.Column('version', sa.Integer, nullable=False))
    op.execute('INSERT INTO schema_info (version) VALUES (1)')
    for table in ('audit_head', 'audit_log', 'inspection_results', 'subjects'):
        op.drop_table(table)
    with op.batch_alter_table('decisions') as batch:
        batch.drop_index('ix_decisions_subject_key')
        batch.drop_column('subject_key')
        batch.alter_column('model_version', existing_type=sa.String(128), type_=sa.String(64))
    with op.batch_alter_table('declarations') as batch:
        batch.add_column(sa.Column('items', sa.Text, nullable=False, server_default='[]'))
    lines = (
        bind.execute(
            sa.text(
                'SELECT declaration_id, hs_code, description, quantity, net_mass, value, currency '
                'FROM declaration_items ORDER BY declaration_id, line_no'
            )
        )
        .mappings()
        .all()
    )
    by_declaration = {}
    for line in lines:
        item = dict(line)
        by_declaration.setdefault(item.pop('declaration_id'), []).append(item)
    for declaration_id, items in by_declaration.items():
        bind.execute(
            sa.text('UPDATE declarations SET items = :items WHERE declaration_id = :id'),
            {'items': json.dumps(items), 'id': declaration_id},
        )
    op.drop_table('declaration_items')
    with op.batch_alter_table('declarations') as batch:
        batch.drop_index('ix_declarations_subject_key')
        for column in ('subject_key', 'consignee_id', 'stored_at'):
            batch.drop_column(column)
