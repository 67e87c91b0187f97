"""The "Hari ini" page: who is in, late, not yet in or on leave today, per unit; it refreshes itself."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query, Request
from fastapi.responses import Response

from ekinerja.store.attendance import today_scores
from ekinerja.store.dashboard.pages import Route
from ekinerja.store.dashboard.today import Presence, board
from ekinerja.store.dashboard.web import page, signed_in, state, unit_for, units_choice
from ekinerja.store.registry import list_employees

REFRESH_S = 15


def today_page(request: Request, unit: Annotated[str | None, Query(max_length=200)] = None) -> Response:
    """Today's board for one unit or all (a head of unit sees their own)."""
    session = signed_in(request)
    unit = unit_for(session, unit)
    store = state(request)
    staff = list_employees(store.engine, unit)
    scores = today_scores(store.engine, store.office, {e.nip for e in staff})
    units = board(((e.nip, e.name, e.unit) for e in staff), scores)
    day = store.office.now().date()
    return page(request, "today.html", session=session, page="today", units=units, unit=unit, day=day,
                units_choice=units_choice(request, session), P=Presence, refresh_s=REFRESH_S)  # fmt: skip


ROUTES: list[Route] = [("/hari-ini", today_page, "GET")]
