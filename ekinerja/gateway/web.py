"""The gateway's status page, its JSON and /healthz, served by uvicorn in a thread of the gateway.

- ``GET /``: one static HTML page (``static/status.html``, plain JavaScript, Bahasa Indonesia
  first, English with ``?lang=en``) that reads ``/api/status`` every ``refresh_s`` seconds.
- ``GET /api/status``: the service's :class:`~ekinerja.gateway.status.Snapshot` as JSON, with
  ``refresh_s`` and the gateway's ``timezone``.
- ``GET /healthz``: 200 while the service runs and its buffer answers, else 503 with the reason.

With ``[web] username`` and ``password`` set, every endpoint but /healthz asks for basic auth;
routers added through ``extra_routers`` (e.g. /metrics) are behind it too.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import re
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from types import TracebackType
from typing import TYPE_CHECKING, Annotated, Self

import uvicorn
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.security import HTTPBasic, HTTPBasicCredentials
from sqlalchemy.exc import SQLAlchemyError

from ekinerja.config.common import split_listen
from ekinerja.errors import OperatorError

if TYPE_CHECKING:
    from ekinerja.gateway.service import GatewayService

log = logging.getLogger("ekinerja.gateway.web")

PAGE_FILE = "static/status.html"
START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 10.0
REALM = "ekinerja gateway"


@dataclass(frozen=True)
class WebState:
    """What the endpoints need, kept in ``app.state.web``."""

    service: GatewayService
    alive: Callable[[], bool]
    page: str
    page_headers: dict[str, str]
    credentials: tuple[bytes, bytes] | None  # (username, password) when basic auth is on


def _state(request: Request) -> WebState:
    state = request.app.state.web
    assert isinstance(state, WebState)
    return state


def load_page() -> str:
    """The status page's HTML, a file of this package."""
    return resources.files("ekinerja.gateway").joinpath(PAGE_FILE).read_text(encoding="utf-8")


