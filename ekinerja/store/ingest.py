"""Storing a gateway's batch: idempotent on ``event_id``, one transaction per batch.

Ordering: the feed hands out punches by ``seq`` and a consumer resumes from the last seq it saw, so
a row with a smaller seq must never become visible after a larger one. Database sequences allocate
numbers at insert time, not at commit time; two overlapping transactions could commit out of order.
:data:`_INGEST_LOCK` therefore serializes ingests (allocation *and* commit) within the process, and
**the store runs as a single process** (``store serve`` starts one uvicorn worker). Running several
store processes against one database would break the feed's resume guarantee, not its idempotency.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, Insert, String, insert, select
from sqlalchemy.dialects import postgresql, sqlite

from ekinerja.store.db import punches
from ekinerja.sync.contract import Batch, BatchResult, EventResult, Outcome, PunchEvent

log = logging.getLogger("ekinerja.store")

FUTURE_TOLERANCE = timedelta(days=1)
"""An event more than this far after its arrival comes from a device whose clock is wrong."""

EARLIEST = datetime(1970, 1, 1)
"""Older instants are unset device clocks; MariaDB also cannot store years before 1000."""

_ID_CHUNK = 500
"""Event ids per ``IN (...)`` lookup: well below every backend's bound-parameter limit."""

_INGEST_LOCK = threading.Lock()
"""Serializes ingests so that seq order is commit order (see the module docstring)."""


def ingest(
    engine: Engine,
    batch: Batch,
    received_at: datetime,
    on_stored: Callable[[Connection, list[PunchEvent]], None] | None = None,
) -> BatchResult:
    """Store ``batch``; answer accepted, duplicate or rejected (with a reason) per event.

    Events already stored, and repeats of an event within the batch, are duplicates carrying the
    seq of the stored copy. Rejected events are not stored. Either the whole batch's new events
    are committed or none are; ``on_stored`` runs in the same transaction with the new events (the
    store marks their months for re-scoring there, so no punch can be stored unmarked).
    """
    received = _naive_utc(received_at)
    rows: dict[str, dict[str, Any]] = {}
    rejected: dict[int, str] = {}
    for index, event in enumerate(batch.events):
        row = _to_row(event, received)
        reason = _reject_reason(event, row, batch.gateway_id, received)
        if reason is not None:
            rejected[index] = reason
        else:
            rows.setdefault(event.event_id, row)
    with _INGEST_LOCK, engine.begin() as connection:
        seqs = _seqs_of(connection, list(rows))
        new = [row for event_id, row in rows.items() if event_id not in seqs]
        inserted = _insert_ignoring_duplicates(connection, new) if new else 0
        seqs.update(_seqs_of(connection, [row["event_id"] for row in new]))
        if on_stored is not None and new:
            new_ids = {row["event_id"] for row in new}
            on_stored(connection, [e for e in batch.events if e.event_id in new_ids])
    if inserted != len(new):
        # Only possible when another process writes the same database: ids it stored first are
        # still reported accepted here, which is harmless to the gateway (both mean "stored").
        log.warning("%d of %d new events were stored by another writer meanwhile", len(new) - inserted, len(new))
    result = _results(batch.events, rejected, {row["event_id"] for row in new}, seqs)
    _log_batch(batch.gateway_id, result, rejected)
    return result


def _results(
    events: Sequence[PunchEvent], rejected: dict[int, str], new_ids: set[str], seqs: dict[str, int]
) -> BatchResult:
    results: list[EventResult] = []
    counts = dict.fromkeys(Outcome, 0)
    for index, event in enumerate(events):
        if index in rejected:
            item = EventResult(event_id=event.event_id, outcome=Outcome.REJECTED, reason=rejected[index])
        elif event.event_id in new_ids:
            new_ids.discard(event.event_id)  # a later copy in this batch is a duplicate of this one
            item = EventResult(event_id=event.event_id, outcome=Outcome.ACCEPTED, seq=seqs[event.event_id])
        else:
            item = EventResult(event_id=event.event_id, outcome=Outcome.DUPLICATE, seq=seqs[event.event_id])
        counts[item.outcome] += 1
        results.append(item)
    return BatchResult(
        accepted=counts[Outcome.ACCEPTED],
        duplicate=counts[Outcome.DUPLICATE],
        rejected=counts[Outcome.REJECTED],
        results=results,
    )


