"""Recovering a damaged buffer: what SQLite can still read goes into a new buffer that takes its place.

The damaged file is never changed: it is moved, with its write-ahead log, into a folder beside it
(``damaged-<time>``), for whoever may try harder later. Rows are copied table by table in rowid
order, stepping over the parts SQLite cannot read. Every terminal's cursor is then rewound, so each
log is read whole again: a punch whose row was lost comes back from its terminal, and those the
buffer or the store have already are recognised by their event id.

An event whose read (device, zone, capture time) was lost cannot be sent, and its row would keep
its terminal's copy from being buffered again: it goes to the quarantine, as evidence, unless the
store had it already. Card taps lost with the damage come back from nowhere: a card reader keeps no
log. ``sqlite3 FILE .recover`` would dig deeper, but Debian's sqlite3 is built without the page
reader it needs and fails ("SQL logic error").

Moving three files is not atomic: a marker (``buffer.sqlite3.recovering``, naming the folder) is
written first and removed last. While it is there the buffer refuses to open, and the next
``recover`` finishes the move instead of starting over.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from ekinerja.errors import OperatorError
from ekinerja.gateway.buffer import ACKED, Buffer
from ekinerja.gateway.buffer_damage import find_damage, read_only_uri, recovery_marker
from ekinerja.sqlite_files import in_use, new_folder, sync_folder

TABLES = ("device_keys", "reads", "events", "cursors", "clock_settings", "log_clears", "quarantine")
BATCH = 1000
_FIRST, _LAST = -(2**63), 2**63 - 1  # SQLite's rowid range


@dataclass
class TableCopy:
    """What was copied of one table."""

    table: str
    copied: int = 0
    skipped: int = 0  # stretches of the table SQLite could not read, stepped over


@dataclass
class Recovery:
    """The outcome: the tables copied, where the damaged files went, what waits for the store."""

    path: Path
    kept: Path
    tables: list[TableCopy] = field(default_factory=list)
    set_aside: int = 0  # events without their read, moved to the quarantine
    pending: int = 0
    resumed: bool = False  # an interrupted recovery, finished

    def lines(self) -> list[str]:
        """The report for the operator."""
        if self.resumed:
            out = [f"finished the interrupted recovery of the punch buffer {self.path}"]
        else:
            out = [f"recovered the punch buffer {self.path} from what could be read:"]
        out += [f"  {t.table}: {t.copied} row(s), {t.skipped} unreadable part(s) stepped over" for t in self.tables]
        if self.set_aside:
            out.append(f"  {self.set_aside} event(s) without their read set aside in the quarantine")
        out += [
            f"the damaged file(s) are kept, unchanged, in {self.kept}: keep them until the store has everything",
            f"{self.pending} punch(es) wait for the store; every terminal's log is read whole again at the next "
            "poll (the store ignores what it has). Card taps lost to the damage cannot be read again from any "
            "terminal: the kept files are all that is left of them. Start the gateway again",
        ]
        return out


def recover(path: Path) -> list[str]:
    """``gateway recover``: rebuild a damaged buffer, or finish an interrupted recovery; the report's lines."""
    if not recovery_marker(path).exists() and path.exists():
        try:
            damage = find_damage(path)
        except (sqlite3.Error, OSError) as exc:
            raise OperatorError(
                f"cannot check the punch buffer {path} ({exc}); check the file, its permissions and "
                "gateway.data_dir, and that no other program holds it"
            ) from None
        if damage is None and in_use(path):
            return [
                f"the punch buffer {path} is not damaged as far as SQLite's check can tell (its write-ahead log is "
                "not judged while another program has it open): nothing to do"
            ]
        if damage is None:
            return [f"the punch buffer {path} is not damaged (SQLite's check and its write-ahead log): nothing to do"]
    return recover_buffer(path).lines()


def recover_buffer(path: Path) -> Recovery:
    """Rebuild the buffer at ``path`` from what can be read of it; the damaged files are moved aside unchanged.

    Refused while another process has the buffer open; an interrupted recovery is finished instead.
    """
    marker = recovery_marker(path)
    if marker.exists():
        _refuse_in_use(path)
        kept = path.with_name(marker.read_text().strip() or "damaged-unnamed")
        return _move_into_place(path, kept, Recovery(path, kept, resumed=True))
    if not path.exists():
        raise OperatorError(f"there is no punch buffer at {path}: nothing to recover")
    _refuse_in_use(path)
    fresh = _fresh(path)
    _remove(fresh)  # the leftover of an interrupted rebuild is built again
    try:
        tables, set_aside = _rebuild(path, fresh)
    except OperatorError:
        _remove(fresh)
        raise
    except (sqlite3.Error, OSError) as exc:
        _remove(fresh)
        raise OperatorError(f"recovering {path} failed ({exc}); nothing was changed, the file is as it was") from None
    _refuse_in_use(path)  # started meanwhile?
    kept = _new_folder(path)
    _write_marker(marker, kept)
    return _move_into_place(path, kept, Recovery(path, kept, tables, set_aside))


