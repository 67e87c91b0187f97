"""Gateway tokens kept hashed in the database: made, rotated and revoked, on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from ekinerja.config.store import StoreConfig
from ekinerja.store import gateway_tokens
from ekinerja.store.app import create_app
from ekinerja.store.db import audit_log, make_engine
from ekinerja.store.db import gateway_tokens as token_table
from ekinerja.store.gateway_tokens import TokenError, add, digest, identify, revoke, rotate

from samples import batch_json, make_event, stored_count

NOW = datetime(2026, 11, 30, 3, 0)
ADMIN = "cli:root"


def valid_for(engine: Engine, token: str, at: datetime = NOW) -> str | None:
    with engine.connect() as conn:
        return identify(conn, token, at)


def test_add_rotate_revoke_and_each_is_audited(engine: Engine) -> None:
    first = add(engine, "opd-a", ADMIN, NOW)
    assert valid_for(engine, first) == "opd-a"
    assert valid_for(engine, first + "x") is None
    with pytest.raises(TokenError, match="already has a token: use `ekinerja store gateway rotate`"):
        add(engine, "opd-a", ADMIN, NOW)
    second = rotate(engine, "opd-a", ADMIN, NOW, timedelta(0))
    assert valid_for(engine, first) is None, "rotation without grace refuses the old token at once"
    assert valid_for(engine, second) == "opd-a"
    third = rotate(engine, "opd-a", "bkd-it", NOW, timedelta(hours=2))
    assert valid_for(engine, second) == valid_for(engine, third) == "opd-a", "both valid during the grace"
    later = NOW + timedelta(hours=2, seconds=1)
    assert valid_for(engine, second, later) is None and valid_for(engine, third, later) == "opd-a"
    assert revoke(engine, "opd-a", ADMIN, NOW, "laptop stolen") == 2
    assert valid_for(engine, second) is None and valid_for(engine, third) is None
    with pytest.raises(TokenError, match="no valid token to revoke"):
        revoke(engine, "opd-a", ADMIN, NOW, None)
    with pytest.raises(TokenError, match="no valid token: use `ekinerja store gateway add`"):
        rotate(engine, "opd-a", ADMIN, NOW, timedelta(0))
    with engine.connect() as conn:
        records = conn.execute(select(audit_log).order_by(audit_log.c.seq)).all()
        hashes = set(conn.execute(select(token_table.c.token_sha256)).scalars())
    assert [(r.actor, r.action, r.target) for r in records] == [
        (ADMIN, "gateway.add", "opd-a"),
        (ADMIN, "gateway.rotate", "opd-a"),
        ("bkd-it", "gateway.rotate", "opd-a"),
        (ADMIN, "gateway.revoke", "opd-a"),
    ]
    assert records[-1].reason == "laptop stolen"
    assert hashes == {digest(t) for t in (first, second, third)}, "only hashes are kept"
    for token in (first, second, third):
        assert not any(token in r.detail for r in records)


def test_listing_shows_each_gateway_with_a_valid_token(engine: Engine) -> None:
    add(engine, "opd-b", ADMIN, NOW)
    add(engine, "opd-a", ADMIN, NOW)
    rotate(engine, "opd-a", ADMIN, NOW, timedelta(hours=1))
    add(engine, "opd-c", ADMIN, NOW)
    revoke(engine, "opd-c", ADMIN, NOW, None)
    listed = gateway_tokens.listing(engine, NOW)
    graced = NOW + timedelta(hours=1)
    assert [(g.gateway_id, g.lasting, g.ending) for g in listed] == [("opd-a", 1, [graced]), ("opd-b", 1, [])]


@pytest.fixture
def client(engine: Engine) -> Iterator[TestClient]:
    with TestClient(create_app(StoreConfig(), engine)) as client:
        yield client


def test_a_database_token_pushes_until_revoked(client: TestClient, engine: Engine) -> None:
    now = datetime.now(UTC).replace(tzinfo=None)
    token = add(engine, "opd-a", ADMIN, now)
    auth = {"Authorization": f"Bearer {token}"}
    answer = client.post("/v1/punches", json=batch_json([make_event(1)]), headers=auth)
    assert answer.status_code == 200 and answer.json()["accepted"] == 1
    as_other = client.post("/v1/punches", json=batch_json([make_event(2, "opd-b")], "opd-b"), headers=auth)
    assert as_other.status_code == 403 and "belongs to gateway 'opd-a'" in as_other.json()["detail"]
    revoke(engine, "opd-a", ADMIN, now, None)
    refused = client.post("/v1/punches", json=batch_json([make_event(3)]), headers=auth)
    assert refused.status_code == 401 and refused.json()["detail"] == "unknown bearer token"
    assert client.get("/v1/cards", headers=auth).status_code == 401
    assert stored_count(engine) == 1


CLI = [sys.executable, "-m", "ekinerja.cli", "store"]


def run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"USER": "petugas-it"}
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=60, cwd=tmp_path, env=env)


def test_the_commands_as_an_operator_runs_them(tmp_path: Path) -> None:
    config = tmp_path / "store.toml"
    config.write_text(f'[store]\ndatabase_url = "sqlite:///{tmp_path}/store.db"\n', encoding="utf-8")
    assert run(tmp_path, "migrate", "--config", str(config)).returncode == 0
    made = run(tmp_path, "gateway", "add", "opd-kominfo", "--config", str(config))
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    assert len(token) >= 40 and "\n" not in token, "stdout is the token alone, for scripts"
    assert "shown only now" in made.stderr and "gateway.toml" in made.stderr
    twice = run(tmp_path, "gateway", "add", "opd-kominfo", "--config", str(config))
    assert twice.returncode == 2 and "already has a token" in twice.stderr and "Traceback" not in twice.stderr
    rotated = run(tmp_path, "gateway", "rotate", "opd-kominfo", "--grace-hours", "24", "--config", str(config))
    assert rotated.returncode == 0, rotated.stderr
    new = rotated.stdout.strip()
    listed = run(tmp_path, "gateway", "list", "--config", str(config))
    assert listed.stdout.startswith("opd-kominfo\t1 valid; 1 old until ")
    revoked = run(tmp_path, "gateway", "revoke", "opd-kominfo", "--reason", "diganti", "--config", str(config))
    assert revoked.returncode == 0 and "2 token(s) revoked" in revoked.stdout
    engine = make_engine(f"sqlite:///{tmp_path}/store.db")
    try:
        assert valid_for(engine, token, datetime.now(UTC).replace(tzinfo=None)) is None
        assert valid_for(engine, new, datetime.now(UTC).replace(tzinfo=None)) is None
        with engine.connect() as conn:
            actors = set(conn.execute(select(audit_log.c.actor)).scalars())
    finally:
        engine.dispose()
    assert actors == {"cli:petugas-it"}


MISTAKES = [
    (["gateway", "add", "opd a"], "is not a gateway id"),
    (["gateway", "rotate", "opd-a", "--grace-hours", "lama"], "is not a number of hours"),
    (["gateway", "revoke", "opd-a"], "no valid token to revoke"),
    (["gateway", "frobnicate"], "invalid choice"),
]


def test_mistakes_are_one_line_and_change_nothing(tmp_path: Path) -> None:
    config = tmp_path / "store.toml"
    config.write_text(f'[store]\ndatabase_url = "sqlite:///{tmp_path}/store.db"\n', encoding="utf-8")
    assert run(tmp_path, "migrate", "--config", str(config)).returncode == 0
    assert run(tmp_path, "gateway", "add", "opd-b", "--config", str(config)).returncode == 0
    before = stored(tmp_path)
    for args, message in MISTAKES:  # one store for all: each command is a process that imports the whole store
        done = run(tmp_path, *args, "--config", str(config))
        assert done.returncode == 2, args
        assert message in done.stderr.strip().splitlines()[-1] and "Traceback" not in done.stderr, args
        assert stored(tmp_path) == before, f"{args}: a refused command changes nothing"


def stored(tmp_path: Path) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    """Every gateway token and audit record of the store in ``tmp_path``."""
    engine = make_engine(f"sqlite:///{tmp_path}/store.db")
    try:
        with engine.connect() as conn:
            tokens = [tuple(r) for r in conn.execute(select(token_table).order_by(*token_table.primary_key))]
            records = [tuple(r) for r in conn.execute(select(audit_log).order_by(audit_log.c.seq))]
    finally:
        engine.dispose()
    assert tokens and records, "the store has a token and its audit record to keep"
    return tokens, records
