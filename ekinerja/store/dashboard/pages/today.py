"""The "Hari ini" page: who is in, late, not yet in or on leave today, per unit; it refreshes itself."""

from __future__ import annotations

from datetime import date

from fastapi import Request
from fastapi.responses import Response

from ekinerja.store.api_deps import Unit
from ekinerja.store.attendance import today_scores
from ekinerja.store.dashboard.pages import Route
from ekinerja.store.dashboard.today import Presence, board
from ekinerja.store.dashboard.web import page, signed_in, state, unit_for, units_choice
from ekinerja.store.registry import EmployeeRecord, list_employees

REFRESH_S = 15


def today_page(request: Request, unit: Unit = None) -> Response:
    """Today's board for one unit or all (a head of unit sees their own): the employees active today."""
    session = signed_in(request)
    unit = unit_for(session, unit)
    store = state(request)
    day = store.office.now().date()
    staff = [e for e in list_employees(store.engine, unit) if active_on(e, day)]
    scores = today_scores(store.engine, store.office, {e.nip for e in staff})
    units = board(((e.nip, e.name, e.unit) for e in staff), scores)
    return page(request, "today.html", session=session, page="today", units=units, unit=unit, day=day,
                units_choice=units_choice(request, session), P=Presence, refresh_s=REFRESH_S)  # fmt: skip


def active_on(employee: EmployeeRecord, day: date) -> bool:
    """Whether ``employee`` works here on ``day`` (the registry keeps who left and who is yet to start)."""
    return employee.active_from <= day and (employee.active_to is None or day <= employee.active_to)


ROUTES: list[Route] = [("/hari-ini", today_page, "GET")]
