"""The fleet: the status each gateway last reported, so the central IT team sees every office.

A gateway PUTs its status page's picture (devices, backlog, alerts) every minute or so; only the
newest one per gateway is kept. A gateway whose last report is older than ``stale_after`` is
marked stale: it, or the network between it and the store, is down.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from pydantic import BaseModel, Field, ValidationError
from sqlalchemy import Connection, Dialect, Engine, Insert, select
from sqlalchemy.dialects import mysql, postgresql, sqlite

from ekinerja.store.db import gateway_reports
from ekinerja.sync.contract import GatewayReport, Identifier

log = logging.getLogger("ekinerja.store")

STALE_AFTER = timedelta(minutes=5)
"""Five missed reports at the gateway's default interval (``[store] report_interval_s = 60``)."""


class GatewayStatus(BaseModel):
    """One gateway's entry in the fleet."""

    gateway_id: Identifier
    received_at: datetime = Field(description="when the store received its last report (UTC)")
    stale: bool = Field(description="the last report is older than the fleet's stale_after_minutes")
    report: GatewayReport | None = Field(
        description="its last report; null when this store version cannot read the kept one (until the next)"
    )


class Fleet(BaseModel):
    """What ``GET /v1/gateways`` answers: every gateway that ever reported, by id."""

    stale_after_minutes: float
    gateways: list[GatewayStatus]


class ReportTooLarge(ValueError):
    """The report is larger than the database's column can hold; nothing was kept."""


def column_bytes(dialect: Dialect) -> int | None:
    """How many bytes of JSON the report column holds on ``dialect``; None for no practical limit.

    MySQL's and MariaDB's TEXT holds 64 KiB, a few dozen devices' worth; there an oversized report
    is refused with a clear answer rather than failing in the database (strict mode) or being cut.
    """
    if dialect.name not in ("mysql", "mariadb"):
        return None
    column = gateway_reports.c.report.type.dialect_impl(dialect)
    if isinstance(column, mysql.LONGTEXT):
        return None
    return 16_777_215 if isinstance(column, mysql.MEDIUMTEXT) else 65_535


def keep_report(engine: Engine, report: GatewayReport, received_at: datetime) -> None:
    """Keep ``report`` as its gateway's last one, replacing the one before (``received_at`` in UTC).

    Raises ReportTooLarge when the database cannot hold it.
    """
    text = report.model_dump_json()
    limit = column_bytes(engine.dialect)
    if limit is not None and len(text.encode()) > limit:
        raise ReportTooLarge(f"the report is {len(text.encode())} bytes of JSON; this store keeps at most {limit}")
    values = {
        "gateway_id": report.gateway_id,
        "received_at": received_at.astimezone(UTC).replace(tzinfo=None),  # naive UTC, as every stored instant
        "report": text,
    }
    with engine.begin() as conn:
        conn.execute(_upsert(conn, values))


def _upsert(conn: Connection, values: dict[str, object]) -> Insert:
    """An INSERT that replaces the gateway's row when there is one, in one statement on every backend."""
    changed = {"received_at": values["received_at"], "report": values["report"]}
    if conn.dialect.name in ("mysql", "mariadb"):
        return mysql.insert(gateway_reports).values(values).on_duplicate_key_update(changed)
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    return insert(gateway_reports).values(values).on_conflict_do_update(index_elements=["gateway_id"], set_=changed)


def fleet(engine: Engine, now: datetime | None = None, stale_after: timedelta = STALE_AFTER) -> list[GatewayStatus]:
    """Every gateway's last report, by gateway id, marked stale when received before ``now - stale_after``."""
    now = now or datetime.now(UTC)
    with engine.connect() as conn:
        rows = conn.execute(select(gateway_reports).order_by(gateway_reports.c.gateway_id)).all()
    out = []
    for row in rows:
        received = row.received_at.replace(tzinfo=UTC)
        out.append(
            GatewayStatus(
                gateway_id=row.gateway_id,
                received_at=received,
                stale=now - received > stale_after,
                report=_read(row.gateway_id, row.report),
            )
        )
    return out


def _read(gateway_id: str, text: str) -> GatewayReport | None:
    try:
        return GatewayReport.model_validate_json(text)
    except ValidationError as exc:  # kept by another version of the store: the gateway's next report replaces it
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:3])
        log.warning("the last report of gateway %s cannot be read, shown without it: %s", gateway_id, problems)
        return None
