"""pcscd killed (kill -9) and started again, again and again, while cards are tapped on both virtual readers.

Each reader has its own tapper: a thread that puts a new card (a UID never used before, registered
in the store) on the reader, holds it, takes it off, waits for pcscd to see the reader empty, and
starts again. What every tap became is read from the card's side (the emulator records the GET DATA
it answered and the LED/buzzer command it was sent) and compared with the buffer and the store:

- a tap the reader answered "accepted" is in the buffer and in the store exactly once, whether or
  not a kill cut it short afterwards;
- a tap that could not get on the reader (pcscd down: vpcd not listening, or it died before it
  talked to the card) made no punch, nor did one whose UID was never read;
- a tap read but never told "accepted" made at most one;
- the store holds exactly the buffer's punches, and the reader went offline and came back each time.
"""

from __future__ import annotations

import sqlite3
import threading
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from ekinerja.config.gateway import GatewayConfig
from ekinerja.config.loader import load_model
from ekinerja.drivers.card_reader import FEEDBACK_APDUS, CardFeedback
from ekinerja.drivers.sim.vpcd_card import CardError, VirtualCard
from ekinerja.gateway.card_keeper import CardReaderStatus
from ekinerja.gateway.service import BUFFER_FILE, GatewayService
from ekinerja.store.db import make_engine
from ekinerja.store.registry import import_employees

from pcscd import PORTS, READERS, Pcscd, wait_empty
from stack import read_whole_feed, running, store_server, wait_for

TOKEN = "card-restart-token-1"
# Where each kill lands: between two taps, as a card is put on a reader (before pcscd talks to
# it), or while a card lies there (pcscd read it and said "accepted" within milliseconds).
KILL_AT = ("put on", "between", "lying", "put on", "between")
KILLS = len(KILL_AT)
TAPS_BETWEEN = 4  # accepted taps (both readers together) before each kill and after the last restart
HOLD_S = 0.3  # counted from vpcd's first message (RIG.md: at least 0.1 s)
CARDS_PER_READER = 200  # registered in advance: a tap uses each at most once
ACCEPTED = bytes(FEEDBACK_APDUS[CardFeedback.ACCEPTED])
OUTCOMES = ("accepted", "read", "unread", "refused")


def card_uid(reader: int, n: int) -> str:
    """The n-th card of a reader: 7 bytes, unique."""
    return f"04{reader:02X}{n:08X}"


@dataclass(frozen=True)
class Attempt:
    """One tap as the card saw it: ``refused`` (it could not get on the reader), ``accepted`` (told so),
    ``read`` (its UID read, not told accepted) or ``unread``; ``cut`` when vpcd hung up during it."""

    uid: str
    outcome: str
    cut: bool = False


class Tapper:
    """Taps new cards on one virtual reader in a loop, in a thread, until stopped; records every attempt."""

    def __init__(self, reader: int) -> None:
        self.reader = reader
        self.attempts: list[Attempt] = []
        self.putting = threading.Event()  # a card is being put on the reader now
        self.holding = threading.Event()  # a card lies on the reader now
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"tapper {reader}", daemon=True)

    def _run(self) -> None:
        for n in range(CARDS_PER_READER):  # ample: a run uses a few dozen
            if self.stop.is_set():
                return
            self.attempts.append(self._tap(card_uid(self.reader, n)))
            self._settle()

    def _tap(self, uid: str) -> Attempt:
        card = VirtualCard(bytes.fromhex(uid), port=PORTS[self.reader], feedback=True)
        self.putting.set()
        try:
            with card.held(timeout_s=2) as tap:
                self.putting.clear()
                self.holding.set()
                self.stop.wait(HOLD_S)
        except CardError:  # no vpcd listening (pcscd is down), or it hung up before it talked to the card
            return Attempt(uid, "refused")
        finally:
            self.putting.clear()
            self.holding.clear()
        told = any(f.apdu == ACCEPTED for f in tap.feedback)
        return Attempt(uid, "accepted" if told else "read" if tap.uid_reads else "unread", tap.reader_closed)

    def _settle(self) -> None:
        """Until pcscd sees the reader empty (the next card is then new to it); a pause while pcscd is down."""
        try:
            wait_empty(READERS[self.reader], timeout_s=1)
        except (ConnectionError, TimeoutError):
            self.stop.wait(0.2)

    def count(self, outcome: str) -> int:
        """Attempts so far that ended so."""
        return sum(a.outcome == outcome for a in list(self.attempts))


def register_cards(database_url: str) -> None:
    """Every card a tapper may use, each held by its own employee (so the readers answer "accepted")."""
    lines = ["nip,name,unit,zk_user_id,card_uid,active_from"]
    for n, uid in enumerate(card_uid(r, i) for r in range(len(READERS)) for i in range(CARDS_PER_READER)):
        born = (date(1980, 1, 1) + timedelta(days=n)).strftime("%Y%m%d")
        lines.append(f"{born}2010011001,Pegawai {n},Umum,,{uid},2025-01-01")
    engine = make_engine(database_url)
    try:
        import_employees(engine, "\n".join(lines) + "\n", "cards.csv", "test", datetime.now(UTC))
    finally:
        engine.dispose()


