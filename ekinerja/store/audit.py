"""The audit log: who changed what in the store, when and why.

Every change to the registry, leave, manual attendance, mappings and gateway tokens writes its
record in the same transaction as the change, so a change without its record cannot be committed.
The API only ever reads the log (``GET /v1/audit``); nothing in the store updates or deletes it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, select

from ekinerja.store.db import audit_log


@dataclass(frozen=True)
class Change:
    """One change to record: what it did, to whom or what, with which values, and why."""

    action: str
    target: str
    detail: dict[str, Any]
    reason: str | None = None


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"cannot record a {type(value).__name__} in the audit log")


def record(conn: Connection, actor: str, at: datetime, changes: Iterable[Change]) -> None:
    """Append ``changes`` made by ``actor`` at ``at`` (naive UTC), inside the caller's transaction."""
    rows = [
        {
            "at": at,
            "actor": actor[:100],
            "action": change.action,
            "target": change.target[:200],
            "detail": json.dumps(change.detail, default=_plain, ensure_ascii=False, sort_keys=True),
            "reason": change.reason[:500] if change.reason else None,
        }
        for change in changes
    ]
    if rows:
        conn.execute(audit_log.insert(), rows)


def read(conn: Connection, after: int, limit: int, target: str | None = None) -> list[dict[str, Any]]:
    """Records after ``seq`` ``after`` in order, at most ``limit``; only those about ``target`` if given."""
    query = select(audit_log).where(audit_log.c.seq > after).order_by(audit_log.c.seq).limit(limit)
    if target is not None:
        query = query.where(audit_log.c.target == target)
    return [
        {
            "seq": row.seq,
            "at": row.at.isoformat() + "Z",
            "actor": row.actor,
            "action": row.action,
            "target": row.target,
            "detail": json.loads(row.detail),
            "reason": row.reason,
        }
        for row in conn.execute(query)
    ]
