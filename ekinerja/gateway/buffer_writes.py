"""Writes to the buffer, and what a failing disk (full, read-only, failing) makes of them.

A write the disk refuses raises BufferWriteFailed, whose message says what fails, where and what to
do. The write guard keeps that failure (for the status page, alerts and metrics) until a write
succeeds again, logs it when it starts and again every REPEAT_LOG_S, and then calls ``on_writable``.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from ekinerja.errors import OperatorError

log = logging.getLogger("ekinerja.gateway.buffer")

_DISK_ERRORS = {8, 10, 13, 14}  # SQLITE_READONLY, SQLITE_IOERR, SQLITE_FULL, SQLITE_CANTOPEN (primary codes)
_SQLITE_FULL = 13
ROOM_NEEDED = 1 << 20
"""Less free space than this in the buffer's folder makes a failed write a full disk, whatever SQLite said."""
REPEAT_LOG_S = 900.0
"""A buffer that still cannot be written is logged again this often."""


class BufferWriteFailed(OperatorError):
    """A write to the buffer failed for want of room or a failing disk: nothing of it was written.

    An OperatorError: a one-off command (``gateway sync``, ``backlog --requeue-rejected``) prints
    its message and exits 1; the running gateway carries on and reads the terminals again later.
    """


@dataclass(frozen=True)
class WriteFailure:
    """Writes to the buffer failing since ``since`` (UTC), and why, in words for the operator."""

    since: datetime
    disk_full: bool
    folder: str
    cause: str  # "the disk is full at FILE (12 KB free in FOLDER)", or SQLite's error at FILE
    failures: int = 1

    @property
    def todo(self) -> str:
        """What the operator should do about it, naming the folder."""
        act = "free space in" if self.disk_full else "check the disk (space, permissions, read-only, failing) of"
        return f"{act} {self.folder} (gateway.data_dir)"

    @property
    def message(self) -> str:
        """The whole story: what fails, why, what happens meanwhile, what to do."""
        return (
            f"cannot store punches in the buffer: {self.cause}. Punches stay on the terminals and are read "
            f"again once the buffer can be written; card taps are refused meanwhile. To do: {self.todo}"
        )


def write_failure_of(path: Path, error: BaseException | None, previous: WriteFailure | None) -> WriteFailure | None:
    """What SQLite's ``error`` means for the operator; None when it is not the disk's fault (a bug, a lock)."""
    code = getattr(error, "sqlite_errorcode", None)
    if code is None or code & 0xFF not in _DISK_ERRORS:
        return None
    free = _free_bytes(path.parent)
    full = code & 0xFF == _SQLITE_FULL or (free is not None and free < ROOM_NEEDED)
    where = f"{path} ({_size(free)} free in {path.parent})" if free is not None else str(path)
    said = f"{error} ({getattr(error, 'sqlite_errorname', code)})"
    cause = f"the disk is full at {where}" if full else f"{said} at {where}"
    if previous is None:
        return WriteFailure(datetime.now(UTC), full, str(path.parent), cause)
    return replace(previous, disk_full=full, cause=cause, failures=previous.failures + 1)


def _free_bytes(folder: Path) -> int | None:
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def _size(count: int | None) -> str:
    value = float(count or 0)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}"
        value /= 1024
    return f"{value:.0f} GB"


class WriteGuard:
    """The buffer's writes: one at a time, and whether the disk lets them through."""

    def __init__(self, path: Path, engine: Engine) -> None:
        self.path, self.engine = path, engine
        # SQLite allows one writer; serializing writers here avoids "database is locked" retries.
        self._lock = threading.Lock()
        self.failure: WriteFailure | None = None
        self.on_writable: Callable[[], None] = lambda: None
        self._logged_at = 0.0

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        """A write transaction; a write the disk refuses becomes BufferWriteFailed."""
        with self._lock:
            try:
                with self.engine.begin() as conn:
                    yield conn
            except DBAPIError as exc:
                failure = write_failure_of(self.path, exc.orig, self.failure)
                if failure is None:
                    raise
                self._failed(failure)
                raise BufferWriteFailed(failure.message) from None
            recovered, self.failure = self.failure, None
        if recovered is not None:
            self._recovered(recovered)

    def _failed(self, failure: WriteFailure) -> None:
        """Keep the failure for the status page; log it when it starts, and again every REPEAT_LOG_S."""
        first = self.failure is None
        self.failure = failure
        if first or time.monotonic() - self._logged_at >= REPEAT_LOG_S:
            self._logged_at = time.monotonic()
            since = "" if first else f" (since {failure.since:%Y-%m-%d %H:%M:%S} UTC, {failure.failures} failed writes)"
            log.error("%s%s", failure.message, since)

    def _recovered(self, failure: WriteFailure) -> None:
        log.warning(
            "the punch buffer %s can be written again (%d write(s) failed since %s UTC); "
            "what the terminals kept meanwhile is read again",
            self.path,
            failure.failures,
            f"{failure.since:%Y-%m-%d %H:%M:%S}",
        )
        try:
            self.on_writable()
        except Exception:  # the write is committed: a hook's failure must not turn it into an error
            log.exception("the buffer can be written again, but waking the terminals failed; read at their next poll")
