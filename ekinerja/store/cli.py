"""``ekinerja store serve|migrate --config FILE``.

Exit codes: 0 done, 1 the database cannot be reached or migrated, 2 a config problem or a database
not at the schema this version needs (the top-level CLI turns a ConfigError into exit 2).
"""

from __future__ import annotations

import argparse
import logging
import signal
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import TypeVar

import uvicorn
from alembic.util import CommandError
from fastapi import FastAPI
from sqlalchemy import Engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

from ekinerja import sd_notify
from ekinerja.config.common import split_listen
from ekinerja.config.loader import ConfigError, load_model
from ekinerja.config.store import StoreConfig, StoreSection
from ekinerja.errors import OperatorError
from ekinerja.store import cli_attendance, cli_backup, cli_gateways, cli_users
from ekinerja.store.app import create_app
from ekinerja.store.attendance import Office
from ekinerja.store.db import db_error_message, describe_url, make_engine
from ekinerja.store.schema import current_revision, head_revision, migrate_to, revisions, upgrade

log = logging.getLogger("ekinerja.store")

T = TypeVar("T")

EXIT_UNREACHABLE = 1
EXIT_NOT_MIGRATED = 2


class DatabaseUnavailable(Exception):
    """The database could not be reached or changed; the message is one line for the operator."""


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``store serve`` and ``store migrate`` to the top-level command parser."""
    store = commands.add_parser("store", help="the central attendance store")
    actions = store.add_subparsers(dest="store_command", required=True, metavar="ACTION")
    serve = actions.add_parser("serve", help="run the store's HTTP API (one process)")
    serve.add_argument("--config", type=Path, required=True, help="store.toml")
    serve.add_argument("--migrate", action="store_true", help="migrate the database to the newest schema first")
    serve.set_defaults(func=serve_command)
    check = actions.add_parser("check-config", help="validate store.toml and its rule profile; try the database")
    check.add_argument("--config", type=Path, required=True, help="store.toml")
    check.set_defaults(func=check_config_command)
    migrate = actions.add_parser("migrate", help="create or upgrade the database schema")
    migrate.add_argument("--config", type=Path, required=True, help="store.toml")
    migrate.add_argument(
        "--to", metavar="REVISION", help="an older revision to go back to before installing an older version "
        "(drops what the newer revisions added, data included); default: the newest"
    )  # fmt: skip
    migrate.set_defaults(func=migrate_command)
    cli_attendance.register(actions)
    cli_gateways.register(actions)
    cli_users.register(actions)
    cli_backup.register(actions)


def check_config_command(args: argparse.Namespace) -> int:
    """Validate store.toml and its rule profile (exit 2 naming the key), then say what the database is like.

    Exit 1 when the database cannot be reached; an unmigrated database is only reported (``serve
    --migrate`` or ``migrate`` creates it).
    """
    config = load_model(args.config, StoreConfig)
    office = Office.from_config(config, args.config.parent)
    section = config.store
    print(f"{args.config}: OK")
    print(f"  listen {'https' if section.tls_cert else 'http'}://{section.listen}, rules {section.rules}, "
          f"zone {office.zone.key}")  # fmt: skip
    print(f"  {len(config.gateways)} gateway(s) and {len(config.clients)} client(s) in the file")
    url = make_url(section.database_url)
    if url.get_backend_name() == "sqlite" and url.database and not Path(url.database).exists():
        print(f"  {describe_url(url)} does not exist yet: `ekinerja store migrate` creates it")  # a check makes no file
        return 0
    _quiet_alembic()
    engine = _engine(config, args.config)
    try:
        revision = _guarded(engine, lambda: current_revision(engine))
    except DatabaseUnavailable as exc:
        print(f"  database: {exc}")
        return EXIT_UNREACHABLE
    finally:
        engine.dispose()
    problem = schema_problem(revision, head_revision())
    print(f"  {describe_url(engine.url)}: " + (problem if problem else f"schema at revision {revision} (head)"))
    return 0


def migrate_command(args: argparse.Namespace) -> int:
    """Upgrade the configured database to the newest schema (or go to ``--to``) and print the revision."""
    config = load_model(args.config, StoreConfig)
    if args.to is not None and args.to not in revisions():
        print(f"ekinerja store migrate: --to {args.to}: this version knows revisions {', '.join(revisions())}",
              file=sys.stderr)  # fmt: skip
        return EXIT_NOT_MIGRATED
    _quiet_alembic()
    engine = _engine(config, args.config)
    try:
        revision = _guarded(engine, lambda: upgrade(engine) if args.to is None else migrate_to(engine, args.to))
    except DatabaseUnavailable as exc:
        print(f"ekinerja store migrate: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    finally:
        engine.dispose()
    print(
        f"{describe_url(engine.url)}: schema at revision {revision}{' (head)' if revision == head_revision() else ''}"
    )
    return 0


def serve_command(args: argparse.Namespace) -> int:
    """Run the API on ``[store] listen`` until SIGTERM or Ctrl-C; refuse an unmigrated database."""
    config = load_model(args.config, StoreConfig)
    _quiet_alembic()
    engine = _engine(config, args.config)
    try:
        if args.migrate:
            _guarded(engine, lambda: upgrade(engine))
        revision = _guarded(engine, lambda: current_revision(engine))
        problem = schema_problem(revision, head_revision())
        if problem is not None:
            print(
                f"ekinerja store serve: {problem}: run `ekinerja store migrate --config {args.config}`", file=sys.stderr
            )
            return EXIT_NOT_MIGRATED
        host, port = split_listen(config.store.listen)
        office = Office.from_config(config, args.config.parent)
        scheme = "https" if config.store.tls_cert else "http"
        log.info("serving %s (schema %s) on %s://%s:%d", describe_url(engine.url), revision, scheme, host, port)
        return run_server(create_app(config, engine, office=office), host, port, config.store)
    except DatabaseUnavailable as exc:
        print(f"ekinerja store serve: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    finally:
        engine.dispose()


class StoreNotReady(OperatorError):
    """The database cannot be used by this command as it is."""


def ready_engine(config: StoreConfig, path: Path) -> Engine:
    """An engine on a reachable database at the schema this code needs; OperatorError otherwise."""
    _quiet_alembic()
    engine = _engine(config, path)
    try:
        revision = _guarded(engine, lambda: current_revision(engine))
    except DatabaseUnavailable as exc:
        engine.dispose()
        raise StoreNotReady(str(exc)) from None
    problem = schema_problem(revision, head_revision())
    if problem is not None:
        engine.dispose()
        error = StoreNotReady(f"{problem}: run `ekinerja store migrate --config {path}`")
        error.exit_code = EXIT_NOT_MIGRATED
        raise error
    return engine


def schema_problem(revision: str | None, head: str) -> str | None:
    """Why a database at ``revision`` cannot be served by this code, or None when it can."""
    if revision == head:
        return None
    if revision is None:
        return f"the database has no schema yet (this version needs revision {head})"
    return f"the database is at schema revision {revision}, this version needs {head}"


def _quiet_alembic() -> None:
    # Alembic 1.16+ logs every plugin it loads at INFO; keep "Running upgrade ..." lines only.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)


def _engine(config: StoreConfig, path: Path) -> Engine:
    """An engine for ``[store] database_url``; a URL that cannot work is a config error."""
    url = config.store.database_url
    try:
        return make_engine(url)
    except (ArgumentError, NoSuchModuleError, ValueError) as exc:
        raise ConfigError(path, [f"store.database_url: {exc}"]) from None
    except ImportError as exc:
        raise ConfigError(path, [f"store.database_url: its database driver is not installed ({exc.name})"]) from None
    except OSError as exc:
        raise ConfigError(path, [f"store.database_url: cannot create the folder for the SQLite file: {exc}"]) from None


def _guarded(engine: Engine, action: Callable[[], T]) -> T:
    """Run ``action``; database errors become one line naming the database, never the password."""
    try:
        return action()
    except (SQLAlchemyError, CommandError, OSError) as exc:
        where = describe_url(engine.url)
        raise DatabaseUnavailable(f"cannot use the {where}: {db_error_message(exc, engine.url)}") from None


class _NotifyingServer(uvicorn.Server):
    """uvicorn that tells systemd (``Type=notify``) it is ready once it listens, and when it stops."""

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            sd_notify.ready(f"serving on {self.config.host}:{self.config.port}")

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        sd_notify.stopping()
        await super().shutdown(sockets)


def run_server(app: FastAPI, host: str, port: int, tls: StoreSection | None = None) -> int:
    """Serve ``app`` with uvicorn (one worker, see ingest's ordering note); 0 after a clean stop.

    With ``tls`` naming a certificate and key (checked when the config was loaded), it serves HTTPS.

    uvicorn re-raises the signal that stopped it once it has shut down; with the default SIGTERM
    handler that would kill the process and hide the clean shutdown, so a no-op handler is in place.
    """
    stopped_by: list[int] = []

    def remember(signum: int, _frame: FrameType | None) -> None:
        stopped_by.append(signum)

    previous = signal.signal(signal.SIGTERM, remember)
    try:
        cert, key = (tls.tls_cert, tls.tls_key) if tls is not None else (None, None)
        config = uvicorn.Config(
            app, host=host, port=port, log_config=None, server_header=False,
            ssl_certfile=cert, ssl_keyfile=key, ssl_keyfile_password=tls.tls_key_password if tls else None,
            proxy_headers=True, forwarded_allow_ips=[str(ip) for ip in tls.trusted_proxies] if tls else "127.0.0.1",
        )  # fmt: skip
        _NotifyingServer(config).run()
    finally:
        signal.signal(signal.SIGTERM, previous)
    log.info("store stopped%s", " (SIGTERM)" if stopped_by else "")
    return 0
