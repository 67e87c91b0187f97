"""Backing up and restoring the store's database: `ekinerja store backup|restore` on SQLite, and the
PostgreSQL and MariaDB commands docs/deploy.md gives, read from it and run as written against real servers.

Each restored database is served by a store, and its feed is compared with the feed backed up.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path

import httpx
from docs_commands import commands

from servers import MariaDBServer, PostgresServer, unique_name
from stack import make_events, read_whole_feed, store_server

TOKEN = "backup-store-token"
CLI = [sys.executable, "-m", "ekinerja.cli", "store"]

# The commands as docs/deploy.md shows them ("Backup and restore"), read from it; the test fills the variables.
[PG_DUMP] = commands("deploy.md", "pg-dump")
[PG_RESTORE] = commands("deploy.md", "pg-restore")
[MARIADB_DUMP] = commands("deploy.md", "mariadb-dump")
[MARIADB_LOAD] = commands("deploy.md", "mariadb-load")


def store_command(tmp_path: Path, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "store.toml"
    config.write_text(f'[store]\ndatabase_url = "{url}"\n', encoding="utf-8")
    return subprocess.run([*CLI, *args, "--config", str(config)], capture_output=True, text=True, timeout=120,
                          check=False, cwd=tmp_path)  # fmt: skip


def push(base: str, first: int, n: int = 500) -> None:
    from ekinerja.sync.contract import Batch

    for start in range(first, first + n, 250):
        batch = Batch(gateway_id="opd-1", sent_at=datetime.now(UTC), events=make_events(250, first=start))
        headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
        answer = httpx.post(f"{base}/v1/punches", content=batch.model_dump_json(), timeout=30, headers=headers)
        assert answer.status_code == 200, answer.text


def feed(url: str) -> list[str]:
    with store_server(url, {"opd-1": TOKEN}) as base:
        return [item.event.event_id for item in read_whole_feed(base)]


def shell(command: str, env: dict[str, str]) -> None:
    done = subprocess.run(["bash", "-c", command], env=os.environ | env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"{command}\n{done.stderr}"


def test_sqlite_backup_while_serving_then_restore(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/store.db"
    with store_server(url, {"opd-1": TOKEN}) as base:
        push(base, 0)
        writer = threading.Thread(target=push, args=(base, 500, 1500))  # batches arrive during the backup
        writer.start()
        backed = store_command(tmp_path, url, "backup", str(tmp_path / "store-backup.db"))
        writer.join()
        assert backed.returncode == 0 and "backed up the store's database" in backed.stdout, backed.stderr
        refused = store_command(tmp_path, url, "restore", str(tmp_path / "store-backup.db"))
        assert refused.returncode == 1 and "open in a running program: stop it first" in refused.stderr
        everything = [item.event.event_id for item in read_whole_feed(base)]
    copy = feed(f"sqlite:///{tmp_path}/store-backup.db")
    assert len(everything) == 2000 and 500 <= len(copy) <= 2000 and len(copy) % 250 == 0, "whole batches only"
    assert copy == everything[: len(copy)], "the feed as it was at one moment"
    restored = store_command(tmp_path, url, "restore", str(tmp_path / "store-backup.db"))
    assert restored.returncode == 0 and "kept, unchanged, in" in restored.stdout, restored.stderr
    assert feed(url) == copy
    assert len(list(tmp_path.glob("replaced-*/store.db"))) == 1


def test_backup_of_a_server_database_names_its_tool(tmp_path: Path) -> None:
    for url, tool in (("postgresql+psycopg://u:secret-pw@127.0.0.1:9/x", "pg_dump"),
                      ("mysql+pymysql://u:secret-pw@127.0.0.1:9/x", "mariadb-dump --single-transaction")):  # fmt: skip
        done = store_command(tmp_path, url, "backup", str(tmp_path / "b.db"))
        assert done.returncode == 1 and tool in done.stderr and "docs/deploy.md" in done.stderr
        assert "secret-pw" not in done.stderr + done.stdout and not (tmp_path / "b.db").exists()
    wrong = store_command(tmp_path, f"sqlite:///{tmp_path}/store.db", "restore", str(tmp_path / "missing.db"))
    assert wrong.returncode == 1 and "does not exist. Nothing was changed" in wrong.stderr


def test_postgresql_dump_and_restore_as_the_docs_show(tmp_path: Path, postgres_server: PostgresServer) -> None:
    name, copy = unique_name("backup"), unique_name("restored")
    url = postgres_server.create_database(name)
    with store_server(url, {"opd-1": TOKEN}) as base:
        push(base, 0, 1000)
        writer = threading.Thread(target=push, args=(base, 1000, 1000))
        writer.start()
        env = {"DB_HOST": "127.0.0.1", "DB_PORT": str(postgres_server.port), "DB_USER": "ekinerja",
               "PGPASSWORD": "ekinerja-test-pw", "BACKUP": str(tmp_path / "ekinerja.dump")}  # fmt: skip
        shell(PG_DUMP, env | {"DB_NAME": name})
        writer.join()
    restored_url = postgres_server.create_database(copy)
    shell(PG_RESTORE, env | {"DB_NAME": copy})
    before, after = feed(url), feed(restored_url)
    assert 1000 <= len(after) <= 2000 and after == before[: len(after)]


def test_mariadb_dump_and_load_as_the_docs_show(tmp_path: Path, mariadb_server: MariaDBServer) -> None:
    name, copy = unique_name("backup"), unique_name("restored")
    url = mariadb_server.create_database(name)
    with store_server(url, {"opd-1": TOKEN}) as base:
        push(base, 0, 1000)
        writer = threading.Thread(target=push, args=(base, 1000, 1000))
        writer.start()
        env = {"DB_HOST": "127.0.0.1", "DB_PORT": str(mariadb_server.port), "DB_USER": "ekinerja",
               "MYSQL_PWD": "ekinerja-test-pw", "BACKUP": str(tmp_path / "ekinerja.sql")}  # fmt: skip
        shell(MARIADB_DUMP, env | {"DB_NAME": name})
        writer.join()
    restored_url = mariadb_server.create_database(copy)
    shell(MARIADB_LOAD, env | {"DB_NAME": copy})
    before, after = feed(url), feed(restored_url)
    assert 1000 <= len(after) <= 2000 and after == before[: len(after)]
