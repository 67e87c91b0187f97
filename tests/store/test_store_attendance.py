"""Registry, entries, scoring and reports through the real app, on SQLite, PostgreSQL and MariaDB.

January 2026 under perma-3-2020 (Monday-Thursday 07:30-16:00, Friday 07:30-16:30, WIB); the
week of 5-9 January has no holiday. Every day here is closed (before today), so scores are final.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from ekinerja.store.app import create_app
from ekinerja.store.attendance import Office
from ekinerja.store.month_scoring import rescore_stale
from ekinerja.sync.contract import Batch, Punch, PunchEvent, Source, Subject, Verify

from samples import ADMIN, ANI, BUDI, CITRA, CONFIG, CORE, EMPLOYEES, GATEWAY, csv_post


def punch(user: str | None, when: datetime, kind: Punch, card: str | None = None, device: str = "pintu") -> PunchEvent:
    """A punch at the office's wall clock ``when`` (WIB)."""
    return PunchEvent.create(
        gateway_id="opd-1", device_id=device, device_serial=f"SN-{device}", source=Source.ZK,
        verify=Verify.CARD if card else Verify.FINGERPRINT,
        subject=Subject(card_uid=card) if card else Subject(zk_user_id=user), punch=kind, device_time=when,
        timezone="Asia/Jakarta", captured_at=datetime.now(UTC),
    )  # fmt: skip


def day(d: int, hour: int, minute: int) -> datetime:
    return datetime(2026, 1, d, hour, minute)


@pytest.fixture
def client(engine: Engine) -> Iterator[TestClient]:
    with TestClient(create_app(CONFIG, engine)) as client:
        yield client


def push(client: TestClient, events: list[PunchEvent]) -> None:
    batch = Batch(gateway_id="opd-1", sent_at=datetime.now(UTC), events=events).model_dump(mode="json")
    answer = client.post("/v1/punches", json=batch, headers=GATEWAY)
    assert answer.status_code == 200 and answer.json()["accepted"] == len(events), answer.text


def daily(client: TestClient, nip: str, first: int, last: int) -> list[dict[str, Any]]:
    answer = client.get(
        "/v1/attendance/daily", params={"nip": nip, "from": f"2026-01-{first:02d}", "to": f"2026-01-{last:02d}"},
        headers=CORE,
    )  # fmt: skip
    assert answer.status_code == 200, answer.text
    return list(answer.json()["days"])


def test_a_month_from_registry_and_punches_to_reports(client: TestClient) -> None:
    assert csv_post(client, "/v1/employees", EMPLOYEES).json() == {
        "added": 3, "updated": 0, "unchanged": 0, "ignored_columns": []
    }  # fmt: skip
    push(client, [
        punch("1001", day(5, 7, 25), Punch.IN), punch("1001", day(5, 16, 5), Punch.OUT),    # on time
        punch("1001", day(6, 7, 31), Punch.IN), punch("1001", day(6, 15, 29), Punch.OUT),   # TL1, PSW2
        punch("1001", day(8, 8, 45), Punch.IN),                                             # TL3, no clock-out
        punch(None, day(5, 7, 29), Punch.IN, card="04A1B2C3"), punch(None, day(5, 16, 0), Punch.OUT, card="04A1B2C3"),
        punch("7777", day(5, 7, 10), Punch.IN),                                             # nobody's yet
    ])  # fmt: skip
    days = {d["date"][-2:]: d for d in daily(client, ANI, 5, 9)}
    assert (days["05"]["tl"], days["05"]["psw"], days["05"]["tk"]) == (0, 0, False)
    assert days["05"]["first_in"] == "2026-01-05T07:25:00" and days["05"]["last_out"] == "2026-01-05T16:05:00"
    assert (days["06"]["late_minutes"], days["06"]["tl"], days["06"]["early_minutes"], days["06"]["psw"]) == (
        1,
        1,
        31,
        2,
    )
    assert days["07"]["tk"] is True and days["07"]["late_minutes"] is None
    assert (days["08"]["tl"], days["08"]["early_minutes"], days["08"]["psw"]) == (3, None, 4)

    monthly = client.get("/v1/attendance/monthly", params={"month": "2026-01", "unit": "Bagian Umum"}, headers=CORE)
    rows = {r["nip"]: r for r in monthly.json()["employees"]}
    assert set(rows) == {ANI, BUDI}, "only the unit asked for"
    assert rows[ANI]["tl"][0] == 1 and rows[ANI]["tl"][2] == 1 and rows[ANI]["psw"][1] == 1
    assert rows[ANI]["cut_amount"] is not None and rows[BUDI]["cut_amount"] is None  # no TPP base known
    as_csv = client.get("/v1/attendance/monthly", params={"month": "2026-01", "format": "csv"}, headers=CORE)
    assert as_csv.headers["content-type"].startswith("text/csv")
    table = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert {r["nip"] for r in table} == {ANI, BUDI, CITRA} and {"tl1", "tl4", "psw1", "tk_days"} <= set(table[0])

    unmatched = client.get("/v1/unmatched", headers=CORE).json()["subjects"]
    assert [(u["device_id"], u["subject_value"], u["punches"]) for u in unmatched] == [("pintu", "7777", 1)]


