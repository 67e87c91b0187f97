"""What the IT team must be told: pure rules from a status snapshot and thresholds to alerts.

No clock, no I/O: the snapshot carries the instants and ``now`` is given, so every rule is a
table-driven test away from the regulation of the office's IT team (the thresholds in ``[alerts]``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ekinerja.gateway.status import DeviceView, SyncView


@dataclass(frozen=True)
class Thresholds:
    """When a condition becomes an alert (``[alerts]`` in gateway.toml, which holds the defaults)."""

    device_offline_minutes: float
    clock_skew_s: float
    log_percent: float
    backlog_minutes: float
    store_unreachable_minutes: float
    quarantined: int


@dataclass(frozen=True)
class Alert:
    """One condition to act on; ``code`` and ``values`` let a page say it in its own language."""

    code: str
    device_id: str | None
    message: str
    values: dict[str, float | str] = field(default_factory=dict)


def device_alerts(device: DeviceView, limits: Thresholds, now: datetime) -> list[Alert]:
    """A device offline too long, its clock too far off, its log too full."""
    out = []
    if not device.online and device.since is not None:
        minutes = (now - device.since).total_seconds() / 60
        if minutes >= limits.device_offline_minutes:
            reason = f": {device.last_error}" if device.last_error else ""
            out.append(
                Alert(
                    "device_offline",
                    device.id,
                    f"{device.id} offline for {minutes:.0f} min{reason}",
                    {"minutes": round(minutes)},
                )
            )
    if device.clock_skew_s is not None and abs(device.clock_skew_s) >= limits.clock_skew_s:
        skew = round(device.clock_skew_s)
        out.append(Alert("clock_skew", device.id, f"{device.id} clock is {skew:+d} s off", {"seconds": skew}))
    if device.percent_used is not None and device.percent_used >= limits.log_percent:
        used = round(device.percent_used, 1)
        out.append(Alert("log_full", device.id, f"{device.id} log is {used:g}% full", {"percent": used}))
    return out


def sync_alerts(sync: SyncView, limits: Thresholds, now: datetime) -> list[Alert]:
    """The buffer that cannot be written (at once), punches waiting too long, the store unreachable
    too long, records quarantined."""
    out = []
    failure = sync.buffer_write_failure
    if failure is not None:  # no threshold: every punch meanwhile stays on the terminals, every tap is refused
        minutes = max((now - failure.since).total_seconds() / 60, 0)
        code = "disk_full" if failure.disk_full else "buffer_unwritable"
        message = f"{failure.message} (failing for {minutes:.0f} min)"
        out.append(Alert(code, None, message, {"minutes": round(minutes), "folder": failure.folder}))
    if sync.oldest_pending_at is not None:
        minutes = (now - sync.oldest_pending_at).total_seconds() / 60
        if minutes >= limits.backlog_minutes:
            message = f"{sync.pending} punch(es) waiting, the oldest for {minutes:.0f} min"
            out.append(Alert("backlog_old", None, message, {"pending": sync.pending, "minutes": round(minutes)}))
    if sync.unreachable_since is not None:
        minutes = (now - sync.unreachable_since).total_seconds() / 60
        if minutes >= limits.store_unreachable_minutes:
            message = f"store unreachable for {minutes:.0f} min: {sync.last_error}"
            out.append(Alert("store_unreachable", None, message, {"minutes": round(minutes)}))
    if sync.quarantined >= limits.quarantined:
        message = f"{sync.quarantined} device record(s) quarantined: see `ekinerja gateway backlog`"
        out.append(Alert("quarantined", None, message, {"count": sync.quarantined}))
    return out
