"""The clearance database schema (SQLAlchemy Core tables), at the newest Alembic revision.

Alembic migrations (clearance/migrations/versions/) create and evolve these tables; this module
describes the result, for queries. Times: `*_at` columns ending in a site-clock stamp are float
seconds of the site clock (sim time in a simulation); `stored_at` / `recorded_at` are wall-clock
UTC. Masses in kg, values in the line's currency.

Tables:
    declarations        one customs declaration per subject (parties, origin, masses)
    declaration_items   its declared lines (HS code, goods, quantity, mass, value)
    subjects            every subject the site has seen, with its latest decision
    decisions           explained risk decisions, keyed by decision id (stored exactly once)
    decision_evidence   each decision's evidence and its contribution to the log-odds
    inspection_results  what officers found when they inspected a subject
    audit_log           append-only, hash-chained record of every write (clearance/audit.py)
    audit_head          the chain's newest entry (one row), updated with each append
"""

import sqlalchemy as sa

# Constraint names that are the same on every database (Alembic batch mode on SQLite needs them).
metadata = sa.MetaData(
    naming_convention={
        'ix': 'ix_%(table_name)s_%(column_0_name)s',
        'uq': 'uq_%(table_name)s_%(column_0_name)s',
        'fk': 'fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s',
        'pk': 'pk_%(table_name)s',
    }
)

UTC_TIME = sa.DateTime(timezone=True)

declarations = sa.Table(
    'declarations',
    metadata,
    sa.Column('declaration_id', sa.String(64), primary_key=True),
    sa.Column('subject_key', sa.String(160), nullable=False, index=True),
    sa.Column('subject_kind', sa.String(16), nullable=False),
    sa.Column('subject_id', sa.String(64), nullable=False, index=True),
    sa.Column('zone', sa.String(64), nullable=False),
    sa.Column('declarant_id', sa.String(64), nullable=False),  # importer / declarant code
    sa.Column('consignee_id', sa.String(64), nullable=False),
    sa.Column('origin_country', sa.String(2), nullable=False),  # ISO 3166-1 alpha-2
    sa.Column('gross_mass', sa.Float, nullable=False),  # kg
    sa.Column('expected_arrival', sa.Float, nullable=False),  # s, site clock
    sa.Column('filed_at', sa.Float, nullable=False),  # s, site clock
    sa.Column('stored_at', UTC_TIME, nullable=False),
)

declaration_items = sa.Table(
    'declaration_items',
    metadata,
    sa.Column(
        'declaration_id',
        sa.String(64),
        sa.ForeignKey('declarations.declaration_id'),
        primary_key=True,
    ),
    sa.Column('line_no', sa.Integer, primary_key=True),  # 1-based
    sa.Column('hs_code', sa.String(10), nullable=False, index=True),
    sa.Column('description', sa.Text, nullable=False),
    sa.Column('quantity', sa.Integer, nullable=False),
    sa.Column('net_mass', sa.Float, nullable=False),  # kg
    sa.Column('value', sa.Float, nullable=False),
    sa.Column('currency', sa.String(3), nullable=False),  # ISO 4217
)

subjects = sa.Table(
    'subjects',
    metadata,
    sa.Column('subject_key', sa.String(160), primary_key=True),  # Subject.key
    sa.Column('subject_kind', sa.String(16), nullable=False),
    sa.Column('subject_id', sa.String(64), nullable=False),
    sa.Column('zone', sa.String(64), nullable=False),
    sa.Column('id_valid', sa.Boolean, nullable=False),
    sa.Column('first_seen', UTC_TIME, nullable=False),
    sa.Column('latest_decision_id', sa.String(36), nullable=True),
    sa.Column('latest_decided_at', sa.Float, nullable=True),  # s, site clock
    sa.Column('latest_channel', sa.String(8), nullable=True),
)

