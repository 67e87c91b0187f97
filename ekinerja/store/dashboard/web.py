"""What every dashboard page shares: the templates, the headers, the visitor's session and language.

Server-rendered HTML (Jinja2, autoescaped) and one style sheet, all served by the store: it works
with no internet. Pages answer with a strict Content-Security-Policy and are never cached.
"""

from __future__ import annotations

from datetime import UTC, datetime
from importlib import resources
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import Request
from fastapi.responses import RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from ekinerja.store import sessions
from ekinerja.store.api_deps import StoreState
from ekinerja.store.dashboard import i18n
from ekinerja.store.registry import list_employees
from ekinerja.store.sessions import COOKIE, Session

LANG_COOKIE = "lang"
HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
here = resources.files("ekinerja.store.dashboard")
templates = Jinja2Templates(directory=str(here / "templates"))


class NeedsSignIn(Exception):
    """The page needs a signed-in user; answered with a redirect to the sign-in page."""


class Forbidden(Exception):
    """The signed-in user may not see or do this; answered 403 with a page that says so."""

    def __init__(self, session: Session) -> None:
        super().__init__("forbidden")
        self.session = session


class BadQuery(Exception):
    """A page's query parameter cannot be read; answered 400 with a page naming it and what to write."""

    def __init__(self, session: Session, name: str, problem: str) -> None:
        super().__init__(f"{name}: {problem}")
        self.session, self.name, self.problem = session, name, problem


def state(request: Request) -> StoreState:
    """The store's engine, office and config, as the app holds them."""
    found: StoreState = request.app.state.store
    return found


def now() -> datetime:
    """UTC now, naive, as the store keeps instants."""
    return datetime.now(UTC).replace(tzinfo=None)


def words(request: Request) -> i18n.Words:
    """The visitor's language: asked with ?lang=, else remembered, else Indonesian."""
    return i18n.Words(i18n.choose(request.query_params.get("lang"), request.cookies.get(LANG_COOKIE)))


def page(request: Request, template: str, status: int = 200, **context: Any) -> Response:
    """A page in the visitor's language, with the dashboard's headers."""
    t = words(request)
    context = {"t": t, "session": None, "refresh_s": 0, "page": None} | context
    response = templates.TemplateResponse(request, template, context, status_code=status, headers=HEADERS)
    if request.query_params.get("lang") == t.lang:
        response.set_cookie(LANG_COOKIE, t.lang, max_age=365 * 86400, samesite="strict")
    return response


def signed_in(request: Request) -> Session:
    """The visitor's session, or a redirect to the sign-in page."""
    found = sessions.find(state(request).engine, request.cookies.get(COOKIE), now())
    if found is None:
        raise NeedsSignIn
    return found


def editor(request: Request) -> Session:
    """The session of a user who may change the registry, leave and manual attendance; else 403."""
    session = signed_in(request)
    if not session.user.edits:
        raise Forbidden(session)
    return session


def unit_for(session: Session, asked: str | None) -> str | None:
    """The unit a page shows: the one asked for, else the user's own (None: every unit); 403 if not theirs."""
    unit = asked or session.user.unit or None
    if not session.user.sees(unit):
        raise Forbidden(session)
    return unit


def units_choice(request: Request, session: Session) -> list[str]:
    """The units a user may pick from (a head of unit has their own only: no choice)."""
    if session.user.unit is not None:
        return []
    return sorted({e.unit for e in list_employees(state(request).engine)})


async def to_sign_in(request: Request, _exc: Exception) -> Response:
    """Where NeedsSignIn leads: the sign-in page, coming back here afterwards."""
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/masuk?next={quote(target)}", status_code=303, headers={"Cache-Control": "no-store"})


async def refuse(request: Request, exc: Exception) -> Response:
    """Where Forbidden leads: a 403 page that says the user may not see it."""
    session = exc.session if isinstance(exc, Forbidden) else None
    return page(request, "message.html", 403, session=session, message=words(request)("forbidden"))


async def bad_query(request: Request, exc: Exception) -> Response:
    """Where BadQuery leads: a 400 page naming the parameter and the problem."""
    assert isinstance(exc, BadQuery)
    message = words(request)("bad_input", field=exc.name, problem=exc.problem)
    return page(request, "message.html", 400, session=exc.session, message=message)


def query(**values: object) -> str:
    """A query string of the values that are set (a link to the same page with other choices)."""
    return urlencode({key: value for key, value in values.items() if value not in (None, "")})
