"""The gateway's status, reported to the store, so the central IT team sees every office's gateway.

It is the snapshot the status page, MQTT and /metrics show, sent every ``[store] report_interval_s``,
right after start, and soon after a device goes on- or offline. A report that does not reach the
store is not retried before the next one is due: the push job already tells of a store outage,
and the store marks a gateway it has not heard from as stale.
"""

from __future__ import annotations

import logging
import math
import re
import time
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from ekinerja.gateway.status import DeviceView, Snapshot, SyncView
from ekinerja.sync.contract import (
    MAX_REPORT_ALERTS,
    MAX_REPORT_DEVICES,
    MAX_REPORT_READERS,
    MAX_REPORT_TEXT,
    GatewayReport,
)

if TYPE_CHECKING:
    from ekinerja.gateway.alerts import Alert
    from ekinerja.gateway.service import GatewayService

log = logging.getLogger("ekinerja.gateway")

WATCH_S = 1.0
"""How often the reporter looks whether a report is due: how soon a device coming or going is noticed."""
MIN_GAP_S = 5.0
"""At most one report this often, however many devices come and go (a gateway starting, a flapping link)."""

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]+")


def _text(value: str | None, limit: int = MAX_REPORT_TEXT) -> str | None:
    """One line of at most ``limit`` characters: driver errors can span lines, serials hold odd bytes."""
    if value is None:
        return None
    line = _CONTROL.sub(" ", value).strip()
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _device(view: DeviceView) -> dict[str, Any]:
    return {
        "id": view.id,
        "kind": view.kind,
        "online": view.online,
        "since": view.since,
        "serial": _text(view.serial, 64),
        "firmware": _text(view.firmware, 100),
        "users": view.users,
        "records": view.records,
        "capacity": view.capacity,
        "percent_used": _finite(view.percent_used),
        "clock_skew_s": _finite(view.clock_skew_s),
        "last_punch": view.last_punch,
        "last_error": _text(view.last_error),
        "punches": view.punches,
        "live": view.live,
        "readers": [_text(r, 200) for r in view.readers[:MAX_REPORT_READERS]],
    }


def _sync(sync: SyncView) -> dict[str, Any]:
    return {
        "pending": sync.pending,
        "oldest_pending_at": sync.oldest_pending_at,
        "rejected": sync.rejected,
        "quarantined": sync.quarantined,
        "last_success": sync.last_success,
        "last_error": _text(sync.last_error),
    }


def _alert(alert: Alert) -> dict[str, Any]:
    values = {k: _text(v) if isinstance(v, str) else v for k, v in alert.values.items()}
    return {"code": alert.code, "device_id": alert.device_id, "message": _text(alert.message), "values": values}


def gateway_report(snapshot: Snapshot) -> GatewayReport:
    """The snapshot in the store's contract (text made one line and cut to the contract's limits)."""
    return GatewayReport.model_validate(
        {
            "gateway_id": snapshot.gateway_id,
            "taken_at": snapshot.taken_at,
            "devices": [_device(d) for d in snapshot.devices[:MAX_REPORT_DEVICES]],
            "sync": _sync(snapshot.sync),
            "alerts": [_alert(a) for a in snapshot.alerts[:MAX_REPORT_ALERTS]],
        }
    )


class StatusReporter:
    """Decides when the gateway's status goes to the store, and sends it (the ``report`` job)."""

    def __init__(self, service: GatewayService, interval_s: float) -> None:
        self.service = service
        self.interval_s = interval_s
        self.sent = 0  # reports the store kept
        self._tried_at: float | None = None
        self._seen: tuple[tuple[str, bool, object], ...] | None = None
        self._problem: str | None = None

    def _availability(self) -> tuple[tuple[str, bool, object], ...]:
        """Which devices are online, and since when: cheap (no buffer query), compared every WATCH_S."""
        terminals = [(i, s.online, s.since) for i, s in self.service.status.items()]
        readers = [(i, s.online, s.last_change) for i, s in self.service.card_status.items()]
        return tuple(terminals + readers)

    def tick(self) -> bool:
        """Send a report when one is due or a device came or went; True when the store kept one."""
        now, availability = time.monotonic(), self._availability()
        since = math.inf if self._tried_at is None else now - self._tried_at
        if since < self.interval_s and (availability == self._seen or since < MIN_GAP_S):
            return False
        # Counted as tried whatever the outcome: a store that is down is not asked again every second.
        self._tried_at, self._seen = now, availability
        return self.send()

    def send(self) -> bool:
        """Send the status now; True when the store kept it. Never raises for the store's sake."""
        try:
            report = gateway_report(self.service.snapshot())
        except ValidationError as exc:  # a bug of this gateway: say it once, not every minute
            problem = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:3])
            if problem != self._problem:
                log.warning("status report not sent, it does not fit the store's contract: %s", problem)
            self._problem = problem
            return False
        kept = self.service.client.report(report)
        self.sent += kept
        return kept
