"""A scoring pass over one month: read the inputs, score every day, keep the rows, log changed days.

Big passes (a whole office's month) are spread over the machine's cores: each worker process
reads, scores and keeps its share of the employees in its own transaction. A row whose inputs
changed while a pass read them stays marked stale, so the next pass scores it again: a late
punch is never lost between the read and the write.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Collection, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from multiprocessing.context import BaseContext
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, delete, select

from ekinerja.bulk import gc_paused
from ekinerja.store.attendance import Employee, Office, Rescore, day_inputs, encode_day, load_employees, month_end
from ekinerja.store.db import attendance_months, day_changes, feed_locks, insert_ignoring, make_engine
from ekinerja.store.scoring import DayScore, Punch, Scorer, score_month

log = logging.getLogger("ekinerja.store.attendance")

PARALLEL_FROM = 3000
"""Employees in one pass from which scoring is spread over the machine's cores."""
MAX_WORKERS = 4
_CHUNK = 500


def score_month_rows(engine: Engine, office: Office, month: date, nips: Collection[str] | None, today: date) -> Rescore:
    """Score the closed days of ``month`` for ``nips`` (or everyone) and keep the rows; log changed days."""
    month = month.replace(day=1)
    last = min(month_end(month), today - timedelta(days=1))
    if last < month:
        return Rescore()
    clock = time.perf_counter()
    with engine.connect() as conn:
        staff = load_employees(conn, month, last, nips)
    _drop_inactive(engine, month, nips, {e.nip for e in staff})
    workers = min(os.cpu_count() or 1, MAX_WORKERS)
    if len(staff) >= PARALLEL_FROM and workers > 1 and _shareable(engine):
        done = _in_processes(engine, office, month, last, staff, workers)
    else:
        done = score_and_keep(engine, office, month, last, staff, everyone=nips is None)
    if done.months >= PARALLEL_FROM:
        log.info(
            "scored %s for %d employee(s) in %.1f s; %d day(s) changed",
            month.strftime("%Y-%m"), done.months, time.perf_counter() - clock, done.changed_days,
        )  # fmt: skip
    return done


def ensure_scored(engine: Engine, office: Office, months: Iterable[date], nips: Collection[str] | None) -> None:
    """Make the kept rows of ``months`` current for ``nips`` (or everyone) before a report reads them."""
    today = office.now().date()
    for month in months:
        last = min(month_end(month), today - timedelta(days=1))
        if last < month:
            continue
        with engine.connect() as conn:
            staff = {e.nip for e in load_employees(conn, month, last, nips)}
            query = select(attendance_months.c.nip).where(
                attendance_months.c.month == month,
                attendance_months.c.stale.is_(False),
                attendance_months.c.scored_through >= last,
                attendance_months.c.scored_with == office.fingerprint,
            )
            fresh = set(conn.execute(query).scalars())
        behind = staff - fresh
        if behind:
            score_month_rows(engine, office, month, None if behind == staff and nips is None else behind, today)


def rescore_stale(engine: Engine, office: Office) -> Rescore:
    """Re-score every stale row, and extend the current month's rows to yesterday; for the background job."""
    today = office.now().date()
    with engine.connect() as conn:
        stale = conn.execute(
            select(attendance_months.c.month, attendance_months.c.nip).where(attendance_months.c.stale.is_(True))
        ).all()
    by_month: dict[date, set[str]] = {}
    for month, nip in stale:
        by_month.setdefault(month, set()).add(nip)
    done = Rescore()
    for month, nips in sorted(by_month.items()):
        result = score_month_rows(engine, office, month, nips, today)
        done.months += result.months
        done.changed_days += result.changed_days
    if done.changed_days:
        log.info("re-scored %d employee-month(s): %d day(s) changed", done.months, done.changed_days)
    return done


def _drop_inactive(engine: Engine, month: date, nips: Collection[str] | None, active: set[str]) -> None:
    """Forget kept rows of employees no longer active in ``month`` (their active range was changed)."""
    table = attendance_months
    with engine.begin() as conn:
        if nips is None:
            query = select(table.c.nip).where(table.c.month == month)
            gone = [nip for nip in conn.execute(query).scalars() if nip not in active]
        else:
            gone = sorted(set(nips) - active)
        for start in range(0, len(gone), _CHUNK):
            conn.execute(delete(table).where(table.c.month == month, table.c.nip.in_(gone[start : start + _CHUNK])))


