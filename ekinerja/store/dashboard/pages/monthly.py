"""The "Rekap bulanan" page: a month per unit and per employee (TL1-4, PSW1-4, TK, leave days, the TPP
cut), as tables and charts, with its CSV and a printable page for the Kasubbag TU to sign."""

from __future__ import annotations

import re
import unicodedata
from datetime import date
from typing import Annotated, Any

from fastapi import Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from ekinerja.config.rules import BandRules
from ekinerja.store.api_deps import Unit
from ekinerja.store.attendance import kept_days
from ekinerja.store.dashboard import charts, recap
from ekinerja.store.dashboard.i18n import Words
from ekinerja.store.dashboard.pages import Route
from ekinerja.store.dashboard.web import BadQuery, page, query, signed_in, state, unit_for, units_choice, words
from ekinerja.store.reports import MONTHLY_COLUMNS, Report, monthly
from ekinerja.store.sessions import Session

MONTH = re.compile(r"([0-9]{4})-([0-9]{2})")  # ASCII digits only: int() would read others, or fail
Month = Annotated[str | None, Query(max_length=20, description="YYYY-MM; this month when left out")]


def month_of(session: Session, text: str | None, today: date) -> date:
    """The month asked for as YYYY-MM (this month when not given); BadQuery names a wrong one.

    From 2000-01 (the store scores no earlier year) to this month: a later month has nothing to show yet.
    """
    if not text:
        return today.replace(day=1)
    found = MONTH.fullmatch(text.strip())
    latest = today.replace(day=1)
    month = date(int(found[1]), int(found[2]), 1) if found and 1 <= int(found[2]) <= 12 else None
    if month is None or not date(2000, 1, 1) <= month <= latest:
        raise BadQuery(session, "month", f"{text!r} is not a month from 2000-01 to {latest:%Y-%m} (write YYYY-MM)")
    return month


def _report(request: Request, session: Session, month_text: str | None, unit: str | None) -> tuple[Report, date]:
    unit = unit_for(session, unit)
    store = state(request)
    month = month_of(session, month_text, store.office.now().date())
    try:
        report = monthly(store.engine, store.office, month, unit)
    except LookupError:  # a unit with nobody in it: an empty recap, not an error
        report = Report({"month": f"{month:%Y-%m}", "unit": unit}, "employees", [], MONTHLY_COLUMNS)
    return report, month


def _band_labels(t: Words, lateness: BandRules) -> list[str]:
    """TL1.. with the profile's minutes; the band a missing clock-in counts in says so."""
    labels = []
    for n, (low, high) in enumerate(recap.band_ranges([b.from_minutes for b in lateness.bands]), 1):
        minutes = t("minutes_range", low=low, high=high) if high is not None else t("minutes_from", low=low)
        if n == lateness.missing_band:
            minutes += " / " + t("no_clock_in_short")
        labels.append(f"TL{n} ({minutes})")
    return labels


def _charts(
    t: Words, lateness: BandRules, units: list[recap.UnitRecap], days: list[tuple[date, dict[str, int]]]
) -> dict[str, str]:
    kinds = [charts.Category(kind, t(f"day_{kind}")) for kind in recap.DAY_KINDS]
    labels = _band_labels(t, lateness)
    bands = dict(zip(labels, recap.band_totals(units)[: len(labels)], strict=True))
    return {
        "days": charts.daily_stacked_bars(
            days, kinds, title=t("chart_days"), empty=t("chart_empty"), x_label=t("chart_days_x")
        ),
        "bands": charts.band_histogram(bands, title=t("chart_bands"), empty=t("chart_empty"), x_label=t("band")),
        "tk": charts.unit_bars(recap.tk_per_unit(units), title=t("chart_tk"), empty=t("chart_empty")),
    }


def _context(request: Request, session: Session, report: Report, month: date) -> dict[str, Any]:
    t = words(request)
    units = recap.by_unit(report.rows)
    unit = report.meta["unit"]
    store = state(request)
    nips = {row["nip"] for row in report.rows}
    days = recap.daily_counts(kept_days(store.engine, [month], nips)) if nips else []
    previous, following = _shift(month, -1), _shift(month, 1)
    latest = store.office.now().date().replace(day=1)
    through = max((row["scored_through"] for row in report.rows if row["scored_through"]), default=None)
    lateness = store.office.scorer.profile.lateness
    return {
        "session": session, "page": "monthly", "units": units, "unit": unit, "month": month,
        "month_name": t.month(month), "month_value": f"{month:%Y-%m}", "scored_through": through,
        "units_choice": units_choice(request, session), "charts": _charts(t, lateness, units, days),
        "here": query(month=f"{month:%Y-%m}", unit=unit),
        "previous": query(month=f"{previous:%Y-%m}", unit=unit) if month > date(2000, 1, 1) else None,
        "following": query(month=f"{following:%Y-%m}", unit=unit) if following <= latest else None,
        "latest": f"{latest:%Y-%m}", "printed_on": store.office.now().date(), "current": month == latest,
    }  # fmt: skip


def _shift(month: date, by: int) -> date:
    index = month.year * 12 + month.month - 1 + by
    return date(index // 12, index % 12 + 1, 1)


async def monthly_page(request: Request, month: Month = None, unit: Unit = None) -> Response:
    """The month's recap for one unit or all (a head of unit sees their own)."""
    return await _recap(request, month, unit, "monthly.html")


async def monthly_print(request: Request, month: Month = None, unit: Unit = None) -> Response:
    """The same recap laid out for paper, with room for the signatures."""
    return await _recap(request, month, unit, "monthly_print.html")


async def _recap(request: Request, month: str | None, unit: str | None, template: str) -> Response:
    """The recap of ``month`` and ``unit`` in ``template`` (on screen or for paper: the same context)."""
    session = signed_in(request)
    report, first = await run_in_threadpool(_report, request, session, month, unit)
    context = await run_in_threadpool(_context, request, session, report, first)
    return page(request, template, **context)


async def monthly_csv(request: Request, month: Month = None, unit: Unit = None) -> Response:
    """The recap as the store's monthly report CSV, one line per employee, as a download."""
    session = signed_in(request)
    report, first = await run_in_threadpool(_report, request, session, month, unit)
    name = f"rekap-{first:%Y-%m}" + (f"-{_slug(report.meta['unit'])}" if report.meta["unit"] else "") + ".csv"
    headers = {"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"}
    return Response(report.as_csv(), media_type="text/csv; charset=utf-8", headers=headers)


def _slug(unit: str) -> str:
    """A unit's name as a file name: ASCII letters and digits, words joined by '-'."""
    ascii_name = unicodedata.normalize("NFKD", unit).encode("ascii", "ignore").decode()
    return re.sub(r"[^A-Za-z0-9]+", "-", ascii_name).strip("-").lower()[:60] or "unit"


ROUTES: list[Route] = [
    ("/rekap", monthly_page, "GET"),
    ("/rekap/cetak", monthly_print, "GET"),
    ("/rekap.csv", monthly_csv, "GET"),
]
