"""Which working hours apply on a date: the regular week, date-range overrides (Ramadan) and holidays."""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date, time

from ekinerja.config.rules import RuleProfile, Week

__all__ = ["Calendar", "DayPlan", "WorkHours"]

_NOON_S = 12 * 3600


@dataclass(frozen=True, slots=True)
class WorkHours:
    """The hours of one working day."""

    start: time
    end: time
    breaks: tuple[tuple[time, time], ...]


def _seconds(moment: time) -> int:
    return moment.hour * 3600 + moment.minute * 60 + moment.second


class DayPlan:
    """A date's hours with the figures scoring needs, as seconds since midnight (built once per date)."""

    __slots__ = ("end_s", "hours", "mid_s", "start_s")

    def __init__(self, hours: WorkHours | None) -> None:
        self.hours = hours
        self.start_s = _seconds(hours.start) if hours else 0
        self.end_s = _seconds(hours.end) if hours else 0
        # A lone punch before the middle of the working hours is a clock-in, from there on a clock-out.
        self.mid_s = (self.start_s + self.end_s) // 2 if hours else _NOON_S


def _week(week: Week) -> tuple[WorkHours | None, ...]:
    """A profile week as seven WorkHours, Monday first."""
    out: list[WorkHours | None] = []
    for hours in week.by_weekday():
        out.append(None if hours is None else WorkHours(hours.start, hours.end, tuple(hours.breaks)))
    return tuple(out)


class Calendar:
    """One profile's calendar: the hours of any date for five-day and six-day units, cached per date."""

    def __init__(self, profile: RuleProfile) -> None:
        self._holidays = {holiday.date: holiday.kind for holiday in profile.holidays}
        regular = profile.schedule
        self._regular = (_week(regular.five_day), _week(regular.six_day))
        self._overrides = tuple(
            (override.start, override.end, (_week(override.five_day), _week(override.six_day)))
            for override in profile.overrides
        )
        self._plans: tuple[dict[date, DayPlan], dict[date, DayPlan]] = ({}, {})

    def plan(self, day: date, six_day: bool) -> DayPlan:
        """The plan of ``day``; built on first use, then a dict lookup."""
        plans = self._plans[six_day]
        found = plans.get(day)
        if found is None:
            found = plans[day] = DayPlan(self._hours(day, six_day))
        return found

    def hours_for(self, day: date, six_day: bool) -> WorkHours | None:
        """The working hours of ``day``; None when it is not a working day (weekend, LN, CB)."""
        return self.plan(day, six_day).hours

    def holiday(self, day: date) -> str | None:
        """``"LN"`` or ``"CB"`` when ``day`` is in the holiday calendar."""
        return self._holidays.get(day)

    def working_days(self, year: int, month: int, six_day: bool) -> int:
        """Number of working days in a month."""
        last = calendar.monthrange(year, month)[1]
        return sum(self.plan(date(year, month, d), six_day).hours is not None for d in range(1, last + 1))

    def _hours(self, day: date, six_day: bool) -> WorkHours | None:
        if day in self._holidays:
            return None
        weeks = self._regular
        for start, end, override in self._overrides:
            if start <= day <= end:
                weeks = override
                break
        return weeks[six_day][day.weekday()]
