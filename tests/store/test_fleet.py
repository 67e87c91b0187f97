"""Gateways' status reports and the fleet view, through a real store over HTTP, on every backend."""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, func, select

from ekinerja.store.db import gateway_reports
from ekinerja.store.fleet import column_bytes, fleet, keep_report
from ekinerja.sync.contract import GatewayReport

from stack import FEED_AUTH, store_server

TOKEN_1, TOKEN_2 = "fleet-token-of-opd-1", "fleet-token-of-opd-2"
AUTH_1, AUTH_2 = {"Authorization": f"Bearer {TOKEN_1}"}, {"Authorization": f"Bearer {TOKEN_2}"}


def report_data(gateway: str = "opd-1", pending: int = 3) -> dict[str, Any]:
    """A gateway's report: a terminal that is off, a card reader, a backlog and an alert."""
    return {
        "gateway_id": gateway,
        "taken_at": datetime.now(UTC).isoformat(),
        "devices": [
            {"id": "pintu", "kind": "zk", "online": False, "since": "2026-01-05T00:50:00Z", "serial": "CKPJ2019",
             "clock_skew_s": -12.25, "last_punch": "2026-01-05T07:58:00", "last_error": "10.0.0.5:4370: timed out"},
            {"id": "kartu", "kind": "pcsc", "online": True, "live": True, "readers": ["ACS ACR122U 00 00"]},
        ],
        "sync": {"pending": pending, "oldest_pending_at": "2026-01-05T00:58:00Z", "rejected": 1, "quarantined": 0},
        "alerts": [{"code": "device_offline", "device_id": "pintu", "message": "pintu offline for 10 min",
                    "values": {"minutes": 10}}],
    }  # fmt: skip


@pytest.fixture
def store(store_url: str) -> Iterator[httpx.Client]:
    """A real store serving gateways opd-1 and opd-2 and the feed-reader client."""
    with store_server(store_url, {"opd-1": TOKEN_1, "opd-2": TOKEN_2}) as url, httpx.Client(base_url=url) as client:
        yield client


def listed(store: httpx.Client, **params: Any) -> list[dict[str, Any]]:
    response = store.get("/v1/gateways", headers=FEED_AUTH, params=params)
    assert response.status_code == 200, response.text
    gateways: list[dict[str, Any]] = response.json()["gateways"]
    return gateways


def test_each_gateway_s_last_report_is_listed(store: httpx.Client) -> None:
    before = datetime.now(UTC)
    assert listed(store) == []
    first, other, newer = report_data(pending=3), report_data("opd-2"), report_data(pending=0)
    assert store.put("/v1/gateway-report", json=first, headers=AUTH_1).status_code == 204
    assert store.put("/v1/gateway-report", json=other, headers=AUTH_2).status_code == 204
    assert store.put("/v1/gateway-report", json=newer, headers=AUTH_1).status_code == 204  # replaces the first
    gateways = listed(store)
    assert [g["gateway_id"] for g in gateways] == ["opd-1", "opd-2"]
    assert GatewayReport.model_validate(gateways[0]["report"]) == GatewayReport.model_validate(newer)
    assert gateways[0]["report"]["devices"][0]["last_punch"] == "2026-01-05T07:58:00"  # wall clock, as sent
    assert all(not g["stale"] for g in gateways)
    received = datetime.fromisoformat(gateways[0]["received_at"])
    assert before <= received <= datetime.now(UTC)
    time.sleep(0.05)  # past the 6 ms below, however fast the machine
    assert all(g["stale"] for g in listed(store, stale_minutes=0.0001))  # the caller says how long is too long


def test_a_report_for_another_gateway_or_without_a_token_changes_nothing(store: httpx.Client) -> None:
    refused = store.put("/v1/gateway-report", json=report_data("opd-2"), headers=AUTH_1)
    assert refused.status_code == 403
    assert "opd-1" in refused.json()["detail"]
    for headers in ({}, {"Authorization": "Bearer not-a-known-token"}, {"Authorization": f"Basic {TOKEN_1}"}):
        response = store.put("/v1/gateway-report", json=report_data(), headers=headers)
        assert response.status_code == 401, headers
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    # A client token reads the fleet; it reports for no gateway.
    assert store.put("/v1/gateway-report", json=report_data(), headers=FEED_AUTH).status_code == 401
    assert listed(store) == []


MALFORMED: list[tuple[tuple[Any, ...], Any]] = [
    (("devices", 0, "clock_skew_s"), "NaN"),
    (("devices", 0, "last_punch"), "2026-01-05T07:58:00+07:00"),
    (("devices", 0, "last_error"), "x" * 501),
    (("alerts", 0, "code"), "Device Offline"),
    (("sync", "pending"), -1),
]


def test_a_malformed_report_is_422_naming_the_field(store: httpx.Client) -> None:
    for path, value in MALFORMED:
        body = copy.deepcopy(report_data())
        node: Any = body
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
        response = store.put("/v1/gateway-report", json=body, headers=AUTH_1)
        assert response.status_code == 422, path
        assert ["body", *path] in [error["loc"] for error in response.json()["detail"]]
    assert listed(store) == []


def test_a_report_too_large_for_the_database_is_413_not_500(store: httpx.Client, engine: Engine) -> None:
    body = report_data()
    device = {"kind": "zk", "online": False, "last_error": "e" * 500}
    body["devices"] = [{"id": f"t{n:03d}", **device} for n in range(300)]  # about 200 KB of JSON
    response = store.put("/v1/gateway-report", json=body, headers=AUTH_1)
    limit, size = column_bytes(engine.dialect), len(GatewayReport.model_validate(body).model_dump_json().encode())
    if limit is None or size <= limit:  # SQLite's and PostgreSQL's text is unbounded; MySQL's MEDIUMTEXT 16 MiB
        assert response.status_code == 204
        assert len(listed(store)[0]["report"]["devices"]) == 300
    else:  # MySQL/MariaDB TEXT (64 KiB): a clear refusal, not a database error
        assert response.status_code == 413
        assert "bytes of JSON" in response.json()["detail"]
        assert listed(store) == []


def test_the_fleet_needs_a_client_token(store: httpx.Client) -> None:
    store.put("/v1/gateway-report", json=report_data(), headers=AUTH_1)
    # A gateway's token is no client token: one office's gateway must not read every office's status.
    for headers in ({}, AUTH_1, {"Authorization": "Bearer not-a-known-token"}):
        refused = store.get("/v1/gateways", headers=headers)
        assert refused.status_code == 401 and "gateways" not in refused.text, headers
    assert len(listed(store)) == 1


def test_a_gateway_not_heard_from_is_stale(engine: Engine) -> None:
    now = datetime.now(UTC)
    keep_report(engine, GatewayReport.model_validate(report_data("opd-1")), now - timedelta(minutes=10))
    keep_report(engine, GatewayReport.model_validate(report_data("opd-2")), now - timedelta(minutes=1))
    keep_report(engine, GatewayReport.model_validate(report_data("opd-2", pending=7)), now)  # replaced, not added
    shown = fleet(engine, now)
    assert [(g.gateway_id, g.stale) for g in shown] == [("opd-1", True), ("opd-2", False)]
    assert shown[0].received_at == now - timedelta(minutes=10)  # kept to the microsecond, in UTC
    assert shown[1].report is not None and shown[1].report.sync.pending == 7
    assert [g.stale for g in fleet(engine, now, stale_after=timedelta(minutes=15))] == [False, False]
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(gateway_reports)).scalar_one() == 2
