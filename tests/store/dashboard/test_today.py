"""The "Hari ini" board, table-driven: where each day's live score puts an employee, grouped by unit."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pyotp
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from test_web import ADMIN, PASSWORD, client, secret_for, sign_in

from ekinerja.store.dashboard.pages.today import active_on
from ekinerja.store.dashboard.today import Presence, board, presence
from ekinerja.store.registry import EmployeeRecord
from ekinerja.store.scoring.day import DayScore

from samples import ANI, BUDI, CITRA, csv_post

__all__ = ["client"]  # the fixture, shared with test_web

DAY = date(2026, 1, 5)
GONE, COMING = "198001012006041001", "198202022008012002"  # who left, who is yet to start


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


@pytest.mark.parametrize(
    ("active_from", "active_to", "active"),
    [
        (date(2025, 1, 1), None, True),
        (DAY, DAY, True),
        (DAY + timedelta(days=1), None, False),  # starts tomorrow
        (date(2025, 1, 1), DAY - timedelta(days=1), False),  # left yesterday
    ],
)
def test_who_is_active_on_a_day(active_from: date, active_to: date | None, active: bool) -> None:
    record = EmployeeRecord("1" * 18, "A", "U", None, None, active_from, active_to=active_to)
    assert active_on(record, DAY) is active


def test_the_board_shows_only_who_works_here_today(client: TestClient, engine: Engine) -> None:
    today = client.app.state.store.office.now().date()  # type: ignore[attr-defined]
    left, starts = today - timedelta(days=1), today + timedelta(days=10)
    people = (
        "nip,name,unit,zk_user_id,card_uid,active_from,active_to\n"
        f"{GONE},Gani Pensiun,Bagian Umum,1008,,2020-01-01,{left}\n"
        f"{COMING},Citra Baru,Bagian Umum,1009,,{starts},\n"
    )
    assert csv_post(client, "/v1/employees", people).status_code == 200
    sign_in(client, "admin.bkd", PASSWORD, pyotp.TOTP(secret_for(engine, ADMIN)).now())
    board_page = client.get("/hari-ini")
    assert board_page.status_code == 200
    assert all(f'data-nip="{nip}"' in board_page.text for nip in (ANI, BUDI, CITRA))
    assert f'data-nip="{GONE}"' not in board_page.text and f'data-nip="{COMING}"' not in board_page.text
    registry = client.get("/karyawan")
    for nip, first, last in ((GONE, "2020-01-01", str(left)), (COMING, str(starts), "–")):
        line = registry.text.split(f'data-nip="{nip}">', 1)[1].split("</tr>", 1)[0]
        assert f"<td>{first}</td><td>{last}</td>" in line, "the registry lists everyone, with their dates"
