"""Fixtures of the store's tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from ekinerja.store.db import make_engine
from ekinerja.store.schema import upgrade


@pytest.fixture
def engine(store_url: str) -> Iterator[Engine]:
    """A migrated store database on each backend in turn."""
    engine = make_engine(store_url)
    upgrade(engine)
    yield engine
    engine.dispose()
