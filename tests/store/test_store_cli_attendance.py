"""``ekinerja store import-employees|import-leave|report`` as an operator runs them (real processes, SQLite)."""

from __future__ import annotations

import csv
import getpass
import io
import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from ekinerja.store.db import audit_log, make_engine
from ekinerja.store.ingest import ingest
from ekinerja.sync.contract import Batch, Punch, PunchEvent, Source, Subject, Verify

CLI = [sys.executable, "-m", "ekinerja.cli", "store"]
ANI, BUDI = "198503142010012003", "199001012015031001"


def run(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, timeout=120, cwd=cwd)


@pytest.fixture
def store(tmp_path: Path) -> Path:
    config = tmp_path / "store.toml"
    config.write_text(
        '[store]\ndatabase_url = "sqlite:///store.db"\nrules = "permentan-68-2012"\n'
        '[[gateways]]\nid = "opd-1"\ntoken = "gateway-token-1"\n',
        encoding="utf-8",
    )
    assert run("migrate", "--config", config, cwd=tmp_path).returncode == 0
    return config


def test_import_then_report(store: Path, tmp_path: Path) -> None:
    people = tmp_path / "pegawai.csv"
    people.write_text(
        "NIP;Name;Unit;zk_user_id;card_uid;active_from;jabatan\n"  # a spreadsheet's semicolons, an extra column
        f"{ANI};Ani Lestari;Bagian Umum;1001;;2025-01-01;Analis\n"
        f"{BUDI};Budi Santoso;Bagian Umum;1002;;2025-01-01;Pengelola\n",
        encoding="utf-8-sig",
    )
    done = run("import-employees", "--config", store, people, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "2 added, 0 updated, 0 unchanged" in done.stdout and "ignored column(s): jabatan" in done.stdout
    again = run("import-employees", "--config", store, people, cwd=tmp_path)
    assert "0 added, 0 updated, 2 unchanged" in again.stdout

    leave = tmp_path / "cuti.csv"
    leave.write_text(f"nip,code,start,end,reason,approved_by\n{BUDI},CS,2026-01-05,2026-01-06,sakit,Kasubbag TU\n")
    assert (
        "1 leave entry added" in run("import-leave", "--config", store, "--by", "operator", leave, cwd=tmp_path).stdout
    )

    event = PunchEvent.create(
        gateway_id="opd-1", device_id="pintu", device_serial="SN1", source=Source.ZK, verify=Verify.FINGERPRINT,
        subject=Subject(zk_user_id="1001"), punch=Punch.IN, device_time=datetime(2026, 1, 5, 8, 10),
        timezone="Asia/Jakarta", captured_at=datetime.now(UTC),
    )  # fmt: skip
    engine = make_engine(f"sqlite:///{tmp_path}/store.db")
    ingest(engine, Batch(gateway_id="opd-1", sent_at=datetime.now(UTC), events=[event]), datetime.now(UTC))
    with engine.connect() as conn:
        audited = [(r.actor, r.action, r.reason) for r in conn.execute(select(audit_log).order_by(audit_log.c.seq))]
    engine.dispose()
    me = f"cli:{getpass.getuser()}"
    assert audited == [(me, "employee.add", str(people))] * 2 + [("operator", "leave.add", "sakit")]

    daily = run("report", "daily", "--config", store, "--nip", ANI, "--from", "2026-01-05", "--to", "2026-01-06",
                cwd=tmp_path)  # fmt: skip
    days = json.loads(daily.stdout)["days"]
    # Permentan: 40 minutes late is TL2; no clock-out is PSW4; the 6th has no punch: TK.
    assert [(d["late_minutes"], d["tl"], d["psw"], d["tk"]) for d in days] == [(40, 2, 4, False), (None, 0, 0, True)]
    monthly = run("report", "monthly", "--config", store, "--month", "2026-01", "--format", "csv", cwd=tmp_path)
    rows = {r["nip"]: r for r in csv.DictReader(io.StringIO(monthly.stdout))}
    assert rows[BUDI]["leave_days"] == "2" and rows[ANI]["tl2"] == "1" and rows[ANI]["psw4"] == "1"
    discipline = run("report", "discipline", "--config", store, "--year", "2026", "--as-of", "2026-01-09",
                     cwd=tmp_path)  # fmt: skip
    standing = {r["nip"]: r for r in json.loads(discipline.stdout)["employees"]}
    assert standing[ANI]["tk_days"] == 5 and standing[ANI]["band"] == "4-6" and standing[BUDI]["tk_days"] == 4


def test_a_bad_file_is_refused_whole_with_exit_2(store: Path, tmp_path: Path) -> None:
    people = tmp_path / "pegawai.csv"
    people.write_text(
        "nip,name,unit,zk_user_id,card_uid,active_from\n"
        f"{ANI},Ani Lestari,Bagian Umum,1001,,2025-01-01\n"
        "198503142010013003,Gender Tiga,Bagian Umum,1002,,2025-01-01\n"
        f"{BUDI},Budi Santoso,Bagian Umum,1003,04A1B2,05/01/2025\n"
    )
    done = run("import-employees", "--config", store, people, cwd=tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "nothing was applied" in done.stderr
    assert "line 3: NIP 198503142010013003: the gender digit (15th) is 3, not 1 or 2" in done.stderr
    assert "line 4: card_uid '04A1B2' is not a 4-10 byte UID in hex" in done.stderr
    report = run("report", "monthly", "--config", store, "--month", "2026-01", cwd=tmp_path)
    assert json.loads(report.stdout)["employees"] == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["report", "daily", "--nip", ANI], "report daily needs --from, --to"),
        (["report", "monthly", "--unit", "Tidak Ada", "--month", "2026-01"], "no employee is in unit 'Tidak Ada'"),
        (["import-employees", "missing.csv"], "missing.csv: file not found"),
    ],
)
def test_operator_mistakes_exit_2_with_a_clear_message(
    store: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    done = run(*args[:2], "--config", store, *args[2:], cwd=tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr


def test_a_wrong_rule_profile_is_a_config_error(tmp_path: Path) -> None:
    config = tmp_path / "store.toml"
    config.write_text('[store]\ndatabase_url = "sqlite:///store.db"\nrules = "perma-2020"\n')
    run("migrate", "--config", config, cwd=tmp_path)
    done = run("report", "monthly", "--config", config, "--month", "2026-01", cwd=tmp_path)
    assert done.returncode == 2 and "perma-2020" in done.stderr and "perma-3-2020" in done.stderr


def test_leave_dated_far_ahead_is_refused_with_exit_2(store: Path, tmp_path: Path) -> None:
    people = tmp_path / "pegawai.csv"
    people.write_text(
        f"nip,name,unit,zk_user_id,card_uid,active_from\n{ANI},Ani Lestari,Bagian Umum,1001,,2025-01-01\n"
    )
    assert run("import-employees", "--config", store, people, cwd=tmp_path).returncode == 0
    leave = tmp_path / "cuti.csv"
    leave.write_text(f"nip,code,start,end,reason,approved_by\n{ANI},CT,9999-12-01,9999-12-31,cuti,Kasubbag TU\n")
    done = run("import-leave", "--config", store, leave, cwd=tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert (
        "line 2: start 9999-12-01 is not between 2000-01-01 and" in done.stderr and "nothing was applied" in done.stderr
    )
