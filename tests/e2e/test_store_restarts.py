"""The central side dies under load: the store process killed mid-ingest, its database server restarted.

A real gateway process pushes a terminal's 20,000-punch log in small batches while people keep
punching; a feed consumer (the e-Kinerja core's part) follows ``/v1/feed?after=`` all along. Then:

- the store (``ekinerja store serve`` on SQLite) is killed with SIGKILL again and again mid-push
  and started again;
- the store's PostgreSQL or MariaDB is restarted under it, once cleanly and once as after a crash,
  while the store keeps serving: it must answer 503 (no traceback), say so on /healthz, and
  recover by itself once the database is back.

Every time the feed must end equal to the terminal's log, each record once, and the consumer must
have seen exactly that feed, in strictly increasing seq order: no gap a resuming consumer could miss.
"""

from __future__ import annotations

import itertools
import json
import random
import re
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest

from ekinerja.drivers.sim.zk_device import ZkDevice
from ekinerja.drivers.sim.zk_server import ZkSimulator
from ekinerja.gateway.buffer import Buffer
from ekinerja.gateway.service import BUFFER_FILE
from ekinerja.store.db import durability_problems, make_engine
from ekinerja.sync.contract import FeedItem, FeedPage

from servers import PASSWORD, MariaDBServer, PostgresServer, fresh_database, running, unique_name
from stack import FEED_AUTH, device_punches, feed_punches, read_whole_feed, write_gateway_toml
from store_process import CLI, StoreProcess, log_tail, wait_until
from xdist_groups import STRESS

TOKEN = "restart-test-token-opd-1"
pytestmark = STRESS  # one at a time (tests/xdist_groups.py)
RECORDS = 12_000
BATCH_SIZE = 50  # small batches: a kill lands in the middle of one, with many more to go
STORE_KILLS = 6
MAX_STORE_KILLS = 20  # more if none of the first six landed between a commit and its answer (rarer on a busy machine)
DRAIN_TIMEOUT_S = 120.0


class FeedConsumer:
    """The e-Kinerja core's side: follows the feed with ``after=`` for the whole test, whatever the store does."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.items: list[FeedItem] = []
        self.unavailable = 0  # 503 answers and refused connections: the store or its database was down
        self.unexpected: list[str] = []  # any other answer is a defect
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._follow, name="feed consumer", daemon=True)

    def __enter__(self) -> FeedConsumer:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(30)

    def _follow(self) -> None:
        with httpx.Client(base_url=self.url, timeout=30, headers=FEED_AUTH) as client:
            while not self._stop.is_set():
                more = self._read_page(client)
                if not more:
                    self._stop.wait(0.1)

    def _read_page(self, client: httpx.Client) -> bool:
        """Read the next page; True when more is waiting."""
        after = self.items[-1].seq if self.items else 0
        try:
            response = client.get("/v1/feed", params={"after": after, "limit": 1000})
        except httpx.TransportError:
            self.unavailable += 1
            return False
        if response.status_code == 503:
            self.unavailable += 1
            return False
        if response.status_code != 200:
            self.unexpected.append(f"{response.status_code}: {response.text[:300]}")
            return False
        page = FeedPage.model_validate_json(response.content)
        self.items += page.items
        return page.has_more


class Puncher:
    """People punching on the terminal every few tenths of a second, in a thread."""

    def __init__(self, device: ZkDevice, seed: int) -> None:
        self.device = device
        self.rng = random.Random(seed)
        # Today, after the generated log (which ends yesterday): no punch repeats another.
        self.moment = datetime.now(ZoneInfo("Asia/Jakarta")).replace(hour=0, minute=0, second=0, tzinfo=None)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._punch, name="puncher", daemon=True)

    def _punch(self) -> None:
        while not self.stop.wait(self.rng.uniform(0.1, 0.4)):
            self.moment += timedelta(seconds=self.rng.randint(1, 20))
            self.device.add_punch(str(1001 + self.rng.randrange(50)), self.moment, punch=self.rng.randrange(2))

    def __enter__(self) -> Puncher:
        self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop.set()
        self.thread.join(10)


@contextmanager
def gateway_process(tmp_path: Path, store_url: str, sim: ZkSimulator) -> Iterator[Path]:
    """``ekinerja gateway run`` pushing ``sim``'s log in small batches; yields its log. Must stop cleanly."""
    config = write_gateway_toml(
        tmp_path, store_url, TOKEN, {"pintu": (sim.port, "tcp")},
        extra_store=f"batch_size = {BATCH_SIZE}\nmax_backoff_s = 2", poll_interval_s=1,
    )  # fmt: skip
    log = tmp_path / "gateway.log"
    with log.open("ab") as out:
        proc = subprocess.Popen([*CLI, "gateway", "run", "--config", str(config)], stdout=out, stderr=out)
    try:
        yield log
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise AssertionError(f"the gateway did not stop on SIGTERM:\n{log_tail(log)}") from None
    assert code == 0, f"the gateway exited with {code}:\n{log_tail(log)}"
    done = subprocess.run([*CLI, "gateway", "backlog", "--json", "--config", str(config)], capture_output=True,
                          text=True, timeout=60, check=True)  # fmt: skip
    backlog = json.loads(done.stdout)
    assert (backlog["pending"], backlog["rejected"], backlog["quarantined"]) == (0, 0, 0), backlog


