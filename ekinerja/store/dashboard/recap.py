"""The monthly recap ("Rekap bulanan"): totals per unit over the monthly report's rows, and each day's
attendance over the month's kept day scores.

Pure functions of data the store already computed; the page lays them out and the charts draw them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from ekinerja.store.scoring.day import DayScore

DAY_KINDS = ("on_time", "late", "no_clock_in", "leave", "tk")
"""How a working day went for one employee, in the order the daily chart stacks them."""


def day_kind(day: DayScore) -> str | None:
    """Where one employee-day counts on the daily chart; None for a day that is not a working day."""
    if not day.working:
        return None
    if day.leave:
        return "leave"
    if day.tk:
        return "tk"
    if day.first_in is None:
        return "no_clock_in"  # came, but only a clock-out was recorded (TL4)
    return "late" if day.tl > 0 else "on_time"


def daily_counts(days_by_nip: Mapping[str, Iterable[DayScore]]) -> list[tuple[date, dict[str, int]]]:
    """For each working day, how many employees were on time, late, without clock-in, on leave or TK."""
    counts: dict[date, Counter[str]] = {}
    for days in days_by_nip.values():
        for day in days:
            kind = day_kind(day)
            if kind is not None:
                counts.setdefault(day.date, Counter())[kind] += 1
    return [(day, dict(counts[day])) for day in sorted(counts)]


@dataclass
class UnitRecap:
    """One unit's employees (the monthly report's rows) and their totals."""

    unit: str
    employees: list[dict[str, Any]] = field(default_factory=list)
    tl: list[int] = field(default_factory=lambda: [0, 0, 0, 0])
    psw: list[int] = field(default_factory=lambda: [0, 0, 0, 0])
    tk_days: int = 0
    leave_days: int = 0
    cut_amount: Decimal | None = None

    def add(self, row: Mapping[str, Any]) -> None:
        """Count one employee's month in."""
        self.employees.append(dict(row))
        self.tl = [a + b for a, b in zip(self.tl, row["tl"], strict=True)]
        self.psw = [a + b for a, b in zip(self.psw, row["psw"], strict=True)]
        self.tk_days += row["tk_days"]
        self.leave_days += row["leave_days"]
        if row["cut_amount"] is not None:
            self.cut_amount = (self.cut_amount or Decimal(0)) + Decimal(row["cut_amount"])

    @property
    def mean_cut_percent(self) -> float:
        """The unit's mean cut, in percent of each employee's base."""
        return sum(r["cut_percent"] for r in self.employees) / len(self.employees) if self.employees else 0.0


def by_unit(rows: Iterable[Mapping[str, Any]]) -> list[UnitRecap]:
    """The monthly report's rows grouped by unit, units and employees by name."""
    units: dict[str, UnitRecap] = {}
    for row in sorted(rows, key=lambda r: (r["unit"], r["name"], r["nip"])):
        units.setdefault(row["unit"], UnitRecap(row["unit"])).add(row)
    return list(units.values())


def band_totals(units: Sequence[UnitRecap], kind: str = "tl") -> list[int]:
    """Days in each band (TL1..TL4, or PSW1..PSW4 with ``kind="psw"``) over all the units given."""
    totals = [0, 0, 0, 0]
    for unit in units:
        totals = [a + b for a, b in zip(totals, getattr(unit, kind), strict=True)]
    return totals


def tk_per_unit(units: Sequence[UnitRecap]) -> list[tuple[str, float]]:
    """(unit, TK days), the most first; ties by name."""
    return sorted(((u.unit, float(u.tk_days)) for u in units), key=lambda pair: (-pair[1], pair[0]))


def band_ranges(starts: Sequence[int]) -> list[tuple[int, int | None]]:
    """Each band's minutes, from its start to the next band's start less one (None: no upper end).

    ``starts`` are the rule profile's ``from_minutes``, ascending: [1, 31, 61, 91] gives 1-30, 31-60,
    61-90 and 91 on.
    """
    ends: list[int | None] = [start - 1 for start in starts[1:]]
    return list(zip(starts, [*ends, None], strict=True))
