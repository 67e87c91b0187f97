"""The "Karyawan" page through the app: the registry, and its forms' roles, CSRF, mistakes and audit.

Every refused or mistaken form is checked to have stored nothing: no leave, manual entry, mapping
or audit record. January 2026 is closed whatever day the tests run, so the daily report is final.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import httpx
import pyotp
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select
from test_store_attendance import punch, push
from test_web import ADMIN, HEAD, PASSWORD, client, secret_for, sign_in

from ekinerja.store import audit
from ekinerja.store.accounts import Role, User
from ekinerja.store.db import leave_entries, manual_entries, subject_mappings
from ekinerja.sync.contract import Punch

from samples import ADMIN as ADMIN_API
from samples import ANI, BUDI, CITRA, CORE

__all__ = ["client"]  # the fixture, shared with test_web

PERSONNEL = User("kepeg.bkd", "Staf Kepegawaian BKD", Role.PERSONNEL, None)
ACTOR = "user:kepeg.bkd"
UNKNOWN = "198001012006041001"  # a valid NIP that is not in the registry
LEAVE = {"nip": ANI, "code": "CT", "first_day": "2026-01-05", "last_day": "2026-01-06", "reason": "Cuti tahunan",
         "approved_by": "Kabag Umum"}  # fmt: skip
MANUAL = {"nip": BUDI, "day": "2026-01-07", "time": "07:25", "punch": "in", "reason": "Mesin pintu mati",
          "approved_by": "Kabag Umum"}  # fmt: skip
MAPPING = {"gateway_id": "opd-1", "device_id": "pintu", "kind": "zk_user_id", "value": "1009", "nip": CITRA}
FORMS = {"/karyawan/cuti": LEAVE, "/karyawan/manual": MANUAL, "/karyawan/pemetaan": MAPPING}


def signed_in_as(client: TestClient, engine: Engine, user: User) -> str:
    """Sign ``user`` in; their session's CSRF token."""
    answer = sign_in(client, user.username, PASSWORD, pyotp.TOTP(secret_for(engine, user)).now())
    assert answer.status_code == 303, answer.text
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/hari-ini").text)
    assert token
    return token.group(1)


def changes(engine: Engine) -> dict[str, int]:
    """What the forms could have stored: rows of each table, and audit records of the forms' actions."""
    with engine.connect() as conn:
        rows = {t.name: conn.execute(select(func.count()).select_from(t)).scalar_one()
                for t in (leave_entries, manual_entries, subject_mappings)}  # fmt: skip
        actions = [r["action"] for r in audit.read(conn, 0, 1000)]
    return rows | {a: actions.count(a) for a in ("leave.add", "manual.add", "mapping.add")}


NOTHING = {"leave_entries": 0, "manual_entries": 0, "subject_mappings": 0, "leave.add": 0, "manual.add": 0,
           "mapping.add": 0}  # fmt: skip


def unmatched_punches(client: TestClient) -> None:
    """Two punches of terminal user 1009, whom no one is mapped to, and one of Ani (1001)."""
    push(client, [punch("1009", datetime(2026, 1, 5, 7, 20), Punch.IN),
                  punch("1009", datetime(2026, 1, 5, 16, 5), Punch.OUT),
                  punch("1001", datetime(2026, 1, 5, 7, 21), Punch.IN)])  # fmt: skip


def post(client: TestClient, path: str, data: dict[str, str], token: str | None) -> httpx.Response:
    return client.post(path, data=data | ({"csrf_token": token} if token is not None else {}))


def day_of(client: TestClient, nip: str, day: str) -> dict[str, Any]:
    answer = client.get("/v1/attendance/daily", params={"nip": nip, "from": day, "to": day}, headers=CORE)
    assert answer.status_code == 200, answer.text
    days: list[dict[str, Any]] = answer.json()["days"]
    return days[0]


def audit_records(client: TestClient, target: str, action: str) -> list[dict[str, Any]]:
    """What ``GET /v1/audit`` says was done to ``target`` (the registry's own import is there too)."""
    answer = client.get("/v1/audit", params={"target": target}, headers=ADMIN_API)
    assert answer.status_code == 200, answer.text
    return [r for r in answer.json()["records"] if r["action"] == action]


