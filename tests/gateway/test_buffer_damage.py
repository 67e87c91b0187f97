"""A damaged buffer file at start: found by SQLite's own check (and a look at its write-ahead log),
refused with one line that says what to do, left byte for byte as it was, and recoverable.

Every buffer here is a real SQLite file written by the gateway's own code; the damage is done to
the bytes on disk, as a failing card or a power cut would.
"""

from __future__ import annotations

import random
import sqlite3
import struct
import subprocess
import sys
from collections.abc import Iterator
from contextlib import closing, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ekinerja.config.gateway import GatewayConfig
from ekinerja.config.loader import load_model
from ekinerja.drivers.sim.zk_device import ZkDevice
from ekinerja.drivers.sim.zk_server import ZkSimulator
from ekinerja.drivers.zkteco import DeviceCursor
from ekinerja.gateway.buffer import Buffer
from ekinerja.gateway.buffer_damage import find_damage, recovery_marker, wal_damage
from ekinerja.gateway.buffer_open import BufferDamaged, RecoveryInterrupted
from ekinerja.gateway.buffer_recover import TableCopy, _fresh, _new_folder, _readable_rows, _rebuild, _write_marker
from ekinerja.gateway.service import BUFFER_FILE, GatewayService
from ekinerja.sqlite_files import in_use

from stack import device_punches, feed_punches, make_events, read_whole_feed, store_server, write_gateway_toml

TOKEN = "damage-test-token"
TESTS = Path(__file__).resolve().parents[1]
PAGE = 4096


