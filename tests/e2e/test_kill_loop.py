"""Kill -9 the gateway dozens of times while it downloads, captures live and pushes: nothing lost, nothing doubled.

Three simulated terminals (a big TCP one, a UDP one, a live TCP one) take punches all the time
from a thread; a real store process takes the pushes. The gateway is started (``gateway run``),
left to work a random moment and killed with SIGKILL, over and over. Each kill is classified by
what it interrupted, observed from outside: a download (a terminal prepared a transfer that was
never freed), a live session (a terminal had a live listener subscribed), a push (the store holds
events the gateway's buffer still calls pending: killed between the store's commit and the
gateway's acknowledgement). At the end ``gateway pull`` and ``gateway sync`` run, and the store's
feed must equal the terminals' logs, every record exactly once.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from ekinerja.drivers.sim import zk_protocol as zp
from ekinerja.drivers.sim.zk_device import ZkDevice
from ekinerja.drivers.sim.zk_server import ZkSimulator
from ekinerja.gateway.buffer import Buffer
from ekinerja.gateway.service import BUFFER_FILE
from ekinerja.sync.contract import FeedItem

from stack import device_punches, feed_punches, read_whole_feed, write_gateway_toml
from store_process import StoreProcess, log_tail, wait_until
from warm_gateway import WarmGateways
from xdist_groups import STRESS

TOKEN = "kill-loop-token-opd-1"
pytestmark = STRESS  # one at a time (tests/xdist_groups.py)
CLI = [sys.executable, "-m", "ekinerja.cli"]
SEED = 20261130
MIN_KILLS, MAX_KILLS = 50, 55
TIME_BUDGET_S = 180.0  # the loop ends after MAX_KILLS kills (about a minute) or this long, whichever comes first:
# a margin for a machine busy with other tests, where each kill takes longer
STARTUP_KILL_SHARE = 0.1  # this share of kills lands at once after the start, the rest within the work
WORK_S = (0.02, 1.2)  # a kill lands this long after the gateway says it is running
BATCH_SIZE = 100


@dataclass
class Terminals:
    """The simulated terminals and the thread that keeps people punching on them."""

    big: ZkSimulator
    udp: ZkSimulator
    live: ZkSimulator
    stop: threading.Event = field(default_factory=threading.Event)
    added: int = 0

    @property
    def all(self) -> list[ZkSimulator]:
        """Every simulator."""
        return [self.big, self.udp, self.live]

    def devices(self) -> list[ZkDevice]:
        """Every terminal's state."""
        return [sim.device for sim in self.all]

    def live_events_taken(self) -> int:
        """Live events the gateway acknowledged on the live terminal (a client ACKs each one it reads)."""
        return self.live.command_count(zp.CMD_ACK_OK)

    def open_transfers(self) -> int:
        """Buffered downloads prepared and never freed: each is a client that died mid-download."""
        return sum(sim.command_count(zp.CMD_PREPARE_BUFFER) - sim.command_count(zp.CMD_FREE_DATA) for sim in self.all)

    def punch_all_the_time(self, seed: int) -> None:
        """Add a punch on a random terminal every few tenths of a second until stopped (thread body)."""
        rng = random.Random(seed)
        # Today, after the generated logs (which end yesterday): no punch can repeat another.
        moment = datetime.now(ZoneInfo("Asia/Jakarta")).replace(hour=0, minute=0, second=0, tzinfo=None)
        while not self.stop.wait(rng.uniform(0.05, 0.35)):
            moment += timedelta(seconds=rng.randint(1, 20))
            device = rng.choice(self.devices())
            device.add_punch(str(1001 + rng.randrange(30)), moment, punch=rng.randrange(2))
            self.added += 1


@contextmanager
def terminals() -> Iterator[Terminals]:
    """The three terminals, serving; every reply of the downloading ones a little slow, as on a real LAN."""
    big = ZkDevice.generate(users=300, records=20_000, serial="KLOOPTCP01", seed=21)
    udp = ZkDevice.generate(users=40, records=3_000, record_format=16, user_format=28, serial="KLOOPUDP01", seed=22)
    live = ZkDevice.generate(users=60, records=2_000, serial="KLOOPLIV01", seed=23)
    with (
        ZkSimulator(big, protocol="tcp") as big_sim,
        ZkSimulator(udp, protocol="udp") as udp_sim,
        ZkSimulator(live, protocol="tcp") as live_sim,
    ):
        # A real terminal sends its log at a few hundred KB/s: the 800 KB log takes a while.
        big_sim.delay_s = udp_sim.delay_s = 0.015
        yield Terminals(big_sim, udp_sim, live_sim)


@dataclass
class KillTally:
    """What the kills interrupted."""

    kills: int = 0
    at_startup: int = 0
    downloads: int = 0
    live: int = 0
    pushes: int = 0  # store ahead of the buffer: committed there, not yet acknowledged here
    pending_after: int = 0  # the buffer still held punches to push
    seconds: float = 0.0


def stored_not_acked(buffer_path: Path, store_db: Path) -> tuple[int, int]:
    """(pending in the buffer, of the oldest pending how many the store already holds)."""
    buffer = Buffer(buffer_path)
    try:
        pending = buffer.backlog().pending
        oldest = [p.event_id for p in buffer.pending(4 * BATCH_SIZE)]  # a push sends the oldest first
    finally:
        buffer.close()
    if not oldest:
        return pending, 0
    with closing(sqlite3.connect(f"file:{store_db}?mode=ro", uri=True, timeout=10)) as db:
        marks = ",".join("?" * len(oldest))
        (held,) = db.execute(f"SELECT count(*) FROM punches WHERE event_id IN ({marks})", oldest).fetchone()
    return pending, int(held)


