"""Scoring one employee-day: clock-in and clock-out, TL and PSW bands, TK, leave, and the day's cut.

Semantics where the regulations are silent (also in the profile files' comments):

- Minutes are whole minutes, truncated: arriving 07:30:59 is 0 minutes late, 07:31:00 is 1.
- first_last mode: the day's earliest punch is the clock-in and its latest the clock-out. When all punches
  fall within ``double_tap_seconds`` of the first they are one punch: a clock-in if before the middle of
  the working hours, else a clock-out. state mode: the earliest "in" and the latest "out" (break and
  overtime punches are ignored, so a day with only those is TK); a day with an "unknown" punch is scored
  as in first_last mode.
- No punch on a working day is TK (tl = psw = 0, the TK cut). A missing clock-in or clock-out counts as
  the profile's ``missing_band`` (TL4 / PSW4).
- A band that counts as TK makes the day tk=True with the TK cut only (the band cut is not added). The
  day keeps its tl/psw band for the record; monthly band counts leave such days out.
- Made-up lateness (profile switch): late by at most ``max_minutes`` and the clock-out at least as many
  whole minutes after the end; tl keeps its band, made_up=True and the TL cut is 0.
- A leave code exempts the day (tl = psw = 0, tk False); its cut is the code's per-day cut. Punches on
  the day are reported but not graded. An unknown code is an error (ValueError).
- Non-working days (weekend, LN, CB) are never graded: working=False, cut 0, punches only reported.
- An open day (``now`` before the day's end): no PSW and no TK yet; lateness of a clock-in already made
  counts, a missing clock-in does not yet.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, fields
from datetime import date, datetime, timedelta
from typing import Any, NamedTuple

from ekinerja.config.rules import BandRules, RuleProfile
from ekinerja.store.scoring.schedule import Calendar, DayPlan, WorkHours

__all__ = ["DayScore", "Punch", "Scorer", "essential_punches"]

_NO_PUNCH: tuple[None, None] = (None, None)


class Punch(NamedTuple):
    """One punch (or approved manual entry) of one employee, in the office's wall-clock time.

    A named tuple: the store makes one for every punch it reads, a million and more for a month.
    """

    at: datetime
    state: str
    manual: bool = False


def essential_punches(punches: Iterable[Punch], by_state: bool = True) -> list[Punch]:
    """The punches that decide a day, so a store may keep only these while it reads a month.

    With ``by_state`` (a profile in state mode) the first and the last of each state; otherwise the
    day's first and last punch. Scoring them gives the same DayScore as scoring all of the day's
    punches: a property test holds the scorer to it.
    """
    kept: dict[str, list[Punch]] = {}
    for punch in punches:
        key = punch.state if by_state else ""
        pair = kept.get(key)
        if pair is None:
            kept[key] = [punch, punch]
        elif punch.at < pair[0].at:
            pair[0] = punch
        elif punch.at > pair[1].at:
            pair[1] = punch
    return [p for first, last in kept.values() for p in ((first,) if first is last else (first, last))]


@dataclass(frozen=True, slots=True)
class DayScore:
    """The score of one employee-day; see the module docstring for the semantics."""

    date: date
    working: bool
    first_in: datetime | None
    last_out: datetime | None
    late_minutes: int | None
    early_minutes: int | None
    tl: int
    psw: int
    tk: bool
    leave: str | None
    made_up: bool
    cut_percent: float
    open: bool = False


def _fast_constructor() -> Callable[..., DayScore]:
    """``DayScore(...)`` with all thirteen fields given positionally, in about half the time.

    A frozen dataclass's __init__ sets each field through object.__setattr__ (about 2 µs for DayScore, the
    largest cost of scoring a day); this fills the slots through their descriptors instead. Same object.
    """
    setters: list[Any] = [getattr(DayScore, field.name).__set__ for field in fields(DayScore)]
    s_date, s_working, s_first, s_last, s_late, s_early, s_tl, s_psw, s_tk, s_leave, s_made_up, s_cut, s_open = setters
    new = object.__new__

    def build(
        day: date,
        working: bool,
        first: datetime | None,
        last: datetime | None,
        late: int | None,
        early: int | None,
        tl: int,
        psw: int,
        tk: bool,
        leave: str | None,
        made_up: bool,
        cut: float,
        is_open: bool,
    ) -> DayScore:
        score: DayScore = new(DayScore)
        s_date(score, day)
        s_working(score, working)
        s_first(score, first)
        s_last(score, last)
        s_late(score, late)
        s_early(score, early)
        s_tl(score, tl)
        s_psw(score, psw)
        s_tk(score, tk)
        s_leave(score, leave)
        s_made_up(score, made_up)
        s_cut(score, cut)
        s_open(score, is_open)
        return score

    return build


_score = _fast_constructor()


class _Bands:
    """TL or PSW bands as lookup tables: band by whole minute, cut and TK flag by band."""

    __slots__ = ("as_tk", "by_minute", "cut", "missing", "top")

    def __init__(self, rules: BandRules) -> None:
        starts = [band.from_minutes for band in rules.bands]
        self.by_minute = tuple(sum(start <= minute for start in starts) for minute in range(starts[-1]))
        self.top = len(starts)
        self.cut = (0.0, *(band.cut_percent for band in rules.bands))
        self.as_tk = (False, *(band.counts_as_tk for band in rules.bands))
        self.missing = rules.missing_band

    def band(self, minutes: int) -> int:
        """The band of ``minutes`` (0 = none)."""
        return self.by_minute[minutes] if minutes < len(self.by_minute) else self.top


def _secs(moment: datetime) -> int:
    return moment.hour * 3600 + moment.minute * 60 + moment.second


def _by_state(punches: Sequence[Punch]) -> tuple[datetime | None, datetime | None] | None:
    """Earliest "in" and latest "out"; None when a punch has no state ("unknown") on this day."""
    first: datetime | None = None
    last: datetime | None = None
    for punch in punches:
        state = punch.state
        if state == "in":
            if first is None or punch.at < first:
                first = punch.at
        elif state == "out":
            if last is None or punch.at > last:
                last = punch.at
        elif state == "unknown":
            return None
    # Break and overtime punches are not attendance here: only "in" and "out" decide, so adding any punch
    # can only move the clock-in earlier or the clock-out later (never create TK).
    return first, last


def _is_open(day: date, end_s: int, now: datetime) -> bool:
    today = now.date()
    if today != day:
        return today < day
    return _secs(now) < end_s


class Scorer:
    """One profile, prepared for fast scoring (per-date caches)."""

    def __init__(self, profile: RuleProfile) -> None:
        self.profile = profile
        self.calendar = Calendar(profile)
        self._state_mode = self.by_state = profile.punch_mode == "state"
        self._tap = timedelta(seconds=profile.double_tap_seconds)
        self._tl = _Bands(profile.lateness)
        self._psw = _Bands(profile.early_leave)
        self._tk_cut = profile.absence.tk_cut_percent
        self._leave_cut = {code: rule.cut_percent for code, rule in profile.leave.items()}
        self._makeup_max = profile.makeup.max_minutes if profile.makeup.enabled else 0
        self._day_cap = profile.tpp.day_cap_percent
        self.leave_codes = frozenset(profile.leave)
        self.no_tpp_codes = frozenset(code for code, rule in profile.leave.items() if rule.no_tpp)

    def hours_for(self, day: date, six_day: bool) -> WorkHours | None:
        """The working hours of ``day``; None when it is not a working day."""
        return self.calendar.plan(day, six_day).hours

    def score_day(
        self,
        day: date,
        punches: Sequence[Punch],
        *,
        six_day: bool = False,
        leave: str | None = None,
        now: datetime | None = None,
    ) -> DayScore:
        """Score one employee-day from that day's punches (any order, duplicates allowed).

        ``now`` is the office's wall clock when ``day`` is today: until the day's end a missing clock-out
        is not PSW yet and no punch is not TK yet (``open=True``).
        """
        plan = self.calendar.plan(day, six_day)
        if leave is not None:
            return self._leave_day(day, plan, punches, leave)
        first, last = self._pick(punches, plan.mid_s) if punches else _NO_PUNCH
        if plan.hours is None:
            return _score(day, False, first, last, None, None, 0, 0, False, None, False, 0.0, False)
        if now is not None and _is_open(day, plan.end_s, now):
            return self._open_day(day, plan, first, last)
        if first is None and last is None:
            return _score(day, True, None, None, None, None, 0, 0, True, None, False, self._tk_cut, False)
        return self._grade(day, plan, first, last)

    def _grade(self, day: date, plan: DayPlan, first: datetime | None, last: datetime | None) -> DayScore:
        tl_bands, psw_bands = self._tl, self._psw
        late = early = None
        if first is None:
            tl = tl_bands.missing
        else:
            seconds = _secs(first) - plan.start_s
            late = seconds // 60 if seconds > 0 else 0
            tl = tl_bands.band(late)
        if last is None:
            psw = psw_bands.missing
        else:
            seconds = plan.end_s - _secs(last)
            early = seconds // 60 if seconds > 0 else 0
            psw = psw_bands.band(early)
        made_up = (
            tl > 0
            and last is not None
            and late is not None
            and late <= self._makeup_max
            and _secs(last) - plan.end_s >= late * 60
        )
        if (tl_bands.as_tk[tl] and not made_up) or psw_bands.as_tk[psw]:
            return _score(day, True, first, last, late, early, tl, psw, True, None, made_up, self._tk_cut, False)
        cut = (0.0 if made_up else tl_bands.cut[tl]) + psw_bands.cut[psw]
        if self._day_cap is not None and cut > self._day_cap:
            cut = self._day_cap
        return _score(day, True, first, last, late, early, tl, psw, False, None, made_up, cut, False)

    def _open_day(self, day: date, plan: DayPlan, first: datetime | None, last: datetime | None) -> DayScore:
        late = None
        tl = 0
        if first is not None:
            seconds = _secs(first) - plan.start_s
            late = seconds // 60 if seconds > 0 else 0
            tl = self._tl.band(late)
        tk = self._tl.as_tk[tl]
        cut = self._tk_cut if tk else self._tl.cut[tl]
        return _score(day, True, first, last, late, None, tl, 0, tk, None, False, cut, True)

    def _leave_day(self, day: date, plan: DayPlan, punches: Sequence[Punch], code: str) -> DayScore:
        cut = self._leave_cut.get(code)
        if cut is None:
            known = ", ".join(sorted(self.leave_codes))
            raise ValueError(f"leave code {code!r} is not in rule profile {self.profile.name!r} (known: {known})")
        first, last = self._pick(punches, plan.mid_s) if punches else _NO_PUNCH
        working = plan.hours is not None
        return _score(day, working, first, last, None, None, 0, 0, False, code, False, cut if working else 0.0, False)

    def _pick(self, punches: Sequence[Punch], mid_s: int) -> tuple[datetime | None, datetime | None]:
        """The day's clock-in and clock-out (``punches`` is not empty)."""
        if self._state_mode:
            found = _by_state(punches)
            if found is not None:
                return found
        low = high = punches[0].at
        for punch in punches:
            at = punch.at
            if at < low:
                low = at
            elif at > high:
                high = at
        if high - low > self._tap:
            return low, high
        # One punch (or a double tap): which one it is depends on the time of day.
        return (low, None) if _secs(low) < mid_s else (None, high)