def stopped_buffer(folder: Path, events: int = 6000) -> Path:
    """A buffer of ``events`` punches (a third acknowledged) written and closed as a stopped gateway leaves it."""
    path = folder / "data" / BUFFER_FILE
    buffer = Buffer(path)
    for first in range(0, events, 1000):
        cursor = DeviceCursor("SN-pintu", first + 1000, datetime(2026, 1, 5, 7, 0))
        buffer.append(make_events(1000, first=first, users=40), device_id="pintu", cursor=cursor)
    buffer.acknowledge([p.seq for p in buffer.pending(events // 3)])
    buffer.close()
    assert not Path(f"{path}-wal").exists(), "a stopped gateway leaves everything in the file itself"
    return path


CRASH = """
import os, shutil, sys
sys.path.insert(0, {tests!r})
from pathlib import Path
from ekinerja.gateway.buffer import Buffer
from stack import make_events
path = Path({path!r})
buffer = Buffer(path)
for i in range(6):
    if i == 5:  # the log's index as it was before the last transaction, for a test that tears that one
        shutil.copyfile(f"{{path}}-shm", f"{{path}}-shm.before-last")
    buffer.append(make_events(150, first={first} + i * 150, users=40))
if {restart!r}:
    with buffer.engine.connect() as conn:  # everything copied into the file: the next write starts the log over
        conn.exec_driver_sql("PRAGMA wal_checkpoint(FULL)").all()
    buffer.append(make_events(1, first={first} + 900, users=40))
os._exit(0)  # as kill -9 or a crash would: no checkpoint, the write-ahead log and its index stay
"""
FRAME = 24 + PAGE


def crashed_buffer(folder: Path, *, restart: bool = False) -> Path:
    """A stopped buffer to which a process appended six transactions, then died: they are only in its -wal.

    ``restart``: the process then copied the log into the file and wrote one more punch, which
    starts the log over: the newer frames overwrite the first of the older ones, the rest stay.
    """
    path = stopped_buffer(folder, events=3000)
    code = CRASH.format(tests=str(TESTS), path=str(path), first=3000, restart=restart)
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    assert Path(f"{path}-wal").stat().st_size > 20 * PAGE and Path(f"{path}-shm").exists()
    return path


def wal_frames(wal: Path) -> list[tuple[bool, bool]]:
    """(of this generation of the log, a commit) for each whole frame of ``wal``."""
    data = wal.read_bytes()
    salts = data[16:24]
    frames = range((len(data) - 32) // FRAME)
    return [(data[32 + i * FRAME + 8 : 32 + i * FRAME + 16] == salts, _commit(data, i)) for i in frames]


def _commit(data: bytes, frame: int) -> bool:
    return struct.unpack_from(">I", data, 32 + frame * FRAME + 4)[0] != 0


def files_of(path: Path) -> dict[str, bytes]:
    """The buffer file and its write-ahead log, as bytes."""
    return {p.name: p.read_bytes() for p in (path, Path(f"{path}-wal")) if p.exists()}


def garble(path: Path, offsets: list[int], size: int = PAGE) -> None:
    """Random bytes (always the same) over ``size`` bytes at each offset."""
    data, rng = bytearray(path.read_bytes()), random.Random(7)
    for at in offsets:
        data[at : at + size] = rng.randbytes(size)
    path.write_bytes(bytes(data))


def leaf_pages(path: Path, table: str) -> list[int]:
    """The numbers (from 1) of the table's leaf pages, read without touching the file (immutable)."""
    with sqlite3.connect(f"{path.as_uri()}?immutable=1", uri=True) as conn:
        query = "SELECT pageno FROM dbstat WHERE name = ? AND pagetype = 'leaf' ORDER BY pageno"
        return [row[0] for row in conn.execute(query, (table,))]


def cut_in_half(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def garbage_over_pages(path: Path) -> None:
    events = leaf_pages(path, "events")
    index = leaf_pages(path, "ux_events_punch")
    garble(path, [(n - 1) * PAGE for n in (events[5], events[6], events[40], index[3])])


def not_a_database(path: Path) -> None:
    path.write_bytes(b"this is not a database" * 400)


@pytest.mark.parametrize("damage", [cut_in_half, garbage_over_pages, not_a_database])
def test_a_damaged_buffer_is_refused_and_left_as_it_was(tmp_path: Path, damage: object) -> None:
    path = stopped_buffer(tmp_path)
    damage(path)  # type: ignore[operator]
    before = files_of(path)
    with pytest.raises(BufferDamaged) as refused:
        Buffer(path)
    message = str(refused.value)
    assert f"the punch buffer {path} cannot be opened: it is damaged (" in message
    assert "do not delete it" in message and "ekinerja gateway recover --config" in message
    assert "\n" not in message
    assert files_of(path) == before, "the damaged file was changed"


@pytest.mark.parametrize(
    ("damage", "found"),
    [
        # Garbage over frames of the second transaction: SQLite would drop the four after it too.
        (lambda wal: garble(wal, [32 + 12 * (24 + PAGE)], 3 * PAGE), "lie beyond a damaged part"),
        (cut_in_half, "is cut short"),  # what its index (-shm) says was committed is no longer there
        (lambda wal: garble(wal, [0], 32), "header of its write-ahead log"),
    ],
    ids=["garbage-in-the-middle", "cut-short", "header"],
)
def test_damage_in_the_write_ahead_log_is_found(tmp_path: Path, damage: object, found: str) -> None:
    # SQLite itself drops every frame after the first bad one without a word: committed punches too.
    path = crashed_buffer(tmp_path)
    damage(Path(f"{path}-wal"))  # type: ignore[operator]
    before = files_of(path)
    with pytest.raises(BufferDamaged, match=f"{BUFFER_FILE}-wal") as refused:
        Buffer(path)
    assert found in str(refused.value)
    assert files_of(path) == before, "the damaged file or its write-ahead log was changed"


def test_a_crash_is_no_false_alarm(tmp_path: Path) -> None:
    path = crashed_buffer(tmp_path)
    wal = Path(f"{path}-wal")
    frames = wal_frames(wal)
    assert frames[-1] == (True, True), "the log should end with the last transaction's commit"
    # A crash while writing the commit of the last transaction: that frame torn, never acknowledged,
    # and the log's index still as it was before that transaction.
    garble(wal, [32 + (len(frames) - 1) * FRAME], FRAME)
    Path(f"{path}-shm.before-last").replace(f"{path}-shm")
    buffer = Buffer(path)
    counts = buffer.backlog()
    buffer.close()
    assert counts.pending + counts.acked == 3750, "a committed punch of the log was lost"


def test_a_log_started_over_is_no_false_alarm(tmp_path: Path) -> None:
    # After a checkpoint SQLite writes the log again from its start: frames of the older generation
    # stay after the newer ones, intact but not SQLite's any more.
    path = crashed_buffer(tmp_path, restart=True)
    frames = wal_frames(Path(f"{path}-wal"))
    newer = [i for i, (current, _) in enumerate(frames) if current]
    assert newer == list(range(len(newer))) and 0 < len(newer) < len(frames), "the log did not start over"
    assert any(commit for current, commit in frames[len(newer) :] if not current)
    buffer = Buffer(path)
    counts = buffer.backlog()
    buffer.close()
    assert counts.pending + counts.acked == 3901


HOLD = """
import sqlite3, sys
conn = sqlite3.connect({path!r})
conn.execute("SELECT count(*) FROM device_keys").fetchall()
print("open", flush=True)
sys.stdin.read()  # until the test closes it
"""


@contextmanager
def held_by_another_process(path: Path) -> Iterator[None]:
    """Another process with the buffer open (as `gateway run` beside `gateway backlog`) for the block."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD.format(path=str(path))], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "open\n"
        yield
    finally:
        holder.communicate(timeout=30)


def test_the_log_of_a_buffer_open_elsewhere_is_not_judged(tmp_path: Path) -> None:
    # What a look at a log being written can catch: frames in the middle that do not match their
    # checksums, committed ones after them. The process that has the buffer open took the log in
    # when it opened it; `gateway backlog` beside it must not call that damage.
    path = crashed_buffer(tmp_path)
    garble(Path(f"{path}-wal"), [32 + 12 * FRAME], 3 * PAGE)
    assert find_damage(path) is not None and not in_use(path)
    with held_by_another_process(path):
        assert in_use(path)
        assert find_damage(path) is None
        Buffer(path).close()
    buffer = Buffer(path)
    assert in_use(path), "this process holds it now"
    buffer.close()


WRITER = """
import os, sqlite3, sys
conn = sqlite3.connect({path!r}, isolation_level=None)
conn.execute("PRAGMA synchronous=OFF")  # commits as fast as can be: the most chances to be caught mid-write
conn.execute("PRAGMA wal_autocheckpoint=40")  # and the log started over every few dozen commits
print("writing", flush=True)
i = 0
while not os.path.exists({stop!r}):
    conn.execute("BEGIN")
    for j in range(i % 4 + 1):  # one to four pages
        row = (i + j) % 50
        conn.execute(
            "INSERT OR REPLACE INTO quarantine (id, fingerprint, device_id, record_index, raw, reason, created_at) "
            "VALUES (?, ?, 'pintu', ?, randomblob(3000), 'test', '2026-01-05 07:00:00')",
            (row + 1, f"fp-{{row}}", i),
        )
    conn.execute("COMMIT")
    i += 1
print(i, flush=True)
"""


def test_a_buffer_being_written_is_no_false_alarm(tmp_path: Path) -> None:
    path = tmp_path / BUFFER_FILE
    Buffer(path).close()
    stop = tmp_path / "stop"
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER.format(path=str(path), stop=str(stop))], stdout=subprocess.PIPE, text=True
    )
    alarms: list[str] = []
    try:
        assert writer.stdout is not None and writer.stdout.readline() == "writing\n"
        for _ in range(1500):
            # As `gateway backlog` finds it, and the log's own look, which does not ask who holds it.
            alarms += filter(None, (find_damage(path), wal_damage(path)))
    finally:
        stop.touch()
        out, _ = writer.communicate(timeout=30)
    assert writer.returncode == 0 and int(out) > 100, "the writer did not write"
    assert alarms == [], f"{len(alarms)} false alarm(s), e.g. {alarms[0]}"


def ekinerja(*args: str) -> subprocess.CompletedProcess[str]:
    """The command line, as an operator runs it."""
    command = [sys.executable, "-m", "ekinerja.cli", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


LOST_TAPS = "card taps lost to the damage cannot be read again from any terminal"


def readable_rows(path: Path, table: str, rowids: range) -> set[tuple[object, ...]]:
    """The rows of ``table`` in the damaged buffer at ``path`` that SQLite reads by rowid, one query each.

    What a recovery can copy, and must. Read from a copy when there is a write-ahead log (reading
    it creates an index beside it), else from the file left as it is (immutable).
    """
    uri = f"{path.as_uri()}?immutable=1"
    if Path(f"{path}-wal").exists():
        probe = path.parent.parent / "probe"
        probe.mkdir()
        for name, data in files_of(path).items():
            (probe / name).write_bytes(data)
        uri = f"{(probe / path.name).as_uri()}?mode=ro"
    found = set()
    with closing(sqlite3.connect(uri, uri=True)) as conn:
        for rowid in rowids:
            try:
                row = conn.execute(f"SELECT * FROM {table} WHERE rowid = ?", (rowid,)).fetchone()
            except sqlite3.DatabaseError:
                continue
            if row is not None:
                found.add(tuple(row))
    return found


def rows_of(path: Path, table: str) -> set[tuple[object, ...]]:
    """Every row of ``table`` in the (sound) buffer at ``path``."""
    with closing(sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)) as conn:
        return {tuple(row) for row in conn.execute(f"SELECT * FROM {table}")}


def test_the_gateway_refuses_a_damaged_buffer_in_one_line_and_recover_rebuilds_it(tmp_path: Path) -> None:
    config = write_gateway_toml(tmp_path, "http://127.0.0.1:9", TOKEN, {})
    path = stopped_buffer(tmp_path)
    garbage_over_pages(path)
    damaged = path.read_bytes()
    for command in ("run", "backlog"):
        done = ekinerja("gateway", command, "--config", str(config))
        assert done.returncode == 1, done.stderr
        (line,) = done.stderr.strip().splitlines()  # one line, no traceback
        assert f"{path} cannot be opened: it is damaged (SQLite" in line and "do not delete it" in line
        assert f"`ekinerja gateway recover --config {config}`" in line and LOST_TAPS in line
        assert path.read_bytes() == damaged
    recovered = ekinerja("gateway", "recover", "--config", str(config))
    assert recovered.returncode == 0, recovered.stderr
    (kept,) = path.parent.glob("damaged-*")
    assert (kept / BUFFER_FILE).read_bytes() == damaged, "the damaged file was not kept as it was"
    assert f"kept, unchanged, in {kept}" in recovered.stdout and "unreadable part(s) stepped over" in recovered.stdout
    assert LOST_TAPS.capitalize() in recovered.stdout
    backlog = ekinerja("gateway", "backlog", "--config", str(config), "--json")
    assert backlog.returncode == 0, backlog.stderr
    readable = readable_rows(kept / BUFFER_FILE, "events", range(1, 6001))
    assert 0 < len(readable) < 6000
    assert rows_of(path, "events") == readable, "every row SQLite can read is kept, and only those"
    buffer = Buffer(path)
    counts = buffer.backlog()
    assert 0 < counts.acked <= 2000, "what the store acknowledged stays acknowledged"
    assert buffer.cursor("pintu").record_count == 0, "the cursor must be rewound: the terminal is read whole again"
    buffer.close()
    again = ekinerja("gateway", "recover", "--config", str(config))
    assert again.returncode == 0 and "is not damaged" in again.stdout


def test_recover_steps_over_a_row_it_cannot_read_at_once(tmp_path: Path) -> None:
    # Pruning leaves a gap in the rowids (20,000 here); the row after it keeps its rowid, but its
    # columns run on into a page whose link is damaged.
    path = tmp_path / "data" / BUFFER_FILE
    buffer = Buffer(path)
    for first in range(0, 24_000, 1000):
        buffer.append(make_events(1000, first=first, users=40))
    buffer.acknowledge(range(2001, 22_001))
    assert buffer.prune_acknowledged(datetime.now(UTC) + timedelta(days=1)) == 20_000
    buffer.reject({22_001: "refused: " + "x" * 12_000})  # a reason long enough to need pages of its own
    buffer.close()
    with closing(sqlite3.connect(f"{path.as_uri()}?immutable=1", uri=True)) as conn:
        query = "SELECT pageno FROM dbstat WHERE name = 'events' AND pagetype = 'overflow' ORDER BY path LIMIT 1"
        (page,) = conn.execute(query).fetchone()
    data = bytearray(path.read_bytes())
    data[(page - 1) * PAGE : (page - 1) * PAGE + 4] = b"\xff" * 4  # its link to the next page: nowhere
    path.write_bytes(bytes(data))
    readable = readable_rows(path, "events", range(1, 24_001))
    assert len(readable) == 3999 and 22_001 not in {row[0] for row in readable}
    fresh = _fresh(path)
    Buffer(fresh).close()
    copy = TableCopy("events")
    with closing(sqlite3.connect(f"{path.as_uri()}?immutable=1", uri=True)) as src:
        names = (
            "seq, read_id, device_key_id, subject, verify, punch, device_time, occurred_at, status, status_at, reason"
        )
        copied = {row for rows in _readable_rows(src, "events", names, copy) for row in rows}
    assert copy.skipped == 1, "the damaged row is one unreadable part, stepped over at once"
    assert copied == readable


def test_recover_refuses_a_buffer_open_in_another_program(tmp_path: Path) -> None:
    config = write_gateway_toml(tmp_path, "http://127.0.0.1:9", TOKEN, {})
    path = stopped_buffer(tmp_path)
    garbage_over_pages(path)
    before = files_of(path)
    with held_by_another_process(path):  # a gateway still running on it would go on writing it
        done = ekinerja("gateway", "recover", "--config", str(config))
    assert done.returncode == 1, done.stdout
    (line,) = done.stderr.strip().splitlines()
    assert f"{path} is open in another program" in line and "Nothing was changed" in line
    assert files_of(path) == before and not list(path.parent.glob("damaged-*"))


def test_an_interrupted_recovery_is_refused_then_finished(tmp_path: Path) -> None:
    config = write_gateway_toml(tmp_path, "http://127.0.0.1:9", TOKEN, {})
    path = crashed_buffer(tmp_path)
    garble(Path(f"{path}-wal"), [32 + 12 * FRAME], 3 * PAGE)
    before = files_of(path)
    # A recovery the power cut just after it had moved the write-ahead log aside, and nothing else.
    fresh = _fresh(path)
    _rebuild(path, fresh)
    kept = _new_folder(path)
    _write_marker(recovery_marker(path), kept)
    Path(f"{path}-wal").rename(kept / f"{BUFFER_FILE}-wal")
    with pytest.raises(RecoveryInterrupted):  # the file without its log must not be opened
        Buffer(path)
    done = ekinerja("gateway", "run", "--config", str(config))
    assert done.returncode == 1, done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert "a recovery of it was interrupted" in line and f"`ekinerja gateway recover --config {config}` again" in line
    finished = ekinerja("gateway", "recover", "--config", str(config))
    assert finished.returncode == 0, finished.stderr
    assert "finished the interrupted recovery" in finished.stdout and f"kept, unchanged, in {kept}" in finished.stdout
    assert files_of(kept / BUFFER_FILE) == before, "the damaged file and its log were not kept as they were"
    assert not recovery_marker(path).exists() and not fresh.exists()
    buffer = Buffer(path)
    counts = buffer.backlog()
    buffer.close()
    assert counts.pending + counts.acked >= 3000


def test_recover_says_in_one_line_why_it_cannot_check_the_buffer(tmp_path: Path) -> None:
    config = write_gateway_toml(tmp_path, "http://127.0.0.1:9", TOKEN, {})
    (tmp_path / "data" / BUFFER_FILE).mkdir(parents=True)  # not a file SQLite can open
    done = ekinerja("gateway", "recover", "--config", str(config))
    assert done.returncode == 1, done.stdout
    (line,) = done.stderr.strip().splitlines()  # no traceback
    assert f"cannot check the punch buffer {tmp_path / 'data' / BUFFER_FILE}" in line


def test_punches_lost_with_the_damage_come_back_from_the_terminal(tmp_path: Path) -> None:
    device = ZkDevice.generate(users=30, records=4000, serial="DAMAGE0001", seed=21)
    with ZkSimulator(device) as sim, store_server(f"sqlite:///{tmp_path}/store.db", {"opd-1": TOKEN}) as url:
        config = write_gateway_toml(tmp_path, url, TOKEN, {"pintu": (sim.port, "tcp")})
        service = GatewayService(load_model(config, GatewayConfig))
        assert service.pull_device("pintu") is not None  # read, not yet pushed: only the buffer has them
        service.close()
        path = tmp_path / "data" / BUFFER_FILE
        garbage_over_pages(path)
        assert ekinerja("gateway", "recover", "--config", str(config)).returncode == 0
        left = Buffer(path)
        assert left.backlog().pending < 4000, "the damage took some rows: the terminal must give them back"
        left.close()
        service = GatewayService(load_model(config, GatewayConfig))
        assert service.pull_device("pintu") is not None
        report = service.sync_once()
        service.close()
        assert report.error is None
        feed = read_whole_feed(url)
    assert feed_punches(feed) == device_punches(device) and len(feed) == 4000


def test_recover_keeps_a_damaged_write_ahead_log_as_it_was(tmp_path: Path) -> None:
    config = write_gateway_toml(tmp_path, "http://127.0.0.1:9", TOKEN, {})
    path = crashed_buffer(tmp_path)
    garble(Path(f"{path}-wal"), [32 + 12 * FRAME], 3 * PAGE)
    before = files_of(path)
    done = ekinerja("gateway", "recover", "--config", str(config))
    assert done.returncode == 0, done.stderr
    (kept,) = path.parent.glob("damaged-*")
    assert files_of(kept / BUFFER_FILE) == before, "the damaged file and its log were not kept as they were"
    readable = readable_rows(kept / BUFFER_FILE, "events", range(1, 3901))
    assert 3000 <= len(readable) < 3900
    assert rows_of(path, "events") == readable, "what SQLite can read of the log is kept"
    Buffer(path).close()  # opens: no damage left
