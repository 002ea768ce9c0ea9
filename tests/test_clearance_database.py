"""The clearance database on SQLite and on a real PostgreSQL server (fixture `database_url`).

Migrations, idempotent writes, amendments, inspection results and the audit chain.
"""

import math

import pytest
import sqlalchemy as sa

from customs_lab.clearance.database import ClearanceDatabase, expand_url, sqlite_url
from customs_lab.clearance.records import (
    DecisionRecord,
    DeclarationRecord,
    InspectionRecord,
    record_from_payload,
)
from customs_lab.clearance.schema import audit_log, decision_evidence, decisions, subjects


def decision(decision_id, subject='CSQU3054383', channel='RED', decided_at=10.0, llr=6.8):
    return DecisionRecord(
        decision_id=decision_id,
        subject_kind='container',
        subject_id=subject,
        zone='',
        id_valid=True,
        channel=channel,
        recommended_action='physical_inspection',
        prior_risk=0.01,
        posterior_risk=0.9,
        posterior_log_odds=2.2,
        model_version='test/1',
        decided_at=decided_at,
        explanation='because',
        contributions=(
            {
                'evidence_id': f'{decision_id[:8]}-e1',
                'kind': 'radiation.gamma',
                'sensor_id': 'rpm/x',
                'log_likelihood_ratio': llr,
                'weight': 1.0,
                'contribution': llr,
                'explanation': 'alarm',
            },
            {
                'evidence_id': f'{decision_id[:8]}-a0',
                'kind': 'declaration.risk',
                'sensor_id': 'clearance',
                'log_likelihood_ratio': 0.5,
                'weight': 0.5,
                'contribution': 0.25,
                'explanation': 'trader history',
            },
        ),
    )


def declaration(declaration_id='IMP-1', mass=20000.0):
    return DeclarationRecord(
        declaration_id=declaration_id,
        subject_kind='container',
        subject_id='CSQU3054383',
        zone='',
        declarant_id='TRD1',
        consignee_id='CNS7',
        origin_country='CN',
        gross_mass=mass + 3750.0,
        expected_arrival=100.0,
        filed_at=0.0,
        items=(
            {
                'hs_code': '310420',
                'description': 'KCl fertiliser',
                'quantity': 400,
                'net_mass': mass,
                'value': 52000.0,
                'currency': 'USD',
            },
            {
                'hs_code': '847130',
                'description': 'laptops',
                'quantity': 10,
                'net_mass': 25.0,
                'value': 9000.0,
                'currency': 'USD',
            },
        ),
    )


def inspection(result_id='00000000-0000-0000-0000-0000000000a1', outcome='seizure'):
    return InspectionRecord(
        result_id=result_id,
        subject_kind='container',
        subject_id='CSQU3054383',
        zone='',
        declaration_id='IMP-1',
        decision_id='00000000-0000-0000-0000-000000000001',
        officer_id='officer-17',
        action='physical_inspection',
        outcome=outcome,
        categories=('radioactive_source',),
        findings='shielded source behind pallets',
        inspected_at=400.0,
    )


@pytest.fixture
def database(database_url):
    database = ClearanceDatabase(database_url, actor='test')
    database.migrate()
    yield database
    database.dispose()


def test_migrations_reach_head_and_are_idempotent(database):
    assert database.revision() == '0003'
    database.migrate()
    assert database.revision() == '0003'
    assert database.verify_audit().ok


def test_decisions_are_stored_exactly_once_with_their_evidence(database):
    first = decision('00000000-0000-0000-0000-000000000001')
    assert database.store_decision(first)
    assert not database.store_decision(first)
    later = decision('00000000-0000-0000-0000-000000000002', channel='GREEN', decided_at=20.0)
    assert database.write([later]) == [True]
    assert database.count_decisions() == 2
    # counted among given ids (a run's own decisions, in a database that holds earlier runs')
    assert database.count_decisions([first.decision_id, '00000000-0000-0000-0000-00000000000f',
                                     first.decision_id]) == 1
    assert database.count_decisions([]) == 0
    rows = database.decisions_by_subject()['CSQU3054383']
    assert [r['channel'] for r in rows] == ['RED', 'GREEN']
    with database.engine.connect() as connection:
        assert len(connection.execute(sa.select(decision_evidence)).fetchall()) == 4
        subject = connection.execute(sa.select(subjects)).mappings().one()
    assert subject['latest_decision_id'] == later.decision_id
    assert subject['latest_channel'] == 'GREEN'
    # an older decision delivered late does not become the subject's latest
    database.store_decision(decision('00000000-0000-0000-0000-000000000003', decided_at=15.0))
    with database.engine.connect() as connection:
        assert connection.execute(sa.select(subjects.c.latest_decision_id)).scalar() == (
            later.decision_id
        )


