"""The store's HTTP API through the real app (TestClient), on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine

from ekinerja.config.store import StoreConfig
from ekinerja.store.app import create_app
from ekinerja.store.db import make_engine
from ekinerja.store.feed import read_feed
from ekinerja.store.ingest import ingest
from ekinerja.store.schema import upgrade
from ekinerja.sync.contract import Batch, PunchEvent

from samples import batch_json, make_event, stored_count

TOKEN_A = "token-of-gateway-a"
TOKEN_B = "token-of-gateway-b"
AUTH_A = {"Authorization": f"Bearer {TOKEN_A}"}
READER = {"Authorization": "Bearer reader-token-core"}
CONFIG = StoreConfig.model_validate(
    {
        "gateways": [
            {"id": "opd-a", "token": TOKEN_A},
            {"id": "opd-b", "token_sha256": hashlib.sha256(TOKEN_B.encode()).hexdigest()},
        ],
        "clients": [{"id": "ekinerja-core", "token": "reader-token-core"}],
    }
)


@pytest.fixture
def client(engine: Engine) -> Iterator[TestClient]:
    with TestClient(create_app(CONFIG, engine)) as client:
        yield client


def test_batch_is_accepted_then_duplicate(client: TestClient, engine: Engine) -> None:
    events = [make_event(n) for n in range(4)]
    first = client.post("/v1/punches", json=batch_json(events), headers=AUTH_A)
    assert first.status_code == 200, first.text
    body = first.json()
    assert (body["accepted"], body["duplicate"], body["rejected"]) == (4, 0, 0)
    assert [r["event_id"] for r in body["results"]] == [e.event_id for e in events]
    seqs = [r["seq"] for r in body["results"]]
    assert seqs == sorted(seqs) and len(set(seqs)) == 4
    again = client.post("/v1/punches", json=batch_json(events), headers=AUTH_A).json()
    assert (again["accepted"], again["duplicate"], again["rejected"]) == (0, 4, 0)
    assert {r["outcome"] for r in again["results"]} == {"duplicate"}
    assert [r["seq"] for r in again["results"]] == seqs  # the stored copy's position
    assert stored_count(engine) == 4


def test_duplicates_within_one_batch(client: TestClient, engine: Engine) -> None:
    one, two = make_event(1), make_event(2)
    body = client.post("/v1/punches", json=batch_json([one, two, one, one]), headers=AUTH_A).json()
    assert [r["outcome"] for r in body["results"]] == ["accepted", "accepted", "duplicate", "duplicate"]
    assert body["results"][2]["seq"] == body["results"][3]["seq"] == body["results"][0]["seq"]
    assert (body["accepted"], body["duplicate"]) == (2, 2)
    assert stored_count(engine) == 2


def test_feed_returns_every_event_once_in_order_and_resumes(client: TestClient) -> None:
    sent = [make_event(n) for n in range(7)]
    for chunk in (sent[:3], sent[2:5], sent[5:]):  # overlapping batches: 7 distinct events
        assert client.post("/v1/punches", json=batch_json(chunk), headers=AUTH_A).status_code == 200
    seen: list[PunchEvent] = []
    after, pages = 0, []
    while True:
        page = client.get("/v1/feed", params={"after": after, "limit": 3}, headers=READER).json()
        pages.append(len(page["items"]))
        seqs = [item["seq"] for item in page["items"]]
        assert seqs == sorted(seqs) and all(seq > after for seq in seqs)
        seen += [PunchEvent.model_validate(item["event"]) for item in page["items"]]
        after = page["next_after"]
        if not page["has_more"]:
            break
    assert pages == [3, 3, 1]
    assert seen == sent  # field for field, microseconds, skew and zone included
    empty = client.get("/v1/feed", params={"after": after}, headers=READER).json()
    assert empty == {"items": [], "next_after": after, "has_more": False}


def test_feed_parameters_are_checked(client: TestClient) -> None:
    for params in ({"after": -1}, {"limit": 0}, {"limit": 5001}, {"after": "x"}):
        response = client.get("/v1/feed", params=params, headers=READER)
        assert response.status_code == 422, params
        assert response.json()["detail"][0]["loc"][0] == "query"
    assert client.get("/v1/feed", params={"limit": 5000}, headers=READER).status_code == 200


def test_missing_or_wrong_token_is_401(client: TestClient, engine: Engine) -> None:
    body = batch_json([make_event(1)])
    for headers in ({}, {"Authorization": "Bearer not-a-known-token"}, {"Authorization": f"Basic {TOKEN_A}"}):
        response = client.post("/v1/punches", json=body, headers=headers)
        assert response.status_code == 401, headers
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert stored_count(engine) == 0


def test_the_feed_needs_a_client_token(client: TestClient) -> None:
    client.post("/v1/punches", json=batch_json([make_event(1)]), headers=AUTH_A)
    # A gateway's token is no client token: a stolen gateway token must not read every office's punches.
    for headers in ({}, AUTH_A, {"Authorization": "Bearer not-a-known-token"}):
        refused = client.get("/v1/feed", headers=headers)
        assert refused.status_code == 401 and "items" not in refused.text, headers
    assert len(client.get("/v1/feed", headers=READER).json()["items"]) == 1


def test_token_of_another_gateway_is_403(client: TestClient, engine: Engine) -> None:
    response = client.post("/v1/punches", json=batch_json([make_event(1, "opd-b")], "opd-b"), headers=AUTH_A)
    assert response.status_code == 403
    assert "opd-a" in response.json()["detail"]
    assert stored_count(engine) == 0
    as_b = {"Authorization": f"Bearer {TOKEN_B}"}  # configured by hash only
    ok = client.post("/v1/punches", json=batch_json([make_event(1, "opd-b")], "opd-b"), headers=as_b)
    assert ok.json()["accepted"] == 1


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("device_time", "2026-01-05T07:30:00+07:00"),
        ("device_time", "2026-02-30T07:30:00"),  # a day that does not exist
        ("punch", "lunch"),
        ("source", "bluetooth"),
        ("verify", "iris"),
    ],
)
def test_malformed_batch_is_422_naming_the_field(client: TestClient, engine: Engine, field: str, value: str) -> None:
    body = batch_json([make_event(0), make_event(1)])
    body["events"][1][field] = value
    response = client.post("/v1/punches", json=body, headers=AUTH_A)
    assert response.status_code == 422
    assert ["body", "events", 1, field] in [error["loc"] for error in response.json()["detail"]]
    assert stored_count(engine) == 0


@pytest.mark.parametrize(
    "body", [b'{"contract_version": 1, "gateway_id": "opd-a", "events": [', b"\xff\xfe not json", b"[]", b"null"]
)
def test_a_body_that_is_not_a_batch_is_4xx(client: TestClient, engine: Engine, body: bytes) -> None:
    response = client.post("/v1/punches", content=body, headers={**AUTH_A, "Content-Type": "application/json"})
    assert response.status_code in (400, 422)  # 400: not even text (FastAPI cannot decode it)
    assert response.json()["detail"], "the answer says what is wrong"
    assert stored_count(engine) == 0


def test_rejected_events_are_not_stored(client: TestClient, engine: Engine) -> None:
    future = make_event(2, device_time=datetime.now() + timedelta(days=3))
    foreign = make_event(3, "opd-b")
    body = client.post("/v1/punches", json=batch_json([make_event(1), future, foreign]), headers=AUTH_A).json()
    assert [r["outcome"] for r in body["results"]] == ["accepted", "rejected", "rejected"]
    assert "more than 1 day" in body["results"][1]["reason"]
    assert "opd-b" in body["results"][2]["reason"]
    assert body["results"][1]["seq"] is None
    feed = client.get("/v1/feed", headers=READER).json()
    assert [item["event"]["event_id"] for item in feed["items"]] == [body["results"][0]["event_id"]]


def test_non_finite_skew_is_rejected(engine: Engine) -> None:
    event = make_event(1).model_copy(update={"clock_skew_s": float("nan")})
    result = ingest(engine, Batch(gateway_id="opd-a", sent_at=datetime.now(UTC), events=[event]), datetime.now(UTC))
    assert result.results[0].reason == "clock_skew_s must be a finite number"
    assert stored_count(engine) == 0


def test_healthz_ok(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "schema": "0004"}


def test_healthz_503_before_migration(store_url: str) -> None:
    engine = make_engine(store_url)
    try:
        with TestClient(create_app(CONFIG, engine)) as client:
            response = client.get("/healthz")
        assert response.status_code == 503
        assert response.json()["database"] == "ok" and response.json()["schema"] is None
    finally:
        engine.dispose()


def test_concurrent_ingests_keep_the_feed_resumable(engine: Engine) -> None:
    """A consumer polling while batches commit sees every event exactly once (seq order = commit order)."""
    batches = [[make_event(100 * b + n, device_serial=f"SN{b}") for n in range(20)] for b in range(12)]
    seen: list[str] = []
    done = threading.Event()

    def write(mine: list[list[PunchEvent]]) -> None:
        for events in mine:
            ingest(engine, Batch(gateway_id="opd-a", sent_at=datetime.now(UTC), events=events), datetime.now(UTC))

    def consume() -> None:
        after, finished = 0, False
        while not finished:
            finished = done.is_set()  # read before the page: the last page is taken after all writes
            page = read_feed(engine, after, 7)
            seen.extend(item.event.event_id for item in page.items)
            after = page.next_after
            finished = finished and not page.has_more

    writers = [threading.Thread(target=write, args=(batches[i::3],)) for i in range(3)]
    reader = threading.Thread(target=consume)
    for thread in [reader, *writers]:
        thread.start()
    for thread in writers:
        thread.join()
    done.set()
    reader.join()
    expected = {event.event_id for events in batches for event in events}
    assert len(seen) == len(expected) and set(seen) == expected


def test_body_over_the_limit_is_413(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/store.db")
    upgrade(engine)
    try:
        headers = AUTH_A | {"Content-Type": "application/json"}
        with TestClient(create_app(CONFIG, engine, max_body_bytes=2000)) as client:
            body = json.dumps(batch_json([make_event(n) for n in range(10)])).encode()
            assert client.post("/v1/punches", content=body, headers=headers).status_code == 413
            chunked = client.post("/v1/punches", content=iter([body[:1000], body[1000:]]), headers=headers)
            assert chunked.status_code == 413  # no Content-Length: counted while reading
            small = json.dumps(batch_json([make_event(1)])).encode()
            ok = client.post("/v1/punches", content=iter([small[:100], small[100:]]), headers=headers)
            assert ok.status_code == 200, ok.text
        assert stored_count(engine) == 1
    finally:
        engine.dispose()


def test_healthz_503_when_database_unreachable() -> None:
    from servers import free_port

    engine = make_engine(f"postgresql+psycopg://u:pw@127.0.0.1:{free_port()}/nowhere")
    try:
        with TestClient(create_app(CONFIG, engine)) as client:
            response = client.get("/healthz")
            assert response.status_code == 503
            assert response.json()["database"] == "unreachable"
            feed = client.get("/v1/feed", headers=READER)
            assert feed.status_code == 503 and feed.headers["Retry-After"]
    finally:
        engine.dispose()


# --- /metrics ---


def scrape(client: TestClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    answer = client.get("/metrics")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(answer.text)
        for s in family.samples
    }


def test_ingest_counts_move(engine: Engine) -> None:
    with TestClient(create_app(CONFIG, engine=engine)) as client:
        assert ("ekinerja_store_batches_total", (("gateway", "opd-a"),)) not in scrape(client)
        events = [make_event(n) for n in range(5)]
        assert client.post("/v1/punches", json=batch_json(events), headers=AUTH_A).status_code == 200
        assert client.post("/v1/punches", json=batch_json(events[:2]), headers=AUTH_A).status_code == 200
        assert client.post("/v1/punches", json=batch_json(events)).status_code == 401
        after = scrape(client)
    accepted = ("ekinerja_store_ingested_events_total", (("gateway", "opd-a"), ("outcome", "accepted")))
    duplicate = ("ekinerja_store_ingested_events_total", (("gateway", "opd-a"), ("outcome", "duplicate")))
    assert (after[accepted], after[duplicate]) == (5, 2)
    assert after[("ekinerja_store_batches_total", (("gateway", "opd-a"),))] == 2
    assert after[("ekinerja_store_ingest_seconds_count", ())] == 2
    assert after[("ekinerja_store_refused_requests_total", (("status", "401"),))] == 1
