"""The "Karyawan" page's forms checked with the store's rules (pure): the entry, or the field that is wrong."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from ekinerja.store.dashboard.employee_forms import FormProblem, leave_entry, manual_entry, mapping
from ekinerja.store.entries import LeaveEntry, ManualEntry

from samples import ANI, BUDI

CODES = ("CT", "CS", "DL")
KNOWN = {ANI, BUDI}
UNKNOWN = "198001012006041001"  # a valid NIP that is not in the registry

LEAVE = {"nip": ANI, "code": "CT", "first_day": "2026-01-05", "last_day": "2026-01-06", "reason": "Cuti tahunan",
         "approved_by": "Kabag Umum"}  # fmt: skip
MANUAL = {"nip": BUDI, "day": "2026-01-05", "time": "07:25", "punch": "in", "reason": "Mesin mati",
          "approved_by": "Kabag Umum"}  # fmt: skip
MAPPING = {"gateway_id": "opd-1", "device_id": "pintu", "kind": "zk_user_id", "value": "1009", "nip": ANI}
TODAY = date(2026, 1, 20)
"""The offices' date: leave may be entered up to 2027-12-31, manual attendance up to 2026-01-21."""


def test_a_good_leave_form_is_an_entry() -> None:
    entry = leave_entry(LEAVE | {"code": "ct"}, CODES, KNOWN, TODAY)
    assert entry == LeaveEntry(ANI, "CT", date(2026, 1, 5), date(2026, 1, 6), "Cuti tahunan", "Kabag Umum")
    ahead = leave_entry(LEAVE | {"first_day": "2027-12-01", "last_day": "2027-12-31"}, CODES, KNOWN, TODAY)
    assert ahead.last_day == date(2027, 12, 31), "leave is entered ahead, up to the end of next year"


@pytest.mark.parametrize(
    ("changed", "field", "key", "detail"),
    [
        ({"nip": ""}, "nip", "emp_empty", ""),
        ({"nip": "  "}, "nip", "emp_empty", ""),
        ({"reason": ""}, "reason", "emp_empty", ""),
        ({"approved_by": ""}, "approved_by", "emp_empty", ""),
        ({"nip": "12345"}, "nip", "emp_invalid", "not 18 digits"),
        ({"nip": "198513142010012003"}, "nip", "emp_invalid", "not a real birth date"),
        ({"nip": UNKNOWN}, "nip", "emp_unknown_nip", ""),
        ({"code": "XX"}, "code", "emp_not_a_code", "CS, CT, DL"),
        ({"first_day": "05-01-2026"}, "first_day", "emp_invalid", "not a date as YYYY-MM-DD"),
        ({"last_day": "2026-02-30"}, "last_day", "emp_invalid", "not a date as YYYY-MM-DD"),
        ({"last_day": "2026-01-04"}, "last_day", "emp_invalid", "end 2026-01-04 is before start 2026-01-05"),
        ({"first_day": "2022-12-01"}, "last_day", "emp_invalid", "longer than three years"),
        (
            {"first_day": "9999-12-01", "last_day": "9999-12-31"},
            "first_day",
            "emp_invalid",
            "start 9999-12-01 is not between 2000-01-01 and 2027-12-31",
        ),
        (
            {"last_day": "9999-12-31"},
            "last_day",
            "emp_invalid",
            "end 9999-12-31 is not between 2000-01-01 and 2027-12-31",
        ),
        ({"last_day": "2028-01-01"}, "last_day", "emp_invalid", "is not between 2000-01-01 and 2027-12-31"),
        ({"first_day": "1999-12-31"}, "first_day", "emp_invalid", "start 1999-12-31 is not between 2000-01-01"),
        ({"reason": "x" * 501}, "reason", "emp_invalid", "longer than 500 characters"),
        ({"reason": "cuti\x00"}, "reason", "emp_invalid", "control character"),
        ({"approved_by": "Kabag\nUmum"}, "approved_by", "emp_invalid", "control character"),
        ({"approved_by": "K" * 101}, "approved_by", "emp_invalid", "longer than 100 characters"),
    ],
)
def test_a_bad_leave_form_names_its_field(changed: dict[str, str], field: str, key: str, detail: str) -> None:
    with pytest.raises(FormProblem) as problem:
        leave_entry(LEAVE | changed, CODES, KNOWN, TODAY)
    assert (problem.value.field, problem.value.key) == (field, key)
    assert detail in problem.value.detail


