"""The MQTT broker killed (kill -9) and started again, again and again, while people keep punching.

A real gateway captures one simulated terminal live and polls another every second, pushes to the
real store, and reports over MQTT to a real mosquitto (no persistence: each restart forgets every
retained message). Each time the broker dies the gateway must keep pushing, show the link down in
its own /metrics, and once the broker is back say "online" again and restore its retained state.
At the end the store holds each terminal's log exactly, and the punches published after the last
restart have all reached a subscriber.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import random
import threading
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest

from ekinerja.config.gateway import GatewayConfig
from ekinerja.config.loader import load_model
from ekinerja.drivers.sim.zk_device import ZkDevice
from ekinerja.drivers.sim.zk_server import ZkSimulator
from ekinerja.gateway.service import GatewayService
from ekinerja.sync.contract import FeedItem

from mosquitto import Mosquitto, Subscriber, link_metrics, mqtt_table
from stack import device_punches, feed_punches, read_whole_feed, running, store_server, wait_for, write_gateway_toml

TOKEN = "mqtt-restart-token-1"
BASE = "ekinerja/opd-1"
RESTARTS = 3
DEVICES = ("pintu", "samping")  # pintu captured live, samping polled every second


class Puncher:
    """People punching on the terminals in turn every tenth of a second, in a thread; each punch unique."""

    def __init__(self, devices: list[ZkDevice]) -> None:
        self.devices = devices
        self.rng = random.Random(41)
        # Today, after the generated logs (which end yesterday): no punch repeats another.
        self.moment = datetime.now(ZoneInfo("Asia/Jakarta")).replace(hour=0, minute=0, second=0, tzinfo=None)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._punch, name="puncher", daemon=True)

    def _punch(self) -> None:
        n = 0
        while not self.stop.wait(0.1):
            self.moment += timedelta(seconds=self.rng.randint(1, 30))
            self.devices[n % len(self.devices)].add_punch(str(1001 + self.rng.randrange(20)), self.moment)
            n += 1

    def __enter__(self) -> Puncher:
        self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop.set()
        self.thread.join(10)


def gateway(tmp_path: Path, url: str, broker: Mosquitto, sims: dict[str, ZkSimulator]) -> GatewayService:
    """Gateway opd-1 with [mqtt]: its service starts the bridge. A long state interval: only reconnects republish."""
    devices = {name: (sim.port, "tcp") for name, sim in sims.items()}
    path = write_gateway_toml(tmp_path, url, TOKEN, devices, poll_interval_s=1, device_extra={"pintu": "live = true"})
    path.write_text(path.read_text() + mqtt_table(broker.port, state_interval_s=600))
    return GatewayService(load_model(path, GatewayConfig))


def web_url(service: GatewayService) -> str:
    """The running gateway's status page (and /metrics) address."""
    wait_for(lambda: service.web is not None, what="the gateway's status page")
    assert service.web is not None
    return service.web.url


def grows(url: str, more: int, what: str) -> None:
    """Wait until the store's feed has ``more`` punches than now: the gateway is pushing."""
    target = len(read_whole_feed(url)) + more
    wait_for(lambda: len(read_whole_feed(url)) >= target, timeout_s=20, what=what)


def whole_state_online(sub: Subscriber, *, retained: bool | None = None) -> bool:
    """Whether ``sub`` has bridge/state and every device's availability "online", and a whole state round."""
    return (
        sub.seen(f"{BASE}/bridge/state", "online", retained=retained)
        and all(sub.seen(f"{BASE}/devices/{d}/availability", "online", retained=retained) for d in DEVICES)
        and bool(sub.on(f"{BASE}/bridge/alerts"))  # published last in a round
    )


def state_restored(broker: Mosquitto, restart: int) -> None:
    """After a restart: a whole state round with everything online, then the same retained for a late subscriber."""
    for retained in (None, True):  # the first may come before the round ends and get it live
        sub = Subscriber(broker)
        try:
            wait_for(
                lambda sub=sub, retained=retained: whole_state_online(sub, retained=retained),
                what=f"bridge/state and availability online{' retained' if retained else ''} after restart {restart}",
            )
        finally:
            sub.close()


