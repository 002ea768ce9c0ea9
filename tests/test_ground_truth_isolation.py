"""No processing node reads ground truth: only the simulator and the evaluator touch it.

Static check over the source tree. The whole-site test checks the running graph too (the
evaluator's report lists every subscriber of /simulation/ground_truth).
"""

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1] / 'src' / 'customs_lab'
# The simulator (which makes the truth) and the evaluator (which scores against it).
ALLOWED = {
    'simulation/site_simulator_node.py',
    'simulation/evaluator_node.py',
    'simulation/evaluation.py',
    'simulation/scenario.py',
    'simulation/history.py',  # past declarations and what inspections of them found
    'simulation/portal_lane.py',
    'simulation/lane_spectra.py',  # what the lane's detectors see of the subject (its truth)
    'simulation/rpm_firmware.py',
    'simulation/dose_truth.py',  # the true dose at officer posts, to score the dose monitor
    'simulation/parcel_scene.py',  # a parcel's contents (its truth) as objects for the X-ray
    'simulation/xray_physics.py',  # renders those scenes
    'simulation/xray_line.py',  # the simulated scanner: scenes of the lane's parcels, rendered
    'simulation/xray_phantoms.py',  # calibration step wedges, scanned as a factory would
    'simulation/xray_dataset.py',  # the threat detector's training and test parcels, labelled
    'simulation/xray_evidence_set.py',  # the X-ray evidence model's parcels, labelled
    'common/node_support.py',
}
TRUTH_NAMES = {
    'GroundTruthSubject',
    'GroundTruthItem',
    'GROUND_TRUTH_TOPIC',
    'generate_traffic',
    'SimSubject',
    'TrueItem',
}
TRUTH_MODULES = {
    'customs_lab.simulation.scenario',
    'customs_lab.simulation.portal_lane',
    'customs_lab.simulation.evaluation',
    'customs_lab.simulation.dose_truth',
    'customs_lab.simulation.parcel_scene',  # the X-ray scenes: truth
    'customs_lab.simulation.xray_physics',  # the simulator's physics: no processing reads it
}


def truth_references(path: pathlib.Path) -> list[str]:
    """Return the ground-truth names and modules a source file refers to."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.module in TRUTH_MODULES:
                found.append(node.module)
            found += [a.name for a in node.names if a.name in TRUTH_NAMES]
        elif isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name in TRUTH_MODULES]
        elif isinstance(node, ast.Name) and node.id in TRUTH_NAMES:
            found.append(node.id)
        elif isinstance(node, ast.Attribute) and node.attr in TRUTH_NAMES:
            found.append(node.attr)
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and 'ground_truth' in node.value
        ):
            found.append(node.value)
    return found


def test_no_processing_module_refers_to_ground_truth():
    offenders = {}
    for path in sorted(ROOT.rglob('*.py')):
        relative = path.relative_to(ROOT).as_posix()
        if relative in ALLOWED:
            continue
        references = truth_references(path)
        if references:
            offenders[relative] = references
    assert offenders == {}


def test_the_check_would_catch_a_leak(tmp_path):
    leak = tmp_path / 'leaky_node.py'
    leak.write_text(
        'from customs_interfaces.msg import GroundTruthSubject\n'
        "TOPIC = '/simulation/ground_truth'\n"
    )
    assert truth_references(leak) == ['GroundTruthSubject', '/simulation/ground_truth']
