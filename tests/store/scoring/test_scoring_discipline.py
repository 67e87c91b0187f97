"""PP 94/2021 standing: each band edge, the crossing dates, and ten consecutive working days."""

from __future__ import annotations

import random
from datetime import date, timedelta

import pytest

from ekinerja.config.rules import load_profile
from ekinerja.store.scoring import DayScore, Scorer, standing

PERMA = Scorer(load_profile("perma-3-2020"))


def day(on: date, *, tk: bool = False, working: bool = True, leave: str | None = None) -> DayScore:
    cut = 2.5 if tk else 0.0
    return DayScore(on, working, None, None, None, None, 0, 0, tk, leave, False, cut)


def weekdays(start: date, count: int) -> list[date]:
    out: list[date] = []
    current = start
    while len(out) < count:
        if current.weekday() < 5:
            out.append(current)
        current += timedelta(days=1)
    return out


def scattered(tk_days: int) -> tuple[list[DayScore], list[date]]:
    """A year from 6 January 2025 where every other working day is TK (runs never reach 2)."""
    days = weekdays(date(2025, 1, 6), 2 * tk_days + 2)
    scores = [day(d, tk=i % 2 == 0 and i // 2 < tk_days) for i, d in enumerate(days)]
    return scores, [s.date for s in scores if s.tk]


@pytest.mark.parametrize(
    ("count", "band", "level", "sanction"),
    [
        (0, None, None, None),
        (2, None, None, None),
        (3, "3", "light", "teguran lisan"),
        (4, "4-6", "light", "teguran tertulis"),
        (6, "4-6", "light", "teguran tertulis"),
        (7, "7-10", "light", "pernyataan tidak puas secara tertulis"),
        (10, "7-10", "light", "pernyataan tidak puas secara tertulis"),
        (11, "11-13", "medium", "pemotongan tunjangan kinerja sebesar 25% selama 6 bulan"),
        (13, "11-13", "medium", "pemotongan tunjangan kinerja sebesar 25% selama 6 bulan"),
        (14, "14-16", "medium", "pemotongan tunjangan kinerja sebesar 25% selama 9 bulan"),
        (16, "14-16", "medium", "pemotongan tunjangan kinerja sebesar 25% selama 9 bulan"),
        (17, "17-20", "medium", "pemotongan tunjangan kinerja sebesar 25% selama 12 bulan"),
        (20, "17-20", "medium", "pemotongan tunjangan kinerja sebesar 25% selama 12 bulan"),
        (21, "21-24", "heavy", "penurunan jabatan setingkat lebih rendah selama 12 bulan"),
        (24, "21-24", "heavy", "penurunan jabatan setingkat lebih rendah selama 12 bulan"),
        (25, "25-27", "heavy", "pembebasan dari jabatannya menjadi jabatan pelaksana selama 12 bulan"),
        (27, "25-27", "heavy", "pembebasan dari jabatannya menjadi jabatan pelaksana selama 12 bulan"),
        (28, "28+", "heavy", "pemberhentian dengan hormat tidak atas permintaan sendiri sebagai PNS"),
        (40, "28+", "heavy", "pemberhentian dengan hormat tidak atas permintaan sendiri sebagai PNS"),
    ],
)
def test_band_edges(count: int, band: str | None, level: str | None, sanction: str | None) -> None:
    scores, _ = scattered(count)
    result = standing(scores)
    assert (result.tk_days, result.consecutive_tk_days) == (count, min(count, 1))
    assert (result.band, result.level, result.sanction) == (band, level, sanction)


def test_crossing_dates() -> None:
    scores, tk_dates = scattered(28)
    crossed = standing(scores).crossed
    expected = {"3": 3, "4-6": 4, "7-10": 7, "11-13": 11, "14-16": 14, "17-20": 17, "21-24": 21, "25-27": 25, "28+": 28}
    assert crossed == {band: tk_dates[nth - 1] for band, nth in expected.items()}


def test_ten_consecutive_working_days_across_a_weekend() -> None:
    # Monday 3 to Friday 14 November 2025: ten working days, the weekend of 8-9 November inside.
    scores = []
    for offset in range(12):
        on = date(2025, 11, 3) + timedelta(days=offset)
        scores.append(day(on, tk=on.weekday() < 5, working=on.weekday() < 5))
    result = standing(scores)
    assert (result.tk_days, result.consecutive_tk_days, result.band, result.level) == (
        10,
        10,
        "10-consecutive",
        "heavy",
    )
    assert result.sanction is not None and "gaji dihentikan mulai bulan berikutnya" in result.sanction
    assert result.crossed == {
        "3": date(2025, 11, 5),
        "4-6": date(2025, 11, 6),
        "7-10": date(2025, 11, 11),
        "10-consecutive": date(2025, 11, 14),
    }


def test_nine_in_a_row_is_not_ten() -> None:
    days = weekdays(date(2025, 11, 3), 11)
    scores = [day(d, tk=i != 9) for i, d in enumerate(days)]  # 9 TK, present, TK
    result = standing(scores)
    assert (result.tk_days, result.consecutive_tk_days, result.band) == (10, 9, "7-10")


def test_leave_breaks_a_run_and_holidays_do_not() -> None:
    days = weekdays(date(2025, 11, 3), 12)
    with_leave = [day(d, tk=i != 5, leave="CT" if i == 5 else None) for i, d in enumerate(days)]
    assert standing(with_leave).consecutive_tk_days == 6
    # Real scores, no punches from 24 March to 15 April 2025: the Nyepi and Idul Fitri days (28 March,
    # 31 March to 4 April, 7 April) are off, so 24-27 March and 8-15 April make ten in a row.
    spring = [PERMA.score_day(date(2025, 3, 24) + timedelta(days=n), []) for n in range(23)]
    result = standing(spring)
    assert (result.tk_days, result.consecutive_tk_days, result.band) == (10, 10, "10-consecutive")
    assert result.crossed["10-consecutive"] == date(2025, 4, 15)


def test_input_order_does_not_matter() -> None:
    scores, _ = scattered(12)
    shuffled = scores[:]
    random.Random(7).shuffle(shuffled)
    assert standing(shuffled) == standing(scores)
