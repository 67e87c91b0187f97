"""The gateway's durable punch buffer: SQLite in WAL mode with synchronous commits.

A punch is committed here before anything else happens to it, and leaves the pending state only
when the store has acknowledged it. Appending is idempotent on ``event_id``, so re-reading a
device log, or a crash between a read and a push, never doubles a punch. A device's cursor is
written in the same transaction as the events it covers, so a crash cannot move one without the
other.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Iterable, Sequence
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
    delete,
    event,
    func,
    select,
    update,
)
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError
from sqlalchemy.schema import CreateIndex, CreateTable

from ekinerja.bulk import gc_paused
from ekinerja.drivers.zkteco import DeviceCursor, QuarantinedRecord
from ekinerja.errors import OperatorError
from ekinerja.sync.contract import Punch, PunchEvent, Source, Subject, Verify, trusted_event

log = logging.getLogger("ekinerja.gateway.buffer")

PENDING, ACKED, REJECTED = "pending", "acked", "rejected"

metadata = MetaData()

events = Table(
    "events",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("event_id", String(64), nullable=False, unique=True),
    Column("gateway_id", String(64), nullable=False),
    Column("device_id", String(64), nullable=False),
    Column("device_serial", String(64)),
    Column("source", String(8), nullable=False),
    Column("verify", String(16), nullable=False),
    Column("subject_kind", String(16), nullable=False),
    Column("subject_value", String(32), nullable=False),
    Column("punch", String(16), nullable=False),
    Column("device_time", DateTime, nullable=False),
    Column("timezone", String(64), nullable=False),
    Column("occurred_at", DateTime, nullable=False),
    Column("clock_skew_s", Float),
    Column("captured_at", DateTime, nullable=False),
    Column("status", String(16), nullable=False, default=PENDING),
    Column("status_at", DateTime),
    Column("reason", Text),
    Index("ix_events_status_seq", "status", "seq"),
)
_EVENT_COLUMNS = [c.name for c in events.columns if c.name not in ("seq", "status", "status_at", "reason")]
# Appends bypass SQLAlchemy's per-row parameter processing: a first pull can bring 100,000 punches.
_INSERT_EVENTS = (
    f"INSERT OR IGNORE INTO events ({', '.join(_EVENT_COLUMNS)}, status) "
    f"VALUES ({', '.join('?' for _ in _EVENT_COLUMNS)}, '{PENDING}')"
)

cursors = Table(
    "cursors",
    metadata,
    Column("device_id", String(64), primary_key=True),
    Column("serial", String(64)),
    Column("record_count", Integer, nullable=False),
    Column("last_device_time", DateTime),
    Column("last_record_sha", String(64)),
    Column("updated_at", DateTime, nullable=False),
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


_SET_STATUS = f"UPDATE events SET status = ?, status_at = ?, reason = ? WHERE event_id = ? AND status = '{PENDING}'"


@dataclass(frozen=True)
class PendingEvent:
    """An event waiting for the store."""

    seq: int
    event: PunchEvent

    @property
    def event_id(self) -> str:
        """The event's id."""
        return self.event.event_id


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


def _as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _event_rows(batch: Sequence[PunchEvent]) -> list[tuple[Any, ...]]:
    # ISO text, which SQLAlchemy's SQLite DateTime reads back with fromisoformat; instants keep
    # their +00:00. Bound as plain strings because formatting through the column type costs
    # more than the insert itself on a 100,000-record first pull.
    rows = []
    for e in batch:
        subject = e.subject
        kind, value = ("card_uid", subject.card_uid) if subject.card_uid else ("zk_user_id", subject.zk_user_id)
        rows.append(
            (
                e.event_id, e.gateway_id, e.device_id, e.device_serial, e.source, e.verify, kind, value, e.punch,
                e.device_time.isoformat(), e.timezone, e.occurred_at.isoformat(), e.clock_skew_s,
                e.captured_at.isoformat(),
            )
        )  # fmt: skip
    return rows