def wait_for_growth(consumer: FeedConsumer, events: int, *logs: Path) -> None:
    """Wait until the consumer has seen ``events`` more punches: the gateway is pushing right now."""
    target = len(consumer.items) + events
    wait_until(lambda: len(consumer.items) >= target, 60, f"{events} more punches in the feed", *logs)


def gateway_done(data_dir: Path, device: ZkDevice) -> bool:
    """The gateway has read the whole terminal log and has nothing left to push."""
    buffer = Buffer(data_dir / BUFFER_FILE)
    try:
        return buffer.cursor("pintu").record_count == device.record_count and buffer.backlog().pending == 0
    finally:
        buffer.close()


def pending(data_dir: Path) -> int:
    """Punches waiting in the gateway's buffer."""
    buffer = Buffer(data_dir / BUFFER_FILE)
    try:
        return buffer.backlog().pending
    finally:
        buffer.close()


def drain_and_check(
    consumer: FeedConsumer, device: ZkDevice, store_url: str, data_dir: Path, *logs: Path
) -> list[FeedItem]:
    """Once the terminal is quiet: the feed drains to its log, each record once, as the consumer saw it."""
    # Ends early when the gateway has nothing left to send: then what the feed lacks is lost, and shown.
    drained = lambda: len(consumer.items) >= device.record_count or gateway_done(data_dir, device)  # noqa: E731
    wait_until(drained, DRAIN_TIMEOUT_S, "the backlog to drain", *logs)
    time.sleep(1.5)  # a poll and a push more: anything doubled would show now
    feed = read_whole_feed(store_url)
    expected, got = device_punches(device), feed_punches(feed)
    missing, extra = sum((expected - got).values()), sum((got - expected).values())
    assert got == expected, f"{missing} record(s) missing from the feed, {extra} extra or doubled"
    assert len({item.event.event_id for item in feed}) == len(feed) == device.record_count
    seqs = [item.seq for item in feed]
    assert all(a < b for a, b in itertools.pairwise(seqs)), "feed seqs not strictly increasing"
    wait_until(lambda: len(consumer.items) == len(feed), 10, "the consumer to catch up", *logs)
    # The consumer resumed with after= across every outage and saw exactly the feed: no gap, no repeat.
    assert [(i.seq, i.event.event_id) for i in consumer.items] == [(i.seq, i.event.event_id) for i in feed]
    assert consumer.unexpected == [], consumer.unexpected
    return feed


def assert_clean_log(log: Path, *secrets: str) -> None:
    """No traceback, no 500, no secret in an operator's log."""
    text = log.read_text(errors="replace")
    for bad in ("Traceback", "Exception in ASGI application", "Internal Server Error", *secrets):
        assert bad not in text, f"{bad!r} in {log.name}:\n{log_tail(log)}"


