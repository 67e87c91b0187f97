"""A long outage of the store with 50,000 punches waiting.

While the store answers 503 (as it does with its database down, or a proxy with no store behind
it), the gateway keeps reading its terminals into the buffer, backs off instead of hammering (and
honours the store's Retry-After), and shows the backlog on its page and over MQTT. When the store
comes back, the backlog drains, in the order the punches were buffered, each exactly once.
"""

from __future__ import annotations

import itertools
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, closing, contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

from ekinerja.config.gateway import GatewayConfig
from ekinerja.config.loader import load_model
from ekinerja.drivers.sim.zk_device import ZkDevice
from ekinerja.drivers.sim.zk_server import ZkSimulator
from ekinerja.gateway.service import BUFFER_FILE, GatewayService

from mosquitto import PASSWORD, USER, Mosquitto, Subscriber
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
from xdist_groups import STRESS

TOKEN = "outage-token-opd-1"
pytestmark = STRESS  # one at a time (tests/xdist_groups.py)
RECORDS_PER_TERMINAL = 25_000
RETRY_AFTER_S = 1
MAX_BACKOFF_S = 4


class _Unavailable(BaseHTTPRequestHandler):
    """Answers every request 503 with a Retry-After, and notes when each came."""

    seen: list[tuple[float, str, str]]

    def _answer(self) -> None:
        self.seen.append((time.monotonic(), self.command, self.path))
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        body = b'{"detail": "the store\'s database is unavailable; retry later"}'
        self.send_response(503)
        self.send_header("Retry-After", str(RETRY_AFTER_S))
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the test reads ``seen`` instead."""


@contextmanager
def store_down(port: int) -> Iterator[list[tuple[float, str, str]]]:
    """A server on ``port`` that answers 503 to everything; yields the requests it got."""
    seen: list[tuple[float, str, str]] = []
    handler = type("Unavailable", (_Unavailable,), {"seen": seen})
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    thread = threading.Thread(target=server.serve_forever, name="store-down", daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def buffered_order(data_dir: Path) -> list[tuple[str, str, str, str]]:
    """Every punch in the buffer in the order it was buffered: (device, subject, device time, punch)."""
    query = (
        "SELECT r.device_id, e.subject, e.device_time, e.punch FROM events e JOIN reads r ON r.id = e.read_id "
        "ORDER BY e.seq"
    )
    with closing(sqlite3.connect(data_dir / BUFFER_FILE)) as db:
        return [tuple(row) for row in db.execute(query)]


def summary_shows(sub: Subscriber, check: Callable[[dict[str, object]], bool]) -> bool:
    last = sub.last("ekinerja/opd-1/bridge/summary")
    return last is not None and check(last.json())


def test_50000_punches_wait_out_the_outage_and_drain_in_order(tmp_path: Path, mosquitto: Mosquitto) -> None:
    terminals = [
        ZkDevice.generate(users=300, records=RECORDS_PER_TERMINAL, serial=f"OUTAGE000{n}", seed=60 + n) for n in (1, 2)
    ]
    port = free_port()
    sub = Subscriber(mosquitto, "ekinerja/opd-1/bridge/#")
    with ZkSimulator(terminals[0]) as sim_a, ZkSimulator(terminals[1], protocol="udp") as sim_b:
        config_path = write_gateway_toml(
            tmp_path, f"http://127.0.0.1:{port}", TOKEN,
            {"pintu-a": (sim_a.port, "tcp"), "pintu-b": (sim_b.port, "udp")},
            extra_store=f"max_backoff_s = {MAX_BACKOFF_S}", poll_interval_s=2,
            device_extra=dict.fromkeys(("pintu-a", "pintu-b"), "timeout_s = 20"),
        )  # fmt: skip
        config_path.write_text(
            config_path.read_text() + f'\n[mqtt]\nhost = "127.0.0.1"\nport = {mosquitto.port}\n'
            f'username = "{USER}"\npassword = "{PASSWORD}"\nstate_interval_s = 1\n'
        )
        config = load_model(config_path, GatewayConfig)
        service = GatewayService(config)
        total = 2 * RECORDS_PER_TERMINAL
        with ExitStack() as outage, running(service):
            requests = outage.enter_context(store_down(port))
            wait_for(lambda: service.buffer.backlog().pending == total, 120, "every punch to wait in the buffer")
            outage_started = time.monotonic()
            assert service.web is not None
            page = f"{service.web.url.rstrip('/')}/api/status"
            wait_for(lambda: httpx.get(page).json()["sync"]["pending"] == total, 10, "the page to show the backlog")
            status = httpx.get(page).json()["sync"]
            assert status["store_reachable"] is False and "503" in status["last_error"]
            wait_for(lambda: summary_shows(sub, lambda s: s["pending"] == total and s["store_reachable"] is False),
                     10, "MQTT's bridge/summary to show the backlog")  # fmt: skip
            time.sleep(max(0.0, 18 - (time.monotonic() - outage_started)))
            posts = [at for at, method, path in requests if method == "POST" and path == "/v1/punches"]
            outage.close()
            with store_server(f"sqlite:///{tmp_path}/store.db", {"opd-1": TOKEN}, port=port) as url:
                wait_for(lambda: service.buffer.backlog().pending == 0, 120, "the backlog to drain")
                feed = read_whole_feed(url)
                wait_for(lambda: summary_shows(sub, lambda s: s["pending"] == 0 and s["store_reachable"] is True),
                         10, "MQTT's bridge/summary to show the backlog gone")  # fmt: skip
    sub.close()
    gaps = [b - a for a, b in itertools.pairwise(posts)]
    outage_s = posts[-1] - posts[0] if posts else 0
    # Every 0.5 s (the push interval) would be 30 or more; backing off to 4 s, about 6 to 9.
    assert outage_s > 12 and len(posts) <= 12, f"{len(posts)} pushes in {outage_s:.0f} s: it hammered"
    assert min(gaps) >= RETRY_AFTER_S - 0.1, f"Retry-After {RETRY_AFTER_S} s not honoured: {gaps}"
    assert min(gaps[3:]) >= MAX_BACKOFF_S / 2 - 0.1, f"the backoff did not grow: {gaps}"
    assert feed_punches(feed) == device_punches(*terminals)
    assert len({item.event.event_id for item in feed}) == len(feed) == total
    in_feed = [(i.event.device_id, i.event.subject.key(), i.event.device_time.isoformat(), i.event.punch.value)
               for i in feed]  # fmt: skip
    assert in_feed == buffered_order(config.gateway.data_dir), "the backlog did not drain in buffer order"
    print(json.dumps({"punches": total, "pushes_during_outage": len(posts), "outage_s": round(outage_s, 1)}))
