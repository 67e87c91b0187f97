"""Which hours apply on a date: regular weeks, Ramadan overrides, holidays, five- and six-day units."""

from __future__ import annotations

from datetime import date, time, timedelta

import pytest

from ekinerja.config.rules import load_profile
from ekinerja.store.scoring import Calendar, Scorer, WorkHours

PERMA = Scorer(load_profile("perma-3-2020"))
SUMUT = Scorer(load_profile("pergub-sumut-11-2017"))


def hm(text: str) -> time:
    return time.fromisoformat(text)


def hours(start: str, end: str, *breaks: str) -> WorkHours:
    return WorkHours(hm(start), hm(end), tuple((hm(b[:5]), hm(b[6:])) for b in breaks))


@pytest.mark.parametrize(
    ("day", "six_day", "expected"),
    [
        (date(2025, 11, 3), False, hours("07:30", "16:00", "12:00-13:00")),  # Monday
        (date(2025, 11, 6), False, hours("07:30", "16:00", "12:00-13:00")),  # Thursday
        (date(2025, 11, 7), False, hours("07:30", "16:30", "11:30-13:00")),  # Friday
        (date(2025, 11, 8), False, None),  # Saturday
        (date(2025, 11, 9), False, None),  # Sunday
        (date(2025, 11, 3), True, hours("07:30", "15:00", "12:00-13:00")),
        (date(2025, 11, 7), True, hours("07:30", "15:00", "11:30-13:00")),
        (date(2025, 11, 8), True, hours("07:30", "13:00")),
        (date(2025, 11, 9), True, None),
        # Ramadan 1446 H, 2025-03-01..2025-03-30 (Perpres 21/2023: 08.00 start)
        (date(2025, 2, 28), False, hours("07:30", "16:30", "11:30-13:00")),
        (date(2025, 3, 1), True, hours("08:00", "14:00", "12:00-12:30")),  # first day, a Saturday
        (date(2025, 3, 3), False, hours("08:00", "15:00", "12:00-12:30")),
        (date(2025, 3, 7), False, hours("08:00", "15:30", "11:30-12:30")),
        (date(2025, 3, 28), False, None),  # CB Nyepi inside Ramadan
        (date(2025, 3, 31), False, None),  # Idul Fitri
        (date(2025, 4, 8), False, hours("07:30", "16:00", "12:00-13:00")),
        # Ramadan 1447 H, 2026-02-19..2026-03-20
        (date(2026, 2, 18), False, hours("07:30", "16:00", "12:00-13:00")),
        (date(2026, 2, 19), False, hours("08:00", "15:00", "12:00-12:30")),
        (date(2026, 3, 20), False, None),  # CB Idul Fitri, last day of the range
    ],
)
def test_national_hours(day: date, six_day: bool, expected: WorkHours | None) -> None:
    assert PERMA.hours_for(day, six_day) == expected


@pytest.mark.parametrize(
    ("day", "six_day", "expected"),
    [
        (date(2026, 2, 19), False, hours("08:00", "15:00", "12:00-12:30")),  # Thursday
        (date(2026, 2, 20), False, hours("08:00", "15:30", "11:30-12:30")),  # Friday
        (date(2026, 2, 19), True, hours("08:00", "14:00", "12:00-12:30")),
        (date(2026, 2, 20), True, hours("08:00", "14:30", "11:30-12:30")),
        (date(2026, 2, 21), True, hours("08:00", "14:00", "12:00-12:30")),  # Saturday
        (date(2026, 2, 22), True, None),  # Sunday
        (date(2026, 3, 23), False, None),  # CB after the range
        (date(2026, 3, 25), False, hours("07:30", "16:00", "12:00-13:00")),
    ],
)
def test_sumut_ramadan_1447_circular(day: date, six_day: bool, expected: WorkHours | None) -> None:
    assert SUMUT.hours_for(day, six_day) == expected


@pytest.mark.parametrize(
    ("year", "month", "six_day", "expected"),
    [
        (2025, 11, False, 20),  # no holidays
        (2025, 4, False, 16),  # 22 weekdays minus 1, 2, 3, 4, 7 and 18 April
        (2025, 10, True, 27),  # 31 days minus 4 Sundays
        (2026, 3, False, 17),  # 22 weekdays minus 18, 19, 20, 23 and 24 March (21, 22 are a weekend)
    ],
)
def test_working_days_in_a_month(year: int, month: int, six_day: bool, expected: int) -> None:
    assert PERMA.calendar.working_days(year, month, six_day) == expected


def test_plans_are_cached_per_date_and_unit_kind() -> None:
    calendar = Calendar(load_profile("perma-3-2020"))
    day = date(2025, 11, 8)
    assert calendar.plan(day, False) is calendar.plan(day, False)
    assert calendar.plan(day, False) is not calendar.plan(day, True)
    assert (calendar.plan(day, False).hours, calendar.plan(day, True).mid_s) == (None, (27000 + 46800) // 2)


def test_every_day_of_two_years_has_an_answer() -> None:
    day = date(2025, 1, 1)
    while day.year < 2027:
        for six_day in (False, True):
            found = PERMA.hours_for(day, six_day)
            assert found is None or found.start < found.end
        day += timedelta(days=1)
