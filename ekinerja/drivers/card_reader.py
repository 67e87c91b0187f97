"""What a card-reader driver shares with the gateway, without pyscard: settings, feedback, the sink.

The gateway imports this module whether or not pyscard is installed (it is an optional extra that
compiles); only the PC/SC watch itself (pcsc.py) needs it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from ekinerja.drivers.punch_windows import PunchWindow
from ekinerja.sync.contract import PunchEvent


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
