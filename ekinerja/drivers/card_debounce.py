"""Debounce of card taps: the same card on the same reader within the window is one punch.

A person who taps twice, or whose card slips and lands again, must not make two punches; a card
that lies on the reader is one tap already (the reader reports it once). The window counts from
the last punch the card made on that reader, so a card tapped every few seconds for a long time
still makes a punch once per window, never a stream of them. What that punch was told (accepted,
unknown card) is kept with it, so a repeat is told the same.
"""

from __future__ import annotations

from typing import Generic, TypeVar

Outcome = TypeVar("Outcome")


class Debounce(Generic[Outcome]):
    """Remembers when each (reader, card) last made a punch; times are ``time.monotonic()`` seconds."""

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self._last: dict[tuple[str, str], tuple[float, Outcome]] = {}

    def recent(self, reader: str, card_uid: str, now: float) -> Outcome | None:
        """The outcome of the card's punch on this reader within the window before ``now``, if any."""
        last = self._last.get((reader, card_uid))
        return last[1] if last is not None and now - last[0] < self.window_s else None

    def punched(self, reader: str, card_uid: str, now: float, outcome: Outcome) -> None:
        """Record that the card made a punch at ``now``; forgets punches older than the window."""
        if len(self._last) > 1024:  # a busy door: keep only what can still matter
            self._last = {key: last for key, last in self._last.items() if now - last[0] < self.window_s}
        self._last[(reader, card_uid)] = (now, outcome)