decisions = sa.Table(
    'decisions',
    metadata,
    sa.Column('decision_id', sa.String(36), primary_key=True),  # RFC 4122 text form
    sa.Column('subject_key', sa.String(160), nullable=False, index=True),
    sa.Column('subject_kind', sa.String(16), nullable=False),
    sa.Column('subject_id', sa.String(64), nullable=False, index=True),
    sa.Column('zone', sa.String(64), nullable=False),
    sa.Column('id_valid', sa.Boolean, nullable=False),
    sa.Column('channel', sa.String(8), nullable=False),  # GREEN / YELLOW / RED
    sa.Column('recommended_action', sa.String(32), nullable=False),
    sa.Column('prior_risk', sa.Float, nullable=False),
    sa.Column('posterior_risk', sa.Float, nullable=False),
    sa.Column('posterior_log_odds', sa.Float, nullable=False),
    sa.Column('model_version', sa.String(128), nullable=False),
    sa.Column('decided_at', sa.Float, nullable=False),  # s, site clock
    sa.Column('stored_at', UTC_TIME, nullable=False),
    sa.Column('explanation', sa.Text, nullable=False),
    sa.Column('selection', sa.String(16), nullable=False, server_default=''),  # SELECTIONS
)

decision_evidence = sa.Table(
    'decision_evidence',
    metadata,
    sa.Column(
        'decision_id', sa.String(36), sa.ForeignKey('decisions.decision_id'), primary_key=True
    ),
    sa.Column('evidence_id', sa.String(36), primary_key=True),
    sa.Column('kind', sa.String(64), nullable=False),
    sa.Column('sensor_id', sa.String(128), nullable=False),
    sa.Column('log_likelihood_ratio', sa.Float, nullable=False),  # nats
    sa.Column('weight', sa.Float, nullable=False),
    sa.Column('contribution', sa.Float, nullable=False),  # nats
    sa.Column('explanation', sa.Text, nullable=False),
)

OUTCOMES = ('no_finding', 'seizure', 'irregularity')
SELECTIONS = ('', 'targeted', 'random')  # why a subject was inspected (revision 0003)

inspection_results = sa.Table(
    'inspection_results',
    metadata,
    sa.Column('result_id', sa.String(36), primary_key=True),  # RFC 4122 text form
    sa.Column('subject_key', sa.String(160), nullable=False, index=True),
    sa.Column('subject_kind', sa.String(16), nullable=False),
    sa.Column('subject_id', sa.String(64), nullable=False),
    sa.Column('zone', sa.String(64), nullable=False),
    sa.Column('declaration_id', sa.String(64), nullable=False),  # '' if none was found
    sa.Column('decision_id', sa.String(36), nullable=False),  # the decision acted on, or ''
    sa.Column('officer_id', sa.String(64), nullable=False),
    sa.Column('action', sa.String(32), nullable=False),  # what was done (RiskDecision.ACTION_*)
    sa.Column('outcome', sa.String(16), nullable=False),  # one of OUTCOMES
    sa.Column('categories', sa.Text, nullable=False),  # JSON list, e.g. ["narcotics"]
    sa.Column('findings', sa.Text, nullable=False),  # the officer's words
    sa.Column('inspected_at', sa.Float, nullable=False),  # s, site clock
    sa.Column('selection', sa.String(16), nullable=False, server_default=''),  # SELECTIONS
    sa.Column('recorded_at', UTC_TIME, nullable=False),
)

audit_log = sa.Table(
    'audit_log',
    metadata,
    sa.Column('seq', sa.Integer, primary_key=True, autoincrement=False),  # 1, 2, 3 ...
    sa.Column('recorded_at', sa.String(32), nullable=False),  # ISO 8601 UTC, part of the hash
    sa.Column('actor', sa.String(128), nullable=False),  # node or officer
    sa.Column('action', sa.String(64), nullable=False),  # e.g. decision.stored
    sa.Column('object_type', sa.String(32), nullable=False),
    sa.Column('object_id', sa.String(160), nullable=False),
    sa.Column('payload', sa.Text, nullable=False),  # canonical JSON
    sa.Column('prev_hash', sa.String(64), nullable=False),
    sa.Column('hash', sa.String(64), nullable=False, unique=True),
)

audit_head = sa.Table(
    'audit_head',
    metadata,
    sa.Column('id', sa.Integer, primary_key=True, autoincrement=False),  # always 1
    sa.Column('seq', sa.Integer, nullable=False),
    sa.Column('hash', sa.String(64), nullable=False),
)
