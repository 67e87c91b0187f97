"""The "Karyawan" page: the registry, punches no one is mapped to yet, and leave and manual attendance.

Everyone who signs in sees the registry (a head of unit their own unit, read only). Admins and the
personnel section also get the forms: map an unmatched subject to an employee, enter leave, enter a
manual clock-in or clock-out. A form posts with the session's CSRF token; it is checked with the
store's own rules, stored and audited as the CLI and the API do (actor ``user:<username>``, next to
their ``cli:<login>`` and client ids), and answered with a redirect back here (Post/Redirect/Get).
A mistake shows the form again (400) with its values and a message naming the field.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import Form, Query, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.exc import IntegrityError

from ekinerja.store import entries, sessions
from ekinerja.store.api_deps import Unit
from ekinerja.store.csv_input import CsvRejected
from ekinerja.store.dashboard.employee_forms import FormProblem, leave_entry, manual_entry, mapping
from ekinerja.store.dashboard.pages import Route
from ekinerja.store.dashboard.web import editor, now, page, signed_in, state, unit_for, units_choice, words
from ekinerja.store.mappings import add_mapping
from ekinerja.store.punch_input import Unmatched, unmatched
from ekinerja.store.registry import list_employees
from ekinerja.store.sessions import Session

SOURCE = "dashboard"
"""What the audit log's leave records name as their source (the CLI names the file, the API the client)."""
FIELD_MAX = 2000
"""A guard on every field (FastAPI answers 422 past it); the real limits are the store's, with a clear message."""
CONFIRMATIONS = ("leave", "leave_known", "manual", "mapping")

Field = Annotated[str, Form(max_length=FIELD_MAX)]


def actor(session: Session) -> str:
    """Who made a change, for the audit log: the dashboard user, told apart from API clients and the CLI."""
    return f"user:{session.user.username}"


def employees_page(
    request: Request, unit: Unit = None, ok: Annotated[str | None, Query(max_length=20)] = None
) -> Response:
    """The registry of one unit or all, and for editors the unmatched subjects and the forms."""
    session = signed_in(request)
    return render(request, session, unit_for(session, unit), ok=ok if ok in CONFIRMATIONS else None)


def render(request: Request, session: Session, unit: str | None, status: int = 200, **context: Any) -> Response:
    """The Karyawan page for ``unit``, with the context of a form just sent (if any)."""
    store = state(request)
    zone = store.office.zone
    staff = list_employees(store.engine, unit)
    editing = session.user.edits
    found: list[tuple[Unmatched, datetime, datetime]] = []
    if editing:  # unmatched subjects belong to no unit yet: only who may map them sees them
        with store.engine.connect() as conn:
            found = [(u, _local(u.first_seen, zone), _local(u.last_seen, zone)) for u in unmatched(conn)]
    context = {
        "problem": None,
        "form": None,
        "values": {},
        "ok": None,
        "imported": None,
        "import_problems": [],
    } | context
    today = store.office.now().date()
    days = {"earliest": entries.EARLIEST_DAY, "leave_last": entries.leave_last_day(today),
            "manual_last": entries.manual_last_day(today)}  # fmt: skip
    return page(request, "employees.html", status, session=session, page="employees", staff=staff, unit=unit,
                units_choice=units_choice(request, session), editing=editing, unmatched=found,
                everyone=list_employees(store.engine) if editing else [], codes=_codes(request),
                today=today, days=days, **context)  # fmt: skip


def _local(instant: datetime, zone: ZoneInfo) -> datetime:
    """A stored instant (naive UTC) at the offices' wall clock."""
    return instant.replace(tzinfo=UTC).astimezone(zone).replace(tzinfo=None)


def _codes(request: Request) -> list[tuple[str, str]]:
    """The rule profile's leave and duty codes with their descriptions, as the leave CSV accepts them."""
    return sorted((code, rule.description) for code, rule in state(request).office.scorer.profile.leave.items())


def editor_session(request: Request, csrf_token: str) -> Session | Response:
    """The editor's session if the form carries its token; else a 403 page (a head is refused by ``editor``)."""
    session = editor(request)
    if not sessions.csrf_ok(session, csrf_token):
        return page(request, "message.html", 403, session=session, message=words(request)("form_expired"))
    return session


def _done(unit: str | None, what: str) -> Response:
    query = {"ok": what} | ({"unit": unit} if unit else {})
    return RedirectResponse(f"/karyawan?{urlencode(query)}", status_code=303, headers={"Cache-Control": "no-store"})


