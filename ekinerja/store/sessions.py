"""Dashboard sessions: a random id in a cookie, its hash in the database, a CSRF token per session.

The cookie is HttpOnly and SameSite=Strict (Secure when the store serves HTTPS or sits behind a
TLS proxy); a session ends at sign-out, after ``IDLE_HOURS`` unused, or after ``MAX_HOURS``.
Forms carry the session's CSRF token, compared in constant time, so another site cannot post in
a signed-in user's name even where SameSite is not honoured.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, delete, select, update

from ekinerja.store.accounts import Role, User
from ekinerja.store.db import sessions, users

COOKIE = "ekinerja_session"
IDLE_HOURS = 8  # a working day
MAX_HOURS = 24


@dataclass(frozen=True)
class Session:
    """A signed-in user and the token their forms must carry."""

    user: User
    csrf_token: str


def _digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def start(engine: Engine, user: User, now: datetime) -> tuple[str, Session]:
    """A new session for ``user``: (the id for the cookie, the session)."""
    session_id, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    with engine.begin() as conn:
        conn.execute(delete(sessions).where(sessions.c.expires_at <= now))  # keep the table small
        conn.execute(
            sessions.insert().values(
                id_sha256=_digest(session_id), username=user.username, csrf_token=csrf, created_at=now,
                expires_at=now + timedelta(hours=IDLE_HOURS),
            )
        )  # fmt: skip
    return session_id, Session(user, csrf)


def find(engine: Engine, session_id: str | None, now: datetime) -> Session | None:
    """The live session of a cookie (extended while used), or None; an inactive user has none."""
    if not session_id:
        return None
    query = (
        select(sessions, users.c.full_name, users.c.role, users.c.unit, users.c.active)
        .join(users, users.c.username == sessions.c.username)
        .where(sessions.c.id_sha256 == _digest(session_id))
    )
    with engine.begin() as conn:
        row = conn.execute(query).first()
        if row is None or row.expires_at <= now or not row.active:
            return None
        extended = min(now + timedelta(hours=IDLE_HOURS), row.created_at + timedelta(hours=MAX_HOURS))
        if extended - row.expires_at > timedelta(minutes=5):  # not a write on every page
            conn.execute(update(sessions).where(sessions.c.id_sha256 == row.id_sha256).values(expires_at=extended))
    return Session(User(row.username, row.full_name, Role(row.role), row.unit), row.csrf_token)


def end(engine: Engine, session_id: str | None) -> None:
    """Sign out: the session's id stops working at once."""
    if session_id:
        with engine.begin() as conn:
            conn.execute(delete(sessions).where(sessions.c.id_sha256 == _digest(session_id)))


def csrf_ok(session: Session, presented: str | None) -> bool:
    """Whether a form's token is this session's."""
    return presented is not None and hmac.compare_digest(session.csrf_token.encode(), presented.encode())
