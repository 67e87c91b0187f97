"""The "Disiplin" page: employees approaching or past each PP 94/2021 band this year, with the dates,
and the trend of TK days per unit month by month."""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Any

from fastapi import Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from ekinerja.store.api_deps import Unit
from ekinerja.store.dashboard import charts, watchlist
from ekinerja.store.dashboard.i18n import Words
from ekinerja.store.dashboard.pages import Route
from ekinerja.store.dashboard.web import BadQuery, page, query, signed_in, state, unit_for, units_choice, words
from ekinerja.store.reports import Report, discipline, tk_by_unit_and_month
from ekinerja.store.scoring.discipline import BANDS, CONSECUTIVE
from ekinerja.store.sessions import Session

Year = Annotated[str | None, Query(max_length=20, description="the year; this year when left out")]
YEAR = re.compile(r"[0-9]{4}")  # not str.isdigit: '²' is a digit to it, and int('²') fails
FIRST_YEAR = 2000
"""The store scores no earlier year."""


def year_of(session: Session, text: str | None, today: date) -> int:
    """The year asked for (this year when not given); BadQuery names a wrong one."""
    if not text:
        return today.year
    if not YEAR.fullmatch(text.strip()) or not FIRST_YEAR <= int(text) <= today.year:
        raise BadQuery(session, "year", f"{text!r} is not a year from {FIRST_YEAR} to {today.year}")
    return int(text)


def _context(request: Request, session: Session, year_text: str | None, unit_text: str | None) -> dict[str, Any]:
    unit = unit_for(session, unit_text)
    store = state(request)
    this_year = store.office.now().year
    year = year_of(session, year_text, store.office.now().date())
    try:
        report = discipline(store.engine, store.office, year, None, unit)
    except LookupError:  # a unit with nobody in it: an empty list, not an error
        report = Report({"year": year, "as_of": None, "unit": unit}, "employees", [])
    listed, clear = watchlist.watchlist(report.rows)
    t = words(request)
    return {
        "session": session, "page": "discipline", "year": year, "unit": unit, "as_of": report.meta["as_of"],
        "listed": listed, "clear": clear, "units_choice": units_choice(request, session),
        "trend": _trend(request, t, report, year), "bands": BANDS, "consecutive": CONSECUTIVE,
        "previous": query(year=year - 1, unit=unit) if year > FIRST_YEAR else None,
        "following": query(year=year + 1, unit=unit) if year < this_year else None,
        "this_year": this_year, "approaching_days": watchlist.APPROACHING_DAYS,
    }  # fmt: skip


def _trend(request: Request, t: Words, report: Report, year: int) -> str:
    """TK days per month of the year so far, a line per unit (the units with the most)."""
    title, empty = t("chart_trend"), t("chart_empty")
    if not report.rows or report.meta["as_of"] is None:
        return charts.trend_lines([], [], title=title, empty=empty)
    last = date.fromisoformat(report.meta["as_of"])
    counts = tk_by_unit_and_month(state(request).engine, year, last, report.meta["unit"])
    labels = [t(f"month_{m}")[:3] for m in range(1, last.month + 1)]
    trend = watchlist.trend(counts, last.month)
    lines = [charts.Series(unit, [float(v) for v in days]) for unit, days in watchlist.busiest(trend)]
    return charts.trend_lines(labels, lines, title=title, empty=empty)


async def discipline_page(request: Request, year: Year = None, unit: Unit = None) -> Response:
    """The year's watchlist for one unit or all (a head of unit sees their own)."""
    session = signed_in(request)
    context = await run_in_threadpool(_context, request, session, year, unit)
    return page(request, "discipline.html", **context)


ROUTES: list[Route] = [("/disiplin", discipline_page, "GET")]
