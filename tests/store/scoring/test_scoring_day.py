"""One employee-day under each shipped profile: the RULES.md band edges and the situations around them."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

import pytest

from ekinerja.config.rules import RuleProfile, load_profile
from ekinerja.store.scoring import DayScore, Punch, Scorer
from ekinerja.store.scoring.day import _score

PROFILES = {name: load_profile(name) for name in ("perma-3-2020", "permentan-68-2012", "pergub-sumut-11-2017")}
SCORERS = {name: Scorer(profile) for name, profile in PROFILES.items()}
PERMA = SCORERS["perma-3-2020"]
PERMENTAN = SCORERS["permentan-68-2012"]
SUMUT = SCORERS["pergub-sumut-11-2017"]

TUESDAY = date(2025, 11, 4)  # regular week: 07:30-16:00
FRIDAY = date(2025, 11, 7)  # 07:30-16:30
SATURDAY = date(2025, 11, 8)
TK = "TK"
# RULES.md table: cut per band for TL and PSW alike; "TK" = counted as absent (the TK cut).
BAND_CUTS = {
    "perma-3-2020": (0.0, 0.5, 1.0, 1.25, 1.5),
    "permentan-68-2012": (0.0, 0.5, 1.0, 1.5, 2.0),
    "pergub-sumut-11-2017": (0.0, 0.5, 1.0, TK, TK),
}
TK_CUT = {"perma-3-2020": 2.5, "permentan-68-2012": 4.0, "pergub-sumut-11-2017": 2.5}
EDGES = [(0, 0), (1, 1), (30, 1), (31, 2), (60, 2), (61, 3), (90, 3), (91, 4), (300, 4)]


def at(day: date, clock: str, state: str = "in") -> Punch:
    """A punch at ``clock`` (HH:MM or HH:MM:SS) on ``day``."""
    return Punch(datetime.combine(day, time.fromisoformat(clock)), state)


def variant(name: str, **changes: object) -> Scorer:
    """A Scorer for a shipped profile with some top-level or nested settings changed."""
    data = PROFILES[name].model_dump()
    for key, value in changes.items():
        section, _, field = key.partition("__")
        if field:
            data[section][field] = value
        else:
            data[section] = value
    return Scorer(RuleProfile.model_validate(data))


def expect_cut(name: str, band: int) -> tuple[bool, float]:
    cut = BAND_CUTS[name][band]
    return (True, TK_CUT[name]) if cut == TK else (False, float(cut))


@pytest.mark.parametrize("name", list(SCORERS))
@pytest.mark.parametrize(("minutes", "band"), EDGES)
def test_lateness_band_edges(name: str, minutes: int, band: int) -> None:
    arrival = datetime.combine(TUESDAY, time(7, 30)) + timedelta(minutes=minutes)
    score = SCORERS[name].score_day(TUESDAY, [Punch(arrival, "in"), at(TUESDAY, "16:00")])
    tk, cut = expect_cut(name, band)
    assert (score.late_minutes, score.tl, score.early_minutes, score.psw) == (minutes, band, 0, 0)
    assert (score.tk, score.cut_percent, score.working, score.open) == (tk, cut, True, False)


@pytest.mark.parametrize("name", list(SCORERS))
@pytest.mark.parametrize(("minutes", "band"), EDGES)
def test_early_leave_band_edges(name: str, minutes: int, band: int) -> None:
    leaving = datetime.combine(FRIDAY, time(16, 30)) - timedelta(minutes=minutes)
    score = SCORERS[name].score_day(FRIDAY, [at(FRIDAY, "07:30"), Punch(leaving, "out")])
    tk, cut = expect_cut(name, band)
    assert (score.late_minutes, score.tl, score.early_minutes, score.psw) == (0, 0, minutes, band)
    assert (score.tk, score.cut_percent) == (tk, cut)


@pytest.mark.parametrize(
    ("arrival", "late", "leaving", "early"),
    [("07:30:59", 0, "15:59:01", 0), ("07:31:00", 1, "15:59:00", 1), ("07:29:00", 0, "17:30:00", 0)],
)
def test_minutes_are_whole_and_truncated(arrival: str, late: int, leaving: str, early: int) -> None:
    score = PERMA.score_day(TUESDAY, [at(TUESDAY, arrival), at(TUESDAY, leaving)])
    assert (score.late_minutes, score.early_minutes) == (late, early)


@pytest.mark.parametrize("name", list(SCORERS))
def test_missing_clock_in_is_tl4(name: str) -> None:
    score = SCORERS[name].score_day(TUESDAY, [at(TUESDAY, "16:05")])
    tk, cut = expect_cut(name, 4)
    assert (score.first_in, score.late_minutes, score.tl) == (None, None, 4)
    assert (score.last_out, score.early_minutes, score.psw) == (at(TUESDAY, "16:05").at, 0, 0)
    assert (score.tk, score.cut_percent) == (tk, cut)


@pytest.mark.parametrize("name", list(SCORERS))
def test_missing_clock_out_is_psw4(name: str) -> None:
    score = SCORERS[name].score_day(TUESDAY, [at(TUESDAY, "07:20")])
    tk, cut = expect_cut(name, 4)
    assert (score.late_minutes, score.tl, score.last_out, score.early_minutes, score.psw) == (0, 0, None, None, 4)
    assert (score.tk, score.cut_percent) == (tk, cut)


@pytest.mark.parametrize("name", list(SCORERS))
def test_no_punch_is_tk(name: str) -> None:
    score = SCORERS[name].score_day(TUESDAY, [])
    assert score == DayScore(TUESDAY, True, None, None, None, None, 0, 0, True, None, False, TK_CUT[name])


@pytest.mark.parametrize("name", list(SCORERS))
def test_late_and_missing_clock_out_add_up(name: str) -> None:
    score = SCORERS[name].score_day(TUESDAY, [at(TUESDAY, "07:45")])
    if name == "pergub-sumut-11-2017":
        assert (score.tk, score.cut_percent) == (True, 2.5)
    else:
        assert (score.tl, score.psw, score.tk, score.cut_percent) == (1, 4, False, 0.5 + BAND_CUTS[name][4])


def test_lone_punch_splits_at_the_middle_of_the_working_hours() -> None:
    # Tuesday 07:30-16:00: the middle is 11:45.
    before = PERMA.score_day(TUESDAY, [at(TUESDAY, "11:44:59")])
    after = PERMA.score_day(TUESDAY, [at(TUESDAY, "11:45:00")])
    assert (before.first_in is not None, before.last_out, before.tl, before.psw) == (True, None, 4, 4)
    assert (after.first_in, after.last_out is not None, after.tl, after.psw) == (None, True, 4, 4)


def test_double_taps_count_once() -> None:
    taps = [at(TUESDAY, "07:25:00"), at(TUESDAY, "07:25:03"), at(TUESDAY, "16:05:00"), at(TUESDAY, "16:05:02")]
    score = PERMA.score_day(TUESDAY, taps)
    assert (score.first_in, score.last_out) == (taps[0].at, taps[3].at)
    assert (score.tl, score.psw, score.cut_percent) == (0, 0, 0.0)
    morning_only = PERMA.score_day(TUESDAY, [at(TUESDAY, "07:25:00"), at(TUESDAY, "07:26:30")])
    assert (morning_only.first_in, morning_only.last_out, morning_only.psw) == (taps[0].at, None, 4)


def test_punches_all_marked_in_use_first_and_last() -> None:
    punches = [at(TUESDAY, "16:10"), at(TUESDAY, "12:01"), at(TUESDAY, "07:40"), at(TUESDAY, "13:02")]
    score = PERMA.score_day(TUESDAY, punches)
    assert (score.first_in, score.last_out) == (punches[2].at, punches[0].at)
    assert (score.late_minutes, score.tl, score.early_minutes, score.psw, score.cut_percent) == (10, 1, 0, 0, 0.5)


def test_state_mode_uses_in_and_out_states() -> None:
    scorer = variant("perma-3-2020", punch_mode="state")
    punches = [
        at(TUESDAY, "07:40", "in"),
        at(TUESDAY, "12:00", "break_out"),
        at(TUESDAY, "13:00", "break_in"),
        at(TUESDAY, "15:50", "out"),
        at(TUESDAY, "18:30", "ot_out"),
    ]
    score = scorer.score_day(TUESDAY, punches)
    assert (score.first_in, score.last_out) == (punches[0].at, punches[3].at)
    assert (score.tl, score.psw, score.early_minutes) == (1, 1, 10)
    # All marked "in": no clock-out by state, so PSW4 (why first_last is the shipped default).
    all_in = scorer.score_day(TUESDAY, [at(TUESDAY, "07:40"), at(TUESDAY, "16:10")])
    assert (all_in.last_out, all_in.psw) == (None, 4)


def test_state_mode_falls_back_to_first_last_only_for_unknown() -> None:
    scorer = variant("perma-3-2020", punch_mode="state")
    unknown = scorer.score_day(TUESDAY, [at(TUESDAY, "07:40", "in"), at(TUESDAY, "16:10", "unknown")])
    assert (unknown.tl, unknown.psw, unknown.last_out) == (1, 0, at(TUESDAY, "16:10").at)
    # Break and overtime keys are not attendance: a day with only those has no clock-in or clock-out.
    breaks = scorer.score_day(TUESDAY, [at(TUESDAY, "07:30", "break_in"), at(TUESDAY, "16:00", "break_out")])
    assert (breaks.first_in, breaks.last_out, breaks.tk, breaks.cut_percent) == (None, None, True, 2.5)


def test_manual_entries_are_scored_like_punches() -> None:
    manual = Punch(datetime(2025, 11, 4, 7, 35), "in", manual=True)
    score = PERMA.score_day(TUESDAY, [manual, at(TUESDAY, "16:00")])
    assert (score.first_in, score.tl) == (manual.at, 1)


def test_order_and_duplicates_do_not_matter() -> None:
    punches = [at(TUESDAY, "16:10"), at(TUESDAY, "07:40"), at(TUESDAY, "12:00")]
    expected = PERMA.score_day(TUESDAY, punches)
    assert PERMA.score_day(TUESDAY, list(reversed(punches))) == expected
    assert PERMA.score_day(TUESDAY, punches + punches) == expected


@pytest.mark.parametrize("name", list(SCORERS))
@pytest.mark.parametrize(("day", "kind"), [(date(2025, 5, 1), "LN"), (date(2025, 12, 26), "CB"), (SATURDAY, None)])
def test_holidays_and_weekends_are_not_working_days(name: str, day: date, kind: str | None) -> None:
    scorer = SCORERS[name]
    assert scorer.calendar.holiday(day) == kind
    empty = scorer.score_day(day, [])
    assert empty == DayScore(day, False, None, None, None, None, 0, 0, False, None, False, 0.0)
    worked = scorer.score_day(day, [at(day, "09:00"), at(day, "12:00")])
    assert (worked.working, worked.first_in, worked.last_out) == (False, at(day, "09:00").at, at(day, "12:00").at)
    assert (worked.late_minutes, worked.tl, worked.psw, worked.cut_percent) == (None, 0, 0, 0.0)


def test_holidays_apply_to_six_day_units_too() -> None:
    assert PERMA.score_day(date(2025, 12, 26), [], six_day=True).working is False
    assert PERMA.score_day(date(2026, 8, 17), [], six_day=True).working is False


def test_six_day_unit_saturday() -> None:
    score = PERMA.score_day(SATURDAY, [at(SATURDAY, "07:45"), at(SATURDAY, "13:00")], six_day=True)
    assert (score.working, score.late_minutes, score.tl, score.psw, score.cut_percent) == (True, 15, 1, 0, 0.5)
    assert PERMA.score_day(SATURDAY, [], six_day=True).tk is True
    friday = PERMA.score_day(FRIDAY, [at(FRIDAY, "07:30"), at(FRIDAY, "15:00")], six_day=True)
    assert (friday.early_minutes, friday.psw) == (0, 0)


@pytest.mark.parametrize("name", list(SCORERS))
def test_ramadan_hours_start_at_eight(name: str) -> None:
    day = date(2025, 3, 4)  # Tuesday, Ramadan 1446 H: 08:00-15:00
    on_time = SCORERS[name].score_day(day, [at(day, "08:00:59"), at(day, "15:00")])
    assert (on_time.late_minutes, on_time.early_minutes, on_time.cut_percent) == (0, 0, 0.0)
    late = SCORERS[name].score_day(day, [at(day, "08:31"), at(day, "15:00")])
    assert (late.late_minutes, late.tl) == (31, 2)
    before = date(2025, 2, 28)  # the Friday before Ramadan: regular 07:30 start
    assert SCORERS[name].score_day(before, [at(before, "08:00"), at(before, "16:30")]).late_minutes == 30


@pytest.mark.parametrize(("name", "end"), [("pergub-sumut-11-2017", "14:30"), ("perma-3-2020", "14:00")])
def test_ramadan_1447_six_day_friday(name: str, end: str) -> None:
    day = date(2026, 3, 6)  # Friday in Ramadan 1447 H
    hours = SCORERS[name].hours_for(day, six_day=True)
    assert hours is not None and hours.end == time.fromisoformat(end)
    score = SCORERS[name].score_day(day, [at(day, "08:00"), at(day, "14:29")], six_day=True)
    assert score.early_minutes == (1 if name == "pergub-sumut-11-2017" else 0)


@pytest.mark.parametrize(
    ("name", "code", "cut"),
    [
        ("perma-3-2020", "CT", 0.0),
        ("perma-3-2020", "CB", 1.5),
        ("perma-3-2020", "CM", 1.5),
        ("permentan-68-2012", "CB", 0.0),
        ("pergub-sumut-11-2017", "DL", 0.0),
        ("pergub-sumut-11-2017", "CLTN", 0.0),
    ],
)
def test_leave_days_are_exempt_with_the_codes_cut(name: str, code: str, cut: float) -> None:
    absent = SCORERS[name].score_day(TUESDAY, [], leave=code)
    assert absent == DayScore(TUESDAY, True, None, None, None, None, 0, 0, False, code, False, cut)
    late = SCORERS[name].score_day(TUESDAY, [at(TUESDAY, "10:00")], leave=code)
    assert (late.first_in, late.tl, late.psw, late.tk, late.cut_percent) == (at(TUESDAY, "10:00").at, 0, 0, False, cut)


def test_leave_on_a_weekend_costs_nothing() -> None:
    score = PERMA.score_day(SATURDAY, [], leave="CB")
    assert (score.working, score.leave, score.cut_percent) == (False, "CB", 0.0)


def test_unknown_leave_code_is_an_error() -> None:
    with pytest.raises(ValueError, match=r"leave code 'XX' is not in rule profile 'perma-3-2020'.*CLTN"):
        PERMA.score_day(TUESDAY, [], leave="XX")


def test_made_up_lateness_when_the_profile_allows_it() -> None:
    scorer = variant("perma-3-2020", makeup={"enabled": True, "max_minutes": 30})
    made_up = scorer.score_day(TUESDAY, [at(TUESDAY, "07:50:30"), at(TUESDAY, "16:20")])
    assert (made_up.late_minutes, made_up.tl, made_up.made_up, made_up.cut_percent) == (20, 1, True, 0.0)
    short = scorer.score_day(TUESDAY, [at(TUESDAY, "07:50"), at(TUESDAY, "16:19:59")])
    assert (short.tl, short.made_up, short.cut_percent) == (1, False, 0.5)
    too_late = scorer.score_day(TUESDAY, [at(TUESDAY, "08:01"), at(TUESDAY, "17:30")])
    assert (too_late.tl, too_late.made_up, too_late.cut_percent) == (2, False, 1.0)
    edge = scorer.score_day(TUESDAY, [at(TUESDAY, "08:00"), at(TUESDAY, "16:30")])
    assert (edge.late_minutes, edge.made_up, edge.cut_percent) == (30, True, 0.0)
    # Off in the shipped profiles.
    assert PERMA.score_day(TUESDAY, [at(TUESDAY, "07:50"), at(TUESDAY, "16:20")]).cut_percent == 0.5


@pytest.mark.parametrize(
    ("arrival", "leaving", "tl", "psw"),
    [("08:31", "16:00", 3, 0), ("07:30", "14:59", 0, 3), ("09:01", "14:00", 4, 4), ("08:31", "14:59", 3, 3)],
)
def test_sumut_over_60_minutes_is_tk_counted_once(arrival: str, leaving: str, tl: int, psw: int) -> None:
    score = SUMUT.score_day(TUESDAY, [at(TUESDAY, arrival), at(TUESDAY, leaving)])
    assert (score.tl, score.psw, score.tk, score.cut_percent) == (tl, psw, True, 2.5)


def test_sumut_60_minutes_is_still_a_band() -> None:
    score = SUMUT.score_day(TUESDAY, [at(TUESDAY, "08:30"), at(TUESDAY, "15:00")])
    assert (score.tl, score.psw, score.tk, score.cut_percent) == (2, 2, False, 2.0)


def test_day_cap_limits_tl_plus_psw() -> None:
    scorer = variant("perma-3-2020", tpp__day_cap_percent=2.0)
    score = scorer.score_day(TUESDAY, [at(TUESDAY, "10:00"), at(TUESDAY, "13:00")])
    assert (score.tl, score.psw, score.cut_percent) == (4, 4, 2.0)
    assert scorer.score_day(TUESDAY, []).cut_percent == 2.5  # TK is not a TL + PSW combination


def test_today_before_the_end_is_open() -> None:
    morning = datetime(2025, 11, 4, 10, 0)
    arrived = PERMA.score_day(TUESDAY, [at(TUESDAY, "07:40")], now=morning)
    assert (arrived.open, arrived.tl, arrived.psw, arrived.early_minutes, arrived.cut_percent) == (
        True,
        1,
        0,
        None,
        0.5,
    )
    nobody = PERMA.score_day(TUESDAY, [], now=morning)
    assert (nobody.open, nobody.tk, nobody.tl, nobody.cut_percent) == (True, False, 0, 0.0)
    left_early = PERMA.score_day(TUESDAY, [at(TUESDAY, "07:30"), at(TUESDAY, "09:00")], now=morning)
    assert (left_early.open, left_early.last_out, left_early.psw) == (True, at(TUESDAY, "09:00").at, 0)
    sumut_late = SUMUT.score_day(TUESDAY, [at(TUESDAY, "08:40")], now=morning)
    assert (sumut_late.open, sumut_late.tk, sumut_late.cut_percent) == (True, True, 2.5)


@pytest.mark.parametrize(
    ("now", "is_open"),
    [
        (datetime(2025, 11, 4, 15, 59, 59), True),
        (datetime(2025, 11, 4, 16, 0), False),
        (datetime(2025, 11, 5, 8, 0), False),
        (datetime(2025, 11, 3, 20, 0), True),  # a future day
    ],
)
def test_the_day_closes_at_its_end(now: datetime, is_open: bool) -> None:
    score = PERMA.score_day(TUESDAY, [], now=now)
    assert (score.open, score.tk) == (is_open, not is_open)


def test_weekend_today_is_not_open() -> None:
    assert PERMA.score_day(SATURDAY, [], now=datetime(2025, 11, 8, 9, 0)).open is False


def test_fast_constructor_builds_the_same_dayscore() -> None:
    values = (TUESDAY, True, None, at(TUESDAY, "16:00").at, None, 0, 4, 0, False, "CT", True, 1.25, True)
    fast = _score(*values)
    assert fast == DayScore(*values)
    assert type(fast) is DayScore
    with pytest.raises(AttributeError):
        fast.tl = 1  # type: ignore[misc]