def card_gateway(tmp_path: Path, url: str) -> GatewayService:
    """A gateway with one card-reader entry watching both virtual readers."""
    text = (
        f'[gateway]\nid = "opd-1"\ndata_dir = "data"\n\n'
        f'[store]\nurl = "{url}"\ntoken = "{TOKEN}"\npush_interval_s = 0.5\ncards_refresh_s = 600\n\n'
        '[[devices]]\nid = "kartu"\nkind = "pcsc"\nreader = "Virtual PCD"\nmax_backoff_s = 1\n'
        '\n[web]\nlisten = "127.0.0.1:0"\n'
    )
    path = tmp_path / "gateway.toml"
    path.write_text(text)
    return GatewayService(load_model(path, GatewayConfig))


def accepted(tappers: list[Tapper]) -> int:
    """Accepted taps so far, on both readers."""
    return sum(t.count("accepted") for t in tappers)


def kill_and_restart(pcscd: Pcscd, status: CardReaderStatus, tappers: list[Tapper], kill: int) -> None:
    """Kill pcscd: the reader goes offline, taps fail at the card; start it: the reader is back online."""
    wait_for(lambda: accepted(tappers) >= TAPS_BETWEEN * kill, what=f"{TAPS_BETWEEN} accepted taps before kill {kill}")
    when, tapper = KILL_AT[kill - 1], tappers[kill % 2]
    if when != "between":
        moment = tapper.putting if when == "put on" else tapper.holding
        wait_for(moment.is_set, what=f"a card {when} reader {tapper.reader}")
    pcscd.kill()
    wait_for(lambda: not status.online, what=f"the reader offline after kill {kill}")
    assert status.problem is not None and "pcscd" in status.problem, status.problem
    refused = [t.count("refused") for t in tappers]
    wait_for(
        lambda: all(t.count("refused") > n for t, n in zip(tappers, refused, strict=True)),
        what=f"a tap on each reader to fail while pcscd is down (kill {kill})",
    )
    went_offline = status.last_change
    pcscd.start()
    wait_for(lambda: status.online, what=f"the reader online again after kill {kill}")
    assert status.problem is None and status.last_change != went_offline


def punches_by_uid(buffer_file: Path, feed_uids: list[str]) -> tuple[Counter[str], Counter[str]]:
    """(punches per card in the buffer, read over a connection of its own; punches per card in the store)."""
    with sqlite3.connect(buffer_file) as conn:
        rows = conn.execute("SELECT subject FROM events WHERE subject LIKE 'card:%'").fetchall()
    return Counter(subject.removeprefix("card:") for (subject,) in rows), Counter(feed_uids)


def test_pcscd_killed_again_and_again_while_cards_are_tapped(tmp_path: Path, pcscd: Pcscd) -> None:
    database = f"sqlite:///{tmp_path}/store.db"
    with store_server(database, {"opd-1": TOKEN}) as url:
        register_cards(database)
        service = card_gateway(tmp_path, url)
        tappers = [Tapper(reader) for reader in range(len(READERS))]
        with running(service):
            status = service.card_status["kartu"]
            wait_for(lambda: status.online and service.known_cards.fetched_at, what="the readers and the card list")
            try:
                for tapper in tappers:
                    tapper.thread.start()
                for kill in range(1, KILLS + 1):
                    kill_and_restart(pcscd, status, tappers, kill)
                wait_for(lambda: accepted(tappers) >= TAPS_BETWEEN * (KILLS + 1), what="taps after the last restart")
            finally:
                for tapper in tappers:
                    tapper.stop.set()
                for tapper in tappers:
                    tapper.thread.join(10)
            stored = status.punches
            wait_for(lambda: len(read_whole_feed(url)) == stored, what=f"the {stored} punches in the store")
        feed_uids = [item.event.subject.card_uid or "" for item in read_whole_feed(url)]
    check_taps([a for t in tappers for a in t.attempts], *punches_by_uid(tmp_path / "data" / BUFFER_FILE, feed_uids))


def check_taps(attempts: list[Attempt], buffered: Counter[str], in_store: Counter[str]) -> None:
    """Each tap made the punches its outcome allows, and the store holds exactly what the buffer holds."""
    assert in_store == buffered, "the store does not hold exactly the buffer's punches, once each"
    made = {outcome: [buffered[a.uid] for a in attempts if a.outcome == outcome] for outcome in OUTCOMES}
    assert all(n == 1 for n in made["accepted"]), f"accepted taps not stored exactly once: {made['accepted']}"
    assert not any(made["refused"] + made["unread"]), "a tap that was never read made a punch"
    assert all(n <= 1 for n in made["read"]), "a tap made two punches"
    tapped = {a.uid for a in attempts}
    assert set(buffered) <= tapped, f"punches of cards never tapped: {set(buffered) - tapped}"
    counts = {outcome: len(n) for outcome, n in made.items()}
    cut = Counter(a.outcome for a in attempts if a.cut)
    print(f"\n{KILLS} pcscd kills; taps {counts}, of which cut short by a kill {dict(cut)}; {len(buffered)} punches")
