"""The broker files shipped in deploy/mosquitto/, loaded by a real mosquitto and tried with real clients.

The ACL test runs a broker whose config includes the shipped ``acl`` file, with the users a site
would create (two gateways, ``monitor``, ``operator``); a real gateway service logs in as opd-1.
The config test loads the shipped ``mosquitto.conf`` itself, only its paths and ports rewritten.
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from ekinerja.config.gateway import GatewayConfig
from ekinerja.config.loader import load_model
from ekinerja.drivers.sim.zk_device import ZkDevice
from ekinerja.drivers.sim.zk_server import ZkSimulator
from ekinerja.gateway.service import GatewayService

from mosquitto import Message, Mosquitto, Requester, Subscriber, link_metrics, mqtt_table
from stack import running, store_server, wait_for, write_gateway_toml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "mosquitto"
USERS = {"opd-1": "acl-pw-opd-1", "opd-2": "acl-pw-opd-2", "monitor": "acl-pw-monitor", "operator": "acl-pw-op"}
BASE = "ekinerja/opd-1"
TOKEN = "acl-test-token-1"
NO_STORE = "http://127.0.0.1:9"
NOT_AUTHORIZED = 0x87


class Client:
    """A paho MQTT v5 client logged in as one user; records what it receives and each PUBACK's reason code."""

    def __init__(self, broker: Mosquitto, user: str, *, client_id: str | None = None) -> None:
        self.user = user
        self.received: list[tuple[str, bytes]] = []
        self.granted: list[int] = []
        self._acks: dict[int, int] = {}
        self._changed = threading.Condition()
        client_id = client_id or f"test-{user}-{uuid.uuid4().hex[:6]}"
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        self.client.username_pw_set(user, USERS[user])
        self.client.on_message = self._on_message
        self.client.on_publish = self._on_publish
        self.client.on_subscribe = self._on_subscribe
        connected = threading.Event()
        self.client.on_connect = lambda *args: connected.set()
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()
        assert connected.wait(5), f"{user} not connected"

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        with self._changed:
            self.received.append((message.topic, bytes(message.payload)))

    def _on_publish(self, client: mqtt.Client, userdata: Any, mid: int, reason: Any, properties: Any) -> None:
        with self._changed:
            self._acks[mid] = reason.value
            self._changed.notify_all()

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, reasons: Any, properties: Any) -> None:
        with self._changed:
            self.granted += [r.value for r in reasons]
            self._changed.notify_all()

    def publish(self, topic: str, payload: str, *, retain: bool = False) -> int:
        """Publish with QoS 1 and return the reason code of the broker's PUBACK."""
        with self._changed:
            mid = self.client.publish(topic, payload, qos=1, retain=retain).mid
            assert self._changed.wait_for(lambda: mid in self._acks, 5), f"no PUBACK for {topic}"
            return self._acks[mid]

    def subscribe(self, topic: str) -> int:
        """Subscribe with QoS 1 and return the SUBACK's reason code."""
        with self._changed:
            before = len(self.granted)
            self.client.subscribe(topic, qos=1)
            assert self._changed.wait_for(lambda: len(self.granted) > before, 5), f"no SUBACK for {topic}"
            return self.granted[before]

    def close(self) -> None:
        """Disconnect."""
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def acl_broker() -> Iterator[Mosquitto]:
    """A broker whose config includes the shipped ACL, with the users a site would create."""
    broker = Mosquitto(users=USERS, acl_file=DEPLOY / "acl")
    try:
        broker.start()
        yield broker
    finally:
        broker.close()


def gateway(tmp_path: Path, url: str, mqtt: str, devices: dict[str, ZkSimulator] | None = None) -> GatewayService:
    """Gateway opd-1 with an ``[mqtt]`` table (its service starts the bridge), its terminals captured live."""
    sims = devices or {}
    extra = dict.fromkeys(sims, "live = true")
    path = write_gateway_toml(
        tmp_path, url, TOKEN, {name: (sim.port, "tcp") for name, sim in sims.items()}, device_extra=extra
    )
    path.write_text(path.read_text() + mqtt)
    return GatewayService(load_model(path, GatewayConfig))


def subscriber(broker: Mosquitto, user: str, topic: str = "ekinerja/#") -> Subscriber:
    """mosquitto_sub logged in as ``user``."""
    return Subscriber(broker, topic, USERS[user], user=user)


