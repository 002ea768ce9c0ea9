"""Style checks as a test, as ament packages do (ament_flake8 + ament_pep257, via ruff)."""

import pathlib
import shutil
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_ruff():
    ruff = shutil.which('ruff') or str(pathlib.Path(sys.executable).parent / 'ruff')
    result = subprocess.run(
        [ruff, 'check', '--no-cache', '.'], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
