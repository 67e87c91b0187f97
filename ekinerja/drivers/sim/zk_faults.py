"""Fault switches of a simulated terminal: the ways real ZKTeco terminals misbehave.

One :class:`Faults` is shared by a simulator's transports and its command dispatch. Tests flip
the switches from their own thread while clients are connected, so every read and write takes
the lock.
"""

from __future__ import annotations

import math
import threading
import time


class Faults:
    """Dropped transfers, a hung terminal, slow replies, odd live events and reboots."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._drops = 0
        self._drop_with_reset = True
        self._refused: frozenset[int] = frozenset()
        self._silent = False
        self._delay_s = 0.0
        self._live_event_size: int | None = None
        self._generation = 0
        self._down_until = 0.0

    def drop_transfers(self, n: int, *, reset: bool = True) -> None:
        """Cut off the next ``n`` chunk reads midway (0 cancels); TCP links end with a reset or a close."""
        if n < 0:
            raise ValueError(f"n must be 0 or more, got {n}")
        with self._lock:
            self._drops = n
            self._drop_with_reset = reset

    @property
    def drop_with_reset(self) -> bool:
        """Whether a cut-off TCP link ends with a reset (True) or an orderly close (False)."""
        with self._lock:
            return self._drop_with_reset

    def take_drop(self) -> bool:
        """Whether the chunk being read now is to be cut off (counts it down)."""
        with self._lock:
            if self._drops <= 0:
                return False
            self._drops -= 1
            return True

    @property
    def refused(self) -> frozenset[int]:
        """Commands answered with an error (firmware that lacks them or refuses them)."""
        with self._lock:
            return self._refused

    @refused.setter
    def refused(self, commands: frozenset[int]) -> None:
        with self._lock:
            self._refused = commands

    @property
    def silent(self) -> bool:
        """Whether the terminal is hung: it reads packets and answers none."""
        with self._lock:
            return self._silent

    @silent.setter
    def silent(self, value: bool) -> None:
        with self._lock:
            self._silent = bool(value)

    @property
    def delay_s(self) -> float:
        """Seconds every reply waits before it is sent."""
        with self._lock:
            return self._delay_s

    @delay_s.setter
    def delay_s(self, value: float) -> None:
        if not (math.isfinite(value) and value >= 0):
            raise ValueError(f"delay_s must be 0 or more seconds, got {value}")
        with self._lock:
            self._delay_s = float(value)

    @property
    def live_event_size(self) -> int | None:
        """Bytes every live event payload is padded or cut to (None: the terminal's own layout)."""
        with self._lock:
            return self._live_event_size

    @live_event_size.setter
    def live_event_size(self, value: int | None) -> None:
        if value is not None and value < 0:
            raise ValueError(f"live_event_size must be 0 or more bytes, got {value}")
        with self._lock:
            self._live_event_size = value

    def go_down(self, down_s: float) -> int:
        """Start a reboot that lasts ``down_s`` seconds; returns the new generation."""
        if not (math.isfinite(down_s) and down_s >= 0):
            raise ValueError(f"down_s must be 0 or more seconds, got {down_s}")
        with self._lock:
            self._generation += 1
            self._down_until = time.monotonic() + down_s
            return self._generation

    @property
    def generation(self) -> int:
        """How many reboots there have been: sessions of an older generation are gone."""
        with self._lock:
            return self._generation

    def down_for(self) -> float:
        """Seconds until the rebooting terminal serves again (0 when it is up)."""
        with self._lock:
            return max(self._down_until - time.monotonic(), 0.0)
