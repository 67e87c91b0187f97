"""Shared pieces of the benchmarks: timing whole processes, configs, a store process, JSON output.

Each benchmark prints one JSON object: what was measured, the baseline measured in the same run,
the ratio, the target the issue names, and whether it was met.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

PYTHON = sys.executable
TOKEN = "bench-token-0123456789"
GATEWAY_ID = "opd-bench"
READER_TOKEN = "bench-reader-token-0123"
READER = {"Authorization": f"Bearer {READER_TOKEN}"}


def free_port() -> int:
    """A loopback port that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def timed_process(args: Sequence[str], env: dict[str, str] | None = None) -> tuple[float, str]:
    """Run a process to its exit; returns (wall seconds, stdout). Fails loudly on a non-zero exit."""
    started = time.perf_counter()
    done = subprocess.run(args, capture_output=True, text=True, env={**os.environ, **(env or {})}, check=False)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return elapsed, done.stdout


def write_gateway_config(folder: Path, store_url: str, devices: list[dict[str, Any]], batch_size: int = 1000) -> Path:
    """A gateway.toml for the benchmark."""
    lines = [
        "[gateway]",
        f'id = "{GATEWAY_ID}"',
        f'data_dir = "{folder / "gateway"}"',
        "[store]",
        f'url = "{store_url}"',
        f'token = "{TOKEN}"',
        f"batch_size = {batch_size}",
        "timeout_s = 120",
    ]
    lines += ["[web]", 'listen = "127.0.0.1:0"']
    for device in devices:
        lines.append("[[devices]]")
        lines += [f"{key} = {json.dumps(value)}" for key, value in device.items()]
    path = folder / "gateway.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


@contextmanager
def store_process(folder: Path) -> Iterator[str]:
    """``ekinerja store serve`` on SQLite in its own process; yields its base URL."""
    port = free_port()
    config = folder / "store.toml"
    config.write_text(
        f'[store]\ndatabase_url = "sqlite:///{folder / "store.db"}"\nlisten = "127.0.0.1:{port}"\n'
        f'[[gateways]]\nid = "{GATEWAY_ID}"\ntoken = "{TOKEN}"\n'
        f'[[clients]]\nid = "bench-reader"\ntoken = "{READER_TOKEN}"\n'
    )
    proc = subprocess.Popen(
        [PYTHON, "-m", "ekinerja.cli", "--log-level", "WARNING", "store", "serve", "--config", str(config), "--migrate"]
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit("the store did not start")
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(15)


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100), nearest rank."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))]


def report(name: str, **fields: Any) -> None:
    """Print the benchmark's result as one JSON object."""
    print(json.dumps({"benchmark": name, **fields}, indent=2))
