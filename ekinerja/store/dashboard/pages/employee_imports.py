"""Karyawan: the registry and leave imported from a CSV file, for the personnel section, as
``ekinerja store import-employees|import-leave`` and the API import them: a file with a bad line is
refused whole, every problem named by line, and an applied one is audited as its uploader's."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import File, Form, Request, UploadFile
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from ekinerja.store import entries, registry
from ekinerja.store.api_deps import Unit
from ekinerja.store.api_registry import MAX_CSV_BYTES
from ekinerja.store.csv_input import CsvRejected
from ekinerja.store.dashboard.pages import Route
from ekinerja.store.dashboard.pages.employees import actor, editor_session, render
from ekinerja.store.dashboard.web import now, state, unit_for, words
from ekinerja.store.sessions import Session

Token = Annotated[str, Form(max_length=200)]
Upload = Annotated[UploadFile, File(description="a CSV file in the import format")]


async def _text(upload: UploadFile) -> tuple[str, str | None]:
    """The file's text, or a problem: too large, or not UTF-8."""
    body = await upload.read(MAX_CSV_BYTES + 1)
    if len(body) > MAX_CSV_BYTES:
        return "", f"{upload.filename}: larger than {MAX_CSV_BYTES // (1024 * 1024)} MiB"
    try:
        return body.decode("utf-8-sig"), None  # a spreadsheet's CSV may start with a byte-order mark
    except UnicodeDecodeError:
        return "", f"{upload.filename}: not UTF-8 text (save it from the spreadsheet as CSV UTF-8)"


Apply = Callable[[Request, Session, str, str], str]
"""Applies a file's text (source name given) for the signed-in editor; the confirmation to show."""


async def _import(request: Request, file: UploadFile, unit: str | None, csrf_token: str, apply: Apply) -> Response:
    """The Karyawan page after ``apply`` took the file, or with its problems (400) and nothing changed."""
    session = editor_session(request, csrf_token)
    if isinstance(session, Response):
        return session
    text, problem = await _text(file)
    source = file.filename or "upload.csv"
    try:
        if problem is not None:
            raise CsvRejected(source, [problem])
        told = await run_in_threadpool(apply, request, session, text, source)
    except CsvRejected as exc:
        return render(request, session, unit_for(session, unit), 400, import_problems=exc.problems)
    return render(request, session, unit_for(session, unit), imported=told)


def _employees(request: Request, session: Session, text: str, source: str) -> str:
    done = registry.import_employees(state(request).engine, text, source, actor(session), now())
    t = words(request)
    return t("emp_imported_employees", added=done.added, updated=done.updated, unchanged=done.unchanged)


def _leave(request: Request, session: Session, text: str, source: str) -> str:
    office = state(request).office
    codes = list(office.scorer.profile.leave)
    added = entries.import_leave(state(request).engine, text, source, codes, actor(session), now(), office.now().date())
    return words(request)("emp_imported_leave", added=added)


async def post_employees_file(request: Request, file: Upload, unit: Unit = None, csrf_token: Token = "") -> Response:
    """Add or update employees from a CSV file."""
    return await _import(request, file, unit, csrf_token, _employees)


async def post_leave_file(request: Request, file: Upload, unit: Unit = None, csrf_token: Token = "") -> Response:
    """Enter leave and duty from a CSV file."""
    return await _import(request, file, unit, csrf_token, _leave)


ROUTES: list[Route] = [
    ("/karyawan/impor-pegawai", post_employees_file, "POST"),
    ("/karyawan/impor-cuti", post_leave_file, "POST"),
]
