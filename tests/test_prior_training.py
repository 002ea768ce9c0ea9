"""The risk model learns from the clearance database: history seeded, fitted, saved, loaded."""

import json
import pathlib

import pytest

from customs_lab.clearance.database import ClearanceDatabase
from customs_lab.fusion.declaration_prior import DeclarationPrior
from customs_lab.fusion.prior_training import fit_from_database, load_model, save_model
from customs_lab.simulation.history import generate_history, seed_database, training_records
from customs_lab.simulation.scenario import Scenario

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope='module')
def history():
    scenario = Scenario.load(ROOT / 'config' / 'scenarios' / 'smoke.yaml')
    return generate_history(scenario, days=45)


def test_a_model_fitted_from_the_database_equals_one_fitted_from_the_records(
        history, database_url, tmp_path, capsys):
    from customs_lab.cli import main

    database = ClearanceDatabase(database_url, actor='test')
    database.migrate()
    inspected = sum(h.inspected for h in history)
    assert seed_database(database, history) == len(history) + inspected
    assert seed_database(database, history) == 0  # idempotent: nothing written twice
    assert database.verify_audit().ok
    from_db = fit_from_database(database)
    direct = DeclarationPrior(inspection_sensitivity=0.9).fit(training_records(history))
    assert from_db.training == direct.training
    for h in history[:200]:
        assert from_db.log_odds(h.features()).log_odds == pytest.approx(
            direct.log_odds(h.features()).log_odds, abs=1e-4)
    model = tmp_path / 'model.json'
    assert main(['risk', 'fit', '--database-url', database_url, '--model', str(model)]) == 0
    out = capsys.readouterr().out
    assert f'declarations, {inspected} inspected' in out
    assert load_model(model).version in out
    assert main(['risk', 'show', '--model', str(model)]) == 0
    database.dispose()


def test_a_damaged_or_altered_model_file_is_refused_with_its_name(history, tmp_path, capsys):
    from customs_lab.cli import main

    model = DeclarationPrior(inspection_sensitivity=0.9).fit(training_records(history))
    path = save_model(model, tmp_path / 'm.json', source='test')
    assert load_model(path).version == model.version
    assert [p.name for p in tmp_path.iterdir()] == ['m.json']  # no temporary file left
    document = json.loads(path.read_text())
    document['model']['params']['intercept']['container'] += 1.0
    path.write_text(json.dumps(document))
    with pytest.raises(ValueError, match='altered'):
        load_model(path)
    path.write_text('{"model": ')
    with pytest.raises(ValueError, match='m.json: not a declaration prior model file'):
        load_model(path)
    assert main(['risk', 'show', '--model', str(path)]) == 2
    assert 'customs-lab risk: error:' in capsys.readouterr().err


def test_fitting_an_empty_database_says_why(tmp_path, capsys):
    from customs_lab.cli import main

    url = f'sqlite:///{tmp_path}/empty.db'
    ClearanceDatabase(url).migrate()
    assert main(['risk', 'fit', '--database-url', url, '--data-dir', str(tmp_path)]) == 2
    assert 'nothing to learn from' in capsys.readouterr().err
