"""The virtual contactless card, read through the real pcscd and vsmartcard's vpcd reader.

Every test that puts a card on a reader reads it back with pyscard's low-level API, as a PC/SC
application would, and waits for reader states with SCardGetStatusChange instead of sleeping.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import pytest
from smartcard.scard import (
    SCARD_E_TIMEOUT,
    SCARD_LEAVE_CARD,
    SCARD_PROTOCOL_T0,
    SCARD_PROTOCOL_T1,
    SCARD_S_SUCCESS,
    SCARD_SCOPE_USER,
    SCARD_SHARE_SHARED,
    SCARD_STATE_CHANGED,
    SCARD_STATE_EMPTY,
    SCARD_STATE_PRESENT,
    SCARD_STATE_UNAWARE,
    SCardConnect,
    SCardDisconnect,
    SCardEstablishContext,
    SCardGetErrorMessage,
    SCardGetStatusChange,
    SCardReleaseContext,
    SCardTransmit,
)

from ekinerja import cli
from ekinerja.drivers.sim.vpcd_card import MIFARE_1K_ATR, CardError, Tap, VirtualCard

from pcscd import PORTS, READERS, Pcscd

READER, PORT = READERS[0], PORTS[0]
GET_UID = bytes.fromhex("FFCA000000")
# ACR122U LED/buzzer: red blinks, 3 x 200 ms on / 100 ms off, buzzer on during T1.
LED_BUZZER = bytes.fromhex("FF00400D0402010301")
UIDS = {
    4: bytes.fromhex("04A1B2C3"),
    7: bytes.fromhex("04A1B2C3D4E5F6"),
    10: bytes.fromhex("04A1B2C3D4E5F6071829"),
}
STATE_WAIT_S = 5.0


def _check(hresult: int, what: str) -> None:
    assert hresult == SCARD_S_SUCCESS, f"{what}: {SCardGetErrorMessage(hresult)}"


def wait_state(context: Any, flag: int, *, reader: str = READER, timeout_s: float = STATE_WAIT_S) -> tuple[int, bytes]:
    """Wait until the reader's state has ``flag``; returns the state and the card's ATR."""
    deadline = time.monotonic() + timeout_s
    known = SCARD_STATE_UNAWARE
    while True:
        remaining_ms = max(0, int((deadline - time.monotonic()) * 1000))
        hresult, states = SCardGetStatusChange(context, remaining_ms, [(reader, known)])
        assert hresult != SCARD_E_TIMEOUT, f"{reader}: state {flag:#x} not reached within {timeout_s} s"
        _check(hresult, "SCardGetStatusChange")
        _, state, atr = states[0]
        if state & flag:
            return state, bytes(atr)
        known = state & ~SCARD_STATE_CHANGED


def change(context: Any, state: int, timeout_s: float, *, reader: str = READER) -> int | None:
    """The reader's next state if it changes from ``state`` within ``timeout_s`` seconds, else None."""
    known = state & ~SCARD_STATE_CHANGED
    hresult, states = SCardGetStatusChange(context, int(timeout_s * 1000), [(reader, known)])
    if hresult == SCARD_E_TIMEOUT:
        return None
    _check(hresult, "SCardGetStatusChange")
    new_state: int = states[0][1]
    return new_state


def transmit(context: Any, apdu: bytes, *, reader: str = READER) -> bytes:
    """Connect to the card on the reader, send one APDU, disconnect; returns the response."""
    hresult, card, protocol = SCardConnect(context, reader, SCARD_SHARE_SHARED, SCARD_PROTOCOL_T0 | SCARD_PROTOCOL_T1)
    _check(hresult, "SCardConnect")
    try:
        hresult, response = SCardTransmit(card, protocol, list(apdu))
        _check(hresult, "SCardTransmit")
        return bytes(response)
    finally:
        SCardDisconnect(card, SCARD_LEAVE_CARD)


@pytest.fixture
def context(pcscd: Pcscd) -> Iterator[Any]:
    """A PC/SC context on the fixture's pcscd, with the first reader empty before and after."""
    hresult, ctx = SCardEstablishContext(SCARD_SCOPE_USER)
    _check(hresult, "SCardEstablishContext")
    # pcscd may still report the previous test's card for up to one 400 ms poll.
    wait_state(ctx, SCARD_STATE_EMPTY)
    try:
        yield ctx
    finally:
        wait_state(ctx, SCARD_STATE_EMPTY)
        SCardReleaseContext(ctx)


def free_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# --- read through pcscd -------------------------------------------------------------------------


@pytest.mark.parametrize("size", sorted(UIDS))
def test_uid_reads_back_through_pcscd(context: Any, size: int) -> None:
    card = VirtualCard(UIDS[size])
    with card.held() as record:
        _, atr = wait_state(context, SCARD_STATE_PRESENT)
        assert atr == MIFARE_1K_ATR
        assert transmit(context, GET_UID) == UIDS[size] + b"\x90\x00"
        # Le equal to the UID's length is as good as Le 00.
        assert transmit(context, GET_UID[:4] + bytes([size])) == UIDS[size] + b"\x90\x00"
    assert record.uid_reads == 2
    assert record.removed_at is not None
    assert record.connected_at <= record.first_message_at < record.removed_at


