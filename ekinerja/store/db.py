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
    Boolean,
    Column,
    Date,
    DateTime,
    Double,
    Engine,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    create_engine,
    event,
    false,
    make_url,
    text,
    true,
)
from sqlalchemy.dialects import mysql, postgresql, sqlite
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
LongText = Text().with_variant(mysql.MEDIUMTEXT(), "mysql", "mariadb")
"""Text over 64 KiB: MySQL's plain TEXT stops there (a gateway's report with many devices)."""
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
    # Scoring reads punches subject by subject from this index alone (it covers every column scoring
    # needs): one employee's month after a late punch, or everyone's month.
    Index("ix_punches_subject", "subject_kind", "subject_value", "occurred_at", "punch", "gateway_id", "device_id"),
    # AUTOINCREMENT makes SQLite never reuse a seq, which the feed's resume point relies on.
    sqlite_autoincrement=True,
    mysql_engine="InnoDB",
    mysql_charset="utf8mb4",
)

# --- the registry: who is who, and who punched -------------------------------------------------

employees = Table(
    "employees",
    metadata,
    Column("nip", String(18), primary_key=True, comment="NIP, 18 digits"),
    Column("name", String(200), nullable=False),
    Column("unit", String(200), nullable=False),
    Column("zk_user_id", String(24), nullable=True, comment="user id on every ZK terminal, unless mapped per device"),
    Column("card_uid", String(20), nullable=True, comment="RFID card UID, upper-case hex"),
    Column("six_day", Boolean(), nullable=False, server_default=false()),
    Column("tpp_base", Numeric(15, 2), nullable=True, comment="monthly TPP in rupiah"),
    Column("active_from", Date(), nullable=False),
    Column("active_to", Date(), nullable=True),
    Column("updated_at", UtcDateTime, nullable=False),
    Index("uq_employees_zk_user_id", "zk_user_id", unique=True),
    Index("uq_employees_card_uid", "card_uid", unique=True),
    Index("ix_employees_unit", "unit"),
    mysql_engine="InnoDB",
    mysql_charset="utf8mb4",
)

