"""Live capture in the running gateway: punches reach the store at once and survive every fault."""

from __future__ import annotations

import time
from pathlib import Path
from zoneinfo import ZoneInfo

from ekinerja.config.gateway import GatewayConfig
from ekinerja.config.loader import load_model
from ekinerja.drivers.sim import zk_protocol as zp
from ekinerja.drivers.sim.zk_device import ZkDevice
from ekinerja.drivers.sim.zk_server import ZkSimulator
from ekinerja.gateway.service import GatewayService

from stack import device_punches, feed_punches, read_whole_feed, running, store_server, wait_for, write_gateway_toml

TOKEN = "live-test-token-1"


def live_service(
    tmp_path: Path, url: str, sims: dict[str, ZkSimulator], extra: str = "", poll_interval_s: float = 120
) -> GatewayService:
    """A gateway reading ``sims`` live; sessions are renewed only every ``poll_interval_s`` (or on silence)."""
    devices = {name: (sim.port, "udp" if sim.protocol == "udp" else "tcp") for name, sim in sims.items()}
    path = write_gateway_toml(
        tmp_path,
        url,
        TOKEN,
        devices,
        poll_interval_s=poll_interval_s,
        device_extra={name: f"live = true\n{extra}" for name in sims},
    )
    return GatewayService(load_model(path, GatewayConfig))


def feed_count(url: str) -> int:
    return len(read_whole_feed(url))


def test_live_punches_reach_the_store_without_polling(tmp_path: Path) -> None:
    device = ZkDevice.generate(users=5, records=30, serial="LIVE000001", seed=1)
    with ZkSimulator(device) as sim, store_server(f"sqlite:///{tmp_path}/store.db", {"opd-1": TOKEN}) as url:
        service = live_service(tmp_path, url, {"pintu": sim})
        with running(service):
            wait_for(lambda: feed_count(url) == 30, what="the first read to reach the store")
            for i in range(4):
                device.add_punch(f"{1001 + i}", punch=i % 2)
            wait_for(lambda: feed_count(url) == 34, what="live punches in the store")
            status = service.status["pintu"]
            assert status.live and status.online and status.live_events == 4
            assert status.last_punch is not None
            # One connection did it all: the live device is not also polled on a schedule.
            assert sim.command_count(zp.CMD_CONNECT) == 1
        assert feed_punches(read_whole_feed(url)) == device_punches(device)


def test_a_restarting_terminal_is_followed_and_nothing_is_missed(tmp_path: Path) -> None:
    device = ZkDevice.generate(users=5, records=10, serial="LIVE000002", seed=2)
    with ZkSimulator(device) as sim, store_server(f"sqlite:///{tmp_path}/store.db", {"opd-1": TOKEN}) as url:
        service = live_service(tmp_path, url, {"pintu": sim})
        with running(service):
            wait_for(lambda: device.listener_count == 1, what="the live session")
            device.add_punch("1001")
            sim.restart(down_s=0.5)
            # Punched on the terminal while the gateway's connection was gone.
            device.extend_records([device.make_record("1002", device.now())])
            wait_for(lambda: device.listener_count == 1 and sim.restarts == 1, what="a new live session")
            device.add_punch("1003")
            wait_for(lambda: feed_count(url) == 13, what="every punch in the store")
            assert service.drivers["pintu"].backoff.failures == 0
        assert feed_punches(read_whole_feed(url)) == device_punches(device)


def test_an_event_layout_the_gateway_does_not_know_is_read_from_the_log(tmp_path: Path) -> None:
    device = ZkDevice.generate(users=5, records=0, serial="LIVE000003", seed=3)
    with ZkSimulator(device) as sim, store_server(f"sqlite:///{tmp_path}/store.db", {"opd-1": TOKEN}) as url:
        sim.live_event_size = 14
        service = live_service(tmp_path, url, {"pintu": sim})
        with running(service):
            wait_for(lambda: device.listener_count == 1, what="the live session")
            device.add_punch("1004")
            wait_for(lambda: feed_count(url) == 1, what="the punch, read from the log")
            assert service.status["pintu"].live_unreadable == 1
        assert feed_punches(read_whole_feed(url)) == device_punches(device)


def test_a_silent_stream_is_renewed_and_catches_up(tmp_path: Path) -> None:
    device = ZkDevice.generate(users=5, records=0, serial="LIVE000004", seed=4)
    with ZkSimulator(device) as sim, store_server(f"sqlite:///{tmp_path}/store.db", {"opd-1": TOKEN}) as url:
        service = live_service(tmp_path, url, {"pintu": sim}, poll_interval_s=1)
        with running(service):
            wait_for(lambda: device.listener_count == 1, what="the live session")
            sim.set_silent(True)  # hung: the connection stays open, nothing comes back
            device.add_punch("1001")
            wait_for(lambda: not service.status["pintu"].online, what="the hung terminal marked offline")
            sim.set_silent(False)
            wait_for(lambda: feed_count(url) == 1, what="the punch made while hung")
            assert service.status["pintu"].online
        assert feed_punches(read_whole_feed(url)) == device_punches(device)