def score_and_keep(
    engine: Engine, office: Office, month: date, last: date, staff: list[Employee], *, everyone: bool = False,
) -> Rescore:  # fmt: skip
    """Score ``staff``'s month from the database's inputs and keep the rows (one transaction to write).

    The rows' versions are read before the inputs: a row whose inputs changed since (a late punch,
    a leave, a mapping, committed while this pass read) has a newer version, keeps its stale mark
    and is scored again by the next pass.
    """
    chosen = None if everyone else {e.nip for e in staff}
    with engine.connect() as conn:
        versions = _versions(conn, month, [e.nip for e in staff])
    with gc_paused(), engine.connect() as conn:
        rows = _score_staff(conn, office, month, last, staff, chosen)
    for row in rows:
        row["scored_with"] = office.fingerprint
    return _keep(engine, month, rows, versions)


def _score_staff(
    conn: Connection, office: Office, month: date, last: date, staff: list[Employee], chosen: set[str] | None
) -> list[dict[str, Any]]:
    punches, leave = day_inputs(conn, office, month, last, chosen)
    scoring = _Pass.over(office.scorer, month, last)
    return [_score_employee(scoring, e, punches.get(e.nip, {}), leave.get(e.nip, {})) for e in staff]


def _keep(engine: Engine, month: date, rows: list[dict[str, Any]], versions: dict[str, int]) -> Rescore:
    table = attendance_months
    existing = [row for row in rows if row["nip"] in versions]
    new = [row for row in rows if row["nip"] not in versions]
    with engine.begin() as conn:
        # Only rows kept before can have changed days: a first pass over a month reads nothing back.
        old = _kept(conn, month, [row["nip"] for row in existing]) if existing else {}
        updated = 0
        if existing:
            values: dict[str, Any] = {name: bindparam(f"v_{name}") for name in rows[0] if name not in ("nip", "month")}
            update = table.update().where(
                table.c.month == month, table.c.nip == bindparam("v_nip"), table.c.version == bindparam("b_version")
            )
            params = [
                {f"v_{name}": value for name, value in row.items()} | {"b_version": versions[row["nip"]]}
                for row in existing
            ]
            updated = max(int(conn.execute(update.values(values), params).rowcount), 0)
        inserted = 0
        if new:  # a row added meanwhile (marked stale by a late input) wins: it is scored again next
            inserted = max(int(conn.execute(insert_ignoring(conn, table, ["nip", "month"]), new).rowcount), 0)
        changes: list[tuple[str, date]] = []
        if old:
            applied = _applied(conn, month, list(old), existing[0]["scored_at"])
            changes = _changed_days([row for row in existing if row["nip"] in applied], old)
        if changes:
            # Take turns with other writers until commit, so seqs are handed out in commit order.
            conn.execute(select(feed_locks.c.name).where(feed_locks.c.name == "day_changes").with_for_update())
            now = datetime.now(UTC).replace(tzinfo=None)
            conn.execute(day_changes.insert(), [{"nip": nip, "day": day, "changed_at": now} for nip, day in changes])
    return Rescore(months=updated + inserted, changed_days=len(changes))


def _kept_columns(conn: Connection, month: date, nips: list[str], column: Any) -> Iterator[tuple[str, Any]]:
    """(nip, ``column``) of the kept rows of ``nips`` in ``month``, read a bounded IN-list at a time."""
    table = attendance_months
    for start in range(0, len(nips), _CHUNK):
        query = select(table.c.nip, column).where(table.c.month == month, table.c.nip.in_(nips[start : start + _CHUNK]))
        yield from ((row[0], row[1]) for row in conn.execute(query))


def _versions(conn: Connection, month: date, nips: list[str]) -> dict[str, int]:
    return dict(_kept_columns(conn, month, nips, attendance_months.c.version))


def _applied(conn: Connection, month: date, nips: list[str], stamp: datetime) -> set[str]:
    """The rows this pass's write landed in (its scored_at stamp)."""
    return {
        nip for nip, scored_at in _kept_columns(conn, month, nips, attendance_months.c.scored_at) if scored_at == stamp
    }


