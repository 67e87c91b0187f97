"""The audit log: every change to the registry, leave, manual attendance and mappings is recorded
with who, when, what and why, in the change's own transaction, and the API can only read it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from ekinerja.store.app import create_app

from samples import ADMIN, ANI, BUDI, CONFIG, CORE, EMPLOYEES, csv_post


@pytest.fixture
def client(engine: Engine) -> Iterator[TestClient]:
    with TestClient(create_app(CONFIG, engine)) as client:
        yield client


def audit(client: TestClient, **params: Any) -> list[dict[str, Any]]:
    answer = client.get("/v1/audit", params=params, headers=ADMIN)
    assert answer.status_code == 200, answer.text
    records: list[dict[str, Any]] = answer.json()["records"]
    return records


def test_every_change_is_recorded_with_who_what_and_why(client: TestClient) -> None:
    assert csv_post(client, "/v1/employees", EMPLOYEES).status_code == 200
    moved = EMPLOYEES.replace("Citra Dewi,Bidang Aset", "Citra Dewi,Bagian Umum")
    assert csv_post(client, "/v1/employees", moved).status_code == 200
    leave = f"nip,code,start,end,reason,approved_by\n{ANI},CT,2026-01-07,2026-01-08,cuti tahunan,Kepala Dinas\n"
    assert csv_post(client, "/v1/leave", leave).status_code == 200
    manual = {"nip": BUDI, "at": "2026-01-05T07:15:00", "punch": "in", "reason": "kartu tertinggal",
              "approved_by": "Kasubbag TU"}  # fmt: skip
    assert client.post("/v1/manual-attendance", json=manual, headers=ADMIN).status_code == 200
    mapping = {"gateway_id": "opd-1", "device_id": "pintu", "zk_user_id": "77", "nip": BUDI}
    assert client.post("/v1/mappings", json=mapping, headers=ADMIN).status_code == 200
    records = audit(client)
    assert [(r["actor"], r["action"]) for r in records] == [
        *[("bkd-admin", "employee.add")] * 3,
        ("bkd-admin", "employee.change"),
        ("bkd-admin", "leave.add"),
        ("bkd-admin", "manual.add"),
        ("bkd-admin", "mapping.add"),
    ]
    change = records[3]
    assert change["target"] == "197912312005022002"
    assert change["detail"] == {"unit": ["Bidang Aset", "Bagian Umum"]}
    assert change["reason"] == "upload by bkd-admin"
    assert records[4]["target"] == ANI and records[4]["reason"] == "cuti tahunan"
    assert records[4]["detail"]["first_day"] == "2026-01-07" and records[4]["detail"]["approved_by"] == "Kepala Dinas"
    assert records[5]["reason"] == "kartu tertinggal" and records[5]["detail"]["at"] == "2026-01-05T07:15:00"
    assert records[6]["detail"] == {"gateway_id": "opd-1", "device_id": "pintu", "zk_user_id": "77", "before": None}
    assert all(r["at"].endswith("Z") for r in records)
    seqs = [r["seq"] for r in records]
    assert seqs == sorted(seqs) and len(set(seqs)) == 7
    assert [r["seq"] for r in audit(client, after=seqs[4])] == seqs[5:]
    assert [r["action"] for r in audit(client, target=BUDI)] == ["employee.add", "manual.add", "mapping.add"]


def test_a_rejected_change_records_nothing(client: TestClient) -> None:
    bad = EMPLOYEES + "199913312020011001,Salah Tanggal,Bagian Umum,1004,,2025-01-01,\n"
    assert csv_post(client, "/v1/employees", bad).status_code == 422
    unknown = {"nip": "200001012020011001", "at": "2026-01-05T07:15:00", "punch": "in", "reason": "lupa",
               "approved_by": "Kasubbag TU"}  # fmt: skip
    assert client.post("/v1/manual-attendance", json=unknown, headers=ADMIN).status_code == 422
    assert audit(client) == []


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE", "POST"])
def test_the_api_cannot_rewrite_the_log(client: TestClient, method: str) -> None:
    csv_post(client, "/v1/employees", EMPLOYEES)
    before = audit(client)
    answer = client.request(method, "/v1/audit", json={"records": []}, headers=ADMIN)
    assert answer.status_code == 405
    assert client.request(method, f"/v1/audit/{before[0]['seq']}", headers=ADMIN).status_code in (404, 405)
    assert audit(client) == before


@pytest.mark.parametrize(("headers", "status"), [({}, 401), (CORE, 403)])
def test_only_a_writing_client_reads_the_log(client: TestClient, headers: dict[str, str], status: int) -> None:
    assert client.get("/v1/audit", headers=headers).status_code == status


@pytest.mark.parametrize("query", ["after=-1", "limit=0", "limit=1001", "after=x", f"target={'x' * 201}"])
def test_hostile_queries_are_refused(client: TestClient, query: str) -> None:
    answer = client.get(f"/v1/audit?{query}", headers=ADMIN)
    assert answer.status_code == 422
    assert answer.json()["detail"][0]["loc"][0] == "query"


def test_a_leave_file_with_bad_rows_names_each_and_applies_none(client: TestClient) -> None:
    csv_post(client, "/v1/employees", EMPLOYEES)
    rows = [
        f"{ANI},CT,2026-01-07,2026-01-08,cuti tahunan,Kepala Dinas",  # valid, and must not be applied alone
        f"{BUDI},XX,2026-01-07,2026-01-07,entah,Kepala Dinas",
        f"{BUDI},CS,2026-01-09,2026-01-08,sakit,Kepala Dinas",
        f"{BUDI},CS,2026-02-30,2026-03-01,sakit,Kepala Dinas",
        f"{BUDI},CS,2026-01-12,2026-01-12,,Kepala Dinas",
        f"{BUDI},CS,2026-01-13,2026-01-13,sakit,",
        "200001012020011001,CS,2026-01-14,2026-01-14,sakit,Kepala Dinas",
        f"{ANI},DL,2026-01-08,2026-01-09,dinas luar,Kepala Dinas",
    ]
    answer = csv_post(client, "/v1/leave", "nip,code,start,end,reason,approved_by\n" + "\n".join(rows) + "\n")
    assert answer.status_code == 422
    problems = answer.json()["detail"]["problems"]
    assert answer.json()["detail"]["message"] == "nothing was applied"
    expected_lines = ["line 3:", "line 4:", "line 5:", "line 6:", "line 7:", "line 8:", "line 9:"]
    for line in expected_lines:
        assert any(p.startswith(line) for p in problems), f"{line} not named in {problems}"
    assert not any(p.startswith("line 2:") for p in problems)
    assert any("overlaps" in p for p in problems) and "line 6: reason is empty" in problems
    assert audit(client, target=ANI) == [next(r for r in audit(client) if r["target"] == ANI)], "no leave applied"
    assert [r["action"] for r in audit(client)] == ["employee.add"] * 3
