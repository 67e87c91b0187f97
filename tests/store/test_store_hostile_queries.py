"""Hostile query strings on every endpoint that takes one: a 4xx naming the parameter, never a 5xx,
and nothing changed. On SQLite, PostgreSQL and MariaDB (each backend parses differently)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from ekinerja.store.app import create_app

from samples import ADMIN, CONFIG, CORE, EMPLOYEES, csv_post

NIP = "198503142010012003"
HOSTILE = [
    "' OR '1'='1",
    "1; DROP TABLE punches; --",
    "-1",
    "1e400",
    "NaN",
    "99999999999999999999999999",
    "%00",
    "\u202e\u0000",
    "🙂" * 50,
    "x" * 5000,
    "2026-02-30",
    "0000-00",
    "../../etc/passwd",
]
ENDPOINTS = [
    ("/v1/feed", "after", {}),
    ("/v1/feed", "limit", {}),
    ("/v1/attendance/daily", "nip", {"from": "2026-01-05", "to": "2026-01-09"}),
    ("/v1/attendance/daily", "from", {"nip": NIP, "to": "2026-01-09"}),
    ("/v1/attendance/monthly", "month", {}),
    ("/v1/attendance/monthly", "format", {"month": "2026-01"}),
    ("/v1/discipline", "year", {}),
    ("/v1/discipline", "as_of", {"year": "2026"}),
    ("/v1/attendance/changes", "after", {}),
    ("/v1/attendance/changes", "limit", {}),
    ("/v1/audit", "after", {}),
    ("/v1/audit", "limit", {}),
]


@pytest.fixture
def client(engine: Engine) -> Iterator[TestClient]:
    with TestClient(create_app(CONFIG, engine)) as client:
        assert csv_post(client, "/v1/employees", EMPLOYEES).status_code == 200
        yield client


# These values are refused by the parameters' types and patterns before any query: SQLite suffices.
@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(("path", "name", "rest"), ENDPOINTS)
def test_a_hostile_value_is_a_4xx_naming_the_parameter(
    client: TestClient, path: str, name: str, rest: dict[str, str]
) -> None:
    headers = ADMIN if path == "/v1/audit" else CORE
    before = client.get("/v1/employees", headers=CORE).json()
    for value in HOSTILE:
        answer = client.get(path, params=rest | {name: value}, headers=headers)
        assert answer.status_code == 422, (value[:40], answer.status_code, answer.text[:300])
        assert any(err["loc"] == ["query", name] for err in answer.json()["detail"]), answer.text[:300]
    assert client.get("/v1/employees", headers=CORE).json() == before


@pytest.mark.parametrize("value", HOSTILE)
def test_free_text_filters_are_only_compared_never_run(client: TestClient, value: str) -> None:
    # unit is free text: a hostile one is refused (too long), matches nobody, or is "no employee in unit".
    for path, extra in (("/v1/employees", {}), ("/v1/attendance/monthly", {"month": "2026-01"})):
        answer = client.get(path, params=extra | {"unit": value}, headers=CORE)
        assert answer.status_code in (200, 404, 422), (value[:40], answer.text[:300])
        if answer.status_code == 200:
            body = answer.json()
            assert body.get("employees", []) == [], value[:40]
    assert len(client.get("/v1/employees", headers=CORE).json()["employees"]) == 3


def test_repeated_and_unknown_parameters_do_not_confuse_it(client: TestClient) -> None:
    answer = client.get("/v1/feed?after=0&after=-5&limit=2&evil=1", headers=CORE)
    assert answer.status_code in (200, 422)
    assert client.get("/v1/feed?" + "a=1&" * 2000, headers=CORE).status_code == 200


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/manual-attendance", {"nip": NIP, "at": "2026-01-05T07:15:00", "punch": "in", "reason": "lupa\x00",
                                   "approved_by": "Kasubbag TU"}),
        ("/v1/manual-attendance", {"nip": NIP, "at": "2026-01-05T07:15:00", "punch": "in", "reason": "lupa absen",
                                   "approved_by": "Kasubbag\x00TU"}),
        ("/v1/mappings", {"gateway_id": "opd\x00-1", "device_id": "pintu", "zk_user_id": "77", "nip": NIP}),
        ("/v1/mappings", {"gateway_id": "opd-1", "device_id": "pin\x00tu", "zk_user_id": "77", "nip": NIP}),
    ],
)  # fmt: skip
def test_control_characters_in_a_body_are_a_422(client: TestClient, path: str, body: dict[str, str]) -> None:
    answer = client.post(path, json=body, headers=ADMIN)
    assert answer.status_code == 422, answer.text[:300]
    assert client.get("/v1/audit", headers=ADMIN).json()["records"][-1]["action"] == "employee.add"
