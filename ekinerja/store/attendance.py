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

import functools
import hashlib
import json
import logging
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Engine, select

from ekinerja.config.rules import load_profile
from ekinerja.config.store import StoreConfig
from ekinerja.store.db import attendance_months, employees
from ekinerja.store.entries import leave_in, manual_in
from ekinerja.store.punch_input import load_punches, resolve_events
from ekinerja.store.registry import mark_stale
from ekinerja.store.scoring import DayScore, Punch, Scorer
from ekinerja.sync.contract import PunchEvent

log = logging.getLogger("ekinerja.store.attendance")


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

    @functools.cached_property
    def fingerprint(self) -> str:
        """What scored a kept row: the profile as loaded and the zone; a change means scoring again."""
        text = self.scorer.profile.model_dump_json() + self.zone.key
        return hashlib.sha256(text.encode()).hexdigest()

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


def _seconds(value: datetime | None) -> int | None:
    return None if value is None else value.hour * 3600 + value.minute * 60 + value.second


def encode_day(d: DayScore) -> list[Any]:
    """A day as a compact JSON array: day of month, flags (1 working, 2 TK, 4 made up), clock-in
    and clock-out as seconds of the day, minutes late and early, TL, PSW, leave code, cut."""
    flags = d.working | d.tk << 1 | d.made_up << 2
    return [
        d.date.day, flags, _seconds(d.first_in), _seconds(d.last_out), d.late_minutes, d.early_minutes, d.tl, d.psw,
        d.leave, d.cut_percent,
    ]  # fmt: skip


def decode_day(month: date, item: list[Any]) -> DayScore:
    """A day of ``month`` from :func:`encode_day`'s array."""
    day = month.replace(day=item[0])
    midnight = datetime.combine(day, time.min)

    def at(seconds: int | None) -> datetime | None:
        return None if seconds is None else midnight + timedelta(seconds=seconds)

    flags = item[1]
    return DayScore(
        date=day, working=bool(flags & 1), first_in=at(item[2]), last_out=at(item[3]), late_minutes=item[4],
        early_minutes=item[5], tl=item[6], psw=item[7], tk=bool(flags & 2), leave=item[8], made_up=bool(flags & 4),
        cut_percent=item[9],
    )  # fmt: skip


# --- scoring ------------------------------------------------------------------------------------


def load_employees(conn: Connection, first: date, last: date, nips: Collection[str] | None) -> list[Employee]:
    """Employees active at some point from ``first`` to ``last`` (all, or those in ``nips``)."""
    query = select(employees).where(
        employees.c.active_from <= last, (employees.c.active_to.is_(None)) | (employees.c.active_to >= first)
    )
    if nips is not None and len(nips) <= 500:
        query = query.where(employees.c.nip.in_(sorted(nips)))
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


def mark_arrived(conn: Connection, office: Office, events: Sequence[PunchEvent]) -> None:
    """Mark the months the new punches fall in as stale, for the employees they resolve to.

    Runs in the transaction that stores the punches (``ingest``'s ``on_stored``).
    """
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
                    out.setdefault(nip, []).extend(decode_day(month, item) for item in json.loads(days))
    return out


def day_inputs(
    conn: Connection, office: Office, first: date, last: date, nips: Collection[str] | None
) -> tuple[dict[str, dict[date, list[Punch]]], dict[str, dict[date, str]]]:
    """What decides the days ``first..last``, by NIP and day: the punches (manual entries among them)
    and the leave codes; everyone's, or ``nips``'."""
    punches = load_punches(conn, office.zone, first, last, nips, by_state=office.scorer.by_state)
    for entry in manual_in(conn, first, last, nips):
        punches.setdefault(entry.nip, {}).setdefault(entry.at.date(), []).append(
            Punch(entry.at, entry.punch, manual=True)
        )
    return punches, leave_in(conn, first, last, nips)


def today_scores(engine: Engine, office: Office, nips: Collection[str] | None) -> dict[str, DayScore]:
    """Today's scores, live (the day is still open)."""
    now = office.now()
    today = now.date()
    with engine.connect() as conn:
        staff = load_employees(conn, today, today, nips)
        punches, leave = day_inputs(conn, office, today, today, {e.nip for e in staff} if nips is not None else None)
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
