"""Registry endpoints: employees, device-scoped mappings, leave, manual attendance, unmatched punches.

Changes need a client with ``can_write = true``; every change keeps the client's id. CSV bodies use
the same columns as the command-line imports, and a file with a bad row changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, Self, TypeVar

from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy.exc import IntegrityError
from starlette.concurrency import run_in_threadpool

from ekinerja.store import audit, entries, registry
from ekinerja.store.api_deps import PRINTABLE, Reader, State, Unit, Writer
from ekinerja.store.csv_input import CsvRejected
from ekinerja.store.mappings import add_mapping
from ekinerja.store.punch_input import unmatched
from ekinerja.sync.contract import CardUid, Identifier

router = APIRouter(prefix="/v1", tags=["registry"])

T = TypeVar("T")
MAX_CSV_BYTES = 8 * 1024 * 1024


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


async def _csv_body(request: Request) -> str:
    body = await request.body()
    if len(body) > MAX_CSV_BYTES:
        raise HTTPException(413, f"a CSV body is at most {MAX_CSV_BYTES} bytes")
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        raise HTTPException(422, "the CSV body is not UTF-8 text (save it from the spreadsheet as CSV UTF-8)") from None


async def _apply(action: Callable[[], T]) -> T:
    try:
        return await run_in_threadpool(action)
    except CsvRejected as exc:
        raise HTTPException(422, {"message": "nothing was applied", "problems": exc.problems}) from None


@router.get("/employees")
def get_employees(state: State, _client: Reader, unit: Unit = None) -> dict[str, Any]:
    """The registry, by NIP."""
    return {"employees": [e.values() for e in registry.list_employees(state.engine, unit)]}


@router.post("/employees", openapi_extra={"requestBody": {"content": {"text/csv": {"schema": {"type": "string"}}}}})
async def post_employees(request: Request, state: State, client: Writer) -> dict[str, Any]:
    """Add or update employees from CSV: nip,name,unit,zk_user_id,card_uid,active_from[,six_day,tpp_base,active_to]."""
    text = await _csv_body(request)
    source = f"upload by {client.id}"
    summary = await _apply(lambda: registry.import_employees(state.engine, text, source, client.id, _now()))
    return summary.__dict__


@router.post("/leave", openapi_extra={"requestBody": {"content": {"text/csv": {"schema": {"type": "string"}}}}})
async def post_leave(request: Request, state: State, client: Writer) -> dict[str, Any]:
    """Add leave and duty from CSV: nip,code,start,end,reason,approved_by."""
    text = await _csv_body(request)
    codes = state.office.scorer.profile.leave.keys()
    source = f"upload by {client.id}"
    today = state.office.now().date()
    added = await _apply(lambda: entries.import_leave(state.engine, text, source, codes, client.id, _now(), today))
    return {"added": added}


class ManualAttendance(BaseModel):
    """A clock-in or clock-out entered by hand, because the device failed or could not read the person."""

    model_config = ConfigDict(extra="forbid")

    nip: str = Field(pattern=r"^\d{18}$", description="the employee's NIP")
    at: datetime = Field(
        description="the office's wall-clock time, e.g. 2026-01-05T07:25:00 (no offset); "
        "from 2000-01-01 up to tomorrow at the offices"
    )
    punch: Literal["in", "out"] = Field(description="in or out")
    reason: str = Field(min_length=3, max_length=500, pattern=PRINTABLE, description="why the device has no record")
    approved_by: str = Field(min_length=2, max_length=100, pattern=PRINTABLE, description="who approved it")

    @model_validator(mode="after")
    def _naive(self) -> Self:
        if self.at.tzinfo is not None:
            raise ValueError("at is the office's wall-clock time: give it without an offset")
        return self

    @field_validator("at")
    @classmethod
    def _not_before_2000(cls, at: datetime) -> datetime:
        # The later bound needs the offices' date, which only the store knows: entries.add_manual checks it.
        if at.date() < entries.EARLIEST_DAY:
            raise ValueError(f"at {at.date()} is before {entries.EARLIEST_DAY}: give a day from then up to tomorrow")
        return at


@router.post("/manual-attendance")
async def post_manual(entry: ManualAttendance, state: State, client: Writer) -> dict[str, Any]:
    """Record a manual clock-in or clock-out with its reason and approver."""
    at = entry.at.replace(microsecond=0)
    manual = entries.ManualEntry(entry.nip, at, entry.punch, entry.reason, entry.approved_by)
    today = state.office.now().date()
    await _apply(lambda: entries.add_manual(state.engine, manual, client.id, _now(), today))
    return {"stored": True}


class Mapping(BaseModel):
    """This device's subject belongs to this employee (wins over the registry's own ids)."""

    model_config = ConfigDict(extra="forbid")

    gateway_id: Identifier = Field(description="the gateway's id")
    device_id: Identifier = Field(description="the device's id in that gateway's config")
    zk_user_id: str | None = Field(default=None, min_length=1, max_length=24, pattern=r"^[ -~]+$")
    card_uid: CardUid | None = None
    nip: str = Field(pattern=r"^\d{18}$", description="the employee's NIP")

    @model_validator(mode="after")
    def _one_subject(self) -> Self:
        if (self.zk_user_id is None) == (self.card_uid is None):
            raise ValueError("give exactly one of zk_user_id or card_uid")
        return self


@router.post("/mappings")
async def post_mapping(mapping: Mapping, state: State, client: Writer) -> dict[str, Any]:
    """Map a device's user id or card to an employee; their punches are scored from then on."""
    kind, value = ("zk_user_id", mapping.zk_user_id) if mapping.zk_user_id else ("card_uid", mapping.card_uid)
    assert value is not None
    where = (mapping.gateway_id, mapping.device_id)
    try:
        await _apply(lambda: add_mapping(state.engine, *where, kind, value, mapping.nip, client.id))
    except IntegrityError:
        raise HTTPException(409, f"{kind} {value} of {where[0]}/{where[1]} is already mapped") from None
    return {"stored": True}


@router.get("/unmatched")
def get_unmatched(state: State, _client: Reader) -> dict[str, Any]:
    """Subjects seen on devices that no employee or mapping names yet, most punches first."""
    with state.engine.connect() as conn:
        found = unmatched(conn)
    return {
        "subjects": [
            u.__dict__ | {"first_seen": u.first_seen.isoformat() + "Z", "last_seen": u.last_seen.isoformat() + "Z"}
            for u in found
        ]
    }


@router.get("/audit")
def get_audit(
    state: State,
    _client: Writer,
    after: Annotated[int, Query(ge=0, le=2**63 - 1, description="last seq already read; 0 from the start")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000, description="most records per page")] = 200,
    target: Annotated[
        str | None, Query(max_length=200, pattern=PRINTABLE, description="only changes to this NIP or gateway")
    ] = None,
) -> dict[str, Any]:
    """Who changed what, when and why, in order (registry, leave, manual attendance, mappings, tokens).

    Read-only: the log is written by the changes themselves and no endpoint alters it.
    """
    with state.engine.connect() as conn:
        records = audit.read(conn, after, limit, target)
    return {"records": records, "next_after": records[-1]["seq"] if records else after}
