"""The clearance database: migrations, idempotent audited writes, queries. Core module: no ROS.

SQLAlchemy Core over SQLite (the embedded default: one file, <data_dir>/clearance.db) or
PostgreSQL (`postgresql+psycopg://user@host/db`). `migrate()` brings any database to the newest
Alembic revision (clearance/migrations), including one made by the foundation before migrations
existed. Writes are idempotent: decisions, declarations and inspection results are keyed by
their ids (INSERT ... ON CONFLICT DO NOTHING), so a record delivered twice is stored once.
Every stored record appends an audit entry with its digest in the same transaction
(clearance/audit.py). A declaration that comes again with other content is an amendment: the row
is replaced and the audit log says so, so that nothing the clearance system sent is lost.
"""

import datetime
import json
import pathlib

from alembic import command
from alembic.config import Config
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from customs_lab.clearance import audit
from customs_lab.clearance.records import (
    DecisionRecord,
    DeclarationRecord,
    InspectionRecord,
)
from customs_lab.clearance.schema import (
    decision_evidence,
    decisions,
    declaration_items,
    declarations,
    inspection_results,
    subjects,
)

MIGRATIONS = pathlib.Path(__file__).resolve().parent / 'migrations'


def sqlite_url(path) -> str:
    """Return the SQLAlchemy URL of an SQLite file."""
    return f'sqlite:///{path}'


def expand_url(url: str) -> str:
    """Return the URL with `~` in an SQLite file path expanded (launch defaults use it)."""
    if url.startswith('sqlite:///'):
        return sqlite_url(pathlib.Path(url[len('sqlite:///') :]).expanduser())
    return url


def alembic_config() -> Config:
    """Return an Alembic configuration pointing at the project's migrations."""
    config = Config()
    config.set_main_option('script_location', str(MIGRATIONS))
    return config


def _utc_now():
    return datetime.datetime.now(datetime.timezone.utc)


