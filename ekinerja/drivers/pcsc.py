"""PC/SC RFID readers through pyscard: a card tap becomes a PunchEvent.

The driver watches the readers its device entry names (an exact reader name, or a part of one)
with ``SCardGetStatusChange`` and reads each arriving card's UID with the PC/SC GET DATA command.
It uses pyscard's low-level ``smartcard.scard`` API rather than its ``CardMonitor`` because that
monitor's thread dies for good when pcscd restarts (``SCARD_E_NO_SERVICE``); here a lost service
ends the session, and the next one is built from a fresh context once pcscd answers again.

What a tap means is up to the sink (:class:`CardSink`): it makes the punch durable and says
whether the card is known. Only then does the reader light and beep (ACR122U-style pseudo APDUs);
a reader that does not understand them works the same, silently.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Protocol
from zoneinfo import ZoneInfo

from smartcard import scard

from ekinerja.backoff import Backoff
from ekinerja.drivers.card_debounce import Debounce
from ekinerja.drivers.punch_windows import PunchWindow, punch_at
from ekinerja.sync.contract import PunchEvent, Source, Subject, Verify

log = logging.getLogger("ekinerja.drivers.pcsc")

PNP_READER = "\\\\?PnP?\\Notification"  # pcsc-lite's pseudo reader that changes when readers come or go
GET_UID = [0xFF, 0xCA, 0x00, 0x00, 0x00]
UID_LENGTHS = range(4, 11)  # ISO 14443 UIDs are 4, 7 or 10 bytes; FeliCa IDm is 8
# A wait for a change. abort() cancels a wait under way at once; one that starts just after the
# cancel (the thread was reading a card) runs out within this.
WAIT_MS = 1000
_PRESENCE = scard.SCARD_STATE_PRESENT | scard.SCARD_STATE_EMPTY
_GONE = scard.SCARD_STATE_UNKNOWN | scard.SCARD_STATE_UNAVAILABLE | scard.SCARD_STATE_IGNORE
_CARD_GONE = {scard.SCARD_W_REMOVED_CARD, scard.SCARD_E_NO_SMARTCARD, scard.SCARD_W_UNPOWERED_CARD}


class CardFeedback(StrEnum):
    """What the person at the reader is told."""

    ACCEPTED = "accepted"
    UNKNOWN = "unknown card"
    ERROR = "error"


# ACR122U "bi-colour LED and buzzer control": FF 00 40 <LED state> 04 <T1> <T2> <repeats> <buzzer>,
# T1 and T2 in 100 ms. Accepted: green blink and a short beep; unknown card: two red blinks and two
# beeps; error: a long red blink and beep.
FEEDBACK_APDUS = {
    CardFeedback.ACCEPTED: [0xFF, 0x00, 0x40, 0xAC, 0x04, 0x01, 0x01, 0x01, 0x01],
    CardFeedback.UNKNOWN: [0xFF, 0x00, 0x40, 0x5C, 0x04, 0x01, 0x01, 0x02, 0x01],
    CardFeedback.ERROR: [0xFF, 0x00, 0x40, 0x5C, 0x04, 0x05, 0x01, 0x01, 0x01],
}


class PcscUnavailable(Exception):
    """pcscd cannot be reached, or no reader matches: the device is offline until this changes."""


class CardReadError(Exception):
    """A card answered GET DATA with an error status, or with no usable UID."""


@dataclass(frozen=True)
class PcscSettings:
    """What the driver needs of one ``kind = "pcsc"`` device entry."""

    gateway_id: str
    device_id: str
    reader: str
    timezone: str
    debounce_s: float = 60.0
    punch_windows: tuple[PunchWindow, ...] = ()
    feedback: bool = True
    max_backoff_s: float = 5.0


class CardSink(Protocol):
    """Where the driver's taps go (the gateway's card keeper)."""

    def punched(self, event: PunchEvent, reader: str) -> CardFeedback:
        """Make the punch durable; returns ACCEPTED or UNKNOWN. Raising means it was not stored."""

    def repeated(self, reader: str, card_uid: str) -> None:
        """A tap within the debounce window of the card's last punch: no new punch."""

    def card_failed(self, reader: str, reason: str) -> None:
        """A card that could not be read: no punch."""

    def readers_seen(self, readers: Sequence[str], problem: str | None) -> None:
        """The readers now watched; empty with ``problem`` while none can be."""


def matching_readers(names: Sequence[str], wanted: str) -> list[str]:
    """The readers a device entry names: the one with exactly that name, else all that contain it."""
    if wanted in names:
        return [wanted]
    needle = wanted.casefold()
    return [name for name in names if needle in name.casefold()]


