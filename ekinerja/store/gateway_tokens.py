"""Gateway tokens kept in the store's database, hashed: made, rotated and revoked from the command line.

A token is 256 random bits, shown once when made; only its SHA-256 is stored. A slow hash buys
nothing for a secret that long (it only protects guessable passwords), and a fast one keeps every
push a single indexed lookup. Revoking or rotating takes effect on the next request: nothing caches.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import groupby

from sqlalchemy import ColumnElement, Connection, Engine, or_, select, update

from ekinerja.store import audit
from ekinerja.store.db import gateway_tokens

TOKEN_BYTES = 32


class TokenError(ValueError):
    """A token command that cannot be done as asked (message says why and what to run instead)."""


@dataclass(frozen=True)
class GatewayTokens:
    """A gateway's tokens as ``store gateway list`` shows them."""

    gateway_id: str
    lasting: int
    """Tokens valid until rotated or revoked."""
    ending: list[datetime]
    """When each token still in a rotation's grace stops being valid."""
    created_at: datetime


def digest(token: str) -> str:
    """The SHA-256 (hex) the store keeps in place of ``token``."""
    return hashlib.sha256(token.encode()).hexdigest()


def _valid(now: datetime) -> ColumnElement[bool]:
    return or_(gateway_tokens.c.expires_at.is_(None), gateway_tokens.c.expires_at > now)


def identify(conn: Connection, token: str, now: datetime) -> str | None:
    """The gateway a token belongs to if it is valid at ``now`` (naive UTC), else None."""
    query = select(gateway_tokens.c.gateway_id).where(gateway_tokens.c.token_sha256 == digest(token), _valid(now))
    return conn.execute(query).scalar_one_or_none()


def _valid_ids(conn: Connection, gateway_id: str, now: datetime) -> list[int]:
    query = select(gateway_tokens.c.id).where(gateway_tokens.c.gateway_id == gateway_id, _valid(now))
    return list(conn.execute(query).scalars())


def _issue(conn: Connection, gateway_id: str, by: str, now: datetime) -> tuple[str, int]:
    token = secrets.token_urlsafe(TOKEN_BYTES)
    inserted = conn.execute(
        gateway_tokens.insert().values(
            gateway_id=gateway_id, token_sha256=digest(token), created_at=now, created_by=by, expires_at=None
        )
    )
    key = inserted.inserted_primary_key
    assert key is not None
    return token, int(key[0])


def add(engine: Engine, gateway_id: str, by: str, now: datetime) -> str:
    """A first token for ``gateway_id``; refused if it already has a valid one (rotate instead)."""
    with engine.begin() as conn:
        if _valid_ids(conn, gateway_id, now):
            raise TokenError(f"gateway {gateway_id!r} already has a token: use `ekinerja store gateway rotate`")
        token, token_id = _issue(conn, gateway_id, by, now)
        audit.record(conn, by, now, [audit.Change("gateway.add", gateway_id, {"token_id": token_id})])
    return token


def rotate(engine: Engine, gateway_id: str, by: str, now: datetime, grace: timedelta) -> str:
    """A new token for ``gateway_id``; its old ones stay valid for ``grace`` (zero: refused at once)."""
    with engine.begin() as conn:
        old = _valid_ids(conn, gateway_id, now)
        if not old:
            raise TokenError(f"gateway {gateway_id!r} has no valid token: use `ekinerja store gateway add`")
        ends = now + grace
        conn.execute(update(gateway_tokens).where(gateway_tokens.c.id.in_(old)).values(expires_at=ends))
        token, token_id = _issue(conn, gateway_id, by, now)
        detail = {"token_id": token_id, "replaced": old, "old_valid_until": ends}
        audit.record(conn, by, now, [audit.Change("gateway.rotate", gateway_id, detail)])
    return token


def revoke(engine: Engine, gateway_id: str, by: str, now: datetime, reason: str | None) -> int:
    """Refuse every token of ``gateway_id`` from now on; returns how many were valid."""
    with engine.begin() as conn:
        old = _valid_ids(conn, gateway_id, now)
        if not old:
            raise TokenError(f"gateway {gateway_id!r} has no valid token to revoke")
        conn.execute(update(gateway_tokens).where(gateway_tokens.c.id.in_(old)).values(expires_at=now))
        audit.record(conn, by, now, [audit.Change("gateway.revoke", gateway_id, {"revoked": old}, reason)])
    return len(old)


def listing(engine: Engine, now: datetime) -> list[GatewayTokens]:
    """Every gateway with a valid token, by id."""
    with engine.connect() as conn:
        rows = conn.execute(select(gateway_tokens).where(_valid(now)).order_by(gateway_tokens.c.gateway_id)).all()
    found = []
    for gateway_id, group in groupby(rows, key=lambda row: row.gateway_id):
        tokens = list(group)
        ending = sorted(t.expires_at for t in tokens if t.expires_at is not None)
        lasting = len(tokens) - len(ending)
        found.append(GatewayTokens(gateway_id, lasting, ending, max(t.created_at for t in tokens)))
    return found
