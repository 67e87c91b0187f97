"""The reports the e-Kinerja core reads: daily, monthly, discipline, and the feed of changed days.

Each report is plain data (lists of dicts) that the API serves as JSON or CSV and ``ekinerja store
report`` prints. Kept month rows are brought up to date first, so a report never shows a score
older than its inputs. Times are the offices' wall clock (``timezone`` says which).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Collection
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy import Engine, func, select

from ekinerja.store.attendance import Office, kept_days, today_scores
from ekinerja.store.db import attendance_months, day_changes, employees
from ekinerja.store.entries import months_between
from ekinerja.store.month_scoring import ensure_scored
from ekinerja.store.scoring import DayScore, standing

MAX_DAYS = 366
MONTHLY_COLUMNS = ("nip", "name", "unit", "scored_through", "working_days", "tl1", "tl2", "tl3", "tl4",
                   "psw1", "psw2", "psw3", "psw4", "tk_days", "leave_days", "cut_percent", "cut_amount")  # fmt: skip
"""The monthly report's CSV columns (a row flattened), for a month or unit with nobody in it."""
MAX_CHANGES = 5000


class ReportRequestError(ValueError):
    """A report asked for something that cannot be answered (the message says what)."""


@dataclass(frozen=True)
class Report:
    """A report: its rows, what they are, and how to flatten them to CSV."""

    meta: dict[str, Any]
    key: str
    rows: list[dict[str, Any]]
    columns: tuple[str, ...] = ()  # the CSV header when there are no rows (a consumer expects it all the same)

    def as_json(self) -> dict[str, Any]:
        """The report as the API's JSON body."""
        return {**self.meta, self.key: self.rows}

    def as_csv(self) -> str:
        """One CSV line per row; list values spread over numbered columns (tl1..tl4)."""
        flat = [_flatten(row) for row in self.rows]
        out = io.StringIO()
        columns = list(dict.fromkeys(name for row in flat for name in row)) or list(self.columns)  # rows may lack some
        writer = csv.DictWriter(out, columns, restval="", lineterminator="\n")
        writer.writeheader()
        writer.writerows(flat)
        return out.getvalue()


def _flatten(row: dict[str, Any]) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in row.items():
        if isinstance(value, list):
            flat.update({f"{key}{n + 1}": v for n, v in enumerate(value)})
        elif isinstance(value, dict):
            flat.update({f"{key}_{k}": v for k, v in value.items()})
        elif isinstance(value, bool):
            flat[key] = int(value)
        else:
            flat[key] = "" if value is None else value
    return flat


def _day_row(d: DayScore) -> dict[str, Any]:
    return {
        "date": d.date.isoformat(),
        "working": d.working,
        "first_in": d.first_in.isoformat() if d.first_in else None,
        "last_out": d.last_out.isoformat() if d.last_out else None,
        "late_minutes": d.late_minutes,
        "early_minutes": d.early_minutes,
        "tl": d.tl,
        "psw": d.psw,
        "tk": d.tk,
        "leave": d.leave,
        "made_up": d.made_up,
        "cut_percent": d.cut_percent,
        "open": d.open,
    }


def daily(engine: Engine, office: Office, nip: str, first: date, last: date) -> Report:
    """Day by day scores of one employee; today, if asked for, live and marked open."""
    if last < first or (last - first).days >= MAX_DAYS:
        raise ReportRequestError(f"from {first} to {last}: give a range of 1 to {MAX_DAYS} days, from <= to")
    _known(engine, nip)
    today = office.now().date()
    closed = min(last, today - timedelta(days=1))
    days: list[DayScore] = []
    if first <= closed:
        months = months_between(first, closed)
        ensure_scored(engine, office, months, {nip})
        days = [d for d in kept_days(engine, months, {nip}).get(nip, []) if first <= d.date <= closed]
    if first <= today <= last and nip in (live := today_scores(engine, office, {nip})):
        days.append(live[nip])
    return Report({"nip": nip, "timezone": office.zone.key}, "days", [_day_row(d) for d in days])


def monthly(engine: Engine, office: Office, month: date, unit: str | None) -> Report:
    """Per employee: TL and PSW band counts, TK and leave days, the month's cut (closed days only)."""
    month = month.replace(day=1)
    nips = _unit_nips(engine, unit)
    ensure_scored(engine, office, [month], nips)
    query = (
        select(attendance_months, employees.c.name, employees.c.unit)
        .join(employees, employees.c.nip == attendance_months.c.nip)
        .where(attendance_months.c.month == month)
        .order_by(employees.c.unit, attendance_months.c.nip)
    )
    if unit is not None:
        query = query.where(employees.c.unit == unit)
    with engine.connect() as conn:
        rows = [
            {
                "nip": r.nip,
                "name": r.name,
                "unit": r.unit,
                "scored_through": r.scored_through.isoformat() if r.scored_through else None,
                "working_days": r.working_days,
                "tl": [r.tl1, r.tl2, r.tl3, r.tl4],
                "psw": [r.psw1, r.psw2, r.psw3, r.psw4],
                "tk_days": r.tk_days,
                "leave_days": r.leave_days,
                "cut_percent": r.cut_percent,
                "cut_amount": str(r.cut_amount) if r.cut_amount is not None else None,
            }
            for r in conn.execute(query)
        ]
    return Report({"month": month.strftime("%Y-%m"), "unit": unit}, "employees", rows, MONTHLY_COLUMNS)


