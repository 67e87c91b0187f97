"""The gateway's durable punch buffer: SQLite in WAL mode with synchronous commits.

A punch is committed here before anything else happens to it, and leaves the pending state only
when the store has acknowledged it. Appending is idempotent on the punch itself (device, subject,
device time, punch: what the event id hashes), so re-reading a device log, or a crash between a
read and a push, never doubles a punch. A device's cursor is written in the same transaction as
the events it covers, so a crash cannot move one without the other.

Layout: a ``reads`` row holds what the punches of one device read share (device, zone, skew,
capture time); an ``events`` row holds one punch as text and its status. Event ids are derived
from the row when it is read back, so they cannot disagree with it.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Column,
    DateTime,
    Engine,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
    func,
    insert,
    select,
    text,
)
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError
from sqlalchemy.schema import CreateIndex, CreateTable

from ekinerja.bulk import gc_paused
from ekinerja.drivers.zkteco import DeviceCursor, QuarantinedRecord
from ekinerja.gateway.buffer_open import BufferUnusable, refuse_damaged, sqlite_pragmas, unusable
from ekinerja.gateway.buffer_writes import WriteFailure, WriteGuard
from ekinerja.sync.contract import DeviceRead, EventOrigin, PunchEvent, Source, event_id_of

log = logging.getLogger("ekinerja.gateway.buffer")

PENDING, ACKED, REJECTED = "pending", "acked", "rejected"
LAYOUT_VERSION = 2
"""``PRAGMA user_version`` of a buffer in this layout."""

metadata = MetaData()

device_keys = Table(
    "device_keys",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("device_key", String(140), nullable=False, unique=True),
)

reads = Table(
    "reads",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("device_key_id", Integer, nullable=False),
    Column("gateway_id", String(64), nullable=False),
    Column("device_id", String(64), nullable=False),
    Column("device_serial", String(64)),
    Column("source", String(8), nullable=False),
    Column("timezone", String(64), nullable=False),
    Column("clock_skew_s", Float),
    Column("captured_at", String(40), nullable=False),  # ISO with +00:00
)

events = Table(
    "events",
    metadata,
    Column("seq", Integer, primary_key=True),
    Column("read_id", Integer, nullable=False),
    Column("device_key_id", Integer, nullable=False),
    Column("subject", String(40), nullable=False),  # Subject.key(): zk:1001, card:04A1B2C3
    Column("verify", String(16), nullable=False),
    Column("punch", String(16), nullable=False),
    Column("device_time", String(19), nullable=False),  # ISO, naive, to the second
    Column("occurred_at", String(40), nullable=False),  # ISO with +00:00
    Column("status", String(16), nullable=False, server_default=PENDING),
    Column("status_at", String(32)),  # naive UTC, ISO with a space
    Column("reason", Text),
    # The punch itself, as the event id hashes it; appended in device order, so cheap to keep.
    Index("ux_events_punch", "device_key_id", "device_time", "subject", "punch", unique=True),
    Index("ix_events_pending", "seq", sqlite_where=text(f"status = '{PENDING}'")),
)
_ROW_COLUMNS = "seq, read_id, subject, verify, punch, device_time, occurred_at"
# Appends bind the driver's rows as they are: a first pull can bring 100,000 punches.
_INSERT_EVENTS = (
    "INSERT OR IGNORE INTO events (read_id, device_key_id, subject, verify, punch, device_time, occurred_at) "
    "VALUES ({read_id:d}, {key_id:d}, ?, ?, ?, ?, ?)"
)
_PENDING_ROWS = f"SELECT {_ROW_COLUMNS} FROM events WHERE status = '{PENDING}' AND seq > ? ORDER BY seq LIMIT ?"
_SET_STATUS = f"UPDATE events SET status = ?, status_at = ?, reason = ? WHERE seq = ? AND status = '{PENDING}'"

cursors = Table(
    "cursors",
    metadata,
    Column("device_id", String(64), primary_key=True),
    Column("serial", String(64)),
    Column("record_count", Integer, nullable=False),
    Column("last_device_time", DateTime),
    Column("last_record_sha", String(64)),
    Column("log_sha", String(64)),
    Column("updated_at", DateTime, nullable=False),
)

clock_settings = Table(
    "clock_settings",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("device_id", String(64), nullable=False),
    Column("device_serial", String(64)),
    Column("skew_s", Float, nullable=False),
    Column("set_at", DateTime, nullable=False),
)

log_clears = Table(
    "log_clears",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("device_id", String(64), nullable=False),
    Column("device_serial", String(64)),
    Column("records", Integer, nullable=False),
    Column("cleared_at", DateTime, nullable=False),
)

quarantine = Table(
    "quarantine",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("fingerprint", String(64), nullable=False, unique=True),
    Column("device_id", String(64), nullable=False),
    Column("device_serial", String(64)),
    Column("record_index", Integer, nullable=False),
    Column("raw", LargeBinary, nullable=False),
    Column("reason", Text, nullable=False),
    Column("created_at", DateTime, nullable=False),
)


@dataclass(frozen=True)
class PendingEvent:
    """An event waiting for the store, with its position in the buffer."""

    seq: int
    event: PunchEvent

    @property
    def event_id(self) -> str:
        """The event's id."""
        return self.event.event_id


