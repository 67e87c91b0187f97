"""The feed: every stored punch in arrival (``seq``) order, for the e-Kinerja core to consume.

A consumer keeps the ``next_after`` of the last page it processed and asks for ``after=next_after``
again; it sees every punch exactly once because ingest commits seqs in increasing order (see
:mod:`ekinerja.store.ingest`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, RowMapping, select

from ekinerja.store.db import punches
from ekinerja.sync.contract import FeedItem, FeedPage, Punch, PunchEvent, Source, Subject, Verify

MAX_FEED_LIMIT = 5000
DEFAULT_FEED_LIMIT = 1000


def read_feed(engine: Engine, after: int, limit: int) -> FeedPage:
    """Up to ``limit`` punches with ``seq > after``, oldest first.

    ``next_after`` is the last seq returned (``after`` itself on an empty page); ``has_more`` says
    whether more punches were already stored when the page was read.
    """
    if after < 0 or not 1 <= limit <= MAX_FEED_LIMIT:
        raise ValueError(f"need after >= 0 and 1 <= limit <= {MAX_FEED_LIMIT}")
    query = select(punches).where(punches.c.seq > after).order_by(punches.c.seq).limit(limit + 1)
    with engine.connect() as connection:
        rows = connection.execute(query).mappings().all()
    items = [feed_item(row) for row in rows[:limit]]
    return FeedPage(items=items, next_after=items[-1].seq if items else after, has_more=len(rows) > limit)


def feed_item(row: RowMapping) -> FeedItem:
    """One stored row as the feed shows it."""
    return FeedItem(seq=row["seq"], received_at=_utc(row["received_at"]), event=event_from_row(row))


def event_from_row(row: RowMapping | dict[str, Any]) -> PunchEvent:
    """Rebuild the PunchEvent a gateway sent from its stored row (validated again, id included)."""
    return PunchEvent(
        event_id=row["event_id"],
        gateway_id=row["gateway_id"],
        device_id=row["device_id"],
        device_serial=row["device_serial"],
        source=Source(row["source"]),
        verify=Verify(row["verify"]),
        subject=Subject.model_validate({row["subject_kind"]: row["subject_value"]}),
        punch=Punch(row["punch"]),
        device_time=row["device_time"],
        timezone=row["timezone"],
        occurred_at=_utc(row["occurred_at"]),
        clock_skew_s=row["clock_skew_s"],
        captured_at=_utc(row["captured_at"]),
    )


def _utc(value: datetime) -> datetime:
    """Stored instants are naive UTC."""
    return value.replace(tzinfo=UTC)
