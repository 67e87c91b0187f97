"""The whole path: simulated terminals -> gateway buffer -> store -> feed, with real sockets and databases."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from ekinerja.config.gateway import GatewayConfig
from ekinerja.config.loader import load_model
from ekinerja.drivers.sim.zk_device import ZkDevice
from ekinerja.drivers.sim.zk_server import ZkSimulator
from ekinerja.gateway.service import GatewayService

from stack import device_punches, feed_punches, read_whole_feed, store_server, write_gateway_toml

TOKEN = "e2e-token-of-opd-1"


def _service(folder: Path, url: str, sims: dict[str, ZkSimulator]) -> GatewayService:
    folder.mkdir(parents=True, exist_ok=True)
    devices = {name: (sim.port, "udp" if sim.protocol == "udp" else "tcp") for name, sim in sims.items()}
    return GatewayService(load_model(write_gateway_toml(folder, url, TOKEN, devices), GatewayConfig))


def test_terminals_to_feed_exactly_once(tmp_path: Path, store_url: str) -> None:
    tcp = ZkDevice.generate(users=15, records=400, record_format=40, serial="E2ETCP0001", seed=1)
    udp = ZkDevice.generate(users=15, records=300, record_format=16, user_format=28, serial="E2EUDP0001", seed=2)
    with (
        ZkSimulator(tcp, protocol="tcp") as a,
        ZkSimulator(udp, protocol="udp") as b,
        store_server(store_url, {"opd-1": TOKEN}) as url,
    ):
        service = _service(tmp_path / "gw", url, {"pintu-a": a, "pintu-b": b})
        assert all(r is not None for r in service.pull_all().values())
        first = service.sync_once()
        assert (first.accepted, first.duplicate, first.error) == (700, 0, None)

        tcp.add_punch("1003", datetime(2026, 3, 5, 7, 41), punch=0)
        udp.add_punch("1004", datetime(2026, 3, 5, 16, 2), punch=1)
        service.pull_all()
        second = service.sync_once()
        assert (second.accepted, second.duplicate) == (2, 0)
        service.close()

        # A reinstalled gateway (empty buffer) reads both logs again: the store keeps one copy.
        again = _service(tmp_path / "gw2", url, {"pintu-a": a, "pintu-b": b})
        again.pull_all()
        third = again.sync_once()
        again.close()
        assert (third.accepted, third.duplicate) == (0, 702)

        feed = read_whole_feed(url)
    assert feed_punches(feed) == device_punches(tcp, udp)
    assert len(feed) == 702
    seqs = [item.seq for item in feed]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)


def test_bad_record_is_quarantined_and_everything_else_arrives(tmp_path: Path) -> None:
    device = ZkDevice.generate(users=5, records=30, serial="E2EBAD0001", seed=3)
    device.add_bad_date_record("1002", 2026, 4, 31)
    device.add_punch("1002", datetime(2026, 5, 4, 7, 29))
    with ZkSimulator(device) as sim, store_server(f"sqlite:///{tmp_path}/store.db", {"opd-1": TOKEN}) as url:
        service = _service(tmp_path / "gw", url, {"pintu": sim})
        service.pull_all()
        service.sync_once()
        feed = read_whole_feed(url)
        quarantined = service.buffer.quarantined()
        service.close()
    assert feed_punches(feed) == device_punches(device)
    assert len(feed) == 31
    assert [(q.device_id, q.device_serial, q.record_index) for q in quarantined] == [("pintu", "E2EBAD0001", 30)]


def test_service_pushes_new_punches_soon_not_at_the_push_interval(tmp_path: Path) -> None:
    device = ZkDevice.generate(users=5, records=10, serial="E2ESOON001", seed=4)
    with ZkSimulator(device) as sim, store_server(f"sqlite:///{tmp_path}/store.db", {"opd-1": TOKEN}) as url:
        text = write_gateway_toml(tmp_path, url, TOKEN, {"pintu": (sim.port, "tcp")}).read_text()
        config_path = tmp_path / "gateway.toml"
        config_path.write_text(text.replace("push_interval_s = 0.5", "push_interval_s = 300"))
        service = GatewayService(load_model(config_path, GatewayConfig))
        stop = threading.Event()
        runner = threading.Thread(target=service.run, args=(stop,))
        runner.start()
        try:
            wait_until(lambda: len(read_whole_feed(url)) == 10, 10)  # the first push runs at start
            device.add_punch("1002", datetime(2026, 8, 3, 7, 15))
            started = time.monotonic()
            wait_until(lambda: len(read_whole_feed(url)) == 11, 10)
            took = time.monotonic() - started
        finally:
            stop.set()
            runner.join(10)
            service.close()
    assert took < 5, "a new punch waited for the push interval"
    assert not runner.is_alive()


def wait_until(check: Callable[[], bool], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)
