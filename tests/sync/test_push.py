"""The push client and drain loop against a real store over HTTP (uvicorn on loopback)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import httpx
import pytest
from sqlalchemy import update

from ekinerja.gateway.buffer import Buffer, events
from ekinerja.sync.push import PushClient, Pusher, drain

from stack import free_port, make_events, read_whole_feed, store_server

TOKEN = "token-of-opd-1-for-tests"


@pytest.fixture
def buffer(tmp_path: Path) -> Buffer:
    return Buffer(tmp_path / "buffer.sqlite3")


def test_drain_delivers_every_event_once_in_batches(tmp_path: Path, buffer: Buffer) -> None:
    evs = make_events(2500)
    buffer.append(evs)
    with store_server(f"sqlite:///{tmp_path}/store.db", {"opd-1": TOKEN}) as url:
        client = PushClient(url, TOKEN, "opd-1")
        report = drain(buffer, client, batch_size=1000)
        assert (report.batches, report.accepted, report.duplicate, report.error) == (3, 2500, 0, None)
        assert buffer.pending(10) == []
        buffer.append(evs[:10])  # read again from the device: already acknowledged, nothing to send
        assert drain(buffer, client, batch_size=1000).batches == 0
        feed = read_whole_feed(url)
    assert [item.event.event_id for item in feed] == [e.event_id for e in evs]


def test_a_batch_sent_twice_is_acknowledged_as_duplicate(tmp_path: Path, buffer: Buffer) -> None:
    evs = make_events(20)
    buffer.append(evs)
    with store_server(f"sqlite:///{tmp_path}/store.db", {"opd-1": TOKEN}) as url:
        client = PushClient(url, TOKEN, "opd-1")
        first = client.push(buffer.pending(20))
        again = client.push(buffer.pending(20))  # as if the first answer had been lost
        assert (first.accepted, again.accepted, again.duplicate) == (20, 0, 20)
        assert sorted(again.stored) == sorted(e.event_id for e in evs)
        assert len(read_whole_feed(url)) == 20


def test_store_down_keeps_events_pending_then_drains(tmp_path: Path, buffer: Buffer) -> None:
    buffer.append(make_events(30))
    port = free_port()
    client = PushClient(f"http://127.0.0.1:{port}", TOKEN, "opd-1", timeout_s=2)
    pusher = Pusher(buffer, client, batch_size=10, max_backoff_s=60)
    report = pusher.run_once()
    assert report is not None and report.error and "unreachable" in report.error
    assert pusher.run_once() is None, "backing off: no second attempt at once"
    assert len(buffer.pending(100)) == 30
    with store_server(f"sqlite:///{tmp_path}/store.db", {"opd-1": TOKEN}, port=port) as url:
        pusher.backoff.next_attempt = 0
        report = pusher.run_once()
        assert report is not None and (report.accepted, report.error) == (30, None)
        assert pusher.last_success is not None
        assert len(read_whole_feed(url)) == 30
    assert buffer.pending(100) == []


def test_wrong_token_is_refused_and_nothing_leaves(tmp_path: Path, buffer: Buffer) -> None:
    buffer.append(make_events(5))
    with store_server(f"sqlite:///{tmp_path}/store.db", {"opd-1": TOKEN}) as url:
        report = drain(buffer, PushClient(url, "not-the-right-token", "opd-1"), batch_size=10)
    assert report.error is not None and "refused gateway 'opd-1' (401)" in report.error
    assert len(buffer.pending(10)) == 5


def test_rejected_and_malformed_events_are_set_aside_not_retried(tmp_path: Path, buffer: Buffer) -> None:
    future = make_events(1, start=datetime.now() + timedelta(days=30))
    good = make_events(5)
    buffer.append(good[:2] + future + good[2:])
    damaged = next(p for p in buffer.pending(10) if p.event_id == good[3].event_id)
    with buffer.engine.begin() as conn:  # an event damaged on disk: the store answers 422 for it
        conn.execute(update(events).where(events.c.seq == damaged.seq).values(subject="zk:"))
    broken = next(p.event_id for p in buffer.pending(10) if p.seq == damaged.seq)
    with store_server(f"sqlite:///{tmp_path}/store.db", {"opd-1": TOKEN}) as url:
        client = PushClient(url, TOKEN, "opd-1")
        first = drain(buffer, client, batch_size=10)
        second = drain(buffer, client, batch_size=10)
        feed = read_whole_feed(url)
    assert first.error is None and second.batches == 0
    assert sorted(i.event.event_id for i in feed) == sorted(e.event_id for e in good if e != good[3])
    backlog = buffer.backlog()
    assert (backlog.pending, backlog.rejected, backlog.acked) == (0, 2, 4)
    reasons = {r.event_id: r.reason for r in buffer.rejected()}
    assert "is the device clock wrong?" in reasons[future[0].event_id]
    assert reasons[broken].startswith("subject")
    assert buffer.requeue_rejected() == 2
    assert {p.event_id for p in buffer.pending(10)} == {future[0].event_id, broken}


Answer = tuple[int, str, bytes]  # status, content type, body


@contextmanager
def front_server(answer: Callable[[str, bytes, dict[str, str]], Answer]) -> Iterator[str]:
    """A real HTTP server on loopback standing in front of the store (a proxy, a balancer).

    ``answer(path, body, headers)`` decides each POST's reply; yields the server's base URL.
    """

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            status, content_type, content = answer(self.path, body, dict(self.headers))
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(content)))
            self.end_headers()
            self.wfile.write(content)

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join()


def test_a_proxy_answering_200_with_html_is_a_store_outage(buffer: Buffer) -> None:
    # A captive portal in front of the store answers every request with its login page.
    def portal(_path: str, _body: bytes, _headers: dict[str, str]) -> Answer:
        return 200, "text/html", b"<html>Silakan login ke jaringan Wi-Fi kantor</html>"

    buffer.append(make_events(4))
    with front_server(portal) as url:
        pusher = Pusher(buffer, PushClient(url, TOKEN, "opd-1"), 10, 60)
        report = pusher.run_once()
    assert report is not None and report.error and "answered 200 without a batch result" in report.error
    assert pusher.backoff.failures == 1
    assert len(buffer.pending(10)) == 4


def test_outage_mid_drain_keeps_every_answer_received(tmp_path: Path, buffer: Buffer) -> None:
    evs = make_events(2500)
    buffer.append(evs)
    with store_server(f"sqlite:///{tmp_path}/store.db", {"opd-1": TOKEN}) as store_url:
        forwarded: list[int] = []

        # A load balancer that passes the first batch to the store, then answers 503.
        def balancer(path: str, body: bytes, headers: dict[str, str]) -> Answer:
            if forwarded:
                return 503, "application/json", b'{"detail":"no upstream"}'
            reply = httpx.post(store_url + path, content=body, headers=headers, timeout=30)
            forwarded.append(reply.status_code)
            return reply.status_code, "application/json", reply.content

        with front_server(balancer) as url:
            report = drain(buffer, PushClient(url, TOKEN, "opd-1"), 1000)
        stored = read_whole_feed(store_url)
    assert forwarded == [200]
    assert report.error is not None and "503" in report.error
    assert (report.batches, report.accepted) == (1, 1000)
    assert [i.event.event_id for i in stored] == [e.event_id for e in evs[:1000]]
    assert [p.event_id for p in buffer.pending(5000)] == [e.event_id for e in evs[1000:]]
