"""Throwaway PostgreSQL and MariaDB servers for the tests, started as RIG.md describes.

Each server lives in its own ``tempfile.mkdtemp()`` folder (pytest's ``tmp_path`` sits under a 0700
folder that the postgres user cannot enter), listens on 127.0.0.1 on a free port, runs as a child
process of the test session, and is removed with its folder at the end. A missing binary fails the
test with a pointer to the project's test script, which installs what the tests need.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

SETUP_HINT = "run the project's test script (.ci/run), which installs and starts what the tests need"
START_TIMEOUT_S = 30.0
USER = "ekinerja"
PASSWORD = "ekinerja-test-pw"
IS_ROOT = os.geteuid() == 0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def unique_name(prefix: str) -> str:
    """A database name no other test uses."""
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


def _require(path: str | None, what: str) -> str:
    if not path or not os.path.exists(path):
        pytest.fail(f"{what} not found: {SETUP_HINT}", pytrace=False)
    return path


def _wait_until(ready: Callable[[], bool], proc: subprocess.Popen[bytes], log: Path, what: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"{what} exited with {proc.returncode}:\n{_tail(log)}", pytrace=False)
        with contextlib.suppress(Exception):
            if ready():
                return
        time.sleep(0.05)
    proc.kill()
    pytest.fail(f"{what} not ready after {START_TIMEOUT_S} s:\n{_tail(log)}", pytrace=False)


def _tail(log: Path) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-20:])
    except OSError:
        return "(no log)"


def _stop(proc: subprocess.Popen[bytes], sig: int) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class PostgresServer:
    """A PostgreSQL cluster run as the ``postgres`` user (it refuses to run as root)."""

    def __init__(self, *, durable: bool = False) -> None:
        # durable: commits reach the kernel before they are acknowledged, so a crashed server (not
        # a crashed machine) loses none; the shared test server trades that for speed.
        self.durable = durable
        candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]))
        self.bin = Path(candidates[-1]) if candidates else Path("/usr/lib/postgresql/missing/bin")
        _require(str(self.bin / "postgres"), f"PostgreSQL server (postgres under {self.bin})")
        self.dir = Path(tempfile.mkdtemp(prefix="ekinerja-pg-"))
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self._owner: dict[str, Any] = {}
        if IS_ROOT:
            self._owner = {"user": "postgres", "group": "postgres"}
            entry = pwd.getpwnam("postgres")
            os.chown(self.dir, entry.pw_uid, entry.pw_gid)

    def start(self) -> None:
        """initdb, start ``postgres`` in the foreground, create the test role."""
        subprocess.run(
            [self.bin / "initdb", "--no-sync", "--auth-host=scram-sha-256", "--auth-local=trust",
             "-U", "postgres", "-E", "UTF8", "--locale=C", "-D", self.dir / "data"],
            check=True, capture_output=True, **self._owner,
        )  # fmt: skip
        self.launch()
        self.admin(f"CREATE ROLE {USER} LOGIN CREATEDB PASSWORD '{PASSWORD}'")

    def launch(self) -> None:
        """Start ``postgres`` on the existing data folder and port; return once it answers."""
        log = self.dir / "postgres.log"
        commit = "on" if self.durable else "off"
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(
                [self.bin / "postgres", "-D", self.dir / "data", "-p", str(self.port), "-k", self.dir,
                 "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", f"synchronous_commit={commit}",
                 "-c", "full_page_writes=off"],
                stdout=out, stderr=subprocess.STDOUT, **self._owner,
            )  # fmt: skip
        _wait_until(lambda: bool(self.admin("SELECT 1")), self.proc, log, "PostgreSQL")

    def halt(self, *, crash: bool = False) -> None:
        """Stop the server, keeping its data for :meth:`launch`.

        ``crash``: immediate shutdown (SIGQUIT), as after a crash: clients are cut off and the next
        start runs crash recovery. Otherwise a fast shutdown (SIGINT), as a service restart does.
        """
        if self.proc is not None:
            _stop(self.proc, signal.SIGQUIT if crash else signal.SIGINT)
            self.proc = None

    def admin(self, sql: str) -> bool:
        """Run one statement as the superuser over the Unix socket (autocommit)."""
        import psycopg

        with psycopg.connect(host=str(self.dir), port=self.port, user="postgres", dbname="postgres") as conn:
            conn.autocommit = True
            conn.execute(sql.encode())
        return True

    def create_database(self, name: str) -> str:
        """A new empty database owned by the test role; returns its SQLAlchemy URL."""
        self.admin(f"CREATE DATABASE {name} OWNER {USER}")
        return f"postgresql+psycopg://{USER}:{PASSWORD}@127.0.0.1:{self.port}/{name}"

    def drop_database(self, name: str) -> None:
        """Drop a database, closing any connection a test left open."""
        self.admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def stop(self) -> None:
        """Fast shutdown (SIGINT; SIGTERM would wait for clients), then remove the folder."""
        if self.proc is not None:
            _stop(self.proc, signal.SIGINT)
        shutil.rmtree(self.dir, ignore_errors=True)


class MariaDBServer:
    """A MariaDB server; as root it must be told ``--user=root``."""

    def __init__(self, *, durable: bool = False) -> None:
        # durable: the redo log reaches the kernel at every commit, so a killed server (not a
        # crashed machine) loses no acknowledged commit; the shared test server flushes once a second.
        self.durable = durable
        self.mariadbd = _require(shutil.which("mariadbd", path=f"/usr/sbin:{os.environ.get('PATH', '')}"),
                                 "MariaDB server (mariadbd)")  # fmt: skip
        self.install_db = _require(shutil.which("mariadb-install-db"), "mariadb-install-db")
        self.dir = Path(tempfile.mkdtemp(prefix="ekinerja-mariadb-"))
        self.port = free_port()
        self.socket = self.dir / "sock"
        self.proc: subprocess.Popen[bytes] | None = None
        self._user = "root" if IS_ROOT else pwd.getpwuid(os.geteuid()).pw_name

    def start(self) -> None:
        """Install the system tables, start ``mariadbd``, create the test user."""
        subprocess.run(
            [self.install_db, "--no-defaults", f"--user={self._user}", f"--datadir={self.dir / 'data'}",
             "--auth-root-authentication-method=socket", "--skip-test-db", "--innodb-log-file-size=16M"],
            check=True, capture_output=True,
        )  # fmt: skip
        self.launch()
        self.admin(f"CREATE USER '{USER}'@'127.0.0.1' IDENTIFIED BY '{PASSWORD}'")

    def launch(self) -> None:
        """Start ``mariadbd`` on the existing data folder and port; return once it answers."""
        log = self.dir / "mariadb.log"
        flush = 2 if self.durable else 0
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(
                [self.mariadbd, "--no-defaults", f"--user={self._user}", f"--datadir={self.dir / 'data'}",
                 f"--socket={self.socket}", f"--port={self.port}", "--bind-address=127.0.0.1",
                 f"--innodb-flush-log-at-trx-commit={flush}", "--innodb-buffer-pool-dump-at-shutdown=0",
                 "--innodb-buffer-pool-load-at-startup=0", "--skip-log-bin"],
                stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        _wait_until(lambda: self.admin("SELECT 1"), self.proc, log, "MariaDB")

    def halt(self, *, crash: bool = False) -> None:
        """Stop the server, keeping its data for :meth:`launch`: SIGKILL with ``crash`` (the next
        start recovers from the redo log), else a clean SIGTERM shutdown as a service restart does.
        """
        if self.proc is not None:
            _stop(self.proc, signal.SIGKILL if crash else signal.SIGTERM)
            self.proc = None

    def admin(self, sql: str) -> bool:
        """Run one statement as root over the Unix socket (socket authentication)."""
        import pymysql  # type: ignore[import-untyped]

        conn = pymysql.connect(unix_socket=str(self.socket), user=self._user, autocommit=True)
        try:
            with conn.cursor() as cursor:
                cursor.execute("SET SESSION lock_wait_timeout = 10")
                cursor.execute(sql)
        finally:
            conn.close()
        return True

    def create_database(self, name: str) -> str:
        """A new empty utf8mb4 database the test user owns; returns its SQLAlchemy URL."""
        self.admin(f"CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
        self.admin(f"GRANT ALL PRIVILEGES ON {name}.* TO '{USER}'@'127.0.0.1'")
        return f"mysql+pymysql://{USER}:{PASSWORD}@127.0.0.1:{self.port}/{name}?charset=utf8mb4"

    def drop_database(self, name: str) -> None:
        """Drop a database (waits at most 10 s for a lock a test left behind)."""
        self.admin(f"DROP DATABASE IF EXISTS {name}")

    def stop(self) -> None:
        """SIGTERM (stops in about 0.1 s), then remove the folder."""
        if self.proc is not None:
            _stop(self.proc, signal.SIGTERM)
        shutil.rmtree(self.dir, ignore_errors=True)


BACKENDS = ["sqlite", "postgresql", "mariadb"]
SERVER_FIXTURES = {"postgresql": "postgres_server", "mariadb": "mariadb_server"}


@contextlib.contextmanager
def fresh_database(request: pytest.FixtureRequest, backend: str, tmp_path: Path) -> Iterator[str]:
    """A new empty database on ``backend`` for one test; yields its URL and drops it afterwards.

    The server fixture is looked up by name, so a run that only needs SQLite starts no server.
    """
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
        return
    server: PostgresServer | MariaDBServer = request.getfixturevalue(SERVER_FIXTURES[backend])
    name = unique_name("store")
    url = server.create_database(name)
    try:
        yield url
    finally:
        server.drop_database(name)


@contextlib.contextmanager
def running(server: PostgresServer | MariaDBServer) -> Iterator[PostgresServer | MariaDBServer]:
    """Start ``server`` and stop it (removing its folder) when the block ends."""
    try:
        server.start()
        yield server
    finally:
        server.stop()