def present_readers() -> list[str]:
    """The readers pcscd lists now; raises PcscUnavailable when pcscd cannot be reached."""
    code, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    if code != scard.SCARD_S_SUCCESS:
        raise PcscUnavailable(f"pcscd cannot be reached: {_message(code)}")
    try:
        code, names = scard.SCardListReaders(context, [])
    finally:
        scard.SCardReleaseContext(context)
    if code not in (scard.SCARD_S_SUCCESS, scard.SCARD_E_NO_READERS_AVAILABLE):
        raise PcscUnavailable(f"pcscd did not list its readers: {_message(code)}")
    return list(names or [])


def _message(code: int) -> str:
    return f"{scard.SCardGetErrorMessage(code).rstrip('. ')} (0x{code & 0xFFFFFFFF:08X})"


class PcscWatch:
    """Watches the readers of one device entry until stopped; see the module docstring."""

    def __init__(self, settings: PcscSettings, sink: CardSink) -> None:
        self.settings = settings
        self.sink = sink
        self.backoff = Backoff(1.0, settings.max_backoff_s)
        self.debounce = Debounce(settings.debounce_s)
        self.stopping = False
        self._zone = ZoneInfo(settings.timezone)
        self._context: int | None = None
        self._lock = threading.Lock()
        self._held: dict[str, str] = {}  # reader -> UID of the card lying on it, read already
        self._silent: set[str] = set()  # readers that do not understand the feedback APDUs
        self._woken = threading.Event()
        self._stop = threading.Event()

    @property
    def _done(self) -> bool:
        return self.stopping or self._stop.is_set()

    def run(self, stop: threading.Event) -> None:
        """Watch until ``stop`` is set or :meth:`abort` is called, rebuilding after pcscd restarts."""
        self._stop = stop
        while not self._done:
            try:
                with self._session() as context:
                    while not self._done:
                        self._watch(context, self._find_readers(context))
            except PcscUnavailable as exc:
                if self._done:
                    return
                self.sink.readers_seen([], str(exc))
                self._woken.wait(self.backoff.failed())

    def abort(self) -> None:
        """Stop watching: wakes a wait in progress at once."""
        self.stopping = True
        self._woken.set()
        with self._lock:
            if self._context is not None:
                scard.SCardCancel(self._context)

    @contextlib.contextmanager
    def _session(self) -> Iterator[int]:
        code, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
        if code != scard.SCARD_S_SUCCESS:
            raise PcscUnavailable(f"{self.settings.device_id}: pcscd cannot be reached: {_message(code)}")
        with self._lock:
            self._context = context
        try:
            yield context
        finally:
            with self._lock:
                self._context = None
            scard.SCardReleaseContext(context)

    def _find_readers(self, context: int) -> list[str]:
        """The matching readers; waits for pcsc-lite's reader-change notice while there are none."""
        while not self._done:
            code, names = scard.SCardListReaders(context, [])
            if code not in (scard.SCARD_S_SUCCESS, scard.SCARD_E_NO_READERS_AVAILABLE):
                raise PcscUnavailable(f"{self.settings.device_id}: pcscd stopped answering: {_message(code)}")
            found = matching_readers(names or [], self.settings.reader)
            if found:
                self.backoff.succeeded()
                self.sink.readers_seen(found, None)
                return found
            present = ", ".join(names) if names else "none"
            self.sink.readers_seen([], f"no reader matches {self.settings.reader!r} (readers present: {present})")
            self._wait_for_readers(context, len(names or []))
        return []

    def _wait_for_readers(self, context: int, count: int) -> None:
        code, _ = scard.SCardGetStatusChange(context, WAIT_MS, [(PNP_READER, count << 16)])
        if code not in (scard.SCARD_S_SUCCESS, scard.SCARD_E_TIMEOUT):
            raise PcscUnavailable(f"{self.settings.device_id}: pcscd stopped answering: {_message(code)}")

    def _watch(self, context: int, readers: list[str]) -> None:
        """Serve taps on ``readers`` until the set of readers changes (or pcscd goes away)."""
        states = {name: scard.SCARD_STATE_UNAWARE for name in readers}
        states[PNP_READER] = len(readers) << 16
        while readers and not self._done:
            code, changes = scard.SCardGetStatusChange(context, WAIT_MS, list(states.items()))
            if code in (scard.SCARD_E_TIMEOUT, scard.SCARD_E_CANCELLED):
                continue
            if code != scard.SCARD_S_SUCCESS:
                raise PcscUnavailable(f"{self.settings.device_id}: pcscd stopped answering: {_message(code)}")
            for name, event, _atr in changes:
                before, states[name] = states[name], event & ~scard.SCARD_STATE_CHANGED
                if name == PNP_READER:
                    if event & scard.SCARD_STATE_CHANGED:
                        return  # a reader came or went: list them again
                elif event & _GONE:
                    log.warning("%s: reader %r is gone (unplugged?)", self.settings.device_id, name)
                    return
                elif _card_arrived(before, event):
                    self._tap(context, name)
                elif event & scard.SCARD_STATE_EMPTY:
                    self._held.pop(name, None)

    def _tap(self, context: int, reader: str) -> None:
        """Read the card on ``reader``, record the punch, then tell the person."""
        code, card, protocol = scard.SCardConnect(
            context, reader, scard.SCARD_SHARE_SHARED, scard.SCARD_PROTOCOL_T0 | scard.SCARD_PROTOCOL_T1
        )
        if code in _CARD_GONE:
            self.sink.card_failed(reader, "the card left the reader before it could be read; tap again and hold it")
            return
        if code != scard.SCARD_S_SUCCESS:
            self.sink.card_failed(reader, f"cannot connect to the card: {_message(code)}")
            return
        try:
            feedback = self._read_and_record(card, protocol, reader)
            if feedback is not None:
                self._tell(card, protocol, reader, feedback)
        finally:
            scard.SCardDisconnect(card, scard.SCARD_LEAVE_CARD)

    def _read_and_record(self, card: int, protocol: int, reader: str) -> CardFeedback | None:
        """The feedback to give; None for a card still lying there since it was read (no news)."""
        try:
            uid = read_uid(card, protocol)
        except CardReadError as exc:
            self.sink.card_failed(reader, str(exc))
            return CardFeedback.ERROR
        if self._held.get(reader) == uid:  # read again after pcscd restarted under it
            return None
        self._held[reader] = uid
        now = time.monotonic()
        if self.debounce.is_repeat(reader, uid, now):
            self.sink.repeated(reader, uid)
            return CardFeedback.ACCEPTED  # its punch is stored already
        try:
            feedback = self.sink.punched(self._event(uid), reader)
        except Exception:
            log.exception(
                "%s: the punch of card %s on %r was NOT stored; it must be entered by hand if it is not tapped again",
                self.settings.device_id,
                uid,
                reader,
            )
            self._held.pop(reader, None)
            return CardFeedback.ERROR
        self.debounce.punched(reader, uid, now)
        return feedback

    def _event(self, uid: str) -> PunchEvent:
        captured = datetime.now(UTC)
        wall = captured.astimezone(self._zone).replace(tzinfo=None, microsecond=0)
        return PunchEvent.create(
            gateway_id=self.settings.gateway_id,
            device_id=self.settings.device_id,
            device_serial=None,  # reader names are not unique across offices: the event id uses gateway/device
            source=Source.PCSC,
            verify=Verify.CARD,
            subject=Subject(card_uid=uid),
            punch=punch_at(wall.time(), self.settings.punch_windows),
            device_time=wall,
            timezone=self.settings.timezone,
            captured_at=captured,
        )

    def _tell(self, card: int, protocol: int, reader: str, feedback: CardFeedback) -> None:
        """Light and beep, where the reader can; a reader that cannot is left silent from then on."""
        if not self.settings.feedback or reader in self._silent:
            return
        code, response = scard.SCardTransmit(card, protocol, FEEDBACK_APDUS[feedback])
        if code == scard.SCARD_S_SUCCESS and response[-2:] == [0x90, 0x00]:
            return
        self._silent.add(reader)
        log.info(
            "%s: reader %r has no LED or buzzer the gateway can drive; it stays silent", self.settings.device_id, reader
        )


