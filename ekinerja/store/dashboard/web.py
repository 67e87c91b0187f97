"""What every dashboard page shares: the templates, the headers, the visitor's session and language.

Server-rendered HTML (Jinja2, autoescaped) and one style sheet, all served by the store: it works
with no internet. Pages answer with a strict Content-Security-Policy and are never cached.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import UTC, datetime
from importlib import resources
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates

from ekinerja.store import sessions
from ekinerja.store.api_deps import StoreState
from ekinerja.store.dashboard import i18n
from ekinerja.store.registry import list_employees
from ekinerja.store.sessions import COOKIE, Session

LANG_COOKIE = "lang"
SAFE_METHODS = ("GET", "HEAD")
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
    """A page in the visitor's language, with the dashboard's headers.

    ``lang_keep`` in ``context``: values the link to the other language carries besides the page's
    own query (the sign-in page's ``next``, which a failed sign-in has only in its form);
    ``lang_drop``: query parameters it leaves out (values refused as invalid are not echoed).
    """
    t = words(request)
    other = "en" if t.lang == "id" else "id"
    language = language_link(request, other, context.pop("lang_keep", None), context.pop("lang_drop", ()))
    context = {"t": t, "session": None, "refresh_s": 0, "page": None, "language_link": language} | context
    response = templates.TemplateResponse(request, template, context, status_code=status, headers=HEADERS)
    if request.query_params.get("lang") == t.lang:
        response.set_cookie(LANG_COOKIE, t.lang, max_age=365 * 86400, samesite="strict")
    return response


def get_page(request: Request) -> str:
    """The path of the page this request shows: itself, or for a form's POST the page the form is on.

    A form's path is under its page (``/karyawan/cuti`` under ``/karyawan``), and a link or a
    redirect to a POST-only path would answer 405; a path with no page of its own leads home.
    """
    path = request.url.path
    if request.method in SAFE_METHODS:
        return path
    first = "/" + path.strip("/").split("/", 1)[0]
    routes = (r for r in request.app.routes if isinstance(r, APIRoute) and r.path == first)
    return first if any("GET" in (r.methods or ()) for r in routes) else "/"


def language_link(
    request: Request, lang: str, keep: Mapping[str, str] | None = None, drop: Collection[str] = ()
) -> str:
    """This page in ``lang``: the same GET page and query (month, unit, year...), ``lang`` replaced.

    ``keep``: values to carry besides (or instead of) the query's; ``drop``: parameters to leave out.
    """
    extra = dict(keep or {})
    left_out = {"lang", *extra, *drop}
    kept = [(key, value) for key, value in request.query_params.multi_items() if key not in left_out]
    return f"{get_page(request)}?{urlencode([*kept, *extra.items(), ('lang', lang)])}"


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
    """Where NeedsSignIn leads: the sign-in page, coming back here afterwards.

    A form sent after the session ended comes back to the page it was on (its POST-only path
    would answer 405), and the sign-in page says the form must be sent again: it was not stored.
    """
    target = get_page(request) + (f"?{request.url.query}" if request.url.query else "")
    resend = "" if request.method in SAFE_METHODS else "&resend=1"
    location = f"/masuk?next={quote(target)}{resend}"
    return RedirectResponse(location, status_code=303, headers={"Cache-Control": "no-store"})


async def refuse(request: Request, exc: Exception) -> Response:
    """Where Forbidden leads: a 403 page that says the user may not see it."""
    session = exc.session if isinstance(exc, Forbidden) else None
    return page(request, "message.html", 403, session=session, message=words(request)("forbidden"))


async def bad_query(request: Request, exc: Exception) -> Response:
    """Where BadQuery leads: a 400 page naming the parameter and the problem."""
    assert isinstance(exc, BadQuery)
    message = words(request)("bad_input", field=exc.name, problem=exc.problem)
    return page(request, "message.html", 400, session=exc.session, message=message)


async def bad_request(request: Request, exc: Exception) -> Response:
    """Where a dashboard page's RequestValidationError leads: a 400 page naming the fields.

    FastAPI's own answer is JSON for programs, and echoes the value (a password, too): a browser
    gets the message page instead, which names each field and what is wrong, never what was sent.
    """
    assert isinstance(exc, RequestValidationError)
    t = words(request)
    problems = dict(_field_problem(t, error) for error in exc.errors())  # one line per field
    message = "; ".join(t("bad_input", field=name, problem=problem) for name, problem in problems.items())
    session = sessions.find(state(request).engine, request.cookies.get(COOKIE), now())
    return page(request, "message.html", 400, session=session, message=message, lang_drop=set(problems))


def _field_problem(t: i18n.Words, error: Mapping[str, Any]) -> tuple[str, str]:
    """(field, what is wrong with it) of one of FastAPI's errors, from its location and type only."""
    loc: Sequence[Any] = error.get("loc") or ()
    name = str(loc[-1]) if len(loc) > 1 else t("field_request")  # ("body",) alone: the form as a whole
    kind, limits = error.get("type", ""), error.get("ctx") or {}
    if kind == "missing":
        return name, t("field_missing")
    if kind == "string_too_long" and "max_length" in limits:
        return name, t("field_too_long", max=limits["max_length"])
    if kind == "string_pattern_mismatch":
        return name, t("field_characters")
    return name, t("field_invalid")


def query(**values: object) -> str:
    """A query string of the values that are set (a link to the same page with other choices)."""
    return urlencode({key: value for key, value in values.items() if value not in (None, "")})
