"""The gateway reports its status to a real store, which shows it in the fleet view (real HTTP, simulated terminals)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from ekinerja.config.gateway import GatewayConfig
from ekinerja.config.loader import load_model
from ekinerja.drivers.sim.zk_device import ZkDevice
from ekinerja.drivers.sim.zk_server import ZkSimulator
from ekinerja.gateway import store_report
from ekinerja.gateway.alerts import Alert
from ekinerja.gateway.service import GatewayService
from ekinerja.gateway.status import DeviceView, Snapshot, SyncView
from ekinerja.gateway.store_report import gateway_report

from stack import FEED_AUTH, free_port, running, store_server, wait_for, write_gateway_toml

TOKEN = "report-test-token-opd-1"


def fleet_entry(url: str) -> dict[str, Any] | None:
    """What the store's fleet view shows of gateway opd-1 (None before its first report)."""
    response = httpx.get(f"{url}/v1/gateways", headers=FEED_AUTH, timeout=5)
    response.raise_for_status()
    found = [g for g in response.json()["gateways"] if g["gateway_id"] == "opd-1"]
    return found[0] if found else None


def devices_of(entry: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    return {d["id"]: d for d in entry["report"]["devices"]} if entry else {}


def test_a_gateway_shows_its_terminals_and_backlog_in_the_store_s_fleet_view(tmp_path: Path) -> None:
    skewed = ZkDevice.generate(users=3, records=5, serial="REPORT00001", seed=1, clock_offset_s=300)
    side = ZkDevice.generate(users=2, records=4, serial="REPORT00002", seed=2)
    side.add_punch("1001", datetime.now() + timedelta(days=3))  # the store rejects it: more than a day ahead
    with (
        store_server(f"sqlite:///{tmp_path}/store.db", {"opd-1": TOKEN}) as url,
        ZkSimulator(skewed) as front,
        ZkSimulator(side) as back,
    ):
        path = write_gateway_toml(tmp_path, url, TOKEN, {"pintu": (front.port, "tcp"), "samping": (back.port, "tcp")})
        with path.open("a") as toml:
            toml.write("\n[alerts]\ndevice_offline_minutes = 0\n")  # offline is an alert at once
        service = GatewayService(load_model(path, GatewayConfig))
        with running(service):

            def settled() -> bool:
                entry = fleet_entry(url)
                serials = {d.get("serial") for d in devices_of(entry).values()}
                sync = entry["report"]["sync"] if entry else {}
                return serials == {"REPORT00001", "REPORT00002"} and (sync["pending"], sync["rejected"]) == (0, 1)

            # The first report goes at start; the next once the terminals answered (store_report.MIN_GAP_S later).
            wait_for(settled, timeout_s=15, what="both terminals and the backlog in the store's fleet view")
            entry = fleet_entry(url)
            assert entry is not None and not entry["stale"]
            front_view, back_view = devices_of(entry)["pintu"], devices_of(entry)["samping"]
            assert front_view["online"] and back_view["online"] and front_view["kind"] == "zk"
            assert front_view["clock_skew_s"] == pytest.approx(300, abs=5)
            assert (front_view["users"], front_view["records"]) == (3, 5)
            assert abs(back_view["clock_skew_s"]) < 5
            assert entry["report"]["sync"]["oldest_pending_at"] is None
            assert [(a["code"], a["device_id"]) for a in entry["report"]["alerts"]] == [("clock_skew", "pintu")]

            back.stop()  # the side door's terminal goes off the network

            def side_door_down() -> bool:
                entry = fleet_entry(url)
                alerts = [(a["code"], a["device_id"]) for a in entry["report"]["alerts"]] if entry else []
                return not devices_of(entry)["samping"]["online"] and ("device_offline", "samping") in alerts

            wait_for(side_door_down, timeout_s=20, what="samping offline, with its alert, in the fleet view")
            down = devices_of(fleet_entry(url))["samping"]
            assert down["serial"] == "REPORT00002"  # what was last known of it stays shown
            assert down["last_error"] and "\n" not in down["last_error"]
            assert devices_of(fleet_entry(url))["pintu"]["online"]


def test_reports_are_sent_when_due_or_when_a_device_comes_or_goes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with store_server(f"sqlite:///{tmp_path}/store.db", {"opd-1": TOKEN}) as url:
        path = write_gateway_toml(tmp_path, url, TOKEN, {"pintu": (free_port(), "tcp")})
        service = GatewayService(load_model(path, GatewayConfig))
        try:
            reporter = service.reporter
            assert reporter.interval_s == 60  # the default of [store] report_interval_s
            assert reporter.tick(), "the first report goes at once"
            assert not reporter.tick(), "nothing changed and none is due"
            status = service.status["pintu"]
            status.online, status.since = True, datetime.now(UTC)
            assert not reporter.tick(), "a device came, but the last report is too recent"
            monkeypatch.setattr(store_report, "MIN_GAP_S", 0.0)
            assert reporter.tick(), "a device came: reported without waiting for the interval"
            assert not reporter.tick()
            monkeypatch.setattr(reporter, "interval_s", 0.0)
            assert reporter.tick(), "due"
            assert reporter.sent == 3
            assert devices_of(fleet_entry(url))["pintu"]["online"]
        finally:
            service.close()


def test_a_store_that_is_down_costs_one_attempt_per_interval(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()
    path = write_gateway_toml(tmp_path, f"http://127.0.0.1:{port}", TOKEN, {"pintu": (free_port(), "tcp")})
    service = GatewayService(load_model(path, GatewayConfig))
    try:
        assert not service.reporter.tick()  # refused connection: no exception
        status = service.status["pintu"]
        status.online, status.since = True, datetime.now(UTC)
        assert not service.reporter.tick() and service.reporter.sent == 0
    finally:
        service.close()
    assert [r for r in caplog.records if r.levelname in ("WARNING", "ERROR")] == [], "the push job tells of outages"


def _snapshot(**device: Any) -> Snapshot:
    sync = SyncView(
        pending=2, oldest_pending_at=datetime(2026, 1, 5, 0, 58, tzinfo=UTC), rejected=0, quarantined=0,
        last_success=None, unreachable_since=None, last_error="store answered 502:\r\n<html>Bad Gateway</html>",
    )  # fmt: skip
    devices = [DeviceView(id="pintu", kind="zk", online=False, since=datetime(2026, 1, 5, tzinfo=UTC), **device)]
    alerts = [Alert("disk_full", None, "disk full\n(failing for 3 min)", {"minutes": 3, "folder": "/data\x00"})]
    return Snapshot("opd-1", datetime(2026, 1, 5, 1, tzinfo=UTC), devices, sync, alerts)


def test_the_report_is_one_line_text_cut_to_the_contract() -> None:
    report = gateway_report(
        _snapshot(serial="SN\x00\x01123", last_error="pyzk said:\n" + "x" * 2000, readers=[f"r{n}" for n in range(30)])
    )
    device = report.devices[0]
    assert device.serial == "SN 123"
    assert device.last_error is not None and len(device.last_error) == 500 and "\n" not in device.last_error
    assert device.last_error.startswith("pyzk said: xxx") and device.last_error.endswith("…")
    assert len(device.readers) == 20
    assert report.sync.last_error == "store answered 502: <html>Bad Gateway</html>"
    assert report.alerts[0].message == "disk full (failing for 3 min)"
    assert report.alerts[0].values == {"minutes": 3.0, "folder": "/data"}
    assert report.sync.oldest_pending_at == datetime(2026, 1, 5, 0, 58, tzinfo=UTC)


def test_a_non_finite_reading_is_left_out_not_the_whole_report() -> None:
    report = gateway_report(_snapshot(clock_skew_s=float("nan"), percent_used=float("inf")))
    assert (report.devices[0].clock_skew_s, report.devices[0].percent_used) == (None, None)