subject_mappings = Table(
    "subject_mappings",
    metadata,
    Column("id", SeqType, primary_key=True, autoincrement=True),
    Column("gateway_id", String(64), nullable=False),
    Column("device_id", String(64), nullable=False),
    Column("subject_kind", String(16), nullable=False),
    Column("subject_value", String(32), nullable=False),
    Column("nip", String(18), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("created_by", String(100), nullable=False),
    Index("uq_subject_mappings_subject", "gateway_id", "device_id", "subject_kind", "subject_value", unique=True),
    mysql_engine="InnoDB",
    mysql_charset="utf8mb4",
)

# --- what excuses or replaces a punch ----------------------------------------------------------

leave_entries = Table(
    "leave_entries",
    metadata,
    Column("id", SeqType, primary_key=True, autoincrement=True),
    Column("nip", String(18), nullable=False),
    Column("code", String(8), nullable=False),
    Column("first_day", Date(), nullable=False),
    Column("last_day", Date(), nullable=False),
    Column("reason", String(500), nullable=False),
    Column("approved_by", String(100), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("created_by", String(100), nullable=False),
    Index("ix_leave_entries_nip_first_day", "nip", "first_day"),
    mysql_engine="InnoDB",
    mysql_charset="utf8mb4",
)

manual_entries = Table(
    "manual_entries",
    metadata,
    Column("id", SeqType, primary_key=True, autoincrement=True),
    Column("nip", String(18), nullable=False),
    Column("at", DateTime(), nullable=False, comment="office wall clock"),
    Column("punch", String(16), nullable=False, comment="in or out"),
    Column("reason", String(500), nullable=False),
    Column("approved_by", String(100), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("created_by", String(100), nullable=False),
    Index("ix_manual_entries_nip_at", "nip", "at"),
    mysql_engine="InnoDB",
    mysql_charset="utf8mb4",
)

# --- the scores: one row per employee and month, and a feed of re-scored days ------------------

attendance_months = Table(
    "attendance_months",
    metadata,
    Column("nip", String(18), primary_key=True),
    Column("month", Date(), primary_key=True, comment="first day of the month"),
    Column("stale", Boolean(), nullable=False, comment="an input changed since it was scored"),
    Column("stale_at", UtcDateTime, nullable=True, comment="when an input last changed"),
    Column("version", Integer(), nullable=False, server_default=text("0"), comment="input changes so far"),
    Column("scored_with", String(64), nullable=True, comment="fingerprint of the rule profile and zone"),
    Column("scored_through", Date(), nullable=True, comment="the last day scored"),
    Column("days", Text(), nullable=True, comment="the day scores, JSON"),
    Column("working_days", Integer(), nullable=False, server_default=text("0")),
    *[Column(f"tl{n}", Integer(), nullable=False, server_default=text("0")) for n in range(1, 5)],
    *[Column(f"psw{n}", Integer(), nullable=False, server_default=text("0")) for n in range(1, 5)],
    Column("tk_days", Integer(), nullable=False, server_default=text("0")),
    Column("leave_days", Integer(), nullable=False, server_default=text("0")),
    Column("cut_percent", Double(), nullable=False, server_default=text("0")),
    Column("cut_amount", Numeric(15, 2), nullable=True),
    Column("scored_at", UtcDateTime, nullable=True),
    Index("ix_attendance_months_month_stale", "month", "stale"),
    mysql_engine="InnoDB",
    mysql_charset="utf8mb4",
)

day_changes = Table(
    "day_changes",
    metadata,
    Column("seq", SeqType, primary_key=True, autoincrement=True, comment="change feed position"),
    Column("nip", String(18), nullable=False),
    Column("day", Date(), nullable=False),
    Column("changed_at", UtcDateTime, nullable=False),
    sqlite_autoincrement=True,
    mysql_engine="InnoDB",
    mysql_charset="utf8mb4",
)

# --- who may push, and what was changed by whom ---------------------------------------------------

gateway_tokens = Table(
    "gateway_tokens",
    metadata,
    Column("id", SeqType, primary_key=True, autoincrement=True),
    Column("gateway_id", String(64), nullable=False),
    Column("token_sha256", String(64), nullable=False, comment="only the hash is kept; the token is shown once"),
    Column("created_at", UtcDateTime, nullable=False),
    Column("created_by", String(100), nullable=False),
    Column("expires_at", UtcDateTime, nullable=True, comment="set when revoked or replaced; refused from then"),
    Index("uq_gateway_tokens_token_sha256", "token_sha256", unique=True),
    Index("ix_gateway_tokens_gateway_id", "gateway_id"),
    mysql_engine="InnoDB",
    mysql_charset="utf8mb4",
)
"""Gateway tokens made by ``ekinerja store gateway add|rotate|revoke``; ``[[gateways]]`` in store.toml
still works beside them."""

audit_log = Table(
    "audit_log",
    metadata,
    Column("seq", SeqType, primary_key=True, autoincrement=True),
    Column("at", UtcDateTime, nullable=False),
    Column("actor", String(100), nullable=False, comment="the client id, or the operator at the command line"),
    Column("action", String(40), nullable=False, comment="e.g. employee.add, leave.add, gateway.rotate"),
    Column("target", String(200), nullable=False, comment="what was changed: a NIP, a gateway id"),
    Column("detail", Text(), nullable=False, comment="JSON: the values set, or old and new for a change"),
    Column("reason", String(500), nullable=True),
    Index("ix_audit_log_target", "target"),
    sqlite_autoincrement=True,
    mysql_engine="InnoDB",
    mysql_charset="utf8mb4",
)
"""Append-only: written in the transaction of the change it records; no API updates or deletes it."""

# --- the dashboard: its users, their sessions, and what each gateway last reported --------------

users = Table(
    "users",
    metadata,
    Column("username", String(64), primary_key=True),
    Column("full_name", String(200), nullable=False),
    Column("role", String(16), nullable=False, comment="admin, personnel or head"),
    Column("unit", String(200), nullable=True, comment="a head of unit sees this unit only"),
    Column("password_hash", String(200), nullable=False, comment="argon2id"),
    Column("totp_secret", String(64), nullable=False, comment="base32, for the second factor"),
    Column("totp_last_step", BigInteger(), nullable=True, comment="a code is good once"),
    Column("failed_logins", Integer(), nullable=False, server_default=text("0")),
    Column("locked_until", UtcDateTime, nullable=True),
    Column("active", Boolean(), nullable=False, server_default=true()),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    mysql_engine="InnoDB",
    mysql_charset="utf8mb4",
)

sessions = Table(
    "sessions",
    metadata,
    Column("id_sha256", String(64), primary_key=True, comment="the cookie holds the id; only its hash is kept"),
    Column("username", String(64), nullable=False),
    Column("csrf_token", String(64), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    Index("ix_sessions_username", "username"),
    mysql_engine="InnoDB",
    mysql_charset="utf8mb4",
)

gateway_reports = Table(
    "gateway_reports",
    metadata,
    Column("gateway_id", String(64), primary_key=True),
    Column("received_at", UtcDateTime, nullable=False),
    Column("report", LongText, nullable=False, comment="JSON: the gateway's status as it last sent it"),
    mysql_engine="InnoDB",
    mysql_charset="utf8mb4",
)

feed_locks = Table(
    "feed_locks",
    metadata,
    Column("name", String(32), primary_key=True, comment="a feed whose writers take turns"),
    mysql_engine="InnoDB",
    mysql_charset="utf8mb4",
)
"""One row per feed written by several processes: a writer locks it (SELECT ... FOR UPDATE) before
taking seqs, so seqs are handed out in commit order and a reader resuming at ``after`` misses none."""


def insert_ignoring(conn: Any, table: Table, keys: list[str]) -> Any:
    """An INSERT that skips rows whose ``keys`` are already there, on every backend."""
    dialect = conn.dialect.name
    if dialect in ("mysql", "mariadb"):
        return table.insert().prefix_with("IGNORE")
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return insert(table).on_conflict_do_nothing(index_elements=keys)


SQLITE_BUSY_TIMEOUT_MS = 10_000
CONNECT_TIMEOUT_S = 10
DEAD_PEER_ARGS: dict[str, dict[str, int]] = {
    # TCP keepalives and a cap on unacknowledged data: a vanished server is noticed in about 30 s.
    "postgresql": {
        "keepalives": 1,
        "keepalives_idle": 10,
        "keepalives_interval": 5,
        "keepalives_count": 3,
        "tcp_user_timeout": 30_000,
    },
    # PyMySQL has no keepalives: a read or write waiting longer than this fails (the slowest report
    # query on a large province stays well under it).
    "mysql": {"read_timeout": 300, "write_timeout": 300},
    "mariadb": {"read_timeout": 300, "write_timeout": 300},
}
"""Per backend: how a connection notices a database server that vanished without closing it."""


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
    defaults = DEAD_PEER_ARGS.get(backend, {}) | {"connect_timeout": CONNECT_TIMEOUT_S}
    # libpq waits forever for a black-holed host, and a query on a connection whose server vanished
    # (no FIN, no RST) would hold the ingest lock forever: fail in seconds with a clear error instead.
    kwargs["connect_args"] = {key: value for key, value in defaults.items() if key not in parsed.query}
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


def durability_problems(engine: Engine) -> list[str]:
    """Database settings under which a commit the store acknowledged can still be lost, one line each.

    A gateway forgets a punch once the store acknowledges it, so a lost commit is a lost punch. SQLite
    is set up by :func:`make_engine`; the server databases are asked for their settings.
    """
    backend = engine.dialect.name
    with engine.connect() as conn:
        if backend == "postgresql":
            synchronous_commit = conn.exec_driver_sql("SHOW synchronous_commit").scalar()
            fsync = conn.exec_driver_sql("SHOW fsync").scalar()
            return _postgres_durability(synchronous_commit, fsync)
        if backend in ("mysql", "mariadb"):
            flush = conn.exec_driver_sql("SELECT @@innodb_flush_log_at_trx_commit").scalar()
            return _mysql_durability(int(flush) if flush is not None else 1)
    return []


def _postgres_durability(synchronous_commit: object, fsync: object) -> list[str]:
    problems = []
    if synchronous_commit == "off":
        problems.append(
            "synchronous_commit is off: a crash of the database server loses the last commits, punches the "
            "gateways were told are stored; set synchronous_commit = on"
        )
    if fsync == "off":
        problems.append("fsync is off: a power cut or system crash can lose or corrupt stored punches; set fsync = on")
    return problems


def _mysql_durability(flush: int) -> list[str]:
    if flush == 1:
        return []
    crash = "a crash of the database server" if flush == 0 else "a power cut or system crash"
    return [
        f"innodb_flush_log_at_trx_commit is {flush}: {crash} loses up to a second of commits, punches the "
        "gateways were told are stored; set innodb_flush_log_at_trx_commit = 1"
    ]


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
