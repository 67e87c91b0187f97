"""Attendance scores kept per employee and month, and re-scored when their inputs change.

The pure rules are in :mod:`ekinerja.store.scoring`; this module feeds them from the database and
keeps what they answer. A month row holds the scores of its *closed* days (up to yesterday in the
office's zone): today is scored live when asked, as its punches are still arriving.

A row becomes stale when an input of its month changes (a late punch, a mapping, leave, a manual
entry, a registry change); re-scoring it compares every day with what was kept, and each day whose
score changed goes to the ``day_changes`` feed, so the e-Kinerja core learns which days to fetch
again. Days scored for the first time are not changes: the reports have them.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Engine, delete, func, select

from ekinerja.config.rules import load_profile
from ekinerja.config.store import StoreConfig
from ekinerja.store.db import attendance_months, day_changes, employees
from ekinerja.store.entries import leave_in, manual_in
from ekinerja.store.punch_input import load_punches, resolve_events
from ekinerja.store.registry import mark_stale
from ekinerja.store.scoring import DayScore, Punch, Scorer, score_month
from ekinerja.sync.contract import PunchEvent

log = logging.getLogger("ekinerja.store.attendance")

_CHUNK = 500


@dataclass(frozen=True)
class Office:
    """How this store scores: the rule profile, prepared, and the offices' zone."""

    scorer: Scorer
    zone: ZoneInfo

    @classmethod
    def from_config(cls, config: StoreConfig, config_dir: Path | None = None) -> Office:
        """The profile and zone ``store.toml`` names (a ConfigError when the profile is wrong)."""
        profile = load_profile(config.store.rules, config_dir)
        return cls(Scorer(profile), ZoneInfo(config.store.timezone or profile.timezone))

    def now(self) -> datetime:
        """The offices' wall clock now."""
        return datetime.now(UTC).astimezone(self.zone).replace(tzinfo=None)


@dataclass(frozen=True)
class Employee:
    """What scoring needs of a registry row."""

    nip: str
    unit: str
    six_day: bool
    tpp_base: Any
    active_from: date
    active_to: date | None

    def active_days(self, first: date, last: date) -> tuple[date, date]:
        """The part of ``first..last`` when the employee is active (may be empty: first > last)."""
        return max(first, self.active_from), min(last, self.active_to or last)


def month_end(month: date) -> date:
    """The last day of ``month``'s month."""
    return (month.replace(day=1) + timedelta(days=32)).replace(day=1) - timedelta(days=1)


# --- the kept form of a day --------------------------------------------------------------------


def _clock(value: datetime | None) -> str | None:
    return None if value is None else value.time().isoformat()


def encode_day(d: DayScore) -> list[Any]:
    """A day as a compact JSON array (the order of :func:`decode_day`)."""
    return [
        d.date.isoformat(), int(d.working), _clock(d.first_in), _clock(d.last_out), d.late_minutes,
        d.early_minutes, d.tl, d.psw, int(d.tk), d.leave, int(d.made_up), round(d.cut_percent, 4),
    ]  # fmt: skip


def decode_day(item: list[Any]) -> DayScore:
    """A day from :func:`encode_day`'s array."""
    day = date.fromisoformat(item[0])

    def at(clock: str | None) -> datetime | None:
        return None if clock is None else datetime.combine(day, time.fromisoformat(clock))

    return DayScore(
        date=day, working=bool(item[1]), first_in=at(item[2]), last_out=at(item[3]), late_minutes=item[4],
        early_minutes=item[5], tl=item[6], psw=item[7], tk=bool(item[8]), leave=item[9], made_up=bool(item[10]),
        cut_percent=item[11],
    )  # fmt: skip


# --- scoring ------------------------------------------------------------------------------------


def load_employees(conn: Connection, first: date, last: date, nips: Collection[str] | None) -> list[Employee]:
    """Employees active at some point from ``first`` to ``last`` (all, or those in ``nips``)."""
    query = select(employees).where(
        employees.c.active_from <= last, (employees.c.active_to.is_(None)) | (employees.c.active_to >= first)
    )
    found = []
    for r in conn.execute(query.order_by(employees.c.nip)):
        if nips is None or r.nip in nips:
            found.append(Employee(r.nip, r.unit, bool(r.six_day), r.tpp_base, r.active_from, r.active_to))
    return found


@dataclass
class Rescore:
    """What one scoring pass did."""

    months: int = 0
    changed_days: int = 0


def score_month_rows(engine: Engine, office: Office, month: date, nips: Collection[str] | None, today: date) -> Rescore:
    """Score the closed days of ``month`` for ``nips`` (or everyone) and keep the rows; log changed days."""
    month = month.replace(day=1)
    last = min(month_end(month), today - timedelta(days=1))
    if last < month:
        return Rescore()
    with engine.begin() as conn:
        staff = load_employees(conn, month, last, nips)
        chosen = {e.nip for e in staff}
        punches = load_punches(conn, office.zone, month, last, chosen if nips is not None else None)
        for entry in manual_in(conn, month, last, chosen if nips is not None else None):
            punches.setdefault(entry.nip, {}).setdefault(entry.at.date(), []).append(
                Punch(entry.at, entry.punch, manual=True)
            )
        leave = leave_in(conn, month, last, chosen if nips is not None else None)
        rows = [
            _score_employee(office.scorer, e, month, last, punches.get(e.nip, {}), leave.get(e.nip, {})) for e in staff
        ]
        old = _kept_days(conn, month, [e.nip for e in staff])
        changes = _changed_days(rows, old)
        _replace_rows(conn, month, rows)
        if changes:
            now = datetime.now(UTC).replace(tzinfo=None)
            conn.execute(day_changes.insert(), [{"nip": nip, "day": day, "changed_at": now} for nip, day in changes])
    return Rescore(months=len(rows), changed_days=len(changes))