def test_a_good_manual_form_is_an_entry() -> None:
    entry = manual_entry(MANUAL | {"time": "07:25:31.250"}, KNOWN, TODAY)
    assert entry == ManualEntry(BUDI, datetime(2026, 1, 5, 7, 25, 31), "in", "Mesin mati", "Kabag Umum")
    tomorrow = manual_entry(MANUAL | {"day": "2026-01-21", "time": "00:10"}, KNOWN, TODAY)
    assert tomorrow.at == datetime(2026, 1, 21, 0, 10), "up to the day after the offices' today"


@pytest.mark.parametrize(
    ("changed", "field", "key", "detail"),
    [
        ({"nip": ""}, "nip", "emp_empty", ""),
        ({"time": ""}, "time", "emp_empty", ""),
        ({"punch": ""}, "punch", "emp_empty", ""),
        ({"nip": "19900101201503100X"}, "nip", "emp_invalid", "not 18 digits"),
        ({"nip": UNKNOWN}, "nip", "emp_unknown_nip", ""),
        ({"day": "kemarin"}, "day", "emp_invalid", "not a date"),
        ({"day": "9999-12-31"}, "day", "emp_invalid", "day 9999-12-31 is not between 2000-01-01 and 2026-01-21"),
        ({"day": "2026-01-22"}, "day", "emp_invalid", "day 2026-01-22 is not between 2000-01-01 and 2026-01-21"),
        ({"day": "1999-12-31"}, "day", "emp_invalid", "day 1999-12-31 is not between 2000-01-01"),
        ({"time": "25:00"}, "time", "emp_invalid", "not a time as HH:MM"),
        ({"time": "07:25+07:00"}, "time", "emp_invalid", "without an offset"),  # the API's own rule
        ({"punch": "break_out"}, "punch", "emp_invalid", "'in' or 'out'"),
        ({"reason": "ab"}, "reason", "emp_invalid", "at least 3 characters"),  # the API's minimum
        ({"reason": "mesin\tmati"}, "reason", "emp_invalid", "control character"),
        ({"approved_by": "K"}, "approved_by", "emp_invalid", "at least 2 characters"),
        ({"approved_by": "K" * 101}, "approved_by", "emp_invalid", "longer than 100 characters"),
    ],
)
def test_a_bad_manual_form_names_its_field(changed: dict[str, str], field: str, key: str, detail: str) -> None:
    with pytest.raises(FormProblem) as problem:
        manual_entry(MANUAL | changed, KNOWN, TODAY)
    assert (problem.value.field, problem.value.key) == (field, key)
    assert detail in problem.value.detail


@pytest.mark.parametrize(
    ("changed", "expected"),
    [
        ({}, ("opd-1", "pintu", "zk_user_id", "1009", ANI)),
        ({"kind": "card_uid", "value": "04A1B2C3"}, ("opd-1", "pintu", "card_uid", "04A1B2C3", ANI)),
    ],
)
def test_a_good_mapping_form(changed: dict[str, str], expected: tuple[str, ...]) -> None:
    assert mapping(MAPPING | changed, KNOWN) == expected


@pytest.mark.parametrize(
    ("changed", "field", "key"),
    [
        ({"nip": ""}, "nip", "emp_empty"),
        ({"nip": "123"}, "nip", "emp_invalid"),
        ({"nip": UNKNOWN}, "nip", "emp_unknown_nip"),
        ({"kind": "nip"}, "kind", "emp_invalid"),
        ({"gateway_id": "opd 1"}, "gateway_id", "emp_invalid"),
        ({"device_id": "-pintu"}, "device_id", "emp_invalid"),
        ({"value": "x" * 25}, "value", "emp_invalid"),
        ({"kind": "card_uid", "value": "04a1"}, "value", "emp_invalid"),
    ],
)
def test_a_bad_mapping_form_names_its_field(changed: dict[str, str], field: str, key: str) -> None:
    with pytest.raises(FormProblem) as problem:
        mapping(MAPPING | changed, KNOWN)
    assert (problem.value.field, problem.value.key) == (field, key)
