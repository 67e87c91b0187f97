"""The gateway's disk full: a clear error and alert, no device log cleared, every punch read again after.

The data folder is a real tmpfs of a few MB, filled to the last byte by a file, so SQLite's own
writes fail with SQLITE_FULL; the terminals are the project's simulator over real sockets.
"""

from __future__ import annotations

import errno
import logging
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from ekinerja.config.gateway import GatewayConfig, PcscDevice
from ekinerja.config.loader import load_model
from ekinerja.drivers.card_reader import CardFeedback
from ekinerja.drivers.sim import zk_protocol as zp
from ekinerja.drivers.sim.zk_device import ZkDevice
from ekinerja.drivers.sim.zk_server import ZkSimulator
from ekinerja.gateway.buffer import Buffer, BufferUnusable
from ekinerja.gateway.buffer_writes import BufferWriteFailed
from ekinerja.gateway.card_keeper import CardReaderKeeper
from ekinerja.gateway.commands import handle
from ekinerja.gateway.service import BUFFER_FILE, GatewayService
from ekinerja.sync.contract import Punch, PunchEvent, Source, Subject, Verify

from stack import (
    device_punches,
    feed_punches,
    make_events,
    read_whole_feed,
    running,
    store_server,
    wait_for,
    write_gateway_toml,
)

TOKEN = "disk-full-token-1"


