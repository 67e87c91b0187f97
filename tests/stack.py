"""Real parts for end-to-end tests: a store served by uvicorn on a loopback socket, free ports.

Everything here runs the project's real code over real sockets; nothing is faked.
"""

from __future__ import annotations

import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import uvicorn

from ekinerja.config.store import ApiClient, GatewayCredential, StoreConfig, StoreSection
from ekinerja.drivers.sim.zk_device import ZkDevice
from ekinerja.drivers.zkteco import ZkSettings
from ekinerja.gateway.service import GatewayService
from ekinerja.store.app import create_app
from ekinerja.store.db import make_engine
from ekinerja.store.schema import upgrade
from ekinerja.sync.contract import EventFactory, FeedItem, FeedPage, Punch, PunchEvent, Source, Subject, Verify


def zk_settings(port: int, protocol: str = "tcp", **overrides: object) -> ZkSettings:
    """Driver settings for terminal ``pintu`` of gateway opd-1 on a loopback port."""
    args: dict[str, object] = {
        "gateway_id": "opd-1", "device_id": "pintu", "host": "127.0.0.1", "port": port,
        "protocol": protocol, "timeout_s": 1.5,
    }  # fmt: skip
    args.update(overrides)
    return ZkSettings(**args)  # type: ignore[arg-type]


def punch_set(events: Iterable[PunchEvent]) -> set[tuple[str | None, datetime, int]]:
    """Events as (user id, device time, ZK punch code), to compare with :func:`logged`."""
    order = list(Punch)
    return {(e.subject.zk_user_id, e.device_time, order.index(e.punch)) for e in events}


def logged(device: ZkDevice) -> set[tuple[str | None, datetime, int]]:
    """What a terminal's log holds, in the form of :func:`punch_set`."""
    return {(r.user_id, r.timestamp, r.punch) for r in device.records}


def free_port() -> int:
    """A TCP port that was free a moment ago (for servers that must bind it themselves)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def store_server(database_url: str, gateways: dict[str, str], port: int | None = None) -> Iterator[str]:
    """Migrate ``database_url`` and serve the store on 127.0.0.1; yields its base URL."""
    port = port or free_port()
    config = StoreConfig(
        store=StoreSection(database_url=database_url, listen=f"127.0.0.1:{port}"),
        gateways=[GatewayCredential(id=gid, token=token) for gid, token in gateways.items()],
        clients=[ApiClient(id="feed-reader", token=FEED_TOKEN)],
    )
    engine = make_engine(database_url)
    upgrade(engine)
    server = uvicorn.Server(
        uvicorn.Config(create_app(config, engine), host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, name="store", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError(f"store did not start on port {port}")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        engine.dispose()


@contextmanager
def running(service: GatewayService) -> Iterator[GatewayService]:
    """``service.run`` in a thread for the block; stopped and closed after it."""
    stop = threading.Event()
    thread = threading.Thread(target=service.run, args=(stop,), name="gateway", daemon=True)
    thread.start()
    try:
        yield service
    finally:
        stop.set()
        thread.join(30)
        service.close()
        assert not thread.is_alive(), "the gateway did not stop"


def wait_for(condition: Callable[[], object], timeout_s: float = 15, what: str = "condition") -> None:
    """Wait until ``condition()`` is true; fail the test, naming ``what``, after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {timeout_s} s waiting for {what}"
        time.sleep(0.02)


FEED_TOKEN = "feed-reader-token-1"
"""The client token of the test stores (store_server, tests/store_process.py) that reads the feed."""
FEED_AUTH = {"Authorization": f"Bearer {FEED_TOKEN}"}


def read_whole_feed(base_url: str, limit: int = 5000) -> list[FeedItem]:
    """Every item of the store's feed, following ``next_after`` page by page."""
    items: list[FeedItem] = []
    after = 0
    with httpx.Client(base_url=base_url, timeout=30, headers=FEED_AUTH) as client:
        while True:
            response = client.get("/v1/feed", params={"after": after, "limit": limit})
            response.raise_for_status()
            page = FeedPage.model_validate_json(response.content)
            items += page.items
            after = page.next_after
            if not page.has_more:
                return items


def write_gateway_toml(
    folder: Path,
    store_url: str,
    token: str,
    devices: dict[str, tuple[int, str]],
    *,
    gateway_id: str = "opd-1",
    extra_store: str = "",
    poll_interval_s: float = 1,
    device_extra: dict[str, str] | None = None,
) -> Path:
    """A gateway.toml with one ZK device per ``{id: (port, protocol)}``; returns its path.

    ``device_extra`` adds TOML lines to the devices it names (e.g. ``{"pintu": "live = true"}``).
    """
    text = (
        f'[gateway]\nid = "{gateway_id}"\ndata_dir = "data"\n\n'
        f'[store]\nurl = "{store_url}"\ntoken = "{token}"\npush_interval_s = 0.5\n{extra_store}\n'
        '\n[web]\nlisten = "127.0.0.1:0"\n'  # a free port: tests run gateways side by side
    )
    for device_id, (port, protocol) in devices.items():
        extra = (device_extra or {}).get(device_id, "")
        text += (
            f'\n[[devices]]\nid = "{device_id}"\nkind = "zk"\nhost = "127.0.0.1"\nport = {port}\n'
            f'protocol = "{protocol}"\npoll_interval_s = {poll_interval_s}\n'
            f"{'' if 'timeout_s' in extra else 'timeout_s = 3'}\n{extra}\n"
        )
    path = folder / "gateway.toml"
    path.write_text(text)
    return path


def make_events(
    n: int, *, start: datetime = datetime(2026, 1, 5, 7, 0), first: int = 0, device: str = "pintu", users: int = 13
) -> list[PunchEvent]:
    """``n`` punches of gateway opd-1, one second apart from ``start`` (event ``first`` onwards)."""
    factory = EventFactory(
        gateway_id="opd-1", device_id=device, device_serial=f"SN-{device}", source=Source.ZK,
        timezone="Asia/Jakarta", captured_at=datetime.now(UTC),
    )  # fmt: skip
    return [
        factory.make(subject=Subject(zk_user_id=str(1000 + i % users)), verify=Verify.CARD, punch=Punch.IN,
                     device_time=start + timedelta(seconds=i))
        for i in range(first, first + n)
    ]  # fmt: skip


def device_punches(*devices: ZkDevice) -> Counter[tuple[str, str, datetime, int]]:
    """What the terminals hold, as (serial, user, time, punch) with multiplicity."""
    return Counter((d.serial, r.user_id, r.timestamp, r.punch) for d in devices for r in d.records)


def feed_punches(items: list[FeedItem]) -> Counter[tuple[str, str, datetime, int]]:
    """What the store's feed holds, in the same form as :func:`device_punches`."""
    punches = list(Punch)
    return Counter(
        (
            i.event.device_serial or "",
            i.event.subject.zk_user_id or "",
            i.event.device_time,
            punches.index(i.event.punch),
        )
        for i in items
    )