def work_then_kill(warm: WarmGateways, config: Path, log: Path, rng: random.Random, sims: Terminals) -> dict[str, bool]:
    """Start the gateway, let it work a random moment, SIGKILL it; what the kill interrupted."""
    log.touch()
    offset = log.stat().st_size
    transfers, live_events = sims.open_transfers(), sims.live_events_taken()
    pid = warm.start(config, log)
    at_startup = rng.random() < STARTUP_KILL_SHARE
    if at_startup:
        time.sleep(rng.uniform(0, 0.25))
    else:
        wait_until(lambda: b" running: " in log.read_bytes()[offset:], 20, "the gateway to start", log)
        time.sleep(rng.uniform(*WORK_S))
    # Killed during live capture: subscribed to the live terminal, and it has taken live punches.
    live = sims.live.device.listener_count > 0 and sims.live_events_taken() > live_events
    os.kill(pid, signal.SIGKILL)
    status = warm.reap(pid)
    assert os.waitstatus_to_exitcode(status) == -signal.SIGKILL, f"the gateway ended by itself:\n{log_tail(log)}"
    # The terminal notices the dead connection: no stale listener may count for the next kill.
    wait_until(lambda: sims.live.device.listener_count == 0, 10, "the live terminal to drop the dead session", log)
    return {"at_startup": at_startup, "download": sims.open_transfers() > transfers, "live": live}


def kill_loop(warm: WarmGateways, config: Path, store_db: Path, sims: Terminals, log: Path) -> KillTally:
    """Kill the gateway again and again, MAX_KILLS times or for TIME_BUDGET_S, tallying what each interrupted."""
    rng = random.Random(SEED)
    tally = KillTally()
    started = time.monotonic()
    while tally.kills < MAX_KILLS and time.monotonic() - started < TIME_BUDGET_S:
        seen = work_then_kill(warm, config, log, rng, sims)
        pending, held = stored_not_acked(config.parent / "data" / BUFFER_FILE, store_db)
        tally.kills += 1
        tally.at_startup += seen["at_startup"]
        tally.downloads += seen["download"]
        tally.live += seen["live"]
        tally.pushes += held > 0
        tally.pending_after += pending > 0
    tally.seconds = time.monotonic() - started
    return tally


def gateway(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """One ``ekinerja gateway`` command, as an operator types it."""
    return subprocess.run([*CLI, "gateway", *args, "--config", str(config)], capture_output=True, text=True,
                          timeout=120, check=False)  # fmt: skip


def assert_exactly_once(feed: list[FeedItem], devices: list[ZkDevice]) -> None:
    """The feed holds every terminal record once, nothing else, in strictly increasing seq order."""
    expected = device_punches(*devices)
    got = feed_punches(feed)
    missing, extra = sum((expected - got).values()), sum((got - expected).values())
    assert got == expected, f"{missing} record(s) missing from the feed, {extra} extra or doubled"
    assert len({item.event.event_id for item in feed}) == len(feed) == sum(d.record_count for d in devices)
    seqs = [item.seq for item in feed]
    assert all(a < b for a, b in itertools.pairwise(seqs)), "feed seqs not strictly increasing"


def test_kill_9_at_random_moments_loses_and_doubles_nothing(tmp_path: Path) -> None:
    with (
        terminals() as sims,
        WarmGateways() as warm,
        StoreProcess(tmp_path / "store", "sqlite:///store.db", "opd-1", TOKEN) as store,
    ):
        config = write_gateway_toml(
            tmp_path, store.url, TOKEN,
            {"pintu-besar": (sims.big.port, "tcp"), "pintu-udp": (sims.udp.port, "udp"),
             "pintu-live": (sims.live.port, "tcp")},
            extra_store=f"batch_size = {BATCH_SIZE}\nmax_backoff_s = 1", poll_interval_s=1,
            device_extra={"pintu-live": "live = true"},
        )  # fmt: skip
        puncher = threading.Thread(target=sims.punch_all_the_time, args=(SEED + 1,), name="puncher")
        puncher.start()
        try:
            tally = kill_loop(warm, config, store.folder / "store.db", sims, tmp_path / "gateway.log")
        finally:
            sims.stop.set()
            puncher.join()
        pulled = gateway(config, "pull")
        assert pulled.returncode == 0, pulled.stdout + pulled.stderr
        synced = gateway(config, "sync")
        assert synced.returncode == 0, synced.stdout + synced.stderr
        feed = read_whole_feed(store.url)
        store.stop()
    print(f"\n{tally}; {sims.added} punches added during the loop, {sims.live_events_taken()} taken live; "
          f"{len(feed)} events checked")  # fmt: skip
    assert_exactly_once(feed, sims.devices())
    backlog = json.loads(gateway(config, "backlog", "--json").stdout)
    assert (backlog["pending"], backlog["rejected"], backlog["quarantined"]) == (0, 0, 0), backlog
    assert "Traceback" not in (tmp_path / "gateway.log").read_text(), log_tail(tmp_path / "gateway.log")
    # The kills were many, and landed in each kind of work.
    assert tally.kills >= MIN_KILLS, f"only {tally.kills} kills in {TIME_BUDGET_S:g} s"
    assert tally.downloads >= 1, f"no kill landed during a download: {tally}"
    assert tally.live >= 1, f"no kill landed during live capture: {tally}"
    assert tally.pushes >= 1, f"no kill landed between the store's commit and the gateway's acknowledgement: {tally}"
    assert sims.added > 0 and sims.live_events_taken() > 0
