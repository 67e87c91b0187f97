"""``ekinerja store backup|restore --config FILE BACKUP``: a store on SQLite, copied whole and put back.

A store on PostgreSQL or MariaDB is backed up with the server's own tools (``pg_dump``,
``mariadb-dump --single-transaction``), as docs/deploy.md shows; these commands say so.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from sqlalchemy.engine import make_url

from ekinerja.config.loader import load_model
from ekinerja.config.store import StoreConfig
from ekinerja.errors import OperatorError
from ekinerja.sqlite_files import backup, restore

WHAT = "the store's database"
TABLES = ("alembic_version", "punches")
SERVER_TOOLS = {
    "postgresql": "pg_dump --format=custom (and pg_restore)",
    "mysql": "mariadb-dump --single-transaction (and mariadb to load it)",
}


def register(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``store backup`` and ``store restore``."""
    for name, handler, text in (
        ("backup", _backup, "copy a store on SQLite to a new file, consistently, while it serves"),
        ("restore", _restore, "put a backup in the place of the store's SQLite database (the store stopped)"),
    ):
        command = actions.add_parser(name, help=text, description=text)
        command.add_argument("--config", type=Path, required=True, help="store.toml")
        command.add_argument("file", type=Path, help="the backup file" + (" to write" if name == "backup" else ""))
        command.set_defaults(func=handler)


def sqlite_file(config: StoreConfig) -> Path:
    """The SQLite file of ``[store] database_url``; the server's own tool is named for other databases."""
    url = make_url(config.store.database_url)
    backend = url.get_backend_name()
    if backend != "sqlite":
        tool = SERVER_TOOLS.get(backend, "the database server's own backup tool")
        raise OperatorError(f"the store's database is on {backend}: back it up with {tool}; see docs/deploy.md")
    if not url.database or url.database == ":memory:" or url.database.startswith("file:"):
        raise OperatorError("the store's SQLite database_url names no file to back up")
    return Path(url.database)


def _backup(args: argparse.Namespace) -> int:
    source = sqlite_file(load_model(args.config, StoreConfig))
    size = backup(source, args.file, WHAT)
    print(f"backed up {WHAT} {source} to {args.file} ({size:,} bytes)")
    return 0


def _restore(args: argparse.Namespace) -> int:
    target = sqlite_file(load_model(args.config, StoreConfig))
    kept = restore(args.file, target, WHAT, TABLES)
    print(f"restored {WHAT} {target} from {args.file}")
    if kept is not None:
        print(f"the database it replaced is kept, unchanged, in {kept}")
    print("start the store: it migrates a backup from an older version with `ekinerja store migrate` first")
    return 0
