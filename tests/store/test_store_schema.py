"""The store's migrations, on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, select

from ekinerja.store.db import feed_locks, make_engine, metadata
from ekinerja.store.schema import current_revision, head_revision, migrate_to, revisions, upgrade


def test_migrate_from_empty_to_head(store_url: str) -> None:
    engine = make_engine(store_url)
    try:
        assert current_revision(engine) is None
        assert upgrade(engine) == head_revision() == "0004"
        assert current_revision(engine) == head_revision()
        with engine.connect() as connection:
            # The migration builds exactly what db.py describes: columns, types, indexes, names.
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, metadata) == []
            indexes = {index["name"] for index in inspect(connection).get_indexes("punches")}
            assert {"uq_punches_event_id", "ix_punches_subject"} <= indexes
            # The changed-days feed's writers take turns on this row.
            assert connection.execute(select(feed_locks.c.name)).scalars().all() == ["day_changes"]
        assert upgrade(engine) == "0004"  # a second run changes nothing
    finally:
        engine.dispose()


def test_upgrade_from_a_url_disposes_its_own_engine(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/nested/folder/store.db"  # the folder is created
    assert upgrade(url) == head_revision()
    engine = make_engine(url)
    try:
        assert current_revision(engine) == head_revision()
    finally:
        engine.dispose()


def test_downgrade_to_the_first_revision_and_upgrade_again(store_url: str) -> None:
    engine = make_engine(store_url)
    try:
        upgrade(engine)
        assert revisions() == ["0001", "0002", "0003", "0004"] and revisions()[-1] == head_revision()
        assert migrate_to(engine, "0003") == "0003"
        with engine.connect() as connection:
            assert not inspect(connection).has_table("users")
        assert migrate_to(engine, "0001") == "0001"  # every downgrade runs, on each backend
        with engine.connect() as connection:
            assert inspect(connection).has_table("punches") and not inspect(connection).has_table("employees")
        assert migrate_to(engine, "0004") == head_revision()
        with pytest.raises(ValueError, match="unknown revision '0009'"):
            migrate_to(engine, "0009")
    finally:
        engine.dispose()
