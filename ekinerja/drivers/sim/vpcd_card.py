"""A virtual contactless card for vsmartcard's vpcd, the virtual reader driver inside pcscd.

A card is a TCP client of vpcd: connecting puts it on the reader, closing the socket takes it off.
Every message, both ways, is a 2-byte big-endian length and a payload. A 1-byte payload from vpcd
is a control code (power off, power on, reset: no answer; get ATR: answer the ATR); a longer one
is a command APDU, answered with a response APDU.

The card answers what a PC/SC part 3 contactless reader answers for a MIFARE Classic: GET DATA
``FF CA 00 00 Le`` gives the UID. It can also accept the ACR122U LED/buzzer pseudo-APDU
``FF 00 40 ..`` (``feedback=True``) and record it, so tests can see what a reader was told to do.

Timing (RIG.md, "PC/SC"): pcscd polls each slot every 400 ms, so a tap is held for ``hold_s``
counted from vpcd's first message, not from connect(): a card gone before pcscd looked was never
there. Only standard library here: simulators must not need pyscard.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from ekinerja.errors import OperatorError

log = logging.getLogger("ekinerja.sim.card")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 35963  # vpcd's first reader, "Virtual PCD 00 00"
# MIFARE Classic 1K as PC/SC part 3 readers report it.
MIFARE_1K_ATR = bytes.fromhex("3B8F8001804F0CA000000306030001000000006A")

POWER_OFF, POWER_ON, RESET, GET_ATR = 0, 1, 2, 4

SW_OK = b"\x90\x00"
SW_WRONG_LENGTH = b"\x67\x00"
SW_WRONG_P1P2 = b"\x6b\x00"
SW_NOT_SUPPORTED = b"\x6a\x81"
SW_INS_UNKNOWN = b"\x6d\x00"
SW_CLA_UNKNOWN = b"\x6e\x00"

_LENGTH = struct.Struct(">H")
# Linux only; quick ACKs are a speed-up, not needed for correctness.
_QUICKACK: int | None = getattr(socket, "TCP_QUICKACK", None)
# How long held() waits for its thread to finish after closing the socket.
_JOIN_TIMEOUT_S = 2.0

FeedbackHook = Callable[[bytes], None]


class CardError(OperatorError):
    """The virtual card could not be put on, or kept on, the virtual reader."""


class _ReaderClosed(Exception):
    """vpcd closed the connection: pcscd stopped or unloaded the reader."""


@dataclass(frozen=True)
class Feedback:
    """One LED/buzzer pseudo-APDU the card received, and when (time.monotonic())."""

    apdu: bytes
    at: float


@dataclass
class Tap:
    """What happened while the card was on the reader; times are time.monotonic().

    ``uid_reads`` counts GET DATA UID commands answered (with the UID or with an error status).
    ``reader_closed`` is true if vpcd hung up before the card was taken off.
    """

    uid: bytes
    connected_at: float
    first_message_at: float
    removed_at: float | None = None
    uid_reads: int = 0
    feedback: list[Feedback] = field(default_factory=list)
    reader_closed: bool = False


class VirtualCard:
    """A contactless card that taps, or is held on, one of vpcd's virtual readers."""

    def __init__(
        self,
        uid: bytes,
        *,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        atr: bytes = MIFARE_1K_ATR,
        status: bytes | None = None,
        feedback: bool = False,
        on_feedback: FeedbackHook | None = None,
    ) -> None:
        """A card with this UID; ``status`` (2 bytes) makes GET DATA fail with that status word.

        ``feedback`` makes the card accept (and record) the ACR122U LED/buzzer pseudo-APDU;
        ``on_feedback`` is called with each one before it is answered.
        """
        if not 1 <= len(uid) <= 253:
            raise ValueError(f"a UID is 1 to 253 bytes, got {len(uid)}")
        if status is not None and len(status) != 2:
            raise ValueError(f"a status word is 2 bytes, got {status.hex()!r}")
        if not 2 <= len(atr) <= 33:
            raise ValueError(f"an ATR is 2 to 33 bytes, got {len(atr)}")
        self.uid = bytes(uid)
        self.host = host
        self.port = port
        self.atr = bytes(atr)
        self.status = status
        self.feedback = feedback
        self.on_feedback = on_feedback

    @property
    def address(self) -> str:
        """``host:port`` of the virtual reader, for messages."""
        return f"{self.host}:{self.port}"

    def tap(self, hold_s: float = 0.5, timeout_s: float = 5.0) -> Tap:
        """Put the card on the reader for ``hold_s`` seconds after vpcd first talks to it, then remove it.

        Raises CardError if no vpcd listens, if vpcd does not take the card or say anything to it
        within ``timeout_s`` (another card already on that reader, or waiting for it), or if vpcd
        hangs up during the tap.
        """
        sock, record = self._put_on(timeout_s)
        try:
            self._serve(sock, record, until=record.first_message_at + hold_s)
        except _ReaderClosed:
            raise CardError(f"the virtual reader on {self.address} hung up during the tap: did pcscd stop?") from None
        finally:
            _remove(sock, record)
        return record

    @contextlib.contextmanager
    def held(self, timeout_s: float = 5.0) -> Iterator[Tap]:
        """Keep the card on the reader until the block exits; yields the live Tap record.

        The block starts once vpcd has talked to the card (CardError after ``timeout_s`` if it
        does not); a background thread answers vpcd meanwhile.
        """
        sock, record = self._put_on(timeout_s)
        lifting = threading.Event()
        thread = threading.Thread(target=self._serve_held, args=(sock, record, lifting), name="vpcd-card", daemon=True)
        thread.start()
        try:
            yield record
        finally:
            lifting.set()
            # shutdown() wakes the thread's blocking recv, so it ends without polling a flag.
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            thread.join(_JOIN_TIMEOUT_S)
            _remove(sock, record)

    def answer(self, apdu: bytes, record: Tap | None = None) -> bytes:
        """The response APDU to a command APDU (``record``, if given, notes reads and feedback)."""
        if len(apdu) < 4:
            return SW_WRONG_LENGTH
        cla, ins, p1 = apdu[0], apdu[1], apdu[2]
        if cla != 0xFF:
            return SW_CLA_UNKNOWN
        if ins == 0xCA:
            return self._get_data(apdu, record)
        if ins == 0x00 and p1 == 0x40 and self.feedback:
            return self._led_buzzer(apdu, record)
        return SW_INS_UNKNOWN

    def _get_data(self, apdu: bytes, record: Tap | None) -> bytes:
        """GET DATA (PC/SC part 3): P1 00 is the UID; P1 01 (ATS bytes) a MIFARE card has not."""
        p1, p2 = apdu[2], apdu[3]
        if len(apdu) > 5:
            return SW_WRONG_LENGTH
        if p1 == 0x01:
            return SW_NOT_SUPPORTED
        if p1 != 0x00 or p2 != 0x00:
            return SW_WRONG_P1P2
        if record is not None:
            record.uid_reads += 1
        if self.status is not None:
            return self.status
        le = apdu[4] if len(apdu) == 5 else 0  # no Le, like Le 00: the whole UID
        if 0 < le < len(self.uid):
            return bytes([0x6C, len(self.uid)])
        return self.uid + SW_OK

    def _led_buzzer(self, apdu: bytes, record: Tap | None) -> bytes:
        """ACR122U ``FF 00 40 P2 04 T1 T2 reps buzzer``: note it, tell the hook, then say OK."""
        if len(apdu) != 9 or apdu[4] != 0x04:
            return SW_WRONG_LENGTH
        if record is not None:
            record.feedback.append(Feedback(bytes(apdu), time.monotonic()))
        if self.on_feedback is not None:
            self.on_feedback(bytes(apdu))
        return SW_OK

    def _put_on(self, timeout_s: float) -> tuple[socket.socket, Tap]:
        """Connect and answer vpcd's first message, within ``timeout_s``; CardError otherwise."""
        deadline = time.monotonic() + timeout_s
        sock = self._connect(timeout_s)
        connected_at = time.monotonic()
        try:
            payload = _receive(sock, deadline)
            if payload is None:
                raise CardError(
                    f"the virtual reader on {self.address} did not talk to the card within {timeout_s:g} s: "
                    "is pcscd polling it, or is another card already on it?"
                )
            record = Tap(uid=self.uid, connected_at=connected_at, first_message_at=time.monotonic())
            self._reply(sock, payload, record)
        except _ReaderClosed:
            sock.close()
            raise CardError(f"the virtual reader on {self.address} hung up at once: did pcscd stop?") from None
        except BaseException:
            sock.close()
            raise
        return sock, record

    def _connect(self, timeout_s: float) -> socket.socket:
        """A socket connected to vpcd: the card is on the reader from now on."""
        try:
            # vpcd listens with a backlog of 0: while one connection waits to be accepted (another
            # card, or a port probe) a new SYN is dropped and retried 1 s and 3 s later.
            sock = socket.create_connection((self.host, self.port), timeout=timeout_s)
        except TimeoutError:
            raise CardError(
                f"the virtual reader (vpcd) on {self.address} did not take the card within {timeout_s:g} s: "
                "are other cards waiting for it?"
            ) from None
        except OSError as exc:
            raise CardError(
                f"no virtual reader (vpcd) listening on {self.address}: is pcscd running with "
                f"vsmartcard-vpcd installed? ({exc.strerror or exc})"
            ) from None
        # vpcd waits for each answer before its next command: send small frames at once.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def _serve(self, sock: socket.socket, record: Tap, until: float | None) -> None:
        """Answer vpcd until the monotonic time ``until`` (None: until the socket is shut)."""
        while until is None or time.monotonic() < until:
            payload = _receive(sock, until)
            if payload is None:
                return
            self._reply(sock, payload, record)

    def _serve_held(self, sock: socket.socket, record: Tap, lifting: threading.Event) -> None:
        """held()'s thread: answer vpcd until held() shuts the socket or vpcd hangs up."""
        try:
            self._serve(sock, record, until=None)
        except (_ReaderClosed, OSError):
            if lifting.is_set():
                return  # held() shut the socket: it takes the card off
            # vpcd went away (pcscd stopped): the card is off the reader from now on.
            record.reader_closed = True
            record.removed_at = time.monotonic()
            log.info("card %s: the virtual reader on %s hung up", self.uid.hex().upper(), self.address)

    def _reply(self, sock: socket.socket, payload: bytes, record: Tap) -> None:
        """Answer one message from vpcd: control codes other than get ATR have no answer."""
        if len(payload) == 1:
            if payload[0] == GET_ATR:
                _send(sock, self.atr)
            elif payload[0] not in (POWER_OFF, POWER_ON, RESET):
                log.warning("card %s: unknown vpcd control code %d", self.uid.hex().upper(), payload[0])
            return
        response = self.answer(payload, record)
        log.debug("card %s: %s -> %s", self.uid.hex().upper(), payload.hex(), response.hex())
        _send(sock, response)


