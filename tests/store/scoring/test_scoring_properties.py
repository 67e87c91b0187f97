"""Properties of the scoring core, over random punches, days, leave and profiles (hypothesis)."""

from __future__ import annotations

import calendar
from datetime import date, datetime, time, timedelta
from decimal import Decimal

from hypothesis import example, given, settings
from hypothesis import strategies as st

from ekinerja.config.rules import RuleProfile, load_profile
from ekinerja.store.scoring import DayScore, Punch, Scorer, essential_punches, score_month


def _state_mode(name: str) -> Scorer:
    data = load_profile(name).model_dump()
    data["punch_mode"] = "state"
    data["makeup"] = {"enabled": True, "max_minutes": 30}
    return Scorer(RuleProfile.model_validate(data))


SCORERS = [Scorer(load_profile(name)) for name in ("perma-3-2020", "permentan-68-2012", "pergub-sumut-11-2017")]
SCORERS += [_state_mode("perma-3-2020"), _state_mode("pergub-sumut-11-2017")]
STATES = ("in", "out", "break_out", "break_in", "ot_in", "ot_out", "unknown")

scorers = st.sampled_from(SCORERS)
days = st.dates(min_value=date(2025, 1, 1), max_value=date(2026, 12, 31))
clock = st.times(min_value=time(5, 0), max_value=time(21, 0))
leaves = st.one_of(st.none(), st.sampled_from(["CT", "CB", "CLTN", "DL"]))


@st.composite
def punches_on(draw: st.DrawFn, day: date, max_size: int = 6) -> list[Punch]:
    moments = draw(st.lists(clock, max_size=max_size))
    return [Punch(datetime.combine(day, moment), draw(st.sampled_from(STATES))) for moment in moments]


@st.composite
def a_day(draw: st.DrawFn) -> tuple[Scorer, date, list[Punch], bool]:
    day = draw(days)
    return draw(scorers), day, draw(punches_on(day)), draw(st.booleans())


BREAKS_ONLY = [Punch(datetime(2025, 11, 4, 7, 30), "break_out"), Punch(datetime(2025, 11, 4, 16, 0), "break_in")]


@given(a_day(), clock, st.sampled_from(STATES))
@example((SCORERS[4], date(2025, 11, 4), BREAKS_ONLY, False), time(10, 0), "in")  # state mode, Sumut
@settings(max_examples=400)
def test_adding_a_punch_never_adds_a_tk_day(
    drawn: tuple[Scorer, date, list[Punch], bool], moment: time, state: str
) -> None:
    scorer, day, punches, six_day = drawn
    before = scorer.score_day(day, punches, six_day=six_day)
    after = scorer.score_day(day, [*punches, Punch(datetime.combine(day, moment), state)], six_day=six_day)
    assert after.tk <= before.tk
    assert before.tk or after.tl <= before.tl  # the clock-in can only move earlier


@given(a_day(), st.randoms(use_true_random=False), leaves, st.one_of(st.none(), clock))
@settings(max_examples=400)
def test_duplicates_and_order_do_not_change_the_score(
    drawn: tuple[Scorer, date, list[Punch], bool], rng: object, leave: str | None, now_clock: time | None
) -> None:
    scorer, day, punches, six_day = drawn
    now = None if now_clock is None else datetime.combine(day, now_clock)
    once = scorer.score_day(day, punches, six_day=six_day, leave=leave, now=now)
    assert scorer.score_day(day, punches, six_day=six_day, leave=leave, now=now) == once
    shuffled = punches + punches[: len(punches) // 2]
    rng.shuffle(shuffled)  # type: ignore[attr-defined]
    assert scorer.score_day(day, shuffled, six_day=six_day, leave=leave, now=now) == once


@st.composite
def a_month(draw: st.DrawFn) -> tuple[Scorer, list[DayScore], date, Decimal]:
    scorer = draw(scorers)
    month = draw(days).replace(day=1)
    six_day = draw(st.booleans())
    scored = []
    for number in range(1, calendar.monthrange(month.year, month.month)[1] + 1):
        day = month.replace(day=number)
        punches = draw(punches_on(day, max_size=3))
        scored.append(scorer.score_day(day, punches, six_day=six_day, leave=draw(leaves)))
    base = draw(st.decimals(min_value=0, max_value=50_000_000, places=0))
    return scorer, scored, month, base


@given(a_month())
@settings(max_examples=150, deadline=None)
def test_monthly_cut_never_exceeds_the_cap(drawn: tuple[Scorer, list[DayScore], date, Decimal]) -> None:
    scorer, scored, month, base = drawn
    result = score_month(scorer, month, scored, base)
    assert 0 <= result.cut_percent <= scorer.profile.tpp.monthly_cap_percent
    assert result.cut_amount is not None and 0 <= result.cut_amount <= base
    assert result.tk_days + result.leave_days <= result.working_days
    assert sum(result.tl) + result.tk_days <= result.working_days


@given(a_day(), st.integers(min_value=0, max_value=600))
def test_lateness_cut_grows_with_the_minutes(drawn: tuple[Scorer, date, list[Punch], bool], minutes: int) -> None:
    scorer, day, _, six_day = drawn
    hours = scorer.hours_for(day, six_day)
    if hours is None:
        return
    start = datetime.combine(day, hours.start)
    out = Punch(datetime.combine(day, hours.end) + timedelta(hours=1), "out")
    earlier = scorer.score_day(day, [Punch(start + timedelta(minutes=minutes), "in"), out], six_day=six_day)
    later = scorer.score_day(day, [Punch(start + timedelta(minutes=minutes + 1), "in"), out], six_day=six_day)
    assert earlier.tl <= later.tl
    assert earlier.cut_percent <= later.cut_percent or later.made_up


@given(a_day(), leaves)
@settings(max_examples=400)
def test_the_first_and_last_punch_of_each_state_decide_the_day(
    drawn: tuple[Scorer, date, list[Punch], bool], leave: str | None
) -> None:
    # The store keeps only these while it reads a month of punches.
    scorer, day, punches, six_day = drawn
    punches += [Punch(p.at + timedelta(seconds=7), p.state, manual=True) for p in punches[:1]]
    essential = essential_punches(punches, scorer.by_state)
    assert len(essential) <= 2 * (len({p.state for p in punches}) if scorer.by_state else 1)
    whole = scorer.score_day(day, punches, six_day=six_day, leave=leave)
    assert scorer.score_day(day, essential, six_day=six_day, leave=leave) == whole
