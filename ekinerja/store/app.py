"""The store's HTTP API (FastAPI; OpenAPI at ``/docs``).

- ``POST /v1/punches``: a batch from one gateway, bearer token; per-event outcome.
- ``GET /v1/feed?after=SEQ&limit=N``: stored punches in seq order, for a client token (``[[clients]]``).
- ``GET /healthz``: database reachable and at the schema this code needs.

The app holds no per-request state of its own; everything it needs is in ``app.state.store``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ekinerja.config.store import StoreConfig
from ekinerja.store import api_fleet, api_registry, api_reports
from ekinerja.store.api_deps import Reader, State, StoreState, client_host
from ekinerja.store.api_deps import gateway_id as calling_gateway
from ekinerja.store.attendance import Office, mark_arrived
from ekinerja.store.auth import ClientAuth, GatewayAuth
from ekinerja.store.dashboard import site as dashboard
from ekinerja.store.db import db_error_message, describe_url, durability_problems, make_engine
from ekinerja.store.feed import DEFAULT_FEED_LIMIT, MAX_FEED_LIMIT, read_feed
from ekinerja.store.ingest import ingest
from ekinerja.store.known_cards import known_card_uids
from ekinerja.store.month_scoring import rescore_stale
from ekinerja.store.schema import current_revision, head_revision
from ekinerja.sync.contract import Batch, BatchResult, FeedPage, KnownCards

log = logging.getLogger("ekinerja.store")

MAX_BODY_BYTES = 16 * 1024 * 1024
"""A full batch (5000 events) is about 3 MB of JSON; anything much larger is not a batch."""

MAX_SEQ = 2**63 - 1


class Health(BaseModel):
    """The answer of ``/healthz``."""

    model_config = ConfigDict(populate_by_name=True)

    status: str = Field(description="ok, or unavailable")
    database: str = Field(description="ok, or unreachable")
    schema_: str | None = Field(default=None, alias="schema", description="the database's schema revision")
    expected_schema: str | None = Field(default=None, description="set when the schema is not the one needed")


def create_app(
    config: StoreConfig,
    engine: Engine | None = None,
    *,
    office: Office | None = None,
    max_body_bytes: int = MAX_BODY_BYTES,
) -> FastAPI:
    """The store's ASGI app. Without ``engine`` one is made from the config and disposed at shutdown."""
    owned = engine is None
    state = StoreState(
        engine=engine if engine is not None else make_engine(config.store.database_url),
        auth=GatewayAuth(config.gateways),
        clients=ClientAuth(config.clients),
        office=office if office is not None else Office.from_config(config),
        head=head_revision(),
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        log.info(
            "store API up: %d gateway(s) in store.toml may push (and those made with `store gateway add`), "
            "%d client(s) may read the feed and reports",
            len(state.auth),
            len(state.clients),
        )
        _warn_if_not_durable(state.engine)
        stop = threading.Event()
        rescorer = threading.Thread(target=_rescore_loop, args=(state, stop), name="rescore", daemon=True)
        rescorer.start()
        yield
        stop.set()
        rescorer.join(timeout=30)
        if owned:
            state.engine.dispose()

    app = FastAPI(
        title="e-Kinerja attendance store",
        version="1",
        description="Accepts punch batches from office gateways and serves them as a feed.",
        lifespan=lifespan,
    )
    app.state.store = state
    app.add_middleware(BodySizeLimit, max_bytes=max_body_bytes)
    app.add_exception_handler(OperationalError, _database_unavailable)
    app.post("/v1/punches", response_model=BatchResult, responses=_PUNCH_ERRORS)(post_punches)
    app.get("/v1/feed", response_model=FeedPage, responses={401: {"description": "missing or unknown client token"}})(
        get_feed
    )
    app.get("/v1/cards", response_model=KnownCards, responses={401: _PUNCH_ERRORS[401]})(get_cards)
    app.get("/healthz", response_model=Health, responses={503: {"model": Health}})(healthz)
    app.get("/metrics", include_in_schema=False)(get_metrics)
    app.include_router(api_reports.router)
    app.include_router(api_registry.router)
    app.include_router(api_fleet.router)
    dashboard.mount(app)
    return app


def _warn_if_not_durable(engine: Engine) -> None:
    """Say at start when the database can lose acknowledged commits (see db.durability_problems)."""
    try:
        problems = durability_problems(engine)
    except SQLAlchemyError as exc:  # unreachable right now: requests will say so
        log.warning("database settings not checked: %s", db_error_message(exc))
        return
    for problem in problems:
        log.warning("%s: %s", describe_url(engine.url), problem)


RESCORE_INTERVAL_S = 15.0
"""How often kept scores whose inputs changed (late punches, new mappings) are re-scored."""


def _rescore_loop(state: StoreState, stop: threading.Event) -> None:
    while not stop.wait(RESCORE_INTERVAL_S):
        try:
            rescore_stale(state.engine, state.office)
        except SQLAlchemyError as exc:
            log.warning("re-scoring postponed, database unavailable: %s", db_error_message(exc))
        except Exception:  # the loop must outlive one bad month: log it and try again later
            log.exception("re-scoring failed; the kept scores stay marked for re-scoring")


_PUNCH_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "missing or unknown bearer token"},
    403: {"description": "the batch's gateway_id is not the token's gateway"},
    413: {"description": "request body too large"},
    503: {"description": "database unavailable; retry later"},
}


