"""Running the store's Alembic migrations from Python (no ``alembic.ini`` needed).

``ekinerja store migrate`` calls :func:`upgrade`; ``store serve`` and ``/healthz`` compare
:func:`current_revision` with :func:`head_revision` and refuse to work on an unmigrated database.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, String, column, inspect, select, table
from sqlalchemy.engine import URL

from ekinerja.store.db import make_engine

VERSION_TABLE = "alembic_version"
MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def alembic_config() -> Config:
    """An Alembic config pointing at the packaged migrations."""
    config = Config()
    # ConfigParser interpolation: a literal "%" in the path must be doubled.
    config.set_main_option("script_location", str(MIGRATIONS).replace("%", "%%"))
    return config


def head_revision() -> str:
    """The newest revision this code knows."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:  # only if the versions folder is empty: a broken install
        raise RuntimeError(f"no migrations found in {MIGRATIONS}")
    return head


def current_revision(bind: Engine | Connection) -> str | None:
    """The revision the database is at; None for a database never migrated.

    Reads Alembic's version table directly: ``MigrationContext`` would log two INFO lines on every
    call, and ``/healthz`` calls this on every probe.
    """
    if isinstance(bind, Engine):
        with bind.connect() as connection:
            return current_revision(connection)
    if not inspect(bind).has_table(VERSION_TABLE):
        return None
    query = select(column("version_num", String)).select_from(table(VERSION_TABLE))
    versions = sorted(str(version) for version in bind.execute(query).scalars())
    # The history is linear, so there is one row; several would mean branches merged by hand.
    return ",".join(versions) if versions else None


def upgrade(engine_or_url: Engine | str | URL, revision: str = "head") -> str | None:
    """Migrate the database to ``revision`` (default: the head); returns the revision reached.

    Given a URL, a temporary engine is made and disposed of; given an engine, it is left open.
    """
    engine = engine_or_url if isinstance(engine_or_url, Engine) else make_engine(engine_or_url)
    try:
        config = alembic_config()
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
        return current_revision(engine)
    finally:
        if engine is not engine_or_url:
            engine.dispose()


def revisions() -> list[str]:
    """Every revision this code knows, oldest first."""
    return [
        script.revision for script in reversed(list(ScriptDirectory.from_config(alembic_config()).walk_revisions()))
    ]


def migrate_to(engine: Engine, revision: str) -> str | None:
    """Upgrade or downgrade the database to ``revision`` (one of :func:`revisions`); the revision reached.

    A downgrade drops what the newer revisions added, data included (each revision's docstring says what).
    """
    known = revisions()
    if revision not in known:
        raise ValueError(f"unknown revision {revision!r}: this version knows {', '.join(known)}")
    now = current_revision(engine)
    if now is None or now not in known or known.index(revision) >= known.index(now):
        return upgrade(engine, revision)
    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, revision)
    return current_revision(engine)
