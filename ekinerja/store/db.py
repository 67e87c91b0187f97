"""The store's tables and how to open its database.

The same schema runs on SQLite (the default), PostgreSQL and MariaDB/MySQL. Every instant is kept
as a naive UTC ``DateTime`` (no backend-specific time zone handling); the one naive *local* time,
``device_time``, travels with its IANA ``timezone``. Schema changes go through the Alembic
migrations in ``ekinerja/store/migrations``: keep this file and the newest migration in step
(``tests/store`` compares them on every backend).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Double,
    Engine,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    create_engine,
    event,
    make_url,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import URL
from sqlalchemy.pool import StaticPool

log = logging.getLogger("ekinerja.store")

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
"""Named constraints, so later migrations can drop or alter them by name on every backend."""

metadata = MetaData(naming_convention=NAMING_CONVENTION)

SeqType = BigInteger().with_variant(Integer(), "sqlite")
"""SQLite only autoincrements an ``INTEGER PRIMARY KEY``; elsewhere the feed position is 64-bit."""

UtcDateTime = DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
"""A naive UTC instant; MySQL's plain DATETIME would drop the microseconds."""

punches = Table(
    "punches",
    metadata,
    Column("seq", SeqType, primary_key=True, autoincrement=True, comment="feed position"),
    Column("event_id", String(64), nullable=False),
    Column("gateway_id", String(64), nullable=False),
    Column("device_id", String(64), nullable=False),
    Column("device_serial", String(64), nullable=True),
    Column("source", String(16), nullable=False),
    Column("verify", String(16), nullable=False),
    Column("subject_kind", String(16), nullable=False, comment="zk_user_id or card_uid"),
    Column("subject_value", String(32), nullable=False),
    Column("punch", String(16), nullable=False),
    Column("device_time", UtcDateTime, nullable=False, comment="naive device wall clock, in timezone"),
    Column("timezone", String(64), nullable=False),
    Column("occurred_at", UtcDateTime, nullable=False, comment="UTC"),
    Column("clock_skew_s", Double(), nullable=True),
    Column("captured_at", UtcDateTime, nullable=False, comment="UTC"),
    Column("received_at", UtcDateTime, nullable=False, comment="UTC"),
    Index("uq_punches_event_id", "event_id", unique=True),
    Index("ix_punches_occurred_at", "occurred_at"),
    # AUTOINCREMENT makes SQLite never reuse a seq, which the feed's resume point relies on.
    sqlite_autoincrement=True,
    mysql_engine="InnoDB",
    mysql_charset="utf8mb4",
)

SQLITE_BUSY_TIMEOUT_MS = 10_000
CONNECT_TIMEOUT_S = 10


def make_engine(url: str | URL) -> Engine:
    """Open an engine for ``url`` with the settings this store needs on its backend.

    SQLite: WAL, a busy timeout, full synchronous commits (an acknowledged punch must survive a power
    cut), and the parent folder of the file is created. PostgreSQL: ``preserve_rowcount`` so
    executemany reports rows really inserted. MySQL/MariaDB and PostgreSQL: pre-ping pooled
    connections, so a restarted database server does not fail the next request.
    """
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return _sqlite_engine(parsed)
    kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if "connect_timeout" not in parsed.query:
        # libpq waits forever for a black-holed host; fail in seconds with a clear error instead.
        kwargs["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT_S}
    if backend == "postgresql":
        kwargs["execution_options"] = {"preserve_rowcount": True}
    return create_engine(parsed, **kwargs)


def _sqlite_engine(url: URL) -> Engine:
    database = url.database
    in_memory = not database or database == ":memory:" or database.startswith("file::memory:")
    kwargs: dict[str, Any] = {}
    if in_memory:
        # One shared connection: otherwise every pooled connection would see its own empty database.
        kwargs = {"poolclass": StaticPool, "connect_args": {"check_same_thread": False}}
    elif database:
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, **kwargs)
    event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=FULL")
    finally:
        cursor.close()


def describe_url(url: str | URL) -> str:
    """The database's location for messages and logs: never the password."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return f"SQLite database {parsed.database or ':memory:'}"
    where = parsed.host or "localhost"
    if parsed.port:
        where += f":{parsed.port}"
    return f"{parsed.get_backend_name()} database {parsed.database!r} at {where}"


def db_error_message(exc: BaseException, url: str | URL | None = None) -> str:
    """The driver's own message for a database error, first line only, without the password.

    SQLAlchemy appends the SQL and a help link; drivers do not echo passwords, but the URL's
    password is masked anyway in case one ever does.
    """
    original = getattr(exc, "orig", None) or exc
    lines = [line.strip() for line in str(original).splitlines() if line.strip()]
    message = lines[0] if lines else type(original).__name__
    password = make_url(url).password if url is not None else None
    if password:
        message = message.replace(str(password), "***")
    return message
