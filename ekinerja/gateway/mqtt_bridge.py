"""The gateway over MQTT: its state for dashboards, each punch as it is stored, and commands.

Topics (under ``base_topic``, ekinerja/<gateway id> by default; ARCHITECTURE.md "MQTT topics"):
``bridge/state`` (retained online/offline, offline also the last will), ``bridge/summary`` and
``bridge/alerts`` (retained JSON), ``devices/<id>/availability`` and ``devices/<id>/state``
(retained), ``devices/<id>/punch`` (each punch, no person in clear), and commands on
``bridge/request/<name>`` answered on ``bridge/response/<name>`` or the request's response topic.

paho runs the connection in its own thread and retries a broker that is down or refuses with
backoff; state is published from the bridge's own thread and commands run in a worker, so a slow
or absent broker never holds up punching or syncing: whatever cannot be sent now is skipped and
the state caught up on the next connect. The link itself is in the gateway's /metrics
(``ekinerja_gateway_mqtt_connected`` and ``..._mqtt_connects_total``).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import queue
import secrets
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ekinerja.gateway import commands
from ekinerja.gateway.metrics import PREFIX
from ekinerja.gateway.whole_file import write_whole

if TYPE_CHECKING:
    from ekinerja.config.gateway import MqttSection
    from ekinerja.gateway.service import GatewayService
    from ekinerja.gateway.status import Snapshot
    from ekinerja.sync.contract import PunchEvent

log = logging.getLogger("ekinerja.gateway.mqtt")

QOS = 1
WATCH_S = 0.5  # how often availability is compared: a change is published within this (debounce)
STOP_WAIT_S = 3.0
MAX_QUEUED = 5000  # messages paho holds while the link is slow; beyond that publishes are dropped
MAX_WAITING_COMMANDS = 32
DEVICE_FIELDS = (
    "serial", "firmware", "users", "records", "capacity", "percent_used", "clock_skew_s",
    "last_punch", "last_error", "kind", "live", "readers", "punches",
)  # fmt: skip
SUMMARY_FIELDS = (
    "pending", "oldest_pending_at", "last_success", "store_reachable", "last_error", "rejected", "quarantined",
)  # fmt: skip


@dataclass(frozen=True)
class Request:
    """A command as it came in: its name, payload and where and how to answer."""

    name: str
    payload: bytes
    response_topic: str
    correlation: bytes | None


def subject_hash(subject_key: str, salt: str) -> str:
    """A stable pseudonym of a subject key ("zk:1001", "card:04A1B2C3"): sha256 hex with a salt."""
    return hashlib.sha256(f"{salt}\x1f{subject_key}".encode()).hexdigest()


SALT_FILE = "mqtt_salt"


def pseudonym_salt(data_dir: Path) -> str:
    """The gateway's secret salt for subject hashes, made once and kept beside the buffer.

    A secret one, not the gateway id: ZK user ids are small numbers and card UIDs short, so a hash
    with a known salt would be reversed by trying them all. A file that is not 32 hex digits (a
    crash while it was written) is made again.
    """
    path = data_dir / SALT_FILE
    with contextlib.suppress(OSError, UnicodeDecodeError):
        salt = path.read_text(encoding="ascii").strip()
        if len(salt) == 32 and all(c in "0123456789abcdef" for c in salt):
            return salt
    salt = secrets.token_hex(16)
    data_dir.mkdir(parents=True, exist_ok=True)
    write_whole(path, salt, mode=0o600)
    return salt


def punch_message(event: PunchEvent, salt: str) -> dict[str, Any]:
    """The JSON of one punch, its subject only as a salted hash.

    Not the event id: it hashes the subject with the device and time, all of which are in this
    message or the device's state, so it could be reversed as easily as an unsalted subject.
    """
    return {
        "punch_ref": hmac.new(salt.encode(), event.event_id.encode(), hashlib.sha256).hexdigest(),
        "device_id": event.device_id,
        "source": event.source.value,
        "verify": event.verify.value,
        "punch": event.punch.value,
        "device_time": event.device_time.isoformat(),
        "occurred_at": event.occurred_at.isoformat(),
        "subject_hash": subject_hash(event.subject.key(), salt),
    }


def state_messages(snapshot: Snapshot) -> list[tuple[str, str]]:
    """(topic under the base, payload) of every retained state message of ``snapshot``."""
    data = snapshot.as_json()
    out: list[tuple[str, str]] = []
    for device in data["devices"]:
        topic = f"devices/{device['id']}"
        out.append((f"{topic}/availability", "online" if device["online"] else "offline"))
        out.append((f"{topic}/state", _json({k: device[k] for k in DEVICE_FIELDS})))
    summary = {k: data["sync"][k] for k in SUMMARY_FIELDS} | {"taken_at": data["taken_at"]}
    out.append(("bridge/summary", _json(summary)))
    out.append(("bridge/alerts", _json(data["alerts"])))
    return out


def _json(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"), default=str)


def _reason(reason_code: Any) -> str:
    return str(getattr(reason_code, "getName", lambda: reason_code)())


class LinkMetrics(Collector):
    """The bridge's link in the gateway's /metrics, read at each scrape."""

    def __init__(self, bridge: MqttBridge) -> None:
        self.bridge = bridge

    def collect(self) -> Iterator[Metric]:
        """Connected now (1 or 0), and the connections made since the gateway started."""
        where = [self.bridge.where]
        up = GaugeMetricFamily(f"{PREFIX}_mqtt_connected", "1 while connected to the MQTT broker", labels=["broker"])
        up.add_metric(where, 1.0 if self.bridge.connected else 0.0)
        connects = CounterMetricFamily(
            f"{PREFIX}_mqtt_connects", "Connections to the MQTT broker since the gateway started", labels=["broker"]
        )
        connects.add_metric(where, self.bridge.connects)
        yield from (up, connects)


class MqttBridge:
    """One gateway's MQTT connection; see the module docstring. ``start()`` once, ``stop()`` once."""

    def __init__(self, service: GatewayService, settings: MqttSection) -> None:
        self.service = service
        self.settings = settings
        self.gateway_id = service.config.gateway.id
        self.salt = pseudonym_salt(service.config.gateway.data_dir)
        self.base = settings.topic_base(self.gateway_id)
        self.where = f"{settings.host}:{settings.port}"
        self.state_publishes = 0  # full state publications so far (for tests and diagnostics)
        self.connects = 0  # connections accepted by the broker so far (in /metrics)
        self._refused_told = False  # a refused publish was logged on this connection
        self._metrics = LinkMetrics(self)
        self._link = "starting"  # the last logged: connected, refused: <why>, or down (lost or unreachable)
        self._stop = threading.Event()
        self._online = threading.Event()  # connected and said online: state and punches may go out
        self._wake = threading.Event()
        self._catch_up = threading.Event()
        self._requests: queue.Queue[Request | None] = queue.Queue(MAX_WAITING_COMMANDS)
        self._threads: list[threading.Thread] = []
        self.client = self._make_client()

    # --- the connection ----------------------------------------------------------------------------

    def _make_client(self) -> mqtt.Client:
        s = self.settings
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"ekinerja-{self.gateway_id}", protocol=mqtt.MQTTv5)
        if s.username is not None:
            client.username_pw_set(s.username, s.password)
        if s.tls:
            client.tls_set(ca_certs=str(s.ca_file) if s.ca_file else None)
        client.will_set(self.topic("bridge/state"), "offline", qos=QOS, retain=True)
        client.reconnect_delay_set(min_delay=1, max_delay=60)
        client.max_queued_messages_set(MAX_QUEUED)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_publish = self._on_publish
        return client

    def topic(self, name: str) -> str:
        """The full topic of ``name`` under the base topic."""
        return f"{self.base}/{name}"

    @property
    def connected(self) -> bool:
        """Whether the broker accepted us and has not been lost since."""
        return self._online.is_set() and self.client.is_connected()

    def start(self) -> None:
        """Connect in the background (retried with backoff) and start publishing state."""
        self.service.metrics.registry.register(self._metrics)
        self.service.on_punches = self.punches
        self.client.connect_async(self.settings.host, self.settings.port, keepalive=self.settings.keepalive_s)
        self.client.loop_start()
        for target, name in ((self._state_loop, "mqtt state"), (self._command_loop, "mqtt commands")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        """Say ``offline``, disconnect and end the bridge's threads (a running command is not waited for long)."""
        self.service.on_punches = lambda events: None
        self._stop.set()
        self._wake.set()
        with contextlib.suppress(queue.Full):  # a full queue: the worker sees _stop after its command
            self._requests.put_nowait(None)
        if self.client.is_connected():
            info = self.client.publish(self.topic("bridge/state"), "offline", qos=QOS, retain=True)
            try:
                info.wait_for_publish(STOP_WAIT_S)
            except (ValueError, RuntimeError) as exc:
                log.warning("MQTT: could not say offline to %s: %s", self.where, exc)
        self.client.disconnect()
        log.info("MQTT: disconnected from %s", self.where)
        stopper = threading.Thread(target=self.client.loop_stop, name="mqtt stop", daemon=True)
        stopper.start()  # loop_stop waits without a timeout for a connect in progress
        for thread in (stopper, *self._threads):
            thread.join(STOP_WAIT_S)
        with contextlib.suppress(KeyError):  # never started
            self.service.metrics.registry.unregister(self._metrics)

    def _note(self, link: str, level: int, message: str, *args: object) -> None:
        """Log a change of the link once, not at every retry."""
        if link != self._link:
            self._link = link
            log.log(level, message, *args)

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        if reason_code.is_failure:
            why = _reason(reason_code)
            self._note(f"refused: {why}", logging.WARNING, "MQTT: broker %s refused us: %s; retrying", self.where, why)
            return
        self._note("connected", logging.INFO, "MQTT: connected to %s, publishing under %s", self.where, self.base)
        self.connects += 1
        self._refused_told = False
        client.publish(self.topic("bridge/state"), "online", qos=QOS, retain=True)
        client.subscribe(self.topic("bridge/request/+"), qos=QOS)
        self._online.set()
        self._catch_up.set()
        self._wake.set()

    def _on_connect_fail(self, client: mqtt.Client, userdata: Any) -> None:
        why = " (or its TLS certificate not trusted)" if self.settings.tls else ""
        self._note("down", logging.WARNING, "MQTT: broker %s unreachable%s; retrying with backoff", self.where, why)

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        self._online.clear()
        if not self._stop.is_set() and self._link == "connected":
            why = _reason(reason_code)
            self._note("down", logging.WARNING, "MQTT: lost broker %s (%s); reconnecting", self.where, why)

    def _on_publish(self, client: mqtt.Client, userdata: Any, mid: int, reason_code: Any, properties: Any) -> None:
        """A publish the broker refused (MQTT v5 reason code): most likely its ACL; said once per connection."""
        if not reason_code.is_failure or self._refused_told:
            return
        self._refused_told = True
        log.warning(
            "MQTT: broker %s refused a message under %s (%s): does its ACL let user %r publish there? A gateway's "
            "MQTT user name must be its gateway id, with base_topic unset (deploy/mosquitto/README.md)",
            self.where,
            self.base,
            _reason(reason_code),
            self.settings.username,
        )

    def _publish(self, name: str, payload: str, *, retain: bool, properties: Properties | None = None) -> bool:
        """Hand one message to paho (it queues, never blocks); skipped while not connected."""
        if not self.connected:
            return False
        info = self.client.publish(self.topic(name), payload, qos=QOS, retain=retain, properties=properties)
        return bool(info.rc == mqtt.MQTT_ERR_SUCCESS)

    # --- state -------------------------------------------------------------------------------------

    def _availability(self) -> tuple[tuple[str, bool], ...]:
        """Which devices are online: cheap (no buffer query), compared every WATCH_S."""
        terminals = [(i, s.online) for i, s in self.service.status.items()]
        readers = [(i, s.online) for i, s in self.service.card_status.items()]
        return tuple(terminals + readers)

    def _state_loop(self) -> None:
        """Publish the state every ``state_interval_s``, on connect, and soon after availability changes."""
        seen: tuple[tuple[str, bool], ...] | None = None
        due = 0.0
        while not self._stop.is_set():
            self._wake.wait(WATCH_S)
            self._wake.clear()
            if self._stop.is_set() or not self._online.is_set():
                continue
            now, availability = time.monotonic(), self._availability()
            if self._catch_up.is_set() or availability != seen or now >= due:
                self._catch_up.clear()
                try:
                    self.publish_state()
                except Exception:  # the bridge must outlive any surprise: the next round tries again
                    log.exception("MQTT: state not published")
                seen, due = availability, now + self.settings.state_interval_s

    def publish_state(self) -> None:
        """Publish every device's availability and state, the summary and the alerts (retained)."""
        for name, payload in state_messages(self.service.snapshot()):
            self._publish(name, payload, retain=True)
        self.state_publishes += 1

    # --- punches -----------------------------------------------------------------------------------

    def punches(self, events: Sequence[PunchEvent]) -> None:
        """``service.on_punches``: publish the punches the keepers just stored (they skip large catch-up reads)."""
        try:
            for event in events:
                self.punch(event)
        except Exception:  # never let MQTT turn a stored punch into an error
            log.exception("MQTT: punches not published")

    def punch(self, event: PunchEvent) -> None:
        """Publish one punch on ``devices/<id>/punch`` (QoS 1, not retained); thread-safe, never blocks."""
        self._publish(f"devices/{event.device_id}/punch", _json(punch_message(event, self.salt)), retain=False)

    # --- commands ----------------------------------------------------------------------------------

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        """A request: queued for the worker (paho's thread must not wait for a pull)."""
        name = message.topic.rpartition("/")[2]
        if message.retain:  # a retained request would run again at every reconnect
            log.warning("MQTT: ignored a retained request %r; send commands without retain", name)
            return
        properties = message.properties
        default = self.topic(f"bridge/response/{name}")
        asked = getattr(properties, "ResponseTopic", None)
        # Only under bridge/response/: a request must not make the gateway publish elsewhere (its own
        # request topics, another device's state) with its credentials.
        allowed = asked is not None and asked.startswith(self.topic("bridge/response/"))
        if asked is not None and not allowed:
            log.warning("MQTT: response topic %r of %s is outside %s; answered on %s", asked, name, self.base, default)
        request = Request(
            name=name,
            payload=bytes(message.payload),
            response_topic=asked if allowed and asked else default,
            correlation=getattr(properties, "CorrelationData", None),
        )
        try:
            self._requests.put_nowait(request)
        except queue.Full:
            self.answer(request, {"ok": False, "error": f"busy: {MAX_WAITING_COMMANDS} commands waiting; try later"})

    def _command_loop(self) -> None:
        """Carry out requests one at a time and answer each."""
        while True:
            request = self._requests.get()
            if request is None or self._stop.is_set():
                return
            log.info("MQTT: command %s", request.name)
            self.answer(request, commands.handle(self.service, request.name, request.payload))

    def answer(self, request: Request, result: dict[str, Any]) -> None:
        """Publish ``result`` to the request's response topic, echoing its correlation data."""
        properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        if request.correlation is not None:
            properties.CorrelationData = request.correlation
        if not self.client.is_connected():
            log.warning("MQTT: answer to %s not sent: not connected to %s", request.name, self.where)
            return
        try:
            self.client.publish(request.response_topic, _json(result), qos=QOS, retain=False, properties=properties)
        except ValueError as exc:  # a response topic with wildcards
            log.warning("MQTT: answer to %s not sent to %r: %s", request.name, request.response_topic, exc)


def start_bridge(service: GatewayService) -> MqttBridge | None:
    """Start the MQTT bridge of ``service`` when its config has ``[mqtt]``; None otherwise."""
    settings = service.config.mqtt
    if settings is None:
        return None
    bridge = MqttBridge(service, settings)
    bridge.start()
    return bridge
