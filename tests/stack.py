"""Real parts for end-to-end tests: a store served by uvicorn on a loopback socket, free ports.

Everything here runs the project's real code over real sockets; nothing is faked.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import uvicorn

from ekinerja.config.store import GatewayCredential, StoreConfig, StoreSection
from ekinerja.store.app import create_app
from ekinerja.store.db import make_engine
from ekinerja.store.schema import upgrade
from ekinerja.sync.contract import FeedItem, FeedPage


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


def read_whole_feed(base_url: str, limit: int = 5000) -> list[FeedItem]:
    """Every item of the store's feed, following ``next_after`` page by page."""
    items: list[FeedItem] = []
    after = 0
    with httpx.Client(base_url=base_url, timeout=30) as client:
        while True:
            response = client.get("/v1/feed", params={"after": after, "limit": limit})
            response.raise_for_status()
            page = FeedPage.model_validate_json(response.content)
            items += page.items
            after = page.next_after
            if not page.has_more:
                return items
