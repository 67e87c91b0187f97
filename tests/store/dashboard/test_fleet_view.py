"""The "Perangkat" page's shaping (pure): how long ago, the flags, the summary line, the wall clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from ekinerja.store.dashboard.fleet_view import Ago, ago, device_view, gateway_view, percent_used, summary, view
from ekinerja.store.fleet import GatewayStatus
from ekinerja.sync.contract import DeviceReport, GatewayReport

WIB = ZoneInfo("Asia/Jakarta")
NOW = datetime(2026, 1, 5, 3, 0, tzinfo=UTC)  # 10:00 WIB


def device(**fields: Any) -> DeviceReport:
    return DeviceReport.model_validate({"id": "pintu", "kind": "zk", "online": True} | fields)


def status(gateway: str = "opd-1", *, stale: bool = False, received: datetime = NOW, **report: Any) -> GatewayStatus:
    """A gateway's entry; ``report=None`` for one this store version cannot read."""
    data = {"gateway_id": gateway, "taken_at": NOW, "sync": {"pending": 0}} | report
    kept = None if report.get("report", "") is None else GatewayReport.model_validate(data)
    return GatewayStatus(gateway_id=gateway, received_at=received, stale=stale, report=kept)


@pytest.mark.parametrize(
    ("before", "expected"),
    [
        (timedelta(0), Ago(0, "seconds")),
        (timedelta(seconds=59), Ago(59, "seconds")),
        (timedelta(seconds=60), Ago(1, "minutes")),
        (timedelta(minutes=5, seconds=59), Ago(5, "minutes")),
        (timedelta(minutes=59, seconds=59), Ago(59, "minutes")),
        (timedelta(hours=1), Ago(1, "hours")),
        (timedelta(hours=23, minutes=59), Ago(23, "hours")),
        (timedelta(days=1), Ago(1, "days")),
        (timedelta(days=40, hours=5), Ago(40, "days")),
        (timedelta(seconds=-30), Ago(0, "seconds")),  # a gateway clock ahead of the store's: never negative
    ],
)
def test_how_long_ago_in_the_largest_whole_unit(before: timedelta, expected: Ago) -> None:
    assert ago(NOW - before, NOW) == expected


@pytest.mark.parametrize(
    ("fields", "used"),
    [
        ({}, None),
        ({"records": 500}, None),  # no capacity: unknown
        ({"records": 500, "capacity": 0}, None),  # a capacity of 0 is unknown, not infinitely full
        ({"records": 45_000, "capacity": 50_000}, 90.0),
        ({"records": 1, "capacity": 3}, pytest.approx(33.333, rel=1e-3)),
        ({"records": 45_000, "capacity": 50_000, "percent_used": 12.5}, 12.5),  # the gateway's own figure wins
    ],
)
def test_percent_used_as_reported_else_computed(fields: dict[str, Any], used: object) -> None:
    assert percent_used(device(**fields)) == used


@pytest.mark.parametrize(
    ("fields", "skew_flag", "log_flag"),
    [
        ({}, False, False),
        ({"clock_skew_s": 60.0}, False, False),  # 60 s is the limit, not over it
        ({"clock_skew_s": 60.5}, True, False),
        ({"clock_skew_s": -61}, True, False),  # slow clocks are flagged as fast ones
        ({"clock_skew_s": -12.25}, False, False),
        ({"records": 89_999, "capacity": 100_000}, False, False),
        ({"records": 90_000, "capacity": 100_000}, False, True),  # 90 % is flagged
        ({"percent_used": 100.0, "clock_skew_s": 3600}, True, True),
    ],
)
def test_a_device_is_flagged_when_its_clock_is_off_or_its_log_nearly_full(
    fields: dict[str, Any], skew_flag: bool, log_flag: bool
) -> None:
    shown = device_view(device(**fields), WIB)
    assert (shown.skew_flag, shown.log_flag) == (skew_flag, log_flag)


def test_instants_are_shown_at_the_offices_wall_clock() -> None:
    report = {
        "devices": [{"id": "pintu", "kind": "zk", "online": False, "since": "2026-01-05T00:50:00Z"}],
        "sync": {"pending": 3, "oldest_pending_at": "2026-01-05T00:58:00Z", "last_success": "2026-01-05T02:59:00Z",
                 "last_error": "store unreachable", "rejected": 1, "quarantined": 2},
    }  # fmt: skip
    shown = gateway_view(status(received=NOW - timedelta(minutes=7), **report), WIB, NOW)
    assert shown.received_at == datetime(2026, 1, 5, 9, 53) and shown.received_ago == Ago(7, "minutes")
    assert shown.oldest_pending_at == datetime(2026, 1, 5, 7, 58) and shown.oldest_pending_ago == Ago(2, "hours")
    assert shown.last_success == datetime(2026, 1, 5, 9, 59)
    assert (shown.pending, shown.rejected, shown.quarantined, shown.last_error) == (3, 1, 2, "store unreachable")
    assert shown.devices[0].since == datetime(2026, 1, 5, 7, 50)


def test_naive_received_at_is_taken_as_utc() -> None:
    shown = gateway_view(status(received=datetime(2026, 1, 5, 2, 0)), WIB, NOW)
    assert shown.received_at == datetime(2026, 1, 5, 9, 0) and shown.received_ago == Ago(1, "hours")


def test_an_unreadable_report_shows_the_gateway_without_it() -> None:
    shown = gateway_view(status(stale=True, report=None), WIB, NOW)
    assert not shown.readable and shown.stale and shown.devices == () and shown.alerts == ()


ONLINE = {"id": "a", "kind": "zk", "online": True}
OFFLINE = {"id": "b", "kind": "pcsc", "online": False}
ALERT = {"code": "device_offline", "device_id": "b", "message": "b offline for 10 min"}
SKEWED = {"id": "c", "kind": "zk", "online": True, "clock_skew_s": 300}


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        ([], (0, 0, 0, 0, 0, 0)),
        ([status(devices=[ONLINE, OFFLINE], alerts=[ALERT])], (1, 0, 1, 1, 1, 0)),
        ([status(stale=True, devices=[ONLINE])], (0, 1, 1, 0, 0, 0)),
        (
            [status("opd-1", devices=[ONLINE, SKEWED]), status("opd-2", stale=True, alerts=[ALERT, ALERT])],
            (1, 1, 2, 0, 2, 1),
        ),
        ([status("opd-1", stale=True, report=None), status("opd-2", devices=[OFFLINE])], (1, 1, 0, 1, 0, 0)),
    ],
)
def test_the_summary_line(statuses: list[GatewayStatus], expected: tuple[int, ...]) -> None:
    line = summary(gateway_view(s, WIB, NOW) for s in statuses)
    got = (line.reporting, line.stale, line.devices_online, line.devices_offline, line.alerts, line.flagged)
    assert got == expected


def test_stale_gateways_come_first_then_by_id() -> None:
    statuses = [status("opd-a"), status("opd-c", stale=True), status("opd-b"), status("opd-0", stale=True)]
    line, gateways = view(statuses, WIB, NOW)
    assert [g.gateway_id for g in gateways] == ["opd-0", "opd-c", "opd-a", "opd-b"]
    assert (line.reporting, line.stale) == (2, 2)
