"""The IT team's commands against a real gateway service, simulated terminals and the real store.

The MQTT transport is tested in test_mqtt_bridge.py; here is what each command does, and that a
bad one is answered with an error rather than raised.
"""

from __future__ import annotations

import json
from pathlib import Path

from ekinerja.config.gateway import GatewayConfig
from ekinerja.config.loader import load_model
from ekinerja.drivers.sim.zk_device import ZkDevice
from ekinerja.drivers.sim.zk_server import ZkSimulator
from ekinerja.gateway.commands import handle
from ekinerja.gateway.service import GatewayService

from stack import read_whole_feed, store_server, write_gateway_toml

TOKEN = "command-test-token"
CARD_READER = '\n[[devices]]\nid = "kartu"\nkind = "pcsc"\nreader = "ACR122U"\n'


def service_for(tmp_path: Path, url: str, sims: dict[str, ZkSimulator]) -> GatewayService:
    devices = {name: (sim.port, "tcp") for name, sim in sims.items()}
    path = write_gateway_toml(tmp_path, url, TOKEN, devices)
    path.write_text(path.read_text() + CARD_READER)
    return GatewayService(load_model(path, GatewayConfig))


def test_pull_then_sync_now(tmp_path: Path) -> None:
    a, b = ZkDevice.generate(users=3, records=12, seed=1), ZkDevice.generate(users=3, records=5, seed=2)
    with (
        ZkSimulator(a) as sim_a,
        ZkSimulator(b) as sim_b,
        store_server(f"sqlite:///{tmp_path}/s.db", {"opd-1": TOKEN}) as url,
    ):
        service = service_for(tmp_path, url, {"depan": sim_a, "samping": sim_b})
        try:
            one = handle(service, "pull", b'{"device": "depan"}')
            assert one == {"ok": True, "devices": {"depan": {"new": 12}}}
            every = handle(service, "pull", b"")
            assert every == {"ok": True, "devices": {"depan": {"new": 0}, "samping": {"new": 5}}}
            assert handle(service, "sync-now", b"{}") == {"ok": True, "accepted": 17, "duplicate": 0, "rejected": 0}
            assert len(read_whole_feed(url)) == 17
        finally:
            service.close()


def test_set_time_brings_a_drifted_clock_back(tmp_path: Path) -> None:
    device = ZkDevice.generate(users=2, records=1, seed=3, clock_offset_s=-600)
    with ZkSimulator(device) as sim:
        service = service_for(tmp_path, "http://127.0.0.1:9", {"pintu": sim})
        try:
            answer = handle(service, "set-time", b'{"device": "pintu"}')
        finally:
            service.close()
    assert answer["ok"] is True and answer["device"] == "pintu"
    assert answer["recorded"] is True and "warning" not in answer
    assert -605 <= answer["skew_before_s"] <= -595 and abs(answer["skew_after_s"]) <= 2
    assert abs(device.clock_offset_s) <= 2
    assert service.buffer.clock_settings()[0][0] == "pintu"


def test_status_is_the_snapshot(tmp_path: Path) -> None:
    with ZkSimulator(ZkDevice.generate(users=2, records=3, seed=4)) as sim:
        service = service_for(tmp_path, "http://127.0.0.1:9", {"pintu": sim})
        try:
            service.pull_all()
            answer = handle(service, "status", b"")
        finally:
            service.close()
    assert answer["ok"] is True and answer["gateway_id"] == "opd-1"
    devices = {d["id"]: d for d in answer["devices"]}
    assert devices["pintu"]["online"] is True and devices["pintu"]["records"] == 3
    assert devices["kartu"]["kind"] == "pcsc" and devices["kartu"]["online"] is False
    assert answer["sync"]["pending"] == 3
    json.dumps(answer)  # all of it travels as JSON


def test_bad_commands_are_answered_not_raised(tmp_path: Path) -> None:
    with ZkSimulator(ZkDevice.generate(users=2, records=1, seed=5)) as sim:
        service = service_for(tmp_path, "http://127.0.0.1:9", {"pintu": sim})
        service.pull_all()  # a punch waits: sync-now must reach the store, which is down
        try:
            answers = {
                "unknown": handle(service, "reboot", b""),
                "not json": handle(service, "pull", b"{pintu"),
                "not an object": handle(service, "pull", b'["pintu"]'),
                "no device": handle(service, "set-time", b"{}"),
                "unknown device": handle(service, "pull", b'{"device": "belakang"}'),
                "card reader": handle(service, "set-time", b'{"device": "kartu"}'),
                "too large": handle(service, "pull", b"{" + b" " * 5000 + b"}"),
                "store down": handle(service, "sync-now", b""),
            }
        finally:
            service.close()
    assert all(a["ok"] is False for a in answers.values()), answers
    errors = {name: a["error"] for name, a in answers.items()}
    assert errors["unknown"] == "unknown command 'reboot'; known: sync-now, pull, set-time, status"
    assert "not JSON" in errors["not json"] and "JSON object" in errors["not an object"]
    assert "name the device" in errors["no device"]
    assert errors["unknown device"] == "no device 'belakang' at this gateway (devices: pintu, kartu)"
    assert "card reader" in errors["card reader"] and "too large" in errors["too large"]
    assert errors["store down"].startswith("push failed: ")
