"""A month of one employee: band counts, TK and leave days, the capped cut and its amount.

- Pass a DayScore for every day of the month (days without punches included, so TK is counted).
- TL/PSW counts are the days that carry that band's cut: days counted as TK and made-up lateness are
  left out (a day is never counted twice).
- ``cut_percent`` is the sum of the days' cuts, capped at the profile's monthly cap, in percent of the
  base the profile names (the whole TPP or its attendance share).
- Days on a ``no_tpp`` leave code (CLTN) withhold 1/working-days of the whole TPP each, on top of the
  attendance cut; the total amount never exceeds the TPP base. Amounts are rounded to 0.01 (half up).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal

from ekinerja.store.scoring.day import DayScore, Scorer

__all__ = ["MonthScore", "score_month"]

_CENT = Decimal("0.01")


@dataclass(frozen=True, slots=True)
class MonthScore:
    """The month's totals for one employee."""

    month: date
    working_days: int
    tl: tuple[int, int, int, int]
    psw: tuple[int, int, int, int]
    tk_days: int
    leave_days: int
    cut_percent: float
    cut_amount: Decimal | None
    no_tpp_days: int = 0


def _four(counts: list[int]) -> tuple[int, int, int, int]:
    return counts[1], counts[2], counts[3], counts[4]


def _check_dates(first: date, days: Sequence[DayScore]) -> None:
    seen: set[date] = set()
    for day in days:
        if (day.date.year, day.date.month) != (first.year, first.month):
            raise ValueError(f"{day.date} is not in {first:%Y-%m}")
        if day.date in seen:
            raise ValueError(f"{day.date} is scored twice")
        seen.add(day.date)


def score_month(scorer: Scorer, month: date, days: Sequence[DayScore], tpp_base: Decimal | None = None) -> MonthScore:
    """Total a month of DayScores; with ``tpp_base`` also the money cut."""
    first = month.replace(day=1)
    _check_dates(first, days)
    tl = [0] * 5
    psw = [0] * 5
    working = tk_days = leave_days = no_tpp_days = 0
    no_tpp = scorer.no_tpp_codes
    for day in days:
        if not day.working:
            continue
        working += 1
        if day.leave is not None:
            leave_days += 1
            no_tpp_days += day.leave in no_tpp
        if day.tk:
            tk_days += 1
            continue
        if day.tl and not day.made_up:
            tl[day.tl] += 1
        if day.psw:
            psw[day.psw] += 1
    total = round(math.fsum(day.cut_percent for day in days), 6)
    cut = min(total, scorer.profile.tpp.monthly_cap_percent)
    amount = None if tpp_base is None else _amount(scorer, cut, no_tpp_days, working, tpp_base)
    return MonthScore(first, working, _four(tl), _four(psw), tk_days, leave_days, cut, amount, no_tpp_days)


def _amount(scorer: Scorer, cut_percent: float, no_tpp_days: int, working_days: int, tpp_base: Decimal) -> Decimal:
    """The money cut: the attendance cut on its base, plus the withheld no-TPP days, at most the whole TPP."""
    rules = scorer.profile.tpp
    base = tpp_base
    if rules.applies_to == "attendance_share":
        base = tpp_base * Decimal(str(rules.attendance_share_percent)) / 100
    amount = base * Decimal(str(cut_percent)) / 100
    if no_tpp_days and working_days:
        amount += tpp_base * no_tpp_days / working_days
    return min(amount, tpp_base).quantize(_CENT, rounding=ROUND_HALF_UP)