def _refuse_in_use(path: Path) -> None:
    if in_use(path):
        raise OperatorError(
            f"the punch buffer {path} is open in another program (the gateway running, or another "
            "`ekinerja gateway` command): stop it, then run recover again. Nothing was changed"
        )


def _move_into_place(path: Path, kept: Path, recovery: Recovery) -> Recovery:
    """Move the damaged files into ``kept`` and the rebuilt buffer in their place, then drop the marker."""
    fresh = _fresh(path)
    if fresh.exists():  # not in place yet: whatever of the damaged files is still beside it goes first
        kept.mkdir(exist_ok=True)
        # The file itself last: until it goes, the marker is all that keeps it from being opened
        # without its log.
        for name in (f"{path.name}-wal", f"{path.name}-shm", path.name):
            _move(path.with_name(name), kept / name)
        fresh.rename(path)
    elif not path.exists():
        raise OperatorError(
            f"the rebuilt punch buffer {fresh} is missing, and so is {path}; the damaged files are in {kept}. "
            f"Copy them to a safe place, remove {recovery_marker(path)}, copy them back beside it and run "
            "recover again"
        )
    sync_folder(path.parent)
    recovery_marker(path).unlink()
    sync_folder(path.parent)
    buffer = Buffer(path)
    try:
        recovery.pending = buffer.backlog().pending
    finally:
        buffer.close()
    return recovery


def _rebuild(damaged: Path, fresh: Path) -> tuple[list[TableCopy], int]:
    """Copy what can be read of ``damaged`` into a new, empty buffer at ``fresh``."""
    Buffer(fresh).close()  # this version's layout, empty
    uri = read_only_uri(damaged)
    with closing(sqlite3.connect(uri, uri=True, timeout=30)) as src, closing(sqlite3.connect(fresh)) as dst:
        # Read-only, so nothing is written; it lets SQLite read a schema whose tables point past the
        # end of a file cut short, instead of refusing the whole file as malformed.
        src.execute("PRAGMA writable_schema = ON")
        tables = [_copy_table(src, dst, table) for table in TABLES]
        set_aside = _tidy(dst)
        dst.commit()
        # Checked on this connection: a read-only one would leave empty -wal and -shm files behind.
        problems = [row[0] for row in dst.execute("PRAGMA quick_check(1)")]
    if problems != ["ok"]:
        raise sqlite3.DatabaseError(f"the rebuilt buffer is damaged too: {problems[0]}")
    return tables, set_aside


def _copy_table(src: sqlite3.Connection, dst: sqlite3.Connection, table: str) -> TableCopy:
    copy = TableCopy(table)
    try:
        wanted = _columns(dst, table)
        columns = [c for c in _columns(src, table) if c in wanted]
    except sqlite3.DatabaseError:
        columns = []
    if not columns:  # the table itself cannot be found: nothing of it is readable
        copy.skipped = 1
        return copy
    names = ", ".join(columns)
    insert = f"INSERT OR IGNORE INTO {table} ({names}) VALUES ({', '.join('?' * len(columns))})"
    for rows in _readable_rows(src, table, names, copy):
        before = dst.total_changes
        dst.executemany(insert, rows)  # OR IGNORE: a garbled row that breaks a constraint stays out
        copy.copied += dst.total_changes - before
    return copy


Rows = list[tuple[object, ...]]


def _readable_rows(src: sqlite3.Connection, table: str, names: str, copy: TableCopy) -> Iterator[Rows]:
    """The table's rows in batches, in rowid order, stepping over what cannot be read (counted in ``copy``)."""
    batch = f"SELECT rowid, {names} FROM {table} WHERE rowid >= ? ORDER BY rowid LIMIT {BATCH}"
    one = f"SELECT rowid, {names} FROM {table} WHERE rowid >= ? ORDER BY rowid LIMIT 1"
    at: int | None = _FIRST
    while at is not None:
        rows, at, broken = _read_batch(src, batch, at)
        if broken and at is not None:
            # Python's cursor reads a row ahead, and drops the one it holds when that fails: read
            # one row at a time up to the one that cannot be read.
            more, at = _read_singly(src, one, at)
            rows += more
        yield rows
        if broken and at is not None:
            copy.skipped += 1
            at = _past_damage(src, table, one, at)


