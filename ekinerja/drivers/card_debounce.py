"""Debounce of card taps: the same card on the same reader within the window is one punch.

A person who taps twice, or whose card slips and lands again, must not make two punches; a card
that lies on the reader is one tap already (the reader reports it once). The window counts from
the last punch the card made on that reader, so a card tapped every few seconds for a long time
still makes a punch once per window, never a stream of them.
"""

from __future__ import annotations


class Debounce:
    """Remembers when each (reader, card) last made a punch; times are ``time.monotonic()`` seconds."""

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self._last: dict[tuple[str, str], float] = {}

    def is_repeat(self, reader: str, card_uid: str, now: float) -> bool:
        """Whether a tap at ``now`` falls within the window of the card's last punch on this reader."""
        last = self._last.get((reader, card_uid))
        return last is not None and now - last < self.window_s

    def punched(self, reader: str, card_uid: str, now: float) -> None:
        """Record that the card made a punch at ``now``; forgets punches older than the window."""
        if len(self._last) > 1024:  # a busy door: keep only what can still matter
            self._last = {key: at for key, at in self._last.items() if now - at < self.window_s}
        self._last[(reader, card_uid)] = now
