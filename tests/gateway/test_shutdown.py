"""The gateway stops promptly: requests to hung or slow terminals fail at once instead of at their timeout."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from ekinerja.config.gateway import GatewayConfig
from ekinerja.config.loader import load_model
from ekinerja.drivers.sim import zk_protocol as zp
from ekinerja.drivers.sim.zk_device import ZkDevice
from ekinerja.drivers.sim.zk_server import ZkSimulator
from ekinerja.drivers.zkteco import DeviceCursor, DeviceSession, DeviceUnavailable, PullResult, ZkDriver
from ekinerja.gateway.service import GatewayService

from stack import wait_for, write_gateway_toml, zk_settings

TIMEOUT_S = 60  # each request's own timeout: far longer than a stop may take


def test_stop_does_not_wait_for_hung_or_slow_terminals(tmp_path: Path) -> None:
    hung_tcp = ZkSimulator(ZkDevice.generate(users=2, records=5, seed=1)).start()
    hung_udp = ZkSimulator(ZkDevice.generate(users=2, records=5, seed=2)).start()
    slow_live = ZkSimulator(ZkDevice.generate(users=20, records=20_000, seed=3)).start()
    hung_tcp.set_silent(True)
    hung_udp.set_silent(True)
    slow_live.delay_s = 1.0
    ports = {"hung-tcp": (hung_tcp.port, "tcp"), "hung-udp": (hung_udp.port, "udp"), "slow": (slow_live.port, "tcp")}
    extra = {name: f"timeout_s = {TIMEOUT_S}" for name in ports}
    extra["slow"] += "\nlive = true"
    path = write_gateway_toml(tmp_path, "http://127.0.0.1:9", "stop-token-0123", ports, device_extra=extra)
    service = GatewayService(load_model(path, GatewayConfig))
    stop = threading.Event()
    runner = threading.Thread(target=service.run, args=(stop,), daemon=True)
    try:
        runner.start()
        # Every terminal has a request in flight: two connects nobody answers, one slow download.
        wait_for(lambda: service.status["hung-tcp"].last_poll is not None, what="the TCP poll")
        wait_for(lambda: service.status["hung-udp"].last_poll is not None, what="the UDP poll")
        wait_for(lambda: slow_live.command_count(zp.CMD_READ_BUFFER) >= 1, what="the slow download")
        time.sleep(0.2)  # the polls' connect requests are on the wire
        asked = time.monotonic()
        stop.set()
        runner.join(TIMEOUT_S + 30)
        took = time.monotonic() - asked
        assert not runner.is_alive()
        assert took < TIMEOUT_S / 2, f"stopping waited {took:.1f} s for a terminal's timeout"
    finally:
        stop.set()
        runner.join(TIMEOUT_S + 30)
        service.close()
        for sim in (hung_tcp, hung_udp, slow_live):
            sim.stop()


def test_stop_breaks_off_a_clear_on_a_terminal_that_hangs_during_it() -> None:
    device = ZkDevice.generate(users=2, records=10, seed=4)
    with ZkSimulator(device) as sim:
        driver = ZkDriver(zk_settings(sim.port, timeout_s=TIMEOUT_S))

        def clear_on_a_hanging_terminal(result: PullResult, session: DeviceSession) -> None:
            sim.set_silent(True)  # hangs as the clear begins
            threading.Timer(0.3, driver.abort).start()
            session.clear_log(result.cursor)

        asked = time.monotonic()
        with pytest.raises(DeviceUnavailable):
            driver.pull(DeviceCursor(), then=clear_on_a_hanging_terminal)
        took = time.monotonic() - asked
        sim.set_silent(False)
    assert took < TIMEOUT_S / 2, f"the clear held the stop for {took:.1f} s"
    assert device.record_count == 10 and device.enabled, "the terminal's session ended, so it enabled itself"