def test_answers_errors_like_a_contactless_reader(context: Any) -> None:
    with VirtualCard(UIDS[7]).held() as record:
        wait_state(context, SCARD_STATE_PRESENT)
        assert transmit(context, bytes.fromhex("FFCA000004")) == b"\x6c\x07"  # Le too short: 6C + length
        assert transmit(context, bytes.fromhex("FFCA010000")) == b"\x6a\x81"  # ATS bytes: not on MIFARE
        assert transmit(context, bytes.fromhex("00A4040000")) == b"\x6e\x00"  # other class
        assert transmit(context, bytes.fromhex("FFB0000010")) == b"\x6d\x00"  # other instruction
    assert record.uid_reads == 1  # only the short-Le GET UID; P1 01 is not a UID read


def test_status_option_fails_the_uid_read(context: Any) -> None:
    with VirtualCard(UIDS[4], status=b"\x63\x00").held() as record:
        wait_state(context, SCARD_STATE_PRESENT)
        assert transmit(context, GET_UID) == b"\x63\x00"
        assert transmit(context, bytes.fromhex("FFCA010000")) == b"\x6a\x81"  # only the UID read fails
    assert record.uid_reads == 1


def test_feedback_is_recorded_and_hooked_before_the_answer(context: Any) -> None:
    hooked: list[tuple[bytes, float]] = []
    card = VirtualCard(UIDS[4], feedback=True, on_feedback=lambda apdu: hooked.append((apdu, time.monotonic())))
    with card.held() as record:
        wait_state(context, SCARD_STATE_PRESENT)
        assert transmit(context, LED_BUZZER) == b"\x90\x00"
        answered_at = time.monotonic()
        assert transmit(context, LED_BUZZER[:4] + b"\x02\x01\x01") == b"\x67\x00"  # not 4 data bytes
    assert [item.apdu for item in record.feedback] == [LED_BUZZER]
    assert [apdu for apdu, _ in hooked] == [LED_BUZZER]
    assert record.feedback[0].at <= hooked[0][1] < answered_at


def test_feedback_unknown_without_feedback_support(context: Any) -> None:
    hooked: list[bytes] = []
    with VirtualCard(UIDS[4], on_feedback=hooked.append).held() as record:
        wait_state(context, SCARD_STATE_PRESENT)
        assert transmit(context, LED_BUZZER) == b"\x6d\x00"
    assert record.feedback == []
    assert hooked == []


# --- presence: taps and held cards ----------------------------------------------------------------


def test_tap_is_seen_then_removed(context: Any) -> None:
    with ThreadPoolExecutor(1) as pool:
        future: Future[Tap] = pool.submit(VirtualCard(UIDS[4]).tap, hold_s=0.3)
        wait_state(context, SCARD_STATE_PRESENT)
        state, _ = wait_state(context, SCARD_STATE_EMPTY)
        tap = future.result(timeout=STATE_WAIT_S)
    assert not state & SCARD_STATE_PRESENT
    assert tap.removed_at is not None
    assert tap.connected_at <= tap.first_message_at
    assert tap.removed_at - tap.first_message_at >= 0.3  # held from vpcd's first message
    assert (tap.uid_reads, tap.feedback, tap.reader_closed) == (0, [], False)


def test_held_card_stays_on_the_reader(context: Any) -> None:
    with VirtualCard(UIDS[10]).held() as record:
        state, _ = wait_state(context, SCARD_STATE_PRESENT)
        # Two of pcscd's 400 ms presence polls: the card must not blink off and on.
        new_state = change(context, state, 0.9)
        assert new_state is None, f"state {state:#x} changed to {new_state:#x}"
        assert transmit(context, GET_UID) == UIDS[10] + b"\x90\x00"
        assert record.removed_at is None
    wait_state(context, SCARD_STATE_EMPTY)
    assert record.removed_at is not None and not record.reader_closed


def test_two_readers_are_independent(context: Any) -> None:
    with VirtualCard(UIDS[4]).held(), VirtualCard(UIDS[7], port=PORTS[1]).held():
        wait_state(context, SCARD_STATE_PRESENT)
        wait_state(context, SCARD_STATE_PRESENT, reader=READERS[1])
        assert transmit(context, GET_UID) == UIDS[4] + b"\x90\x00"
        assert transmit(context, GET_UID, reader=READERS[1]) == UIDS[7] + b"\x90\x00"
    wait_state(context, SCARD_STATE_EMPTY, reader=READERS[1])