class _EventReader:
    """Rebuilds buffered events; they were checked when they were made, so not validated again."""

    def __init__(self) -> None:
        self._subjects: dict[tuple[str, str], Subject] = {}

    def __call__(self, row: Any) -> PunchEvent:
        key = (row.subject_kind, row.subject_value)
        subject = self._subjects.get(key)
        if subject is None:
            subject = self._subjects[key] = Subject.model_construct(**{row.subject_kind: row.subject_value})
        return trusted_event(
            {
                "event_id": row.event_id,
                "gateway_id": row.gateway_id,
                "device_id": row.device_id,
                "device_serial": row.device_serial,
                "source": Source(row.source),
                "verify": Verify(row.verify),
                "subject": subject,
                "punch": Punch(row.punch),
                "device_time": row.device_time,
                "timezone": row.timezone,
                "occurred_at": _as_utc(row.occurred_at),
                "clock_skew_s": row.clock_skew_s,
                "captured_at": _as_utc(row.captured_at),
            }
        )


def _fingerprint(record: QuarantinedRecord) -> str:
    key = f"{record.device_id}\x1f{record.device_serial}\x1f{record.record_index}\x1f".encode() + record.raw
    return hashlib.sha256(key).hexdigest()


class BufferUnusable(OperatorError):
    """The buffer file or its folder cannot be used."""


