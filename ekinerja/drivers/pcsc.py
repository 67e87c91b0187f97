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
from collections.abc import Iterator
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from smartcard import scard

from ekinerja.backoff import Backoff
from ekinerja.drivers.card_debounce import Debounce
from ekinerja.drivers.card_reader import FEEDBACK_APDUS, CardFeedback, CardSink, PcscSettings, matching_readers
from ekinerja.drivers.punch_windows import punch_at
from ekinerja.sync.contract import PunchEvent, Source, Subject, Verify

log = logging.getLogger("ekinerja.drivers.pcsc")

GET_UID = [0xFF, 0xCA, 0x00, 0x00, 0x00]
UID_LENGTHS = range(4, 11)  # ISO 14443 UIDs are 4, 7 or 10 bytes; FeliCa IDm is 8
# A wait for a change. abort() cancels a wait under way at once; one that starts just after the
# cancel (the thread was reading a card) runs out within this.
WAIT_MS = 1000
# The reader list is read again this often. pcsc-lite's "\\?PnP?\Notification" pseudo reader is
# not used: its high word changed meaning in pcsc-lite 2.3 (a reader count before, an event
# counter since), and a wrong value there makes every wait return at once.
RELIST_S = 1.0
_GONE = scard.SCARD_STATE_UNKNOWN | scard.SCARD_STATE_IGNORE
_CARD_GONE = {scard.SCARD_W_REMOVED_CARD, scard.SCARD_E_NO_SMARTCARD, scard.SCARD_W_UNPOWERED_CARD}
_READER_GONE = {scard.SCARD_E_UNKNOWN_READER, scard.SCARD_E_READER_UNAVAILABLE}
_NOT_SUPPORTED_SW1 = {0x68, 0x6A, 0x6B, 0x6D, 0x6E}  # function, parameters, instruction or class not supported


class PcscUnavailable(Exception):
    """pcscd cannot be reached: the device is offline until it answers again."""


class CardReadError(Exception):
    """A card answered GET DATA with an error status, or with no usable UID."""


def present_readers() -> list[str]:
    """The readers pcscd lists now; raises PcscUnavailable when pcscd cannot be reached."""
    code, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    if code != scard.SCARD_S_SUCCESS:
        raise PcscUnavailable(f"pcscd cannot be reached: {_message(code)}")
    try:
        return _list_readers(context)
    finally:
        scard.SCardReleaseContext(context)


def _list_readers(context: int) -> list[str]:
    """The readers pcscd lists (none is an answer too); PcscUnavailable when it does not answer."""
    code, names = scard.SCardListReaders(context, [])
    if code not in (scard.SCARD_S_SUCCESS, scard.SCARD_E_NO_READERS_AVAILABLE):
        raise PcscUnavailable(f"pcscd stopped answering: {_message(code)}")
    return list(names or [])


def _message(code: int) -> str:
    return f"{scard.SCardGetErrorMessage(code).rstrip('. ')} (0x{code & 0xFFFFFFFF:08X})"


