"""The store as an operator runs it, for tests that kill it: ``ekinerja store serve`` as a child process.

Unlike ``stack.store_server`` (uvicorn in a thread of the test), this store can be killed with
SIGKILL mid-request and started again on the same port and database, and its log is the one an
operator would read.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Self

import httpx

from servers import free_port
from stack import FEED_TOKEN

CLI = [sys.executable, "-m", "ekinerja.cli"]
START_TIMEOUT_S = 30.0


def log_tail(path: Path, chars: int = 3000) -> str:
    """The end of a log file, for failure messages."""
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return "(no log)"


def wait_until(check: Callable[[], object], timeout_s: float, what: str, *logs: Path) -> None:
    """Wait until ``check()`` is true; fail naming ``what`` and showing the logs' tails after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            tails = "\n".join(f"--- {log}:\n{log_tail(log)}" for log in logs)
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}\n{tails}")
        time.sleep(0.05)


class StoreProcess:
    """``ekinerja store serve`` on a fixed loopback port, for one gateway with one token.

    ``database_url`` may hold ``${ENV}`` references; ``env`` gives their values (kept out of the
    config file, as an operator keeps the database password out of it).
    """

    def __init__(
        self, folder: Path, database_url: str, gateway_id: str, token: str, env: dict[str, str] | None = None
    ) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = folder / "store.log"
        self.config = folder / "store.toml"
        self.config.write_text(
            f'[store]\ndatabase_url = "{database_url}"\nlisten = "127.0.0.1:{self.port}"\n\n'
            f'[[gateways]]\nid = "{gateway_id}"\ntoken = "{token}"\n'
            f'[[clients]]\nid = "feed-reader"\ntoken = "{FEED_TOKEN}"\n'
        )
        self.env = os.environ | (env or {})
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *_exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        if self.proc is not None and self.proc.poll() is None:  # the test failed before stopping it
            self.proc.kill()
            self.proc.wait()

    def start(self) -> None:
        """Start serving (migrating the database first) and return once /healthz answers."""
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [*CLI, "store", "serve", "--migrate", "--config", str(self.config)],
                stdout=out, stderr=subprocess.STDOUT, cwd=self.folder, env=self.env,
            )  # fmt: skip
        self.starts += 1
        wait_until(self._answers, START_TIMEOUT_S, f"the store (start {self.starts}) to answer", self.log)

    def _answers(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"store serve exited with {self.proc.returncode}:\n{log_tail(self.log)}")
        try:
            httpx.get(f"{self.url}/healthz", timeout=2)
        except httpx.TransportError:
            return False
        return True

    def kill(self) -> None:
        """SIGKILL: the store dies wherever it is, as in a power cut of its process."""
        self._signal(signal.SIGKILL)

    def stop(self) -> None:
        """SIGTERM, as a service manager stops it; the process must exit cleanly."""
        code = self._signal(signal.SIGTERM)
        assert code in (0, None), f"store serve exited with {code} on SIGTERM:\n{log_tail(self.log)}"

    def _signal(self, signum: int) -> int | None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return None if proc is None else proc.returncode
        proc.send_signal(signum)
        try:
            return proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise AssertionError(f"store serve did not exit on signal {signum}:\n{log_tail(self.log)}") from None
