"""The scoring core: pure functions from punches and a rule profile to daily, monthly and PP 94 scores.

No database, HTTP, clock or file I/O here: data in, data out. The store prepares one :class:`Scorer`
per rule profile and calls :meth:`Scorer.score_day`, :func:`score_month` and :func:`standing`.
"""

from ekinerja.store.scoring.day import DayScore, Punch, Scorer, essential_punches
from ekinerja.store.scoring.discipline import BANDS, CONSECUTIVE, Standing, standing
from ekinerja.store.scoring.month import MonthScore, score_month
from ekinerja.store.scoring.schedule import Calendar, WorkHours

__all__ = [
    "BANDS",
    "CONSECUTIVE",
    "Calendar",
    "DayScore",
    "MonthScore",
    "Punch",
    "Scorer",
    "Standing",
    "WorkHours",
    "essential_punches",
    "score_month",
    "standing",
]