@dataclass(frozen=True)
class RejectedEvent:
    """An event the store refused, kept for an operator."""

    seq: int
    event_id: str
    device_id: str
    reason: str


@dataclass(frozen=True)
class Backlog:
    """What waits in the buffer."""

    pending: int
    oldest_pending_captured_at: datetime | None
    pending_by_device: dict[str, int]
    rejected: int
    acked: int
    quarantined: int


def _utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _status_time(value: datetime) -> str:
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ")


def _fingerprint(record: QuarantinedRecord) -> str:
    key = f"{record.device_id}\x1f{record.device_serial}\x1f{record.record_index}\x1f".encode() + record.raw
    return hashlib.sha256(key).hexdigest()


def _save_cursor(conn: Any, device_id: str, cursor: DeviceCursor, now: datetime) -> None:
    """Write a device's cursor, in the caller's transaction."""
    values = {
        "serial": cursor.serial,
        "record_count": cursor.record_count,
        "last_device_time": cursor.last_device_time,
        "last_record_sha": cursor.last_record_sha,
        "log_sha": cursor.log_sha,
        "updated_at": now,
    }
    stmt = sqlite_insert(cursors).values(device_id=device_id, **values)
    conn.execute(stmt.on_conflict_do_update(index_elements=["device_id"], set_=values))


def _quarantine_rows(quarantined: Iterable[QuarantinedRecord], now: datetime) -> list[dict[str, Any]]:
    """The quarantine table's rows for ``quarantined`` records."""
    return [
        {
            "fingerprint": _fingerprint(q),
            "device_id": q.device_id,
            "device_serial": q.device_serial,
            "record_index": q.record_index,
            "raw": q.raw,
            "reason": q.reason,
            "created_at": now,
        }
        for q in quarantined
    ]