def test_late_punches_mappings_and_leave_rescore_and_feed_the_changes(client: TestClient, engine: Engine) -> None:
    csv_post(client, "/v1/employees", EMPLOYEES)
    push(client, [punch("1001", day(5, 7, 20), Punch.IN), punch("7777", day(5, 7, 10), Punch.IN)])
    before = {d["date"][-2:]: d for d in daily(client, ANI, 5, 7)} | {"c": daily(client, CITRA, 5, 5)[0]}
    assert before["06"]["tk"] and before["c"]["tk"]
    assert client.get("/v1/attendance/changes", headers=CORE).json() == {
        "items": [],
        "next_after": 0,
        "has_more": False,
    }

    # The gateway of another door was offline for days: its punches of the 6th arrive now.
    push(client, [punch("1001", day(6, 7, 29), Punch.IN, device="samping"),
                  punch("1001", day(6, 16, 1), Punch.OUT, device="samping")])  # fmt: skip
    mapped = client.post("/v1/mappings", json={"gateway_id": "opd-1", "device_id": "pintu", "zk_user_id": "7777",
                                              "nip": CITRA}, headers=ADMIN)  # fmt: skip
    assert mapped.status_code == 200, mapped.text
    leave = f"nip,code,start,end,reason,approved_by\n{ANI},CT,2026-01-07,2026-01-07,keperluan keluarga,Kasubbag TU\n"
    assert csv_post(client, "/v1/leave", leave).json() == {"added": 1}
    assert csv_post(client, "/v1/leave", leave).json() == {"added": 0}, "the same file twice adds nothing"
    rescore_stale(engine, client.app.state.store.office)  # type: ignore[attr-defined]

    after = {d["date"][-2:]: d for d in daily(client, ANI, 5, 7)}
    assert (after["06"]["tk"], after["06"]["tl"], after["06"]["psw"]) == (False, 0, 0)
    assert after["07"]["leave"] == "CT" and not after["07"]["tk"]
    assert daily(client, CITRA, 5, 5)[0]["first_in"] == "2026-01-05T07:10:00"
    feed = client.get("/v1/attendance/changes", params={"limit": 2}, headers=CORE).json()
    rest = client.get("/v1/attendance/changes", params={"after": feed["next_after"]}, headers=CORE).json()
    changed = {(i["nip"], i["date"]) for i in feed["items"] + rest["items"]}
    assert changed == {(ANI, "2026-01-06"), (ANI, "2026-01-07"), (CITRA, "2026-01-05")}
    assert feed["has_more"] and not rest["has_more"]


def test_manual_attendance_and_discipline(client: TestClient) -> None:
    csv_post(client, "/v1/employees", EMPLOYEES)
    manual = {"nip": BUDI, "at": "2026-01-05T07:15:00", "punch": "in", "reason": "sidik jari tidak terbaca",
              "approved_by": "Kasubbag TU"}  # fmt: skip
    assert client.post("/v1/manual-attendance", json=manual, headers=ADMIN).status_code == 200
    assert daily(client, BUDI, 5, 5)[0]["first_in"] == "2026-01-05T07:15:00"
    report = client.get("/v1/discipline", params={"year": 2026, "as_of": "2026-01-16"}, headers=CORE).json()
    rows = {r["nip"]: r for r in report["employees"]}
    # Nobody else punched: 2-16 January holds 10 working days (the 16th is a holiday), all TK.
    assert rows[ANI]["tk_days"] == 10 and rows[ANI]["consecutive_tk_days"] == 10
    assert rows[ANI]["level"] == "heavy" and "2026-01-06" in rows[ANI]["crossed"].values()
    assert rows[BUDI]["tk_days"] == 9, "the manual clock-in of the 5th counts"


@pytest.mark.parametrize(
    ("headers", "status"), [({}, 401), ({"Authorization": "Bearer nope-nope-nope"}, 401), (CORE, 403)]
)
def test_registry_changes_need_a_writing_client(client: TestClient, headers: dict[str, str], status: int) -> None:
    assert csv_post(client, "/v1/employees", EMPLOYEES, headers).status_code == status
    assert client.get("/v1/employees", headers=ADMIN).json() == {"employees": []}


def test_a_bad_file_names_each_line_and_changes_nothing(client: TestClient) -> None:
    bad = EMPLOYEES + "199913312020011001,Salah Tanggal,Bagian Umum,1004,,2025-01-01,\n"
    bad += f"{ANI},Ani Lagi,Bagian Umum,1005,,2025-01-01,\n"
    answer = csv_post(client, "/v1/employees", bad)
    assert answer.status_code == 422
    problems = answer.json()["detail"]["problems"]
    assert problems == [
        "line 5: NIP 199913312020011001: 19991331 is not a real birth date",
        f"line 6: NIP {ANI} is also on line 2",
    ]
    assert client.get("/v1/employees", headers=CORE).json() == {"employees": []}


