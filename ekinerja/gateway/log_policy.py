"""When to clear a terminal's attendance log: the full-log rule, as a pure function.

A terminal whose log is full stops recording punches (or overwrites the oldest, depending on its
firmware). Clearing it is the only remedy, and the one step that can destroy a punch: so it is
off by default, and when on it happens only when the log is fuller than the threshold, the
gateway has read every record on it into its buffer, the store has acknowledged every punch the
gateway read from it (quarantined records stay in the buffer with their raw bytes). The keeper
also asks, last (asking writes), that the buffer can be written: the clear and the cursor's
rewind are recorded there.
"""

from __future__ import annotations


def should_clear_log(
    *,
    at_percent: float | None,
    records: int,
    capacity: int,
    all_read: bool,
    unacknowledged: int,
) -> bool:
    """Whether to clear the log now.

    ``all_read``: the cursor stored in the buffer covers every record the terminal holds (same
    serial, same count); ``unacknowledged``: the device's punches still pending or rejected in the
    buffer.
    """
    if at_percent is None or capacity <= 0 or records <= 0:
        return False
    return records * 100 >= at_percent * capacity and all_read and unacknowledged == 0


def percent_used(records: int, capacity: int) -> float | None:
    """How full the log is, in percent; None when the terminal reports no capacity."""
    return round(records * 100 / capacity, 1) if capacity > 0 else None
