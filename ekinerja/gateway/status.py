"""One picture of the gateway for the people who watch it: devices, sync, alerts.

The status page, MQTT and /metrics all show this same snapshot, so they never disagree. It is
built from the keepers' status and the buffer's counts; the alert rules are in alerts.py.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ekinerja.gateway.alerts import Alert, Thresholds, device_alerts, sync_alerts
from ekinerja.gateway.buffer_writes import WriteFailure

if TYPE_CHECKING:
    from ekinerja.gateway.card_keeper import CardReaderStatus
    from ekinerja.gateway.device_keeper import DeviceStatus
    from ekinerja.gateway.service import GatewayService


@dataclass(frozen=True)
class DeviceView:
    """One terminal or card-reader entry as it is shown."""

    id: str
    kind: str
    online: bool
    since: datetime | None = None  # when it went online or offline
    serial: str | None = None
    firmware: str | None = None
    users: int | None = None
    records: int | None = None
    capacity: int | None = None
    percent_used: float | None = None
    clock_skew_s: float | None = None
    last_punch: datetime | None = None  # the device's wall-clock time of its newest punch
    last_error: str | None = None
    punches: int = 0  # new punches stored since the gateway started
    live: bool = False
    readers: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class SyncView:
    """The buffer and the push."""

    pending: int
    oldest_pending_at: datetime | None
    rejected: int
    quarantined: int
    last_success: datetime | None  # the last push that sent punches
    unreachable_since: datetime | None
    last_error: str | None
    last_contact: datetime | None = None  # the store last answered a push or a probe
    buffer_write_failure: WriteFailure | None = None  # the buffer cannot be written (disk full): why, since when

    @property
    def store_reachable(self) -> bool | None:
        """Whether the store answered last time it was asked; None before it was ever asked."""
        if self.unreachable_since is not None:
            return False
        return True if self.last_contact is not None else None


@dataclass(frozen=True)
class MqttView:
    """The link to the MQTT broker, when ``[mqtt]`` is set."""

    broker: str  # host:port, as the operator wrote it
    connected: bool


@dataclass(frozen=True)
class Snapshot:
    """The whole picture at ``taken_at``."""

    gateway_id: str
    taken_at: datetime
    devices: list[DeviceView]
    sync: SyncView
    alerts: list[Alert]
    mqtt: MqttView | None = None  # None: no [mqtt] section

    def as_json(self) -> dict[str, Any]:
        """The snapshot as JSON-ready data (instants in ISO 8601)."""
        data = asdict(self)
        data["sync"]["store_reachable"] = self.sync.store_reachable
        return _iso(data)  # type: ignore[no-any-return]


def _iso(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _iso(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_iso(v) for v in value]
    return value


def terminal_view(status: DeviceStatus) -> DeviceView:
    """A ZK terminal's view."""
    info = status.info
    return DeviceView(
        id=status.device_id,
        kind="zk",
        online=status.online,
        since=status.since,
        serial=info.serial if info else None,
        firmware=info.firmware if info else None,
        users=info.users if info else None,
        records=info.records if info else None,
        capacity=info.records_capacity if info else None,
        percent_used=status.log_percent,
        clock_skew_s=info.clock_skew_s if info else None,
        last_punch=status.last_punch,
        last_error=status.last_error,
        punches=status.punches,
        live=status.live,
    )


def card_reader_view(status: CardReaderStatus) -> DeviceView:
    """A card-reader entry's view."""
    return DeviceView(
        id=status.device_id,
        kind="pcsc",
        online=status.online,
        since=status.last_change,
        last_punch=status.last_punch,
        last_error=status.problem or status.last_error,
        punches=status.punches,
        live=True,
        readers=list(status.readers),
    )


def take_snapshot(service: GatewayService, limits: Thresholds, now: datetime | None = None) -> Snapshot:
    """The gateway's picture now."""
    now = now or datetime.now(UTC)
    devices = [terminal_view(s) for s in service.status.values()]
    devices += [card_reader_view(s) for s in service.card_status.values()]
    backlog = service.buffer.backlog()
    pusher = service.pusher
    oldest = backlog.oldest_pending_captured_at
    sync = SyncView(
        pending=backlog.pending,
        oldest_pending_at=oldest.replace(tzinfo=UTC) if oldest and oldest.tzinfo is None else oldest,
        rejected=backlog.rejected,
        quarantined=backlog.quarantined,
        last_success=pusher.last_success,
        unreachable_since=pusher.unreachable_since,
        last_error=pusher.last_error,
        last_contact=pusher.last_contact,
        buffer_write_failure=service.buffer.write_failure,
    )
    alerts = [a for d in devices for a in device_alerts(d, limits, now)] + sync_alerts(sync, limits, now)
    bridge = service.mqtt
    mqtt = MqttView(bridge.where, bridge.connected) if bridge is not None else None
    return Snapshot(service.config.gateway.id, now, devices, sync, alerts, mqtt)
