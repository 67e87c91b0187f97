"""The PC/SC driver against the real pcscd with vsmartcard's virtual readers and the project's card emulator.

The sink here records what the driver hands it, as the gateway's card keeper would take it; the
gateway-level tests (tests/gateway/test_card_service.py) put the real buffer and store behind it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from datetime import time as wall_time
from zoneinfo import ZoneInfo

import pytest

from ekinerja.drivers.card_reader import FEEDBACK_APDUS, CardFeedback, PcscSettings
from ekinerja.drivers.pcsc import PcscWatch
from ekinerja.drivers.punch_windows import PunchWindow
from ekinerja.drivers.sim.vpcd_card import VirtualCard
from ekinerja.sync.contract import Punch, PunchEvent, Source, Verify

from pcscd import PORTS, READERS, Pcscd, tap
from stack import wait_for

UIDS = {4: bytes.fromhex("04A1B2C3"), 7: bytes.fromhex("04112233445566"), 10: bytes.fromhex("04AABBCCDDEEFF001122")}


@dataclass
class RecordingSink:
    """The driver's sink: keeps every call, answers ``feedback`` for each punch."""

    feedback: CardFeedback = CardFeedback.ACCEPTED
    broken: bool = False  # the buffer cannot store (a full disk)
    punches: list[tuple[PunchEvent, str]] = field(default_factory=list)
    repeats: list[tuple[str, str]] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)
    seen: list[tuple[list[str], str | None]] = field(default_factory=list)
    punched_at: list[float] = field(default_factory=list)

    def punched(self, event: PunchEvent, reader: str) -> CardFeedback:
        if self.broken:
            raise OSError(28, "No space left on device")
        self.punches.append((event, reader))
        self.punched_at.append(time.monotonic())
        return self.feedback

    def repeated(self, reader: str, card_uid: str) -> None:
        self.repeats.append((reader, card_uid))

    def card_failed(self, reader: str, reason: str) -> None:
        self.failures.append((reader, reason))

    def readers_seen(self, readers: Sequence[str], problem: str | None) -> None:
        self.seen.append((list(readers), problem))

    @property
    def online(self) -> bool:
        return bool(self.seen) and bool(self.seen[-1][0])


def settings(**overrides: object) -> PcscSettings:
    values: dict[str, object] = {
        "gateway_id": "opd-1",
        "device_id": "kartu",
        "reader": "Virtual PCD",
        "timezone": "Asia/Makassar",
        "max_backoff_s": 1.0,
    }
    return PcscSettings(**{**values, **overrides})  # type: ignore[arg-type]


@contextmanager
def watching(sink: RecordingSink, **overrides: object) -> Iterator[PcscWatch]:
    watch = PcscWatch(settings(**overrides), sink)
    stop = threading.Event()
    thread = threading.Thread(target=watch.run, args=(stop,), daemon=True)
    thread.start()
    try:
        yield watch
    finally:
        stop.set()
        watch.abort()
        thread.join(5)
        assert not thread.is_alive(), "the watch did not stop within 5 s of abort()"


def wait_online(sink: RecordingSink) -> None:
    wait_for(lambda: sink.online, timeout_s=10, what="the readers watched")


def test_taps_of_several_uids_on_both_readers_become_punches(pcscd: Pcscd) -> None:
    sink = RecordingSink()
    with watching(sink):
        wait_online(sink)
        assert sink.seen[-1] == (list(READERS), None)
        for n, (length, uid) in enumerate(UIDS.items()):
            tap(VirtualCard(uid, port=PORTS[n % 2]), 0.3)
            wait_for(lambda n=n: len(sink.punches) == n + 1, what=f"the {length}-byte UID's punch")
    zone = ZoneInfo("Asia/Makassar")
    for (event, reader), (n, uid) in zip(sink.punches, enumerate(UIDS.values()), strict=True):
        assert reader == READERS[n % 2]
        assert event.subject.card_uid == uid.hex().upper()
        assert (event.source, event.verify, event.punch) == (Source.PCSC, Verify.CARD, Punch.UNKNOWN)
        assert event.timezone == "Asia/Makassar" and event.device_serial is None
        assert abs((datetime.now(zone).replace(tzinfo=None) - event.device_time).total_seconds()) < 10
        assert event.occurred_at == event.device_time.replace(tzinfo=zone)
    assert not sink.failures and not sink.repeats


def test_punch_windows_make_taps_in_or_out(pcscd: Pcscd) -> None:
    now = datetime.now(ZoneInfo("Asia/Jakarta")).time()
    start = wall_time(now.hour)
    windows = (PunchWindow(start, wall_time((now.hour + 1) % 24), Punch.IN),)
    sink = RecordingSink()
    with watching(sink, timezone="Asia/Jakarta", punch_windows=windows):
        wait_online(sink)
        tap(VirtualCard(UIDS[4]), 0.3)
        wait_for(lambda: sink.punches, what="the punch")
    assert sink.punches[0][0].punch is Punch.IN