def test_the_registry_and_the_forms_for_the_personnel_section(client: TestClient, engine: Engine) -> None:
    unmatched_punches(client)
    token = signed_in_as(client, engine, PERSONNEL)
    page = client.get("/karyawan")
    assert page.status_code == 200
    assert all(f'<tr data-nip="{nip}">' in page.text for nip in (ANI, BUDI, CITRA))
    assert 'data-subject="opd-1/pintu/zk_user_id/1009"' in page.text and "zk_user_id/1001" not in page.text
    assert all(f'action="{path}"' in page.text for path in FORMS)
    assert page.text.count(f'name="csrf_token" value="{token}"') == 6  # sign-out, 2 imports, a mapping, leave, manual
    assert '<option value="CLTN"' in page.text or '<option value="CT"' in page.text  # the profile's codes
    one_unit = client.get("/karyawan", params={"unit": "Bidang Aset"})
    assert f'data-nip="{CITRA}"' in one_unit.text and f'data-nip="{ANI}"' not in one_unit.text
    assert 'action="/karyawan/cuti?unit=Bidang+Aset"' in one_unit.text


def test_a_head_of_unit_reads_their_unit_and_may_change_nothing(client: TestClient, engine: Engine) -> None:
    unmatched_punches(client)
    token = signed_in_as(client, engine, HEAD)
    page = client.get("/karyawan")
    assert page.status_code == 200 and f'data-nip="{ANI}"' in page.text and f'data-nip="{CITRA}"' not in page.text
    assert 'method="post" action="/karyawan' not in page.text and "1009" not in page.text, "no forms, no unmatched"
    assert client.get("/karyawan", params={"unit": "Bidang Aset"}).status_code == 403
    for path, data in FORMS.items():
        refused = post(client, path, data, token)
        assert refused.status_code == 403 and "tidak berhak" in refused.text, path
    assert changes(engine) == NOTHING


@pytest.mark.parametrize("path", FORMS)
def test_a_form_without_the_session_s_token_changes_nothing(client: TestClient, engine: Engine, path: str) -> None:
    unmatched_punches(client)
    token = signed_in_as(client, engine, PERSONNEL)
    for forged in (None, "", "forged-token", token[:-1]):
        refused = post(client, path, FORMS[path], forged)
        assert refused.status_code == 403 and "Formulir kedaluwarsa" in refused.text, forged
    assert changes(engine) == NOTHING


def test_signed_out_a_form_leads_to_the_sign_in_page(client: TestClient) -> None:
    answer = post(client, "/karyawan/cuti", LEAVE, "whatever")
    assert answer.status_code == 303 and answer.headers["location"].startswith("/masuk")


def test_leave_is_stored_audited_and_excuses_the_day(client: TestClient, engine: Engine) -> None:
    token = signed_in_as(client, engine, PERSONNEL)
    before = day_of(client, ANI, "2026-01-05")
    assert before["working"] and before["tk"] and before["leave"] is None
    done = post(client, "/karyawan/cuti?unit=Bagian Umum", LEAVE | {"code": "ct", "reason": " Cuti tahunan "}, token)
    assert done.status_code == 303 and done.headers["location"] == "/karyawan?ok=leave&unit=Bagian+Umum"
    assert "Cuti/dinas tersimpan" in client.get(done.headers["location"]).text
    assert changes(engine) == NOTHING | {"leave_entries": 1, "leave.add": 1}
    [record] = audit_records(client, ANI, "leave.add")
    assert record["actor"] == ACTOR and record["reason"] == "Cuti tahunan"
    assert record["detail"] | {} == {"code": "CT", "first_day": "2026-01-05", "last_day": "2026-01-06",
                                     "source": "dashboard", "approved_by": "Kabag Umum"}  # fmt: skip
    after = day_of(client, ANI, "2026-01-05")
    assert after["leave"] == "CT" and not after["tk"]
    again = post(client, "/karyawan/cuti", LEAVE, token)  # the same entry: nothing new
    assert again.headers["location"] == "/karyawan?ok=leave_known"
    assert changes(engine) == NOTHING | {"leave_entries": 1, "leave.add": 1}
    clash = {"code": "CS", "first_day": "2026-01-06", "last_day": "2026-01-08"}
    overlap = post(client, "/karyawan/cuti", LEAVE | clash, token)
    assert overlap.status_code == 400 and 'data-problem="first_day"' in overlap.text
    assert "bertabrakan" in overlap.text and "overlaps CT 2026-01-05..2026-01-06" in overlap.text
    assert changes(engine) == NOTHING | {"leave_entries": 1, "leave.add": 1}


