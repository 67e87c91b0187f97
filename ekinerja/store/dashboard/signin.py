"""Signing in with a password and an authenticator code, and signing out."""

from __future__ import annotations

import secrets
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
    t, target = words(request), _local(next)
    cookie = request.cookies.get(LOGIN_COOKIE) or ""
    if not login_token or not secrets.compare_digest(cookie.encode(), login_token.encode()):
        return _login_form(request, target, t("form_expired"), username, status=400)
    store = state(request)
    result = await run_in_threadpool(accounts.authenticate, store.engine, username.strip(), password, code, utc_now())
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
