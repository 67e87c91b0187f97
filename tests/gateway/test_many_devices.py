"""Many terminals at one gateway: read concurrently, and a hung, slow or dead one holds up no other."""

from __future__ import annotations

from pathlib import Path

from ekinerja.config.gateway import GatewayConfig
from ekinerja.config.loader import load_model
from ekinerja.drivers.sim.zk_device import ZkDevice
from ekinerja.drivers.sim.zk_server import ZkSimulator
from ekinerja.gateway.service import GatewayService

from stack import (
    device_punches,
    feed_punches,
    free_port,
    read_whole_feed,
    running,
    store_server,
    wait_for,
    write_gateway_toml,
)

TOKEN = "many-devices-token"
HEALTHY = 20
HUNG_TIMEOUT_S = 60  # far longer than the healthy terminals need


def healthy_in_store(url: str) -> int:
    return sum(1 for item in read_whole_feed(url) if (item.event.device_serial or "").startswith("MANY"))


def test_twenty_terminals_and_a_hung_slow_and_dead_one(tmp_path: Path) -> None:
    devices = [ZkDevice.generate(users=8, records=50, serial=f"MANY{i:06d}", seed=i) for i in range(HEALTHY)]
    hung = ZkDevice.generate(users=3, records=5, serial="HUNG000001", seed=90)
    slow = ZkDevice.generate(users=3, records=5, serial="SLOW000001", seed=91)
    sims = [ZkSimulator(d, protocol="tcp" if i % 3 else "both").start() for i, d in enumerate(devices)]
    hung_sim, slow_sim = ZkSimulator(hung).start(), ZkSimulator(slow).start()
    slow_sim.delay_s = 0.5  # each of its answers
    ports = {f"t{i:02d}": (s.port, "udp" if i % 3 == 0 else "tcp") for i, s in enumerate(sims)}
    ports |= {"hung": (hung_sim.port, "tcp"), "slow": (slow_sim.port, "tcp"), "dead": (free_port(), "tcp")}
    extra = {f"t{i:02d}": "live = true" for i in range(0, HEALTHY, 2)}  # half live, half polled
    extra |= {"hung": f"timeout_s = {HUNG_TIMEOUT_S}", "slow": "timeout_s = 10", "dead": "timeout_s = 10"}
    try:
        with store_server(f"sqlite:///{tmp_path}/store.db", {"opd-1": TOKEN}) as url:
            path = write_gateway_toml(tmp_path, url, TOKEN, ports, poll_interval_s=1, device_extra=extra)
            with running(GatewayService(load_model(path, GatewayConfig))) as service:
                wait_for(lambda: healthy_in_store(url) == HEALTHY * 50, what="every healthy terminal's log")
                wait_for(lambda: service.status["hung"].online, what="the terminal that is about to hang")
                hung_sim.set_silent(True)
                # Whether the poll under way hangs in its goodbye or the next one in its connect:
                # a connection to the hung terminal is open, and will stay open for its timeout.
                hung_driver = service.drivers["hung"]
                wait_for(lambda: hung_driver._conn is not None, what="a request to the hung terminal")
                for device in devices:
                    device.add_punch("1001")
                    device.add_punch("1002", punch=1)
                wait_for(lambda: healthy_in_store(url) == HEALTHY * 52, what="new punches everywhere")
                # All in while the hung terminal still holds its poll: nobody waited for it.
                hung_status = service.status["hung"]
                assert hung_status.online and hung_status.last_error is None
                assert service.drivers["hung"].backoff.failures == 0
                assert not service.status["dead"].online and service.drivers["dead"].backoff.failures >= 1
                assert all(service.drivers[f"t{i:02d}"].backoff.failures == 0 for i in range(HEALTHY))
                wait_for(lambda: len(read_whole_feed(url)) == HEALTHY * 52 + 10, timeout_s=30, what="hung and slow")
            feed = read_whole_feed(url)
    finally:
        for sim in [*sims, hung_sim, slow_sim]:
            sim.stop()
    assert feed_punches(feed) == device_punches(*devices, slow, hung)
