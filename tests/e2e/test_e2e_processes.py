"""The gateway as an operator runs it: `ekinerja gateway ...` processes, killed, started before the store."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from ekinerja.drivers.sim.zk_device import ZkDevice
from ekinerja.drivers.sim.zk_server import ZkSimulator

from stack import device_punches, feed_punches, free_port, read_whole_feed, store_server, write_gateway_toml

TOKEN = "e2e-token-of-opd-1"
CLI = [sys.executable, "-m", "ekinerja.cli"]


def gateway(config: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, "gateway", *args, "--config", str(config)], capture_output=True, text=True,
                          timeout=timeout, check=False)  # fmt: skip


def start_gateway(config: Path, log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen([*CLI, "gateway", "run", "--config", str(config)], stdout=out, stderr=out,
                                env=env)  # fmt: skip


def wait_for(check: Callable[[], bool], seconds: float, what: str, log: Path | None = None) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        shown = log.read_text()[-3000:] if log and log.exists() else ""
        assert time.monotonic() < deadline, f"timed out waiting for {what}\n{shown}"
        time.sleep(0.2)


def backlog(config: Path) -> dict[str, object]:
    done = gateway(config, "backlog", "--json")
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout)
    return result


def test_store_down_at_start_then_backlog_drains(tmp_path: Path) -> None:
    device = ZkDevice.generate(users=10, records=250, serial="DOWN000001", seed=13)
    port = free_port()
    with ZkSimulator(device) as sim:
        config = write_gateway_toml(
            tmp_path, f"http://127.0.0.1:{port}", TOKEN, {"pintu": (sim.port, "tcp")}, extra_store="max_backoff_s = 1"
        )
        # The test is systemd for the Type=notify protocol of deploy/systemd/ekinerja-gateway.service.
        manager = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        manager.bind(str(tmp_path / "notify.sock"))
        manager.settimeout(30)
        proc = start_gateway(
            config, tmp_path / "gateway.log", os.environ | {"NOTIFY_SOCKET": str(tmp_path / "notify.sock")}
        )
        try:
            log_file = tmp_path / "gateway.log"
            # Ready with the store down: the gateway keeps punches without it.
            assert manager.recv(1000) == b"READY=1\nSTATUS=running: 1 terminal(s), 0 card reader entr(ies)"
            # Both: the punches wait, and a push has found the store down (else it may first try once it is up).
            wait_for(
                lambda: backlog(config)["pending"] == 250 and "unreachable" in log_file.read_text(),
                20,
                "punches to wait in the buffer and a push to find the store down",
                log_file,
            )
            with store_server(f"sqlite:///{tmp_path}/store.db", {"opd-1": TOKEN}, port=port) as url:
                wait_for(lambda: len(read_whole_feed(url)) == 250, 30, "the backlog to drain")
                device.add_punch("1001", datetime(2026, 7, 1, 7, 30))
                wait_for(lambda: len(read_whole_feed(url)) == 251, 30, "a new punch to follow")
                feed = read_whole_feed(url)
        finally:
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(20)
            with manager:
                assert manager.recv(1000) == b"STOPPING=1"
    assert code == 0
    assert feed_punches(feed) == device_punches(device)
    assert backlog(config)["pending"] == 0
    log = (tmp_path / "gateway.log").read_text()
    assert "unreachable" in log and TOKEN not in log


def test_pull_backlog_sync_devices_commands(tmp_path: Path) -> None:
    device = ZkDevice.generate(users=6, records=80, serial="CLI0000001", seed=14)
    with ZkSimulator(device) as sim, store_server(f"sqlite:///{tmp_path}/store.db", {"opd-1": TOKEN}) as url:
        config = write_gateway_toml(tmp_path, url, TOKEN, {"pintu": (sim.port, "tcp")})
        devices = gateway(config, "devices")
        assert devices.returncode == 0 and "pintu: serial CLI0000001" in devices.stdout
        assert "80/100000 records (0.1% full)" in devices.stdout
        pulled = gateway(config, "pull")
        assert pulled.returncode == 0 and "pintu: 80 record(s) read, 80 new" in pulled.stdout
        assert "pending: 80" in gateway(config, "backlog").stdout
        synced = gateway(config, "sync", "--json")
        assert synced.returncode == 0 and json.loads(synced.stdout)["accepted"] == 80
        assert backlog(config)["acked"] == 80
        requeue = gateway(config, "backlog", "--requeue-rejected")
        assert requeue.returncode == 0 and "requeued 0 rejected event(s)" in requeue.stdout
        assert "0 new" in gateway(config, "pull").stdout
    offline = gateway(config, "pull")
    assert offline.returncode == 1 and "pintu: FAILED" in offline.stdout and "Traceback" not in offline.stderr
    unsent = gateway(config, "sync")
    assert unsent.returncode == 0  # nothing pending: nothing to send even with the store gone


GOOD = """
[gateway]
id = "opd-1"
[store]
url = "http://127.0.0.1:8400"
token = "${E2E_GATEWAY_TOKEN}"
[[devices]]
id = "pintu"
kind = "zk"
host = "127.0.0.1"
"""


def test_config_mistakes_exit_2_naming_each(tmp_path: Path) -> None:
    path = tmp_path / "gateway.toml"
    path.write_text(GOOD.replace('host = "127.0.0.1"', 'host = "127.0.0.1"\nport = "4370x"\npasword = 1'))
    env = {k: v for k, v in os.environ.items() if k != "E2E_GATEWAY_TOKEN"}
    for command in ("check-config", "pull", "sync", "run", "backlog", "devices"):
        done = subprocess.run([*CLI, "gateway", command, "--config", str(path)], capture_output=True, text=True,
                              env=env, timeout=30, check=False)  # fmt: skip
        assert done.returncode == 2, (command, done.stdout, done.stderr)
        assert str(path) in done.stderr
        assert "devices[0].pasword: unknown key" in done.stderr
        assert "devices[0].port: Input should be a valid integer" in done.stderr
        assert "store.token: environment variable E2E_GATEWAY_TOKEN is not set" in done.stderr
        assert "Traceback" not in done.stderr
    path.write_text(GOOD)
    ok = subprocess.run([*CLI, "gateway", "check-config", "--config", str(path)], capture_output=True, text=True,
                        env={**env, "E2E_GATEWAY_TOKEN": "from-the-environment"}, timeout=30, check=False)  # fmt: skip
    assert ok.returncode == 0 and "OK" in ok.stdout and "from-the-environment" not in ok.stdout
    (tmp_path / "data" / "gateway").mkdir(parents=True)
    (tmp_path / "data" / "gateway" / "buffer.sqlite3").write_bytes(b"\x00garbage" * 512)
    env["E2E_GATEWAY_TOKEN"] = "from-the-environment"
    damaged = subprocess.run([*CLI, "gateway", "backlog", "--config", str(path)], capture_output=True, text=True,
                             env=env, timeout=30, check=False)  # fmt: skip
    assert damaged.returncode == 1 and "cannot be opened" in damaged.stderr and "Traceback" not in damaged.stderr
    missing = subprocess.run([*CLI, "gateway", "check-config", "--config", str(tmp_path / "nope.toml")],
                             capture_output=True, text=True, timeout=30, check=False)  # fmt: skip
    assert (
        missing.returncode == 2
        and "nope.toml: configuration error" in missing.stderr
        and "file not found" in missing.stderr
    )