@contextmanager
def small_disk(folder: Path, size: str = "8m") -> Iterator[Path]:
    """A tmpfs of ``size`` on ``folder`` for the block. Needs root: a test that cannot mount it fails."""
    folder.mkdir(parents=True, exist_ok=True)
    mount = ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(folder)]
    done = subprocess.run(mount, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.fail(
            f"these tests need a small disk of their own: `{' '.join(mount)}` failed "
            f"({done.stderr.strip() or f'exit {done.returncode}'}); run them as root",
            pytrace=False,
        )
    try:
        yield folder
    finally:
        if subprocess.run(["umount", str(folder)], capture_output=True, check=False).returncode != 0:
            subprocess.run(["umount", "--lazy", str(folder)], check=True)
            raise AssertionError(f"{folder} was still in use at the end: a file of the gateway left open")


def fill(folder: Path) -> Path:
    """Fill the disk of ``folder`` to the last byte with a file; returns that file."""
    filler = folder / "filler"
    with filler.open("ab", buffering=0) as f:
        for size in (1 << 20, 1 << 12, 1):
            block = bytes(size)
            while True:
                try:
                    f.write(block)
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC, exc
                    break
    assert shutil.disk_usage(folder).free == 0
    return filler


def logged(caplog: pytest.LogCaptureFixture, level: int, *parts: str) -> list[str]:
    """The messages at ``level`` or above that contain every one of ``parts``."""
    return [r.getMessage() for r in caplog.records if r.levelno >= level and all(p in r.getMessage() for p in parts)]


def test_a_full_disk_loses_no_punch_and_clears_no_log(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    # A polled terminal whose log the policy clears from 50% (only once the store has every punch),
    # and a live one: while the disk is full both keep punching.
    polled = ZkDevice.generate(users=5, records=30, rec_cap=100, serial="DISKFULL01", seed=11)
    live = ZkDevice.generate(users=5, records=20, serial="DISKFULL02", seed=12)
    with (
        small_disk(tmp_path / "data") as data,
        ZkSimulator(polled) as polled_sim,
        ZkSimulator(live) as live_sim,
        store_server(f"sqlite:///{tmp_path}/store.db", {"opd-1": TOKEN}) as url,
    ):
        service = polled_and_live_gateway(tmp_path, url, polled_sim, live_sim)
        with running(service):
            before = device_punches(polled, live)
            wait_for(lambda: feed_punches(read_whole_feed(url)) == before, what="the first reads in the store")
            wait_for(lambda: live.listener_count == 1, what="the live session")
            filler = fill(data)
            full_since = time.monotonic()
            connects = live_sim.command_count(zp.CMD_CONNECT)

            live.add_punch("1001", datetime(2026, 9, 1, 7, 0))  # comes through the live stream
            wait_for(lambda: logged(caplog, logging.WARNING, "samping: a live punch not stored"), what="live miss")
            day = datetime(2026, 9, 2, 7, 0)
            for i in range(25):  # 55 records of 100: the policy would clear it, were they stored
                polled.add_punch(str(1001 + i % 5), day + timedelta(minutes=i))
            for i in range(3):
                live.add_punch(str(1002 + i), day + timedelta(minutes=i))
            expected = device_punches(polled, live)
            failure = service.buffer.write_failure
            assert failure is not None and failure.disk_full
            failed = failure.failures
            wait_for(lambda: _failures(service) >= failed + 4, what="more attempts to store them, all refused")

            _assert_told_and_nothing_changed(service, caplog, data, url, before)
            assert polled.record_count == 55 and service.buffer.log_clears() == [], "a log was cleared while full"
            # Not spinning: the live terminal is tried again after 2, 4, 8... s, not at once and again.
            seconds = time.monotonic() - full_since
            assert live_sim.command_count(zp.CMD_CONNECT) - connects <= seconds / 2 + 3

            filler.unlink()
            wait_for(lambda: feed_punches(read_whole_feed(url)) == expected, what="every punch made while full")
            wait_for(lambda: service.buffer.log_clears() != [], what="the full log cleared once all is acknowledged")
            assert service.buffer.write_failure is None
            assert not [a for a in service.snapshot().alerts if a.code == "disk_full"]
        feed = read_whole_feed(url)
    assert feed_punches(feed) == expected and len(feed) == sum(expected.values()), "a punch lost or doubled"
    assert logged(caplog, logging.WARNING, f"{data / BUFFER_FILE} can be written again")
    assert not logged(caplog, logging.ERROR, "unexpected error"), "a job or the live capture hit an unexpected error"
    for device in ("pintu", "samping"):  # however often they were tried, and the free space changed
        told = logged(caplog, logging.WARNING, f"{device}: ", "as the buffer cannot be written")
        assert len(told) == 1, f"{device}: not said once for the whole time the disk was full: {told}"


def polled_and_live_gateway(tmp_path: Path, url: str, polled: ZkSimulator, live: ZkSimulator) -> GatewayService:
    """Terminal pintu polled every second, its log cleared from 50% full; samping captured live.

    The live session is renewed only every minute, so a punch on samping comes through its stream,
    not through the log read that starts each session.
    """
    devices = {"pintu": (polled.port, "tcp"), "samping": (live.port, "tcp")}
    extra = {"pintu": "clear_log_at_percent = 50", "samping": "live = true"}
    path = write_gateway_toml(tmp_path, url, TOKEN, devices, device_extra=extra)
    head, pintu, samping = path.read_text().split("[[devices]]")
    assert 'id = "samping"' in samping and "poll_interval_s = 1\n" in samping
    samping = samping.replace("poll_interval_s = 1\n", "poll_interval_s = 60\n")
    path.write_text("[[devices]]".join([head, pintu, samping]))
    return GatewayService(load_model(path, GatewayConfig))


def _failures(service: GatewayService) -> int:
    failure = service.buffer.write_failure
    return failure.failures if failure else 0


def _assert_told_and_nothing_changed(
    service: GatewayService, caplog: pytest.LogCaptureFixture, data: Path, url: str, before: object
) -> None:
    """The operator is told what, where and what to do: log, alert, status page, metrics; nothing reached the store."""
    told = logged(caplog, logging.ERROR, "the disk is full", str(data / BUFFER_FILE), f"free space in {data}")
    assert len(told) == 1, f"the full disk is logged once, not at every attempt: {told}"
    assert logged(caplog, logging.WARNING, "pintu: ", "as the buffer cannot be written")
    (alert,) = [a for a in service.snapshot().alerts if a.code == "disk_full"]
    assert alert.values["folder"] == str(data) and "free space in" in alert.message
    web = service.web
    assert web is not None
    status = httpx.get(f"{web.url}/api/status", timeout=10).json()
    assert [a["values"]["folder"] for a in status["alerts"] if a["code"] == "disk_full"] == [str(data)]
    assert status["sync"]["buffer_write_failure"]["disk_full"] is True
    assert "ekinerja_gateway_buffer_writable 0.0" in httpx.get(f"{web.url}/metrics", timeout=10).text
    assert service.status["pintu"].online and service.status["samping"].online  # the terminals are fine
    assert "not stored" in (service.status["pintu"].last_error or "")
    assert feed_punches(read_whole_feed(url)) == before, "a punch reached the store without being buffered"


def test_a_log_ready_to_clear_is_not_cleared_while_the_disk_is_full(tmp_path: Path) -> None:
    # Everything read and acknowledged, the log over its threshold: the one moment a clear is allowed,
    # except that neither the clear nor the cursor's rewind could be recorded.
    device = ZkDevice.generate(users=4, records=60, rec_cap=100, serial="DISKFULL03", seed=13)
    with (
        small_disk(tmp_path / "data", size="4m") as data,
        ZkSimulator(device) as sim,
        store_server(f"sqlite:///{tmp_path}/store.db", {"opd-1": TOKEN}) as url,
    ):
        path = write_gateway_toml(
            tmp_path, url, TOKEN, {"pintu": (sim.port, "tcp")}, device_extra={"pintu": "clear_log_at_percent = 50"}
        )
        service = GatewayService(load_model(path, GatewayConfig))
        try:
            assert service.pull_device("pintu") is not None and service.sync_once().accepted == 60
            filler = fill(data)
            assert service.pull_device("pintu", force=True) is not None  # nothing new to store: the read succeeds
            assert device.record_count == 60, "cleared while neither the clear nor the rewind could be recorded"
            assert service.buffer.log_clears() == [] and service.buffer.write_failure is not None
            filler.unlink()
            service.pull_device("pintu", force=True)
            assert device.record_count == 0 and len(service.buffer.log_clears()) == 1
        finally:
            service.close()


def test_writes_fail_cleanly_on_a_full_disk_and_work_again_after(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with small_disk(tmp_path / "data", size="2m") as data:
        buffer = Buffer(data / BUFFER_FILE)
        buffer.append(make_events(100))
        woken: list[bool] = []

        def wake() -> None:
            woken.append(True)
            raise RuntimeError("a hook that fails")

        buffer.on_writable = wake
        filler = fill(data)
        for first in (100, 200):
            with pytest.raises(BufferWriteFailed, match=rf"the disk is full .* free space in {re.escape(str(data))}"):
                buffer.append(make_events(100, first=first))
        with pytest.raises(BufferWriteFailed):
            buffer.acknowledge([p.seq for p in buffer.pending(10)])
        assert buffer.write_failure is not None and buffer.write_failure.failures == 3
        assert buffer.backlog().pending == 100 and buffer.backlog().acked == 0, "reads go on, nothing half-written"
        filler.unlink()
        # Stored: the hook's failure is logged, and must not make the caller think otherwise.
        assert buffer.append(make_events(100, first=100)) == 100
        assert buffer.write_failure is None and woken == [True] and buffer.backlog().pending == 200
        assert logged(caplog, logging.ERROR, "can be written again, but")
        buffer.close()


def test_a_gateway_started_on_a_full_disk_says_so(tmp_path: Path) -> None:
    with small_disk(tmp_path / "data", size="2m") as data:
        Buffer(data / BUFFER_FILE).close()  # closed cleanly: opening it again needs a little room
        filler = fill(data)
        where = re.escape(str(data))
        with pytest.raises(BufferUnusable, match=rf"the disk is full .* free space in {where} .*start the gateway"):
            Buffer(data / BUFFER_FILE)
        config = write_gateway_toml(tmp_path, "http://127.0.0.1:9", TOKEN, {})
        done = subprocess.run(
            [sys.executable, "-m", "ekinerja.cli", "gateway", "run", "--config", str(config)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        filler.unlink()
    assert done.returncode == 1, done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert "the disk is full" in line and f"free space in {data}" in line and "Traceback" not in line


def test_a_card_tap_on_a_full_disk_is_refused_not_lost_silently(tmp_path: Path) -> None:
    device = PcscDevice(id="kartu", kind="pcsc", reader="Virtual PCD")
    with small_disk(tmp_path / "data", size="2m") as data:
        buffer = Buffer(data / BUFFER_FILE)
        keeper = CardReaderKeeper(device, buffer, lambda uid: True, lambda: None)
        buffer.append(make_events(50))
        filler = fill(data)
        with pytest.raises(BufferWriteFailed):  # the driver then shows the error light and logs "NOT stored"
            keeper.punched(_tap("04A1B2C3", 0), "Virtual PCD 00 00")
        assert keeper.status.not_stored == 1 and keeper.status.punches == 0
        filler.unlink()
        assert keeper.punched(_tap("04A1B2C3", 1), "Virtual PCD 00 00") is CardFeedback.ACCEPTED
        assert buffer.backlog().pending_by_device["kartu"] == 1
        buffer.close()


def test_a_full_disk_stops_the_downloads_that_could_not_be_stored(tmp_path: Path) -> None:
    # While the buffer cannot be written, a poll tries one write before it downloads the log: a log
    # downloaded now would be thrown away at once.
    device = ZkDevice.generate(users=4, records=40, serial="DISKFULL04", seed=14)
    with small_disk(tmp_path / "data", size="2m") as data, ZkSimulator(device) as sim:
        config = write_gateway_toml(tmp_path, "http://127.0.0.1:9", TOKEN, {"pintu": (sim.port, "tcp")})
        service = GatewayService(load_model(config, GatewayConfig))
        with running(service):
            wait_for(lambda: service.buffer.backlog().pending == 40, what="the first read")
            filler = fill(data)
            device.add_punch("1001", datetime(2026, 9, 3, 7, 0))
            wait_for(lambda: service.keepers["pintu"].waiting_for_room, what="the new punch not stored")
            downloads = sim.command_count(zp.CMD_PREPARE_BUFFER)
            wait_for(_polls(service, "pintu", 2), what="two more polls")
            assert sim.command_count(zp.CMD_PREPARE_BUFFER) == downloads, "downloaded while it cannot be stored"
            filler.unlink()
            wait_for(lambda: service.buffer.backlog().pending == 41, what="the punch read once there is room")


def _polls(service: GatewayService, device_id: str, count: int) -> Callable[[], bool]:
    """A condition: the device was polled ``count`` more times since it was made."""
    seen = [service.status[device_id].last_poll]

    def polled() -> bool:
        if service.status[device_id].last_poll != seen[-1]:
            seen.append(service.status[device_id].last_poll)
        return len(seen) > count

    return polled


def test_the_full_disk_alert_clears_by_itself_on_a_quiet_night(tmp_path: Path) -> None:
    # No terminal, no punch: nothing else would write to find out there is room again.
    with small_disk(tmp_path / "data", size="2m") as data:
        config = write_gateway_toml(tmp_path, "http://127.0.0.1:9", TOKEN, {})
        service = GatewayService(load_model(config, GatewayConfig))
        with running(service):
            filler = fill(data)
            with pytest.raises(BufferWriteFailed):
                service.buffer.append([_tap("04A1B2C3", 0)])
            assert "disk_full" in [a.code for a in service.snapshot().alerts]
            filler.unlink()
            wait_for(lambda: service.buffer.write_failure is None, what="the failure cleared with nothing to write")
            assert "disk_full" not in [a.code for a in service.snapshot().alerts]
            assert service.web is not None
            assert "ekinerja_gateway_buffer_writable 1.0" in httpx.get(f"{service.web.url}/metrics", timeout=10).text


def test_set_time_on_a_full_disk_says_the_clock_was_set_but_not_recorded(tmp_path: Path) -> None:
    device = ZkDevice.generate(users=2, records=5, serial="DISKFULL05", seed=15, clock_offset_s=-600)
    with small_disk(tmp_path / "data", size="2m") as data, ZkSimulator(device) as sim:
        config = write_gateway_toml(tmp_path, "http://127.0.0.1:9", TOKEN, {"pintu": (sim.port, "tcp")})
        service = GatewayService(load_model(config, GatewayConfig))
        try:
            assert service.pull_device("pintu") is not None
            filler = fill(data)  # the next read has nothing new to store: only the record of the clock set fails
            answer = handle(service, "set-time", b'{"device": "pintu"}')
            filler.unlink()
        finally:
            service.close()
    assert answer["ok"] is True and abs(device.clock_offset_s) <= 2, answer
    assert answer["recorded"] is False and abs(answer["skew_after_s"]) <= 2
    assert answer["warning"].startswith("the clock was set, but the buffer could not record it")
    assert "the disk is full" in answer["warning"]


def _tap(uid: str, second: int) -> PunchEvent:
    return PunchEvent.create(
        gateway_id="opd-1",
        device_id="kartu",
        device_serial=None,
        source=Source.PCSC,
        verify=Verify.CARD,
        subject=Subject(card_uid=uid),
        punch=Punch.IN,
        device_time=datetime(2026, 9, 1, 7, 0, second),
        timezone="Asia/Jakarta",
        captured_at=datetime.now(UTC),
    )
