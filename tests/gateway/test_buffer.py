"""The punch buffer: durable, idempotent, ordered, acknowledged per event."""

from __future__ import annotations

import sqlite3
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ekinerja.drivers.zkteco import DeviceCursor, QuarantinedRecord
from ekinerja.gateway.buffer import Buffer, BufferUnusable
from ekinerja.sync.contract import PunchEvent

from stack import make_events


def test_append_is_idempotent_and_pending_keeps_order(tmp_path: Path) -> None:
    buffer = Buffer(tmp_path / "b.sqlite3")
    first = make_events(5, users=7)
    assert buffer.append(first) == 5
    assert buffer.append(first[2:] + make_events(2, first=5, users=7)) == 2
    pending = buffer.pending(100)
    assert [p.event_id for p in pending] == [e.event_id for e in first + make_events(2, first=5, users=7)]
    assert [p.event for p in pending[:5]] == first
    assert PunchEvent.model_validate_json(pending[0].event.model_dump_json()) == first[0]


def test_only_acknowledged_events_leave(tmp_path: Path) -> None:
    buffer = Buffer(tmp_path / "b.sqlite3")
    evs = make_events(6, users=7)
    buffer.append(evs)
    assert buffer.acknowledge([evs[0].event_id, evs[2].event_id, "f" * 64]) == 2
    assert buffer.reject({evs[1].event_id: "future time"}) == 1
    assert [p.event_id for p in buffer.pending(10)] == [e.event_id for e in evs[3:]]
    assert [p.event_id for p in buffer.pending(2)] == [evs[3].event_id, evs[4].event_id]
    backlog = buffer.backlog()
    assert (backlog.pending, backlog.acked, backlog.rejected) == (3, 2, 1)
    assert backlog.pending_by_device == {"pintu": 3}
    assert buffer.append(evs[:1]) == 0, "an acknowledged event read again is not pending again"


def test_cursor_and_quarantine_commit_with_the_events(tmp_path: Path) -> None:
    path = tmp_path / "b.sqlite3"
    buffer = Buffer(path)
    assert buffer.cursor("pintu") == DeviceCursor()
    bad = QuarantinedRecord("pintu", "SN-pintu", 4, b"\x01\x02", "impossible date")
    cursor = DeviceCursor("SN-pintu", 10, datetime(2026, 1, 5, 7, 9))
    buffer.append(make_events(3, users=7), device_id="pintu", cursor=cursor, quarantined=[bad])
    buffer.append([], device_id="pintu", cursor=cursor, quarantined=[bad])
    buffer.close()

    reopened = Buffer(path)
    assert reopened.cursor("pintu") == cursor
    assert reopened.quarantined() == [bad]
    assert reopened.backlog().quarantined == 1
    assert reopened.backlog().pending == 3


def test_database_is_wal_with_full_sync(tmp_path: Path) -> None:
    buffer = Buffer(tmp_path / "b.sqlite3")
    with buffer.engine.connect() as conn:
        raw = conn.connection.dbapi_connection
        assert raw is not None
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert raw.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert sqlite3.connect(tmp_path / "b.sqlite3").execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_unusable_folder_or_file_is_a_clear_operator_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the data folder should be")
    with pytest.raises(BufferUnusable, match=r"cannot create the buffer folder .*not-a-folder.*gateway\.data_dir"):
        Buffer(blocker / "buffer.sqlite3")
    garbage = tmp_path / "buffer.sqlite3"
    garbage.write_bytes(b"this is not a database" * 100)
    with pytest.raises(BufferUnusable, match=r"cannot be opened .*do not delete it"):
        Buffer(garbage)
    assert garbage.read_bytes() == b"this is not a database" * 100, "the damaged file was changed"


def test_many_openers_of_a_new_buffer_do_not_race(tmp_path: Path) -> None:
    # `gateway backlog` may open the buffer while `gateway run` creates it.
    path = tmp_path / "new.sqlite3"
    start = threading.Barrier(6)
    errors: list[BaseException] = []

    def open_it() -> None:
        start.wait()
        try:
            Buffer(path).close()
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=open_it) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_prune_removes_only_old_acknowledged_events(tmp_path: Path) -> None:
    buffer = Buffer(tmp_path / "b.sqlite3")
    evs = make_events(6, users=7)
    buffer.append(evs)
    buffer.acknowledge([e.event_id for e in evs[:4]])
    buffer.reject({evs[4].event_id: "future"})
    assert buffer.prune_acknowledged(datetime.now(UTC) - timedelta(hours=1)) == 0
    assert buffer.prune_acknowledged(datetime.now(UTC) + timedelta(seconds=1)) == 4
    backlog = buffer.backlog()
    assert (backlog.acked, backlog.rejected, backlog.pending) == (0, 1, 1)
    assert buffer.append(evs[:4]) == 4, "a pruned punch read again is buffered again (the store dedups it)"
