"""Signing in with a password and an authenticator code, and signing out."""

from __future__ import annotations

import re
import secrets
import threading
from datetime import UTC
from typing import Annotated

from fastapi import Form, Query, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from ekinerja.store import accounts, sessions
from ekinerja.store.dashboard.pages import Route
from ekinerja.store.dashboard.web import now as utc_now
from ekinerja.store.dashboard.web import page, signed_in, state, words
from ekinerja.store.sessions import COOKIE

LOGIN_COOKIE = "ekinerja_login"
CHECKS_AT_ONCE = 4
CHECKS = threading.BoundedSemaphore(CHECKS_AT_ONCE)
"""Logins being checked at once. Each argon2 check takes about 64 MiB and 0.2 s of a thread the API's
gateways share: a flood of sign-ins must not take the memory or the threads that ingest needs."""
NO_SUCH_USER = "-"
"""Asked in place of a malformed user name: no account has it (accounts.USERNAME starts with a letter or digit)."""
_NOT_IN_A_PATH = re.compile(r"[\x00-\x1f\x7f\\]")
"""Browsers read a backslash as a slash and drop tabs and line breaks: ``/\\evil.example`` is another site."""


def _local(target: str | None) -> str:
    """Only a path on this site is followed after sign-in (never another site)."""
    if not target or not target.startswith("/") or target.startswith("//") or _NOT_IN_A_PATH.search(target):
        return "/hari-ini"
    return target


def _asked_name(username: str) -> str:
    """The user name to look up: as typed if it has an account's shape, else one that cannot exist.

    Either way ``accounts.authenticate`` runs, with its decoy hash for an unknown user: a malformed
    name (a NUL, which PostgreSQL refuses outright) is answered and timed like any unknown one.
    """
    return username if accounts.USERNAME.fullmatch(username) else NO_SUCH_USER


def home(request: Request) -> Response:
    """The dashboard starts at today's page."""
    signed_in(request)
    return RedirectResponse("/hari-ini", status_code=303)


def sign_in_page(
    request: Request, next: Annotated[str, Query(max_length=500)] = "/hari-ini", resend: bool = False
) -> Response:
    """The sign-in form, with a fresh token that only this browser's cookie matches.

    ``resend``: the session ended while a form was open; the form was not stored and must be sent again.
    """
    return _login_form(request, _local(next), problem=None, username="", resend=resend)


def _login_form(
    request: Request, target: str, problem: str | None, username: str, status: int = 200, resend: bool = False
) -> Response:
    token = secrets.token_urlsafe(24)
    response = page(request, "login.html", status, login_token=token, next=target, problem=problem,
                    username=username, resend=resend, lang_keep={"next": target})  # fmt: skip
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
    t, target = words(request), _local(next)
    cookie = request.cookies.get(LOGIN_COOKIE) or ""
    if not login_token or not secrets.compare_digest(cookie.encode(), login_token.encode()):
        return _login_form(request, target, t("form_expired"), username, status=400)
    store = state(request)
    asked = _asked_name(username.strip())
    if not CHECKS.acquire(blocking=False):  # refuse at once: a waiting login would hold a worker thread
        response = _login_form(request, target, t("login_busy"), username, status=429)
        response.headers["Retry-After"] = "2"
        return response
    try:
        result = await run_in_threadpool(accounts.authenticate, store.engine, asked, password, code, utc_now())
    finally:
        CHECKS.release()
    if result.user is None:
        problem = t("login_failed")
        if result.locked_until is not None:
            until = result.locked_until.replace(tzinfo=UTC).astimezone(store.office.zone)
            problem = t("login_locked", until=f"{until:%H:%M}")
        return _login_form(request, target, problem, username, status=401)
    session_id, _session = sessions.start(store.engine, result.user, utc_now())
    response = RedirectResponse(target, status_code=303, headers={"Cache-Control": "no-store"})
    secure = request.url.scheme == "https"
    response.set_cookie(COOKIE, session_id, httponly=True, samesite="strict", secure=secure)
    response.delete_cookie(LOGIN_COOKIE)
    return response


async def sign_out(request: Request, csrf_token: Annotated[str, Form(max_length=100)] = "") -> Response:
    """End the session (its form must carry the session's token)."""
    session = signed_in(request)
    if not sessions.csrf_ok(session, csrf_token):
        return page(request, "message.html", 403, session=session, message=words(request)("form_expired"))
    sessions.end(state(request).engine, request.cookies.get(COOKIE))
    response = RedirectResponse("/masuk", status_code=303)
    response.delete_cookie(COOKIE)
    return response


ROUTES: list[Route] = [
    ("/", home, "GET"),
    ("/masuk", sign_in_page, "GET"),
    ("/masuk", sign_in, "POST"),
    ("/keluar", sign_out, "POST"),
]
