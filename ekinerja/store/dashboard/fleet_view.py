"""The "Perangkat" page's picture of the fleet: each gateway and device, what to flag, and a summary.

A pure function of the fleet as the store keeps it, the offices' zone and the time now; the page
only lays it out. Instants are shown at the offices' wall clock, as everything else on the dashboard.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from ekinerja.store.fleet import GatewayStatus
from ekinerja.sync.contract import AlertReport, DeviceReport

SKEW_LIMIT_S = 60.0
"""A clock further off than this is flagged: a punch near 07:30 could fall in the wrong TL band."""
LOG_FULL_PERCENT = 90.0
"""A terminal log this full is flagged, as the gateway's own alert does by default ([alerts] log_percent)."""


@dataclass(frozen=True)
class Ago:
    """How long ago, in the largest whole unit: ``Ago(5, "minutes")``; the page words it."""

    amount: int
    unit: str  # seconds, minutes, hours or days


def ago(then: datetime, now: datetime) -> Ago:
    """How long before ``now`` ``then`` was (both aware, or both naive in the same zone)."""
    seconds = max(0, int((now - then).total_seconds()))  # a gateway clock a little ahead is "0 s", never negative
    for unit, size in (("days", 86400), ("hours", 3600), ("minutes", 60)):
        if seconds >= size:
            return Ago(seconds // size, unit)
    return Ago(seconds, "seconds")


@dataclass(frozen=True)
class DeviceView:
    """One terminal or card reader, with its instants at the offices' wall clock and its flags."""

    report: DeviceReport
    since: datetime | None
    percent_used: float | None
    skew_flag: bool
    log_flag: bool


@dataclass(frozen=True)
class GatewayView:
    """One gateway: when it last reported, whether that is too long ago, and what it said."""

    gateway_id: str
    received_at: datetime
    received_ago: Ago
    stale: bool
    readable: bool  # False: its last report was kept by another store version and cannot be shown
    pending: int = 0
    oldest_pending_at: datetime | None = None
    oldest_pending_ago: Ago | None = None
    last_success: datetime | None = None
    last_error: str | None = None
    rejected: int = 0
    quarantined: int = 0
    alerts: tuple[AlertReport, ...] = ()
    devices: tuple[DeviceView, ...] = ()


@dataclass(frozen=True)
class Summary:
    """The line on top of the page."""

    reporting: int
    stale: int
    devices_online: int
    devices_offline: int
    alerts: int
    flagged: int  # devices whose clock or log needs attention


def percent_used(device: DeviceReport) -> float | None:
    """How full the device's log is, in percent: as reported, else from its records and capacity."""
    if device.percent_used is not None:
        return device.percent_used
    if device.records is None or not device.capacity:
        return None
    return 100 * device.records / device.capacity


def device_view(device: DeviceReport, zone: ZoneInfo) -> DeviceView:
    """A device as the page shows it, flagged when its clock is off or its log nearly full."""
    used = percent_used(device)
    skew = device.clock_skew_s
    return DeviceView(
        report=device,
        since=_local(device.since, zone),
        percent_used=used,
        skew_flag=skew is not None and abs(skew) > SKEW_LIMIT_S,
        log_flag=used is not None and used >= LOG_FULL_PERCENT,
    )


def gateway_view(status: GatewayStatus, zone: ZoneInfo, now: datetime) -> GatewayView:
    """A gateway as the page shows it (``now`` aware)."""
    received = status.received_at.replace(tzinfo=status.received_at.tzinfo or UTC)  # the store keeps naive UTC
    head = GatewayView(
        status.gateway_id, _at(received, zone), ago(received, now), status.stale, status.report is not None
    )
    report = status.report
    if report is None:
        return head
    sync = report.sync
    oldest = sync.oldest_pending_at
    return replace(
        head,
        pending=sync.pending,
        oldest_pending_at=_local(oldest, zone),
        oldest_pending_ago=ago(oldest, now) if oldest is not None else None,
        last_success=_local(sync.last_success, zone),
        last_error=sync.last_error,
        rejected=sync.rejected,
        quarantined=sync.quarantined,
        alerts=tuple(report.alerts),
        devices=tuple(device_view(d, zone) for d in report.devices),
    )


def summary(gateways: Iterable[GatewayView]) -> Summary:
    """Counts over every gateway: reporting or stale, devices online or off, alerts, flagged devices."""
    listed = list(gateways)
    devices = [d for g in listed for d in g.devices]
    stale = sum(1 for g in listed if g.stale)
    online = sum(1 for d in devices if d.report.online)
    return Summary(
        reporting=len(listed) - stale,
        stale=stale,
        devices_online=online,
        devices_offline=len(devices) - online,
        alerts=sum(len(g.alerts) for g in listed),
        flagged=sum(1 for d in devices if d.skew_flag or d.log_flag),
    )


def never_reported(registered: Iterable[str], fleet: Iterable[GatewayStatus]) -> list[str]:
    """The gateways that may push (a token) but never sent a report: never set up, or never reached the store."""
    return sorted(set(registered) - {status.gateway_id for status in fleet})


def view(fleet: Iterable[GatewayStatus], zone: ZoneInfo, now: datetime) -> tuple[Summary, list[GatewayView]]:
    """The whole page: its summary and its gateways, stale ones first (they need someone to look)."""
    gateways = sorted((gateway_view(s, zone, now) for s in fleet), key=lambda g: (not g.stale, g.gateway_id))
    return summary(gateways), gateways


def _local(instant: datetime | None, zone: ZoneInfo) -> datetime | None:
    return None if instant is None else _at(instant, zone)


def _at(instant: datetime, zone: ZoneInfo) -> datetime:
    """An aware instant as the offices' naive wall clock."""
    return instant.astimezone(zone).replace(tzinfo=None)
