"""Leave, duty and manual attendance: what excuses a day or stands in for a punch.

Every entry keeps who approved it and who entered it, and when. ``ekinerja store import-leave`` and
``POST /v1/leave`` take the CSV ``nip,code,start,end,reason,approved_by``; the whole file is checked
first, and a bad row rejects it. An entry identical to one already stored is skipped, so a file can
be imported twice; one that overlaps a different entry of the same employee is refused.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, and_, select

from ekinerja.store import audit
from ekinerja.store.csv_input import (
    CsvRejected,
    RowProblem,
    convert_rows,
    parse_date,
    read_table,
    reject_if,
    text_field,
)
from ekinerja.store.db import employees, leave_entries, manual_entries
from ekinerja.store.registry import mark_stale

LEAVE_COLUMNS = ("nip", "code", "start", "end", "reason", "approved_by")
MANUAL_PUNCHES = ("in", "out")
MAX_LEAVE_DAYS = 3 * 366
"""Longer ranges are typing mistakes (cuti di luar tanggungan negara lasts at most three years)."""
EARLIEST_DAY = date(2000, 1, 1)
"""No entry is older: the store scores no earlier year (and a year like 0001 is a typing mistake)."""
MANUAL_AHEAD_DAYS = 1
"""A manual entry may be dated at most this many days after today (a clock-out entered just after midnight)."""


@dataclass(frozen=True)
class LeaveEntry:
    """An approved absence with a code (CT, CS, DL, ...) over a range of days."""

    nip: str
    code: str
    first_day: date
    last_day: date
    reason: str
    approved_by: str


@dataclass(frozen=True)
class ManualEntry:
    """An approved clock-in or clock-out entered by hand, at the office's wall-clock time."""

    nip: str
    at: datetime
    punch: str
    reason: str
    approved_by: str


def leave_last_day(today: date) -> date:
    """The latest day leave may be entered for: the end of next year (leave is entered ahead of time)."""
    return date(today.year + 1, 12, 31)


def manual_last_day(today: date) -> date:
    """The latest day a manual clock-in or clock-out may be dated: no attendance is entered for the future."""
    return today + timedelta(days=MANUAL_AHEAD_DAYS)


def day_problem(name: str, day: date, last: date) -> str | None:
    """Why ``day`` (the field ``name``) is outside 2000-01-01..``last``, or None."""
    if EARLIEST_DAY <= day <= last:
        return None
    return f"{name} {day} is not between {EARLIEST_DAY} and {last}"


def leave_day(row: dict[str, str], column: str, today: date) -> date:
    """The date in ``column`` of a leave row, within the days leave may be entered for."""
    day = parse_date(row, column)
    assert day is not None
    problem = day_problem(column, day, leave_last_day(today))
    if problem:
        raise RowProblem(problem)
    return day


def leave_from_row(row: dict[str, str], codes: Collection[str], today: date) -> LeaveEntry:
    """One CSV (or API) row as a leave entry; ``today`` (the offices' date) bounds its days."""
    code = row.get("code", "").upper()
    if code not in codes:
        raise RowProblem(f"code {row.get('code')!r} is not one of {', '.join(sorted(codes))}")
    first, last = leave_day(row, "start", today), leave_day(row, "end", today)
    if last < first:
        raise RowProblem(f"end {last} is before start {first}")
    if (last - first).days > MAX_LEAVE_DAYS:
        raise RowProblem(f"{first} to {last} is longer than three years")
    return LeaveEntry(
        nip=row.get("nip", ""),
        code=code,
        first_day=first,
        last_day=last,
        reason=text_field(row, "reason", 500) or "",
        approved_by=text_field(row, "approved_by", 100) or "",
    )


def import_leave(
    engine: Engine, text: str, source: str, codes: Collection[str], by: str, now: datetime, today: date | None = None
) -> int:
    """Check and apply a leave CSV in one transaction; returns how many entries were new.

    A refused file names every bad line at once: rows that cannot be read, and rows that clash with
    the registry or with leave already stored. ``today`` is the offices' date, which bounds the days;
    without it ``now``'s (UTC) date, at most a day off, which the end-of-next-year bound does not feel.
    """
    today = today or now.date()
    table = read_table(text, source, LEAVE_COLUMNS)
    rows, problems = convert_rows(table, lambda row: leave_from_row(row, codes, today))
    if problems:
        with engine.connect() as conn:
            problems += _checked_leave(conn, rows)[1]
    reject_if(source, table, problems)
    return add_leave(engine, rows, source, by, now, today)


def add_leave(
    engine: Engine, rows: list[tuple[int, LeaveEntry]], source: str, by: str, now: datetime, today: date
) -> int:
    """Store leave entries (all or nothing); ``rows`` carry the line (or position) each came from.

    Every day must lie within 2000-01-01 and the end of the year after ``today`` (the offices' date),
    whoever built the entries: a day past that is a typing mistake, and no month of it can be scored.
    """
    with engine.begin() as conn:
        problems = _leave_out_of_range(rows, today)
        if problems:
            raise CsvRejected(source, problems)
        new, problems = _checked_leave(conn, rows)
        if problems:
            raise CsvRejected(source, problems)
        if new:
            conn.execute(leave_entries.insert(), [_leave_values(e, by, now) for e in new])
            audit.record(conn, by, now, [_leave_change(e, source) for e in new])
            for entry in new:
                for month in months_between(entry.first_day, entry.last_day):
                    mark_stale(conn, [entry.nip], month)
    return len(new)


