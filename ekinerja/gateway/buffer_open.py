"""Opening the buffer: the checks before it is used, and what the operator is told when it cannot be.

A damaged file is refused before any read-write connection touches it (one would replay and
delete its write-ahead log), as is a file whose recovery was interrupted; every refusal is one
line that says what is wrong, where, and what to do.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

from ekinerja.errors import OperatorError
from ekinerja.gateway.buffer_damage import find_damage, is_damage, recovery_marker
from ekinerja.gateway.buffer_writes import write_failure_of


class BufferUnusable(OperatorError):
    """The buffer file or its folder cannot be used."""


class BufferDamaged(BufferUnusable):
    """The buffer file is damaged: the gateway must not use it, and nobody should delete it."""

    def __init__(self, path: Path, what: str) -> None:
        super().__init__(path, what)
        self.path, self.what = path, what
        self.config: Path | None = None  # the gateway.toml the advice names, when the caller knows it

    def __str__(self) -> str:
        name = self.path.name
        return (
            f"the punch buffer {self.path} cannot be opened: it is damaged ({self.what}). It may hold punches "
            f"not yet sent: do not delete it. Stop the gateway, copy {name} (and {name}-wal if there is one) "
            f"to a safe place, then run `{_recover_command(self.config)}`: it sets the damaged file aside "
            "unchanged and starts a new buffer with everything that can be read from it. Punches still on the "
            "terminals are read again; card taps lost to the damage cannot be read again from any terminal"
        )


class RecoveryInterrupted(BufferDamaged):
    """``gateway recover`` stopped while it moved the damaged files aside: it must be run again to finish."""

    def __str__(self) -> str:
        return (
            f"the punch buffer {self.path} cannot be opened: a recovery of it was interrupted while it moved the "
            f"damaged files aside ({self.what}). Run `{_recover_command(self.config)}` again to finish it; "
            f"do not delete or move the files in {self.path.parent} meanwhile"
        )


def _recover_command(config: Path | None) -> str:
    return f"ekinerja gateway recover --config {config or 'gateway.toml'}"


_CHECK_THE_FILE = "check the file, its permissions and gateway.data_dir"


def refuse_damaged(path: Path) -> None:
    """Raise BufferDamaged when SQLite's check or the write-ahead log says the file is damaged, or a
    recovery of it was interrupted."""
    marker = recovery_marker(path)
    if marker.exists():
        raise RecoveryInterrupted(path, f"see {marker.name}")
    try:
        what = find_damage(path)
    except sqlite3.Error as exc:
        raise unusable(path, exc) from None
    except OSError as exc:
        raise BufferUnusable(f"the punch buffer {path} cannot be opened ({exc}); {_CHECK_THE_FILE}") from None
    if what is not None:
        raise BufferDamaged(path, what)


def unusable(path: Path, error: BaseException | None) -> BufferUnusable:
    """Why the buffer cannot be opened, and what to do, for an error from SQLite while opening it."""
    if is_damage(error):
        return BufferDamaged(path, f"SQLite: {error}")
    failure = write_failure_of(path, error, None)
    if failure is not None:
        return BufferUnusable(
            f"cannot open the punch buffer: {failure.cause}. To do: {failure.todo}, then start the gateway again"
        )
    return BufferUnusable(
        f"the punch buffer {path} cannot be opened ({error}). It may hold punches not yet sent: do not "
        f"delete it; {_CHECK_THE_FILE}, and that no other program holds it"
    )


def sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """The buffer's settings on each new connection: WAL, full synchronous commits, a larger page cache."""
    cur = dbapi_connection.cursor()
    _enable_wal(cur)
    # FULL: in WAL mode NORMAL may lose the last commits on power loss; a punch must survive that.
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA foreign_keys=ON")
    # A first pull inserts 100,000 rows; a larger page cache spares re-reads of the index pages.
    cur.execute("PRAGMA cache_size=-32768")
    cur.close()


def _enable_wal(cur: Any, attempts: int = 100) -> None:
    # Switching a new file to WAL needs it alone for a moment, and SQLite answers "locked" at once
    # instead of waiting when another process opens it at the same time (`gateway backlog` while
    # `gateway run` starts).
    for attempt in range(attempts):
        try:
            cur.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == attempts - 1:
                raise
            time.sleep(0.02)