def test_reports_refuse_what_they_cannot_answer(client: TestClient) -> None:
    csv_post(client, "/v1/employees", EMPLOYEES)
    unknown = client.get("/v1/attendance/daily", params={"nip": "1" * 18, "from": "2026-01-01", "to": "2026-01-02"},
                         headers=CORE)  # fmt: skip
    assert unknown.status_code == 404 and "not in the registry" in unknown.text
    backwards = client.get("/v1/attendance/daily", params={"nip": ANI, "from": "2026-02-01", "to": "2026-01-01"},
                           headers=CORE)  # fmt: skip
    assert backwards.status_code == 422 and "from <= to" in backwards.text
    assert client.get("/v1/attendance/monthly", params={"month": "2026-13"}, headers=CORE).status_code == 422
    assert client.get("/v1/discipline", params={"year": 2026, "as_of": "2025-12-31"}, headers=CORE).status_code == 422
    no_unit = client.get("/v1/attendance/monthly", params={"month": "2026-01", "unit": "Tidak Ada"}, headers=CORE)
    assert no_unit.status_code == 404


def test_today_is_scored_live_and_marked_open(client: TestClient) -> None:
    csv_post(client, "/v1/employees", EMPLOYEES)
    office = client.app.state.store.office  # type: ignore[attr-defined]
    now = office.now()
    # At 07:10, or now if earlier: a punch after midday counts as a clock-out, not a clock-in.
    arrival = min(now.replace(tzinfo=None) - timedelta(minutes=1), now.replace(tzinfo=None, hour=7, minute=10))
    push(client, [punch("1001", arrival, Punch.IN)])
    today = now.date().isoformat()
    answer = client.get("/v1/attendance/daily", params={"nip": ANI, "from": today, "to": today}, headers=CORE)
    (only,) = answer.json()["days"]
    assert only["date"] == today and only["first_in"] is not None


def test_the_background_job_rescores_without_being_asked(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("ekinerja.store.app.RESCORE_INTERVAL_S", 0.2)
    with TestClient(create_app(CONFIG, engine)) as client:
        csv_post(client, "/v1/employees", EMPLOYEES)
        push(client, [punch("1001", day(5, 7, 20), Punch.IN)])
        assert daily(client, ANI, 6, 6)[0]["tk"]
        late = [punch("1001", day(6, 7, 29), Punch.IN, device="samping"), punch("1001", day(6, 16, 2), Punch.OUT)]
        push(client, late)
        deadline = time.monotonic() + 20
        items: list[dict[str, Any]] = []
        while not items and time.monotonic() < deadline:
            items = client.get("/v1/attendance/changes", headers=CORE).json()["items"]
            time.sleep(0.1)
        assert [(i["nip"], i["date"]) for i in items] == [(ANI, "2026-01-06")]
        # The same punches sent again (a gateway that lost the answer) change nothing.
        again = Batch(gateway_id="opd-1", sent_at=datetime.now(UTC), events=late).model_dump(mode="json")
        assert client.post("/v1/punches", json=again, headers=GATEWAY).json()["duplicate"] == 2
        time.sleep(0.6)
        assert len(client.get("/v1/attendance/changes", headers=CORE).json()["items"]) == 1


def test_punches_are_stored_only_with_their_months_marked(
    client: TestClient, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    csv_post(client, "/v1/employees", EMPLOYEES)
    assert daily(client, ANI, 6, 6)[0]["tk"]  # January is kept
    late = [punch("1001", day(6, 7, 29), Punch.IN)]

    def broken(*_args: object) -> None:
        raise RuntimeError("the database went away while marking")

    monkeypatch.setattr("ekinerja.store.app.mark_arrived", broken)
    with pytest.raises(RuntimeError):
        push(client, late)
    assert client.get("/v1/feed", params={"after": 0}, headers=CORE).json()["items"] == [], "stored without its mark"
    monkeypatch.undo()
    push(client, late)  # the gateway sends it again: new, and marked
    rescore_stale(engine, client.app.state.store.office)  # type: ignore[attr-defined]
    assert daily(client, ANI, 6, 6)[0]["first_in"] == "2026-01-06T07:29:00"
    assert client.get("/v1/attendance/monthly", params={"month": "0000-01"}, headers=CORE).status_code == 422


def test_on_new_years_day_the_discipline_report_is_empty_not_an_error(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """1 January has no closed day of the year yet (it used to be a 422 for the year, and a 500 on the page)."""
    csv_post(client, "/v1/employees", EMPLOYEES)
    monkeypatch.setattr(Office, "now", lambda _self: datetime(2027, 1, 1, 8, 0))
    for year in (2027, 2030):
        answer = client.get("/v1/discipline", params={"year": year}, headers=CORE)
        assert answer.status_code == 200 and answer.json() == {
            "year": year,
            "as_of": None,
            "unit": None,
            "employees": [],
        }
    last_year = client.get("/v1/discipline", params={"year": 2026}, headers=CORE).json()
    assert last_year["as_of"] == "2026-12-31" and len(last_year["employees"]) == 3
