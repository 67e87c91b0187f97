"""SQLite database files as a whole: whether one is in use, a consistent copy while it is, and putting a
copy back in its place. The gateway's buffer and a store on SQLite are both backed up this way.

A copy is taken with SQLite's online backup in one step: one read transaction, so it is the
database as of one commit, and writers go on meanwhile (WAL). The copy is a single file (rollback
journal mode), checked with ``quick_check`` before it gets its name; it is never written over.
Restoring moves the files in place (the database and its -wal and -shm) into ``replaced-<time>``
beside them, never deleting them, then puts the copy in their place.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import struct
import sys
from collections.abc import Collection
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path

from ekinerja.errors import OperatorError

# SQLite's unix VFS locks bytes 120-127 of -shm while reading or writing, and every connection holds
# a read lock on byte 128 for as long as it is open.
_SHM_LOCKS = (120, 9)
_FLOCK = struct.Struct("hhqqi")  # Linux's struct flock: type, whence, start, length, pid (native alignment)
SIDE_FILES = ("-wal", "-shm")


def in_use(db: Path) -> bool:
    """Whether a connection has the database open in WAL mode: in this process, or in another (its lock on -shm)."""
    shm = Path(f"{db}-shm")
    if not shm.exists():
        return False
    return _open_here(shm) or _locked_elsewhere(shm)


def _open_here(path: Path) -> bool:
    """Whether this process has ``path`` open, as Linux's /proc shows it (False where there is none).

    Asked before opening the file here: closing any descriptor of a file drops every POSIX lock
    the process holds on it, SQLite's included.
    """
    fds = Path("/proc/self/fd")
    try:
        names = os.listdir(fds)
    except OSError:
        return False
    target = os.path.realpath(path)
    for name in names:
        try:
            if os.readlink(fds / name) == target:
                return True
        except OSError:
            continue  # closed meanwhile
    return False


def _locked_elsewhere(shm: Path) -> bool:
    """Whether another process holds a lock on SQLite's bytes of ``shm``: asked (F_GETLK), never taken."""
    if not sys.platform.startswith("linux"):
        return False  # struct flock is laid out otherwise there
    import fcntl  # Unix only

    try:
        fd = os.open(shm, os.O_RDONLY)
    except OSError:
        return False
    try:
        answer = fcntl.fcntl(fd, fcntl.F_GETLK, _FLOCK.pack(fcntl.F_WRLCK, os.SEEK_SET, *_SHM_LOCKS, 0))
    except OSError:
        return False
    finally:
        os.close(fd)
    return bool(_FLOCK.unpack(answer)[0] != fcntl.F_UNLCK)


def backup(source: Path, target: Path, what: str) -> int:
    """Copy the database ``source`` (``what`` names it for the operator) to the new file ``target``,
    consistently, while it may be in use; the copy's size in bytes."""
    if not source.is_file():
        raise OperatorError(f"{what} {source} does not exist: nothing to back up")
    if target.exists():
        raise OperatorError(f"{target} exists already: name a new file (a backup is never written over)")
    if not target.parent.is_dir():
        raise OperatorError(f"{target.parent} is not a folder: make it first, or name a file in another folder")
    part = target.with_name(target.name + ".part")
    part.unlink(missing_ok=True)  # left by a backup that was cut short
    try:
        source_uri = source.resolve().as_uri() + "?mode=ro"
        with closing(sqlite3.connect(source_uri, uri=True)) as src, closing(sqlite3.connect(part)) as dst:
            src.backup(dst)  # one step: one read transaction, one commit's state
            dst.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
            problem = _check(dst)
        if problem:
            raise OperatorError(f"the copy of {what} {source} fails SQLite's check ({problem}); nothing was kept")
        _fsync_file(part)
        part.rename(target)
        sync_folder(target.parent)
    except sqlite3.Error as exc:
        raise OperatorError(f"cannot back up {what} {source} to {target}: {exc}") from None
    finally:
        part.unlink(missing_ok=True)
    return target.stat().st_size


def restore(copy: Path, target: Path, what: str, tables: Collection[str]) -> Path | None:
    """Put the backup ``copy`` in the place of the database ``target`` (which must not be in use).

    ``tables`` are those a backup of ``what`` must have. The files replaced are moved into a new
    ``replaced-<UTC time>`` folder beside ``target``, which is returned (None when there were none).
    """
    _check_backup(copy, what, tables)
    if in_use(target):
        raise OperatorError(f"{what} {target} is open in a running program: stop it first. Nothing was changed")
    present = [target.with_name(target.name + side) for side in (*SIDE_FILES, "")]
    present = [p for p in present if p.exists()]  # the database itself last: without it, its -wal is harmless
    kept = new_folder(target.parent, "replaced") if present else None
    part = target.with_name(target.name + ".restoring")
    shutil.copyfile(copy, part)
    _fsync_file(part)
    for path in present:
        assert kept is not None
        path.rename(kept / path.name)
    part.rename(target)
    sync_folder(target.parent)
    return kept


def _check_backup(copy: Path, what: str, tables: Collection[str]) -> None:
    if not copy.is_file():
        raise OperatorError(f"{copy} does not exist. Nothing was changed")
    try:
        with closing(sqlite3.connect(copy.resolve().as_uri() + "?mode=ro&immutable=1", uri=True)) as conn:
            problem = _check(conn)
            found = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError as exc:
        problem, found = str(exc), set()
    if problem:
        raise OperatorError(f"{copy} is not a usable SQLite database ({problem}). Nothing was changed")
    missing = sorted(set(tables) - found)
    if missing:
        raise OperatorError(f"{copy} is not a backup of {what} (no table {', '.join(missing)}). Nothing was changed")


def _check(conn: sqlite3.Connection) -> str | None:
    """SQLite's quick_check: None when the file is sound, else its first finding."""
    first = conn.execute("PRAGMA quick_check").fetchone()
    return None if first and first[0] == "ok" else str(first[0] if first else "no answer")


def new_folder(parent: Path, prefix: str) -> Path:
    """A new folder ``<prefix>-<UTC time>`` in ``parent``, numbered if one of that second exists."""
    base = parent / f"{prefix}-{datetime.now(UTC):%Y%m%d-%H%M%S}"
    folder, n = base, 1
    while folder.exists():  # twice within a second
        n += 1
        folder = base.with_name(f"{base.name}-{n}")
    folder.mkdir()
    return folder


def _fsync_file(path: Path) -> None:
    with path.open("rb+") as f:
        os.fsync(f.fileno())


def sync_folder(folder: Path) -> None:
    """Make the renames in ``folder`` durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
