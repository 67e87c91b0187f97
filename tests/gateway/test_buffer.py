"""The punch buffer: durable, idempotent, ordered, acknowledged per event."""

from __future__ import annotations

import sqlite3
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from ekinerja.drivers.zkteco import DeviceCursor, QuarantinedRecord
from ekinerja.gateway.buffer import LAYOUT_VERSION, Buffer, BufferUnusable, events, reads
from ekinerja.sync.contract import DeviceRead, PunchEvent

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
    seq = {p.event_id: p.seq for p in buffer.pending(10)}
    assert buffer.acknowledge([seq[evs[0].event_id], seq[evs[2].event_id], 999]) == 2
    assert buffer.reject({seq[evs[1].event_id]: "future time"}) == 1
    assert buffer.acknowledge([seq[evs[1].event_id]]) == 0, "a rejected event is not acknowledged later"
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
    with pytest.raises(BufferUnusable, match=r"cannot be opened: it is damaged .*do not delete it"):
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
    pending = buffer.pending(10)
    buffer.acknowledge([p.seq for p in pending[:4]])
    buffer.reject({pending[4].seq: "future"})
    assert buffer.prune_acknowledged(datetime.now(UTC) - timedelta(hours=1)) == 0
    assert buffer.prune_acknowledged(datetime.now(UTC) + timedelta(seconds=1)) == 4
    backlog = buffer.backlog()
    assert (backlog.acked, backlog.rejected, backlog.pending) == (0, 1, 1)
    assert buffer.append(evs[:4]) == 4, "a pruned punch read again is buffered again (the store dedups it)"


def test_a_driver_read_is_stored_as_it_is_and_read_again_adds_nothing(tmp_path: Path) -> None:
    buffer = Buffer(tmp_path / "b.sqlite3")
    read = DeviceRead.group(make_events(50, users=9))[0]
    assert buffer.append(read) == 50
    assert buffer.append(read) == 0, "the same punches read again"
    assert [p.event for p in buffer.pending(100)] == list(read)
    with buffer.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(reads)).scalar_one() == 1, "no empty read is kept"


def test_prune_drops_reads_whose_events_are_all_gone(tmp_path: Path) -> None:
    buffer = Buffer(tmp_path / "b.sqlite3")
    buffer.append(make_events(3, device="a"))
    buffer.append(make_events(3, device="b"))
    buffer.acknowledge([p.seq for p in buffer.pending(10) if p.event.device_id == "a"])
    assert buffer.prune_acknowledged(datetime.now(UTC) + timedelta(seconds=1)) == 3
    with buffer.engine.connect() as conn:
        assert conn.execute(select(reads.c.device_id)).scalars().all() == ["b"]
    assert buffer.backlog().pending_by_device == {"b": 3}


def test_a_row_damaged_on_disk_is_set_aside_and_the_rest_still_leaves(tmp_path: Path) -> None:
    buffer = Buffer(tmp_path / "b.sqlite3")
    evs = make_events(4)
    buffer.append(evs)
    with buffer.engine.begin() as conn:
        conn.execute(events.update().where(events.c.seq == 2).values(device_time="2026-13-45T99:00:00"))
    assert [p.event for p in buffer.pending(10)] == [evs[0], evs[2], evs[3]]
    (damaged,) = buffer.rejected()
    assert damaged.seq == 2 and damaged.reason.startswith("damaged in the gateway's buffer (ValueError")
    assert buffer.backlog().rejected == 1


def test_a_buffer_of_an_older_layout_is_refused_and_left_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as old:  # the first layout: one wide events table keyed by event_id
        old.execute("PRAGMA journal_mode=WAL")
        old.execute("CREATE TABLE events (seq INTEGER PRIMARY KEY, event_id VARCHAR(64) UNIQUE, status TEXT)")
        old.execute("INSERT INTO events (event_id, status) VALUES ('ab', 'pending')")
    before = path.read_bytes()
    with pytest.raises(BufferUnusable, match=r"another version of the gateway .*backlog"):
        Buffer(path)
    assert path.read_bytes() == before
    with sqlite3.connect(path) as newer:
        newer.execute("DROP TABLE events")
        newer.execute(f"PRAGMA user_version = {LAYOUT_VERSION + 1}")
    with pytest.raises(BufferUnusable, match=rf"layout {LAYOUT_VERSION + 1}, this one reads {LAYOUT_VERSION}"):
        Buffer(path)
