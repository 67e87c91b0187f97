"""Leave and manual attendance are bounded in time, wherever they come from (API, CLI import, dashboard).

Leave runs from 2000-01-01 to the end of next year (it is entered ahead); manual attendance from
2000-01-01 to the day after the offices' today. A day outside is refused naming the field and the
range, and nothing is stored: a year like 9999 once overflowed the month arithmetic (a 500) or was
stored and broke every background re-scoring pass.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select

from ekinerja.store import entries
from ekinerja.store.app import create_app
from ekinerja.store.csv_input import CsvRejected
from ekinerja.store.db import attendance_months, leave_entries, make_engine, manual_entries
from ekinerja.store.month_scoring import rescore_stale
from ekinerja.store.schema import upgrade

from samples import ADMIN, ANI, BUDI, CONFIG, EMPLOYEES, csv_post

HEADER = "nip,code,start,end,reason,approved_by\n"


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    """SQLite only: the bounds are checked before any database is asked."""
    engine = make_engine(f"sqlite:///{tmp_path}/store.db")
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def client(engine: Engine) -> Iterator[TestClient]:
    with TestClient(create_app(CONFIG, engine)) as client:
        assert csv_post(client, "/v1/employees", EMPLOYEES).status_code == 200
        yield client


def office_today(client: TestClient) -> date:
    return client.app.state.store.office.now().date()  # type: ignore[attr-defined,no-any-return]


def stored(engine: Engine) -> tuple[int, int]:
    with engine.connect() as conn:
        count = [
            conn.execute(select(func.count()).select_from(t)).scalar_one() for t in (leave_entries, manual_entries)
        ]
    return count[0], count[1]


def leave_csv(first: str, last: str) -> str:
    return HEADER + f"{ANI},CT,{first},{last},cuti tahunan,Kasubbag TU\n"


def manual(at: str) -> dict[str, str]:
    return {"nip": BUDI, "at": at, "punch": "in", "reason": "mesin mati", "approved_by": "Kasubbag TU"}


def test_leave_far_in_the_future_is_refused_naming_the_range(client: TestClient, engine: Engine) -> None:
    last = date(office_today(client).year + 1, 12, 31)
    answer = csv_post(client, "/v1/leave", leave_csv("9999-12-01", "9999-12-31"))
    assert answer.status_code == 422, answer.text
    problems = answer.json()["detail"]["problems"]
    assert problems == [f"line 2: start 9999-12-01 is not between 2000-01-01 and {last}"]
    assert stored(engine) == (0, 0)


@pytest.mark.parametrize(
    ("first", "last", "words"),
    [
        ("1999-12-31", "2000-01-02", "start 1999-12-31 is not between 2000-01-01"),
        ("NEXT-12-31", "AFTER-01-01", "end AFTER-01-01 is not between 2000-01-01 and NEXT-12-31"),
    ],
)
def test_leave_before_2000_or_after_next_year_is_refused(
    client: TestClient, engine: Engine, first: str, last: str, words: str
) -> None:
    year = office_today(client).year
    first, last, words = (
        v.replace("NEXT", str(year + 1)).replace("AFTER", str(year + 2)) for v in (first, last, words)
    )
    answer = csv_post(client, "/v1/leave", leave_csv(first, last))
    assert answer.status_code == 422 and words in answer.text, answer.text
    assert stored(engine) == (0, 0)


def test_leave_up_to_the_end_of_next_year_is_taken(client: TestClient, engine: Engine) -> None:
    year = office_today(client).year
    answer = csv_post(client, "/v1/leave", leave_csv(f"{year + 1}-12-01", f"{year + 1}-12-31"))
    assert answer.status_code == 200 and answer.json() == {"added": 1}, answer.text


def test_a_manual_entry_in_the_future_is_refused_and_rescoring_goes_on(client: TestClient, engine: Engine) -> None:
    today = office_today(client)
    for at in ("9999-12-31T07:00:00", f"{today + timedelta(days=2)}T07:00:00"):
        answer = client.post("/v1/manual-attendance", json=manual(at), headers=ADMIN)
        assert answer.status_code == 422, (at, answer.text)
        [problem] = answer.json()["detail"]["problems"]
        assert problem == f"at {at[:10]} is not between 2000-01-01 and {today + timedelta(days=1)}"
    assert stored(engine) == (0, 0)
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(attendance_months)).scalar_one() == 0, "nothing stale"
    rescore_stale(engine, client.app.state.store.office)  # type: ignore[attr-defined]


def test_a_manual_entry_before_2000_is_refused_by_the_model(client: TestClient, engine: Engine) -> None:
    answer = client.post("/v1/manual-attendance", json=manual("1999-12-31T07:00:00"), headers=ADMIN)
    assert answer.status_code == 422
    [error] = answer.json()["detail"]
    assert error["loc"] == ["body", "at"] and "at 1999-12-31 is before 2000-01-01" in error["msg"]
    assert stored(engine) == (0, 0)


def test_a_manual_entry_up_to_tomorrow_is_taken(client: TestClient, engine: Engine) -> None:
    tomorrow = office_today(client) + timedelta(days=1)
    answer = client.post("/v1/manual-attendance", json=manual(f"{tomorrow}T00:05:00"), headers=ADMIN)
    assert answer.status_code == 200, answer.text
    assert stored(engine) == (0, 1)


def test_the_store_itself_refuses_entries_built_out_of_range(engine: Engine) -> None:
    """``add_leave`` and ``add_manual`` check the days whoever built the entries (not only the CSV reader)."""
    now, today = datetime.now(UTC).replace(tzinfo=None), date(2026, 1, 20)
    far = entries.LeaveEntry(ANI, "CT", date(9999, 12, 1), date(9999, 12, 31), "cuti", "Kasubbag")
    with pytest.raises(CsvRejected) as refused:
        entries.add_leave(engine, [(3, far)], "test", "operator", now, today)
    assert refused.value.problems == [
        "line 3: start 9999-12-01 is not between 2000-01-01 and 2027-12-31",
        "line 3: end 9999-12-31 is not between 2000-01-01 and 2027-12-31",
    ]
    late = entries.ManualEntry(BUDI, datetime(2026, 1, 22, 7, 0), "in", "mesin mati", "Kasubbag")
    with pytest.raises(CsvRejected) as refused:
        entries.add_manual(engine, late, "operator", now, today)
    assert refused.value.problems == ["at 2026-01-22 is not between 2000-01-01 and 2026-01-21"]
    assert stored(engine) == (0, 0)


@pytest.mark.parametrize(
    ("first", "last", "months"),
    [
        (date(9999, 12, 1), date(9999, 12, 31), [date(9999, 12, 1)]),
        (date(9999, 11, 15), date(9999, 12, 31), [date(9999, 11, 1), date(9999, 12, 1)]),
        (date(2025, 12, 31), date(2026, 2, 1), [date(2025, 12, 1), date(2026, 1, 1), date(2026, 2, 1)]),
        (date(2026, 2, 1), date(2026, 1, 31), []),
    ],
)
def test_months_between_never_overflows(first: date, last: date, months: list[date]) -> None:
    assert entries.months_between(first, last) == months
