"""Fixtures of the dashboard's tests: its pages run on SQLite alone.

The pages read and write only through the store's own functions (registry, entries, reports, accounts,
sessions), which tests/store/test_*.py run on SQLite, PostgreSQL and MariaDB. A test that is about a
backend's own behaviour (a NUL reaching PostgreSQL) is marked ``every_backend`` and runs on all three.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from servers import BACKENDS, fresh_database


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """SQLite for every page test; all three backends for those marked every_backend."""
    if "store_url" in metafunc.fixturenames:
        every = metafunc.definition.get_closest_marker("every_backend") is not None
        metafunc.parametrize("store_url", BACKENDS if every else ("sqlite",), indirect=True)


@pytest.fixture
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database for one test, on the backend the test was given."""
    with fresh_database(request, request.param, tmp_path) as url:
        yield url
