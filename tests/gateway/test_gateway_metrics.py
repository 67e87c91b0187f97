"""The gateway's metrics parse with prometheus_client's own parser and move when punches arrive."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from ekinerja.config.gateway import GatewayConfig
from ekinerja.config.loader import load_model
from ekinerja.drivers.sim.zk_device import ZkDevice
from ekinerja.drivers.sim.zk_server import ZkSimulator
from ekinerja.gateway.service import GatewayService

from stack import free_port, store_server, write_gateway_toml

TOKEN = "metrics-test-token"


def samples(service: GatewayService) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(service.metrics.registry).decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_metrics_follow_punches_and_pushes(tmp_path: Path) -> None:
    device = ZkDevice.generate(users=3, records=10, seed=7, clock_offset_s=42, rec_cap=40)
    with ZkSimulator(device) as sim, store_server(f"sqlite:///{tmp_path}/s.db", {"opd-1": TOKEN}) as url:
        service = GatewayService(
            load_model(write_gateway_toml(tmp_path, url, TOKEN, {"pintu": (sim.port, "tcp")}), GatewayConfig)
        )
        try:
            before = samples(service)
            assert before[("ekinerja_gateway_device_up", (("device", "pintu"), ("kind", "zk")))] == 0
            assert before[("ekinerja_gateway_backlog_events", ())] == 0
            service.pull_all()
            pulled = samples(service)
            assert pulled[("ekinerja_gateway_device_up", (("device", "pintu"), ("kind", "zk")))] == 1
            assert pulled[("ekinerja_gateway_punches_total", (("device", "pintu"), ("source", "zk")))] == 10
            assert pulled[("ekinerja_gateway_backlog_events", ())] == 10
            assert 40 <= pulled[("ekinerja_gateway_device_clock_skew_seconds", (("device", "pintu"),))] <= 44
            assert pulled[("ekinerja_gateway_device_log_used_ratio", (("device", "pintu"),))] == 0.25
            service.push_now()
            pushed = samples(service)
            assert pushed[("ekinerja_gateway_backlog_events", ())] == 0
            assert pushed[("ekinerja_gateway_pushed_events_total", (("outcome", "accepted"),))] == 10
            assert pushed[("ekinerja_gateway_push_seconds_count", ())] == 1
            assert pushed[("ekinerja_gateway_store_reachable", ())] == 1
            device.add_punch("1001")
            service.pull_all()
            assert samples(service)[("ekinerja_gateway_punches_total", (("device", "pintu"), ("source", "zk")))] == 11
        finally:
            service.close()


def test_an_idle_gateway_still_sees_the_store_come_and_go(tmp_path: Path) -> None:
    port = free_port()
    path = write_gateway_toml(tmp_path, f"http://127.0.0.1:{port}", TOKEN, {})
    service = GatewayService(load_model(path, GatewayConfig))
    try:
        assert service.snapshot().sync.store_reachable is None  # never asked yet
        service.push_now()  # nothing to send: the store is asked all the same
        down = service.snapshot().sync
        assert down.store_reachable is False and down.last_error and "unreachable" in down.last_error
        with store_server(f"sqlite:///{tmp_path}/s.db", {"opd-1": TOKEN}, port=port):
            service.pusher._probed_at = 0.0  # the next run may ask again (it asks once a minute)
            service.push_now()
            up = service.snapshot().sync
        assert up.store_reachable is True and up.last_success is None  # reachable, yet nothing was pushed
    finally:
        service.close()