class PcscWatch:
    """Watches the readers of one device entry until stopped; see the module docstring."""

    wait_ms = WAIT_MS

    def __init__(self, settings: PcscSettings, sink: CardSink) -> None:
        self.settings = settings
        self.sink = sink
        self.backoff = Backoff(1.0, settings.max_backoff_s)
        self.debounce: Debounce[CardFeedback] = Debounce(settings.debounce_s)
        self.stopping = False
        self._zone = ZoneInfo(settings.timezone)
        self._context: int | None = None
        self._lock = threading.Lock()
        self._held: dict[str, str] = {}  # reader -> UID of the card lying on it, read already
        self._silent: set[str] = set()  # readers that do not understand the feedback APDUs
        self._unavailable: set[str] = set()  # readers listed but reporting a fault
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
                continue
            except PcscUnavailable as exc:
                problem = str(exc)
            except Exception:  # the thread must outlive a fault: report it, back off, build again
                log.exception("%s: unexpected error watching the card readers; starting again", self.settings.device_id)
                problem = f"{self.settings.device_id}: unexpected error watching the readers (see the gateway's log)"
            if self._done:
                return
            self.sink.readers_seen([], problem)
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

    def _lost(self, code: int) -> PcscUnavailable:
        return PcscUnavailable(f"{self.settings.device_id}: pcscd stopped answering: {_message(code)}")

    def _matching(self, context: int) -> tuple[list[str], list[str]]:
        """(matching readers, every reader listed)."""
        names = _list_readers(context)
        return matching_readers(names, self.settings.reader), names

    def _find_readers(self, context: int) -> list[str]:
        """The matching readers, reported; while there are none, says so and waits a moment."""
        found, names = self._matching(context)
        self._unavailable.clear()
        if found:
            self.backoff.succeeded()
            self.sink.readers_seen(found, None)
            return found
        present = ", ".join(names) or "none"
        self.sink.readers_seen([], f"no reader matches {self.settings.reader!r} (readers present: {present})")
        self._woken.wait(RELIST_S)
        return []

    def _watch(self, context: int, readers: list[str]) -> None:
        """Serve taps on ``readers`` until the readers that match change (or pcscd goes away)."""
        states = dict.fromkeys(readers, scard.SCARD_STATE_UNAWARE)
        listed_at = time.monotonic()
        while readers and not self._done:
            code, changes = scard.SCardGetStatusChange(context, self.wait_ms, list(states.items()))
            if code == scard.SCARD_S_SUCCESS:
                if not self._changed(context, readers, states, changes):
                    return
            elif code in _READER_GONE:
                return  # a reader went between two waits: list them again
            elif code not in (scard.SCARD_E_TIMEOUT, scard.SCARD_E_CANCELLED):
                raise self._lost(code)
            if time.monotonic() - listed_at >= RELIST_S:
                if self._matching(context)[0] != readers:
                    return  # a reader came or went
                listed_at = time.monotonic()

    def _changed(
        self, context: int, readers: list[str], states: dict[str, int], changes: list[tuple[str, int, list[int]]]
    ) -> bool:
        """Act on new reader states; False when a reader is gone (list them again)."""
        for name, event, _atr in changes:
            before, states[name] = states[name], event & ~scard.SCARD_STATE_CHANGED
            if event & _GONE:
                log.warning("%s: reader %r is gone (unplugged?)", self.settings.device_id, name)
                return False
            if bool(event & scard.SCARD_STATE_UNAVAILABLE) != (name in self._unavailable):
                self._availability(name, readers, unavailable=bool(event & scard.SCARD_STATE_UNAVAILABLE))
            if _card_arrived(before, event):
                self._tap(context, name, first_look=before == scard.SCARD_STATE_UNAWARE)
            elif event & scard.SCARD_STATE_EMPTY:
                self._held.pop(name, None)
        return True

    def _availability(self, reader: str, readers: list[str], *, unavailable: bool) -> None:
        """A listed reader that reports a fault is offline until it recovers."""
        if unavailable:
            self._unavailable.add(reader)
            log.warning("%s: reader %r reports a fault; unplug it and plug it back", self.settings.device_id, reader)
        else:
            self._unavailable.discard(reader)
        usable = [r for r in readers if r not in self._unavailable]
        self.sink.readers_seen(usable, None if usable else f"reader {reader!r} reports a fault")

    def _tap(self, context: int, reader: str, *, first_look: bool) -> None:
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
            feedback = self._read_and_record(card, protocol, reader, first_look)
            if feedback is not None:
                self._tell(card, protocol, reader, feedback)
        finally:
            scard.SCardDisconnect(card, scard.SCARD_LEAVE_CARD)

    def _read_and_record(self, card: int, protocol: int, reader: str, first_look: bool) -> CardFeedback | None:
        """The feedback to give; None for a card found lying there, read already, when the watch began again."""
        try:
            uid = read_uid(card, protocol)
        except CardReadError as exc:
            self.sink.card_failed(reader, str(exc))
            return CardFeedback.ERROR
        if first_look and self._held.get(reader) == uid:  # the watch was rebuilt (pcscd restarted) under it
            return None
        self._held[reader] = uid
        now = time.monotonic()
        earlier = self.debounce.recent(reader, uid, now)
        if earlier is not None:
            self.sink.repeated(reader, uid)
            return earlier  # its punch is stored already: told the same again
        try:
            feedback = self.sink.punched(self._event(uid), reader)
        except Exception:
            log.exception(
                "%s: the punch of card %s on %r at %s was NOT stored; enter it by hand if it is not tapped again",
                self.settings.device_id,
                uid,
                reader,
                datetime.now(self._zone).strftime("%Y-%m-%d %H:%M:%S"),
            )
            self._held.pop(reader, None)
            return CardFeedback.ERROR
        self.debounce.punched(reader, uid, now, feedback)
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
        """Light and beep, where the reader can; a reader that says it cannot is left silent from then on."""
        if not self.settings.feedback or reader in self._silent:
            return
        code, response = scard.SCardTransmit(card, protocol, FEEDBACK_APDUS[feedback])
        if code != scard.SCARD_S_SUCCESS or len(response) < 2:
            log.debug("%s: %r not told %s: %s", self.settings.device_id, reader, feedback.value, _message(code))
            return  # the card was lifted at once: the next tap tries again
        if response[-2] in _NOT_SUPPORTED_SW1:
            self._silent.add(reader)
            log.info(
                "%s: reader %r has no LED or buzzer the gateway can drive; it stays silent",
                self.settings.device_id,
                reader,
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
