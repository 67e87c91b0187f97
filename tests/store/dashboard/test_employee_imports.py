"""Karyawan: the registry and leave imported from a CSV file uploaded by the personnel section; a bad file
is refused whole with every problem named by line, and changes nothing."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select
from test_employees_page import PERSONNEL, signed_in_as
from test_web import HEAD, client

from ekinerja.store import audit
from ekinerja.store.db import employees, leave_entries

from samples import ANI, CORE

__all__ = ["client"]  # the fixture, shared with test_web

NEW = "198807072012012001"
STAFF = f"nip,name,unit,zk_user_id,card_uid,active_from\n{NEW},Dewi Sartika,Bagian Umum,1010,,2026-01-01\n"
LEAVE = f"nip,code,start,end,reason,approved_by\n{ANI},CT,2026-01-05,2026-01-06,Cuti tahunan,Kabag Umum\n"


def upload(client: TestClient, path: str, name: str, body: bytes, token: str) -> Any:
    return client.post(path, files={"file": (name, body, "text/csv")}, data={"csrf_token": token})


def stored(engine: Engine) -> tuple[int, int, int]:
    """Employees, leave entries and audit records."""
    with engine.connect() as conn:
        counts = [conn.execute(select(func.count()).select_from(t)).scalar_one() for t in (employees, leave_entries)]
        return counts[0], counts[1], len(audit.read(conn, 0, 10_000))


def test_the_personnel_section_imports_employees_and_leave(client: TestClient, engine: Engine) -> None:
    token = signed_in_as(client, engine, PERSONNEL)
    assert 'action="/karyawan/impor-pegawai"' in client.get("/karyawan").text
    added = upload(client, "/karyawan/impor-pegawai", "pegawai.csv", ("\ufeff" + STAFF).encode(), token)  # BOM
    assert added.status_code == 200 and "1 ditambah, 0 diperbarui, 0 tidak berubah" in added.text
    assert f'data-nip="{NEW}"' in added.text
    leave = upload(client, "/karyawan/impor-cuti", "cuti.csv", LEAVE.encode(), token)
    assert leave.status_code == 200 and "1 catatan baru" in leave.text
    days = client.get("/v1/attendance/daily", params={"nip": ANI, "from": "2026-01-05", "to": "2026-01-06"},
                      headers=CORE).json()["days"]  # fmt: skip
    assert [d["leave"] for d in days] == ["CT", "CT"]
    with engine.connect() as conn:
        records = [r for r in audit.read(conn, 0, 1000) if r["target"] in (NEW, ANI) and r["actor"].startswith("user:")]
    assert [(r["action"], r["target"], r["actor"]) for r in records] == [
        ("employee.add", NEW, "user:kepeg.bkd"), ("leave.add", ANI, "user:kepeg.bkd"),
    ]  # fmt: skip


def test_a_bad_file_is_refused_whole_and_changes_nothing(client: TestClient, engine: Engine) -> None:
    token = signed_in_as(client, engine, PERSONNEL)
    before = stored(engine)
    bad_nip = STAFF + "12345,Salah,Bagian Umum,1011,,2026-01-01\n"
    for path, name, body, said in (
        ("/karyawan/impor-pegawai", "pegawai.csv", bad_nip.encode(), "line 3"),
        ("/karyawan/impor-pegawai", "pegawai.csv", b"nip,nama\n1,2\n", "missing column(s) name, unit"),
        ("/karyawan/impor-pegawai", "latin1.csv", "nip,name\n1,Müller\n".encode("latin-1"), "not UTF-8"),
        ("/karyawan/impor-cuti", "cuti.csv", LEAVE.replace("CT", "XX").encode(), "line 2"),
        ("/karyawan/impor-cuti", "cuti.csv", b"x" * (8 * 1024 * 1024 + 1), "larger than 8 MiB"),
    ):
        refused = upload(client, path, name, body, token)
        assert refused.status_code == 400 and "Berkas ditolak, tidak ada yang berubah" in refused.text, (name, said)
        assert said in refused.text, (name, refused.text[-2000:])
    assert stored(engine) == before


def test_imports_need_an_editor_and_the_session_token(client: TestClient, engine: Engine) -> None:
    token = signed_in_as(client, engine, PERSONNEL)
    before = stored(engine)
    assert upload(client, "/karyawan/impor-pegawai", "pegawai.csv", STAFF.encode(), "forged").status_code == 403
    assert upload(client, "/karyawan/impor-cuti", "cuti.csv", LEAVE.encode(), "").status_code == 403
    client.cookies.clear()
    head_token = signed_in_as(client, engine, HEAD)
    assert 'action="/karyawan/impor-pegawai"' not in client.get("/karyawan").text
    assert upload(client, "/karyawan/impor-pegawai", "pegawai.csv", STAFF.encode(), head_token).status_code == 403
    assert stored(engine)[:2] == before[:2] and token
