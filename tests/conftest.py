"""Test set-up shared by all tests.

ROS 2 isolation: every pytest session gets its own ROS_DOMAIN_ID and localhost-only discovery,
so that parallel runs on one machine (and a site someone is running) never see each other's
topics. Child processes (launch runner, nodes) inherit both.
"""

import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / 'src'))

os.environ['ROS_DOMAIN_ID'] = str(
    os.environ.get('CUSTOMS_LAB_TEST_DOMAIN_ID') or 1 + os.getpid() % 100
)
os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
os.environ.setdefault('RMW_IMPLEMENTATION', 'rmw_fastrtps_cpp')


def _ros_available() -> bool:
    try:
        import rclpy  # noqa: F401

        import customs_interfaces.msg  # noqa: F401
    except ImportError:
        return False
    return True


ROS_AVAILABLE = _ros_available()


def pytest_runtest_setup(item):
    """Fail loudly (never skip) when ROS tests run without the ROS environment."""
    if not ROS_AVAILABLE and ('ros' in item.keywords or 'site' in item.keywords):
        pytest.fail('the ROS 2 environment is not sourced: run `make test` '
                    '(or `source tools/env.sh` first)', pytrace=False)


@pytest.fixture
def harness():
    """Return a RosHarness (tests/ros_support.py) for in-process nodes; closed afterwards."""
    from ros_support import RosHarness

    harness = RosHarness()
    yield harness
    harness.close()


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    """Return a private data directory, exported as CUSTOMS_LAB_DATA_DIR."""
    path = tmp_path / 'data'
    path.mkdir()
    monkeypatch.setenv('CUSTOMS_LAB_DATA_DIR', str(path))
    return path


@pytest.fixture(scope='session')
def postgres_server():
    """Start a throwaway PostgreSQL server for the session (tests/postgres_support.py)."""
    from postgres_support import ThrowawayPostgres

    try:
        server = ThrowawayPostgres()
    except (RuntimeError, OSError, subprocess.SubprocessError) as error:
        pytest.fail(f'cannot start a throwaway PostgreSQL server ({error}); '
                    + _postgres_how(), pytrace=False)
    yield server
    server.close()


def _postgres_how():
    from postgres_support import HOW

    return HOW


@pytest.fixture(params=['sqlite', 'postgresql'])
def database_url(request, tmp_path):
    """Return the URL of a fresh empty clearance database: SQLite, then PostgreSQL.

    PostgreSQL: the server named by CUSTOMS_LAB_TEST_POSTGRES_URL, else a throwaway one.
    """
    if request.param == 'sqlite':
        return f'sqlite:///{tmp_path / "clearance.db"}'
    from postgres_support import fresh_database

    server_url = os.environ.get('CUSTOMS_LAB_TEST_POSTGRES_URL')
    if not server_url:
        server_url = request.getfixturevalue('postgres_server').url()
    return fresh_database(server_url)
