"""The dashboard added to the store's app: its pages, its style sheet and its error pages."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from ekinerja.store.dashboard import signin, web
from ekinerja.store.dashboard.pages import devices, discipline, employees, monthly, today

MODULES = (signin, today, monthly, discipline, devices, employees)


def mount(app: FastAPI) -> None:
    """Add the dashboard's pages and style sheet to the store's app (they stay out of the API's schema)."""
    app.mount("/static", StaticFiles(directory=str(web.here / "static")), name="dashboard-static")
    app.add_exception_handler(web.NeedsSignIn, web.to_sign_in)
    app.add_exception_handler(web.Forbidden, web.refuse)
    app.add_exception_handler(web.BadQuery, web.bad_query)
    for module in MODULES:
        for path, endpoint, method in module.ROUTES:
            app.add_api_route(path, endpoint, methods=[method], include_in_schema=False, response_class=HTMLResponse)