LEAVE_MISTAKES = [
    ({"nip": ""}, "nip", "wajib diisi"),
    ({"nip": "1985"}, "nip", "not 18 digits"),
    ({"nip": UNKNOWN}, "nip", "NIP ini tidak ada di daftar pegawai"),
    ({"code": "ZZ"}, "code", "bukan kode cuti/dinas"),
    ({"first_day": "5 Januari 2026"}, "first_day", "not a date as YYYY-MM-DD"),
    ({"last_day": "2026-13-01"}, "last_day", "not a date as YYYY-MM-DD"),
    ({"last_day": "2026-01-02"}, "last_day", "end 2026-01-02 is before start 2026-01-05"),
    ({"reason": ""}, "reason", "wajib diisi"),
    ({"reason": "cuti\x07tahunan"}, "reason", "control character"),
    ({"reason": "x" * 501}, "reason", "longer than 500 characters"),
    ({"approved_by": "Kabag\r\nUmum"}, "approved_by", "control character"),
    ({"first_day": "9999-12-01", "last_day": "9999-12-31"}, "first_day", "start 9999-12-01 is not between 2000-01-01"),
    ({"last_day": "9999-12-31"}, "last_day", "end 9999-12-31 is not between 2000-01-01"),
]


def mistaken(answer: httpx.Response, field: str, words: str) -> None:
    """The form came back (400) saying that ``field`` is wrong, in ``words``, and that nothing was saved."""
    assert answer.status_code == 400, answer.text
    assert f'data-problem="{field}"' in answer.text and words in answer.text, answer.text
    assert "Tidak ada yang disimpan" in answer.text
    assert re.search(rf'name="{field}"[^>]*aria-invalid="true"', answer.text), "the field is marked"


def test_a_leave_mistake_names_the_field_keeps_the_values_and_stores_nothing(
    client: TestClient, engine: Engine
) -> None:
    token = signed_in_as(client, engine, PERSONNEL)
    for changed, field, words in LEAVE_MISTAKES:  # one database for the table: nothing reaches it
        answer = post(client, "/karyawan/cuti", LEAVE | changed, token)
        mistaken(answer, field, words)
        kept = (LEAVE | changed)["approved_by" if field != "approved_by" else "nip"]
        assert f'value="{kept}"' in answer.text, "what was typed is kept"
    assert changes(engine) == NOTHING


MANUAL_MISTAKES = [
    ({"nip": UNKNOWN}, "nip", "NIP ini tidak ada di daftar pegawai"),
    ({"day": "2026-02-30"}, "day", "not a date"),
    ({"time": "7.25"}, "time", "not a time as HH:MM"),
    ({"time": ""}, "time", "wajib diisi"),
    ({"punch": "lembur"}, "punch", "&#39;in&#39; or &#39;out&#39;"),
    ({"reason": "ok"}, "reason", "at least 3 characters"),
    ({"reason": "mesin\x00mati"}, "reason", "control character"),
    ({"approved_by": "K" * 101}, "approved_by", "longer than 100 characters"),
    ({"day": "9999-12-31"}, "day", "day 9999-12-31 is not between 2000-01-01"),
    ({"day": "1999-12-31"}, "day", "day 1999-12-31 is not between 2000-01-01"),
]


def test_a_manual_attendance_mistake_names_the_field_and_stores_nothing(client: TestClient, engine: Engine) -> None:
    token = signed_in_as(client, engine, PERSONNEL)
    for changed, field, words in MANUAL_MISTAKES:
        answer = post(client, "/karyawan/manual", MANUAL | changed, token)
        mistaken(answer, field, words)
        assert 'value="Kabag Umum"' in answer.text or field == "approved_by", "what was typed is kept"
    assert changes(engine) == NOTHING


def test_a_manual_clock_in_is_stored_audited_and_scored(client: TestClient, engine: Engine) -> None:
    token = signed_in_as(client, engine, PERSONNEL)
    assert day_of(client, BUDI, "2026-01-07")["first_in"] is None
    done = post(client, "/karyawan/manual", MANUAL, token)
    assert done.status_code == 303 and done.headers["location"] == "/karyawan?ok=manual"
    assert "Absen manual tersimpan" in client.get(done.headers["location"]).text
    assert changes(engine) == NOTHING | {"manual_entries": 1, "manual.add": 1}
    [record] = audit_records(client, BUDI, "manual.add")
    assert record["actor"] == ACTOR and record["reason"] == "Mesin pintu mati"
    assert record["detail"] == {"at": "2026-01-07T07:25:00", "punch": "in", "approved_by": "Kabag Umum"}
    assert day_of(client, BUDI, "2026-01-07")["first_in"] == "2026-01-07T07:25:00"


