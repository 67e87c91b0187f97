"""A throwaway mosquitto broker and independent MQTT clients for the tests (RIG.md, "MQTT: mosquitto").

The broker is a child of the test session listening on 127.0.0.1 on a free port, with
``allow_anonymous false``, a password file made by ``mosquitto_passwd -b`` and no persistence, so
a restart forgets every retained message. Started as root it drops to the ``mosquitto`` user, so
its folder is made with ``tempfile.mkdtemp()`` and given to that user (pytest's ``tmp_path`` sits
under a 0700 folder it cannot enter). :class:`Subscriber` is ``mosquitto_sub``, a client that shares
no code with the gateway; :class:`Requester` sends commands with MQTT v5 properties (paho).
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from prometheus_client.parser import text_string_to_metric_families

from servers import SETUP_HINT, free_port
from throwaway_ca import make_test_ca

MOSQUITTO = "/usr/sbin/mosquitto"
MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
MOSQUITTO_SUB = shutil.which("mosquitto_sub") or "/usr/bin/mosquitto_sub"
USER = "gateway"
PASSWORD = "mqtt-test-pw-1"
START_TIMEOUT_S = 10.0
IS_ROOT = os.geteuid() == 0


def _require() -> None:
    for path, what in (
        (MOSQUITTO, "mosquitto"),
        (MOSQUITTO_PASSWD, "mosquitto_passwd"),
        (MOSQUITTO_SUB, "mosquitto_sub"),
    ):
        if not os.path.exists(path):
            pytest.fail(f"{what} not found at {path}: {SETUP_HINT}", pytrace=False)


def _give_to_mosquitto(*paths: Path) -> None:
    """As root: let the broker, once it has dropped to the mosquitto user, read its files."""
    if not IS_ROOT:
        return
    account = pwd.getpwnam("mosquitto")
    for path in paths:
        os.chown(path, account.pw_uid, account.pw_gid)


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


class Mosquitto:
    """A broker this test controls: start, stop (SIGTERM), kill (SIGKILL), start again on the same port.

    With ``tls``, a second listener on ``tls_port`` serves TLS with a certificate from a throwaway
    CA (``ca_file``), under the same password file. ``users`` ({name: password}) are added beside
    the default :data:`USER`; ``acl_file`` (a copy of it) restricts what each user may publish and read.
    A test may rewrite ``conf`` before :meth:`start` (to load a shipped config with these files).
    """

    def __init__(self, *, tls: bool = False, users: dict[str, str] | None = None, acl_file: Path | None = None) -> None:
        _require()
        self.port = free_port()
        self.folder = Path(tempfile.mkdtemp(prefix="ekinerja-mosquitto-"))
        self.log = self.folder / "mosquitto.log"
        self.password_file = self.folder / "passwords"
        self._add_users({USER: PASSWORD} | (users or {}))
        self.conf = self.folder / "mosquitto.conf"
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous false\npassword_file {self.password_file}\n"
            "persistence false\nlog_dest stderr\nlog_type error\nlog_type warning\nlog_type notice\n"
            "log_type information\nconnection_messages true\n"
        )
        self.acl_file: Path | None = None
        if acl_file is not None:  # a copy the mosquitto user can read (the original may sit in a 0700 folder)
            self.acl_file = self.folder / "acl"
            shutil.copyfile(acl_file, self.acl_file)
            with self.conf.open("a") as conf:
                conf.write(f"acl_file {self.acl_file}\n")
        self.tls_port: int | None = None
        self.ca_file: Path | None = None
        self.cert_file: Path | None = None
        self.key_file: Path | None = None
        if tls:
            self.ca_file, self.cert_file, self.key_file = make_test_ca(self.folder)
            self.tls_port = free_port()
            with self.conf.open("a") as conf:
                conf.write(
                    f"listener {self.tls_port} 127.0.0.1\ncafile {self.ca_file}\ncertfile {self.cert_file}\n"
                    f"keyfile {self.key_file}\n"
                )
            _give_to_mosquitto(self.cert_file, self.key_file, self.ca_file)
        _give_to_mosquitto(self.folder, self.password_file, self.conf, *filter(None, [self.acl_file]))
        self.proc: subprocess.Popen[bytes] | None = None

    def _add_users(self, users: dict[str, str]) -> None:
        """Write the password file: ``mosquitto_passwd -b`` once per user (``-c`` makes it afresh)."""
        create = ["-c"]
        for user, password in users.items():
            subprocess.run(
                [MOSQUITTO_PASSWD, *create, "-b", str(self.password_file), user, password],
                check=True,
                capture_output=True,
            )
            create = []
        self.password_file.chmod(0o600)

    @property
    def running(self) -> bool:
        """Whether the broker process is alive."""
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        """Start the broker; returns once it accepts connections."""
        assert not self.running, "mosquitto is running already"
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)], stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT_S
        while not (_answers(self.port) and (self.tls_port is None or _answers(self.tls_port))):
            if self.proc.poll() is not None:
                pytest.fail(f"mosquitto exited with {self.proc.returncode}:\n{self.tail()}", pytrace=False)
            if time.monotonic() > deadline:
                self.kill()
                pytest.fail(f"mosquitto not listening after {START_TIMEOUT_S} s:\n{self.tail()}", pytrace=False)
            time.sleep(0.02)

    def stop(self) -> None:
        """Stop the broker cleanly (SIGTERM)."""
        self._end(signal.SIGTERM)

    def kill(self) -> None:
        """Kill the broker (SIGKILL): no goodbye to any client."""
        self._end(signal.SIGKILL)

    def _end(self, sig: int) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def close(self) -> None:
        """Stop the broker and remove its folder."""
        self.kill()
        shutil.rmtree(self.folder, ignore_errors=True)

    def tail(self, lines: int = 30) -> str:
        """The end of the broker's log, for failure messages."""
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


