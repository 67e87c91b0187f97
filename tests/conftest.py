"""Shared pytest fixtures."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

# --- databases: throwaway PostgreSQL / MariaDB servers and a fresh store database per test ---------
# The logic lives in tests/servers.py; see RIG.md "Databases" for how the servers are started.
from servers import BACKENDS, MariaDBServer, PostgresServer, fresh_database, running


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server for the whole session (started on first use)."""
    with running(PostgresServer()) as server:
        assert isinstance(server, PostgresServer)
        yield server


@pytest.fixture(scope="session")
def mariadb_server() -> Iterator[MariaDBServer]:
    """A MariaDB server for the whole session (started on first use)."""
    with running(MariaDBServer()) as server:
        assert isinstance(server, MariaDBServer)
        yield server


@pytest.fixture(scope="session")
def postgres_url(postgres_server: PostgresServer) -> str:
    """SQLAlchemy URL of a database on the session's PostgreSQL, as a role with a password."""
    return postgres_server.create_database("ekinerja")


@pytest.fixture(scope="session")
def mariadb_url(mariadb_server: MariaDBServer) -> str:
    """SQLAlchemy URL of a database on the session's MariaDB, as a user with a password."""
    return mariadb_server.create_database("ekinerja")


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty (unmigrated) database for one test, on each backend in turn."""
    with fresh_database(request, request.param, tmp_path) as url:
        yield url


# --- end of databases ---------------------------------------------------------------------------


# --- PC/SC: the real pcscd with vsmartcard's virtual readers (tests/pcscd.py) -------------------
from pcscd import PCSCD_GROUP, Pcscd, wait_empty  # noqa: E402


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test that uses pcscd runs in one xdist worker: only one pcscd can run on a machine
    (vpcd's fixed ports, one socket path), and each worker has its own session fixtures."""
    for item in items:
        if "pcscd_daemon" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.xdist_group(PCSCD_GROUP))


@pytest.fixture(scope="session")
def pcscd_daemon() -> Iterator[Pcscd]:
    """This session's pcscd, controlled by the tests that need it."""
    daemon = Pcscd()
    try:
        yield daemon
    finally:
        daemon.close()


@pytest.fixture
def pcscd(pcscd_daemon: Pcscd) -> Pcscd:
    """pcscd running with the two virtual readers at the start of the test."""
    if not pcscd_daemon.running or not pcscd_daemon.readers:
        pcscd_daemon.restart(readers=True)
    wait_empty()  # the last test's card has left, as pcscd sees it
    return pcscd_daemon


# --- parallel runs: pyproject's addopts run the tests on two workers with --dist loadgroup -------
# tests/xdist_groups.py: the scheduler that keeps each xdist_group (as PCSCD_GROUP) in one worker.
pytest_plugins = ["xdist_groups"]