def _resent(gateway_log: Path) -> bool:
    """Whether a kill took the store's answer after its commit: the gateway resent and heard "duplicate"."""
    return any(int(n) > 0 for n in re.findall(r"accepted, (\d+) duplicate", gateway_log.read_text()))


def test_store_killed_mid_ingest_loses_and_doubles_nothing(tmp_path: Path) -> None:
    device = ZkDevice.generate(users=50, records=RECORDS, serial="STKILL0001", seed=31)
    rng = random.Random(3101)
    with (
        ZkSimulator(device, protocol="tcp") as sim,
        StoreProcess(tmp_path / "store", "sqlite:///store.db", "opd-1", TOKEN) as store,
        FeedConsumer(store.url) as consumer,
        Puncher(device, seed=3102) as puncher,
        gateway_process(tmp_path, store.url, sim) as gateway_log,
    ):
        kills = 0
        while kills < STORE_KILLS or (kills < MAX_STORE_KILLS and not _resent(gateway_log)):
            # The kills past the first six wait for less: the terminal's log must last for all of them.
            growth = rng.randint(200, 1500) if kills < STORE_KILLS else rng.randint(100, 400)
            wait_for_growth(consumer, growth, gateway_log, store.log)
            store.kill()
            time.sleep(rng.uniform(0.1, 1.5))  # down a moment: the gateway's pushes fail meanwhile
            store.start()
            kills += 1
        puncher.stop.set()
        feed = drain_and_check(consumer, device, store.url, tmp_path / "data", gateway_log, store.log)
        store.stop()
    text = gateway_log.read_text()
    failures = re.findall(r"push failed: store at \S+ unreachable: (\w+)", text)
    cut_mid_request = [kind for kind in failures if kind != "ConnectError"]
    # Committed by the store, the answer lost with it: the gateway sent them again and heard "duplicate".
    committed_unanswered = sum(int(n) for n in re.findall(r"accepted, (\d+) duplicate", text))
    print(f"\n{kills} store kills; push failures {failures}; {committed_unanswered} sent again after a kill "
          f"had taken the store's answer; {len(feed)} events checked")  # fmt: skip
    assert cut_mid_request, f"no kill cut a push mid-request: {failures}"
    assert committed_unanswered > 0, "no kill landed between the store's commit and its answer"
    assert consumer.unavailable > 0, "the consumer never saw the store down"
    assert_clean_log(store.log, TOKEN)
    assert_clean_log(gateway_log, TOKEN)


DB_OUTAGE_S = 4.0
MIN_RETRY_GAP_S = 0.4  # the gateway's first backoff is at least 0.5 s; closer retries would be hammering
_POST_503 = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) .*answered 503 to POST /v1/punches", re.MULTILINE)


def database_server(backend: str) -> PostgresServer | MariaDBServer:
    """This test's own server (it is stopped and started), with commits that survive a server crash."""
    return PostgresServer(durable=True) if backend == "postgresql" else MariaDBServer(durable=True)


def check_store_says_database_down(store: StoreProcess) -> None:
    """While the database is down: /healthz and the feed answer 503, saying why, the feed with Retry-After."""
    health = httpx.get(f"{store.url}/healthz", timeout=10)
    assert health.status_code == 503 and health.json()["database"] == "unreachable", health.text
    feed = httpx.get(f"{store.url}/v1/feed", timeout=10, headers=FEED_AUTH)
    assert feed.status_code == 503 and "database is unavailable" in feed.json()["detail"], feed.text
    assert feed.headers.get("Retry-After"), feed.headers


