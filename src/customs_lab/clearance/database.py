"""The clearance database: declarations and decisions, written idempotently. Core module: no ROS.

SQLAlchemy Core over any SQL database; the embedded default is SQLite, one file under the data
directory (<data_dir>/clearance.db). Writes are idempotent: a decision is keyed by its decision
id, so a decision delivered twice is stored once (INSERT ... ON CONFLICT DO NOTHING).
The risk-fusion issue brings migrations (Alembic), PostgreSQL tests and a durable outbox.
"""

from dataclasses import dataclass
import datetime
import json
import pathlib

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

SCHEMA_VERSION = 1
metadata = sa.MetaData()

declarations = sa.Table(
    'declarations',
    metadata,
    sa.Column('declaration_id', sa.String(64), primary_key=True),
    sa.Column('subject_kind', sa.String(16), nullable=False),
    sa.Column('subject_id', sa.String(64), nullable=False, index=True),
    sa.Column('zone', sa.String(64), nullable=False, default=''),
    sa.Column('declarant_id', sa.String(64), nullable=False, default=''),
    sa.Column('origin_country', sa.String(2), nullable=False, default=''),
    sa.Column('gross_mass', sa.Float, nullable=False),  # kg
    sa.Column('expected_arrival', sa.Float, nullable=False),  # s (site clock)
    sa.Column('filed_at', sa.Float, nullable=False),  # s (site clock)
    sa.Column('items', sa.Text, nullable=False),  # JSON list of declared lines
)

decisions = sa.Table(
    'decisions',
    metadata,
    sa.Column('decision_id', sa.String(36), primary_key=True),  # RFC 4122 text form
    sa.Column('subject_kind', sa.String(16), nullable=False),
    sa.Column('subject_id', sa.String(64), nullable=False, index=True),
    sa.Column('zone', sa.String(64), nullable=False, default=''),
    sa.Column('id_valid', sa.Boolean, nullable=False),
    sa.Column('channel', sa.String(8), nullable=False),  # GREEN / YELLOW / RED
    sa.Column('recommended_action', sa.String(32), nullable=False),
    sa.Column('prior_risk', sa.Float, nullable=False),
    sa.Column('posterior_risk', sa.Float, nullable=False),
    sa.Column('posterior_log_odds', sa.Float, nullable=False),
    sa.Column('model_version', sa.String(64), nullable=False),
    sa.Column('decided_at', sa.Float, nullable=False),  # s (site clock)
    sa.Column('stored_at', sa.DateTime(timezone=True), nullable=False),  # wall clock, UTC
    sa.Column('explanation', sa.Text, nullable=False),
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
    sa.Column('log_likelihood_ratio', sa.Float, nullable=False),
    sa.Column('weight', sa.Float, nullable=False),
    sa.Column('contribution', sa.Float, nullable=False),
    sa.Column('explanation', sa.Text, nullable=False),
)

schema_info = sa.Table('schema_info', metadata, sa.Column('version', sa.Integer, nullable=False))


@dataclass(frozen=True)
class DecisionRecord:
    """A decision as the database stores it (contributions: list of dicts)."""

    decision_id: str
    subject_kind: str
    subject_id: str
    zone: str
    id_valid: bool
    channel: str
    recommended_action: str
    prior_risk: float
    posterior_risk: float
    posterior_log_odds: float
    model_version: str
    decided_at: float
    explanation: str
    contributions: tuple = ()


@dataclass(frozen=True)
class DeclarationRecord:
    """A declaration as the database stores it (items: list of dicts)."""

    declaration_id: str
    subject_kind: str
    subject_id: str
    zone: str
    declarant_id: str
    origin_country: str
    gross_mass: float
    expected_arrival: float
    filed_at: float
    items: tuple = ()


def sqlite_url(path) -> str:
    """Return the SQLAlchemy URL of an SQLite file."""
    return f'sqlite:///{path}'


def expand_url(url: str) -> str:
    """Return the URL with `~` in an SQLite file path expanded (launch defaults use it)."""
    if url.startswith('sqlite:///'):
        return sqlite_url(pathlib.Path(url[len('sqlite:///') :]).expanduser())
    return url


class ClearanceDatabase:
    """Connection, schema and idempotent writes."""

    def __init__(self, url: str):
        url = expand_url(url)
        if url.startswith('sqlite:///'):
            pathlib.Path(url[len('sqlite:///') :]).parent.mkdir(parents=True, exist_ok=True)
        self.url = url
        self.engine = sa.create_engine(url, future=True, pool_pre_ping=True)
        if self.engine.dialect.name == 'sqlite':

            @sa.event.listens_for(self.engine, 'connect')
            def _pragmas(connection, _record):
                cursor = connection.cursor()
                cursor.execute('PRAGMA journal_mode=WAL')  # readers do not block the writer
                cursor.execute('PRAGMA synchronous=FULL')  # a committed decision survives a crash
                cursor.execute('PRAGMA foreign_keys=ON')
                cursor.close()

    def create_schema(self):
        """Create the tables if they do not exist (idempotent)."""
        metadata.create_all(self.engine)
        with self.engine.begin() as connection:
            if (
                connection.execute(sa.select(sa.func.count()).select_from(schema_info)).scalar()
                == 0
            ):
                connection.execute(schema_info.insert().values(version=SCHEMA_VERSION))

    def _insert(self, table):
        dialect = self.engine.dialect.name
        if dialect == 'sqlite':
            return sqlite.insert(table)
        if dialect == 'postgresql':
            return postgresql.insert(table)
        raise ValueError(f'unsupported database dialect: {dialect}')

    def store_decision(self, record: DecisionRecord) -> bool:
        """Store a decision and its evidence contributions once. Return False if already stored."""
        row = {k: v for k, v in record.__dict__.items() if k != 'contributions'}
        row['stored_at'] = datetime.datetime.now(datetime.timezone.utc)
        with self.engine.begin() as connection:
            result = connection.execute(
                self._insert(decisions)
                .values(**row)
                .on_conflict_do_nothing(index_elements=['decision_id'])
            )
            if result.rowcount == 0:
                return False
            for contribution in record.contributions:
                connection.execute(
                    self._insert(decision_evidence)
                    .values(decision_id=record.decision_id, **contribution)
                    .on_conflict_do_nothing(index_elements=['decision_id', 'evidence_id'])
                )
        return True

    def store_declaration(self, record: DeclarationRecord) -> bool:
        """Store a declaration once (keyed by declaration id). Return False if already stored."""
        row = dict(record.__dict__)
        row['items'] = json.dumps(list(record.items))
        with self.engine.begin() as connection:
            result = connection.execute(
                self._insert(declarations)
                .values(**row)
                .on_conflict_do_nothing(index_elements=['declaration_id'])
            )
        return result.rowcount > 0

    def count_decisions(self) -> int:
        """Return the number of stored decisions."""
        with self.engine.connect() as connection:
            return connection.execute(sa.select(sa.func.count()).select_from(decisions)).scalar()

    def decisions_by_subject(self) -> dict:
        """Return {subject_id: [rows ordered by decided_at]} (rows as dicts)."""
        out = {}
        with self.engine.connect() as connection:
            rows = connection.execute(sa.select(decisions).order_by(decisions.c.decided_at))
            for row in rows.mappings():
                out.setdefault(row['subject_id'], []).append(dict(row))
        return out

    def dispose(self):
        """Close all connections."""
        self.engine.dispose()