def _leave_out_of_range(rows: list[tuple[int, LeaveEntry]], today: date) -> list[str]:
    last = leave_last_day(today)
    found = [
        (line, day_problem(name, day, last))
        for line, entry in rows
        for name, day in (("start", entry.first_day), ("end", entry.last_day))
    ]
    return [f"line {line}: {problem}" for line, problem in found if problem]


def _checked_leave(conn: Connection, rows: list[tuple[int, LeaveEntry]]) -> tuple[list[LeaveEntry], list[str]]:
    """The entries not stored yet, and a problem for each unknown NIP or overlap."""
    problems = _unknown_nips(conn, rows)
    stored = _stored_leave(conn, {e.nip for _line, e in rows})
    new: list[LeaveEntry] = []
    for line, entry in rows:
        if entry in stored[entry.nip]:
            continue
        clash = next((o for o in [*stored[entry.nip], *new] if _overlap(o, entry) and o.nip == entry.nip), None)
        if clash is not None:
            problems.append(
                f"line {line}: {entry.code} {entry.first_day}..{entry.last_day} overlaps "
                f"{clash.code} {clash.first_day}..{clash.last_day} of NIP {entry.nip}"
            )
        new.append(entry)
    return new, problems


def manual_problem(at: datetime, today: date) -> str | None:
    """Why a manual entry at ``at`` (the offices' wall clock) cannot be stored, or None.

    Not before 2000-01-01, not after the day after ``today`` (the offices' date): a later day is a
    typing mistake whose month the background re-scoring could never score.
    """
    return day_problem("at", at.date(), manual_last_day(today))


def add_manual(engine: Engine, entry: ManualEntry, by: str, now: datetime, today: date) -> None:
    """Store one manual clock-in or clock-out; the employee must be in the registry, the day not ahead of ``today``."""
    problem = manual_problem(entry.at, today)
    if problem:
        raise CsvRejected("manual attendance", [problem])
    with engine.begin() as conn:
        problems = _unknown_nips(conn, [(1, entry)])
        if problems:
            raise CsvRejected("manual attendance", problems)
        conn.execute(
            manual_entries.insert().values(
                nip=entry.nip,
                at=entry.at,
                punch=entry.punch,
                reason=entry.reason,
                approved_by=entry.approved_by,
                created_at=now,
                created_by=by,
            )
        )
        mark_stale(conn, [entry.nip], entry.at.date().replace(day=1))
        detail = {"at": entry.at, "punch": entry.punch, "approved_by": entry.approved_by}
        audit.record(conn, by, now, [audit.Change("manual.add", entry.nip, detail, entry.reason)])


def _leave_change(entry: LeaveEntry, source: str) -> audit.Change:
    detail = {"code": entry.code, "first_day": entry.first_day, "last_day": entry.last_day, "source": source}
    return audit.Change("leave.add", entry.nip, detail | {"approved_by": entry.approved_by}, entry.reason)


def _leave_values(entry: LeaveEntry, by: str, now: datetime) -> dict[str, Any]:
    return {**entry.__dict__, "created_at": now, "created_by": by}


def _overlap(a: LeaveEntry, b: LeaveEntry) -> bool:
    return a.first_day <= b.last_day and b.first_day <= a.last_day


def _unknown_nips(conn: Connection, rows: list[tuple[int, Any]]) -> list[str]:
    nips = sorted({entry.nip for _line, entry in rows})
    known: set[str] = set()
    for start in range(0, len(nips), 500):
        chunk = nips[start : start + 500]
        known |= set(conn.execute(select(employees.c.nip).where(employees.c.nip.in_(chunk))).scalars())
    return [f"line {line}: NIP {entry.nip!r} is not in the registry" for line, entry in rows if entry.nip not in known]


def _stored_leave(conn: Connection, nips: set[str]) -> dict[str, list[LeaveEntry]]:
    stored: dict[str, list[LeaveEntry]] = {nip: [] for nip in nips}
    chosen = sorted(nips)
    for start in range(0, len(chosen), 500):
        query = select(leave_entries).where(leave_entries.c.nip.in_(chosen[start : start + 500]))
        for r in conn.execute(query):
            stored[r.nip].append(LeaveEntry(r.nip, r.code, r.first_day, r.last_day, r.reason, r.approved_by))
    return stored


def months_between(first: date, last: date) -> list[date]:
    """The first days of every month from ``first``'s to ``last``'s."""
    months: list[date] = []
    year, month = first.year, first.month
    # Compared before the date is made: the month after December 9999 cannot be a date.
    while (year, month) <= (last.year, last.month):
        months.append(date(year, month, 1))
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return months


def leave_in(conn: Connection, first: date, last: date, nips: Collection[str] | None) -> dict[str, dict[date, str]]:
    """Leave codes by employee and day, for days from ``first`` to ``last``."""
    query = select(leave_entries).where(and_(leave_entries.c.first_day <= last, leave_entries.c.last_day >= first))
    out: dict[str, dict[date, str]] = {}
    for r in conn.execute(query):
        if nips is not None and r.nip not in nips:
            continue
        days = out.setdefault(r.nip, {})
        day = max(r.first_day, first)
        while day <= min(r.last_day, last):
            days[day] = r.code
            day += timedelta(days=1)
    return out


def manual_in(conn: Connection, first: date, last: date, nips: Collection[str] | None) -> list[ManualEntry]:
    """Manual entries on days from ``first`` to ``last``."""
    start, end = (
        datetime.combine(first, datetime.min.time()),
        datetime.combine(last + timedelta(days=1), datetime.min.time()),
    )
    query = select(manual_entries).where(manual_entries.c.at >= start, manual_entries.c.at < end)
    return [
        ManualEntry(r.nip, r.at, r.punch, r.reason, r.approved_by)
        for r in conn.execute(query)
        if nips is None or r.nip in nips
    ]
