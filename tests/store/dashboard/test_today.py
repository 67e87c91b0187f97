"""The "Hari ini" board, table-driven: where each day's live score puts an employee, grouped by unit."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from ekinerja.store.dashboard.today import Presence, board, presence
from ekinerja.store.scoring.day import DayScore

DAY = date(2026, 1, 5)


def score(*, working: bool = True, first_in: str | None = None, late: int | None = None, tl: int = 0,
          leave: str | None = None) -> DayScore:  # fmt: skip
    arrived = datetime.fromisoformat(f"2026-01-05T{first_in}") if first_in else None
    return DayScore(DAY, working, arrived, None, late, None, tl, 0, False, leave, False, 0.0, True)


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        (score(first_in="07:20", late=0), Presence.IN),
        (score(first_in="07:45", late=15, tl=1), Presence.LATE),
        (score(first_in="09:15", late=105, tl=4), Presence.LATE),
        (score(), Presence.NOT_YET),
        (score(leave="CT"), Presence.LEAVE),
        (score(leave="DL", first_in="07:10", late=0), Presence.LEAVE),  # duty outside, came by anyway
        (score(working=False), Presence.OFF),
        (score(working=False, first_in="08:00"), Presence.OFF),  # a Saturday visit is no attendance
        (None, Presence.OFF),
    ],
)
def test_presence(day: DayScore | None, expected: Presence) -> None:
    assert presence(day) is expected


def test_board_groups_by_unit_and_counts() -> None:
    staff = [
        ("1", "Budi", "Bagian Umum"),
        ("2", "Ani", "Bagian Umum"),
        ("3", "Citra", "Bidang Aset"),
        ("4", "Dedi", "Bagian Umum"),
    ]
    scores = {
        "1": score(first_in="07:50", late=20, tl=1),
        "2": score(first_in="07:25", late=0),
        "3": score(leave="CS"),
    }
    units = board(staff, scores)
    assert [u.unit for u in units] == ["Bagian Umum", "Bidang Aset"]
    umum = units[0]
    assert [(p.name, p.presence) for p in umum.people] == [
        ("Ani", Presence.IN), ("Budi", Presence.LATE), ("Dedi", Presence.OFF),
    ]  # fmt: skip
    assert umum.people[1].tl == 1 and umum.people[1].late_minutes == 20
    assert (umum.count(Presence.IN), umum.count(Presence.LATE), umum.count(Presence.NOT_YET)) == (1, 1, 0)
    assert units[1].people[0].leave == "CS"


def test_a_punch_on_a_day_off_or_on_leave_still_shows_when_it_came() -> None:
    """A Saturday visit or a punch on a leave day is no attendance, but the board says when it came."""
    units = board([("1", "Ani", "Umum"), ("2", "Budi", "Umum")],
                  {"1": score(working=False, first_in="08:00"), "2": score(leave="DL", first_in="07:40")})  # fmt: skip
    ani, budi = units[0].people
    assert (ani.presence, ani.first_in is not None, ani.leave) == (Presence.OFF, True, None)
    assert (budi.presence, budi.first_in is not None, budi.leave) == (Presence.LEAVE, True, "DL")