class ClearanceDatabase:
    """Connection, schema migrations, idempotent audited writes and queries."""

    def __init__(self, url: str, actor: str = 'customs_lab'):
        url = expand_url(url)
        if url.startswith('sqlite:///'):
            pathlib.Path(url[len('sqlite:///') :]).parent.mkdir(parents=True, exist_ok=True)
        backend = sa.engine.make_url(url).get_backend_name()
        if backend not in ('sqlite', 'postgresql'):
            raise ValueError(f'unsupported database {backend} (SQLite or PostgreSQL): {url}')
        self.url = url
        self.actor = actor  # who the audit log names for writes through this object
        self.engine = sa.create_engine(url, pool_pre_ping=True)
        if self.engine.dialect.name == 'sqlite':

            @sa.event.listens_for(self.engine, 'connect')
            def _pragmas(connection, _record):
                cursor = connection.cursor()
                cursor.execute('PRAGMA journal_mode=WAL')  # readers do not block the writer
                cursor.execute('PRAGMA synchronous=FULL')  # a committed decision survives a crash
                cursor.execute('PRAGMA foreign_keys=ON')
                cursor.execute('PRAGMA busy_timeout=10000')  # ms to wait for another writer
                cursor.close()

    # ---- schema -------------------------------------------------------------------------------

    def migrate(self, revision: str = 'head'):
        """Upgrade the schema to `revision` (idempotent); stamp a pre-Alembic foundation file."""
        self._alembic(
            lambda config, tables: (
                'decisions' in tables
                and 'alembic_version' not in tables  # foundation create_all
                and command.stamp(config, '0001'),
                command.upgrade(config, revision),
            )
        )

    def downgrade(self, revision: str):
        """Downgrade the schema to `revision` (development and rollback of a bad release)."""
        self._alembic(lambda config, tables: command.downgrade(config, revision))

    def _alembic(self, run):
        config = alembic_config()
        with self.engine.connect() as connection:
            sqlite_db = self.engine.dialect.name == 'sqlite'
            if sqlite_db:  # batch mode copies tables that others reference: check keys after
                connection.exec_driver_sql('PRAGMA foreign_keys=OFF')
                connection.commit()
            with connection.begin():
                config.attributes['connection'] = connection
                run(config, set(sa.inspect(connection).get_table_names()))
                if sqlite_db:
                    broken = connection.exec_driver_sql('PRAGMA foreign_key_check').fetchall()
                    if broken:
                        raise RuntimeError(f'migration broke foreign keys: {broken[:5]}')
            if sqlite_db:
                connection.exec_driver_sql('PRAGMA foreign_keys=ON')
                connection.commit()

    def revision(self) -> str:
        """Return the database's Alembic revision ('' if none)."""
        with self.engine.connect() as connection:
            if not sa.inspect(connection).has_table('alembic_version'):
                return ''
            return connection.execute(sa.text('SELECT version_num FROM alembic_version')).scalar()

    # ---- writes -------------------------------------------------------------------------------

    def _insert(self, table):
        return (postgresql if self.engine.dialect.name == 'postgresql' else sqlite).insert(table)

    def write(self, records, actor: str = '') -> list[bool]:
        """Store records (any mix of kinds) in ONE transaction; return stored flags, in order.

        A record already stored with the same content returns False (a duplicate delivery).
        Decisions are written in bulk (a few statements per batch, not per decision); audit
        entries follow the records' order. Raises on any database error or bad record, and then
        nothing of the batch is stored.
        """
        records = list(records)
        for record in records:
            if not isinstance(record, (DecisionRecord, DeclarationRecord, InspectionRecord)):
                raise TypeError(f'cannot store {type(record).__name__}')
            record.check()
        actions = [None] * len(records)
        with self.engine.begin() as connection:
            for kind, bulk, action in (
                (DecisionRecord, self._write_decisions, 'decision.stored'),
                (DeclarationRecord, self._write_new_declarations, 'declaration.stored'),
            ):
                at = [i for i, r in enumerate(records) if isinstance(r, kind)]
                new = bulk(connection, [records[i] for i in at])  # keys newly stored
                for i in at:
                    if records[i].key in new:
                        new.discard(records[i].key)  # the first copy in a batch counts
                        actions[i] = action
            for i, record in enumerate(records):
                if isinstance(record, DeclarationRecord):
                    if actions[i] is None:  # stored before, or a later copy: compare, amend
                        actions[i] = self._write_declaration(connection, record)
                elif isinstance(record, InspectionRecord):
                    actions[i] = self._write_inspection(connection, record)
            audit.append(
                connection,
                [
                    {
                        'actor': actor or self.actor,
                        'action': action,
                        'object_type': record.KIND,
                        'object_id': record.key.partition(':')[2],
                        'payload': {'digest': record.digest(), 'subject': record.subject_key},
                    }
                    for record, action in zip(records, actions, strict=True)
                    if action is not None
                ],
            )
        return [action is not None for action in actions]

    def store_decision(self, record: DecisionRecord) -> bool:
        """Store one decision. Return False if it was already stored."""
        return self.write([record])[0]

    def store_declaration(self, record: DeclarationRecord) -> bool:
        """Store one declaration (or its amendment). Return False if unchanged."""
        return self.write([record])[0]

    def store_inspection(self, record: InspectionRecord) -> bool:
        """Store one inspection result. Return False if it was already stored."""
        return self.write([record])[0]

    def _touch_subjects(self, connection, rows):
        """Insert subjects not seen before; move `latest_*` forward (never back in site time)."""
        if not rows:
            return
        insert = self._insert(subjects).values(rows)
        if 'latest_decision_id' not in rows[0]:
            connection.execute(insert.on_conflict_do_nothing(index_elements=['subject_key']))
            return
        newer = sa.or_(
            subjects.c.latest_decided_at.is_(None),
            subjects.c.latest_decided_at <= insert.excluded.latest_decided_at,
        )
        latest = ('latest_decision_id', 'latest_decided_at', 'latest_channel', 'id_valid')
        connection.execute(
            insert.on_conflict_do_update(
                index_elements=['subject_key'],
                set_={name: insert.excluded[name] for name in latest},
                where=newer,
            )
        )

    @staticmethod
    def _subject_row(record, **latest):
        return {
            'subject_key': record.subject_key,
            'subject_kind': record.subject_kind,
            'subject_id': record.subject_id,
            'zone': record.zone,
            'id_valid': latest.pop('id_valid', True),
            'first_seen': _utc_now(),
            **latest,
        }

    def _write_decisions(self, connection, records) -> set:
        """Insert decisions in bulk; return the keys of those not stored before."""
        if not records:
            return set()
        now, rows, seen = _utc_now(), [], set()
        for record in records:
            if record.decision_id not in seen:
                seen.add(record.decision_id)
                row = {k: v for k, v in record.to_payload().items() if k != 'contributions'}
                rows.append(dict(row, subject_key=record.subject_key, stored_at=now))
        new = set(
            connection.execute(
                self._insert(decisions)
                .values(rows)
                .on_conflict_do_nothing(index_elements=['decision_id'])
                .returning(decisions.c.decision_id)  # rowcount is -1 with psycopg
            ).scalars()
        )
        fresh = [r for r in records if r.decision_id in new]
        evidence = [dict(c, decision_id=r.decision_id) for r in fresh for c in r.contributions]
        if evidence:
            connection.execute(
                self._insert(decision_evidence).on_conflict_do_nothing(
                    index_elements=['decision_id', 'evidence_id']
                ),
                evidence,
            )
        newest = {}  # per subject, the newest of the new decisions
        for r in fresh:
            if r.subject_key not in newest or newest[r.subject_key].decided_at <= r.decided_at:
                newest[r.subject_key] = r
        self._touch_subjects(
            connection,
            [
                self._subject_row(
                    r,
                    id_valid=r.id_valid,
                    latest_decision_id=r.decision_id,
                    latest_decided_at=r.decided_at,
                    latest_channel=r.channel,
                )
                for r in newest.values()
            ],
        )
        return {f'decision:{d}' for d in new}

    def _write_new_declarations(self, connection, records) -> set:
        """Insert in bulk the declarations not stored before; return their keys."""
        ids = list(dict.fromkeys(r.declaration_id for r in records))
        if not ids:
            return set()
        stored = set(connection.execute(
            sa.select(declarations.c.declaration_id).where(declarations.c.declaration_id.in_(ids))
        ).scalars())
        now, first = _utc_now(), {}
        for record in records:
            if record.declaration_id not in stored:
                first.setdefault(record.declaration_id, record)
        if not first:
            return set()
        connection.execute(declarations.insert(), [
            dict({k: v for k, v in r.to_payload().items() if k != 'items'},
                 subject_key=r.subject_key, stored_at=now)
            for r in first.values()
        ])
        lines = [dict(item, declaration_id=r.declaration_id, line_no=n)
                 for r in first.values() for n, item in enumerate(r.items, start=1)]
        if lines:
            connection.execute(declaration_items.insert(), lines)
        subjects_seen = {r.subject_key: self._subject_row(r) for r in first.values()}
        self._touch_subjects(connection, list(subjects_seen.values()))
        return {f'declaration:{d}' for d in first}

    def _write_declaration(self, connection, record: DeclarationRecord):
        existing = self._declaration(connection, record.declaration_id)
        if existing is not None and existing.digest() == record.digest():
            return None
        row = {k: v for k, v in record.to_payload().items() if k != 'items'}
        row.update(subject_key=record.subject_key, stored_at=_utc_now())
        if existing is not None:  # an amendment: replace the lines and the row
            connection.execute(
                declaration_items.delete().where(
                    declaration_items.c.declaration_id == record.declaration_id
                )
            )
            connection.execute(
                declarations.update()
                .where(declarations.c.declaration_id == record.declaration_id)
                .values(**row)
            )
        else:
            connection.execute(declarations.insert().values(**row))
        if record.items:
            connection.execute(
                declaration_items.insert(),
                [
                    dict(item, declaration_id=record.declaration_id, line_no=n)
                    for n, item in enumerate(record.items, start=1)
                ],
            )
        self._touch_subjects(connection, [self._subject_row(record)])
        return 'declaration.amended' if existing is not None else 'declaration.stored'

    def _write_inspection(self, connection, record: InspectionRecord):
        row = record.to_payload()
        row.update(
            subject_key=record.subject_key,
            categories=json.dumps(list(record.categories)),
            recorded_at=_utc_now(),
        )
        result = connection.execute(
            self._insert(inspection_results)
            .values(**row)
            .on_conflict_do_nothing(index_elements=['result_id'])
            .returning(inspection_results.c.result_id)
        )
        if result.first() is None:
            return None
        self._touch_subjects(connection, [self._subject_row(record)])
        return 'inspection.stored'

    # ---- reads --------------------------------------------------------------------------------

    @staticmethod
    def _declaration(connection, declaration_id: str):
        row = (
            connection.execute(
                sa.select(declarations).where(declarations.c.declaration_id == declaration_id)
            )
            .mappings()
            .first()
        )
        if row is None:
            return None
        items = (
            connection.execute(
                sa.select(declaration_items)
                .where(declaration_items.c.declaration_id == declaration_id)
                .order_by(declaration_items.c.line_no)
            )
            .mappings()
            .all()
        )
        fields = {k: row[k] for k in DeclarationRecord.__dataclass_fields__ if k != 'items'}
        lines = tuple(
            {k: v for k, v in item.items() if k not in ('declaration_id', 'line_no')}
            for item in items
        )
        return DeclarationRecord(**fields, items=lines)

    def declaration_for(self, subject_key: str):
        """Return the newest DeclarationRecord filed for a subject, or None."""
        with self.engine.connect() as connection:
            declaration_id = connection.execute(
                sa.select(declarations.c.declaration_id)
                .where(declarations.c.subject_key == subject_key)
                .order_by(declarations.c.filed_at.desc())
                .limit(1)
            ).scalar()
            return (
                None if declaration_id is None else self._declaration(connection, declaration_id)
            )

    def count_decisions(self, decision_ids=None) -> int:
        """Return the number of stored decisions (of those in `decision_ids`, if given)."""
        query = sa.select(sa.func.count()).select_from(decisions)
        with self.engine.connect() as connection:
            if decision_ids is None:
                return connection.execute(query).scalar()
            ids, found = sorted(set(decision_ids)), 0
            for start in range(0, len(ids), 500):  # bounded IN lists
                found += connection.execute(
                    query.where(decisions.c.decision_id.in_(ids[start:start + 500]))).scalar()
            return found

    def count_declarations(self, prefix: str = '') -> int:
        """Return the number of stored declarations whose id starts with `prefix`."""
        query = sa.select(sa.func.count()).select_from(declarations)
        if prefix:
            query = query.where(declarations.c.declaration_id.startswith(prefix, autoescape=True))
        with self.engine.connect() as connection:
            return connection.execute(query).scalar()

    def decisions_by_subject(self) -> dict:
        """Return {subject_id: [rows ordered by decided_at]} (rows as dicts)."""
        out = {}
        with self.engine.connect() as connection:
            rows = connection.execute(sa.select(decisions).order_by(decisions.c.decided_at))
            for row in rows.mappings():
                out.setdefault(row['subject_id'], []).append(dict(row))
        return out

    def inspections_for(self, subject_key: str) -> list[InspectionRecord]:
        """Return the inspection results recorded for a subject, oldest first."""
        with self.engine.connect() as connection:
            rows = (
                connection.execute(
                    sa.select(inspection_results)
                    .where(inspection_results.c.subject_key == subject_key)
                    .order_by(inspection_results.c.inspected_at)
                )
                .mappings()
                .all()
            )
        return [self._inspection(row) for row in rows]

    def calibration_rows(self) -> list[dict]:
        """Return each inspected decision with what the inspection found, oldest first.

        One dict per decision that an inspection result names (`decision_id`): `prior_risk`,
        `evidence` (a list of (weight, log_likelihood_ratio, kind) as the decision counted its
        evidence) and `seizure` (any result for it seized something). What the risk engine's
        evidence calibrator learns from (fusion/prior_training.fit_calibration_from_database).
        """
        i, d, e = inspection_results, decisions, decision_evidence
        found = (
            sa.select(i.c.decision_id,
                      sa.func.max(sa.case((i.c.outcome == 'seizure', 1), else_=0)).label('seized'))
            .where(i.c.decision_id != '')
            .group_by(i.c.decision_id)
            .subquery()
        )
        query = (
            sa.select(d.c.decision_id, d.c.prior_risk, d.c.decided_at, found.c.seized)
            .join(found, found.c.decision_id == d.c.decision_id)
            .order_by(d.c.decided_at, d.c.decision_id)
        )
        evidence_query = (
            sa.select(e.c.decision_id, e.c.weight, e.c.log_likelihood_ratio, e.c.kind)
            .join(found, found.c.decision_id == e.c.decision_id)
            .order_by(e.c.decision_id, e.c.evidence_id)
        )
        with self.engine.connect() as connection:
            rows = [{'decision_id': r.decision_id, 'prior_risk': float(r.prior_risk),
                     'decided_at': float(r.decided_at), 'seizure': bool(r.seized),
                     'evidence': []} for r in connection.execute(query)]
            by_id = {row['decision_id']: row for row in rows}
            for r in connection.execute(evidence_query):
                by_id[r.decision_id]['evidence'].append(
                    (float(r.weight), float(r.log_likelihood_ratio), r.kind))
        return rows

    def training_rows(self, since: float | None = None) -> list[dict]:
        """Return every declaration with what inspections found, for a risk model to learn from.

        One dict per declaration (filed at or after `since`, site-clock s, if given), oldest
        first: its parties, origin and gross mass, its first line (hs_code, quantity, net_mass,
        value, currency; '' / 0 without lines), `outcome` (True: an inspection seized something;
        False: inspected, nothing seized; None: never inspected) and `selection` ('random' if a
        uniform audit inspected it, else 'targeted' if anything did, else ''). Inspection
        results are matched by declaration id; one of unknown selection counts as targeted.
        """
        i = inspection_results
        found = (
            sa.select(
                i.c.declaration_id,
                sa.func.max(sa.case((i.c.outcome == 'seizure', 1), else_=0)).label('seized'),
                sa.func.max(sa.case((i.c.selection == 'random', 1), else_=0)).label('audited'),
            )
            .where(i.c.declaration_id != '')
            .group_by(i.c.declaration_id)
            .subquery()
        )
        d, line = declarations, declaration_items
        query = (
            sa.select(
                d.c.declaration_id, d.c.subject_kind, d.c.declarant_id, d.c.consignee_id,
                d.c.origin_country, d.c.gross_mass, d.c.filed_at, line.c.hs_code,
                line.c.quantity, line.c.net_mass, line.c.value, line.c.currency,
                found.c.seized, found.c.audited,
            )
            .outerjoin(line, sa.and_(line.c.declaration_id == d.c.declaration_id,
                                     line.c.line_no == 1))
            .outerjoin(found, found.c.declaration_id == d.c.declaration_id)
            .order_by(d.c.filed_at, d.c.declaration_id)
        )
        if since is not None:
            query = query.where(d.c.filed_at >= since)
        rows = []
        with self.engine.connect() as connection:
            for row in connection.execute(query).mappings():
                inspected = row['seized'] is not None
                rows.append({
                    **{k: row[k] for k in ('declaration_id', 'subject_kind', 'declarant_id',
                                           'consignee_id', 'origin_country', 'gross_mass',
                                           'filed_at')},
                    'hs_code': row['hs_code'] or '', 'quantity': row['quantity'] or 0,
                    'net_mass': row['net_mass'] or 0.0, 'value': row['value'] or 0.0,
                    'currency': row['currency'] or 'USD',
                    'outcome': bool(row['seized']) if inspected else None,
                    'selection': ('random' if row['audited'] else 'targeted') if inspected
                    else '',
                })
        return rows

    @staticmethod
    def _inspection(row) -> InspectionRecord:
        values = {k: row[k] for k in InspectionRecord.__dataclass_fields__}
        values['categories'] = tuple(json.loads(values['categories']))
        return InspectionRecord(**values)

    def _decision(self, connection, decision_id: str):
        row = (
            connection.execute(sa.select(decisions).where(decisions.c.decision_id == decision_id))
            .mappings()
            .first()
        )
        if row is None:
            return None
        evidence = (
            connection.execute(
                sa.select(decision_evidence).where(decision_evidence.c.decision_id == decision_id)
            )
            .mappings()
            .all()
        )
        fields = {k: row[k] for k in DecisionRecord.__dataclass_fields__ if k != 'contributions'}
        contributions = tuple({k: v for k, v in e.items() if k != 'decision_id'} for e in evidence)
        return DecisionRecord(**fields, contributions=contributions)

    def row_digest(self, connection, object_type: str, object_id: str):
        """Return the digest of a stored record as it is now, or None if it is gone."""
        if object_type == 'decision':
            record = self._decision(connection, object_id)
        elif object_type == 'declaration':
            record = self._declaration(connection, object_id)
        elif object_type == 'inspection':
            row = (
                connection.execute(
                    sa.select(inspection_results).where(
                        inspection_results.c.result_id == object_id
                    )
                )
                .mappings()
                .first()
            )
            record = None if row is None else self._inspection(row)
        else:
            return None
        return None if record is None else record.digest()

    def verify_audit(self) -> audit.Verification:
        """Verify the audit chain and that every audited record is unchanged."""
        with self.engine.connect() as connection:
            return audit.verify(
                connection, lambda kind, key: self.row_digest(connection, kind, key)
            )

    def dispose(self):
        """Close all connections."""
        self.engine.dispose()
