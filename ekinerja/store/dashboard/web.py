"""The dashboard's pages: sign-in with password and authenticator code, then the pages by role.

Server-rendered HTML (Jinja2, autoescaped) and one style sheet, all served by the store: it works
with no internet. Pages answer with a strict Content-Security-Policy and are never cached.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from importlib import resources
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import FastAPI, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool

from ekinerja.store import accounts, sessions
from ekinerja.store.api_deps import StoreState
from ekinerja.store.attendance import today_scores
from ekinerja.store.dashboard import i18n
from ekinerja.store.dashboard.today import Presence, board
from ekinerja.store.registry import list_employees
from ekinerja.store.sessions import COOKIE, Session

LOGIN_COOKIE = "ekinerja_login"
LANG_COOKIE = "lang"
TODAY_REFRESH_S = 15
HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
_here = resources.files("ekinerja.store.dashboard")
templates = Jinja2Templates(directory=str(_here / "templates"))


class NeedsSignIn(Exception):
    """The page needs a signed-in user; answered with a redirect to the sign-in page."""


def mount(app: FastAPI) -> None:
    """Add the dashboard's pages and style sheet to the store's app."""
    app.mount("/static", StaticFiles(directory=str(_here / "static")), name="dashboard-static")
    app.add_exception_handler(NeedsSignIn, _to_sign_in)
    for path, endpoint, methods in (
        ("/", home, ["GET"]),
        ("/masuk", sign_in_page, ["GET"]),
        ("/masuk", sign_in, ["POST"]),
        ("/keluar", sign_out, ["POST"]),
        ("/hari-ini", today_page, ["GET"]),
    ):
        app.add_api_route(path, endpoint, methods=methods, include_in_schema=False, response_class=HTMLResponse)


def _state(request: Request) -> StoreState:
    state: StoreState = request.app.state.store
    return state


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _words(request: Request) -> i18n.Words:
    return i18n.Words(i18n.choose(request.query_params.get("lang"), request.cookies.get(LANG_COOKIE)))


def page(request: Request, template: str, status: int = 200, **context: Any) -> Response:
    """A page in the visitor's language, with the dashboard's headers."""
    words = _words(request)
    context = {"t": words, "session": None, "refresh_s": 0, "page": None} | context
    response = templates.TemplateResponse(request, template, context, status_code=status, headers=HEADERS)
    if request.query_params.get("lang") == words.lang:
        response.set_cookie(LANG_COOKIE, words.lang, max_age=365 * 86400, samesite="strict")
    return response


def signed_in(request: Request) -> Session:
    """The visitor's session, or a redirect to the sign-in page."""
    found = sessions.find(_state(request).engine, request.cookies.get(COOKIE), _now())
    if found is None:
        raise NeedsSignIn
    return found


async def _to_sign_in(request: Request, _exc: Exception) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/masuk?next={quote(target)}", status_code=303, headers={"Cache-Control": "no-store"})


def _local(target: str | None) -> str:
    """Only a path on this site is followed after sign-in (never another site)."""
    return target if target and target.startswith("/") and not target.startswith("//") else "/hari-ini"


def home(request: Request) -> Response:
    """The dashboard starts at today's page."""
    signed_in(request)
    return RedirectResponse("/hari-ini", status_code=303)


def sign_in_page(request: Request, next: Annotated[str, Query(max_length=500)] = "/hari-ini") -> Response:
    """The sign-in form, with a fresh token that only this browser's cookie matches."""
    return _login_form(request, _local(next), problem=None, username="")


def _login_form(request: Request, target: str, problem: str | None, username: str, status: int = 200) -> Response:
    token = secrets.token_urlsafe(24)
    response = page(request, "login.html", status, login_token=token, next=target, problem=problem,
                    username=username)  # fmt: skip
    secure = request.url.scheme == "https"
    response.set_cookie(LOGIN_COOKIE, token, max_age=900, httponly=True, samesite="strict", secure=secure)
    return response


async def sign_in(
    request: Request,
    username: Annotated[str, Form(max_length=64)],
    password: Annotated[str, Form(max_length=200)],
    code: Annotated[str, Form(max_length=10)],
    login_token: Annotated[str, Form(max_length=100)] = "",
    next: Annotated[str, Form(max_length=500)] = "/hari-ini",
) -> Response:
    """Check the password and the code; a session cookie and the page asked for, or the form again."""
    words, target = _words(request), _local(next)
    cookie = request.cookies.get(LOGIN_COOKIE) or ""
    if not login_token or not secrets.compare_digest(cookie.encode(), login_token.encode()):
        return _login_form(request, target, words("form_expired"), username, status=400)
    state = _state(request)
    result = await run_in_threadpool(accounts.authenticate, state.engine, username.strip(), password, code, _now())
    if result.user is None:
        problem = words("login_failed")
        if result.locked_until is not None:
            until = result.locked_until.replace(tzinfo=UTC).astimezone(state.office.zone)
            problem = words("login_locked", until=f"{until:%H:%M}")
        return _login_form(request, target, problem, username, status=401)
    session_id, _session = sessions.start(state.engine, result.user, _now())
    response = RedirectResponse(target, status_code=303, headers={"Cache-Control": "no-store"})
    secure = request.url.scheme == "https"
    response.set_cookie(COOKIE, session_id, httponly=True, samesite="strict", secure=secure)
    response.delete_cookie(LOGIN_COOKIE)
    return response


async def sign_out(request: Request, csrf_token: Annotated[str, Form(max_length=100)] = "") -> Response:
    """End the session (its form must carry the session's token)."""
    session = signed_in(request)
    if not sessions.csrf_ok(session, csrf_token):
        return page(request, "message.html", 403, session=session, message=_words(request)("form_expired"))
    sessions.end(_state(request).engine, request.cookies.get(COOKIE))
    response = RedirectResponse("/masuk", status_code=303)
    response.delete_cookie(COOKIE)
    return response


def today_page(request: Request, unit: Annotated[str | None, Query(max_length=200)] = None) -> Response:
    """Who is in, late, not yet in or on leave today, per unit (a head of unit sees their own)."""
    session = signed_in(request)
    user = session.user
    unit = unit or user.unit or None
    if not user.sees(unit):
        return page(request, "message.html", 403, session=session, message=_words(request)("forbidden"))
    state = _state(request)
    staff = list_employees(state.engine, unit)
    scores = today_scores(state.engine, state.office, {e.nip for e in staff})
    units = board(((e.nip, e.name, e.unit) for e in staff), scores)
    choice = sorted({e.unit for e in list_employees(state.engine)}) if user.unit is None else []
    day = state.office.now().date()
    return page(request, "today.html", session=session, page="today", units=units, unit=unit, day=day,
                units_choice=choice, P=Presence, refresh_s=TODAY_REFRESH_S)  # fmt: skip