def restart_broker(broker: Mosquitto, url: str, web: str, restart: int) -> None:
    """Kill the broker; the gateway shows it and keeps pushing; start it; the gateway is back."""
    broker.kill()
    wait_for(lambda: link_metrics(web)["connected"] == 0, what="the gateway's /metrics to show MQTT down")
    grows(url, 10, f"punches pushed while the broker is down (restart {restart})")
    assert not broker.running and link_metrics(web)["connected"] == 0
    assert page_link(web) == {"broker": f"127.0.0.1:{broker.port}", "connected": False}, "the status page says so too"
    broker.start()
    back = {"connected": 1.0, "connects": restart + 1.0}
    wait_for(lambda: link_metrics(web) == back, what=f"the bridge reconnected, {back} in /metrics")
    assert page_link(web)["connected"] is True
    state_restored(broker, restart)


def page_link(web: str) -> dict[str, object]:
    """The MQTT link as the status page's /api/status shows it."""
    link: dict[str, object] = httpx.get(f"{web}/api/status", timeout=10).json()["mqtt"]
    return link


def punch_refs(service: GatewayService, items: list[FeedItem]) -> set[str]:
    """The ``punch_ref`` each stored punch has on MQTT (an HMAC of its event id with the gateway's salt)."""
    salt = (service.config.gateway.data_dir / "mqtt_salt").read_text().encode()
    return {hmac.new(salt, i.event.event_id.encode(), hashlib.sha256).hexdigest() for i in items}


def test_broker_killed_again_and_again_under_load(
    tmp_path: Path, mosquitto: Mosquitto, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="ekinerja.gateway.mqtt")
    terminals = [ZkDevice.generate(users=20, records=30, serial=f"MQTTRS000{n}", seed=40 + n) for n in (1, 2)]
    with (
        ZkSimulator(terminals[0]) as pintu,
        ZkSimulator(terminals[1]) as samping,
        store_server(f"sqlite:///{tmp_path}/store.db", {"opd-1": TOKEN}) as url,
    ):
        service = gateway(tmp_path, url, mosquitto, {"pintu": pintu, "samping": samping})
        with Puncher(terminals) as puncher, running(service):
            web = web_url(service)
            state_restored(mosquitto, 0)
            for restart in range(1, RESTARTS + 1):
                grows(url, 20, f"punches pushed before restart {restart}")
                restart_broker(mosquitto, url, web, restart)
            after_last = published_after_last_restart(mosquitto, service, url, terminals, puncher)
            feed = read_whole_feed(url)
        check_store(feed, terminals)
    said = [(r.name, r.levelno, r.getMessage()) for r in caplog.records if r.name.startswith("ekinerja")]
    warned = [text for name, level, text in said if name == "ekinerja.gateway.mqtt" and level >= logging.WARNING]
    assert len(warned) == RESTARTS and all("lost broker" in w for w in warned), f"one per outage: {warned}"
    assert not [text for _, level, text in said if level >= logging.ERROR]
    print(
        f"\n{RESTARTS} broker kills; {len(feed)} punches checked in the store; {after_last} seen on MQTT after the last"
    )


def published_after_last_restart(
    broker: Mosquitto, service: GatewayService, url: str, terminals: list[ZkDevice], puncher: Puncher
) -> int:
    """Every punch made once a subscriber is listening reaches it; returns how many."""
    sub = Subscriber(broker)
    try:
        wait_for(lambda: whole_state_online(sub), what="the subscriber to get the state")
        marks = [d.record_count for d in terminals]
        grows(url, 30, "punches after the last restart")
        puncher.stop.set()
        puncher.thread.join(10)
        wait_for(
            lambda: len(read_whole_feed(url)) == sum(d.record_count for d in terminals), what="the store to catch up"
        )
        new = {(d.serial, r.user_id, r.timestamp) for d, m in zip(terminals, marks, strict=True) for r in d.records[m:]}
        made = [
            i
            for i in read_whole_feed(url)
            if (i.event.device_serial, i.event.subject.zk_user_id, i.event.device_time) in new
        ]
        expected = punch_refs(service, made)
        got = lambda: {m.json()["punch_ref"] for d in DEVICES for m in sub.on(f"{BASE}/devices/{d}/punch")}  # noqa: E731
        wait_for(lambda: expected <= got(), what=f"all {len(expected)} punches made after the last restart on MQTT")
        return len(expected)
    finally:
        sub.close()


def check_store(feed: list[FeedItem], terminals: list[ZkDevice]) -> None:
    """The store holds each terminal's log exactly: nothing lost, nothing doubled."""
    expected, got = device_punches(*terminals), feed_punches(feed)
    missing, extra = sum((expected - got).values()), sum((got - expected).values())
    assert got == expected, f"{missing} punch(es) missing from the store, {extra} extra or doubled"
    assert len({item.event.event_id for item in feed}) == len(feed)
