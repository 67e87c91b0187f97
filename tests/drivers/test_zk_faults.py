"""The ZK driver against a misbehaving simulated terminal: every fault is a clear error, never a loss."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from ekinerja.drivers.sim.zk_device import ZkDevice
from ekinerja.drivers.sim.zk_server import ZkSimulator
from ekinerja.drivers.zkteco import LOG_READS_AT_ONCE, DeviceCursor, DeviceUnavailable, ZkDriver

from stack import logged, punch_set, zk_settings


@pytest.mark.parametrize("protocol", ["tcp", "udp"])
def test_a_transfer_dropped_midway_fails_cleanly_and_the_next_poll_reads_everything(protocol: str) -> None:
    device = ZkDevice.generate(users=10, records=3000, seed=1)  # several chunks over either transport
    with ZkSimulator(device) as sim:
        driver = ZkDriver(zk_settings(sim.port, protocol))
        sim.drop_transfers(1)
        with pytest.raises(DeviceUnavailable, match="pintu"):
            driver.pull(DeviceCursor())
        result = driver.pull(DeviceCursor())
    assert punch_set(result.events) == logged(device) and len(result.events) == 3000


def test_a_slow_terminal_is_read_within_its_timeout_and_named_beyond_it() -> None:
    device = ZkDevice.generate(users=3, records=30, seed=2)
    with ZkSimulator(device) as sim:
        sim.delay_s = 0.2
        assert len(ZkDriver(zk_settings(sim.port)).pull(DeviceCursor()).events) == 30
        sim.delay_s = 1.0
        with pytest.raises(DeviceUnavailable, match=r"pintu \(tcp://127.0.0.1:\d+\)"):
            ZkDriver(zk_settings(sim.port, timeout_s=0.3)).pull(DeviceCursor())


def test_a_restart_during_a_poll_is_an_error_and_the_poll_after_it_reads_on() -> None:
    device = ZkDevice.generate(users=3, records=20, seed=3)
    with ZkSimulator(device) as sim:
        driver = ZkDriver(zk_settings(sim.port))
        first = driver.pull(DeviceCursor())

        def reboot(result: object, session: object) -> None:
            sim.restart(down_s=0.3)
            session.set_time()  # type: ignore[attr-defined]  # on a link the reboot cut

        with pytest.raises(DeviceUnavailable):
            driver.pull(first.cursor, then=reboot)
        with pytest.raises(DeviceUnavailable):  # still booting
            driver.pull(first.cursor)
        new = device.add_punch("1001", datetime(2026, 3, 9, 7, 0))
        deadline = datetime.now() + timedelta(seconds=5)
        while True:
            try:
                after = driver.pull(first.cursor)
                break
            except DeviceUnavailable:
                assert datetime.now() < deadline, "the terminal never came back"
    assert punch_set(after.events) == {(new.user_id, new.timestamp, new.punch)}


def test_a_udp_only_terminal() -> None:
    device = ZkDevice.generate(users=4, records=50, record_format=16, user_format=28, seed=4)
    with ZkSimulator(device, protocol="udp") as sim:
        assert punch_set(ZkDriver(zk_settings(sim.port, "udp")).pull(DeviceCursor()).events) == logged(device)
        with pytest.raises(DeviceUnavailable, match="tcp://"):
            ZkDriver(zk_settings(sim.port, "tcp", timeout_s=0.5)).pull(DeviceCursor())


def test_skew_is_measured_at_every_poll_and_kept_on_each_event() -> None:
    device = ZkDevice.generate(users=3, records=5, seed=5)
    with ZkSimulator(device) as sim:
        driver = ZkDriver(zk_settings(sim.port))
        first = driver.pull(DeviceCursor())
        sim.device.jump_clock(3600)
        device.add_punch("1002")
        second = driver.pull(first.cursor)
    assert abs(first.info.clock_skew_s) < 3 and all(abs(e.clock_skew_s or 0) < 3 for e in first.events)
    assert 3597 <= second.info.clock_skew_s <= 3603
    [late] = second.events
    assert late.clock_skew_s == second.info.clock_skew_s
    # alert (the default): the device's word is kept; the skew travels with the event for the store.
    assert late.occurred_at == late.device_time.replace(tzinfo=ZoneInfo("Asia/Jakarta")).astimezone(UTC)


@pytest.mark.parametrize(("zone", "hours"), [("Asia/Jakarta", 7), ("Asia/Makassar", 8), ("Asia/Jayapura", 9)])
def test_wib_wita_and_wit_terminals(zone: str, hours: int) -> None:
    device = ZkDevice.generate(users=3, records=0, timezone=zone, seed=6)
    punch = device.add_punch("1001")
    with ZkSimulator(device) as sim:
        result = ZkDriver(zk_settings(sim.port, timezone=zone)).pull(DeviceCursor())
    [event] = result.events
    assert abs(result.info.clock_skew_s) < 3, "a terminal on its own zone's time has no skew"
    assert event.timezone == zone and event.device_time == punch.timestamp
    assert event.occurred_at == (punch.timestamp - timedelta(hours=hours)).replace(tzinfo=UTC)


def test_capacity_is_read() -> None:
    device = ZkDevice.generate(users=3, records=97, rec_cap=100, seed=7)
    with ZkSimulator(device) as sim:
        info = ZkDriver(zk_settings(sim.port)).pull(DeviceCursor()).info
    assert (info.records, info.records_capacity) == (97, 100)


def test_a_link_closed_in_the_middle_of_a_chunk_is_an_error_not_a_hang() -> None:
    # Unmodified pyzk would wait for the rest of the chunk forever on this orderly close.
    device = ZkDevice.generate(users=10, records=3000, seed=8)
    with ZkSimulator(device) as sim:
        driver = ZkDriver(zk_settings(sim.port))
        sim.drop_transfers(1, reset=False)
        with pytest.raises(DeviceUnavailable, match="the terminal closed the connection"):
            driver.pull(DeviceCursor())
        assert len(driver.pull(DeviceCursor()).events) == 3000


def test_many_terminals_download_at_once_but_parse_and_store_one_log_at_a_time() -> None:
    devices = [ZkDevice.generate(users=5, records=2000, serial=f"GATE{i:06d}", seed=i) for i in range(6)]
    sims = [ZkSimulator(d).start() for d in devices]
    inside, most, lock = 0, 0, threading.Lock()

    def store(result: object, session: object) -> None:  # the slot is held until the result is stored
        nonlocal inside, most
        with lock:
            inside += 1
            most = max(most, inside)
        time.sleep(0.05)
        with lock:
            inside -= 1

    try:
        threads = [
            threading.Thread(
                target=ZkDriver(zk_settings(sim.port)).pull, args=(DeviceCursor(),), kwargs={"then": store}
            )
            for sim in sims
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    finally:
        for sim in sims:
            sim.stop()
    assert most == LOG_READS_AT_ONCE == 1
