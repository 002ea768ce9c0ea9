"""The clearance database on SQLite: schema, idempotent writes, queries."""

import sqlalchemy as sa

from customs_lab.clearance.database import (
    ClearanceDatabase,
    DecisionRecord,
    DeclarationRecord,
    decision_evidence,
    expand_url,
    sqlite_url,
)


def record(decision_id, subject='CSQU3054383', channel='RED', decided_at=10.0):
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
                'evidence_id': 'e1',
                'kind': 'radiation.gamma',
                'sensor_id': 'rpm/x',
                'log_likelihood_ratio': 6.8,
                'weight': 1.0,
                'contribution': 6.8,
                'explanation': 'alarm',
            },
        ),
    )


def test_decisions_are_stored_exactly_once(tmp_path):
    database = ClearanceDatabase(sqlite_url(tmp_path / 'c.db'))
    database.create_schema()
    database.create_schema()  # idempotent
    assert database.store_decision(record('00000000-0000-0000-0000-000000000001'))
    assert not database.store_decision(record('00000000-0000-0000-0000-000000000001'))
    assert database.store_decision(
        record('00000000-0000-0000-0000-000000000002', channel='GREEN', decided_at=20.0)
    )
    assert database.count_decisions() == 2
    rows = database.decisions_by_subject()['CSQU3054383']
    assert [r['channel'] for r in rows] == ['RED', 'GREEN']
    with database.engine.connect() as connection:
        evidence = connection.execute(sa.select(decision_evidence)).fetchall()
    assert len(evidence) == 2
    database.dispose()


def test_the_database_survives_reopening(tmp_path):
    url = sqlite_url(tmp_path / 'c.db')
    first = ClearanceDatabase(url)
    first.create_schema()
    first.store_decision(record('00000000-0000-0000-0000-000000000003'))
    first.dispose()
    second = ClearanceDatabase(url)
    second.create_schema()
    assert second.count_decisions() == 1
    assert not second.store_decision(record('00000000-0000-0000-0000-000000000003'))


def test_declarations_are_stored_once(tmp_path):
    database = ClearanceDatabase(sqlite_url(tmp_path / 'c.db'))
    database.create_schema()
    declaration = DeclarationRecord(
        'IMP-1',
        'container',
        'CSQU3054383',
        '',
        'TRD1',
        'CN',
        21000.0,
        100.0,
        0.0,
        ({'hs_code': '310420', 'net_mass': 20000.0},),
    )
    assert database.store_declaration(declaration)
    assert not database.store_declaration(declaration)


def test_tilde_in_sqlite_url_is_expanded(tmp_path, monkeypatch):
    monkeypatch.setenv('HOME', str(tmp_path))
    database = ClearanceDatabase('sqlite:///~/sub/clearance.db')
    database.create_schema()
    assert (tmp_path / 'sub' / 'clearance.db').exists()
    assert database.url == f'sqlite:///{tmp_path}/sub/clearance.db'
    assert expand_url('postgresql://db/customs') == 'postgresql://db/customs'