def _known(request: Request) -> set[str]:
    return {e.nip for e in list_employees(state(request).engine)}


def post_leave(
    request: Request, unit: Unit = None, csrf_token: Field = "", nip: Field = "", code: Field = "",
    first_day: Field = "", last_day: Field = "", reason: Field = "", approved_by: Field = "",
) -> Response:  # fmt: skip
    """Enter leave or duty for an employee over a range of days."""
    guard = editor_session(request, csrf_token)
    if isinstance(guard, Response):
        return guard
    values = _stripped(nip=nip, code=code.upper(), first_day=first_day, last_day=last_day, reason=reason,
                       approved_by=approved_by)  # fmt: skip
    today = state(request).office.now().date()
    try:
        entry = leave_entry(values, [c for c, _ in _codes(request)], _known(request), today)
        added = entries.add_leave(state(request).engine, [(1, entry)], SOURCE, actor(guard), now(), today)
    except FormProblem as problem:
        return _again(request, guard, unit, "leave", values, problem)
    except CsvRejected as exc:  # the registry was checked above: what is left is an overlap with stored leave
        overlap = FormProblem("first_day", "emp_overlaps", _store_words(exc))
        return _again(request, guard, unit, "leave", values, overlap)
    return _done(unit, "leave" if added else "leave_known")


def post_manual(
    request: Request, unit: Unit = None, csrf_token: Field = "", nip: Field = "", day: Field = "",
    time: Field = "", punch: Field = "", reason: Field = "", approved_by: Field = "",
) -> Response:  # fmt: skip
    """Enter a clock-in or clock-out by hand, at the office's wall clock."""
    guard = editor_session(request, csrf_token)
    if isinstance(guard, Response):
        return guard
    values = _stripped(nip=nip, day=day, time=time, punch=punch, reason=reason, approved_by=approved_by)
    today = state(request).office.now().date()
    try:
        entry = manual_entry(values, _known(request), today)
        entries.add_manual(state(request).engine, entry, actor(guard), now(), today)
    except FormProblem as problem:
        return _again(request, guard, unit, "manual", values, problem)
    except CsvRejected as exc:  # only an unknown NIP, removed since the check above (the day was checked too)
        return _again(request, guard, unit, "manual", values, FormProblem("nip", "emp_unknown_nip", _store_words(exc)))
    return _done(unit, "manual")


def post_mapping(
    request: Request, unit: Unit = None, csrf_token: Field = "", gateway_id: Field = "", device_id: Field = "",
    kind: Field = "", value: Field = "", nip: Field = "",
) -> Response:  # fmt: skip
    """Map a subject no one is mapped to (a device's user id or a card) to an employee."""
    guard = editor_session(request, csrf_token)
    if isinstance(guard, Response):
        return guard
    values = _stripped(gateway_id=gateway_id, device_id=device_id, kind=kind, value=value, nip=nip)
    try:
        where = mapping(values, _known(request))
        add_mapping(state(request).engine, *where, actor(guard))
    except FormProblem as problem:
        return _again(request, guard, unit, "mapping", values, problem)
    except CsvRejected as exc:
        return _again(request, guard, unit, "mapping", values, FormProblem("nip", "emp_unknown_nip", _store_words(exc)))
    except IntegrityError:  # someone mapped it a moment before: the unique index refused the second
        return _again(request, guard, unit, "mapping", values, FormProblem("value", "emp_already_mapped"))
    return _done(unit, "mapping")


def _again(
    request: Request, session: Session, unit: str | None, form: str, values: dict[str, str], problem: FormProblem
) -> Response:
    """The page again, 400, the form holding what was typed and saying which field is wrong."""
    return render(request, session, unit_for(session, unit), 400, form=form, values=values, problem=problem)


def _stripped(**values: str) -> dict[str, str]:
    return {name: value.strip() for name, value in values.items()}


def _store_words(exc: CsvRejected) -> str:
    """The store's reasons without the CSV line number (a form has no lines)."""
    return "; ".join(p.removeprefix("line 1: ") for p in exc.problems)


ROUTES: list[Route] = [
    ("/karyawan", employees_page, "GET"),
    ("/karyawan/cuti", post_leave, "POST"),
    ("/karyawan/manual", post_manual, "POST"),
    ("/karyawan/pemetaan", post_mapping, "POST"),
]
