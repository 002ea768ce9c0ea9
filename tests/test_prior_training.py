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


def inspected_decision(n: int, llr: float, seizure: bool):
    """Return a container's decision with one portal passage and the inspection that followed."""
    from customs_lab.clearance.records import DecisionRecord, InspectionRecord

    decision_id = f'00000000-0000-4000-8000-{n:012d}'
    decision = DecisionRecord(
        decision_id=decision_id, subject_kind='container', subject_id=f'CSQU{n:06d}3', zone='',
        id_valid=True, channel='RED', recommended_action='physical_inspection',
        prior_risk=0.02, posterior_risk=0.5, posterior_log_odds=0.0, model_version='test/1',
        decided_at=float(n), explanation='test', selection='targeted',
        contributions=({'evidence_id': f'00000000-0000-4000-9000-{n:012d}',
                        'kind': 'radiation.gamma', 'sensor_id': 'rpm/portal_lane_1',
                        'log_likelihood_ratio': llr, 'weight': 1.0,
                        'contribution': max(-20.0, min(20.0, llr)), 'explanation': 'test'},))
    result = InspectionRecord(
        result_id=f'00000000-0000-4000-a000-{n:012d}', subject_kind='container',
        subject_id=decision.subject_id, zone='', declaration_id='', decision_id=decision_id,
        officer_id='officer-1', action='physical_inspection',
        outcome='seizure' if seizure else 'no_finding',
        categories=('radioactive_source',) if seizure else (), findings='',
        inspected_at=float(n) + 60.0, selection='targeted')
    return decision, result


def test_the_evidence_calibration_is_fitted_from_inspected_decisions_and_kept_in_the_file(
        database_url, tmp_path, capsys):
    from customs_lab.cli import main
    from customs_lab.fusion.calibration import EvidenceCalibrator
    from customs_lab.fusion.engine import EngineConfig, RiskEngine
    from customs_lab.fusion.logodds import logit
    from customs_lab.fusion.prior_training import fit_calibration_from_database, load_calibration

    database = ClearanceDatabase(database_url, actor='test')
    database.migrate()
    assert fit_calibration_from_database(database)[1] == [0, 0]  # nothing inspected yet
    cases = [(-2.0, False), (150.0, False), (1e5, True), (-1.0, False)]  # clean, NORM, source
    records = [r for n in range(120) for r in inspected_decision(n, *cases[n % 4])]
    database.write(records)
    calibrator, labels = fit_calibration_from_database(database)
    assert labels == [90, 30]
    online = EvidenceCalibrator()
    for n in range(120):
        llr, seizure = cases[n % 4]
        online.update(online.features(logit(0.02), [(1.0, llr, 'radiation.gamma')]), seizure)
    assert calibrator.version == online.version  # what the engine would have learned online
    assert calibrator.coefficient('radiation.gamma|excess') > 0.5

    # risk fit writes it beside the prior; the engine takes it from the file
    model = tmp_path / 'model.json'
    history = generate_history(Scenario.load(ROOT / 'config' / 'scenarios' / 'smoke.yaml'),
                               days=30)
    seed_database(database, history)
    assert main(['risk', 'fit', '--database-url', database_url, '--model', str(model)]) == 0
    assert 'evidence calibration evcal+' in capsys.readouterr().out
    stored, stored_labels = load_calibration(model)
    assert stored.version == calibrator.version and stored_labels == [90, 30]
    engine = RiskEngine(EngineConfig(calibration_min_labels=100))
    engine.set_calibration(stored, stored_labels)
    assert engine.calibrated and engine.components()['calibration'] == stored.version
    with pytest.raises(ValueError, match='LLR cap'):
        RiskEngine(EngineConfig(llr_cap=10.0)).set_calibration(stored, stored_labels)
    assert main(['risk', 'show', '--model', str(model)]) == 0
    assert '120 inspected decisions (30 seizures)' in capsys.readouterr().out
    # an altered calibration is refused, naming the file
    document = json.loads(model.read_text())
    document['calibration']['calibrator']['mean'][0] += 0.5
    model.write_text(json.dumps(document))
    with pytest.raises(ValueError, match='model.json: not a valid calibration'):
        load_calibration(model)
    database.dispose()
