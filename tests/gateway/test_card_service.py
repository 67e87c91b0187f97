"""Card readers in the running gateway: real pcscd, the vpcd card emulator, the real buffer and store."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ekinerja import cli
from ekinerja.config.gateway import GatewayConfig
from ekinerja.config.loader import load_model
from ekinerja.drivers.card_reader import FEEDBACK_APDUS, CardFeedback
from ekinerja.drivers.sim.vpcd_card import VirtualCard
from ekinerja.gateway.service import BUFFER_FILE, GatewayService
from ekinerja.store.db import make_engine
from ekinerja.store.punch_input import unmatched
from ekinerja.store.registry import import_employees

from pcscd import PORTS, READERS, Pcscd, tap
from stack import read_whole_feed, running, store_server, wait_for

TOKEN = "card-test-token-1"
ANI, BUDI = "198503142010012003", "199001012015031001"
REGISTERED = {"04A1B2C3": ANI, "04112233445566": BUDI}
STRANGER = "04AABBCCDDEEFF001122"


def card_gateway(tmp_path: Path, url: str, reader: str = "Virtual PCD") -> GatewayService:
    text = (
        f'[gateway]\nid = "opd-1"\ndata_dir = "data"\n\n'
        f'[store]\nurl = "{url}"\ntoken = "{TOKEN}"\npush_interval_s = 0.5\ncards_refresh_s = 10\n\n'
        f'[[devices]]\nid = "kartu"\nkind = "pcsc"\nreader = "{reader}"\nmax_backoff_s = 1\n'
        '\n[web]\nlisten = "127.0.0.1:0"\n'
    )
    path = tmp_path / "gateway.toml"
    path.write_text(text)
    return GatewayService(load_model(path, GatewayConfig))


def register_cards(database_url: str) -> None:
    rows = "".join(f"{nip},Pegawai {n},Umum,,{uid},2025-01-01\n" for n, (uid, nip) in enumerate(REGISTERED.items()))
    engine = make_engine(database_url)
    try:
        import_employees(
            engine, "nip,name,unit,zk_user_id,card_uid,active_from\n" + rows, "employees.csv", "test", datetime.now(UTC)
        )
    finally:
        engine.dispose()


def buffered(buffer_file: Path, card_uid: str) -> int:
    """Punches of the card in the buffer, read over a connection of its own (what is committed)."""
    with sqlite3.connect(buffer_file) as conn:
        return int(conn.execute("SELECT count(*) FROM events WHERE subject = ?", (f"card:{card_uid}",)).fetchone()[0])


def test_taps_reach_the_buffer_before_the_beep_and_the_store_resolves_the_cards(tmp_path: Path, pcscd: Pcscd) -> None:
    database = f"sqlite:///{tmp_path}/store.db"
    with store_server(database, {"opd-1": TOKEN}) as url:
        register_cards(database)
        service = card_gateway(tmp_path, url)
        buffer_file = tmp_path / "data" / BUFFER_FILE
        stored_when_told: dict[str, int] = {}
        with running(service):
            status = service.card_status["kartu"]
            wait_for(lambda: status.online and service.known_cards.fetched_at, what="readers and card list")
            assert status.readers == list(READERS)
            taps = {}
            for n, uid in enumerate([*REGISTERED, STRANGER]):

                def told(_apdu: bytes, uid: str = uid) -> None:
                    stored_when_told[uid] = buffered(buffer_file, uid)

                card = VirtualCard(bytes.fromhex(uid), port=PORTS[n % 2], feedback=True, on_feedback=told)
                taps[uid] = tap(card, 0.4)
            wait_for(lambda: len(read_whole_feed(url)) == 3, what="three punches in the store")
            assert (status.punches, status.unknown_cards, status.card_errors) == (3, 1, 0)
        # Every beep came after its punch was committed to the buffer.
        assert stored_when_told == {uid: 1 for uid in [*REGISTERED, STRANGER]}
        told = {uid: [f.apdu for f in tap.feedback] for uid, tap in taps.items()}
        accepted, unknown = bytes(FEEDBACK_APDUS[CardFeedback.ACCEPTED]), bytes(FEEDBACK_APDUS[CardFeedback.UNKNOWN])
        assert told == {"04A1B2C3": [accepted], "04112233445566": [accepted], STRANGER: [unknown]}
        feed = read_whole_feed(url)
        assert sorted(item.event.subject.card_uid or "" for item in feed) == sorted([*REGISTERED, STRANGER])
        assert {item.event.source for item in feed} == {"pcsc"} and {item.event.verify for item in feed} == {"card"}
        engine = make_engine(database)
        try:
            with engine.connect() as conn:
                left = [(u.subject_kind, u.subject_value) for u in unmatched(conn)]
        finally:
            engine.dispose()
        assert left == [("card_uid", STRANGER)]  # the registered cards resolve to their NIPs


def test_pcscd_killed_and_started_again_mid_run(tmp_path: Path, pcscd: Pcscd) -> None:
    with store_server(f"sqlite:///{tmp_path}/store.db", {"opd-1": TOKEN}) as url:
        service = card_gateway(tmp_path, url, reader=READERS[1])
        with running(service):
            status = service.card_status["kartu"]
            wait_for(lambda: status.online, what="the reader watched")
            tap(VirtualCard(bytes.fromhex("04A1B2C3"), port=PORTS[1]), 0.3)
            wait_for(lambda: status.punches == 1, what="the first punch")
            pcscd.kill()
            wait_for(lambda: not status.online, what="the reader reported offline")
            assert status.problem is not None and "pcscd" in status.problem
            offline_since = status.last_change
            pcscd.start()
            wait_for(lambda: status.online, timeout_s=20, what="the reader back online")
            assert status.last_change is not None and offline_since is not None and status.last_change > offline_since
            assert status.problem is None
            tap(VirtualCard(bytes.fromhex("04112233445566"), port=PORTS[1]), 0.3)
            wait_for(lambda: len(read_whole_feed(url)) == 2, what="both punches in the store")


def test_devices_and_check_config_show_the_card_readers(
    tmp_path: Path, pcscd: Pcscd, capsys: pytest.CaptureFixture[str]
) -> None:
    card_gateway(tmp_path, "http://127.0.0.1:9", reader="Virtual PCD 00 01").close()
    config = str(tmp_path / "gateway.toml")
    assert cli.main(["gateway", "devices", "--config", config]) == 0
    assert "kartu: card reader(s) Virtual PCD 00 01" in capsys.readouterr().out
    assert cli.main(["gateway", "check-config", "--config", config]) == 0
    assert "device kartu: pcsc card reader(s) matching 'Virtual PCD 00 01', debounce 60 s" in capsys.readouterr().out
    pcscd.stop()
    assert cli.main(["gateway", "devices", "--config", config, "--json"]) == 1
    shown = json.loads(capsys.readouterr().out)["kartu"]
    assert shown["online"] is False and "pcscd cannot be reached" in shown["error"]


def test_a_card_list_survives_a_restart_and_an_unreachable_store(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path}/store.db"
    with store_server(database, {"opd-1": TOKEN}) as url:
        register_cards(database)
        service = card_gateway(tmp_path, url)
        try:
            assert service.known_cards.is_known("04A1B2C3") is None  # never fetched: nobody is called unknown
            assert service.refresh_known_cards()
            assert service.known_cards.is_known("04A1B2C3") is True
            assert service.known_cards.is_known(STRANGER) is False
        finally:
            service.close()
    again = card_gateway(tmp_path, "http://127.0.0.1:9")  # the store is gone: the list on disk is kept
    try:
        assert not again.refresh_known_cards()
        assert again.known_cards.is_known("04112233445566") is True and len(again.known_cards) == 2
    finally:
        again.close()
    (tmp_path / "data" / "known_cards.json").write_text("{not json")
    broken = card_gateway(tmp_path, "http://127.0.0.1:9")
    try:
        assert broken.known_cards.is_known("04A1B2C3") is None  # unreadable: back to calling nobody unknown
    finally:
        broken.close()
