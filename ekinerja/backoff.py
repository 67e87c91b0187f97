"""Exponential backoff with jitter, shared by everything that retries a peer (terminals, the store)."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field


@dataclass
class Backoff:
    """Tracks consecutive failures and says how long to wait before the next attempt.

    The delay doubles from ``base_s`` up to ``max_s``; jitter spreads the retries of many
    gateways so a store coming back up is not hit by all of them in the same second.
    """

    base_s: float = 1.0
    max_s: float = 300.0
    failures: int = 0
    next_attempt: float = 0.0
    _rng: random.Random = field(default_factory=random.Random, repr=False)

    def ready(self, now: float | None = None) -> bool:
        """True when an attempt may be made now."""
        return (time.monotonic() if now is None else now) >= self.next_attempt

    def failed(self, now: float | None = None, at_least_s: float = 0.0, at_most_s: float | None = None) -> float:
        """Record a failure; returns the delay until the next attempt (``at_least_s`` or more, and at
        most ``at_most_s`` when given)."""
        self.failures += 1
        ceiling = min(self.max_s, self.base_s * 2 ** min(self.failures - 1, 30))
        delay = max(self._rng.uniform(ceiling / 2, ceiling), at_least_s)
        if at_most_s is not None:
            delay = min(delay, at_most_s)
        self.next_attempt = (time.monotonic() if now is None else now) + delay
        return delay

    def succeeded(self) -> None:
        """Record a success: the next attempt may come at once."""
        self.failures = 0
        self.next_attempt = 0.0
