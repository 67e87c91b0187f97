"""``ekinerja gateway run`` processes that start in milliseconds, for tests that kill dozens of them.

A cold ``python -m ekinerja.cli gateway run`` spends about a second importing before it does any
work; killed 50 times, the gateway would mostly die while importing. Run as a script, this module
imports the gateway's modules once, then forks a child per request that runs the real command
line (``ekinerja.cli.main``) from the start: config, buffer, threads, all of it. Each child is a
real process, killed for real with SIGKILL by the test.

Protocol, one tab-separated line each way: ``run CONFIG LOG`` answers the child's pid (its output goes to LOG);
``reap PID`` waits for that child and answers its wait status. The parent holds no threads, so
forking it is safe.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import traceback
from pathlib import Path
from types import TracebackType
from typing import Self

import ekinerja.cli


def _serve() -> None:
    """The parent: import once, then fork a gateway per ``run`` line until stdin closes."""
    import ekinerja.gateway.cli
    import ekinerja.gateway.service
    import ekinerja.gateway.web
    import ekinerja.sync.jobs
    import ekinerja.sync.push  # noqa: F401  (imported now so the children need not)

    for line in sys.stdin:
        command, *args = line.rstrip("\n").split("\t")  # tabs: paths may hold spaces
        answer = _fork(args[0], args[1]) if command == "run" else os.waitpid(int(args[0]), 0)[1]
        print(answer, flush=True)


def _fork(config: str, log: str) -> int:
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:  # the child: the gateway as an operator starts it, output to its log
        out = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(out, 1)
        os.dup2(out, 2)
        os.close(0)
        code = ekinerja.cli.main(["gateway", "run", "--config", config])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        os._exit(code)  # never back into the parent's loop


class WarmGateways:
    """The test's side: start gateway processes from the warm parent, reap them once killed."""

    def __init__(self) -> None:
        self.parent = subprocess.Popen(
            [sys.executable, __file__], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1
        )
        self.unreaped: set[int] = set()

    def start(self, config: Path, log: Path) -> int:
        """A new ``gateway run --config CONFIG`` process writing to LOG; returns its pid."""
        pid = int(self._ask(f"run\t{config}\t{log}"))
        self.unreaped.add(pid)
        return pid

    def reap(self, pid: int) -> int:
        """Wait for a gateway process to end; returns its wait status (see os.waitstatus_to_exitcode)."""
        status = int(self._ask(f"reap\t{pid}"))
        self.unreaped.discard(pid)
        return status

    def _ask(self, line: str) -> str:
        assert self.parent.stdin is not None and self.parent.stdout is not None
        self.parent.stdin.write(line + "\n")
        answer = self.parent.stdout.readline()
        assert answer, f"the warm gateway parent exited with {self.parent.poll()}"
        return answer

    def close(self) -> None:
        """Kill any gateway a failed test left running, then end the parent (it exits when its input closes)."""
        for pid in list(self.unreaped):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            self.reap(pid)
        if self.parent.stdin is not None:
            self.parent.stdin.close()
        self.parent.wait(10)
        if self.parent.stdout is not None:
            self.parent.stdout.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()


if __name__ == "__main__":
    _serve()