def test_the_same_card_within_the_debounce_window_is_one_punch(pcscd: Pcscd) -> None:
    sink = RecordingSink()
    card, other = VirtualCard(UIDS[4], feedback=True), VirtualCard(UIDS[7])
    with watching(sink, debounce_s=60):
        wait_online(sink)
        first = tap(card, 0.3)
        wait_for(lambda: sink.punches, what="the first punch")
        again = tap(card, 0.3)
        wait_for(lambda: sink.repeats, what="the second tap seen as a repeat")
        tap(other, 0.3)
        wait_for(lambda: len(sink.punches) == 2, what="another card's punch")
    assert [e.subject.card_uid for e, _ in sink.punches] == ["04A1B2C3", "04112233445566"]
    assert sink.repeats == [(READERS[0], "04A1B2C3")]
    # The repeat is told "accepted" too: the punch it repeats is stored.
    accepted = bytes(FEEDBACK_APDUS[CardFeedback.ACCEPTED])
    assert [f.apdu for f in first.feedback] == [accepted] and [f.apdu for f in again.feedback] == [accepted]


def test_a_short_debounce_lets_a_second_tap_punch(pcscd: Pcscd) -> None:
    sink = RecordingSink()
    card = VirtualCard(UIDS[4])
    with watching(sink, debounce_s=0.5):
        wait_online(sink)
        tap(card, 0.3)
        wait_for(lambda: sink.punches, what="the first punch")
        time.sleep(0.6)  # the debounce window itself is what is tested
        tap(card, 0.3)
        wait_for(lambda: len(sink.punches) == 2, what="the second punch after the window")


def test_a_card_held_on_the_reader_is_one_punch(pcscd: Pcscd) -> None:
    sink = RecordingSink()
    with watching(sink, debounce_s=0):
        wait_online(sink)
        with VirtualCard(UIDS[10]).held() as held:
            wait_for(lambda: sink.punches, what="the punch of the held card")
            time.sleep(2.0)  # pcscd polls the slot every 0.4 s: five polls of a card lying there
            assert held.uid_reads == 1
        assert len(sink.punches) == 1 and not sink.repeats


def test_an_error_status_is_counted_with_its_reader_and_makes_no_punch(pcscd: Pcscd) -> None:
    sink = RecordingSink()
    bad = VirtualCard(UIDS[4], port=PORTS[1], status=bytes.fromhex("6A81"), feedback=True)
    with watching(sink):
        wait_online(sink)
        done = tap(bad, 0.3)
        wait_for(lambda: sink.failures, what="the failure reported")
    assert not sink.punches
    (reader, reason), *_ = sink.failures
    assert reader == READERS[1] and "6A81" in reason
    assert [f.apdu for f in done.feedback] == [bytes(FEEDBACK_APDUS[CardFeedback.ERROR])]


def test_feedback_follows_the_stored_punch_and_tells_an_unknown_card(pcscd: Pcscd) -> None:
    sink = RecordingSink(feedback=CardFeedback.UNKNOWN)
    told_at: list[float] = []
    card = VirtualCard(UIDS[7], feedback=True, on_feedback=lambda apdu: told_at.append(time.monotonic()))
    with watching(sink):
        wait_online(sink)
        first = tap(card, 0.4)
        wait_for(lambda: sink.punches, what="the punch")
        again = tap(card, 0.4)  # within the debounce window: no punch, and told the same
        wait_for(lambda: sink.repeats, what="the repeat")
    unknown = bytes(FEEDBACK_APDUS[CardFeedback.UNKNOWN])
    assert [f.apdu for f in first.feedback] == [unknown] and [f.apdu for f in again.feedback] == [unknown]
    assert sink.punched_at[0] <= told_at[0] and len(sink.punches) == 1


def test_a_punch_that_cannot_be_stored_is_told_as_an_error_and_logged(
    pcscd: Pcscd, caplog: pytest.LogCaptureFixture
) -> None:
    sink = RecordingSink(broken=True)
    card = VirtualCard(UIDS[4], feedback=True)
    with watching(sink):
        wait_online(sink)
        failed = tap(card, 0.3)
        wait_for(lambda: "NOT stored" in caplog.text, what="the lost punch logged")
        sink.broken = False
        tap(card, 0.3)  # tapped again once there is room: a punch, not a repeat of one never stored
        wait_for(lambda: sink.punches, what="the punch of the second tap")
    assert [f.apdu for f in failed.feedback] == [bytes(FEEDBACK_APDUS[CardFeedback.ERROR])]
    assert "card 04A1B2C3" in caplog.text and "enter it by hand" in caplog.text
    assert not sink.repeats


