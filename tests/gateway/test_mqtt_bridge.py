"""The MQTT bridge against a real mosquitto, the ZK simulator and the real store.

What is checked is what an independent subscriber (mosquitto_sub) or requester sees on the broker.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from ekinerja.config.gateway import GatewayConfig, MqttSection
from ekinerja.config.loader import load_model
from ekinerja.drivers.sim.zk_device import ZkDevice
from ekinerja.drivers.sim.zk_server import ZkSimulator
from ekinerja.gateway.mqtt_bridge import DEVICE_FIELDS, SUMMARY_FIELDS, MqttBridge
from ekinerja.gateway.service import GatewayService

from mosquitto import PASSWORD, USER, Mosquitto, Requester, Subscriber
from stack import make_events, read_whole_feed, running, store_server, wait_for, write_gateway_toml
from throwaway_ca import make_test_ca

TOKEN = "mqtt-test-token-1"
BASE = "ekinerja/opd-1"
NO_STORE = "http://127.0.0.1:9"
Subscribe = Callable[..., Subscriber]


def gateway(tmp_path: Path, url: str, sims: dict[str, ZkSimulator], *, live: tuple[str, ...] = ()) -> GatewayService:
    """A gateway reading ``sims`` (those named in ``live`` live, the others polled every 2 minutes)."""
    devices = {name: (sim.port, "tcp") for name, sim in sims.items()}
    extra = {name: "live = true" for name in live}
    path = write_gateway_toml(tmp_path, url, TOKEN, devices, poll_interval_s=120, device_extra=extra)
    return GatewayService(load_model(path, GatewayConfig))


@contextmanager
def bridged(service: GatewayService, broker: Mosquitto, **settings: Any) -> Iterator[MqttBridge]:
    """The bridge of ``service`` for the block: started beside ``running(service)``, stopped before it."""
    args: dict[str, Any] = {"host": "127.0.0.1", "port": broker.port, "username": USER, "password": PASSWORD}
    bridge = MqttBridge(service, MqttSection(**(args | settings)))
    bridge.start()
    try:
        yield bridge
    finally:
        bridge.stop()


def retained_state_seen(sub: Subscriber, device: str = "pintu") -> bool:
    """Whether ``sub`` got the retained state: bridge online, the device online with its state, the summary."""
    return (
        sub.seen(f"{BASE}/bridge/state", "online", retained=True)
        and sub.seen(f"{BASE}/devices/{device}/availability", "online", retained=True)
        and any(m.retained for m in sub.on(f"{BASE}/devices/{device}/state"))
        and any(m.retained for m in sub.on(f"{BASE}/bridge/summary"))
        and any(m.retained for m in sub.on(f"{BASE}/bridge/alerts"))
    )


def state_with_device_online(sub: Subscriber, device: str = "pintu") -> bool:
    """Whether a whole round of state with ``device`` online reached ``sub`` (the alerts come last)."""
    after = sub.after(f"{BASE}/devices/{device}/availability", "online")
    return any(m.topic == f"{BASE}/bridge/alerts" for m in after)


def test_a_late_subscriber_sees_the_retained_state(tmp_path: Path, mosquitto: Mosquitto, subscribe: Subscribe) -> None:
    device = ZkDevice.generate(users=3, records=5, serial="MQTT000001", seed=1)
    with ZkSimulator(device) as sim, store_server(f"sqlite:///{tmp_path}/store.db", {"opd-1": TOKEN}) as url:
        early = subscribe()
        service = gateway(tmp_path, url, {"pintu": sim}, live=("pintu",))
        # A long interval: what follows a change of availability is published because of the change.
        with running(service), bridged(service, mosquitto, state_interval_s=600):
            wait_for(lambda: state_with_device_online(early), what="the state with pintu online")
            late = subscribe()
            wait_for(lambda: retained_state_seen(late), what="the retained state at a late subscriber")
            state = late.last(f"{BASE}/devices/pintu/state")
            assert state is not None and set(state.json()) == set(DEVICE_FIELDS)
            shown = {k: state.json()[k] for k in ("serial", "users", "records", "kind", "live", "punches")}
            assert shown == {"serial": "MQTT000001", "users": 3, "records": 5, "kind": "zk", "live": True, "punches": 5}
            summary = late.last(f"{BASE}/bridge/summary")
            assert summary is not None and set(SUMMARY_FIELDS) <= set(summary.json())
            alerts = late.last(f"{BASE}/bridge/alerts")
            assert alerts is not None and alerts.json() == []
            sim.stop()
            wait_for(
                lambda: early.seen(f"{BASE}/devices/pintu/availability", "offline"),
                timeout_s=5,
                what="pintu offline, published on the change",
            )


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["kill-9", "sigterm"])
def test_a_gateway_process_killed_or_stopped_says_offline(
    tmp_path: Path, mosquitto: Mosquitto, subscribe: Subscribe, sig: signal.Signals
) -> None:
    """Needs `gateway run` to start the bridge when gateway.toml has [mqtt] (the service.run wiring).

    kill -9: the broker sends the last will; SIGTERM: the bridge says offline before it disconnects.
    """
    # Punches to store at the first poll: a SIGTERM then used to hang in APScheduler's shutdown (the
    # poll's push_soon waited for the lock shutdown held while it waited for the poll); jobs.py fixed it.
    device = ZkDevice.generate(users=2, records=30, serial="MQTT000002", seed=2)
    with ZkSimulator(device) as sim:
        config = write_gateway_toml(tmp_path, NO_STORE, TOKEN, {"pintu": (sim.port, "tcp")})
        config.write_text(
            config.read_text() + f'\n[mqtt]\nhost = "127.0.0.1"\nport = {mosquitto.port}\n'
            f'username = "{USER}"\npassword = "{PASSWORD}"\nstate_interval_s = 1\n'
        )
        sub = subscribe()
        log = tmp_path / "gateway.log"
        with log.open("ab") as out:
            command = [sys.executable, "-m", "ekinerja.cli", "gateway", "run", "--config", str(config)]
            proc = subprocess.Popen(command, stdout=out, stderr=out)
        try:
            online = lambda: sub.seen(f"{BASE}/bridge/state", "online")  # noqa: E731
            wait_for(lambda: online() or proc.poll() is not None, timeout_s=20, what="online or the process ended")
            hint = "the process never said online: is the bridge started by service.run?"
            assert online(), f"{hint}\n{log.read_text()[-3000:]}"
            proc.send_signal(sig)
            signalled = time.monotonic()
            wait_for(lambda: sub.seen(f"{BASE}/bridge/state", "offline"), timeout_s=10, what="offline")
            assert time.monotonic() - signalled < (2 if sig == signal.SIGKILL else 8)
            assert proc.wait(10) == (0 if sig == signal.SIGTERM else -signal.SIGKILL)
        finally:
            proc.kill()
            proc.wait(10)
        late = subscribe()
        wait_for(lambda: late.seen(f"{BASE}/bridge/state", "offline", retained=True), what="offline retained")


def test_a_broker_restart_brings_online_and_the_state_back(
    tmp_path: Path, mosquitto: Mosquitto, subscribe: Subscribe, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="ekinerja.gateway.mqtt")
    device = ZkDevice.generate(users=3, records=4, serial="MQTT000003", seed=3)
    with ZkSimulator(device) as sim, store_server(f"sqlite:///{tmp_path}/store.db", {"opd-1": TOKEN}) as url:
        service = gateway(tmp_path, url, {"pintu": sim}, live=("pintu",))
        with running(service), bridged(service, mosquitto, state_interval_s=600) as bridge:
            first = subscribe()
            wait_for(lambda: state_with_device_online(first), what="the state before the restart")
            first.close()
            mosquitto.stop()  # persistence is off: every retained message is gone
            wait_for(lambda: not bridge.client.is_connected(), what="the bridge to notice the broker gone")
            mosquitto.start()
            wait_for(bridge.client.is_connected, what="the bridge to reconnect by itself")
            watcher = subscribe()  # whenever it connects, the alerts after "online" end the catch-up round
            after_online = lambda: watcher.after(f"{BASE}/bridge/state", "online")  # noqa: E731
            wait_for(lambda: any(m.topic == f"{BASE}/bridge/alerts" for m in after_online()), what="the catch-up")
            late = subscribe()
            wait_for(lambda: retained_state_seen(late), what="the retained state restored by the catch-up")
            device.add_punch("1001")
            wait_for(lambda: len(read_whole_feed(url)) == 5, what="punching to go on")
    records = [r for r in caplog.records if r.name == "ekinerja.gateway.mqtt"]
    assert sum("connected to" in r.getMessage() for r in records) == 2, records
    warnings = [r.getMessage() for r in records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "lost broker" in warnings[0], warnings  # not again at each retry


@pytest.mark.parametrize("broker_state", ["refusing", "down"])
def test_a_broker_refusing_or_down_does_not_slow_punching(
    tmp_path: Path, mosquitto: Mosquitto, broker_state: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="ekinerja.gateway.mqtt")
    device = ZkDevice.generate(users=3, records=4, serial="MQTT000004", seed=4)
    password = "wrong-password" if broker_state == "refusing" else PASSWORD
    if broker_state == "down":
        mosquitto.stop()
    with ZkSimulator(device) as sim, store_server(f"sqlite:///{tmp_path}/store.db", {"opd-1": TOKEN}) as url:
        service = gateway(tmp_path, url, {"pintu": sim}, live=("pintu",))
        with running(service), bridged(service, mosquitto, password=password) as bridge:
            wait_for(lambda: len(read_whole_feed(url)) == 4, what="the first read in the store")
            for n in range(5, 8):
                device.add_punch(str(1001 + n % 3))  # not twice the same user: one second, one punch
                punched = time.monotonic()
                wait_for(lambda n=n: len(read_whole_feed(url)) == n, timeout_s=5, what=f"punch {n} in the store")
                assert time.monotonic() - punched < 2.5
            if broker_state == "refusing":  # paho retried (1 s, then 2 s): the broker saw several attempts
                wait_for(lambda: mosquitto.tail(200).count("not authorised") >= 2, what="a second attempt")
            else:
                time.sleep(1.5)  # at least a second attempt (1 s backoff); no condition to wait on
            assert not bridge.client.is_connected()
            stopping = time.monotonic()
        assert time.monotonic() - stopping < 5, "the bridge held up the gateway's stop"
    mqtt_logs = [r for r in caplog.records if r.name == "ekinerja.gateway.mqtt"]
    problems = [r.getMessage() for r in mqtt_logs if r.levelno >= logging.WARNING]
    expected = "refused us" if broker_state == "refusing" else "unreachable"
    assert len(problems) == 1 and expected in problems[0], problems
    assert password not in " ".join(r.getMessage() for r in mqtt_logs)


def test_commands_round_trip(tmp_path: Path, mosquitto: Mosquitto) -> None:
    pintu = ZkDevice.generate(users=4, records=6, serial="MQTT000005", seed=5)
    samping = ZkDevice.generate(users=4, records=2, serial="MQTT000006", seed=6)
    with (
        ZkSimulator(pintu) as pintu_sim,
        ZkSimulator(samping) as samping_sim,
        store_server(f"sqlite:///{tmp_path}/store.db", {"opd-1": TOKEN}) as url,
    ):
        service = gateway(tmp_path, url, {"pintu": pintu_sim, "samping": samping_sim}, live=("samping",))
        requester = Requester(mosquitto, BASE)
        try:
            with running(service), bridged(service, mosquitto) as bridge:
                wait_for(bridge.client.is_connected, what="the bridge connected")
                wait_for(lambda: all(s.online for s in service.status.values()), what="both terminals online")
                wait_for(lambda: len(read_whole_feed(url)) == 8, what="the first reads in the store")
                run_commands(requester, pintu)
                assert len(read_whole_feed(url)) == 10
                check_malformed_commands(requester)
                answer, _ = requester.request("status")
                assert answer["ok"] and bridge.client.is_connected(), "the gateway stopped answering"
        finally:
            requester.close()


def run_commands(requester: Requester, pintu: ZkDevice) -> None:
    """sync-now, pull (one terminal and all), set-time and status, each answered."""
    pintu.add_punch("1001")
    pintu.add_punch("1002")
    answer, _ = requester.request("pull", json.dumps({"device": "pintu"}))
    assert answer == {"ok": True, "devices": {"pintu": {"new": 2}}}
    answer, _ = requester.request("pull")
    assert answer == {"ok": True, "devices": {"pintu": {"new": 0}, "samping": {"renewed": True}}}
    answer, _ = requester.request("sync-now")
    assert answer["ok"] and ("pushed" in answer or {"accepted", "duplicate", "rejected"} <= set(answer)), answer
    pintu.jump_clock(600)
    answer, _ = requester.request("set-time", json.dumps({"device": "pintu"}))
    assert answer["ok"] and abs(answer["skew_before_s"] - 600) < 5 and abs(answer["skew_after_s"]) < 5, answer
    assert abs(pintu.clock_offset_s) < 5
    answer, correlation = requester.request("status", correlation=b"\x00corr-1\xff")
    assert answer["ok"] and answer["gateway_id"] == "opd-1" and correlation == b"\x00corr-1\xff"
    assert {d["id"] for d in answer["devices"]} == {"pintu", "samping"}
    answer, correlation = requester.request("status", correlation=b"c2", response_topic=f"{BASE}/bridge/response/me")
    assert answer["ok"] and correlation == b"c2"
    # A response topic outside bridge/response/ is not honoured: the answer goes to the usual topic.
    requester.listen("test/replies/#")
    usual = f"{BASE}/bridge/response/sync-now"
    before = len(requester.answers.get(usual, []))
    outside = Properties(PacketTypes.PUBLISH)
    outside.ResponseTopic = "test/replies/me"
    requester.client.publish(f"{BASE}/bridge/request/sync-now", b"", qos=1, properties=outside)
    wait_for(lambda: len(requester.answers.get(usual, [])) > before, what="the answer on the usual topic")
    assert not requester.answers.get("test/replies/me")


def check_malformed_commands(requester: Requester) -> None:
    """An unknown command, a payload that is not JSON, an unknown device: each answered with an error."""
    answer, correlation = requester.request("reboot", correlation=b"c3")
    assert answer["ok"] is False and "unknown command" in answer["error"] and correlation == b"c3"
    answer, _ = requester.request("pull", b"{not json")
    assert answer["ok"] is False and "not JSON" in answer["error"]
    answer, _ = requester.request("set-time", json.dumps({"device": "nope"}))
    assert answer["ok"] is False and "no device 'nope'" in answer["error"]


def expected_hash(service: GatewayService, subject_key: str) -> str:
    salt = (service.config.gateway.data_dir / "mqtt_salt").read_text()
    assert len(salt) == 32 and "opd-1" not in salt  # a secret, not the gateway id anyone can read in the topic
    return hashlib.sha256(f"{salt}\x1f{subject_key}".encode()).hexdigest()


def check_punch_message(service: GatewayService, payload: str, event_id: str, subject_key: str) -> None:
    """The punch as published: its fields, and the subject only as a salted hash."""
    data = json.loads(payload)
    assert set(data) == {
        "punch_ref", "device_id", "source", "verify", "punch", "device_time", "occurred_at", "subject_hash",
    }  # fmt: skip
    salt = (service.config.gateway.data_dir / "mqtt_salt").read_text()
    assert data["punch_ref"] == hmac.new(salt.encode(), event_id.encode(), hashlib.sha256).hexdigest()
    assert event_id not in payload and data["subject_hash"] == expected_hash(service, subject_key)
    raw = subject_key.partition(":")[2]
    assert raw not in data.values() and subject_key not in payload and f'"{raw}"' not in payload


def test_a_punch_handed_to_the_bridge_is_published_without_the_subject(
    tmp_path: Path, mosquitto: Mosquitto, subscribe: Subscribe
) -> None:
    service = gateway(tmp_path, NO_STORE, {})
    sub = subscribe()
    with running(service), bridged(service, mosquitto) as bridge:
        wait_for(lambda: sub.seen(f"{BASE}/bridge/state", "online"), what="the bridge seen online")
        event = make_events(1)[0]
        bridge.punch(event)
        wait_for(lambda: sub.last(f"{BASE}/devices/pintu/punch") is not None, what="the punch on MQTT")
    message = sub.last(f"{BASE}/devices/pintu/punch")
    assert message is not None and not message.retained
    check_punch_message(service, message.payload, event.event_id, event.subject.key())


def test_a_stored_punch_is_published_on_its_device_topic(
    tmp_path: Path, mosquitto: Mosquitto, subscribe: Subscribe
) -> None:
    """Needs the keepers to call ``service.on_punches`` with what they stored (the punch hook)."""
    device = ZkDevice.generate(users=3, records=0, serial="MQTT000007", seed=7)
    with ZkSimulator(device) as sim, store_server(f"sqlite:///{tmp_path}/store.db", {"opd-1": TOKEN}) as url:
        service = gateway(tmp_path, url, {"pintu": sim}, live=("pintu",))
        sub = subscribe()
        with running(service), bridged(service, mosquitto):
            wait_for(lambda: sub.seen(f"{BASE}/bridge/state", "online"), what="the bridge seen online")
            wait_for(lambda: device.listener_count == 1, what="the live session")
            device.add_punch("1003")
            wait_for(
                lambda: sub.last(f"{BASE}/devices/pintu/punch") is not None,
                timeout_s=5,
                what="the punch on MQTT (is the keepers' on_punches hook in place?)",
            )
            wait_for(lambda: len(read_whole_feed(url)) == 1, what="the punch in the store")
        (stored,) = read_whole_feed(url)
    message = sub.last(f"{BASE}/devices/pintu/punch")
    assert message is not None and not message.retained and len(sub.on(f"{BASE}/devices/pintu/punch")) == 1
    data = json.loads(message.payload)
    assert data["device_id"] == "pintu" and data["source"] == "zk"
    check_punch_message(service, message.payload, stored.event.event_id, "zk:1003")


def test_tls_with_a_ca_file(tmp_path: Path) -> None:
    broker = Mosquitto(tls=True)
    try:
        broker.start()
        assert broker.tls_port is not None and broker.ca_file is not None
        stranger_ca, _cert, _key = make_test_ca(tmp_path, "stranger")
        sub = Subscriber(broker)  # on the plain listener of the same broker
        try:
            with ZkSimulator(ZkDevice.generate(users=2, records=1, serial="MQTT000009", seed=9)) as sim:
                service = gateway(tmp_path, NO_STORE, {"pintu": sim})
                tls = {"port": broker.tls_port, "tls": True}
                with running(service):
                    with bridged(service, broker, **tls, ca_file=stranger_ca) as untrusted:
                        time.sleep(1.5)  # a connect and a retry: nothing observable marks a refused handshake
                        assert not untrusted.client.is_connected()
                    assert not sub.on(f"{BASE}/bridge/state"), "a broker the CA does not vouch for was trusted"
                    with bridged(service, broker, **tls, ca_file=broker.ca_file) as trusted:
                        wait_for(trusted.client.is_connected, what="the bridge connected over TLS")
                        # Seen live first: a subscriber that came before the state was published
                        # would get it unflagged, not as the retained state a late one must find.
                        wait_for(lambda: state_with_device_online(sub), what="the state published over TLS")
                        late = Subscriber(broker)
                        try:
                            wait_for(lambda: retained_state_seen(late), what="the state retained for a late subscriber")
                        finally:
                            late.close()
        finally:
            sub.close()
    finally:
        broker.close()
