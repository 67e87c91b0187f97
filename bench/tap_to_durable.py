"""Card tap to durable punch: p50 and p95 over 50 taps, against pcscd's 400 ms polling floor.

One `ekinerja gateway run` process watches vsmartcard's virtual reader under the real pcscd; the
project's card emulator taps 50 different cards (no debounce in the way). For each tap:
- ``seen``: from the card's connect() to vpcd's first message, i.e. pcscd noticing the card. pcscd
  polls the slot every 400 ms, so this is the floor: 0 to 0.4 s, about 0.2 s on average.
- ``durable``: from connect() to the punch's row being committed in the gateway's buffer (the
  benchmark reads the buffer file every 2 ms over its own connection).
- ``feedback``: from connect() to the reader being told "accepted" (it follows the commit).
Each tap comes at a random moment of pcscd's polling cycle (a random wait of up to 0.4 s after the
reader was seen empty), as people's taps do. The buffer is read every 2 ms, so ``durable`` is late
by up to 2 ms. Baseline in the same run: pyscard's own CardMonitor with an observer that reads the UID, no buffer
(what a bare pyscard script achieves), from connect() to the UID in hand.
pcscd must be installable here: the benchmark starts its own (as root) when none is running.
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ekinerja.drivers.pcsc import PcscUnavailable, present_readers
from ekinerja.drivers.sim.vpcd_card import VirtualCard
from ekinerja.drivers.sim.vpcd_readers import PORTS, READERS, wait_empty

from harness import PYTHON, percentile, report, store_process, write_gateway_config

READER, PORT = READERS[0], PORTS[0]
POLL_S = 0.4  # pcscd's polling of vpcd's slots
_rng = random.Random(4)


def random_moment() -> None:
    """Wait a random part of pcscd's polling cycle, so taps do not all land at the same phase."""
    time.sleep(_rng.uniform(0, POLL_S))


def summary(values: list[float]) -> dict[str, float]:
    return {"p50_s": round(statistics.median(values), 3), "p95_s": round(percentile(values, 95), 3)}


def virtual_reader_listed() -> bool:
    """Whether pcscd answers and lists the virtual reader."""
    try:
        return READER in present_readers()
    except PcscUnavailable:
        return False


@contextmanager
def pcscd_running() -> Iterator[None]:
    """The machine's pcscd if one answers with the virtual reader, else one started here."""
    if virtual_reader_listed():
        yield
        return
    proc = subprocess.Popen(["/usr/sbin/pcscd", "--foreground", "--error"])
    try:
        deadline = time.monotonic() + 10
        while not virtual_reader_listed():
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit("pcscd with vsmartcard-vpcd did not start (apt-get install pcscd vsmartcard-vpcd)")
            time.sleep(0.05)
        yield
    finally:
        proc.terminate()
        proc.wait(15)


def uid_of(n: int) -> str:
    return f"04B{n:05X}"


def run_gateway_taps(folder: Path, taps: int) -> dict[str, list[float]]:
    """Taps on the reader a real gateway process watches; returns seen, durable and feedback times."""
    with store_process(folder) as url:
        device = {"id": "kartu", "kind": "pcsc", "reader": READER, "debounce_s": 0}
        config = write_gateway_config(folder, url, [device])
        gateway = subprocess.Popen(
            [PYTHON, "-m", "ekinerja.cli", "--log-level", "WARNING", "gateway", "run", "--config", str(config)]
        )
        buffer_file = folder / "gateway" / "buffer.sqlite3"
        try:
            deadline = time.monotonic() + 30
            while not buffer_file.exists():
                if time.monotonic() > deadline or gateway.poll() is not None:
                    raise SystemExit("the gateway did not start")
                time.sleep(0.05)
            time.sleep(1.0)  # its watch is up once pcscd answered; the first tap must not race it
            return _tap_and_watch(buffer_file, taps)
        finally:
            gateway.terminate()
            gateway.wait(30)


def _tap_and_watch(buffer_file: Path, taps: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {"seen": [], "durable": [], "feedback": []}
    for n in range(taps):
        uid = uid_of(n)
        stored: list[float] = []
        watcher = threading.Thread(target=_watch_buffer, args=(buffer_file, uid, stored), daemon=True)
        watcher.start()
        told: list[float] = []
        card = VirtualCard(
            bytes.fromhex(uid), port=PORT, feedback=True, on_feedback=lambda _a, t=told: t.append(time.monotonic())
        )
        random_moment()
        tap = card.tap(hold_s=0.3)
        watcher.join(5)
        if not stored or not told or tap.first_message_at is None:
            raise SystemExit(f"tap {n} (card {uid}) was not stored and acknowledged within 5 s")
        times["seen"].append(tap.first_message_at - tap.connected_at)
        times["durable"].append(stored[0] - tap.connected_at)
        times["feedback"].append(told[0] - tap.connected_at)
        wait_empty(READER)
    return times


def _watch_buffer(buffer_file: Path, uid: str, stored: list[float]) -> None:
    conn = sqlite3.connect(buffer_file)
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if conn.execute("SELECT 1 FROM events WHERE subject = ?", (f"card:{uid}",)).fetchone():
                stored.append(time.monotonic())
                return
            time.sleep(0.002)
    finally:
        conn.close()


def run_baseline_taps(taps: int) -> list[float]:
    """pyscard's CardMonitor with an observer that reads the UID: connect() to UID in hand."""
    from smartcard.CardMonitoring import CardMonitor, CardObserver
    from smartcard.util import toHexString

    read_at: dict[str, float] = {}

    class ReadUid(CardObserver):  # type: ignore[misc]
        def update(self, _observable: Any, actions: Any) -> None:
            added, _removed = actions
            for card in added:
                connection = card.createConnection()
                connection.connect()
                data, sw1, _sw2 = connection.transmit([0xFF, 0xCA, 0x00, 0x00, 0x00])
                if sw1 == 0x90:
                    read_at[toHexString(data, 1)] = time.monotonic()
                connection.disconnect()

    monitor, observer = CardMonitor(), ReadUid()
    monitor.addObserver(observer)
    took = []
    try:
        time.sleep(0.5)
        for n in range(taps):
            uid = uid_of(10_000 + n)
            random_moment()
            tap = VirtualCard(bytes.fromhex(uid), port=PORT).tap(hold_s=0.3)
            wait_empty(READER)
            if uid not in read_at:
                raise SystemExit(f"the CardMonitor baseline missed tap {n}")
            took.append(read_at[uid] - tap.connected_at)
    finally:
        monitor.deleteObserver(observer)
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--taps", type=int, default=50)
    args = parser.parse_args()
    with pcscd_running(), tempfile.TemporaryDirectory() as tmp:
        gateway = run_gateway_taps(Path(tmp), args.taps)
        baseline = run_baseline_taps(args.taps)
    durable, seen = gateway["durable"], gateway["seen"]
    after_seen = [d - s for d, s in zip(durable, seen, strict=True)]
    report(
        "tap_to_durable",
        taps=args.taps,
        tap_to_durable=summary(durable),
        tap_to_feedback=summary(gateway["feedback"]),
        pcscd_floor_tap_to_seen=summary(seen),
        gateway_cost_seen_to_durable=summary(after_seen),
        baseline_pyscard_cardmonitor_tap_to_uid=summary(baseline),
        durable_p50_over_floor_p50_s=round(statistics.median(durable) - statistics.median(seen), 3),
    )


if __name__ == "__main__":
    sys.exit(main())