def test_a_reader_without_feedback_works_the_same_silently(pcscd: Pcscd) -> None:
    sink = RecordingSink()
    with watching(sink, debounce_s=0) as watch:
        wait_online(sink)
        for n in range(2):
            done = tap(VirtualCard(UIDS[4]), 0.3)  # answers 6D 00 to the LED APDU, as a plain reader
            wait_for(lambda n=n: len(sink.punches) == n + 1, what=f"punch {n + 1}")
            assert not done.feedback
        assert READERS[0] in watch._silent
    assert not sink.failures


def test_pcscd_restart_is_survived(pcscd: Pcscd) -> None:
    sink = RecordingSink()
    with watching(sink):
        wait_online(sink)
        pcscd.kill()
        wait_for(lambda: not sink.online, what="the readers reported offline")
        assert "pcscd" in (sink.seen[-1][1] or "")
        pcscd.start()
        wait_for(lambda: sink.online, what="the readers back online")
        tap(VirtualCard(UIDS[4]), 0.3)
        wait_for(lambda: sink.punches, what="a tap after the restart")
    offline = [problem for readers, problem in sink.seen if not readers]
    assert offline, "the outage was reported"


def test_a_card_lying_on_the_reader_through_a_pcscd_restart_is_still_one_punch(pcscd: Pcscd) -> None:
    sink = RecordingSink()
    with watching(sink, debounce_s=0, max_backoff_s=3) as watch:
        wait_online(sink)
        card = VirtualCard(UIDS[4])
        with card.held():
            wait_for(lambda: sink.punches, what="the punch")
            pcscd.stop()  # vpcd hangs up on the card as pcscd goes: for the driver, it never left
            wait_for(lambda: not sink.online, what="offline")
        # Once the retries are 1.5 s or more apart, the card is back before the driver looks again.
        wait_for(lambda: watch.backoff.failures >= 3, what="the third attempt to reach pcscd")
        pcscd.start()
        with card.held():
            wait_for(lambda: sink.online, what="online")
            time.sleep(1.0)  # a new punch would show within one 0.4 s poll
    assert len(sink.punches) == 1 and not sink.repeats


@pytest.mark.parametrize("pcscd_running", [True, False], ids=["pcscd-without-readers", "pcscd-down"])
def test_no_reader_at_start_then_one_appears(pcscd_daemon: Pcscd, pcscd_running: bool) -> None:
    if pcscd_running:
        pcscd_daemon.restart(readers=False)
    else:
        pcscd_daemon.stop()
    sink = RecordingSink()
    with watching(sink, reader="Virtual PCD 00 01"):
        wait_for(lambda: sink.seen, what="the first report")
        assert sink.seen[0][0] == []
        expected = "no reader matches 'Virtual PCD 00 01'" if pcscd_running else "pcscd cannot be reached"
        assert expected in (sink.seen[0][1] or "")
        pcscd_daemon.restart(readers=True)
        wait_for(lambda: sink.online, what="the reader picked up")
        assert sink.seen[-1] == (["Virtual PCD 00 01"], None)
        tap(VirtualCard(UIDS[7], port=PORTS[1]), 0.3)
        wait_for(lambda: sink.punches, what="a tap on the new reader")


def test_a_reader_unplugged_and_plugged_back_is_picked_up(pcscd: Pcscd) -> None:
    # vpcd's readers are fixed for a pcscd's life (its reader.conf.d is read at start): unplugging is
    # a pcscd started without them, plugging back one started with them.
    sink = RecordingSink()
    with watching(sink):
        wait_online(sink)
        pcscd.restart(readers=False)
        wait_for(lambda: not sink.online and "no reader matches" in (sink.seen[-1][1] or ""), what="unplugged")
        pcscd.restart(readers=True)
        wait_online(sink)
        tap(VirtualCard(UIDS[4]), 0.3)
        wait_for(lambda: sink.punches, what="a tap after plugging back")


def test_stop_is_prompt_while_waiting(pcscd: Pcscd) -> None:
    sink = RecordingSink()
    watch = PcscWatch(settings(), sink)
    watch.wait_ms = 30_000  # only SCardCancel can end this wait early
    thread = threading.Thread(target=watch.run, args=(threading.Event(),), daemon=True)
    thread.start()
    wait_online(sink)
    time.sleep(0.3)  # inside the long wait now
    started = time.monotonic()
    watch.abort()
    thread.join(5)
    assert not thread.is_alive() and time.monotonic() - started < 2


def test_an_idle_watch_does_not_spin(pcscd: Pcscd) -> None:
    sink = RecordingSink()
    with watching(sink, reader="Virtual PCD 00 01"):
        wait_online(sink)
        cpu = time.process_time()
        time.sleep(2.0)
        used = time.process_time() - cpu
    assert used < 0.3, f"{used:.2f} s of CPU in 2 s of waiting for a card"
    assert sink.seen == [(["Virtual PCD 00 01"], None)]  # and nothing re-reported while idle