class Buffer:
    """The punch buffer at ``path``. Safe to share between the poll and push threads."""

    def __init__(self, path: Path) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise BufferUnusable(
                f"cannot create the buffer folder {path.parent}: {exc.strerror}; check gateway.data_dir"
            ) from None
        self.path = path
        self.engine: Engine = create_engine(f"sqlite:///{path}", connect_args={"timeout": 30})
        event.listen(self.engine, "connect", _sqlite_pragmas)
        # SQLite allows one writer; serializing writers here avoids "database is locked" retries.
        self._write_lock = threading.Lock()
        try:
            self._create_tables()
        except DBAPIError as exc:
            self.engine.dispose()
            raise BufferUnusable(
                f"the punch buffer {path} cannot be opened ({exc.orig}). It may hold punches not yet "
                "sent: do not delete it; stop the gateway, move it aside, and ask for it to be recovered"
            ) from None

    def _create_tables(self) -> None:
        # IF NOT EXISTS, statement by statement: `gateway backlog` may open the file while the
        # service creates it, and create_all's check-then-create would race.
        with self.engine.begin() as conn:
            for table in metadata.sorted_tables:
                conn.execute(CreateTable(table, if_not_exists=True))
                for index in table.indexes:
                    conn.execute(CreateIndex(index, if_not_exists=True))

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
        """Durably add events (ignoring ids already present), quarantined records and the cursor
        that covers them, in one transaction. Returns how many events were new."""
        now = _utcnow()
        with gc_paused():
            rows = _event_rows(new_events)
        bad = [
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
        with self._write_lock, self.engine.begin() as conn:
            added = 0
            if rows:
                added = conn.exec_driver_sql(_INSERT_EVENTS, rows).rowcount
            if bad:
                conn.execute(sqlite_insert(quarantine).on_conflict_do_nothing(), bad)
            if cursor is not None and device_id is not None:
                self._save_cursor(conn, device_id, cursor, now)
        return max(added, 0)

    @staticmethod
    def _save_cursor(conn: Any, device_id: str, cursor: DeviceCursor, now: datetime) -> None:
        values = {
            "serial": cursor.serial,
            "record_count": cursor.record_count,
            "last_device_time": cursor.last_device_time,
            "last_record_sha": cursor.last_record_sha,
            "updated_at": now,
        }
        stmt = sqlite_insert(cursors).values(device_id=device_id, **values)
        conn.execute(stmt.on_conflict_do_update(index_elements=["device_id"], set_=values))

    def cursor(self, device_id: str) -> DeviceCursor:
        """The saved cursor of a device, or an empty one."""
        with self.engine.connect() as conn:
            row = conn.execute(select(cursors).where(cursors.c.device_id == device_id)).first()
        if row is None:
            return DeviceCursor()
        return DeviceCursor(row.serial, row.record_count, row.last_device_time, row.last_record_sha)

    def pending(self, limit: int, after: int = 0) -> list[PendingEvent]:
        """The oldest events not yet acknowledged, in the order they were buffered (from ``seq > after``)."""
        query = (
            select(events).where(events.c.status == PENDING, events.c.seq > after).order_by(events.c.seq).limit(limit)
        )
        read = _EventReader()
        with self.engine.connect() as conn, gc_paused():
            return [PendingEvent(row.seq, read(row)) for row in conn.execute(query)]

    def acknowledge(self, event_ids: Iterable[str]) -> int:
        """Mark events as stored by the store (accepted or already there)."""
        return self._set_status(ACKED, {i: None for i in event_ids})

    def reject(self, reasons: dict[str, str]) -> int:
        """Mark events the store refused; they are kept, with the reason, for an operator."""
        for event_id, reason in reasons.items():
            log.error("store rejected event %s: %s; kept in the buffer as rejected", event_id, reason)
        return self._set_status(REJECTED, dict(reasons))

    def rejected(self, limit: int = 20) -> list[tuple[str, str, str]]:
        """The most recently rejected events: (event_id, device_id, reason)."""
        query = (
            select(events.c.event_id, events.c.device_id, events.c.reason)
            .where(events.c.status == REJECTED)
            .order_by(events.c.seq.desc())
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [(r.event_id, r.device_id, r.reason or "") for r in conn.execute(query)]

    def requeue_rejected(self) -> int:
        """Make every rejected event pending again, once its cause (a device clock, a version) is fixed."""
        stmt = (
            update(events).where(events.c.status == REJECTED).values(status=PENDING, status_at=_utcnow(), reason=None)
        )
        with self._write_lock, self.engine.begin() as conn:
            return int(conn.execute(stmt).rowcount)

    def _set_status(self, status: str, reasons: dict[str, str | None]) -> int:
        if not reasons:
            return 0
        now = _utcnow().isoformat(" ")
        params = [(status, now, why, event_id) for event_id, why in reasons.items()]
        with self._write_lock, self.engine.begin() as conn:
            return int(conn.exec_driver_sql(_SET_STATUS, params).rowcount)

    def prune_acknowledged(self, older_than: datetime) -> int:
        """Delete events the store acknowledged before ``older_than`` (UTC); returns how many.

        Safe at any age: a pruned punch read again from a terminal is sent again and the store,
        which already has it, answers duplicate.
        """
        cutoff = older_than.astimezone(UTC).replace(tzinfo=None)
        stmt = delete(events).where(events.c.status == ACKED, events.c.status_at < cutoff)
        with self._write_lock, self.engine.begin() as conn:
            return int(conn.execute(stmt).rowcount)

    def backlog(self) -> Backlog:
        """Counts for the operator: pending per device, oldest pending, rejected, quarantined."""
        with self.engine.connect() as conn:
            by_status: dict[str, int] = dict(
                conn.execute(select(events.c.status, func.count()).group_by(events.c.status)).all()
            )
            by_device: dict[str, int] = dict(
                conn.execute(
                    select(events.c.device_id, func.count())
                    .where(events.c.status == PENDING)
                    .group_by(events.c.device_id)
                ).all()
            )
            oldest = conn.execute(select(func.min(events.c.captured_at)).where(events.c.status == PENDING)).scalar()
            quarantined = conn.execute(select(func.count()).select_from(quarantine)).scalar_one()
        return Backlog(
            pending=int(by_status.get(PENDING, 0)),
            oldest_pending_captured_at=oldest.replace(tzinfo=UTC) if oldest else None,
            pending_by_device={str(k): int(v) for k, v in by_device.items()},
            rejected=int(by_status.get(REJECTED, 0)),
            acked=int(by_status.get(ACKED, 0)),
            quarantined=int(quarantined),
        )

    def quarantined(self) -> list[QuarantinedRecord]:
        """Every quarantined record, oldest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(quarantine).order_by(quarantine.c.id)).all()
        return [QuarantinedRecord(r.device_id, r.device_serial, r.record_index, r.raw, r.reason) for r in rows]


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cur = dbapi_connection.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    # FULL: in WAL mode NORMAL may lose the last commits on power loss; a punch must survive that.
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA foreign_keys=ON")
    # A first pull inserts 100,000 rows into a random-keyed index; a larger page cache spares re-reads.
    cur.execute("PRAGMA cache_size=-32768")
    cur.close()