def _score_employee(
    scorer: Scorer,
    employee: Employee,
    month: date,
    last: date,
    punches: dict[date, list[Punch]],
    leave: dict[date, str],
) -> dict[str, Any]:
    first, until = employee.active_days(month, last)
    days: list[DayScore] = []
    day = first
    while day <= until:
        days.append(scorer.score_day(day, punches.get(day, ()), six_day=employee.six_day, leave=leave.get(day)))
        day += timedelta(days=1)
    total = score_month(scorer, month, days, employee.tpp_base)
    return {
        "nip": employee.nip,
        "month": month,
        "stale": False,
        "scored_through": last,
        "days": json.dumps([encode_day(d) for d in days], separators=(",", ":")),
        "working_days": total.working_days,
        **{f"tl{n + 1}": count for n, count in enumerate(total.tl)},
        **{f"psw{n + 1}": count for n, count in enumerate(total.psw)},
        "tk_days": total.tk_days,
        "leave_days": total.leave_days,
        "cut_percent": round(total.cut_percent, 4),
        "cut_amount": total.cut_amount,
        "scored_at": datetime.now(UTC).replace(tzinfo=None),
    }


def _kept_days(conn: Connection, month: date, nips: list[str]) -> dict[str, str]:
    kept: dict[str, str] = {}
    for start in range(0, len(nips), _CHUNK):
        query = select(attendance_months.c.nip, attendance_months.c.days).where(
            attendance_months.c.month == month, attendance_months.c.nip.in_(nips[start : start + _CHUNK])
        )
        kept.update({nip: days for nip, days in conn.execute(query) if days})
    return kept


def _changed_days(rows: list[dict[str, Any]], old: dict[str, str]) -> list[tuple[str, date]]:
    changes = []
    for row in rows:
        before = old.get(row["nip"])
        if before is None or before == row["days"]:
            continue
        was = {item[0]: item for item in json.loads(before)}
        for item in json.loads(row["days"]):
            if item[0] in was and was[item[0]] != item:
                changes.append((row["nip"], date.fromisoformat(item[0])))
    return changes


def _replace_rows(conn: Connection, month: date, rows: list[dict[str, Any]]) -> None:
    nips = [row["nip"] for row in rows]
    for start in range(0, len(nips), _CHUNK):
        conn.execute(
            delete(attendance_months).where(
                attendance_months.c.month == month, attendance_months.c.nip.in_(nips[start : start + _CHUNK])
            )
        )
    if rows:
        conn.execute(attendance_months.insert(), rows)


# --- keeping rows fresh ---------------------------------------------------------------------


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


def punches_arrived(engine: Engine, office: Office, events: Sequence[PunchEvent]) -> None:
    """Mark the months the new punches fall in as stale, for the employees they resolve to."""
    if not events:
        return
    with engine.begin() as conn:
        by_month: dict[date, set[str]] = {}
        for nip, local in resolve_events(conn, office.zone, events):
            by_month.setdefault(local.date().replace(day=1), set()).add(nip)
        for month, nips in by_month.items():
            mark_stale(conn, nips, month)


def kept_days(engine: Engine, months: Iterable[date], nips: Collection[str] | None) -> dict[str, list[DayScore]]:
    """The kept day scores of ``months``, by NIP, in date order."""
    out: dict[str, list[DayScore]] = {}
    with engine.connect() as conn:
        for month in sorted(months):
            query = select(attendance_months.c.nip, attendance_months.c.days).where(attendance_months.c.month == month)
            for nip, days in conn.execute(query):
                if days and (nips is None or nip in nips):
                    out.setdefault(nip, []).extend(decode_day(item) for item in json.loads(days))
    return out


def today_scores(engine: Engine, office: Office, nips: Collection[str] | None) -> dict[str, DayScore]:
    """Today's scores, live (the day is still open)."""
    now = office.now()
    today = now.date()
    with engine.connect() as conn:
        staff = load_employees(conn, today, today, nips)
        chosen = {e.nip for e in staff} if nips is not None else None
        punches = load_punches(conn, office.zone, today, today, chosen)
        for entry in manual_in(conn, today, today, chosen):
            punches.setdefault(entry.nip, {}).setdefault(today, []).append(Punch(entry.at, entry.punch, manual=True))
        leave = leave_in(conn, today, today, chosen)
    return {
        e.nip: office.scorer.score_day(
            today,
            punches.get(e.nip, {}).get(today, ()),
            six_day=e.six_day,
            leave=leave.get(e.nip, {}).get(today),
            now=now,
        )
        for e in staff
    }


def pending_months(engine: Engine) -> int:
    """How many kept rows wait for re-scoring."""
    with engine.connect() as conn:
        return int(
            conn.execute(
                select(func.count()).select_from(attendance_months).where(attendance_months.c.stale.is_(True))
            ).scalar_one()
        )
