"""One card-reader entry at this gateway: its status, and what its taps become.

The keeper is the PC/SC driver's sink: a tap is appended to the buffer (a synchronous SQLite
commit) before the keeper answers, so the reader's "accepted" beep always follows a durable punch.
Whether the card is known comes from the registry's card list the gateway keeps (known_cards).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from ekinerja.config.gateway import PcscDevice
from ekinerja.drivers.card_reader import CardFeedback
from ekinerja.gateway.buffer import Buffer
from ekinerja.sync.contract import PunchEvent

log = logging.getLogger("ekinerja.gateway")


@dataclass
class CardReaderStatus:
    """The last known state of one card-reader entry, for the CLI and the status page."""

    device_id: str
    readers: list[str] = field(default_factory=list)  # the readers watched now
    problem: str | None = None  # why no reader is watched
    last_error: str | None = None  # the last card that could not be read
    last_change: datetime | None = None  # when readers came or went
    last_punch: datetime | None = None  # wall-clock time of the newest punch
    punches: int = 0
    repeats: int = 0  # taps within the debounce window: no punch
    unknown_cards: int = 0
    card_errors: int = 0
    not_stored: int = 0

    @property
    def online(self) -> bool:
        """Whether at least one of its readers is watched."""
        return bool(self.readers)


class CardReaderKeeper:
    """Turns the taps of one ``kind = "pcsc"`` entry into buffer rows and status; see the module docstring."""

    def __init__(
        self,
        device: PcscDevice,
        buffer: Buffer,
        is_known: Callable[[str], bool | None],
        on_new_events: Callable[[], None],
    ) -> None:
        self.device = device
        self.buffer = buffer
        self.is_known = is_known
        self.on_new_events = on_new_events
        self.status = CardReaderStatus(device.id)
        self.on_punches: Callable[[Sequence[PunchEvent]], None] = lambda events: None  # told once stored (MQTT)

    def punched(self, event: PunchEvent, reader: str) -> CardFeedback:
        """Store the punch (durable on return), then say whether its card is in the registry.

        Only a failed append raises (the driver then tells the person it did not count); once the
        punch is stored, nothing after it may turn it into an error.
        """
        try:
            added = self.buffer.append([event])
        except Exception:
            self.status.not_stored += 1
            raise
        uid = event.subject.card_uid or ""
        self.status.punches += 1
        self.status.last_punch = event.device_time
        try:
            known = self.is_known(uid)
            if added:
                self.on_new_events()
                self.on_punches([event])
        except Exception:
            log.exception("%s: card %s stored; its push or its registry check failed", self.device.id, uid)
            known = None
        log.info(
            "%s: card %s on %r at %s%s",
            self.device.id,
            uid,
            reader,
            event.device_time.strftime("%H:%M:%S"),
            " (not in the registry: map it in the store)" if known is False else "",
        )
        if known is False:
            self.status.unknown_cards += 1
            return CardFeedback.UNKNOWN
        return CardFeedback.ACCEPTED

    def repeated(self, reader: str, card_uid: str) -> None:
        """A tap within the debounce window: counted, no punch."""
        self.status.repeats += 1
        log.debug(
            "%s: card %s on %r again within %g s: one punch", self.device.id, card_uid, reader, self.device.debounce_s
        )

    def card_failed(self, reader: str, reason: str) -> None:
        """A card that could not be read: counted and logged with its reader."""
        self.status.card_errors += 1
        self.status.last_error = f"{reader}: {reason}"
        log.warning("%s: a card on %r could not be read, no punch: %s", self.device.id, reader, reason)

    def readers_seen(self, readers: Sequence[str], problem: str | None) -> None:
        """Record which readers are watched (or why none is); log when that changes."""
        status = self.status
        if list(readers) == status.readers and problem == status.problem:
            return
        if readers:
            log.info("%s: online, watching %s", self.device.id, ", ".join(repr(r) for r in readers))
        else:
            log.warning("%s: offline: %s", self.device.id, problem)
        if bool(readers) != status.online or status.last_change is None:  # "since" moves only when it comes or goes
            status.last_change = datetime.now(UTC)
        status.readers, status.problem = list(readers), problem