def post_503_times(store_log: Path, since: int) -> list[datetime]:
    """When the store answered a batch with 503, from its log after byte ``since``."""
    text = store_log.read_bytes()[since:].decode(errors="replace")
    return [datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f") for stamp in _POST_503.findall(text)]


def database_outage(server: PostgresServer | MariaDBServer, store: StoreProcess, tmp_path: Path, crash: bool) -> int:
    """Stop the database under the serving store for DB_OUTAGE_S, then start it; returns the gateway's tries."""
    since, gateway_log = store.log.stat().st_size, tmp_path / "gateway.log"
    server.halt(crash=crash)
    down_at = time.monotonic()
    check_store_says_database_down(store)
    two_tries = lambda: len(post_503_times(store.log, since)) >= 2  # noqa: E731
    wait_until(two_tries, 30, "the gateway to try a batch twice while the database is down", store.log, gateway_log)
    time.sleep(max(0.0, DB_OUTAGE_S - (time.monotonic() - down_at)))
    tries = post_503_times(store.log, since)
    assert pending(tmp_path / "data") > 0, "the gateway's buffer let punches go while the store could not take them"
    server.launch()
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(tries)]
    assert min(gaps) >= MIN_RETRY_GAP_S, f"the gateway retried without backing off: {gaps}"
    # Recovered by itself: the same store process, no restart.
    ok = lambda: httpx.get(f"{store.url}/healthz", timeout=10).status_code == 200  # noqa: E731
    wait_until(ok, 30, "/healthz to say ok again", store.log)
    assert store.starts == 1 and store.proc is not None and store.proc.poll() is None
    return len(tries)


@pytest.mark.parametrize("backend", ["postgresql", "mariadb"])
def test_database_restarted_under_a_serving_store(backend: str, tmp_path: Path) -> None:
    device = ZkDevice.generate(users=50, records=RECORDS, serial=f"DBRST{backend[:5].upper()}", seed=41)
    rng = random.Random(4101)
    with running(database_server(backend)) as server:
        url = server.create_database(unique_name("restart")).replace(PASSWORD, "${DB_PASSWORD}")
        with (
            ZkSimulator(device, protocol="tcp") as sim,
            StoreProcess(tmp_path / "store", url, "opd-1", TOKEN, env={"DB_PASSWORD": PASSWORD}) as store,
            FeedConsumer(store.url) as consumer,
            Puncher(device, seed=4102) as puncher,
            gateway_process(tmp_path, store.url, sim) as gateway_log,
        ):
            tries = []
            for crash in (False, True):  # a service restart, then a crash with recovery
                wait_for_growth(consumer, rng.randint(1000, 5000), gateway_log, store.log)
                tries.append(database_outage(server, store, tmp_path, crash))
            puncher.stop.set()
            feed = drain_and_check(consumer, device, store.url, tmp_path / "data", gateway_log, store.log)
            store.stop()
    print(f"\n{backend}: gateway tries during the outages {tries}; {len(feed)} events checked")
    assert consumer.unavailable > 0, "the consumer never saw the feed unavailable"
    gateway_text = gateway_log.read_text()
    assert "push failed: store answered 503: the store's database is unavailable" in gateway_text
    assert gateway_text.count("store reachable again") >= 2, "each of the two outages is seen to end"
    # These servers keep commits through a server crash, not through a power cut: the store says so at start.
    power_cut = "fsync is off" if backend == "postgresql" else "innodb_flush_log_at_trx_commit is 2"
    assert power_cut in store.log.read_text()
    assert_clean_log(store.log, TOKEN, PASSWORD)
    assert_clean_log(gateway_log, TOKEN, PASSWORD)


@pytest.mark.parametrize("backend", ["postgresql", "mariadb"])
def test_store_warns_when_its_database_can_lose_acknowledged_commits(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    # The session's servers run for speed, without durable commits: what an operator must be told.
    with fresh_database(request, backend, tmp_path) as url:
        engine = make_engine(url)
        try:
            problems = durability_problems(engine)
        finally:
            engine.dispose()
    expected = "synchronous_commit is off" if backend == "postgresql" else "innodb_flush_log_at_trx_commit is 0"
    assert any(problem.startswith(expected) and "a crash of the database server" in problem for problem in problems)
    sqlite = make_engine(f"sqlite:///{tmp_path}/store.db")  # synchronous=FULL, set by make_engine
    try:
        assert durability_problems(sqlite) == []
    finally:
        sqlite.dispose()
