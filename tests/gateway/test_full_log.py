"""Full logs: the clearing rule, and clearing a real (simulated) terminal only when nothing can be lost."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from ekinerja.config.gateway import GatewayConfig
from ekinerja.config.loader import load_model
from ekinerja.drivers.sim.zk_device import ZkDevice
from ekinerja.drivers.sim.zk_server import ZkSimulator
from ekinerja.drivers.zkteco import ClearOutcome, DeviceCursor, DeviceSession, PullResult, ZkDriver, ZkSettings
from ekinerja.gateway.log_policy import should_clear_log
from ekinerja.gateway.service import GatewayService

from stack import device_punches, feed_punches, read_whole_feed, store_server, write_gateway_toml

TOKEN = "full-log-token-1"


@pytest.mark.parametrize(
    ("at_percent", "records", "capacity", "all_read", "unacknowledged", "expected"),
    [
        (None, 100, 100, True, 0, False),  # off by default
        (80, 79, 100, True, 0, False),  # not full enough
        (80, 80, 100, True, 0, True),
        (80, 95, 100, False, 0, False),  # records on the terminal the gateway has not read
        (80, 95, 100, True, 1, False),  # a punch the store has not acknowledged (pending or rejected)
        (80, 0, 0, True, 0, False),  # a terminal that reports no capacity
        (90, 90_000, 100_000, True, 0, True),
    ],
)
def test_when_a_log_is_cleared(
    at_percent: float | None, records: int, capacity: int, all_read: bool, unacknowledged: int, expected: bool
) -> None:
    # The buffer must also be writable: the keeper asks last (test_disk_full).
    decided = should_clear_log(
        at_percent=at_percent, records=records, capacity=capacity, all_read=all_read, unacknowledged=unacknowledged
    )
    assert decided is expected


def service_for(tmp_path: Path, url: str, sim: ZkSimulator, extra: str) -> GatewayService:
    path = write_gateway_toml(tmp_path, url, TOKEN, {"pintu": (sim.port, "tcp")}, device_extra={"pintu": extra})
    return GatewayService(load_model(path, GatewayConfig))


def test_a_full_log_is_cleared_once_the_store_has_every_record(tmp_path: Path) -> None:
    device = ZkDevice.generate(users=4, records=85, rec_cap=100, serial="FULL000001", seed=1)
    before = device_punches(device)
    with ZkSimulator(device) as sim, store_server(f"sqlite:///{tmp_path}/store.db", {"opd-1": TOKEN}) as url:
        service = service_for(tmp_path, url, sim, "clear_log_at_percent = 80")
        service.pull_device("pintu")
        assert device.record_count == 85, "cleared before the store had the punches"
        assert service.status["pintu"].log_percent == 85.0
        assert service.sync_once().accepted == 85
        service.pull_device("pintu")
        assert device.record_count == 0, "not cleared once everything was acknowledged"
        (clear,) = service.buffer.log_clears()
        assert clear[:3] == ("pintu", "FULL000001", 85)
        assert service.status["pintu"].last_log_clear is not None
        assert service.buffer.cursor("pintu").record_count == 0
        # Punches after the clear are read as usual, and nothing already sent comes back.
        device.add_punch("1002", datetime(2026, 4, 1, 7, 30))
        service.pull_device("pintu")
        assert service.sync_once().accepted == 1
        after = device_punches(device)
        service.close()
        feed = read_whole_feed(url)
    assert feed_punches(feed) == before + after and len(feed) == 86


def test_an_unacknowledged_punch_keeps_the_log(tmp_path: Path) -> None:
    device = ZkDevice.generate(users=4, records=90, rec_cap=100, serial="FULL000002", seed=2)
    with ZkSimulator(device) as sim:
        service = service_for(tmp_path, "http://127.0.0.1:9", sim, "clear_log_at_percent = 80")
        service.pull_device("pintu")
        pending = service.buffer.pending(100)
        service.buffer.acknowledge([p.seq for p in pending[1:]])
        service.buffer.reject({pending[0].seq: "refused by the store"})  # one the store refused
        service.pull_device("pintu")
        assert device.record_count == 90 and service.buffer.log_clears() == []
        service.close()


def test_a_log_is_never_cleared_when_the_policy_is_off(tmp_path: Path) -> None:
    device = ZkDevice.generate(users=4, records=99, rec_cap=100, serial="FULL000003", seed=3)
    with ZkSimulator(device) as sim:
        service = service_for(tmp_path, "http://127.0.0.1:9", sim, "")
        service.pull_device("pintu")
        service.buffer.acknowledge([p.seq for p in service.buffer.pending(1000)])
        service.pull_device("pintu")
        assert device.record_count == 99 and service.status["pintu"].log_percent == 99.0
        service.close()


def test_a_punch_during_the_clear_cancels_it() -> None:
    device = ZkDevice.generate(users=4, records=10, seed=4)
    with ZkSimulator(device) as sim:
        driver = ZkDriver(ZkSettings(gateway_id="opd-1", device_id="pintu", host="127.0.0.1", port=sim.port))

        def clear_with_one_more_punch(result: PullResult, session: DeviceSession) -> None:
            device.add_punch("1001", datetime(2026, 4, 1, 7, 0))  # after the read, before the clear
            assert session.clear_log(result.cursor) is ClearOutcome.PUNCHED

        driver.pull(DeviceCursor(), then=clear_with_one_more_punch)
    assert device.record_count == 11 and device.enabled


def test_a_log_cleared_by_someone_else_or_a_replaced_terminal_loses_and_doubles_nothing(tmp_path: Path) -> None:
    device = ZkDevice.generate(users=4, records=30, serial="FULL000004", seed=5)
    with ZkSimulator(device) as sim, store_server(f"sqlite:///{tmp_path}/store.db", {"opd-1": TOKEN}) as url:
        service = service_for(tmp_path, url, sim, "")
        service.pull_device("pintu")
        seen = device_punches(device)
        device.clear_attendance()  # by someone at the terminal's menu
        for minute in range(40):  # refilled past the old count: only the last record's bytes tell
            device.add_punch("1003", datetime(2026, 4, 2, 7, minute))
        service.pull_device("pintu")
        seen += device_punches(device)
        replacement = ZkDevice.generate(users=4, records=12, serial="FULL000099", seed=6)
        sim.device.serial = replacement.serial  # the same address, now a new terminal's log
        device.clear_attendance()
        device.extend_records(replacement.records)
        service.pull_device("pintu")
        seen += device_punches(device)
        service.sync_once()
        service.pull_device("pintu")
        assert service.sync_once().accepted == 0
        service.close()
        feed = read_whole_feed(url)
    assert len(feed) == 30 + 40 + 12 and feed_punches(feed) == seen


def test_a_log_refilled_to_the_same_count_is_read_not_cleared(tmp_path: Path) -> None:
    device = ZkDevice.generate(users=4, records=50, rec_cap=60, serial="FULL000005", seed=7)
    made = device_punches(device)
    with ZkSimulator(device) as sim, store_server(f"sqlite:///{tmp_path}/store.db", {"opd-1": TOKEN}) as url:
        service = service_for(tmp_path, url, sim, "clear_log_at_percent = 80")
        service.pull_device("pintu")
        service.sync_once()
        device.clear_attendance()  # at the terminal's menu, then as many punches as before
        for minute in range(50):
            device.add_punch("1004", datetime(2026, 4, 3, 7, minute))
        made += device_punches(device)
        service.pull_device("pintu")  # same serial, same count: only the clear's check can tell
        assert device.record_count == 50 and service.buffer.log_clears() == []
        service.pull_device("pintu")  # read whole, as the check asked
        service.sync_once()
        service.pull_device("pintu")  # now every punch on it is in the store: cleared
        assert device.record_count == 0 and len(service.buffer.log_clears()) == 1
        service.close()
        feed = read_whole_feed(url)
    assert feed_punches(feed) == made


def test_a_full_log_that_overwrites_its_oldest_records_is_read_at_every_poll(tmp_path: Path) -> None:
    device = ZkDevice.generate(users=4, records=30, rec_cap=30, serial="FULL000006", seed=8)
    device.overwrite_when_full = "shift"
    made = device_punches(device)
    with ZkSimulator(device) as sim, store_server(f"sqlite:///{tmp_path}/store.db", {"opd-1": TOKEN}) as url:
        service = service_for(tmp_path, url, sim, "")
        service.pull_device("pintu")
        for minute in range(5):  # the count stays at 30
            made[(device.serial, "1002", device.add_punch("1002", datetime(2026, 4, 4, 7, minute)).timestamp, 0)] += 1
            service.pull_device("pintu")
        assert device.record_count == 30
        service.sync_once()
        service.close()
        feed = read_whole_feed(url)
    assert feed_punches(feed) == made


def test_a_full_log_overwritten_in_place_is_read_and_then_cleared_without_loss(tmp_path: Path) -> None:
    # The new punch takes the oldest one's slot: count and last record stay as they were.
    device = ZkDevice.generate(users=4, records=30, rec_cap=30, serial="FULL000007", seed=9)
    device.overwrite_when_full = "in place"
    made = device_punches(device)
    with ZkSimulator(device) as sim, store_server(f"sqlite:///{tmp_path}/store.db", {"opd-1": TOKEN}) as url:
        service = service_for(tmp_path, url, sim, "clear_log_at_percent = 100")
        service.pull_device("pintu")
        service.sync_once()
        new = device.add_punch("1003", datetime(2026, 4, 5, 7, 0))
        made[(device.serial, new.user_id, new.timestamp, new.punch)] += 1
        service.pull_device("pintu")  # reads the overwritten slot: the clear must wait for the store
        assert device.record_count == 30 and service.buffer.log_clears() == []
        service.sync_once()
        service.pull_device("pintu")
        assert device.record_count == 0 and len(service.buffer.log_clears()) == 1
        service.close()
        feed = read_whole_feed(url)
    assert feed_punches(feed) == made