def discipline(engine: Engine, office: Office, year: int, as_of: date | None, unit: str | None) -> Report:
    """PP 94/2021 standing per employee: TK days this year up to ``as_of``, the band and its sanction."""
    yesterday = office.now().date() - timedelta(days=1)
    if as_of is not None and as_of.year != year:
        raise ReportRequestError(f"as_of {as_of} is not in {year}")
    first = date(year, 1, 1)
    as_of = min(as_of or date(year, 12, 31), yesterday)
    if as_of < first:  # a year with no closed day yet (1 January, or a year to come): nobody has a TK day
        return Report({"year": year, "as_of": None, "unit": unit}, "employees", [])
    nips = _unit_nips(engine, unit)
    months = months_between(first, as_of)
    ensure_scored(engine, office, months, nips)
    days = kept_days(engine, months, nips)
    names = _names(engine, nips)
    rows = []
    for nip in sorted(days, key=lambda n: (names.get(n, ("", ""))[1], n)):
        s = standing([d for d in days[nip] if d.date <= as_of])
        name, unit_of = names.get(nip, ("", ""))
        rows.append(
            {
                "nip": nip,
                "name": name,
                "unit": unit_of,
                "tk_days": s.tk_days,
                "consecutive_tk_days": s.consecutive_tk_days,
                "band": s.band,
                "sanction": s.sanction,
                "level": s.level,
                "crossed": {band: day.isoformat() for band, day in s.crossed.items()},
            }
        )
    return Report({"year": year, "as_of": as_of.isoformat(), "unit": unit}, "employees", rows)


def tk_by_unit_and_month(engine: Engine, year: int, through: date, unit: str | None) -> list[tuple[str, int, int]]:
    """(unit, month number, TK days) of the kept months of ``year`` up to ``through``, summed in the database.

    Call after :func:`discipline` for the same year, which brings the kept months up to date.
    """
    month = attendance_months.c.month
    query = (
        select(employees.c.unit, month, func.sum(attendance_months.c.tk_days))
        .join(employees, employees.c.nip == attendance_months.c.nip)
        .where(month >= date(year, 1, 1), month <= through.replace(day=1))
        .group_by(employees.c.unit, month)
    )
    if unit is not None:
        query = query.where(employees.c.unit == unit)
    with engine.connect() as conn:
        return [(name, first.month, int(days or 0)) for name, first, days in conn.execute(query)]


def changes(engine: Engine, after: int, limit: int) -> dict[str, Any]:
    """Days whose score changed after it was first kept, in change order; resume with ``after=next_after``."""
    if after < 0 or not 1 <= limit <= MAX_CHANGES:
        raise ReportRequestError(f"need after >= 0 and 1 <= limit <= {MAX_CHANGES}")
    query = select(day_changes).where(day_changes.c.seq > after).order_by(day_changes.c.seq).limit(limit + 1)
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    items = [
        {"seq": r.seq, "nip": r.nip, "date": r.day.isoformat(), "changed_at": r.changed_at.isoformat() + "Z"}
        for r in rows[:limit]
    ]
    return {"items": items, "next_after": items[-1]["seq"] if items else after, "has_more": len(rows) > limit}


def _known(engine: Engine, nip: str) -> None:
    with engine.connect() as conn:
        if conn.execute(select(employees.c.nip).where(employees.c.nip == nip)).first() is None:
            raise LookupError(f"NIP {nip} is not in the registry")


def _unit_nips(engine: Engine, unit: str | None) -> Collection[str] | None:
    if unit is None:
        return None
    with engine.connect() as conn:
        nips = set(conn.execute(select(employees.c.nip).where(employees.c.unit == unit)).scalars())
    if not nips:
        raise LookupError(f"no employee is in unit {unit!r}")
    return nips


def _names(engine: Engine, nips: Collection[str] | None) -> dict[str, tuple[str, str]]:
    with engine.connect() as conn:
        rows = conn.execute(select(employees.c.nip, employees.c.name, employees.c.unit)).all()
    return {nip: (name, unit) for nip, name, unit in rows if nips is None or nip in nips}
