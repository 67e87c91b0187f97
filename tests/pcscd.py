"""The real pcscd with vsmartcard's virtual readers, as a child of the test session (RIG.md, "PC/SC").

pcscd runs in the foreground with ``-c DIR``: a reader.conf.d folder that holds vpcd's entry
("Virtual PCD 00 00" on TCP 35963, "Virtual PCD 00 01" on 35964) or nothing at all. pcscd reads
that folder only at start (a reload is refused once it changed), so "no reader, then a reader"
and "a reader unplugged, then back" are pcscd restarts with the folder emptied or filled.
Only one pcscd can run on a machine: the tests share this one and run one after the other, all
in one xdist worker (the group :data:`PCSCD_GROUP`).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from ekinerja.drivers.pcsc import PcscUnavailable, present_readers
from ekinerja.drivers.sim.vpcd_card import Tap, VirtualCard
from ekinerja.drivers.sim.vpcd_readers import PORTS, READERS, wait_empty

from servers import SETUP_HINT

PCSCD = "/usr/sbin/pcscd"
VPCD_CONF = Path("/etc/reader.conf.d/vpcd")
PID_FILE = Path("/run/pcscd/pcscd.pid")
START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 10.0
PCSCD_GROUP = "pcscd"  # the xdist_group of every test that uses pcscd (tests/conftest.py)


def tap(card: VirtualCard, hold_s: float = 0.3) -> Tap:
    """Tap ``card`` and return once pcscd has seen it leave (so the next tap is a new card)."""
    done = card.tap(hold_s=hold_s)
    wait_empty(READERS[PORTS.index(card.port)])
    return done


def _port_taken(port: int) -> bool:
    """Whether something else holds vpcd's port (an ephemeral port of another connection can)."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("0.0.0.0", port))
        except OSError:
            return True
    return False


def _other_pcscd() -> int | None:
    """The pid of a pcscd this session did not start, if one runs."""
    try:
        pid = int(PID_FILE.read_text().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid


class Pcscd:
    """A pcscd this test session controls: start, stop, restart, with or without the virtual readers."""

    def __init__(self) -> None:
        for path, what in ((PCSCD, "pcscd"), (str(VPCD_CONF), "vsmartcard-vpcd's reader entry")):
            if not os.path.exists(path):
                pytest.fail(f"{what} not found at {path}: {SETUP_HINT}", pytrace=False)
        self.folder = Path(tempfile.mkdtemp(prefix="ekinerja-pcscd-"))
        self.conf_dir = self.folder / "reader.conf.d"
        self.conf_dir.mkdir()
        self.log = self.folder / "pcscd.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.readers = False

    def start(self, *, readers: bool = True) -> None:
        """Start pcscd, with vpcd's two readers or with none; returns once it answers."""
        other = _other_pcscd()
        if other is not None:
            pytest.fail(f"another pcscd (pid {other}) is running; stop it before the PC/SC tests", pytrace=False)
        conf = self.conf_dir / "vpcd"
        if readers:
            shutil.copyfile(VPCD_CONF, conf)
        else:
            conf.unlink(missing_ok=True)
        self.readers = readers
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [PCSCD, "--foreground", "--error", "-c", str(self.conf_dir)], stdout=out, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self._ready(readers):
            if self.proc.poll() is not None:
                pytest.fail(f"pcscd exited with {self.proc.returncode}:\n{self.log.read_text()[-2000:]}", pytrace=False)
            if time.monotonic() > deadline:
                busy = [port for port in PORTS if _port_taken(port)] if readers else []
                self.stop()
                pytest.fail(
                    f"pcscd did not list its readers within {START_TIMEOUT_S} s"
                    + (f"; vpcd's port(s) {busy} are taken by another socket" if busy else "")
                    + f":\n{self.log.read_text()[-2000:]}",
                    pytrace=False,
                )
            time.sleep(0.02)

    def _ready(self, readers: bool) -> bool:
        # Asked through PC/SC, not by connecting to vpcd's ports: a probe connection would sit in
        # vpcd's queue and later look like a card put on the reader.
        try:
            names = present_readers()
        except PcscUnavailable:
            return False
        return all(name in names for name in READERS) if readers else True

    def stop(self) -> None:
        """SIGTERM, then wait for it: a second pcscd refuses to start while the first is unreaped."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def kill(self) -> None:
        """SIGKILL, as a crash: no goodbye to its clients."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()

    def restart(self, *, readers: bool = True) -> None:
        """Stop and start again (with the readers, or with none)."""
        self.stop()
        self.start(readers=readers)

    @property
    def running(self) -> bool:
        """Whether this session's pcscd is up."""
        return self.proc is not None and self.proc.poll() is None

    def close(self) -> None:
        """Stop it and remove its folder."""
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)
