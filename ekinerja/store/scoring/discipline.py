"""Discipline standing under PP 94/2021: days absent without valid reason (TK), cumulative in one year.

The bands are national and fixed by PP 94/2021, so they are a table here rather than a rule profile.
When both apply, 10 consecutive TK working days outranks the cumulative band (it adds the stop of salary).
Non-working days neither count nor break a run; any working day that is not TK (present, on leave, or
still open) ends a run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from operator import attrgetter

from ekinerja.store.scoring.day import DayScore

__all__ = ["BANDS", "CONSECUTIVE", "Standing", "standing"]


@dataclass(frozen=True, slots=True)
class Band:
    """One PP 94/2021 band: reached when the count is at least ``days``."""

    days: int
    name: str
    sanction: str
    level: str


# PP 94/2021 Pasal 9-11 (tidak masuk kerja tanpa alasan yang sah), lowest first.
BANDS: tuple[Band, ...] = (
    Band(3, "3", "teguran lisan", "light"),
    Band(4, "4-6", "teguran tertulis", "light"),
    Band(7, "7-10", "pernyataan tidak puas secara tertulis", "light"),
    Band(11, "11-13", "pemotongan tunjangan kinerja sebesar 25% selama 6 bulan", "medium"),
    Band(14, "14-16", "pemotongan tunjangan kinerja sebesar 25% selama 9 bulan", "medium"),
    Band(17, "17-20", "pemotongan tunjangan kinerja sebesar 25% selama 12 bulan", "medium"),
    Band(21, "21-24", "penurunan jabatan setingkat lebih rendah selama 12 bulan", "heavy"),
    Band(25, "25-27", "pembebasan dari jabatannya menjadi jabatan pelaksana selama 12 bulan", "heavy"),
    Band(28, "28+", "pemberhentian dengan hormat tidak atas permintaan sendiri sebagai PNS", "heavy"),
)
CONSECUTIVE = Band(
    10,
    "10-consecutive",
    "pemberhentian dengan hormat tidak atas permintaan sendiri sebagai PNS; gaji dihentikan mulai bulan berikutnya",
    "heavy",
)


@dataclass(frozen=True, slots=True)
class Standing:
    """An employee's PP 94/2021 standing for the year up to the last day given."""

    tk_days: int
    consecutive_tk_days: int
    band: str | None
    sanction: str | None
    level: str | None
    crossed: dict[str, date]


def standing(days: Sequence[DayScore]) -> Standing:
    """The standing from the year's DayScores (up to as_of); they are put in date order here."""
    count = run = longest = 0
    reached = 0  # bands reached so far, as an index into BANDS
    crossed: dict[str, date] = {}
    for day in sorted(days, key=attrgetter("date")):
        if not day.working:
            continue
        if not day.tk:
            run = 0
            continue
        count += 1
        run += 1
        longest = max(longest, run)
        while reached < len(BANDS) and count >= BANDS[reached].days:
            crossed[BANDS[reached].name] = day.date
            reached += 1
        if run == CONSECUTIVE.days and CONSECUTIVE.name not in crossed:
            crossed[CONSECUTIVE.name] = day.date
    band = CONSECUTIVE if longest >= CONSECUTIVE.days else BANDS[reached - 1] if reached else None
    if band is None:
        return Standing(count, longest, None, None, None, crossed)
    return Standing(count, longest, band.name, band.sanction, band.level, crossed)
