"""`ekinerja gateway backup|restore`: a consistent copy of the buffer while it is written, and putting one
back, after which the terminals give back what came since and the store ends up with every punch once."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
from contextlib import closing
from datetime import datetime, timedelta
from pathlib import Path

from ekinerja.drivers.sim.zk_device import ZkDevice
from ekinerja.drivers.sim.zk_server import ZkSimulator
from ekinerja.gateway.buffer import Buffer
from ekinerja.gateway.service import BUFFER_FILE

from stack import device_punches, feed_punches, make_events, read_whole_feed, store_server, write_gateway_toml

TOKEN = "backup-test-token"
CLI = [sys.executable, "-m", "ekinerja.cli"]


def gateway(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, "gateway", *args, "--config", str(config)], capture_output=True, text=True,
                          timeout=120, check=False)  # fmt: skip


def event_ids(path: Path) -> set[str]:
    """Each buffered punch as who and when (the sample terminals never punch one user twice a second)."""
    with closing(sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True)) as conn:
        return {row[0] for row in conn.execute("SELECT subject || ' ' || device_time FROM events")}


def files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def test_a_backup_taken_while_punches_are_written_is_one_moment_of_the_buffer(tmp_path: Path) -> None:
    config = write_gateway_toml(tmp_path, "http://127.0.0.1:9", TOKEN, {})
    path = tmp_path / "data" / BUFFER_FILE
    buffer = Buffer(path)
    buffer.append(make_events(2000))
    stop = threading.Event()

    def keep_writing() -> None:  # as a running gateway would, a transaction at a time
        first = 2000
        while not stop.is_set():
            buffer.append(make_events(50, first=first))
            first += 50

    writer = threading.Thread(target=keep_writing)
    writer.start()
    try:
        copies = [tmp_path / f"copy-{n}.sqlite3" for n in range(3)]
        for copy in copies:
            done = gateway(config, "backup", str(copy))
            assert done.returncode == 0 and f"to {copy}" in done.stdout, done.stderr
    finally:
        stop.set()
        writer.join()
    written = event_ids(path)
    sizes = []
    for copy in copies:
        with closing(sqlite3.connect(copy)) as conn:
            assert conn.execute("PRAGMA quick_check").fetchone() == ("ok",)
            assert conn.execute("PRAGMA journal_mode").fetchone() == ("delete",), "one self-contained file"
        kept = event_ids(copy)
        assert len(kept) >= 2000 and len(kept) % 50 == 0, "whole transactions only"
        assert kept <= written
        sizes.append(len(kept))
    assert sizes == sorted(sizes)
    buffer.close()


def test_restore_brings_back_every_punch_from_the_terminal_and_the_store_gets_each_once(tmp_path: Path) -> None:
    device = ZkDevice.generate(users=10, records=300, serial="BACKUP0001", seed=5)
    with ZkSimulator(device) as sim, store_server(f"sqlite:///{tmp_path}/store.db", {"opd-1": TOKEN}) as url:
        config = write_gateway_toml(tmp_path, url, TOKEN, {"pintu": (sim.port, "tcp")})
        assert gateway(config, "pull").returncode == 0
        backup = tmp_path / "buffer-backup.sqlite3"
        assert gateway(config, "backup", str(backup)).returncode == 0
        for n in range(40):  # punches after the backup, pulled and sent before the buffer is lost
            device.add_punch("1003", datetime(2026, 7, 1, 7, 30) + timedelta(minutes=n))
        assert gateway(config, "pull").returncode == 0
        assert gateway(config, "sync").returncode == 0
        data = tmp_path / "data"
        before = files(data)  # read first: closing a file drops this process's SQLite locks on it
        held = Buffer(data / BUFFER_FILE)  # a gateway still running: restore must refuse and change nothing
        held.backlog()
        refused = gateway(config, "restore", str(backup))
        assert refused.returncode == 1 and "open in a running program: stop it first" in refused.stderr
        held.close()
        assert files(data) == before
        restored = gateway(config, "restore", str(backup))
        assert restored.returncode == 0, restored.stderr
        kept = next(data.glob("replaced-*"))
        assert (kept / BUFFER_FILE).is_file() and "kept, unchanged, in" in restored.stdout
        assert len(event_ids(data / BUFFER_FILE)) == 300
        assert gateway(config, "pull").returncode == 0  # the terminal gives back the 40 since the backup
        assert len(event_ids(data / BUFFER_FILE)) == 340
        assert gateway(config, "sync").returncode == 0  # sent again: the store says duplicate for those it has
        feed = read_whole_feed(url)
    assert feed_punches(feed) == device_punches(device) and len(feed) == 340


def test_mistakes_are_named_and_change_nothing(tmp_path: Path) -> None:
    config = write_gateway_toml(tmp_path, "http://127.0.0.1:9", TOKEN, {})
    data = tmp_path / "data"
    buffer = Buffer(data / BUFFER_FILE)
    buffer.append(make_events(10))
    buffer.close()
    other = tmp_path / "other.sqlite3"
    with closing(sqlite3.connect(other)) as conn:
        conn.execute("CREATE TABLE punches (id INTEGER)")
    (tmp_path / "notes.txt").write_text("not a database\n" * 100)
    (tmp_path / "exists.sqlite3").write_text("keep me")
    before, kept_file = files(data), (tmp_path / "exists.sqlite3").read_bytes()
    for args, message in (
        (["backup", str(tmp_path / "exists.sqlite3")], "exists already: name a new file"),
        (["backup", str(tmp_path / "no-folder" / "b.sqlite3")], "is not a folder"),
        (["restore", str(tmp_path / "missing.sqlite3")], "does not exist. Nothing was changed"),
        (["restore", str(tmp_path / "notes.txt")], "is not a usable SQLite database"),
        (["restore", str(other)], "is not a backup of the punch buffer (no table cursors, events, reads)"),
    ):
        done = gateway(config, *args)
        assert done.returncode == 1 and message in done.stderr and "Traceback" not in done.stderr, (args, done.stderr)
        assert files(data) == before and (tmp_path / "exists.sqlite3").read_bytes() == kept_file, args
    (tmp_path / "empty").mkdir()
    empty = write_gateway_toml(tmp_path / "empty", "http://127.0.0.1:9", TOKEN, {})
    nothing = gateway(empty, "backup", str(tmp_path / "b.sqlite3"))
    assert nothing.returncode == 1 and "does not exist: nothing to back up" in nothing.stderr