def test_a_gateway_publishes_only_under_its_own_topics(tmp_path: Path, acl_broker: Mosquitto) -> None:
    device = ZkDevice.generate(users=3, records=2, serial="ACL0000001", seed=11)
    with ZkSimulator(device) as sim, store_server(f"sqlite:///{tmp_path}/store.db", {"opd-1": TOKEN}) as url:
        monitor = subscriber(acl_broker, "monitor")
        service = gateway(tmp_path, url, mqtt_table(acl_broker.port, "opd-1", USERS["opd-1"]), {"pintu": sim})
        clients: list[Any] = [monitor]
        try:
            with running(service):
                seen_own_publishes(monitor, device)
                operator = Requester(acl_broker, BASE, user="operator", password=USERS["operator"])
                clients.append(operator)
                answer, _ = operator.request("status")
                assert answer["ok"] and answer["gateway_id"] == "opd-1", answer
                other = Client(acl_broker, "opd-2")
                clients.append(other)
                forgeries_refused(other, monitor)
                commands_reach_only_their_gateway(other, operator)
                monitor_cannot_command(acl_broker, operator)
                late = subscriber(acl_broker, "monitor", f"{BASE}/#")
                clients.append(late)
                wait_for(lambda: late.last(f"{BASE}/bridge/state") is not None, what="the retained bridge state")
                for name in ("bridge/state", "devices/pintu/availability"):  # not replaced by a forgery
                    assert late.last(f"{BASE}/{name}") == Message(f"{BASE}/{name}", True, "online"), name
        finally:
            for client in clients:
                client.close()


def seen_own_publishes(monitor: Subscriber, device: ZkDevice) -> None:
    """The gateway's state, availability and a live punch reach the monitor."""
    wait_for(lambda: monitor.seen(f"{BASE}/bridge/state", "online"), what="opd-1 online at the monitor")
    wait_for(lambda: monitor.seen(f"{BASE}/devices/pintu/availability", "online"), what="pintu's availability")
    wait_for(lambda: monitor.last(f"{BASE}/devices/pintu/state") is not None, what="pintu's state")
    wait_for(lambda: device.listener_count == 1, what="the live session")
    device.add_punch("1001")
    wait_for(lambda: monitor.on(f"{BASE}/devices/pintu/punch"), what="the punch at the monitor")


FORGED = {  # topic under opd-1's base: (payload, retained)
    "bridge/state": ("offline", True),
    "devices/pintu/availability": ("offline", True),
    "devices/pintu/punch": ('{"device_id":"pintu","punch":"in","subject_hash":"forged"}', False),
    "bridge/response/status": ('{"ok":true,"forged":true}', False),
    "bridge/request/sync-now": ("", False),
}


def forgeries_refused(other: Client, monitor: Subscriber) -> None:
    """opd-2 publishing under opd-1: each refused with 0x87 and delivered to nobody."""
    before = len(monitor.messages)
    codes = {name: other.publish(f"{BASE}/{name}", text, retain=retain) for name, (text, retain) in FORGED.items()}
    assert codes == dict.fromkeys(FORGED, NOT_AUTHORIZED), codes
    # Its own topic is open to it: once the monitor has that (published after the forgeries on the
    # same connection), any forgery the broker let through would have arrived before it.
    assert other.publish("ekinerja/opd-2/bridge/state", "online", retain=True) == 0
    wait_for(lambda: monitor.seen("ekinerja/opd-2/bridge/state", "online"), what="opd-2's own state at the monitor")
    forgeries = {(f"{BASE}/{name}", text) for name, (text, _) in FORGED.items()}
    forged = [m for m in monitor.messages[before:] if (m.topic, m.payload) in forgeries]
    assert forged == [], f"forged messages delivered: {forged}"


def commands_reach_only_their_gateway(other: Client, operator: Requester) -> None:
    """opd-2 subscribed to opd-1's requests gets none of them; its own come through."""
    # mosquitto grants the subscription (its reason code is "granted QoS 1") but delivers nothing on it.
    assert other.subscribe(f"{BASE}/bridge/request/#") == 1
    assert other.subscribe("ekinerja/opd-2/bridge/request/#") == 1
    answer, _ = operator.request("status", b"{}")
    assert answer["ok"], answer
    operator.client.publish("ekinerja/opd-2/bridge/request/status", b"{}", qos=1)
    wait_for(lambda: other.received, what="opd-2's own request")  # sent after opd-1's: delivered in order
    assert [topic for topic, _ in other.received] == ["ekinerja/opd-2/bridge/request/status"]


def monitor_cannot_command(broker: Mosquitto, operator: Requester) -> None:
    """The monitor's command is refused and never reaches the gateway."""
    watcher = Client(broker, "monitor")
    try:
        assert watcher.publish(f"{BASE}/bridge/request/pull", "{}") == NOT_AUTHORIZED
    finally:
        watcher.close()
    answer, _ = operator.request("status")  # answered in order: a pull would have been answered first
    assert answer["ok"] and not operator.answers.get(f"{BASE}/bridge/response/pull"), operator.answers.keys()


