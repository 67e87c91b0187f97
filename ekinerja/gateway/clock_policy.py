"""When to set a terminal's clock: the ``correct`` policy's rule, as a pure function.

A terminal whose clock runs wrong stamps every punch wrong. With ``clock_policy = "correct"`` the
gateway sets it to its own clock once the measured skew passes the threshold, but only at a quiet
moment: right after a poll has read every record (so all of them were stamped, and read, with the
old skew) and when nobody has punched for a while (so no one punches in the instant between).
"""

from __future__ import annotations

from datetime import datetime, timedelta


def should_set_clock(
    *,
    policy: str,
    skew_s: float,
    threshold_s: float,
    device_time: datetime,
    last_punch: datetime | None,
    quiet: timedelta,
) -> bool:
    """Whether to set the terminal's clock now.

    ``device_time`` and ``last_punch`` are the terminal's own wall-clock readings (so the skew
    cancels out between them); ``last_punch`` is None when its log holds no punch.
    """
    if policy != "correct" or abs(skew_s) < threshold_s:
        return False
    return last_punch is None or device_time - last_punch >= quiet