def test_a_wrong_comm_key_is_reported_not_retried_in_a_storm(tmp_path: Path) -> None:
    device = ZkDevice.generate(users=2, records=3, serial="LIVE000005", seed=5)
    with ZkSimulator(device, password=1234) as sim:
        service = live_service(tmp_path, "http://127.0.0.1:9", {"pintu": sim}, extra="password = 4321")
        with running(service):
            wait_for(lambda: service.status["pintu"].last_error is not None, what="the error in the status")
            status = service.status["pintu"]
            assert "comm key refused" in (status.last_error or "") and not status.online
            # Not retried before max_backoff_s (300 s), where an unreachable terminal waits 1 to 2 s.
            assert service.drivers["pintu"].backoff.next_attempt - time.monotonic() > 290


def test_live_punches_after_the_clock_is_set_carry_the_new_skew(tmp_path: Path) -> None:
    device = ZkDevice.generate(users=3, records=0, serial="LIVE000006", seed=6, clock_offset_s=900)
    with ZkSimulator(device) as sim:
        extra = 'clock_policy = "correct"\nclock_threshold_s = 60\nquiet_minutes = 0'
        service = live_service(tmp_path, "http://127.0.0.1:9", {"pintu": sim}, extra=extra)
        with running(service):
            wait_for(lambda: device.listener_count == 1, what="the live session")
            assert abs(device.clock_offset_s) < 5, "the drifted clock was not set"
            punch = device.add_punch("1001")
            wait_for(lambda: service.buffer.backlog().pending == 1, what="the live punch")
            [pending] = service.buffer.pending(10)
    event = pending.event
    assert event.clock_skew_s is not None and abs(event.clock_skew_s) < 5
    # Stamped by the corrected clock, so corrected by (almost) nothing.
    local = punch.timestamp.replace(tzinfo=ZoneInfo("Asia/Jakarta"))
    assert abs((event.occurred_at - local).total_seconds()) < 5


def test_a_terminal_refusing_to_set_its_clock_still_captures_live(tmp_path: Path) -> None:
    device = ZkDevice.generate(users=3, records=0, serial="LIVE000007", seed=7, clock_offset_s=900)
    with ZkSimulator(device) as sim:
        sim.refuse(zp.CMD_SET_TIME)
        extra = 'clock_policy = "correct"\nclock_threshold_s = 60\nquiet_minutes = 0'
        service = live_service(tmp_path, "http://127.0.0.1:9", {"pintu": sim}, extra=extra)
        with running(service):
            wait_for(lambda: device.listener_count == 1, what="the live session despite the refusal")
            device.add_punch("1002")
            wait_for(lambda: service.buffer.backlog().pending == 1, what="the live punch")
            status = service.status["pintu"]
            assert status.online and "could not set its clock" in (status.last_error or "")
            assert sim.command_count(zp.CMD_CONNECT) == 1, "the session was torn down over the clock"
            assert service.drivers["pintu"].backoff.failures == 0


def test_a_terminal_refusing_live_events_is_read_and_backs_off(tmp_path: Path) -> None:
    device = ZkDevice.generate(users=3, records=12, serial="LIVE000008", seed=8)
    with ZkSimulator(device) as sim:
        sim.refuse(zp.CMD_REG_EVENT)
        service = live_service(tmp_path, "http://127.0.0.1:9", {"pintu": sim})
        with running(service):
            wait_for(lambda: service.status["pintu"].last_error is not None, what="the refusal in the status")
            status = service.status["pintu"]
            assert "refused live events" in (status.last_error or "") and "live = false" in (status.last_error or "")
            assert service.buffer.backlog().pending == 12, "the log read before the refusal is kept"
            wait_for(lambda: service.drivers["pintu"].backoff.failures >= 2, what="a second, later attempt")
            backoff = service.drivers["pintu"].backoff
            assert backoff.next_attempt > time.monotonic(), "retried without waiting"


def test_a_silent_udp_stream_after_a_restart_is_renewed(tmp_path: Path) -> None:
    # Over UDP a restarted terminal closes nothing: only the silence tells.
    device = ZkDevice.generate(users=5, records=3, serial="LIVE000009", seed=9)
    with ZkSimulator(device, protocol="udp") as sim:
        # Renewed on silence, long before poll_interval_s (120 s).
        service = live_service(tmp_path, "http://127.0.0.1:9", {"pintu": sim}, extra="live_silence_s = 1")
        with running(service):
            wait_for(lambda: device.listener_count == 1, what="the live session")
            sessions = sim.command_count(zp.CMD_REG_EVENT)
            sim.restart(down_s=0.2)
            device.extend_records([device.make_record("1002", device.now())])  # punched while it rebooted
            wait_for(lambda: sim.command_count(zp.CMD_REG_EVENT) > sessions, what="a new live session")
            wait_for(lambda: device.listener_count == 1, what="its subscription")
            device.add_punch("1003")
            wait_for(lambda: service.buffer.backlog().pending == 5, what="every punch, live or from the log")
            assert service.status["pintu"].live_events >= 1
