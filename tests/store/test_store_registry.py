"""The registry's import on every backend: moves and swaps of device ids, hostile files, report CSV."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine

from ekinerja.store.csv_input import CsvRejected
from ekinerja.store.registry import import_employees, list_employees, nip_problem
from ekinerja.store.reports import Report

ANI, BUDI, CITRA = "198503142010012003", "199001012015031001", "197912312005022002"
HEADER = "nip,name,unit,zk_user_id,card_uid,active_from\n"


def load(engine: Engine, text: str) -> None:
    import_employees(engine, HEADER + text, "test.csv", "test", datetime.now(UTC).replace(tzinfo=None))


def ids(engine: Engine) -> dict[str, tuple[str | None, str | None]]:
    return {e.nip: (e.zk_user_id, e.card_uid) for e in list_employees(engine)}


def test_device_ids_swapped_or_moved_within_one_file(engine: Engine) -> None:
    load(engine, f"{ANI},Ani,Umum,1001,04A1B2C3,2025-01-01\n{BUDI},Budi,Umum,1002,,2025-01-01\n")
    load(engine, f"{ANI},Ani,Umum,1002,,2025-01-01\n{BUDI},Budi,Umum,1001,04a1b2c3,2025-01-01\n")
    assert ids(engine) == {ANI: ("1002", None), BUDI: ("1001", "04A1B2C3")}
    load(engine, f"{BUDI},Budi,Umum,1003,,2025-01-01\n{CITRA},Citra,Aset,1001,,2025-01-01\n")  # moved to a new row
    assert ids(engine) == {ANI: ("1002", None), BUDI: ("1003", None), CITRA: ("1001", None)}


@pytest.mark.parametrize(
    ("rows", "problem"),
    [
        (f"{ANI},Ani\x00,Umum,1001,,2025-01-01\n", "line 2: name holds a control character"),
        (f'{ANI},"Ani,Umum,1001,,2025-01-01\n' + "x" * 140_000 + "\n", "not readable as CSV"),
        (f"{ANI},Ani,Umum,1001,,0001-01-01\n", "line 2: active_from 0001-01-01 is before 1950"),
        ("203001012050011001,Ani,Umum,1001,,2025-01-01\n", "born 2030 or appointed 2050, which cannot be"),
    ],
)
def test_hostile_files_are_refused_and_change_nothing(engine: Engine, rows: str, problem: str) -> None:
    with pytest.raises(CsvRejected) as refused:
        load(engine, rows)
    assert problem in str(refused.value)
    assert ids(engine) == {}


def test_a_valid_nip() -> None:
    assert nip_problem(ANI) is None
    assert nip_problem("19850314201001200") == "NIP '19850314201001200' is not 18 digits"


def test_csv_of_rows_with_different_columns_keeps_every_column() -> None:
    report = Report({}, "employees", [{"nip": ANI, "crossed": {}}, {"nip": BUDI, "crossed": {"3": "2026-01-06"}}])
    assert report.as_csv().splitlines() == ["nip,crossed_3", f"{ANI},", f"{BUDI},2026-01-06"]
