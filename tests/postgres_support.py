"""A throwaway PostgreSQL server for the clearance tests, from Debian's binaries.

`ThrowawayPostgres` runs initdb into a fresh temporary directory and starts `postgres` listening
only on a Unix socket in that directory (no TCP port, so it never meets another server). As root
it runs the server as the `postgres` user (PostgreSQL refuses to run as root). The fault tests
stop and start it while the bridge writes.

CUSTOMS_LAB_TEST_POSTGRES_URL (e.g. postgresql+psycopg://postgres@127.0.0.1:5432/postgres) makes
the conformance tests use that server instead; the tests that stop the server always need the
binaries. Neither available: the tests fail with this explanation, they never skip silently.
"""

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid

import sqlalchemy as sa

HOW = (
    'the clearance tests need PostgreSQL: install the Debian package `postgresql` '
    '(tools/setup_env.sh test-system does it; `make test` runs that), or set '
    'CUSTOMS_LAB_TEST_POSTGRES_URL to a server they may create databases on'
)


def binaries() -> str:
    """Return the directory with initdb/pg_ctl of the newest installed PostgreSQL, or ''."""
    found = sorted(
        glob.glob('/usr/lib/postgresql/*/bin/initdb'), key=lambda p: int(p.split('/')[4])
    )
    if found:
        return os.path.dirname(found[-1])
    initdb = shutil.which('initdb')
    return os.path.dirname(initdb) if initdb else ''


class ThrowawayPostgres:
    """A private PostgreSQL server in a temporary directory."""

    def __init__(self, settings: dict | None = None):
        """Create and start a server; `settings`: extra server settings (name: value)."""
        self.bin = binaries()
        self.settings = dict(settings or {})
        if not self.bin:
            raise RuntimeError(HOW)
        self.root = tempfile.mkdtemp(prefix='customs_lab_pg_')
        os.chmod(self.root, 0o755)
        self.data = os.path.join(self.root, 'data')
        self.socket_dir = os.path.join(self.root, 'run')
        self.port = 5432  # only names the socket file: the server has no TCP listener
        self.as_user = []
        for path in (self.data, self.socket_dir):
            os.mkdir(path, 0o700)
        if os.geteuid() == 0:
            account = pwd.getpwnam('postgres')
            for path in (self.data, self.socket_dir):
                os.chown(path, account.pw_uid, account.pw_gid)
            self.as_user = ['runuser', '-u', 'postgres', '--']
        self._run(
            'initdb',
            '-D',
            self.data,
            '-A',
            'trust',
            '-U',
            'postgres',
            '-E',
            'UTF8',
            '--no-instructions',
        )
        self.start()

    def _run(self, tool, *args, check=True):
        return subprocess.run(
            [*self.as_user, os.path.join(self.bin, tool), *args],
            check=check,
            capture_output=True,
            text=True,
            timeout=120,
        )

    def start(self):
        """Start the server and wait until it accepts connections."""
        options = f"-c listen_addresses='' -k {self.socket_dir} -p {self.port} -c fsync=on"
        options += ''.join(f' -c {name}={value}' for name, value in self.settings.items())
        self._run(
            'pg_ctl',
            '-D',
            self.data,
            '-o',
            options,
            '-l',
            os.path.join(self.data, 'server.log'),
            '-w',
            '-t',
            '60',
            'start',
        )

    def stop(self, mode: str = 'fast'):
        """Stop the server (fast: disconnect clients, immediate: like a crash)."""
        self._run('pg_ctl', '-D', self.data, '-m', mode, '-w', 'stop', check=False)

    def url(self, database: str = 'postgres') -> str:
        """Return the SQLAlchemy URL of a database on this server."""
        return f'postgresql+psycopg://postgres@/{database}?host={self.socket_dir}&port={self.port}'

    def close(self):
        """Stop the server and delete its files."""
        self.stop('immediate')
        shutil.rmtree(self.root, ignore_errors=True)


def fresh_database(server_url: str) -> str:
    """Create an empty database on the server of `server_url`; return its URL."""
    name = f'customs_lab_test_{uuid.uuid4().hex[:12]}'
    engine = sa.create_engine(server_url, isolation_level='AUTOCOMMIT')
    try:
        with engine.connect() as connection:
            connection.execute(sa.text(f'CREATE DATABASE {name}'))
    finally:
        engine.dispose()
    url = sa.engine.make_url(server_url).set(database=name)
    return url.render_as_string(hide_password=False)
