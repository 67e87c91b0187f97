"""What a card tap means: in or out by the time of day, as the office's config says.

A card reader has no in/out key as a ZK terminal has; an office that wants taps before noon to
count as "in" says so with time windows. A tap outside every window, or with none configured,
is ``unknown``, and the store's scoring takes first and last of the day as usual.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import time

from ekinerja.sync.contract import Punch


@dataclass(frozen=True)
class PunchWindow:
    """Taps from ``start`` up to (not including) ``end`` are ``punch``; ``start`` after ``end`` wraps midnight."""

    start: time
    end: time
    punch: Punch

    def contains(self, at: time) -> bool:
        """Whether the wall-clock time ``at`` falls in this window."""
        if self.start <= self.end:
            return self.start <= at < self.end
        return at >= self.start or at < self.end


def punch_at(at: time, windows: Sequence[PunchWindow]) -> Punch:
    """The punch of a tap at wall-clock time ``at``: the first window that holds it, else unknown."""
    return next((window.punch for window in windows if window.contains(at)), Punch.UNKNOWN)