def test_second_card_on_a_busy_reader_is_not_seen(context: Any) -> None:
    with VirtualCard(UIDS[4]).held():
        wait_state(context, SCARD_STATE_PRESENT)
        # vpcd serves one card per reader: the second connects (listen backlog) but is never polled.
        with pytest.raises(CardError, match="another card already on it"):
            VirtualCard(UIDS[7]).tap(timeout_s=0.5)
        assert transmit(context, GET_UID) == UIDS[4] + b"\x90\x00"


# --- errors, without pcscd ----------------------------------------------------------------------


def test_no_vpcd_is_a_clear_error() -> None:
    port = free_port()
    with pytest.raises(CardError, match=rf"no virtual reader \(vpcd\) listening on 127\.0\.0\.1:{port}: is pcscd"):
        VirtualCard(UIDS[4], port=port).tap()


def test_silent_reader_times_out() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        card = VirtualCard(UIDS[4], port=server.getsockname()[1])
        started = time.monotonic()
        with pytest.raises(CardError, match=r"did not talk to the card within 0\.3 s"):
            card.tap(timeout_s=0.3)
        assert 0.3 <= time.monotonic() - started < 2.0
        with pytest.raises(CardError, match="did not talk"), card.held(timeout_s=0.1):
            pass


def test_reader_hanging_up_during_a_tap_is_an_error() -> None:
    """A fake vpcd: asks for the ATR, reads it, hangs up."""
    with socket.create_server(("127.0.0.1", 0)) as server:

        def fake_vpcd() -> None:
            conn, _ = server.accept()
            with conn:
                conn.sendall(b"\x00\x01\x04")
                received = b""
                while len(received) < 2 + len(MIFARE_1K_ATR):
                    received += conn.recv(64)
                answers.append(received)

        answers: list[bytes] = []
        thread = threading.Thread(target=fake_vpcd)
        thread.start()
        with pytest.raises(CardError, match="hung up during the tap"):
            VirtualCard(UIDS[4], port=server.getsockname()[1]).tap(hold_s=2.0)
        thread.join(5)
    assert answers == [bytes([0, len(MIFARE_1K_ATR)]) + MIFARE_1K_ATR]


@pytest.mark.parametrize(
    ("apdu", "answer"),
    [
        ("FFCA0000", "04A1B2C39000"),  # no Le: the whole UID
        ("FFCA000005", "04A1B2C39000"),  # Le longer than the UID
        ("FFCA000003", "6C04"),
        ("FFCA00000100", "6700"),  # data where none belongs
        ("FFCA0200", "6B00"),
        ("FFCA", "6700"),
        ("FF00400D0402010301", "6D00"),  # no feedback support
    ],
)
def test_answer_table(apdu: str, answer: str) -> None:
    assert VirtualCard(UIDS[4]).answer(bytes.fromhex(apdu)).hex().upper() == answer


def test_status_option_answers_every_uid_read() -> None:
    card = VirtualCard(UIDS[4], status=b"\x6a\x81")
    assert [card.answer(bytes.fromhex(apdu)) for apdu in ("FFCA000000", "FFCA000002")] == [b"\x6a\x81"] * 2


# --- ekinerja sim card ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("uid", "complaint"),
    [("04:A1:B2", "must be 4, 7 or 10 bytes, got 3"), ("04A1B2CX", "must be hex digits"), ("", "got 0")],
)
def test_cli_bad_uid_exits_2(capsys: pytest.CaptureFixture[str], uid: str, complaint: str) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["sim", "card", "--port", str(PORT), "--uid", uid])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "argument --uid" in err and complaint in err


def test_cli_without_vpcd_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port()
    assert cli.main(["sim", "card", "--port", str(port), "--uid", "04 A1 B2 C3"]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.strip() == (
        f"no virtual reader (vpcd) listening on 127.0.0.1:{port}: is pcscd running with vsmartcard-vpcd "
        "installed? (Connection refused)"
    )


def read_each_tap(context: Any, taps: int) -> list[bytes]:
    """What a PC/SC application reads from ``taps`` cards, one after the other."""
    uids = []
    for _ in range(taps):
        wait_state(context, SCARD_STATE_PRESENT)
        uids.append(transmit(context, GET_UID))
        wait_state(context, SCARD_STATE_EMPTY)
    return uids


def test_cli_taps_twice(context: Any, capsys: pytest.CaptureFixture[str]) -> None:
    with ThreadPoolExecutor(1) as pool:
        reads = pool.submit(read_each_tap, context, 2)
        argv = ["sim", "card", "--port", str(PORT), "--uid", "04:a1:b2:c3", "--taps", "2", "--hold", "0.3"]
        code = cli.main([*argv, "--gap", "0.2", "--feedback"])
        assert reads.result(timeout=STATE_WAIT_S) == [UIDS[4] + b"\x90\x00"] * 2
    assert code == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    for number, line in enumerate(lines, 1):
        assert re.fullmatch(
            rf"tap {number}/2: card 04A1B2C3 on 127\.0\.0\.1:{PORT}, read 1 time\(s\), feedback: none", line
        ), line
