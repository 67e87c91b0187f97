"""What the store's request handlers share: the state, and who is calling."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, cast

from fastapi import Depends, HTTPException, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Engine

from ekinerja.store import gateway_tokens
from ekinerja.store.attendance import Office
from ekinerja.store.auth import Client, ClientAuth, GatewayAuth
from ekinerja.store.metrics import StoreMetrics

log = logging.getLogger("ekinerja.store")


@dataclass(frozen=True)
class StoreState:
    """What the request handlers share."""

    engine: Engine
    auth: GatewayAuth
    clients: ClientAuth
    office: Office
    head: str
    metrics: StoreMetrics = field(default_factory=StoreMetrics)


def _state(request: Request) -> StoreState:
    return cast(StoreState, request.app.state.store)


State = Annotated[StoreState, Depends(_state)]
_bearer = HTTPBearer(
    auto_error=False,
    description="A gateway's token (from `ekinerja store gateway add`, or store.toml) or a client's token.",
)
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def client_host(request: Request) -> str:
    """The caller's address, for log lines."""
    return request.client.host if request.client is not None else "unknown client"


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(401, detail, headers={"WWW-Authenticate": "Bearer"})


def gateway_id(request: Request, state: State, credentials: Credentials) -> str:
    """The id of the calling gateway, from its bearer token; 401 without a known token."""
    if credentials is None:
        state.metrics.refused.labels("401").inc()
        raise _unauthorized("a bearer token is required")
    found = state.auth.identify(credentials.credentials) or _database_token(state, credentials.credentials)
    if found is None:
        state.metrics.refused.labels("401").inc()
        log.warning("refused a batch from %s: unknown bearer token", client_host(request))
        raise HTTPException(401, "unknown bearer token", headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
    return found


def _database_token(state: StoreState, token: str) -> str | None:
    """A token made with ``ekinerja store gateway add|rotate`` (looked up on every request, so a
    revocation holds at once)."""
    with state.engine.connect() as conn:
        return gateway_tokens.identify(conn, token, datetime.now(UTC).replace(tzinfo=None))


def reader(request: Request, state: State, credentials: Credentials) -> Client:
    """A client allowed to read reports; 401 without a known client token."""
    if credentials is None:
        raise _unauthorized("a client bearer token is required ([[clients]] in store.toml)")
    client = state.clients.identify(credentials.credentials)
    if client is None:
        log.warning("refused a report request from %s: unknown client token", client_host(request))
        raise _unauthorized("unknown client token")
    return client


def writer(client: Annotated[Client, Depends(reader)]) -> Client:
    """A client allowed to change the registry; 403 for a read-only client."""
    if not client.can_write:
        raise HTTPException(403, f"client {client.id!r} may read only (can_write = false in store.toml)")
    return client


PRINTABLE = r"^[^\x00-\x1f\x7f]*$"
"""Free text in a query: no control characters (PostgreSQL refuses a NUL outright, with a 500)."""
Unit = Annotated[str | None, Query(max_length=200, pattern=PRINTABLE, description="only this unit")]

Reader = Annotated[Client, Depends(reader)]
Writer = Annotated[Client, Depends(writer)]
