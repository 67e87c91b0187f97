"""The "Hari ini" board: who is in, late (with the TL band), not yet in, or on leave, per unit.

A pure function of the registry and today's live scores; the page only lays it out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from ekinerja.store.scoring.day import DayScore


class Presence(StrEnum):
    """Where an employee stands today."""

    IN = "in"  # clocked in on time
    LATE = "late"  # clocked in late: ``tl`` is the band
    NOT_YET = "not_yet"  # a working day, and no clock-in so far
    LEAVE = "leave"  # leave or duty excuses the day
    OFF = "off"  # not a working day for them


@dataclass(frozen=True)
class Person:
    """One employee's line on the board."""

    nip: str
    name: str
    presence: Presence
    first_in: datetime | None = None
    late_minutes: int = 0
    tl: int = 0
    leave: str | None = None


@dataclass
class UnitToday:
    """One unit's column: its people, and how many stand where."""

    unit: str
    people: list[Person] = field(default_factory=list)

    def count(self, presence: Presence) -> int:
        """How many of this unit stand at ``presence``."""
        return sum(1 for p in self.people if p.presence is presence)


def presence(score: DayScore | None) -> Presence:
    """Where a day's live score puts its employee (no score: not a working day for them)."""
    if score is None or not score.working:
        return Presence.LEAVE if score is not None and score.leave else Presence.OFF
    if score.leave:
        return Presence.LEAVE
    if score.first_in is None:
        return Presence.NOT_YET
    return Presence.LATE if score.tl > 0 else Presence.IN


def board(staff: Iterable[tuple[str, str, str]], scores: Mapping[str, DayScore]) -> list[UnitToday]:
    """Units by name, each with its people by name; ``staff`` is (nip, name, unit)."""
    units: dict[str, UnitToday] = {}
    for nip, name, unit in sorted(staff, key=lambda s: (s[2], s[1], s[0])):
        score = scores.get(nip)
        where = presence(score)
        person = Person(nip, name, where)
        if score is not None and where in (Presence.IN, Presence.LATE):
            person = Person(nip, name, where, score.first_in, score.late_minutes or 0, score.tl)
        elif score is not None:  # on leave or a day off, a punch still shows when it came
            person = Person(nip, name, where, score.first_in, leave=score.leave if where is Presence.LEAVE else None)
        units.setdefault(unit, UnitToday(unit)).people.append(person)
    return list(units.values())
