"""``/metrics`` of the gateway for Prometheus: the status snapshot at each scrape, and the pushes.

Gauges and per-device counters are read from the same snapshot the status page shows, when
Prometheus scrapes, so they cannot drift from it; only the push timings are kept here.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from fastapi import APIRouter

    from ekinerja.gateway.service import GatewayService
    from ekinerja.gateway.status import Snapshot
    from ekinerja.sync.push import DrainReport

PREFIX = "ekinerja_gateway"


class _SnapshotCollector(Collector):
    def __init__(self, service: GatewayService) -> None:
        self.service = service

    def collect(self) -> Iterator[Metric]:
        snapshot = self.service.snapshot()
        yield from device_metrics(snapshot)
        yield from sync_metrics(snapshot)


def device_metrics(snapshot: Snapshot) -> Iterator[Metric]:
    """Per device: up, punches stored, clock skew, log used."""
    up = GaugeMetricFamily(f"{PREFIX}_device_up", "1 when the device is reachable", labels=["device", "kind"])
    punches = CounterMetricFamily(
        f"{PREFIX}_punches", "New punches stored since the gateway started", labels=["device", "source"]
    )
    skew = GaugeMetricFamily(f"{PREFIX}_device_clock_skew_seconds", "Device clock minus true time", labels=["device"])
    used = GaugeMetricFamily(f"{PREFIX}_device_log_used_ratio", "Attendance log used, 0 to 1", labels=["device"])
    records = GaugeMetricFamily(f"{PREFIX}_device_records", "Records in the device's log", labels=["device"])
    for device in snapshot.devices:
        up.add_metric([device.id, device.kind], 1.0 if device.online else 0.0)
        punches.add_metric([device.id, device.kind], device.punches)  # a device's kind is its punches' source
        if device.clock_skew_s is not None:
            skew.add_metric([device.id], device.clock_skew_s)
        if device.percent_used is not None:
            used.add_metric([device.id], device.percent_used / 100)
        if device.records is not None:
            records.add_metric([device.id], device.records)
    yield from (up, punches, skew, used, records)


def sync_metrics(snapshot: Snapshot) -> Iterator[Metric]:
    """The buffer, the store link and the alerts."""
    sync = snapshot.sync
    gauges = {
        "backlog_events": ("Punches waiting to be pushed", sync.pending),
        "rejected_events": ("Punches the store rejected", sync.rejected),
        "quarantined_records": ("Device records that could not be read", sync.quarantined),
        "store_reachable": ("1 when the last push reached the store", 1.0 if sync.store_reachable else 0.0),
        "buffer_writable": (
            "0 while the buffer cannot be written (disk full)",
            0.0 if sync.buffer_write_failure else 1.0,
        ),
        "backlog_oldest_age_seconds": (
            "Age of the oldest punch waiting",
            (snapshot.taken_at - sync.oldest_pending_at).total_seconds() if sync.oldest_pending_at else 0.0,
        ),
    }
    for name, (text, value) in gauges.items():
        yield GaugeMetricFamily(f"{PREFIX}_{name}", text, value=value)
    if sync.last_success is not None:
        yield GaugeMetricFamily(
            f"{PREFIX}_last_push_success_timestamp_seconds",
            "When a push last succeeded",
            value=sync.last_success.timestamp(),
        )
    alerts = GaugeMetricFamily(f"{PREFIX}_alerts", "Alerts now, by code", labels=["code"])
    counts: dict[str, int] = {}
    for alert in snapshot.alerts:
        counts[alert.code] = counts.get(alert.code, 0) + 1
    for code, count in sorted(counts.items()):
        alerts.add_metric([code], count)
    yield alerts


class GatewayMetrics:
    """The gateway's registry: the snapshot collector and the push timings."""

    def __init__(self, service: GatewayService) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(_SnapshotCollector(service))
        self.push_seconds = Histogram(
            f"{PREFIX}_push_seconds", "Duration of a push run that sent something", registry=self.registry
        )
        self.pushed = Counter(
            f"{PREFIX}_pushed_events", "Events pushed, by the store's verdict", ["outcome"], registry=self.registry
        )
        self.push_failures = Counter(f"{PREFIX}_push_failures", "Push runs that failed", registry=self.registry)

    def observe_push(self, report: DrainReport) -> None:
        """Count one push run."""
        if report.error:
            self.push_failures.inc()
        if report.batches:
            self.push_seconds.observe(report.seconds)
        for outcome in ("accepted", "duplicate", "rejected"):
            self.pushed.labels(outcome).inc(getattr(report, outcome))

    def router(self) -> APIRouter:
        """``GET /metrics`` in Prometheus' text format (FastAPI is loaded only by the web server)."""
        from fastapi import APIRouter, Response

        router = APIRouter()

        @router.get("/metrics", include_in_schema=False)
        def metrics() -> Response:
            return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)

        return router