def test_a_batch_is_atomic_and_bad_numbers_are_refused(database):
    bad = decision('00000000-0000-0000-0000-0000000000bb', llr=math.nan)
    good = decision('00000000-0000-0000-0000-0000000000cc')
    with pytest.raises(ValueError, match='not finite'):
        database.write([good, bad])
    assert database.count_decisions() == 0  # nothing of the batch was stored


def test_declarations_keep_their_lines_and_amendments(database):
    original = declaration()
    assert database.store_declaration(original)
    assert not database.store_declaration(original)  # the same content again: a duplicate
    stored = database.declaration_for('container:CSQU3054383')
    assert stored == original
    assert [line['hs_code'] for line in stored.items] == ['310420', '847130']
    amended = declaration(mass=19000.0)
    assert database.store_declaration(amended)  # other content: an amendment, kept
    assert database.declaration_for('container:CSQU3054383') == amended
    with database.engine.connect() as connection:
        actions = (
            connection.execute(sa.select(audit_log.c.action).order_by(audit_log.c.seq))
            .scalars()
            .all()
        )
    assert actions == ['schema.migrated', 'declaration.stored', 'declaration.amended']
    assert database.declaration_for('container:MSCU6639870') is None


def test_inspection_results_round_trip(database):
    result = inspection()
    assert database.store_inspection(result)
    assert not database.store_inspection(result)
    assert database.inspections_for('container:CSQU3054383') == [result]
    with pytest.raises(ValueError, match='outcome'):
        database.store_inspection(inspection(result_id='x', outcome='maybe'))


def test_records_survive_the_outbox_payload_round_trip():
    for record in (decision('00000000-0000-0000-0000-000000000001'), declaration(), inspection()):
        again = record_from_payload(record.KIND, record.to_payload())
        assert again == record and again.digest() == record.digest()
    with pytest.raises(ValueError, match='missing or unexpected'):
        record_from_payload('decision', {'decision_id': 'x'})


def test_the_audit_chain_verifies_and_detects_tampering(database):
    database.write([declaration(), decision('00000000-0000-0000-0000-000000000001')])
    database.store_inspection(inspection())
    check = database.verify_audit()
    assert check.ok and check.entries == 4 and check.head_seq == 4, check.problems

    # the log itself refuses changes
    for statement in (audit_log.update().values(actor='mallory'), audit_log.delete()):
        with pytest.raises(sa.exc.DatabaseError, match='append-only'):
            with database.engine.begin() as connection:
                connection.execute(statement)

    # a decision row changed behind the bridge's back
    with database.engine.begin() as connection:
        connection.execute(decisions.update().values(channel='GREEN'))
    problems = database.verify_audit().problems
    assert any('changed after it was stored' in p for p in problems), problems


def _drop_audit_triggers(database):
    with database.engine.begin() as connection:
        if database.engine.dialect.name == 'sqlite':
            connection.execute(sa.text('DROP TRIGGER audit_log_no_update'))
            connection.execute(sa.text('DROP TRIGGER audit_log_no_delete'))
        else:
            connection.execute(sa.text('DROP TRIGGER audit_log_append_only ON audit_log'))


def test_edits_that_go_around_the_triggers_break_the_chain(database):
    for n in range(1, 4):
        database.store_decision(decision(f'00000000-0000-0000-0000-00000000000{n}'))
    _drop_audit_triggers(database)  # what someone with the database password could do
    with database.engine.begin() as connection:
        connection.execute(audit_log.update().where(audit_log.c.seq == 2).values(actor='x'))
    assert any('hash mismatch' in p for p in database.verify_audit().problems)
    with database.engine.begin() as connection:
        connection.execute(audit_log.delete().where(audit_log.c.seq == 4))
    problems = database.verify_audit().problems
    assert any('entries were removed' in p for p in problems), problems


def test_a_foundation_database_is_upgraded_without_losing_rows(tmp_path):
    url = sqlite_url(tmp_path / 'old.db')
    old = ClearanceDatabase(url)
    old.migrate('0001')  # the foundation's schema, as its create_all made it
    with old.engine.begin() as connection:
        connection.execute(sa.text('DROP TABLE alembic_version'))
        connection.execute(
            sa.text(
                "INSERT INTO declarations VALUES ('IMP-9', 'container', 'CSQU3054383', '', 'TRD1',"
                ' \'CN\', 21000.0, 100.0, 0.0, \'[{"hs_code": "310420", "description": "KCl",'
                ' "quantity": 1, "net_mass": 20000.0, "value": 5.0, "currency": "USD"}]\')'
            )
        )
        connection.execute(
            sa.text(
                'INSERT INTO decisions VALUES'
                " ('00000000-0000-0000-0000-000000000009', 'container',"
                " 'CSQU3054383', '', 1, 'RED', 'hold', 0.01, 0.9, 2.2, 'v0', 5.0,"
                " '2026-11-20 10:00:00', 'old')"
            )
        )
    old.dispose()
    database = ClearanceDatabase(url)
    database.migrate()
    assert database.revision() == '0003'
    assert database.count_decisions() == 1
    assert database.declaration_for('container:CSQU3054383').items[0]['net_mass'] == 20000.0
    check = database.verify_audit()
    assert check.ok and check.entries == 1