def _send(sock: socket.socket, payload: bytes) -> None:
    """Send one message; _ReaderClosed if vpcd is gone."""
    try:
        # Length and body in one segment, so vpcd reads them without waiting for a delayed ACK.
        sock.sendall(_LENGTH.pack(len(payload)) + payload)
    except (BrokenPipeError, ConnectionResetError):
        raise _ReaderClosed from None


def _receive(sock: socket.socket, deadline: float | None) -> bytes | None:
    """One message from vpcd, or None if ``deadline`` passes first; _ReaderClosed on EOF."""
    header = _read_exactly(sock, _LENGTH.size, deadline)
    if header is None:
        return None
    (length,) = _LENGTH.unpack(header)
    return _read_exactly(sock, length, deadline)


def _read_exactly(sock: socket.socket, size: int, deadline: float | None) -> bytes | None:
    """``size`` bytes, or None if ``deadline`` passes first; _ReaderClosed on EOF."""
    data = b""
    while len(data) < size:
        remaining = None if deadline is None else deadline - time.monotonic()
        if remaining is not None and remaining <= 0:
            return None
        sock.settimeout(remaining)
        # vpcd writes the length and the body in two writes: without a quick ACK the kernel
        # delays ours and vpcd's second write (Nagle) waits about 40 ms for it on every APDU.
        if _QUICKACK is not None:
            sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
        try:
            chunk = sock.recv(size - len(data))
        except TimeoutError:
            return None
        except ConnectionResetError:
            raise _ReaderClosed from None
        if not chunk:
            raise _ReaderClosed
        data += chunk
    return data


def _remove(sock: socket.socket, record: Tap) -> None:
    """Take the card off the reader: close the connection and note when."""
    sock.close()
    if record.removed_at is None:
        record.removed_at = time.monotonic()
