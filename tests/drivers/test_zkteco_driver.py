"""The ZK driver through pyzk against the project's simulator, over real TCP and UDP sockets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from ekinerja.drivers.sim.zk_device import ZkDevice
from ekinerja.drivers.sim.zk_server import ZkSimulator
from ekinerja.drivers.zkteco import DeviceCursor, DeviceUnavailable, ZkDriver, ZkSettings
from ekinerja.sync.contract import Punch, Verify

WIB = ZoneInfo("Asia/Jakarta")


def settings(sim: ZkSimulator, **overrides: object) -> ZkSettings:
    args: dict[str, object] = {
        "gateway_id": "opd-1",
        "device_id": "pintu",
        "host": "127.0.0.1",
        "port": sim.port,
        "protocol": "tcp",
        "timeout_s": 3,
    }
    args.update(overrides)
    return ZkSettings(**args)  # type: ignore[arg-type]


def device_log(device: ZkDevice) -> set[tuple[str, datetime, int]]:
    return {(r.user_id, r.timestamp, r.punch) for r in device.records}


def event_log(events: list) -> set[tuple[str, datetime, int]]:  # type: ignore[type-arg]
    punches = list(Punch)
    return {(e.subject.zk_user_id, e.device_time, punches.index(e.punch)) for e in events}


@pytest.mark.parametrize("protocol", ["tcp", "udp"])
@pytest.mark.parametrize(("record_format", "user_format"), [(8, 28), (16, 28), (40, 72)])
@pytest.mark.parametrize("password", [0, 4321])
def test_full_pull_maps_every_record(protocol: str, record_format: int, user_format: int, password: int) -> None:
    device = ZkDevice.generate(users=12, records=300, record_format=record_format, user_format=user_format, seed=3)
    with ZkSimulator(device, protocol="both", password=password) as sim:
        result = ZkDriver(settings(sim, protocol=protocol, password=password)).pull(DeviceCursor())
    assert result.downloaded and result.quarantined == []
    assert len(result.events) == 300
    assert event_log(result.events) == device_log(device)
    cursor = result.cursor
    assert (cursor.serial, cursor.record_count, cursor.last_device_time) == (
        device.serial,
        300,
        device.records[-1].timestamp,
    )
    assert cursor.last_record_sha is not None
    assert result.info.serial == device.serial and result.info.records == 300 and result.info.users == 12
    event = result.events[0]
    assert (event.device_serial, event.gateway_id, event.device_id, event.timezone) == (
        device.serial, "opd-1", "pintu", "Asia/Jakarta",
    )  # fmt: skip
    assert event.occurred_at == event.device_time.replace(tzinfo=WIB).astimezone(UTC)
    assert {e.verify for e in result.events} <= {Verify.FINGERPRINT, Verify.FACE, Verify.CARD, Verify.PASSWORD}


def test_incremental_pull_reads_only_new_records_and_idle_poll_downloads_nothing() -> None:
    device = ZkDevice.generate(users=5, records=50, seed=4)
    with ZkSimulator(device) as sim:
        driver = ZkDriver(settings(sim))
        first = driver.pull(DeviceCursor())
        idle = driver.pull(first.cursor)
        assert not idle.downloaded and len(idle.events) == 0 and idle.cursor == first.cursor
        added = [device.add_punch("1001", datetime(2026, 3, 2, 7, 25 + i), punch=i % 2) for i in range(3)]
        second = driver.pull(first.cursor)
    assert [(e.subject.zk_user_id, e.device_time) for e in second.events] == [(r.user_id, r.timestamp) for r in added]
    assert second.cursor.record_count == 53
    assert {e.event_id for e in second.events}.isdisjoint(e.event_id for e in first.events)


def test_log_cleared_or_device_replaced_is_read_whole() -> None:
    device = ZkDevice.generate(users=5, records=40, seed=5)
    with ZkSimulator(device) as sim:
        driver = ZkDriver(settings(sim))
        first = driver.pull(DeviceCursor())
        device.clear_attendance()
        fresh = [device.add_punch("1002", datetime(2026, 3, 3, 7, 0, i)) for i in range(45)]
        after_clear = driver.pull(first.cursor)  # more records than before, but a different log
        assert len(after_clear.events) == 45
        assert event_log(after_clear.events) == device_log(device)
        replaced = driver.pull(DeviceCursor("OLD-SERIAL", 10, fresh[9].timestamp))
    assert len(replaced.events) == 45


def test_impossible_date_is_quarantined_and_the_rest_delivered() -> None:
    device = ZkDevice.generate(users=5, records=20, seed=6)
    device.add_bad_date_record("1001", 2026, 2, 31)
    device.add_punch("1003", datetime(2026, 3, 4, 7, 31))
    with ZkSimulator(device) as sim:
        result = ZkDriver(settings(sim)).pull(DeviceCursor())
    assert len(result.events) == 21
    assert event_log(result.events) == device_log(device)
    [bad] = result.quarantined
    assert bad.record_index == 20 and "impossible date" in bad.reason and len(bad.raw) == 40
    assert result.cursor.record_count == 22


def test_clock_skew_is_measured_and_applied_by_policy() -> None:
    device = ZkDevice.generate(users=3, records=5, seed=8, clock_offset_s=0)
    device.set_time(datetime.now(WIB).replace(tzinfo=None) + timedelta(minutes=10))
    with ZkSimulator(device) as sim:
        alert = ZkDriver(settings(sim)).pull(DeviceCursor())
        correct = ZkDriver(settings(sim, correct_skew=True)).pull(DeviceCursor())
    assert 598 <= alert.info.clock_skew_s <= 602
    a, c = alert.events[0], correct.events[0]
    assert a.event_id == c.event_id and a.clock_skew_s is not None
    # Corrected in whole seconds: a device clock counts no finer.
    assert a.occurred_at - c.occurred_at == timedelta(seconds=round(c.clock_skew_s or 0))


def test_wrong_comm_key_and_dead_device_give_clear_errors() -> None:
    with ZkSimulator(ZkDevice.generate(users=1, records=1, seed=9), password=1234) as sim:
        with pytest.raises(DeviceUnavailable, match="comm key refused; check `password`"):
            ZkDriver(settings(sim, password=1111)).pull(DeviceCursor())
        port = sim.port
    with pytest.raises(DeviceUnavailable, match=f"pintu \\(udp://127.0.0.1:{port}\\)"):
        ZkDriver(settings(sim, protocol="udp", timeout_s=0.5)).pull(DeviceCursor())
    with pytest.raises(DeviceUnavailable, match="pintu"):
        ZkDriver(settings(sim, timeout_s=0.5)).pull(DeviceCursor())


def test_users_are_listed() -> None:
    device = ZkDevice.generate(users=7, records=0, user_format=28, seed=10)
    with ZkSimulator(device) as sim:
        users = ZkDriver(settings(sim)).read_users()
    assert [(u.uid, u.user_id, u.name) for u in users] == [(u.uid, u.user_id, u.name) for u in device.users]


def test_comm_key_pyzk_cannot_encode_is_a_clear_error() -> None:
    # pyzk overflows on 131071 when the terminal's session id is above 0x7FFF, which the terminal
    # picks: try until it happens, and require that every failure is the clear error.
    failures = []
    with ZkSimulator(ZkDevice.generate(users=1, records=1, seed=9), password=131071) as sim:
        for _ in range(40):
            try:
                ZkDriver(settings(sim, password=131071)).pull(DeviceCursor())
            except DeviceUnavailable as exc:
                failures.append(str(exc))
    assert failures and all("pyzk cannot use this comm key" in f for f in failures)


def test_a_bad_last_record_does_not_force_a_full_read_next_time(caplog: pytest.LogCaptureFixture) -> None:
    device = ZkDevice.generate(users=5, records=200, record_format=8, user_format=28, seed=15)
    device.add_bad_date_record("1001", 2026, 2, 30)
    with ZkSimulator(device) as sim:
        driver = ZkDriver(settings(sim))
        first = driver.pull(DeviceCursor())
        assert len(first.events) == 200 and len(first.quarantined) == 1
        new = device.add_punch("1004", datetime(2026, 3, 9, 7, 12))
        second = driver.pull(first.cursor)
    assert [(e.subject.zk_user_id, e.device_time) for e in second.events] == [(new.user_id, new.timestamp)]
    assert second.quarantined == [] and "reading it whole" not in caplog.text


def test_a_log_that_changes_during_every_download_is_retried_not_misread() -> None:
    device = ZkDevice.generate(users=3, records=30, seed=16)
    with ZkSimulator(device) as sim:
        driver = ZkDriver(settings(sim))
        with driver.connect() as conn:
            driver.read_info(conn)
            real = conn.read_with_buffer

            # The race made certain: a real punch on the real terminal lands during each transfer.
            def growing(*args: object) -> object:
                answer = real(*args)
                device.add_punch("1001")
                return answer

            conn.read_with_buffer = growing
            with pytest.raises(DeviceUnavailable, match="never matched its record count"):
                driver.download_log(conn)
            conn.read_with_buffer = real
            conn.read_sizes()
            body, count = driver.download_log(conn)
    assert count == 33 and len(body) == 33 * 40


def test_an_empty_log_reads_as_nothing() -> None:
    with ZkSimulator(ZkDevice.generate(users=2, records=0, seed=17)) as sim:
        result = ZkDriver(settings(sim)).pull(DeviceCursor())
    assert result.downloaded and len(result.events) == 0 and result.quarantined == []
    assert (result.cursor.serial, result.cursor.record_count) == ("SIM0000000001", 0)