class Buffer:
    """The punch buffer at ``path``. Safe to share between the poll and push threads.

    A write that fails because of the disk (full, read-only, failing) raises BufferWriteFailed;
    ``write_failure`` says why until a write succeeds again, and ``on_writable`` is called then.
    """

    def __init__(self, path: Path) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise BufferUnusable(
                f"cannot create the buffer folder {path.parent}: {exc.strerror}; check gateway.data_dir"
            ) from None
        self.path = path
        refuse_damaged(path)  # before any read-write connection, which could change the file
        self.engine: Engine = create_engine(f"sqlite:///{path}", connect_args={"timeout": 30})
        event.listen(self.engine, "connect", sqlite_pragmas)
        self._writes = WriteGuard(path, self.engine)
        self._key_ids: dict[str, int] = {}
        self._reads: dict[int, DeviceRead] = {}  # reads never change: cached for reading events back
        try:
            with self.engine.begin() as conn:
                _create_layout(conn, path)
        except BufferUnusable:
            self.engine.dispose()
            raise
        except DBAPIError as exc:
            self.engine.dispose()
            raise unusable(path, exc.orig) from None

    def check_writable(self) -> None:
        """Raise BufferWriteFailed unless a write succeeds now: before an act that must be recorded after."""
        with self._writes.transaction() as conn:
            conn.exec_driver_sql(f"PRAGMA user_version = {LAYOUT_VERSION}")  # rewrites the header page

    @property
    def write_failure(self) -> WriteFailure | None:
        """Why writes fail, since when; None while they succeed."""
        return self._writes.failure

    @property
    def on_writable(self) -> Callable[[], None]:
        """Called once a write succeeds after failing (the disk has room again)."""
        return self._writes.on_writable

    @on_writable.setter
    def on_writable(self, hook: Callable[[], None]) -> None:
        self._writes.on_writable = hook

    def close(self) -> None:
        """Release the database file."""
        self.engine.dispose()

    def append(
        self,
        new_events: Sequence[PunchEvent],
        *,
        device_id: str | None = None,
        cursor: DeviceCursor | None = None,
        quarantined: Iterable[QuarantinedRecord] = (),
    ) -> int:
        """Durably add events (ignoring punches already present), quarantined records and the
        cursor that covers them, in one transaction. Returns how many events were new.

        A :class:`DeviceRead` (what a driver's pull returns) is stored as it is; loose events are
        grouped into reads first.
        """
        now = _utcnow()
        with gc_paused():
            batches = [new_events] if isinstance(new_events, DeviceRead) else DeviceRead.group(new_events)
        bad = _quarantine_rows(quarantined, now)
        new_keys: dict[str, int] = {}
        with self._writes.transaction() as conn:
            added = sum(self._insert_read(conn, read, new_keys) for read in batches if len(read))
            if bad:
                conn.execute(sqlite_insert(quarantine).on_conflict_do_nothing(), bad)
            if cursor is not None and device_id is not None:
                _save_cursor(conn, device_id, cursor, now)
        # Only now: a key row of a transaction that rolled back does not exist, and its id may
        # later go to another device.
        self._key_ids.update(new_keys)
        return added

    def _insert_read(self, conn: Any, read: DeviceRead, new_keys: dict[str, int]) -> int:
        origin = read.origin
        key_id = self._key_id(conn, origin.device_key, new_keys)
        values = origin._asdict() | {"captured_at": origin.captured_at.isoformat(), "source": origin.source.value}
        read_id = conn.execute(insert(reads).values(device_key_id=key_id, **values)).inserted_primary_key[0]
        added = conn.exec_driver_sql(_INSERT_EVENTS.format(read_id=read_id, key_id=key_id), read.rows).rowcount
        if added <= 0:  # every punch was there already: keep no empty read
            conn.execute(reads.delete().where(reads.c.id == read_id))
        return max(int(added), 0)

    def _key_id(self, conn: Any, key: str, new_keys: dict[str, int]) -> int:
        key_id = self._key_ids.get(key) or new_keys.get(key)
        if key_id is None:
            conn.execute(sqlite_insert(device_keys).values(device_key=key).on_conflict_do_nothing())
            key_id = conn.execute(select(device_keys.c.id).where(device_keys.c.device_key == key)).scalar_one()
            new_keys[key] = key_id
        return key_id

    def cursor(self, device_id: str) -> DeviceCursor:
        """The saved cursor of a device, or an empty one."""
        with self.engine.connect() as conn:
            row = conn.execute(select(cursors).where(cursors.c.device_id == device_id)).first()
        if row is None:
            return DeviceCursor()
        return DeviceCursor(row.serial, row.record_count, row.last_device_time, row.last_record_sha, row.log_sha)

    def pending(self, limit: int, after: int = 0) -> list[PendingEvent]:
        """The oldest events not yet acknowledged, in the order they were buffered (from ``seq > after``).

        A row damaged on disk, which cannot even be read back as an event, is set aside as
        rejected with the reason, so that it cannot block the queue.
        """
        out: list[PendingEvent] = []
        damaged: dict[int, str] = {}
        with self.engine.connect() as conn, gc_paused():
            rows = conn.exec_driver_sql(_PENDING_ROWS, (after, limit)).all()
            self._load_reads(conn, {row[1] for row in rows})
            for seq, read_id, *punch in rows:
                try:
                    out.append(PendingEvent(seq, self._reads[read_id].event(tuple(punch))))
                except (KeyError, ValueError, TypeError) as exc:
                    damaged[seq] = f"damaged in the gateway's buffer ({type(exc).__name__}: {exc})"
        if damaged:
            log.error(
                "%d buffered event(s) are damaged on disk and cannot be sent; set aside as rejected", len(damaged)
            )
            self._set_status(REJECTED, damaged)
        return out

    def _load_reads(self, conn: Any, read_ids: set[int]) -> None:
        missing = read_ids - self._reads.keys()
        if not missing:
            return
        if len(self._reads) > 10_000:
            self._reads.clear()
        for r in conn.execute(select(reads).where(reads.c.id.in_(missing))):
            captured = datetime.fromisoformat(r.captured_at)
            origin = EventOrigin(
                r.gateway_id, r.device_id, r.device_serial, Source(r.source), r.timezone, r.clock_skew_s, captured
            )
            self._reads[r.id] = DeviceRead(origin)

    def acknowledge(self, seqs: Iterable[int]) -> int:
        """Mark events (by ``seq``) as stored by the store (accepted or already there)."""
        return self._set_status(ACKED, dict.fromkeys(seqs))

    def reject(self, reasons: dict[int, str]) -> int:
        """Mark events (by ``seq``) the store refused; they are kept, with the reason, for an operator."""
        return self._set_status(REJECTED, dict(reasons))

    def rejected(self, limit: int = 20) -> list[RejectedEvent]:
        """The most recently rejected events."""
        query = (
            select(events, reads.c.device_id, device_keys.c.device_key)
            .join(reads, reads.c.id == events.c.read_id)
            .join(device_keys, device_keys.c.id == events.c.device_key_id)
            .where(events.c.status == REJECTED)
            .order_by(events.c.seq.desc())
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [
                RejectedEvent(
                    r.seq, event_id_of(r.device_key, r.subject, r.device_time, r.punch), r.device_id, r.reason or ""
                )
                for r in conn.execute(query)
            ]

    def requeue_rejected(self) -> int:
        """Make every rejected event pending again, once its cause (a device clock, a version) is fixed."""
        stmt = (
            events.update()
            .where(events.c.status == REJECTED)
            .values(status=PENDING, status_at=_status_time(datetime.now(UTC)), reason=None)
        )
        with self._writes.transaction() as conn:
            return int(conn.execute(stmt).rowcount)

    def _set_status(self, status: str, reasons: Mapping[int, str | None]) -> int:
        if not reasons:
            return 0
        now = _status_time(datetime.now(UTC))
        params = [(status, now, why, seq) for seq, why in reasons.items()]
        with self._writes.transaction() as conn:
            return int(conn.exec_driver_sql(_SET_STATUS, params).rowcount)

    def prune_acknowledged(self, older_than: datetime) -> int:
        """Delete events the store acknowledged before ``older_than``; returns how many.

        Safe at any age: a pruned punch read again from a terminal is sent again and the store,
        which already has it, answers duplicate.
        """
        stmt = events.delete().where(events.c.status == ACKED, events.c.status_at < _status_time(older_than))
        with self._writes.transaction() as conn:
            pruned = int(conn.execute(stmt).rowcount)
            conn.execute(reads.delete().where(reads.c.id.not_in(select(events.c.read_id).distinct())))
        return pruned

    def backlog(self) -> Backlog:
        """Counts for the operator: pending per device, oldest pending, rejected, quarantined."""
        pending = (
            select(reads.c.device_id, func.count(), func.min(reads.c.captured_at))
            .join(reads, reads.c.id == events.c.read_id)
            .where(events.c.status == PENDING)
            .group_by(reads.c.device_id)
        )
        with self.engine.connect() as conn:
            by_status: dict[str, int] = dict(
                conn.execute(select(events.c.status, func.count()).group_by(events.c.status)).all()
            )
            by_device = conn.execute(pending).all()
            quarantined = conn.execute(select(func.count()).select_from(quarantine)).scalar_one()
        oldest = min((row[2] for row in by_device), default=None)
        return Backlog(
            pending=int(by_status.get(PENDING, 0)),
            oldest_pending_captured_at=datetime.fromisoformat(oldest) if oldest else None,
            pending_by_device={str(row[0]): int(row[1]) for row in by_device},
            rejected=int(by_status.get(REJECTED, 0)),
            acked=int(by_status.get(ACKED, 0)),
            quarantined=int(quarantined),
        )

    def record_clock_set(self, device_id: str, serial: str | None, skew_s: float) -> None:
        """Keep a record that the gateway set a device's clock, and by how much it was off."""
        row = {"device_id": device_id, "device_serial": serial, "skew_s": skew_s, "set_at": _utcnow()}
        with self._writes.transaction() as conn:
            conn.execute(clock_settings.insert().values(**row))

    def clock_settings(self) -> list[tuple[str, str | None, float, datetime]]:
        """Every clock the gateway set: (device_id, serial, skew removed, when in UTC), oldest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(clock_settings).order_by(clock_settings.c.id)).all()
        return [(r.device_id, r.device_serial, r.skew_s, r.set_at.replace(tzinfo=UTC)) for r in rows]

    def unacknowledged(self, device_id: str) -> int:
        """How many punches read from a device the store has not acknowledged (pending or rejected)."""
        query = (
            select(func.count())
            .select_from(events.join(reads, reads.c.id == events.c.read_id))
            .where(reads.c.device_id == device_id, events.c.status != ACKED)
        )
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def record_log_clear(self, device_id: str, serial: str | None, records: int) -> None:
        """Keep a record that the gateway cleared a device's log, and rewind its cursor to the empty log.

        Rewinding is only bookkeeping: a cursor that still pointed past the end would be noticed
        at the next poll and the log read whole, which is safe too.
        """
        now = _utcnow()
        row = {"device_id": device_id, "device_serial": serial, "records": records, "cleared_at": now}
        with self._writes.transaction() as conn:
            conn.execute(log_clears.insert().values(**row))
            self._rewind(conn, device_id, now)

    def rewind_cursor(self, device_id: str) -> None:
        """Have the device's log read whole at the next poll (its content changed behind the cursor)."""
        with self._writes.transaction() as conn:
            self._rewind(conn, device_id, _utcnow())

    def _rewind(self, conn: Any, device_id: str, now: datetime) -> None:
        """The device's cursor back to the start of its log, keeping its serial and last punch time."""
        query = select(cursors.c.serial, cursors.c.last_device_time).where(cursors.c.device_id == device_id)
        serial, last = conn.execute(query).first() or (None, None)
        _save_cursor(conn, device_id, DeviceCursor(serial, 0, last), now)

    def log_clears(self) -> list[tuple[str, str | None, int, datetime]]:
        """Every log the gateway cleared: (device_id, serial, records cleared, when in UTC), oldest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(log_clears).order_by(log_clears.c.id)).all()
        return [(r.device_id, r.device_serial, r.records, r.cleared_at.replace(tzinfo=UTC)) for r in rows]

    def quarantined(self) -> list[QuarantinedRecord]:
        """Every quarantined record, oldest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(quarantine).order_by(quarantine.c.id)).all()
        return [QuarantinedRecord(r.device_id, r.device_serial, r.record_index, r.raw, r.reason) for r in rows]


