"""Is a buffer file damaged? SQLite's own check, and a look at its write-ahead log, before it is used.

Both only read: a damaged buffer must reach the operator as it is, so nothing here opens it for
writing (a read-write connection would replay and delete the write-ahead log when it closes). The
file and its log are left byte for byte; SQLite may only rebuild the log's index (-shm).

SQLite's ``quick_check`` reads every page of the file (about 0.03 s for 100,000 events, 0.25 s for
500,000). ``integrity_check`` also compares every index with its table, 4-5 times slower; the
buffer's indexes can be rebuilt, its rows cannot, so the quick check is the one run at every start.

The write-ahead log needs a look of its own: SQLite silently drops every frame after the first
one that fails its checksum, committed or not. That is right for the tail of a transaction torn
by a crash (never acknowledged), and wrong for damage in the middle of the log or a log cut short,
which would lose committed punches without a word. See https://www.sqlite.org/fileformat.html#wal.
The look is pure Python: about 40 ms per MB of log, read once when nothing is found (three times
when something is). The log usually stays under about 4 MB, as SQLite checkpoints it at 1000
pages; one large transaction (a terminal's first pull) makes it larger until the next checkpoint.

A buffer in use is no evidence: a log being written can look torn for a moment (after a checkpoint
SQLite overwrites it from the start, in place), and a file read as immutable can change under the
read. So the log is looked at only when no connection holds the database (each one in WAL mode
holds a lock on its -shm), and any finding counts only when it stays the same over
CONFIRM_LOOKS looks CONFIRM_PAUSE_S apart, on a log (or file) that did not change meanwhile.
"""

from __future__ import annotations

import os
import sqlite3
import struct
import sys
import time
from array import array
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from ekinerja.sqlite_files import in_use

_WAL_HEADER = struct.Struct(">8I")  # magic, version, page size, checkpoint seq, salt 1, salt 2, checksum 1, 2
_FRAME_HEADER = struct.Struct(">6I")  # page, database size after a commit (else 0), salt 1, salt 2, checksum 1, 2
_WAL_MAGIC = (0x377F0682, 0x377F0683)  # little- or big-endian checksums
_SHM_HEADER = struct.Struct("=IIIBBHII8s8sII")  # the wal-index header, native order (two copies)
_DAMAGE_CODES = {11, 26}  # SQLITE_CORRUPT, SQLITE_NOTADB
CONFIRM_LOOKS = 3
CONFIRM_PAUSE_S = 0.05

Stamp = tuple[int, int, int, bool]  # the file's inode, size, modification time (ns); whether a -wal exists


def find_damage(path: Path) -> str | None:
    """What is damaged in the buffer file at ``path`` (and its write-ahead log), or None.

    The log is judged only when no connection has the buffer open: one that has took it in already.
    """
    if not path.exists():
        return None
    found = None if in_use(path) else wal_damage(path)
    return found or sqlite_damage(path)


def recovery_marker(path: Path) -> Path:
    """The file that says a recovery of the buffer at ``path`` is moving its damaged files aside."""
    return path.with_name(f"{path.name}.recovering")


def read_only_uri(path: Path, immutable: bool | None = None) -> str:
    """A URI that opens the buffer read-only.

    Immutable (no locks, and no file created beside it) by default when it has no write-ahead log:
    nobody is writing then (a writer in WAL mode has one). Otherwise SQLite must see the log, and
    may create the index (-shm) for it.
    """
    if immutable is None:
        immutable = not Path(f"{path}-wal").exists()
    return f"{path.resolve().as_uri()}?mode=ro{'&immutable=1' if immutable else ''}"


def sqlite_damage(path: Path) -> str | None:
    """SQLite's quick check of the file, on a read-only connection: its first findings, or None.

    A file read as immutable (no log beside it) is read without locks: its finding counts only when
    a second check finds the same and the file did not change around either.
    """
    seen: tuple[str, Stamp] | None = None
    for look in range(CONFIRM_LOOKS):
        if look:
            time.sleep(CONFIRM_PAUSE_S)
        stamp = _stamp(path)
        found = _quick_check(path, immutable=not stamp[3])
        if found is None or stamp[3]:
            return found  # read under SQLite's locks: consistent whoever else uses the file
        if _stamp(path) != stamp:
            seen = None  # changed under the read: check again
        elif seen == (found, stamp):
            return found
        else:
            seen = (found, stamp)
    return None  # it kept changing: in use, so no evidence of damage


def _quick_check(path: Path, *, immutable: bool) -> str | None:
    try:
        with closing(sqlite3.connect(read_only_uri(path, immutable), uri=True, timeout=30)) as conn:
            findings = [row[0] for row in conn.execute("PRAGMA quick_check(3)")]
    except sqlite3.DatabaseError as exc:
        if is_damage(exc):
            return f"SQLite: {exc}"
        raise  # not damage (permissions, a lock): the caller says it cannot be opened
    problems = " ".join(" ".join(str(f).split()) for f in findings if f != "ok")
    return f"SQLite's quick check: {problems[:200]}" if problems else None


def _stamp(path: Path) -> Stamp:
    st = os.stat(path)
    return st.st_ino, st.st_size, st.st_mtime_ns, Path(f"{path}-wal").exists()


def is_damage(error: BaseException | None) -> bool:
    """Whether SQLite's ``error`` says the file is damaged (SQLITE_CORRUPT, SQLITE_NOTADB)."""
    return (getattr(error, "sqlite_errorcode", None) or 0) & 0xFF in _DAMAGE_CODES


