"""The "Karyawan" page's forms checked with the store's own rules: the entry, or which field is wrong.

The rules are those of the CSV imports and the API (``entries.leave_from_row``, ``nip_problem``,
``text_field``, the API's ``ManualAttendance`` and ``Mapping`` models); this module only says which
form field a problem belongs to, so the page can mark it. No I/O: the caller gives the NIPs the
registry knows, the rule profile's leave codes and the offices' date (it bounds the days).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from datetime import date, datetime, time
from typing import TypeVar

from pydantic import ValidationError

from ekinerja.store.api_registry import ManualAttendance
from ekinerja.store.api_registry import Mapping as MappingModel
from ekinerja.store.csv_input import RowProblem, parse_date, text_field
from ekinerja.store.entries import (
    LeaveEntry,
    ManualEntry,
    day_problem,
    leave_day,
    leave_from_row,
    manual_last_day,
)
from ekinerja.store.registry import nip_problem

T = TypeVar("T")
M = TypeVar("M")

LEAVE_FIELDS = ("nip", "code", "first_day", "last_day", "reason", "approved_by")
MANUAL_FIELDS = ("nip", "day", "time", "punch", "reason", "approved_by")
MAPPING_FIELDS = ("gateway_id", "device_id", "kind", "value", "nip")
SUBJECT_KINDS = ("zk_user_id", "card_uid")
REASON_MAX, APPROVER_MAX = 500, 100  # the columns' sizes, as the CSV imports check them


class FormProblem(ValueError):
    """A form field is wrong: ``key`` says how in the visitor's language, ``detail`` in the store's words."""

    def __init__(self, field: str, key: str, detail: str = "") -> None:
        super().__init__(f"{field}: {detail or key}")
        self.field = field
        self.key = key
        self.detail = detail


def leave_entry(values: Mapping[str, str], codes: Collection[str], known: Collection[str], today: date) -> LeaveEntry:
    """The leave entry a form asks for, checked field by field as the leave CSV is (``today``: the offices' date)."""
    _required(values, LEAVE_FIELDS)
    row = {"nip": values["nip"], "code": values["code"], "start": values["first_day"], "end": values["last_day"],
           "reason": values["reason"], "approved_by": values["approved_by"]}  # fmt: skip
    _registered(values["nip"], known)
    if values["code"].upper() not in codes:
        raise FormProblem("code", "emp_not_a_code", ", ".join(sorted(codes)))
    _field("first_day", lambda: leave_day(row, "start", today))
    _field("last_day", lambda: leave_day(row, "end", today))
    _field("reason", lambda: text_field(row, "reason", REASON_MAX))
    _field("approved_by", lambda: text_field(row, "approved_by", APPROVER_MAX))
    return _field("last_day", lambda: leave_from_row(row, codes, today))  # left: end before start, too long


def manual_entry(form: Mapping[str, str], known: Collection[str], today: date) -> ManualEntry:
    """The manual clock-in or clock-out a form asks for, checked as ``POST /v1/manual-attendance`` does.

    ``today`` is the offices' date: the day may be at most the next one (``entries.add_manual``'s rule).
    """
    values = dict(form)
    _required(values, MANUAL_FIELDS)
    _registered(values["nip"], known)
    day = _field("day", lambda: _manual_day(values["day"], today))
    at = _field("time", lambda: _clock(values["time"]))
    _field("reason", lambda: text_field(values, "reason", REASON_MAX))
    _field("approved_by", lambda: text_field(values, "approved_by", APPROVER_MAX))
    assert day is not None
    fields: dict[str, object] = {name: values[name] for name in ("nip", "punch", "reason", "approved_by")}
    at_fields = {"at": "time", "": "time"}  # the model's one ``at`` (its offset check names no field) is the time
    model = _model(lambda: ManualAttendance.model_validate(fields | {"at": datetime.combine(day, at)}), at_fields)
    return ManualEntry(model.nip, model.at.replace(microsecond=0), model.punch, model.reason, model.approved_by)


def mapping(values: Mapping[str, str], known: Collection[str]) -> tuple[str, str, str, str, str]:
    """(gateway id, device id, subject kind, subject value, NIP) of a form mapping an unmatched subject."""
    _required(values, MAPPING_FIELDS)
    kind = values["kind"]
    if kind not in SUBJECT_KINDS:
        raise FormProblem("kind", "emp_invalid", f"{kind!r} is not one of {', '.join(SUBJECT_KINDS)}")
    fields = {name: values[name] for name in ("gateway_id", "device_id", "nip")}
    renamed = {"zk_user_id": "value", "card_uid": "value", "": "value"}
    model = _model(lambda: MappingModel.model_validate(fields | {kind: values["value"]}), renamed)
    _registered(model.nip, known)
    value = model.zk_user_id or model.card_uid
    assert value is not None
    return model.gateway_id, model.device_id, kind, value, model.nip


def _required(values: Mapping[str, str], names: tuple[str, ...]) -> None:
    """A problem for the first empty field, in the form's order (a browser's ``required`` can be bypassed)."""
    for name in names:
        if not values.get(name, "").strip():
            raise FormProblem(name, "emp_empty")


def _registered(nip: str, known: Collection[str]) -> None:
    problem = nip_problem(nip)
    if problem:
        raise FormProblem("nip", "emp_invalid", problem)
    if nip not in known:
        raise FormProblem("nip", "emp_unknown_nip")


def _field(name: str, check: Callable[[], T]) -> T:
    """``check()``'s value; its RowProblem as the field ``name``'s problem."""
    try:
        return check()
    except RowProblem as exc:
        raise FormProblem(name, "emp_invalid", str(exc)) from None


def _manual_day(value: str, today: date) -> date:
    day = parse_date({"day": value}, "day")
    assert day is not None
    problem = day_problem("day", day, manual_last_day(today))
    if problem:
        raise RowProblem(problem)
    return day


def _clock(value: str) -> time:
    try:
        return time.fromisoformat(value)
    except ValueError:
        raise RowProblem(f"time {value!r} is not a time as HH:MM") from None


def _model(build: Callable[[], M], renamed: Mapping[str, str]) -> M:
    """The API's model built by ``build``; its first error as the problem of the field it names."""
    try:
        return build()
    except ValidationError as exc:
        error = exc.errors()[0]
        name = str(error["loc"][0]) if error["loc"] else ""
        raise FormProblem(renamed.get(name, name), "emp_invalid", str(error["msg"])) from None