def _shareable(engine: Engine) -> bool:
    # Another process can open the same database: a server, or a SQLite file (not :memory:).
    database = engine.url.database
    return engine.url.get_backend_name() != "sqlite" or bool(database and database != ":memory:")


def _context() -> BaseContext:
    # fork starts a worker at once, but is only safe in a process without other threads (the CLI, a
    # benchmark); the store server, which has threads, pays for spawn's fresh interpreter.
    return multiprocessing.get_context("fork" if threading.active_count() == 1 else "spawn")


def _in_processes(
    engine: Engine, office: Office, month: date, last: date, staff: list[Employee], workers: int
) -> Rescore:
    url = engine.url.render_as_string(hide_password=False)
    size = -(-len(staff) // workers)
    parts = [staff[i : i + size] for i in range(0, len(staff), size)]
    done = Rescore()
    with ProcessPoolExecutor(len(parts), mp_context=_context()) as pool:
        futures = [pool.submit(_score_part, url, office, month, last, part) for part in parts]
        for future in futures:
            part_done = future.result()
            done.months += part_done.months
            done.changed_days += part_done.changed_days
    return done


def _score_part(url: str, office: Office, month: date, last: date, staff: list[Employee]) -> Rescore:
    engine = make_engine(url)
    try:
        return score_and_keep(engine, office, month, last, staff)
    finally:
        engine.dispose()


@dataclass(frozen=True)
class _Pass:
    """What every employee of a pass shares: the days, which of them are worked, when it ran."""

    scorer: Scorer
    month: date
    last: date
    days: list[tuple[date, bool, bool]]  # (day, worked by five-day units, worked by six-day units)
    scored_at: datetime

    @classmethod
    def over(cls, scorer: Scorer, month: date, last: date) -> _Pass:
        days = [month + timedelta(days=n) for n in range((last - month).days + 1)]
        plan = [(d, scorer.hours_for(d, False) is not None, scorer.hours_for(d, True) is not None) for d in days]
        return cls(scorer, month, last, plan, datetime.now(UTC).replace(tzinfo=None))


def _score_employee(
    scoring: _Pass, employee: Employee, punches: dict[date, list[Punch]], leave: dict[date, str]
) -> dict[str, Any]:
    first, until = employee.active_days(scoring.month, scoring.last)
    days: list[DayScore] = []
    six_day, score_day = employee.six_day, scoring.scorer.score_day
    for day, five_worked, six_worked in scoring.days:
        if day < first or day > until:
            continue
        punched, off = punches.get(day), leave.get(day)
        # A day off with nothing on it says nothing: it is not kept (nor reported).
        if punched or off or (six_worked if six_day else five_worked):
            days.append(score_day(day, punched or (), six_day=six_day, leave=off))
    total = score_month(scoring.scorer, scoring.month, days, employee.tpp_base)
    tl1, tl2, tl3, tl4 = total.tl
    psw1, psw2, psw3, psw4 = total.psw
    return {
        "nip": employee.nip, "month": scoring.month, "stale": False,
        "scored_through": scoring.last, "days": json.dumps([encode_day(d) for d in days], separators=(",", ":")),
        "working_days": total.working_days, "tl1": tl1, "tl2": tl2, "tl3": tl3, "tl4": tl4,
        "psw1": psw1, "psw2": psw2, "psw3": psw3, "psw4": psw4, "tk_days": total.tk_days,
        "leave_days": total.leave_days, "cut_percent": round(total.cut_percent, 4), "cut_amount": total.cut_amount,
        "scored_at": scoring.scored_at,
    }  # fmt: skip


def _kept(conn: Connection, month: date, nips: list[str]) -> dict[str, str]:
    """The kept days (JSON) of each row that has them."""
    return {nip: days for nip, days in _kept_columns(conn, month, nips, attendance_months.c.days) if days}


def _changed_days(rows: list[dict[str, Any]], old: dict[str, str]) -> list[tuple[str, date]]:
    changes = []
    for row in rows:
        before = old.get(row["nip"])
        if before is None or before == row["days"]:
            continue
        was = {item[0]: item for item in json.loads(before)}
        for item in json.loads(row["days"]):
            if item[0] in was and was[item[0]] != item:
                changes.append((row["nip"], row["month"].replace(day=item[0])))
    return changes