@dataclass(frozen=True)
class Message:
    """One message as ``mosquitto_sub -F '%t %r %p'`` printed it."""

    topic: str
    retained: bool
    payload: str

    def json(self) -> Any:
        """The payload parsed as JSON."""
        return json.loads(self.payload)


class Subscriber:
    """``mosquitto_sub`` on ``topic`` in a subprocess; collects what it prints (it reconnects by itself)."""

    def __init__(
        self, broker: Mosquitto, topic: str = "ekinerja/#", password: str = PASSWORD, *, user: str = USER
    ) -> None:
        command = [MOSQUITTO_SUB, "-V", "mqttv5", "-h", "127.0.0.1", "-p", str(broker.port)]
        command += ["-u", user, "-P", password, "-q", "1", "-t", topic, "-F", "%t %r %p"]
        self.proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.messages: list[Message] = []
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, name="mosquitto_sub", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            topic, retained, payload = raw.decode().rstrip("\n").split(" ", 2)
            with self._lock:
                self.messages.append(Message(topic, retained == "1", payload))

    def on(self, topic: str) -> list[Message]:
        """The messages received on ``topic`` so far, oldest first."""
        with self._lock:
            return [m for m in self.messages if m.topic == topic]

    def last(self, topic: str) -> Message | None:
        """The newest message on ``topic``, if any."""
        received = self.on(topic)
        return received[-1] if received else None

    def seen(self, topic: str, payload: str, *, retained: bool | None = None) -> bool:
        """Whether ``payload`` arrived on ``topic`` (flagged retained or not, when asked)."""
        return any(m.payload == payload and retained in (None, m.retained) for m in self.on(topic))

    def after(self, topic: str, payload: str) -> list[Message]:
        """Every message received after the first ``payload`` on ``topic`` (none before it came)."""
        with self._lock:
            for n, m in enumerate(self.messages):
                if m.topic == topic and m.payload == payload:
                    return self.messages[n + 1 :]
            return []

    def close(self) -> None:
        """End mosquitto_sub."""
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._reader.join(5)


class Requester:
    """A separate paho client that sends commands (MQTT v5 properties) and collects the answers."""

    def __init__(self, broker: Mosquitto, base: str, *, user: str = USER, password: str = PASSWORD) -> None:
        self.base = base
        self.answers: dict[str, list[tuple[dict[str, Any], bytes | None]]] = {}
        self._changed = threading.Condition()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"test-{uuid.uuid4().hex[:8]}", protocol=mqtt.MQTTv5
        )
        self.client.username_pw_set(user, password)
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()
        self.listen(f"{base}/bridge/response/+")

    def listen(self, topic: str) -> None:
        """Subscribe to ``topic`` (where answers come) and wait until the broker confirmed it."""
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *args: subscribed.set()
        self.client.subscribe(topic, qos=1)
        assert subscribed.wait(5), f"not subscribed to {topic}"

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        correlation = getattr(message.properties, "CorrelationData", None)
        with self._changed:
            self.answers.setdefault(message.topic, []).append((json.loads(message.payload), correlation))
            self._changed.notify_all()

    def request(
        self,
        name: str,
        payload: str | bytes = b"",
        *,
        correlation: bytes | None = None,
        response_topic: str | None = None,
        timeout_s: float = 15,
    ) -> tuple[dict[str, Any], bytes | None]:
        """Send command ``name`` and return its answer and the correlation data it carried."""
        answer_topic = response_topic or f"{self.base}/bridge/response/{name}"
        properties = Properties(PacketTypes.PUBLISH)
        if correlation is not None:
            properties.CorrelationData = correlation
        if response_topic is not None:
            properties.ResponseTopic = response_topic
        with self._changed:
            before = len(self.answers.get(answer_topic, []))
            self.client.publish(f"{self.base}/bridge/request/{name}", payload, qos=1, properties=properties)
            arrived: Callable[[], bool] = lambda: len(self.answers.get(answer_topic, [])) > before  # noqa: E731
            assert self._changed.wait_for(arrived, timeout_s), f"no answer to {name} on {answer_topic}"
            return self.answers[answer_topic][before]

    def close(self) -> None:
        """Disconnect."""
        self.client.disconnect()
        self.client.loop_stop()


def mqtt_table(port: int, user: str = USER, password: str = PASSWORD, **extra: object) -> str:
    """A gateway.toml ``[mqtt]`` table for a broker on 127.0.0.1:``port`` (``extra``: more keys, as TOML)."""
    lines = ['host = "127.0.0.1"', f"port = {port}", f'username = "{user}"', f'password = "{password}"']
    lines += [f"{key} = {json.dumps(value)}" for key, value in extra.items()]
    return "\n[mqtt]\n" + "\n".join(lines) + "\n"


def link_metrics(web_url: str) -> dict[str, float]:
    """The gateway's MQTT link as its /metrics shows it: ``connected`` (1 or 0) and ``connects`` so far."""
    text = httpx.get(f"{web_url}/metrics", timeout=10).raise_for_status().text
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "ekinerja_gateway_mqtt_connected":
                found["connected"] = sample.value
            elif sample.name == "ekinerja_gateway_mqtt_connects_total":
                found["connects"] = sample.value
    assert set(found) == {"connected", "connects"}, f"no MQTT link in the gateway's /metrics: {found}"
    return found