def _card_arrived(before: int, now: int) -> bool:
    """A card that was not there before, or was taken away and put back (pcsc-lite counts events in the high word)."""
    if not now & scard.SCARD_STATE_PRESENT:
        return False
    return not before & scard.SCARD_STATE_PRESENT or (before >> 16) != (now >> 16)


def read_uid(card: int, protocol: int) -> str:
    """The card's UID as upper-case hex, by GET DATA (``FF CA 00 00 00``); raises CardReadError."""
    code, response = scard.SCardTransmit(card, protocol, GET_UID)
    if code == scard.SCARD_S_SUCCESS and len(response) == 2 and response[0] == 0x6C:  # wrong Le: ask again with it
        code, response = scard.SCardTransmit(card, protocol, [*GET_UID[:4], response[1]])
    if code != scard.SCARD_S_SUCCESS:
        raise CardReadError(f"the card did not answer GET DATA: {_message(code)}")
    body, status = bytes(response[:-2]), bytes(response[-2:])
    if status != b"\x90\x00":
        raise CardReadError(f"the card answered GET DATA with status {status.hex().upper() or 'none'}")
    if len(body) not in UID_LENGTHS:
        raise CardReadError(f"the card's UID has {len(body)} bytes; 4 to 10 were expected")
    return body.hex().upper()