def _create_layout(conn: Any, path: Path) -> None:
    """This version's tables, indexes and columns, where they are missing; refuses another version's file."""
    # IF NOT EXISTS, statement by statement: `gateway backlog` may open the file while the
    # service creates it, and create_all's check-then-create would race.
    version = conn.exec_driver_sql("PRAGMA user_version").scalar_one()
    columns = {row[1] for row in conn.exec_driver_sql("PRAGMA table_info(events)")}
    if version > LAYOUT_VERSION or (columns and "read_id" not in columns):
        raise BufferUnusable(
            f"the punch buffer {path} was written by another version of the gateway (layout "
            f"{version}, this one reads {LAYOUT_VERSION}). Run that version until `ekinerja gateway "
            "backlog` shows nothing pending, then move the file aside"
        )
    if version == LAYOUT_VERSION and _layout_complete(conn):
        return  # nothing to write: a buffer on a full disk still opens, and is read
    for table in metadata.sorted_tables:
        conn.execute(CreateTable(table, if_not_exists=True))
        for index in table.indexes:
            conn.execute(CreateIndex(index, if_not_exists=True))
    cursor_columns = {row[1] for row in conn.exec_driver_sql("PRAGMA table_info(cursors)")}
    if "log_sha" not in cursor_columns:  # a buffer from before full-log clearing
        conn.exec_driver_sql("ALTER TABLE cursors ADD COLUMN log_sha VARCHAR(64)")
    conn.exec_driver_sql(f"PRAGMA user_version = {LAYOUT_VERSION}")


def _layout_complete(conn: Any) -> bool:
    """Whether every table, index and column of this layout is there already."""
    names = {row[0] for row in conn.exec_driver_sql("SELECT name FROM sqlite_master")}
    wanted = {t.name for t in metadata.sorted_tables} | {i.name for t in metadata.sorted_tables for i in t.indexes}
    cursor_columns = {row[1] for row in conn.exec_driver_sql("PRAGMA table_info(cursors)")}
    return wanted <= names and "log_sha" in cursor_columns