def _naive_utc(value: datetime) -> datetime:
    """The stored form of an instant: UTC without tzinfo (a naive value is taken as UTC)."""
    if value.tzinfo is None:
        return value
    return value.astimezone(UTC).replace(tzinfo=None)


def _to_row(event: PunchEvent, received: datetime) -> dict[str, Any]:
    subject = event.subject
    kind, value = (
        ("zk_user_id", subject.zk_user_id) if subject.zk_user_id is not None else ("card_uid", subject.card_uid)
    )
    return {
        "event_id": event.event_id,
        "gateway_id": event.gateway_id,
        "device_id": event.device_id,
        "device_serial": event.device_serial,
        "source": event.source.value,
        "verify": event.verify.value,
        "subject_kind": kind,
        "subject_value": value,
        "punch": event.punch.value,
        "device_time": event.device_time,
        "timezone": event.timezone,
        "occurred_at": _naive_utc(event.occurred_at),
        "clock_skew_s": event.clock_skew_s,
        "captured_at": _naive_utc(event.captured_at),
        "received_at": received,
    }


def _reject_reason(event: PunchEvent, row: dict[str, Any], gateway_id: str, received: datetime) -> str | None:
    """Why the event cannot be stored, or None.

    Everything MariaDB's INSERT IGNORE would silently truncate or zero is caught here first.
    """
    if event.gateway_id != gateway_id:
        return f"gateway_id {event.gateway_id!r} differs from the batch's gateway_id {gateway_id!r}"
    if row["occurred_at"] > received + FUTURE_TOLERANCE:
        return (
            f"occurred_at {row['occurred_at'].isoformat()}Z is more than {FUTURE_TOLERANCE.days} day after "
            f"the store received it ({received.isoformat()}Z): is the device clock wrong?"
        )
    for field in ("device_time", "occurred_at", "captured_at"):
        if row[field] < EARLIEST:
            return f"{field} {row[field].isoformat()} is before {EARLIEST.year}: is the device clock set?"
    if event.clock_skew_s is not None and not math.isfinite(event.clock_skew_s):
        return "clock_skew_s must be a finite number"
    for name, length in _TEXT_LIMITS:
        value = row[name]
        if value is not None and len(value) > length:
            return f"{name} is longer than {length} characters"
    return None


# The text columns and their lengths, read once from the table rather than for every event.
_TEXT_LIMITS = [(column.name, column.type.length or 0) for column in punches.columns if isinstance(column.type, String)]


def _seqs_of(connection: Connection, event_ids: list[str]) -> dict[str, int]:
    """The seq of each of ``event_ids`` already stored."""
    found: dict[str, int] = {}
    for start in range(0, len(event_ids), _ID_CHUNK):
        chunk = event_ids[start : start + _ID_CHUNK]
        query = select(punches.c.event_id, punches.c.seq).where(punches.c.event_id.in_(chunk))
        found.update({event_id: seq for event_id, seq in connection.execute(query)})
    return found


def _insert_ignoring_duplicates(connection: Connection, rows: list[dict[str, Any]]) -> int:
    """Insert ``rows`` (one executemany), skipping event ids already stored; returns rows inserted."""
    dialect = connection.dialect.name
    statement: Insert
    if dialect == "sqlite":
        statement = sqlite.insert(punches).on_conflict_do_nothing(index_elements=["event_id"])
    elif dialect == "postgresql":
        # rowcount is real only because make_engine sets preserve_rowcount (it is -1 otherwise).
        statement = postgresql.insert(punches).on_conflict_do_nothing(index_elements=["event_id"])
    elif dialect in ("mysql", "mariadb"):
        # IGNORE also turns truncation into a warning: _reject_reason has validated every value.
        statement = insert(punches).prefix_with("IGNORE")
    else:
        raise NotImplementedError(f"no idempotent insert for the {dialect} database")
    return connection.execute(statement, rows).rowcount


def _log_batch(gateway_id: str, result: BatchResult, rejected: dict[int, str]) -> None:
    first_reason = f" (first rejection: {next(iter(rejected.values()))})" if rejected else ""
    log.info(
        "batch from gateway %s: %d accepted, %d duplicate, %d rejected%s",
        gateway_id,
        result.accepted,
        result.duplicate,
        result.rejected,
        first_reason,
    )