@dataclass(frozen=True)
class _Frame:
    index: int
    commit: bool  # the last frame of a transaction
    current: bool  # written since the log last restarted (its salts are the header's)
    intact: bool  # its checksum matches its own content (given the previous frame's)


def wal_damage(db: Path) -> str | None:
    """Committed changes in the write-ahead log that SQLite would drop, described; None when there are none.

    Only what CONFIRM_LOOKS looks at the same log (byte for byte) all find: a log that changes
    between them is being written, and what it shows mid-write is no evidence.
    """
    found, seen = _look(db)
    for _ in range(CONFIRM_LOOKS - 1):
        if found is None:
            return None
        time.sleep(CONFIRM_PAUSE_S)
        again, now = _look(db)
        if (again, now) != (found, seen):
            return None
    return found


def _look(db: Path) -> tuple[str | None, tuple[tuple[int, bytes] | None, bytes]]:
    """One look at the log: what it shows, and what was read (its index's header, the log itself)."""
    shm_frames = _shm_frames(Path(f"{db}-shm"))  # read first: the log is only ever ahead of it
    data = _read(Path(f"{db}-wal"))
    return _judge(f"{db.name}-wal", data, shm_frames), (shm_frames, data)


def _judge(name: str, data: bytes, shm_frames: tuple[int, bytes] | None) -> str | None:
    """What SQLite would drop of the committed changes in the log ``data``, described, or None."""
    if len(data) < _WAL_HEADER.size:
        return None
    header = _WAL_HEADER.unpack_from(data)
    if header[0] not in _WAL_MAGIC or _checksum(data[:24], header[0] & 1, 0, 0) != header[6:8]:
        if not any(data):  # allocated, never written: nothing was committed in it
            return None
        return f"the header of its write-ahead log {name} is damaged: every change in it would be dropped"
    frames = _frames(data, header)
    used = _frames_used(frames)
    stranded = _stranded_commits(frames, used)
    if stranded:
        return f"{stranded} committed change(s) in its write-ahead log {name} lie beyond a damaged part"
    if shm_frames is not None and shm_frames[1] == data[16:24] and shm_frames[0] > used:
        return f"its write-ahead log {name} is cut short: {shm_frames[0] - used} committed page(s) are missing"
    return None


def _frames(data: bytes, header: tuple[int, ...]) -> list[_Frame]:
    big_endian, page_size, salts = header[0] & 1, header[2], data[16:24]
    size = _FRAME_HEADER.size + page_size
    out, previous = [], header[6:8]
    for index in range((len(data) - _WAL_HEADER.size) // size):
        at = _WAL_HEADER.size + index * size
        _page, db_size, _s1, _s2, sum1, sum2 = _FRAME_HEADER.unpack_from(data, at)
        current = data[at + 8 : at + 16] == salts
        content = data[at : at + 8] + data[at + 24 : at + size]
        intact = current and _checksum(content, big_endian, *previous) == (sum1, sum2)
        out.append(_Frame(index, db_size != 0, current, intact))
        previous = (sum1, sum2)
    return out


def _frames_used(frames: list[_Frame]) -> int:
    """How many frames SQLite reads: up to the last commit before the first frame that is not intact."""
    used = 0
    for frame in frames:
        if not frame.intact:
            break
        if frame.commit:
            used = frame.index + 1
    return used


def _stranded_commits(frames: list[_Frame], used: int) -> int:
    """Committed transactions after the frames SQLite reads that are not the tail a crash may tear.

    A crash tears at most the last transaction, which was never acknowledged; any intact frame of
    this log after an intact commit past that point belongs to a later, acknowledged transaction.
    """
    commits = [f.index for f in frames[used:] if f.current and f.intact and f.commit]
    if not commits:
        return 0
    later = [f for f in frames[commits[0] + 1 :] if f.current and f.intact]
    return len(commits) if later else 0


def _read(path: Path, size: int = -1) -> bytes:
    try:
        with path.open("rb") as f:
            return f.read(size)
    except FileNotFoundError:
        return b""


def _shm_frames(shm: Path) -> tuple[int, bytes] | None:
    """(frames, salts) of the log as the last writer's index recorded them, when it is consistent."""
    raw = _read(shm, 2 * _SHM_HEADER.size)
    if len(raw) < 2 * _SHM_HEADER.size or raw[: _SHM_HEADER.size] != raw[_SHM_HEADER.size :]:
        return None  # absent, or being written: nothing to compare with
    version, _unused, _change, is_init, _big, _page, frames, _pages, _fsum, salts, sum1, sum2 = _SHM_HEADER.unpack(
        raw[: _SHM_HEADER.size]
    )
    native_big = sys.byteorder == "big"
    if version != 3007000 or not is_init or _checksum(raw[:40], native_big, 0, 0) != (sum1, sum2):
        return None
    return frames, salts


def _checksum(data: bytes, big_endian: int | bool, s0: int, s1: int) -> tuple[int, int]:
    """SQLite's WAL checksum of ``data`` (a multiple of 8 bytes), continuing from (s0, s1)."""
    words = array("I", data)
    if bool(big_endian) != (sys.byteorder == "big"):
        words.byteswap()
    pairs = iter(words)
    for a, b in zip(pairs, pairs, strict=True):
        s0 = (s0 + a + s1) & 0xFFFFFFFF
        s1 = (s1 + b + s0) & 0xFFFFFFFF
    return s0, s1
