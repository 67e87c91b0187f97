"""``ekinerja store migrate|serve`` as an operator runs them: real processes, real uvicorn."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from ekinerja.sync.contract import Batch, Punch, PunchEvent, Source, Subject, Verify

from servers import free_port

CLI = [sys.executable, "-m", "ekinerja.cli", "store"]
TOKEN = "cli-test-token-a"


def write_config(path: Path, database_url: str, port: int, extra: str = "") -> Path:
    path.write_text(
        f'[store]\ndatabase_url = "{database_url}"\nlisten = "127.0.0.1:{port}"\n{extra}\n'
        f'[[gateways]]\nid = "opd-a"\ntoken = "${{STORE_TEST_TOKEN}}"\n',
        encoding="utf-8",
    )
    return path


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"STORE_TEST_TOKEN": TOKEN}
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=60, cwd=cwd, env=env)


def wait_healthy(proc: subprocess.Popen[bytes], port: int, log: Path) -> httpx.Response:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"store serve exited with {proc.returncode}:\n{log.read_text()}")
        try:
            return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
        except httpx.TransportError:
            time.sleep(0.05)
    proc.kill()
    pytest.fail(f"store serve did not answer in 30 s:\n{log.read_text()}")


def one_batch() -> Batch:
    event = PunchEvent.create(
        gateway_id="opd-a",
        device_id="pintu-depan",
        device_serial="CKPJ201960123",
        source=Source.ZK,
        verify=Verify.FINGERPRINT,
        subject=Subject(zk_user_id="1001"),
        punch=Punch.IN,
        device_time=datetime(2026, 1, 5, 7, 31),
        timezone="Asia/Jakarta",
        captured_at=datetime.now(UTC),
    )
    return Batch(gateway_id="opd-a", sent_at=datetime.now(UTC), events=[event])


def test_migrate_then_serve(store_url: str, tmp_path: Path) -> None:
    port = free_port()
    config = write_config(tmp_path / "store.toml", store_url, port)
    refused = run_cli("serve", "--config", str(config), cwd=tmp_path)
    assert refused.returncode == 2
    assert f"ekinerja store migrate --config {config}" in refused.stderr
    migrated = run_cli("migrate", "--config", str(config), cwd=tmp_path)
    assert migrated.returncode == 0, migrated.stderr
    assert "revision 0004" in migrated.stdout
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        env = os.environ | {"STORE_TEST_TOKEN": TOKEN}
        proc = subprocess.Popen([*CLI, "serve", "--config", str(config)], stdout=out, stderr=out, cwd=tmp_path, env=env)
    try:
        health = wait_healthy(proc, port, log)
        assert health.json() == {"status": "ok", "database": "ok", "schema": "0004"}
        posted = httpx.post(
            f"http://127.0.0.1:{port}/v1/punches",
            content=one_batch().model_dump_json(),
            headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
        )
        assert posted.json()["accepted"] == 1
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=20)
    assert code == 0
    text = log.read_text()
    assert "batch from gateway opd-a: 1 accepted, 0 duplicate, 0 rejected" in text
    assert TOKEN not in text


def test_serve_migrate_flag_migrates_first(tmp_path: Path) -> None:
    port = free_port()
    # A proxy elsewhere is trusted; this test's requests (from 127.0.0.1) are not that proxy.
    config = write_config(tmp_path / "store.toml", "sqlite:///data/store.db", port,  # relative to cwd
                          extra='trusted_proxies = ["10.9.8.7"]')  # fmt: skip
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        env = os.environ | {"STORE_TEST_TOKEN": TOKEN}
        proc = subprocess.Popen([*CLI, "serve", "--migrate", "--config", str(config)], stdout=out, stderr=out,
                                cwd=tmp_path, env=env)  # fmt: skip
    try:
        assert wait_healthy(proc, port, log).status_code == 200
        forged = httpx.get(f"http://127.0.0.1:{port}/masuk", headers={"X-Forwarded-Proto": "https"})
        assert "Secure" not in forged.headers["set-cookie"], "X-Forwarded-Proto from an untrusted address is ignored"
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    assert (tmp_path / "data" / "store.db").is_file()


def test_serve_tells_systemd_when_it_is_ready_and_when_it_stops(tmp_path: Path) -> None:
    """The Type=notify protocol of deploy/systemd/ekinerja-store.service, with the test as the manager."""
    port = free_port()
    config = write_config(tmp_path / "store.toml", "sqlite:///store.db", port)
    manager = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    manager.bind(str(tmp_path / "notify.sock"))
    manager.settimeout(30)
    log = tmp_path / "serve.log"
    with manager, open(log, "wb") as out:
        env = os.environ | {"STORE_TEST_TOKEN": TOKEN, "NOTIFY_SOCKET": str(tmp_path / "notify.sock")}
        proc = subprocess.Popen([*CLI, "serve", "--migrate", "--config", str(config)], stdout=out, stderr=out,
                                cwd=tmp_path, env=env)  # fmt: skip
        try:
            ready = manager.recv(1000).decode()
            assert ready == f"READY=1\nSTATUS=serving on 127.0.0.1:{port}", log.read_text()
            # Ready means ready: the very next request is answered (no wait loop here).
            assert httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
            # Behind a proxy on this host (trusted by default), HTTPS there makes the sign-in cookie Secure.
            proxied = httpx.get(f"http://127.0.0.1:{port}/masuk", headers={"X-Forwarded-Proto": "https"})
            assert "Secure" in proxied.headers["set-cookie"]
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=20) == 0
        assert manager.recv(1000) == b"STOPPING=1"


def test_migrate_back_to_an_older_revision_and_forward(tmp_path: Path) -> None:
    config = write_config(tmp_path / "store.toml", "sqlite:///store.db", free_port())
    assert "revision 0004 (head)" in run_cli("migrate", "--config", str(config), cwd=tmp_path).stdout
    back = run_cli("migrate", "--to", "0003", "--config", str(config), cwd=tmp_path)
    assert back.returncode == 0 and back.stdout.strip().endswith("schema at revision 0003"), back.stderr
    unknown = run_cli("migrate", "--to", "0010", "--config", str(config), cwd=tmp_path)
    assert (
        unknown.returncode == 2 and "--to 0010: this version knows revisions 0001, 0002, 0003, 0004" in unknown.stderr
    )
    refused = run_cli("serve", "--config", str(config), cwd=tmp_path)
    assert refused.returncode == 2 and "migrate" in refused.stderr
    assert "revision 0004 (head)" in run_cli("migrate", "--config", str(config), cwd=tmp_path).stdout


def test_unknown_key_in_config_is_exit_2_naming_it(tmp_path: Path) -> None:
    config = write_config(tmp_path / "store.toml", "sqlite:///store.db", free_port(), extra="listn = 'x'")
    for command in ("migrate", "serve"):
        result = run_cli(command, "--config", str(config), cwd=tmp_path)
        assert result.returncode == 2
        assert "store.listn: unknown key" in result.stderr
        assert str(config) in result.stderr and "Traceback" not in result.stderr


def test_bad_database_url_is_a_config_error(tmp_path: Path) -> None:
    config = write_config(tmp_path / "store.toml", "oracle+nosuchdriver://x/y", free_port())
    result = run_cli("migrate", "--config", str(config), cwd=tmp_path)
    assert result.returncode == 2
    assert "store.database_url" in result.stderr and "Traceback" not in result.stderr


def test_unreachable_database_is_one_line_exit_1(tmp_path: Path) -> None:
    port = free_port()
    url = f"postgresql+psycopg://ekinerja:s3cret-pw@127.0.0.1:{port}/store"
    config = write_config(tmp_path / "store.toml", url, free_port())
    for command in ("migrate", "serve"):
        result = run_cli(command, "--config", str(config), cwd=tmp_path)
        assert result.returncode == 1
        errors = [line for line in result.stderr.splitlines() if "ekinerja store" in line]
        assert len(errors) == 1 and f"127.0.0.1:{port}" in errors[0]
        assert "s3cret-pw" not in result.stderr + result.stdout
        assert "Traceback" not in result.stderr
