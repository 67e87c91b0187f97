"""The gateway service's wiring: device backoff, and a hung store that must not hold up polling."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from datetime import datetime
from pathlib import Path

from ekinerja.config.gateway import GatewayConfig
from ekinerja.config.loader import load_model
from ekinerja.drivers.sim.zk_device import ZkDevice
from ekinerja.drivers.sim.zk_server import ZkSimulator
from ekinerja.gateway.service import GatewayService

from stack import free_port, write_gateway_toml

TOKEN = "service-test-token"


def test_unreachable_device_backs_off_then_recovers(tmp_path: Path) -> None:
    port = free_port()
    config = load_model(
        write_gateway_toml(tmp_path, "http://127.0.0.1:9", TOKEN, {"pintu": (port, "tcp")}), GatewayConfig
    )
    service = GatewayService(config)
    driver = service.drivers["pintu"]
    assert service.pull_device("pintu") is None
    status = service.status["pintu"]
    assert not status.online and status.last_error and f"tcp://127.0.0.1:{port}" in status.last_error
    assert driver.backoff.failures == 1 and driver.backoff.next_attempt > time.monotonic()
    assert service.pull_device("pintu") is None and driver.backoff.failures == 1, "retried during the backoff"
    with ZkSimulator(ZkDevice.generate(users=2, records=7, seed=1), port=port, protocol="tcp"):
        driver.backoff.next_attempt = 0
        result = service.pull_device("pintu")
    service.close()
    assert result is not None and len(result.events) == 7
    assert status.online and status.last_error is None and driver.backoff.failures == 0


def test_a_hung_store_never_holds_up_polling(tmp_path: Path) -> None:
    # A store that accepts connections and never answers: each push waits for its timeout.
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(16)
    url = f"http://127.0.0.1:{hole.getsockname()[1]}"
    held: list[socket.socket] = []

    def swallow() -> None:
        with contextlib.suppress(OSError):  # the listening socket is closed at the end
            while True:
                held.append(hole.accept()[0])

    threading.Thread(target=swallow, daemon=True).start()
    device = ZkDevice.generate(users=3, records=5, seed=2)
    with ZkSimulator(device) as sim:
        path = write_gateway_toml(tmp_path, url, TOKEN, {"pintu": (sim.port, "tcp")}, extra_store="timeout_s = 30")
        service = GatewayService(load_model(path, GatewayConfig))
        stop = threading.Event()
        runner = threading.Thread(target=service.run, args=(stop,))
        runner.start()
        try:
            deadline = time.monotonic() + 10
            while service.buffer.backlog().pending < 5:
                assert time.monotonic() < deadline
                time.sleep(0.1)
            while not held:  # the first push has reached the store and hangs there
                assert time.monotonic() < deadline
                time.sleep(0.05)
            for minute in range(3):  # the push is now stuck in its 30 s timeout
                device.add_punch("1001", datetime(2026, 9, 1, 7, minute))
            while service.buffer.backlog().pending < 8:
                assert time.monotonic() < deadline, "polling waited for the hung push"
                time.sleep(0.1)
        finally:
            stop.set()
            for conn in held:  # the hung request fails at once, so the scheduler can stop
                conn.close()
            hole.close()
            runner.join(20)
            service.close()
    assert not runner.is_alive()
