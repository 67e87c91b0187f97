"""PushClient.report against stores that cannot take a status report: older, refusing, down (real HTTP)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, HTTPServer
from types import SimpleNamespace

import pytest

from ekinerja.sync import push
from ekinerja.sync.contract import GatewayReport, SyncReport
from ekinerja.sync.push import PushClient

from stack import free_port

TOKEN = "token-of-opd-1-for-tests"
REPORT = GatewayReport(gateway_id="opd-1", taken_at=datetime.now(UTC), sync=SyncReport(pending=0))


class Store:
    """A real HTTP server answering every PUT with ``status`` (404: a store older than the gateway)."""

    def __init__(self) -> None:
        self.status, self.detail = 404, "Not Found"
        self.puts: list[tuple[str, str | None]] = []  # (path, the Authorization header)


@contextmanager
def fake_store() -> Iterator[tuple[str, Store]]:
    store = Store()

    class Handler(BaseHTTPRequestHandler):
        def do_PUT(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            store.puts.append((self.path, self.headers.get("Authorization")))
            body = b"" if store.status == 204 else f'{{"detail": "{store.detail}"}}'.encode()
            self.send_response(store.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", store
    finally:
        server.shutdown()
        thread.join()


def test_an_older_store_is_told_once_and_asked_once_an_hour(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.DEBUG, "ekinerja.sync.push")
    with fake_store() as (url, store):
        client = PushClient(url, TOKEN, "opd-1")
        assert not client.report(REPORT)
        assert not client.report(REPORT) and not client.report(REPORT)
        assert store.puts == [("/v1/gateway-report", f"Bearer {TOKEN}")]
        told = [r for r in caplog.records if r.levelno >= logging.INFO]
        assert len(told) == 1 and told[0].levelno == logging.INFO and "older" in told[0].getMessage()
        assert TOKEN not in caplog.text

        an_hour_on = time.monotonic() + push.REPORT_ABSENT_RETRY_S + 1
        monkeypatch.setattr(push, "time", SimpleNamespace(monotonic=lambda: an_hour_on))
        assert not client.report(REPORT) and len(store.puts) == 2  # asked again, still older: not told again
        assert len([r for r in caplog.records if r.levelno >= logging.INFO]) == 1

        an_hour_on += push.REPORT_ABSENT_RETRY_S + 1
        store.status = 204  # upgraded
        assert client.report(REPORT) and client.report(REPORT) and len(store.puts) == 4
        assert "now keeps" in caplog.records[-1].getMessage()
        client.close()


@pytest.mark.parametrize("status", [413, 422])
def test_a_refused_report_is_told_once(caplog: pytest.LogCaptureFixture, status: int) -> None:
    with fake_store() as (url, store):
        store.status, store.detail = status, "report refused for a reason"
        client = PushClient(url, TOKEN, "opd-1")
        assert not any(client.report(REPORT) for _ in range(3))
        assert len(store.puts) == 3  # not an outage, and not an older store: each report is tried
        warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warned) == 1 and "report refused for a reason" in warned[0]
        client.close()


@pytest.mark.parametrize("status", [401, 500, 503])
def test_other_failures_are_quiet(caplog: pytest.LogCaptureFixture, status: int) -> None:
    with fake_store() as (url, store):
        store.status = status
        client = PushClient(url, TOKEN, "opd-1")
        assert not client.report(REPORT)
        client.close()
    assert [r for r in caplog.records if r.levelno >= logging.INFO] == []  # the push job tells of these


def test_an_unreachable_store_never_raises(caplog: pytest.LogCaptureFixture) -> None:
    client = PushClient(f"http://127.0.0.1:{free_port()}", TOKEN, "opd-1", timeout_s=2)
    assert not client.report(REPORT)
    client.close()
    assert [r for r in caplog.records if r.levelno >= logging.INFO] == []
