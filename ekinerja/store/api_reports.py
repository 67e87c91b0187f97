"""Report endpoints for the e-Kinerja core: daily, monthly, discipline, and the changed-days feed.

Every report answers JSON, or CSV with ``?format=csv``; a client token (``[[clients]]``) is needed.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import JSONResponse, Response

from ekinerja.store import reports
from ekinerja.store.api_deps import Reader, State, Unit
from ekinerja.store.reports import MAX_CHANGES, Report, ReportRequestError

router = APIRouter(prefix="/v1", tags=["reports"])

Format = Annotated[Literal["json", "csv"], Query(description="json (default) or csv")]
_NIP = r"^\d{18}$"
_MONTH = re.compile(r"^(19|20|21)\d{2}-(0[1-9]|1[0-2])$")


def _answer(report: Report, fmt: str, name: str) -> Response:
    if fmt == "csv":
        return Response(
            report.as_csv(),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
        )
    return JSONResponse(report.as_json())


def _run(make: Any, *args: Any) -> Report:
    try:
        report: Report = make(*args)
    except ReportRequestError as exc:
        raise HTTPException(422, str(exc)) from None
    except LookupError as exc:
        raise HTTPException(404, str(exc.args[0])) from None
    return report


@router.get("/attendance/daily")
def get_daily(
    state: State,
    _client: Reader,
    nip: Annotated[str, Query(pattern=_NIP, description="the employee's NIP")],
    from_: Annotated[date, Query(alias="from", description="first day, YYYY-MM-DD")],
    to: Annotated[date, Query(description="last day, YYYY-MM-DD")],
    format: Format = "json",
) -> Response:
    """One employee's days: first clock-in, last clock-out, minutes late and early, TL, PSW, TK, leave."""
    report = _run(reports.daily, state.engine, state.office, nip, from_, to)
    return _answer(report, format, f"daily-{nip}-{from_}-{to}")


@router.get("/attendance/monthly")
def get_monthly(
    state: State,
    _client: Reader,
    month: Annotated[str, Query(pattern=_MONTH.pattern, description="YYYY-MM")],
    unit: Unit = None,
    format: Format = "json",
) -> Response:
    """Per employee: TL1-4 and PSW1-4 counts, TK and leave days, and the month's cut (capped)."""
    year, number = (int(part) for part in month.split("-"))
    report = _run(reports.monthly, state.engine, state.office, date(year, number, 1), unit)
    return _answer(report, format, f"monthly-{month}")


@router.get("/discipline")
def get_discipline(
    state: State,
    _client: Reader,
    year: Annotated[int, Query(ge=2000, le=2100, description="the calendar year")],
    as_of: Annotated[date | None, Query(description="count up to this day (default: yesterday)")] = None,
    unit: Unit = None,
    format: Format = "json",
) -> Response:
    """PP 94/2021: TK days in the year, the longest run of TK working days, the band and sanction."""
    report = _run(reports.discipline, state.engine, state.office, year, as_of, unit)
    return _answer(report, format, f"discipline-{year}")


@router.get("/attendance/changes")
def get_changes(
    state: State,
    _client: Reader,
    after: Annotated[int, Query(ge=0, le=2**63 - 1, description="last seq already processed; 0 from the start")] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_CHANGES, description="most changes per page")] = 1000,
) -> dict[str, Any]:
    """Days whose score changed after it was first reported (late punches, leave, mappings); resumable."""
    return reports.changes(state.engine, after, limit)
