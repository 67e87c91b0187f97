"""A month: band counts, the cap, and the money cut on the whole TPP or its attendance share."""

from __future__ import annotations

import calendar
from collections.abc import Callable
from datetime import date, datetime, time
from decimal import Decimal

import pytest

from ekinerja.config.rules import load_profile
from ekinerja.store.scoring import DayScore, Punch, Scorer, score_month

PERMA = Scorer(load_profile("perma-3-2020"))
PERMENTAN = Scorer(load_profile("permentan-68-2012"))
SUMUT = Scorer(load_profile("pergub-sumut-11-2017"))
NOVEMBER = date(2025, 11, 1)  # 20 working days, no holidays
BASE = Decimal("10000000")

Plan = Callable[[date], tuple[list[Punch], str | None]]


def at(day: date, clock: str) -> Punch:
    return Punch(datetime.combine(day, time.fromisoformat(clock)), "in")


def on_time(day: date) -> tuple[list[Punch], str | None]:
    return [at(day, "07:25"), at(day, "16:45")], None


def month_of(scorer: Scorer, month: date, plan: Plan, six_day: bool = False) -> list[DayScore]:
    """Score every day of ``month``; ``plan`` gives each day's punches and leave code."""
    last = calendar.monthrange(month.year, month.month)[1]
    days = []
    for number in range(1, last + 1):
        day = month.replace(day=number)
        punches, leave = plan(day)
        days.append(scorer.score_day(day, punches, six_day=six_day, leave=leave))
    return days


def test_a_clean_month() -> None:
    result = score_month(PERMA, NOVEMBER, month_of(PERMA, NOVEMBER, on_time), BASE)
    assert (result.month, result.working_days, result.tk_days, result.leave_days) == (NOVEMBER, 20, 0, 0)
    assert (result.tl, result.psw, result.cut_percent, result.cut_amount) == ((0,) * 4, (0,) * 4, 0.0, Decimal("0.00"))


def mixed(day: date) -> tuple[list[Punch], str | None]:
    """3 Nov: TL1; 4 Nov: TL3 + PSW2; 5 Nov: no punch (TK); 6-7 Nov: CT; 10 Nov: missing clock-out."""
    special: dict[int, tuple[list[Punch], str | None]] = {
        3: ([at(day, "07:45"), at(day, "16:00")], None),
        4: ([at(day, "08:40"), at(day, "15:15")], None),
        5: ([], None),
        6: ([], "CT"),
        7: ([], "CT"),
        10: ([at(day, "07:20")], None),
    }
    return special.get(day.day) or on_time(day)


@pytest.mark.parametrize(
    ("scorer", "tl", "psw", "tk_days", "cut", "amount"),
    [
        # 0.5 + (1.25 + 1) + 2.5 + 1.5
        (PERMA, (1, 0, 1, 0), (0, 1, 0, 1), 1, 6.75, Decimal("675000.00")),
        # 0.5 + (1.5 + 1) + 4 + 2
        (PERMENTAN, (1, 0, 1, 0), (0, 1, 0, 1), 1, 9.0, Decimal("900000.00")),
        # 0.5 + TK(4 Nov, TL3) + TK + TK(PSW4): the TK days carry no band count; 40% share
        (SUMUT, (1, 0, 0, 0), (0, 0, 0, 0), 3, 8.0, Decimal("320000.00")),
    ],
)
def test_counts_and_amount(
    scorer: Scorer, tl: tuple[int, ...], psw: tuple[int, ...], tk_days: int, cut: float, amount: Decimal
) -> None:
    result = score_month(scorer, NOVEMBER, month_of(scorer, NOVEMBER, mixed), BASE)
    assert (result.working_days, result.tl, result.psw, result.tk_days, result.leave_days) == (20, tl, psw, tk_days, 2)
    assert (result.cut_percent, result.cut_amount) == (cut, amount)


def absent(day: date) -> tuple[list[Punch], str | None]:
    return [], None


def test_the_cap_is_never_exceeded() -> None:
    october = date(2025, 10, 1)  # six-day unit: 27 working days, 27 x 4% = 108%
    result = score_month(PERMENTAN, october, month_of(PERMENTAN, october, absent, six_day=True), BASE)
    assert (result.tk_days, result.cut_percent, result.cut_amount) == (27, 100.0, BASE)


def test_the_cap_applies_to_the_attendance_share() -> None:
    heavy = [
        DayScore(date(2025, 11, d), True, None, None, None, None, 4, 4, False, None, False, 5.0) for d in range(1, 31)
    ]
    result = score_month(SUMUT, NOVEMBER, heavy, BASE)
    assert (result.cut_percent, result.cut_amount) == (100.0, Decimal("4000000.00"))


def test_attendance_share_cap_is_the_share() -> None:
    result = score_month(SUMUT, NOVEMBER, month_of(SUMUT, NOVEMBER, absent), BASE)
    assert (result.tk_days, result.cut_percent, result.cut_amount) == (20, 50.0, Decimal("2000000.00"))


def test_made_up_lateness_is_not_counted() -> None:
    day = DayScore(date(2025, 11, 3), True, None, None, 20, 0, 1, 0, False, None, True, 0.0)
    result = score_month(PERMA, NOVEMBER, [day])
    assert (result.tl, result.cut_percent, result.cut_amount) == ((0, 0, 0, 0), 0.0, None)


def cltn_half(day: date) -> tuple[list[Punch], str | None]:
    return ([], "CLTN") if day.day <= 14 else on_time(day)


def test_cltn_withholds_its_share_of_the_whole_tpp() -> None:
    # 1-14 November: 10 working days on CLTN out of 20, so half the TPP is not paid.
    result = score_month(SUMUT, NOVEMBER, month_of(SUMUT, NOVEMBER, cltn_half), BASE)
    assert (result.leave_days, result.no_tpp_days, result.cut_percent) == (10, 10, 0.0)
    assert result.cut_amount == Decimal("5000000.00")


def test_amount_rounds_to_cents() -> None:
    day = DayScore(date(2025, 11, 3), True, None, None, 5, 0, 1, 0, False, None, False, 0.5)
    assert score_month(PERMA, NOVEMBER, [day], Decimal("7234567")).cut_amount == Decimal("36172.84")


def test_any_date_in_the_month_names_it() -> None:
    assert score_month(PERMA, date(2025, 11, 17), []).month == NOVEMBER


def test_days_outside_the_month_or_twice_are_errors() -> None:
    other = PERMA.score_day(date(2025, 12, 1), [])
    with pytest.raises(ValueError, match="2025-12-01 is not in 2025-11"):
        score_month(PERMA, NOVEMBER, [other])
    same = PERMA.score_day(date(2025, 11, 3), [])
    with pytest.raises(ValueError, match="2025-11-03 is scored twice"):
        score_month(PERMA, NOVEMBER, [same, same])