def test_a_gateway_logged_in_as_another_is_told_why(
    tmp_path: Path, acl_broker: Mosquitto, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="ekinerja.gateway.mqtt")
    monitor = subscriber(acl_broker, "monitor")
    service = gateway(tmp_path, NO_STORE, mqtt_table(acl_broker.port, "opd-2", USERS["opd-2"]))
    warned = lambda: [  # noqa: E731
        r.getMessage() for r in caplog.records if r.name == "ekinerja.gateway.mqtt" and r.levelname == "WARNING"
    ]
    try:
        with running(service):
            wait_for(warned, what="a warning from the bridge")
            wait_for(lambda: link_metrics(service_url(service))["connects"] >= 1, what="the connection counted")
            time.sleep(0.5)  # the state round after "online": more refusals, which must not be logged again
    finally:
        monitor.close()
    (warning,) = warned()
    assert "refused" in warning and "'opd-2'" in warning and "gateway id" in warning, warning
    assert USERS["opd-2"] not in caplog.text
    assert not monitor.on(f"{BASE}/bridge/state"), "a gateway published under another's topics"


def service_url(service: GatewayService) -> str:
    """The gateway's status page address, while it runs."""
    assert service.web is not None, "the gateway's web page is not running"
    return service.web.url


# --- the shipped mosquitto.conf --------------------------------------------------------------------


def shipped_conf(broker: Mosquitto, file_log: Path) -> str:
    """deploy/mosquitto/mosquitto.conf with its paths pointing at ``broker``'s files and its ports at its ports."""
    assert broker.tls_port is not None and broker.acl_file is not None
    text = (DEPLOY / "mosquitto.conf").read_text()
    paths = {
        "/etc/mosquitto/passwd": broker.password_file,
        "/etc/mosquitto/acl": broker.acl_file,
        "/etc/mosquitto/certs/ca.crt": broker.ca_file,
        "/etc/mosquitto/certs/server.crt": broker.cert_file,
        "/etc/mosquitto/certs/server.key": broker.key_file,
        "/var/lib/mosquitto/": f"{broker.folder}/",
        "/var/log/mosquitto/mosquitto.log": file_log,
    }
    settings = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    used = {word for line in settings for word in line.split()[1:] if word.startswith("/")}
    assert used == set(paths), f"paths in the shipped config this test does not rewrite: {used - set(paths)}"
    for shipped, local in paths.items():
        text, count = re.subn(rf"(?m)^([^#\n]*) {re.escape(shipped)}$", rf"\1 {local}", text)
        assert count == 1, f"{shipped} not rewritten"
    text, plain = re.subn(r"(?m)^listener 1883 127\.0\.0\.1$", f"listener {broker.port} 127.0.0.1", text)
    text, tls = re.subn(r"(?m)^listener 8883$", f"listener {broker.tls_port}", text)
    assert (plain, tls) == (1, 1), "the shipped config no longer has its 1883 (loopback) and 8883 listeners"
    return text


def test_the_shipped_broker_config_loads_and_serves_tls(tmp_path: Path) -> None:
    broker = Mosquitto(tls=True, users=USERS, acl_file=DEPLOY / "acl")
    file_log = broker.folder / "file.log"
    broker.conf.write_text(shipped_conf(broker, file_log))
    assert broker.tls_port is not None and broker.ca_file is not None
    tls = mqtt_table(broker.tls_port, "opd-1", USERS["opd-1"], tls=True, ca_file=str(broker.ca_file))
    try:
        broker.start()
        monitor = subscriber(broker, "monitor")  # on the loopback listener
        service = gateway(tmp_path, NO_STORE, tls)
        try:
            with running(service):
                wait_for(lambda: monitor.seen(f"{BASE}/bridge/state", "online"), what="opd-1 online over TLS")
                no_takeover(broker, monitor, service)
        finally:
            monitor.close()
        broker.stop()
        assert (broker.folder / "mosquitto.db").exists(), "persistence wrote no mosquitto.db at stop"
        opened = set(re.findall(r"Opening ipv[46] listen socket on port (\d+)", file_log.read_text()))
        # Nothing else, such as a default listener on 1883 opened by a listener option set too early.
        assert opened == {str(broker.port), str(broker.tls_port)}, f"listening on {opened}"
    finally:
        broker.close()


def no_takeover(broker: Mosquitto, monitor: Subscriber, service: GatewayService) -> None:
    """opd-2 connecting with opd-1's client id does not knock opd-1 off (no will "offline", no reconnect)."""
    intruder = Client(broker, "opd-2", client_id="ekinerja-opd-1")  # connected: any takeover has happened
    operator = Requester(broker, BASE, user="operator", password=USERS["operator"])
    try:
        answer, _ = operator.request("status")
        assert answer["ok"], answer
        # The monitor has the answer, so it would have had a will sent at the takeover before it.
        wait_for(lambda: monitor.on(f"{BASE}/bridge/response/status"), what="the answer at the monitor")
    finally:
        operator.close()
        intruder.close()
    assert not monitor.seen(f"{BASE}/bridge/state", "offline"), "opd-2 knocked opd-1 off with its client id"
    assert link_metrics(service_url(service)) == {"connected": 1.0, "connects": 1.0}