def test_downgrade_and_upgrade_round_trip(database):
    database.store_declaration(declaration())
    database.downgrade('0001')
    assert database.revision() == '0001'
    database.migrate()
    assert database.declaration_for('container:CSQU3054383').items == declaration().items


def test_tilde_in_sqlite_url_is_expanded(tmp_path, monkeypatch):
    monkeypatch.setenv('HOME', str(tmp_path))
    database = ClearanceDatabase('sqlite:///~/sub/clearance.db')
    database.migrate()
    assert (tmp_path / 'sub' / 'clearance.db').exists()
    assert database.url == f'sqlite:///{tmp_path}/sub/clearance.db'
    assert expand_url('postgresql://db/customs') == 'postgresql://db/customs'
    with pytest.raises(ValueError, match='unsupported database'):
        ClearanceDatabase('mysql+pymysql://x/y')


def test_the_command_line_verifies_the_audit_log(tmp_path, capsys):
    from customs_lab.cli import main

    url = sqlite_url(tmp_path / 'clearance.db')
    assert main(['db', 'migrate', '--database-url', url, '--data-dir', str(tmp_path)]) == 0
    database = ClearanceDatabase(url)
    database.store_decision(decision('00000000-0000-0000-0000-000000000001'))
    assert main(['db', 'verify-audit', '--database-url', url]) == 0
    assert 'audit log: 2 entries, head at 2: intact' in capsys.readouterr().out
    with database.engine.begin() as connection:
        connection.execute(decisions.update().values(posterior_risk=0.001))
    assert main(['db', 'verify-audit', '--database-url', url]) == 1
    out = capsys.readouterr().out
    assert 'PROBLEM: entry 2: decision 00000000-0000-0000-0000-000000000001 was changed' in out
    assert main(['db', 'status', '--database-url', url, '--data-dir', str(tmp_path)]) == 0
    assert 'revision: 0003' in capsys.readouterr().out
    assert main(['db', 'status', '--database-url', 'mysql://x/y']) == 2
    database.dispose()


def test_training_rows_join_declarations_with_what_inspections_found(database):
    import dataclasses

    database.store_declaration(declaration('IMP-1'))
    database.store_declaration(dataclasses.replace(declaration('IMP-2'), filed_at=5.0))
    database.store_declaration(dataclasses.replace(declaration('IMP-3'), filed_at=9.0, items=()))
    database.store_inspection(dataclasses.replace(inspection(), selection='targeted'))
    database.store_inspection(dataclasses.replace(  # a clean audit, then a seizure: seized
        inspection('00000000-0000-0000-0000-0000000000a2', 'no_finding'), declaration_id='IMP-2',
        selection='random'))
    database.store_inspection(dataclasses.replace(
        inspection('00000000-0000-0000-0000-0000000000a3', 'seizure'), declaration_id='IMP-2'))
    rows = database.training_rows()
    assert [r['declaration_id'] for r in rows] == ['IMP-1', 'IMP-2', 'IMP-3']
    assert [(r['outcome'], r['selection']) for r in rows] == [
        (True, 'targeted'), (True, 'random'), (None, '')]
    first = rows[0]
    assert (first['hs_code'], first['net_mass'], first['value'], first['consignee_id']) == (
        '310420', 20000.0, 52000.0, 'CNS7')  # the first line
    assert (rows[2]['hs_code'], rows[2]['quantity'], rows[2]['currency']) == ('', 0, 'USD')
    assert [r['declaration_id'] for r in database.training_rows(since=5.0)] == ['IMP-2', 'IMP-3']


def test_selection_is_stored_checked_and_leaves_old_digests_alone(database):
    import dataclasses
    import hashlib

    from customs_lab.clearance.records import canonical_json

    audited = dataclasses.replace(decision('00000000-0000-0000-0000-000000000005'),
                                  selection='random')
    database.store_decision(audited)
    assert database.decisions_by_subject()['CSQU3054383'][0]['selection'] == 'random'
    assert database.verify_audit().ok
    with pytest.raises(ValueError, match='selection'):
        dataclasses.replace(inspection(), selection='hunch').check()
    # a record without a selection digests as it did before the field existed (revision 0002)
    old = decision('00000000-0000-0000-0000-000000000006')
    payload = old.to_payload()
    del payload['selection']
    assert record_from_payload('decision', payload) == old  # an outbox payload of 0002 loads
    payload['contributions'].sort(key=lambda c: str(c['evidence_id']))
    assert old.digest() == hashlib.sha256(canonical_json(payload).encode()).hexdigest()
    assert audited.digest() != dataclasses.replace(audited, selection='').digest()
