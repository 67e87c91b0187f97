"""Alert rules, table-driven: a condition becomes an alert only past its threshold."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ekinerja.gateway.alerts import Thresholds, device_alerts, sync_alerts
from ekinerja.gateway.buffer_writes import WriteFailure
from ekinerja.gateway.status import DeviceView, SyncView

NOW = datetime(2026, 11, 30, 2, 0, tzinfo=UTC)
FULL = WriteFailure(NOW, True, "/var/lib/ekinerja", "the disk is full at /var/lib/ekinerja/buffer.sqlite3")
BROKEN = WriteFailure(NOW, False, "/var/lib/ekinerja", "disk I/O error (SQLITE_IOERR_WRITE) at ...")
LIMITS = Thresholds(
    device_offline_minutes=10,
    clock_skew_s=120,
    log_percent=90,
    backlog_minutes=30,
    store_unreachable_minutes=5,
    quarantined=1,
)


def device(**fields: object) -> DeviceView:
    values: dict[str, object] = {"id": "pintu", "kind": "zk", "online": True}
    return DeviceView(**{**values, **fields})  # type: ignore[arg-type]


def sync(**fields: object) -> SyncView:
    values: dict[str, object] = {
        "pending": 0, "oldest_pending_at": None, "rejected": 0, "quarantined": 0,
        "last_success": NOW, "unreachable_since": None, "last_error": None,
    }  # fmt: skip
    return SyncView(**{**values, **fields})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("view", "codes"),
    [
        (device(), []),
        (device(online=False, since=NOW - timedelta(minutes=9)), []),  # not yet
        (device(online=False, since=NOW - timedelta(minutes=10), last_error="timed out"), ["device_offline"]),
        (device(online=True, since=NOW - timedelta(hours=5)), []),  # online for long: nothing to say
        (device(clock_skew_s=119.4), []),
        (device(clock_skew_s=-125.0), ["clock_skew"]),  # slow clocks count as much as fast ones
        (device(percent_used=89.9), []),
        (device(percent_used=90.0), ["log_full"]),
        (device(online=False, since=NOW - timedelta(hours=1), clock_skew_s=300.0, percent_used=99.0),
         ["device_offline", "clock_skew", "log_full"]),
    ],
)  # fmt: skip
def test_device_alerts(view: DeviceView, codes: list[str]) -> None:
    alerts = device_alerts(view, LIMITS, NOW)
    assert [a.code for a in alerts] == codes
    assert all(a.device_id == "pintu" and a.message.startswith("pintu") for a in alerts)


@pytest.mark.parametrize(
    ("view", "codes"),
    [
        (sync(), []),
        (sync(pending=40, oldest_pending_at=NOW - timedelta(minutes=29)), []),
        (sync(pending=40, oldest_pending_at=NOW - timedelta(minutes=31)), ["backlog_old"]),
        (sync(unreachable_since=NOW - timedelta(minutes=4), last_error="refused"), []),
        (sync(unreachable_since=NOW - timedelta(minutes=6), last_error="refused"), ["store_unreachable"]),
        (sync(quarantined=1), ["quarantined"]),
        (sync(buffer_write_failure=FULL), ["disk_full"]),  # at once: no threshold
        (sync(buffer_write_failure=BROKEN), ["buffer_unwritable"]),
    ],
)
def test_sync_alerts(view: SyncView, codes: list[str]) -> None:
    assert [a.code for a in sync_alerts(view, LIMITS, NOW)] == codes


def test_alert_values_let_a_page_say_it_in_its_language() -> None:
    (offline,) = device_alerts(device(online=False, since=NOW - timedelta(minutes=42)), LIMITS, NOW)
    assert offline.values == {"minutes": 42}
    (old,) = sync_alerts(sync(pending=7, oldest_pending_at=NOW - timedelta(hours=2)), LIMITS, NOW)
    assert old.values == {"pending": 7, "minutes": 120}
    assert sync(unreachable_since=NOW, last_contact=NOW).store_reachable is False
    assert sync(last_contact=None).store_reachable is None and sync(last_contact=NOW).store_reachable is True


def test_a_buffer_that_cannot_be_written_says_where_and_what_to_do() -> None:
    failing = sync(buffer_write_failure=WriteFailure(NOW - timedelta(minutes=12), True, "/data", "the disk is full"))
    (alert,) = sync_alerts(failing, LIMITS, NOW)
    assert alert.values == {"minutes": 12, "folder": "/data"}
    assert "the disk is full" in alert.message and "free space in /data (gateway.data_dir)" in alert.message