def post_punches(
    request: Request, batch: Batch, state: State, gateway_id: Annotated[str, Depends(calling_gateway)]
) -> Response:
    """Store a batch of punches from one gateway; idempotent on each event's ``event_id``."""
    if batch.gateway_id != gateway_id:
        log.warning(
            "refused a batch from %s: token of %s, batch of %s", client_host(request), gateway_id, batch.gateway_id
        )
        state.metrics.refused.labels("403").inc()
        raise HTTPException(403, f"this token belongs to gateway {gateway_id!r}, not {batch.gateway_id!r}")
    office = state.office
    started = time.perf_counter()
    result = ingest(state.engine, batch, datetime.now(UTC), lambda conn, new: mark_arrived(conn, office, new))
    state.metrics.ingested(gateway_id, result, time.perf_counter() - started)
    # Built by the store itself: serialize directly instead of letting FastAPI validate it again.
    return Response(result.model_dump_json(), media_type="application/json")


def get_metrics(state: State) -> Response:
    """Prometheus' text format: batches and events by gateway and outcome, ingest time."""
    return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)


def get_cards(state: State, gateway_id: Annotated[str, Depends(calling_gateway)]) -> Response:
    """The card UIDs the registry resolves for the calling gateway, so its readers can tell an unknown card."""
    today = datetime.now(state.office.zone).date()
    cards = KnownCards(gateway_id=gateway_id, card_uids=known_card_uids(state.engine, gateway_id, today))
    return Response(cards.model_dump_json(), media_type="application/json")


def get_feed(
    state: State,
    _client: Reader,
    after: Annotated[int, Query(ge=0, le=MAX_SEQ, description="last seq already processed; 0 from the start")] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_FEED_LIMIT, description="most punches per page")] = DEFAULT_FEED_LIMIT,
) -> Response:
    """Stored punches with ``seq > after`` in seq order; resume with ``after=next_after``."""
    page = read_feed(state.engine, after, limit)
    # Already validated: serialize directly instead of letting FastAPI validate every event again.
    return Response(page.model_dump_json(), media_type="application/json")


def healthz(state: State) -> JSONResponse:
    """200 when the database answers and is at the head schema revision, else 503."""
    try:
        revision = current_revision(state.engine)
    except SQLAlchemyError as exc:
        log.warning("health check: database unreachable: %s", db_error_message(exc))
        health = Health(status="unavailable", database="unreachable")
        return JSONResponse(health.model_dump(by_alias=True), status_code=503)
    if revision != state.head:
        health = Health(status="unavailable", database="ok", schema_=revision, expected_schema=state.head)
        return JSONResponse(health.model_dump(by_alias=True), status_code=503)
    health = Health(status="ok", database="ok", schema_=revision)
    return JSONResponse(health.model_dump(by_alias=True, exclude_none=True))


async def _database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    # Which request failed tells the operator what the outage cost (pushes retry, reads fail).
    log.error(
        "database unavailable, answered 503 to %s %s: %s", request.method, request.url.path, db_error_message(exc)
    )
    return JSONResponse(
        {"detail": "the store's database is unavailable; retry later"}, status_code=503, headers={"Retry-After": "10"}
    )


class BodySizeLimit:
    """Answers 413 to a request body over ``max_bytes`` before the app reads or parses it."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass a request on, reading a body of unknown length (chunked) up to the limit first."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None:
            # The HTTP server enforces Content-Length framing, so the declared size is the real one.
            if declared > self.max_bytes:
                await self._too_large(scope, receive, send)
            else:
                await self.app(scope, receive, send)
            return
        messages: list[Message] = []
        size, more = 0, True
        while more:
            message = await receive()
            messages.append(message)
            size += len(message.get("body", b""))
            if size > self.max_bytes:
                await self._too_large(scope, receive, send)
                return
            more = message["type"] == "http.request" and bool(message.get("more_body", False))

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        detail = {"detail": f"request body larger than {self.max_bytes} bytes"}
        await JSONResponse(detail, status_code=413, headers={"Connection": "close"})(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
