"""The office process: drivers feed the buffer, the pusher drains it to the store.

This module wires parts together and holds no business rules: a poll asks a driver for new
records and writes them, with the device cursor, to the buffer in one transaction; only then is
the push brought forward.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from ekinerja.config.gateway import GatewayConfig, ZkDevice
from ekinerja.drivers.zkteco import DeviceInfo, DeviceUnavailable, PullResult, ZkDriver, ZkSettings
from ekinerja.gateway.buffer import Buffer
from ekinerja.gateway.clock_policy import should_set_clock

if TYPE_CHECKING:
    from ekinerja.sync.push import DrainReport, PushClient, Pusher

log = logging.getLogger("ekinerja.gateway")

BUFFER_FILE = "buffer.sqlite3"


@dataclass
class DeviceStatus:
    """The last known state of one device, for the CLI and the status page."""

    device_id: str
    online: bool = False
    info: DeviceInfo | None = None
    last_poll: datetime | None = None
    last_error: str | None = None
    last_new: int = 0
    last_clock_set: tuple[datetime, float] | None = None  # when, and the skew it removed


def zk_settings(config: GatewayConfig, device: ZkDevice) -> ZkSettings:
    """Driver settings for one ``[[devices]]`` entry."""
    return ZkSettings(
        gateway_id=config.gateway.id,
        device_id=device.id,
        host=device.host,
        port=device.port,
        protocol=device.protocol,
        password=device.password,
        timeout_s=device.timeout_s,
        timezone=config.device_zone(device),
        correct_skew=device.clock_policy == "correct",
        encoding=device.encoding,
    )


class GatewayService:
    """One gateway: its buffer, its drivers and its pusher."""

    def __init__(self, config: GatewayConfig) -> None:
        self.config = config
        self.buffer = Buffer(config.gateway.data_dir / BUFFER_FILE)
        self.devices = {d.id: d for d in config.devices}
        self.drivers = {d.id: ZkDriver(zk_settings(config, d)) for d in config.devices}
        self.status = {d.id: DeviceStatus(d.id) for d in config.devices}
        self.on_new_events: Callable[[], None] = lambda: None

    # The HTTP side is built on first use: `gateway pull` never talks to the store.
    @functools.cached_property
    def client(self) -> PushClient:
        """The store client."""
        from ekinerja.sync.push import PushClient

        store = self.config.store
        return PushClient(store.url, store.token, self.config.gateway.id, store.timeout_s)

    @functools.cached_property
    def pusher(self) -> Pusher:
        """The push job's state (backoff, last success)."""
        from ekinerja.sync.push import Pusher

        store = self.config.store
        return Pusher(self.buffer, self.client, store.batch_size, store.max_backoff_s)

    def close(self) -> None:
        """Release the HTTP pool and the buffer file."""
        if "client" in self.__dict__:
            self.client.close()
        self.buffer.close()

    def pull_device(self, device_id: str, *, force: bool = False) -> PullResult | None:
        """Poll one device into the buffer. Returns None when it is unreachable or backing off."""
        driver, status = self.drivers[device_id], self.status[device_id]
        if not force and not driver.backoff.ready():
            return None
        status.last_poll = datetime.now(UTC)
        try:
            result = driver.pull(self.buffer.cursor(device_id))
        except DeviceUnavailable as exc:
            delay = driver.backoff.failed()
            if status.online or status.last_error != str(exc):
                log.warning("%s; will retry in %.0f s", exc, delay)
            status.online, status.last_error = False, str(exc)
            return None
        if not status.online:
            log.info("%s: online, serial %s, %d records", device_id, result.info.serial, result.info.records)
        driver.backoff.succeeded()
        status.online, status.info, status.last_error = True, result.info, None
        status.last_new = self._store(device_id, result)
        self._keep_clock(device_id, result)
        return result

    def _keep_clock(self, device_id: str, result: PullResult) -> None:
        """Set the device's clock when its policy says so (see clock_policy.should_set_clock)."""
        device, info = self.devices[device_id], result.info
        if not should_set_clock(
            policy=device.clock_policy,
            skew_s=info.clock_skew_s,
            threshold_s=device.clock_threshold_s,
            device_time=info.device_time,
            last_punch=result.cursor.last_device_time,
            quiet=timedelta(minutes=device.quiet_minutes),
        ):
            return
        try:
            self.drivers[device_id].set_time()
        except DeviceUnavailable as exc:
            log.warning("%s: could not set its clock (%s); the next quiet poll tries again", device_id, exc)
            return
        self.buffer.record_clock_set(device_id, info.serial, info.clock_skew_s)
        self.status[device_id].last_clock_set = (datetime.now(UTC), info.clock_skew_s)
        log.warning(
            "%s (serial %s): its clock was %+.0f s off; set to the gateway's clock (clock_policy = correct)",
            device_id,
            info.serial,
            info.clock_skew_s,
        )

    def _store(self, device_id: str, result: PullResult) -> int:
        if not result.downloaded:
            return 0
        added = self.buffer.append(
            result.events, device_id=device_id, cursor=result.cursor, quarantined=result.quarantined
        )
        log.info(
            "%s: %d record(s) read, %d new, %d quarantined",
            device_id,
            len(result.events),
            added,
            len(result.quarantined),
        )
        if added:
            self.on_new_events()
        return added

    def pull_all(self) -> dict[str, PullResult | None]:
        """Poll every device once, one after the other, ignoring backoff."""
        return {device_id: self.pull_device(device_id, force=True) for device_id in self.drivers}

    def sync_once(self) -> DrainReport:
        """Push everything pending now, once."""
        from ekinerja.sync.push import drain

        return drain(self.buffer, self.client, self.config.store.batch_size)

    def run(self, stop: threading.Event) -> None:
        """The long-lived service: scheduled polls and pushes until ``stop`` is set."""
        from ekinerja.sync.jobs import Jobs

        jobs = Jobs(len(self.drivers))
        for device in self.config.devices:
            jobs.add_poll(device.id, device.poll_interval_s, functools.partial(self._poll_job, device.id))
        jobs.add_push(self.config.store.push_interval_s, self._push_job)
        jobs.add_daily("prune", self.prune)
        self.on_new_events = jobs.push_soon
        jobs.start()
        log.info(
            "gateway %s running: %d device(s), pushing to %s",
            self.config.gateway.id,
            len(self.drivers),
            self.config.store.shown_url(),
        )
        try:
            stop.wait()
        finally:
            jobs.stop()
            self.on_new_events = lambda: None

    def prune(self) -> int:
        """Drop acknowledged events older than ``keep_acknowledged_days``; returns how many."""
        keep = timedelta(days=self.config.gateway.keep_acknowledged_days)
        pruned = self.buffer.prune_acknowledged(datetime.now(UTC) - keep)
        if pruned:
            log.info("pruned %d acknowledged event(s) older than %g day(s) from the buffer", pruned, keep.days)
        return pruned

    def _poll_job(self, device_id: str) -> None:
        try:
            self.pull_device(device_id)
        except Exception:  # a job must never die: log and let the next interval try again
            log.exception("%s: unexpected error while polling", device_id)

    def _push_job(self) -> None:
        try:
            self.pusher.run_once()
        except Exception:
            log.exception("unexpected error while pushing; pending punches stay in the buffer")
