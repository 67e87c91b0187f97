"""The dashboard added to the store's app: its pages, its style sheet and its error pages."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request
from fastapi.exception_handlers import request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles

from ekinerja.store.dashboard import signin, web
from ekinerja.store.dashboard.pages import devices, discipline, employee_imports, employees, monthly, today

MODULES = (signin, today, monthly, discipline, devices, employees, employee_imports)


def mount(app: FastAPI) -> None:
    """Add the dashboard's pages and style sheet to the store's app (they stay out of the API's schema)."""
    app.mount("/static", StaticFiles(directory=str(web.here / "static")), name="dashboard-static")
    app.add_exception_handler(web.NeedsSignIn, web.to_sign_in)
    app.add_exception_handler(web.Forbidden, web.refuse)
    app.add_exception_handler(web.BadQuery, web.bad_query)
    app.add_exception_handler(RequestValidationError, _bad_request_handler(app))
    for module in MODULES:
        for path, endpoint, method in module.ROUTES:
            app.add_api_route(path, endpoint, methods=[method], include_in_schema=False, response_class=HTMLResponse)


def _bad_request_handler(app: FastAPI) -> Callable[[Request, Exception], Awaitable[Response]]:
    """A handler of RequestValidationError for the whole app: the dashboard's pages get a 400 page,
    every other path (the API, ``/healthz``, ``/metrics``...) the answer it had before, unchanged."""
    paths = {path for module in MODULES for path, _endpoint, _method in module.ROUTES}
    api_answer = app.exception_handlers.get(RequestValidationError, request_validation_exception_handler)

    async def answer(request: Request, exc: Exception) -> Response:
        if request.url.path in paths:
            return await web.bad_request(request, exc)
        answered = api_answer(request, exc)
        return await answered if isinstance(answered, Awaitable) else answered

    return answer