def test_mapping_an_unmatched_subject(client: TestClient, engine: Engine) -> None:
    unmatched_punches(client)
    token = signed_in_as(client, engine, PERSONNEL)
    assert day_of(client, CITRA, "2026-01-05")["first_in"] is None
    done = post(client, "/karyawan/pemetaan", MAPPING, token)
    assert done.status_code == 303 and done.headers["location"] == "/karyawan?ok=mapping"
    page = client.get(done.headers["location"])
    assert "Pemetaan tersimpan" in page.text and "zk_user_id/1009" not in page.text, "no longer unmatched"
    assert "Semua punch sudah dikenali" in page.text
    assert changes(engine) == NOTHING | {"subject_mappings": 1, "mapping.add": 1}
    [record] = audit_records(client, CITRA, "mapping.add")
    assert record["actor"] == ACTOR and record["detail"]["zk_user_id"] == "1009"
    assert day_of(client, CITRA, "2026-01-05")["first_in"] == "2026-01-05T07:20:00", "her punches are scored"
    twice = post(client, "/karyawan/pemetaan", MAPPING | {"nip": ANI}, token)  # e.g. from a page left open
    assert twice.status_code == 400 and 'data-problem="value"' in twice.text and "sudah dipetakan" in twice.text
    assert changes(engine) == NOTHING | {"subject_mappings": 1, "mapping.add": 1}


MAPPING_MISTAKES = [
    ({"nip": UNKNOWN}, "nip", "NIP ini tidak ada di daftar pegawai"),
    ({"nip": "abc"}, "nip", "isian tidak valid"),
    ({"nip": ""}, "nip", "wajib diisi"),
]
HIDDEN_MISTAKES = [  # fields a browser never lets anyone type in: named all the same
    ({"kind": "nip"}, "kind", "is not one of zk_user_id, card_uid"),
    ({"device_id": "pintu depan"}, "device_id", "isian tidak valid"),
    ({"kind": "card_uid", "value": "zz"}, "value", "isian tidak valid"),
]


def test_a_mapping_mistake_names_the_field_and_stores_nothing(client: TestClient, engine: Engine) -> None:
    unmatched_punches(client)
    token = signed_in_as(client, engine, PERSONNEL)
    for changed, field, words in MAPPING_MISTAKES:
        answer = post(client, "/karyawan/pemetaan", MAPPING | changed, token)
        mistaken(answer, field, words)
        assert "zk_user_id/1009" in answer.text, "the subject is still listed"
    for changed, field, words in HIDDEN_MISTAKES:
        answer = post(client, "/karyawan/pemetaan", MAPPING | changed, token)
        assert answer.status_code == 400 and f'data-problem="{field}"' in answer.text and words in answer.text
    assert changes(engine) == NOTHING


def test_overlong_or_missing_fields_are_refused_without_a_crash(client: TestClient, engine: Engine) -> None:
    token = signed_in_as(client, engine, PERSONNEL)
    huge = post(client, "/karyawan/cuti", LEAVE | {"reason": "x" * 5000}, token)
    assert huge.status_code == 400, "past the form's guard: refused before the page runs"
    assert "reason: terlalu panjang (paling banyak 2000 karakter)" in huge.text and "x" * 50 not in huge.text
    missing = post(client, "/karyawan/manual", {"nip": BUDI}, token)
    assert missing.status_code == 400 and 'data-problem="day"' in missing.text
    unit = client.post("/karyawan/cuti", params={"unit": "a\x00b"}, data=LEAVE | {"csrf_token": token})
    assert unit.status_code == 400 and "unit: berisi karakter kendali" in unit.text
    assert changes(engine) == NOTHING


def test_what_was_typed_is_shown_as_text_never_as_markup(client: TestClient, engine: Engine) -> None:
    token = signed_in_as(client, engine, PERSONNEL)
    answer = post(client, "/karyawan/cuti", LEAVE | {"nip": UNKNOWN, "reason": '"><script>alert(1)</script>'}, token)
    assert answer.status_code == 400 and "<script>alert(1)" not in answer.text
    assert 'value="&#34;&gt;&lt;script&gt;alert(1)&lt;/script&gt;"' in answer.text


def test_a_mistake_in_english(client: TestClient, engine: Engine) -> None:
    token = signed_in_as(client, engine, ADMIN)
    client.get("/karyawan", params={"lang": "en"})  # remembered in a cookie
    answer = post(client, "/karyawan/cuti", LEAVE | {"nip": UNKNOWN}, token)
    assert answer.status_code == 400 and "this NIP is not in the registry" in answer.text
    assert "Nothing was saved." in answer.text
    done = post(client, "/karyawan/cuti", LEAVE, token)
    assert done.status_code == 303
    [record] = audit_records(client, ANI, "leave.add")
    assert record["actor"] == "user:admin.bkd"