def page_headers(page: str) -> dict[str, str]:
    """Security headers for the page: its own inline script and style only (by hash), fetches to itself."""

    def hashes(tag: str) -> str:
        bodies = re.findall(rf"<{tag}>(.*?)</{tag}>", page, flags=re.DOTALL)
        digests = (base64.b64encode(hashlib.sha256(body.encode()).digest()).decode() for body in bodies)
        return " ".join(f"'sha256-{digest}'" for digest in digests) or "'none'"

    policy = (
        f"default-src 'none'; script-src {hashes('script')}; style-src {hashes('style')}; "
        "connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
    return {
        "Content-Security-Policy": policy,
        "Cache-Control": "no-cache",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
    }


_basic = HTTPBasic(realm=REALM, auto_error=False)


def require_auth(request: Request, credentials: Annotated[HTTPBasicCredentials | None, Depends(_basic)]) -> None:
    """Dependency: the configured basic-auth user and password, when there are any; else 401."""
    expected = _state(request).credentials
    if expected is None:
        return
    if credentials is not None:
        # Both compared every time, in constant time: the answer tells nothing about which was wrong.
        user_ok = secrets.compare_digest(credentials.username.encode(), expected[0])
        password_ok = secrets.compare_digest(credentials.password.encode(), expected[1])
        if user_ok and password_ok:
            return
    raise HTTPException(401, "user name and password needed", headers={"WWW-Authenticate": f'Basic realm="{REALM}"'})


def status_page(request: Request) -> HTMLResponse:
    """The status page; it reads /api/status itself."""
    state = _state(request)
    return HTMLResponse(state.page, headers=state.page_headers)


def api_status(request: Request) -> JSONResponse:
    """The gateway's snapshot as JSON, with the page's refresh interval and the office's time zone."""
    service = _state(request).service
    try:
        data = service.snapshot().as_json()
    except SQLAlchemyError as exc:
        log.warning("status: the buffer cannot be read: %s", exc)
        return JSONResponse({"detail": f"the gateway's buffer cannot be read: {exc}"}, status_code=503)
    data["refresh_s"] = service.config.web.refresh_s
    data["timezone"] = service.config.gateway.timezone
    return JSONResponse(data, headers={"Cache-Control": "no-store"})


def healthz(request: Request) -> JSONResponse:
    """200 while the service runs and its buffer answers; else 503 with the reason. Open without auth."""
    state = _state(request)
    gateway_id = state.service.config.gateway.id
    if not state.alive():
        return _unhealthy(gateway_id, "the gateway service is not running")
    try:
        # The oldest pending punch: one look-up in the pending index, under a millisecond however large
        # the buffer (backlog() counts every row: about 65 ms with 150,000 acknowledged punches kept).
        state.service.buffer.pending(1)
    except SQLAlchemyError as exc:
        log.warning("health check: the buffer cannot be read: %s", exc)
        return _unhealthy(gateway_id, f"the buffer cannot be read: {exc}")
    body = {"status": "ok", "gateway_id": gateway_id, "buffer": "ok"}
    return JSONResponse(body, headers={"Cache-Control": "no-store"})


def _unhealthy(gateway_id: str, reason: str) -> JSONResponse:
    body = {"status": "unavailable", "gateway_id": gateway_id, "reason": reason}
    return JSONResponse(body, status_code=503, headers={"Cache-Control": "no-store"})


def create_web_app(
    service: GatewayService,
    *,
    alive: Callable[[], bool] = lambda: True,
    extra_routers: Sequence[APIRouter] = (),
) -> FastAPI:
    """The status page's ASGI app for ``service``.

    ``alive`` tells /healthz whether the service is running. ``extra_routers`` (e.g. /metrics) are
    included behind the same basic auth as the page.
    """
    web = service.config.web
    page = load_page()
    credentials = None
    if web.username is not None and web.password is not None:
        credentials = (web.username.encode(), web.password.encode())
    app = FastAPI(
        title=f"e-Kinerja gateway {service.config.gateway.id}",
        docs_url=None,  # no API browser: the page is the interface, and nothing is left open by accident
        redoc_url=None,
        openapi_url=None,
    )
    app.state.web = WebState(service, alive, page, page_headers(page), credentials)
    app.get("/healthz", response_class=JSONResponse)(healthz)
    protected = APIRouter(dependencies=[Depends(require_auth)])
    protected.get("/", response_class=HTMLResponse)(status_page)
    protected.get("/api/status", response_class=JSONResponse)(api_status)
    app.include_router(protected)
    for router in extra_routers:
        app.include_router(router, dependencies=[Depends(require_auth)])
    return app


class WebServer:
    """The status page served by uvicorn in a daemon thread on ``[web] listen``; restartable."""

    def __init__(
        self,
        service: GatewayService,
        *,
        alive: Callable[[], bool] = lambda: True,
        extra_routers: Sequence[APIRouter] = (),
    ) -> None:
        self.service = service
        self.host, self.port = split_listen(service.config.web.listen)
        self.app = create_web_app(service, alive=alive, extra_routers=extra_routers)
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The base URL the page is served on."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> None:
        """Listen and serve; returns once the socket is open. OperatorError when it cannot listen."""
        if self._thread is not None:
            raise RuntimeError("the status page is already being served")
        config = uvicorn.Config(
            self.app,
            host=self.host,
            port=self.port,
            log_level="warning",
            log_config=None,  # the gateway's logging stays as it is configured
            access_log=False,
            server_header=False,
            lifespan="off",
            timeout_graceful_shutdown=5,
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, name="web", daemon=True)
        thread.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                server.should_exit = True
                thread.join(STOP_TIMEOUT_S)
                raise OperatorError(
                    f"the status page could not listen on {self.service.config.web.listen} "
                    "(is the port in use? see the log above); change [web] listen"
                )
            time.sleep(0.02)
        self._server, self._thread = server, thread
        if self.port == 0:  # a free port was asked for: say which one
            self.port = int(server.servers[0].sockets[0].getsockname()[1])
        auth = "with basic auth" if self.service.config.web.username else "without auth"
        log.info("status page on %s (%s)", self.url, auth)

    def stop(self) -> None:
        """Stop serving and wait for the thread; safe to call when not started."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None or thread is None:
            return
        server.should_exit = True
        thread.join(STOP_TIMEOUT_S)
        if thread.is_alive():
            log.warning("the status page did not stop within %g s", STOP_TIMEOUT_S)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
