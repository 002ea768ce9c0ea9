"""The evaluator's scoring: caught, missed, false alarms, per kind and category."""

from customs_lab.simulation.evaluation import Evaluation, TruthRecord, summary_table


def test_scores():
    evaluation = Evaluation()
    evaluation.add_truth(
        TruthRecord('container:A', 'container', True, ('radioactive_source',), 'Cs')
    )
    evaluation.add_truth(TruthRecord('container:B', 'container', True, ('narcotics',), 'coke'))
    evaluation.add_truth(TruthRecord('container:C', 'container', False, (), 'clean'))
    evaluation.add_truth(TruthRecord('parcel:D', 'parcel', False, (), 'clean'))
    evaluation.add_truth(TruthRecord('parcel:E', 'parcel', True, ('radioactive_source',), 'Am'))
    evaluation.add_decision('container:A', 0, 0.01, 'release', '')
    evaluation.add_decision('container:A', 2, 0.99, 'physical_inspection', '')  # supersedes
    evaluation.add_decision('container:B', 0, 0.01, 'release', '')
    evaluation.add_decision('container:C', 1, 0.10, 'document_check', '')
    evaluation.add_decision('parcel:D', 0, 0.01, 'release', '')
    evaluation.add_decision('container:Z', 2, 0.9, 'hold', '')  # misread id
    assert evaluation.undecided == ['parcel:E']
    report = evaluation.report()
    # a document check (C) opens nothing: not an inspection, so C is cleared, not a false alarm
    assert (report['caught'], report['missed'], report['false_alarms'], report['cleared']) == (
        1,
        2,
        0,
        2,
    )
    assert report['detection_rate'] == 1 / 3
    assert report['precision'] == 1.0
    assert report['inspection_rate'] == 1 / 5
    assert report['by_contraband_category'] == {
        'radioactive_source': {'caught': 1, 'missed': 1},
        'narcotics': {'caught': 0, 'missed': 1},
    }
    assert report['by_kind']['container']['channels'] == {'GREEN': 1, 'YELLOW': 1, 'RED': 1}
    assert report['decisions_for_unknown_subjects'] == ['container:Z']
    table = summary_table(report)
    assert 'detection rate 33.3%' in table and 'container' in table and 'misreads' in table


def test_identifications_are_scored_against_the_true_sources():
    from customs_lab.simulation.evaluation import identification_summary, score_identification

    assert score_identification(['Cs-137'], ['industrial'], ['Cs-137']) == 'named'
    assert score_identification(['K-40', 'Cs-137'], ['NORM', 'industrial'], ['Cs-137']) == 'named'
    assert score_identification(['Ra-226'], ['NORM'], ['Cs-137']) == 'missed'
    assert score_identification([], [], ['Co-60', 'Cs-137']) == 'missed'
    assert score_identification(['K-40'], ['NORM'], []) == 'clean'
    assert score_identification(['I-131'], ['medical'], []) == 'false'
    entries = [{'subject': 'a', 'true_nuclides': ['Cs-137'], 'outcome': 'named'},
               {'subject': 'b', 'true_nuclides': ['Co-60'], 'outcome': 'missed'},
               {'subject': 'c', 'true_nuclides': [], 'outcome': 'clean'}]
    assert identification_summary(entries) == (
        'identified sources: 1 of 2 passages carrying a source named it (missed: b (Co-60)); '
        '0 of 1 passages without one reported a non-NORM nuclide')
    entries.append({'subject': '', 'true_nuclides': [], 'outcome': 'unattributed'})
    assert identification_summary(entries).endswith(
        '0 of 1 passages without one reported a non-NORM nuclide; '
        '1 passages not attributed to a subject')
