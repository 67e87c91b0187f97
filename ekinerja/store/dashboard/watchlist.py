"""The discipline watchlist ("Disiplin"): who is approaching or past each PP 94/2021 band this year, with
the dates each band was crossed, and the trend of absence (TK) per unit over the months.

Pure functions of the discipline report's rows and the year's kept day scores; the page lays them out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from ekinerja.store.scoring.discipline import BANDS, CONSECUTIVE, Band

APPROACHING_DAYS = 1
"""One more day of TK reaches the next band: the personnel section should talk to them now."""
CONSECUTIVE_WATCH = CONSECUTIVE.days - 3
"""A run of this many TK days in a row is flagged: three more and it means dismissal."""
LEVELS = {"heavy": 3, "medium": 2, "light": 1}
TREND_UNITS = 8
"""Lines on the trend chart at most (the units with the most TK); more would not be told apart."""


@dataclass(frozen=True)
class Watch:
    """One employee on the watchlist."""

    nip: str
    name: str
    unit: str
    tk_days: int
    longest_run: int
    band: Band | None  # the band reached, None below the first
    next_band: Band | None  # the next one to reach, None past the last
    crossed: list[tuple[Band, date]]  # every band reached, with the day the count reached it

    @property
    def days_to_next(self) -> int | None:
        """TK days still to go before the next band."""
        return None if self.next_band is None else self.next_band.days - self.tk_days

    @property
    def approaching(self) -> bool:
        """Within APPROACHING_DAYS of the next band, or on a long run of TK days in a row."""
        close = self.days_to_next is not None and self.days_to_next <= APPROACHING_DAYS
        on_a_run = self.longest_run >= CONSECUTIVE_WATCH and all(b is not CONSECUTIVE for b, _d in self.crossed)
        return close or on_a_run

    @property
    def level(self) -> str | None:
        """light, medium or heavy: the sanction's level, for the row's colour."""
        return self.band.level if self.band else None


def _band(name: str) -> Band:
    return next(b for b in (*BANDS, CONSECUTIVE) if b.name == name)


def watch(row: Mapping[str, Any]) -> Watch:
    """One row of the discipline report as a watchlist entry."""
    tk = row["tk_days"]
    reached = [(_band(name), date.fromisoformat(day)) for name, day in row["crossed"].items()]
    crossed = sorted(reached, key=lambda pair: (pair[1], pair[0].days))
    band = _band(row["band"]) if row["band"] else None
    following = next((b for b in BANDS if b.days > tk), None)
    return Watch(row["nip"], row["name"], row["unit"], tk, row["consecutive_tk_days"], band, following, crossed)


def watchlist(rows: Iterable[Mapping[str, Any]]) -> tuple[list[Watch], int]:
    """Everyone with a TK day this year, the most serious first; and how many have none."""
    entries = [watch(row) for row in rows]
    listed = [w for w in entries if w.tk_days > 0]
    listed.sort(key=lambda w: (-LEVELS.get(w.level or "", 0), -w.tk_days, -w.longest_run, w.name, w.nip))
    return listed, len(entries) - len(listed)


def trend(counts: Iterable[tuple[str, int, int]], months: int) -> dict[str, list[int]]:
    """TK days per unit in each of the year's first ``months`` months (index 0 is January), from
    (unit, month number, TK days); a month without a row counts 0."""
    out: dict[str, list[int]] = {}
    for unit, month, days in counts:
        if 1 <= month <= months:
            out.setdefault(unit, [0] * months)[month - 1] += days
    return out


def busiest(trend: Mapping[str, Sequence[int]], most: int = TREND_UNITS) -> list[tuple[str, Sequence[int]]]:
    """The ``most`` units with the most TK days over the year, the most first (ties by name)."""
    ranked = sorted(trend.items(), key=lambda item: (-sum(item[1]), item[0]))
    return ranked[:most]
