"""``/metrics`` of the store for Prometheus: what the gateways send and how ingest goes."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

from ekinerja.sync.contract import BatchResult

PREFIX = "ekinerja_store"


class StoreMetrics:
    """The store's registry (one per app, so several apps in one process do not collide)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.events = Counter(
            f"{PREFIX}_ingested_events", "Events received, by gateway and outcome", ["gateway", "outcome"],
            registry=self.registry,
        )  # fmt: skip
        self.batches = Counter(f"{PREFIX}_batches", "Batches stored, by gateway", ["gateway"], registry=self.registry)
        self.refused = Counter(
            f"{PREFIX}_refused_requests",
            "Gateway requests refused (bad token, wrong gateway), by HTTP status",
            ["status"],
            registry=self.registry,
        )
        self.ingest_seconds = Histogram(f"{PREFIX}_ingest_seconds", "Time to store one batch", registry=self.registry)

    def ingested(self, gateway_id: str, result: BatchResult, seconds: float) -> None:
        """Count one stored batch."""
        self.batches.labels(gateway_id).inc()
        for outcome in ("accepted", "duplicate", "rejected"):
            self.events.labels(gateway_id, outcome).inc(getattr(result, outcome))
        self.ingest_seconds.observe(seconds)