def _read_batch(src: sqlite3.Connection, batch: str, at: int) -> tuple[Rows, int | None, bool]:
    """Up to BATCH rows from rowid ``at``: (rows, where to go on (None: the end), whether reading broke)."""
    rows: Rows = []
    last: int | None = None
    try:
        for rowid, *values in src.execute(batch, (at,)):
            rows.append(tuple(values))
            last = rowid
    except sqlite3.DatabaseError:
        return rows, at if last is None else _after(last), True
    return rows, (_after(last) if last is not None and len(rows) == BATCH else None), False


def _read_singly(src: sqlite3.Connection, one: str, at: int) -> tuple[Rows, int | None]:
    """Rows one at a time from rowid ``at``: (rows, where reading fails (None: it reached the end))."""
    rows: Rows = []
    start: int | None = at
    while start is not None:
        try:
            row = src.execute(one, (start,)).fetchone()
        except sqlite3.DatabaseError:
            return rows, start
        if row is None:
            return rows, None
        rows.append(tuple(row[1:]))
        start = _after(row[0])
    return rows, None


def _past_damage(src: sqlite3.Connection, table: str, one: str, at: int) -> int | None:
    """Where reading goes on after the unreadable part from rowid ``at`` (None: nothing beyond reads).

    When the table still finds the row there by its rowid, only that row's columns are damaged:
    just past it. Otherwise the smallest start beyond ``at`` from which a row reads whole (or
    nothing is left), found by doubling steps, then halving.
    """
    try:
        found = src.execute(f"SELECT rowid FROM {table} NOT INDEXED WHERE rowid >= ? ORDER BY rowid LIMIT 1", (at,))
        row = found.fetchone()
    except sqlite3.DatabaseError:
        row = None
    else:
        return None if row is None else _after(row[0])

    def reads_from(start: int) -> bool:
        try:
            src.execute(one, (start,)).fetchone()
        except sqlite3.DatabaseError:
            return False
        return True

    low, high = at, at + 1  # low fails, high is tried
    while not reads_from(high):
        if high == _LAST:
            return None
        low, high = high, min(_LAST, at + 2 * (high - at))
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if reads_from(middle) else (middle, high)
    return high


def _after(rowid: int) -> int | None:
    """The rowid after ``rowid``; None past SQLite's last."""
    return rowid + 1 if rowid < _LAST else None


def _tidy(dst: sqlite3.Connection) -> int:
    """Make the copy consistent: keep lost device keys' ids taken, rewind the cursors, set orphans aside."""
    dst.execute(
        "INSERT OR IGNORE INTO device_keys (id, device_key) SELECT DISTINCT device_key_id, "
        "'lost-' || device_key_id FROM events WHERE device_key_id NOT IN (SELECT id FROM device_keys)"
    )
    dst.execute("UPDATE cursors SET record_count = 0, last_record_sha = NULL, log_sha = NULL")
    orphans = "FROM events WHERE read_id NOT IN (SELECT id FROM reads)"
    now = datetime.now(UTC).replace(tzinfo=None).isoformat(" ")
    moved = dst.execute(
        "INSERT OR IGNORE INTO quarantine (fingerprint, device_id, device_serial, record_index, raw, reason, "
        "created_at) SELECT 'recovered-' || seq, '?', NULL, seq, CAST(json_array(device_key_id, subject, verify, "
        "punch, device_time, occurred_at, status) AS BLOB), 'recovered from a damaged buffer without its read "
        f"(device, zone); its terminal, if it still holds it, gives it again', ? {orphans} AND status != ?",
        (now, ACKED),
    ).rowcount
    dst.execute(f"DELETE {orphans}")
    return int(moved)


def _columns(conn: sqlite3.Connection, table: str) -> list[str]:
    return [row[1] for row in conn.execute(f"PRAGMA table_info({table})")]


def _fresh(path: Path) -> Path:
    """Where the rebuilt buffer is built, beside the damaged one."""
    return path.with_name(path.name + ".recovered")


def _new_folder(path: Path) -> Path:
    """A new folder beside the buffer for its damaged files: ``damaged-<UTC time>``."""
    return new_folder(path.parent, "damaged")


def _write_marker(marker: Path, kept: Path) -> None:
    """Say, durably, that the damaged files are being moved into ``kept``."""
    part = marker.with_name(marker.name + ".part")
    with part.open("w") as f:
        f.write(kept.name + "\n")
        f.flush()
        os.fsync(f.fileno())
    part.rename(marker)
    sync_folder(marker.parent)


def _move(source: Path, target: Path) -> None:
    if not source.exists():
        return
    if target.exists():  # never overwrite what was kept
        raise OperatorError(f"cannot move {source} to {target}: it is there already; move one of them aside by hand")
    source.rename(target)


def _remove(path: Path) -> None:
    for name in (path.name, f"{path.name}-wal", f"{path.name}-shm"):
        path.with_name(name).unlink(missing_ok=True)
