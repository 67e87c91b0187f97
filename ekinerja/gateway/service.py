"""The office process: drivers feed the buffer, the pusher drains it to the store.

This module wires parts together and holds no business rules: a device keeper per terminal
(polled on a schedule, or captured live in its own thread) writes what its driver reads to the
buffer, with the device cursor, in one transaction; only then is the push brought forward.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from ekinerja import sd_notify
from ekinerja.config.gateway import GatewayConfig, PcscDevice, ZkDevice
from ekinerja.drivers.card_reader import PcscSettings
from ekinerja.drivers.punch_windows import PunchWindow
from ekinerja.drivers.zk_live import ZkLiveCapture
from ekinerja.drivers.zkteco import PullResult, ZkDriver, ZkSettings
from ekinerja.errors import OperatorError
from ekinerja.gateway.alerts import Thresholds
from ekinerja.gateway.buffer import Buffer
from ekinerja.gateway.buffer_writes import BufferWriteFailed
from ekinerja.gateway.card_keeper import CardReaderKeeper, CardReaderStatus
from ekinerja.gateway.device_keeper import DeviceKeeper
from ekinerja.gateway.known_cards import KnownCards
from ekinerja.gateway.malloc_arenas import limit_malloc_arenas
from ekinerja.gateway.metrics import GatewayMetrics
from ekinerja.gateway.status import Snapshot, take_snapshot
from ekinerja.gateway.store_report import WATCH_S, StatusReporter
from ekinerja.sync.contract import PunchEvent

if TYPE_CHECKING:
    from ekinerja.drivers.pcsc import PcscWatch
    from ekinerja.gateway.mqtt_bridge import MqttBridge
    from ekinerja.gateway.web import WebServer
    from ekinerja.sync.jobs import Jobs
    from ekinerja.sync.push import DrainReport, PushClient, Pusher

log = logging.getLogger("ekinerja.gateway")

BUFFER_FILE = "buffer.sqlite3"
KNOWN_CARDS_FILE = "known_cards.json"
STOP_WAIT_S = 10.0


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
        max_backoff_s=device.max_backoff_s,
        timezone=config.device_zone(device),
        correct_skew=device.clock_policy == "correct",
        encoding=device.encoding,
    )


def pcsc_settings(config: GatewayConfig, device: PcscDevice) -> PcscSettings:
    """Driver settings for one ``kind = "pcsc"`` entry."""
    return PcscSettings(
        gateway_id=config.gateway.id,
        device_id=device.id,
        reader=device.reader,
        timezone=config.device_zone(device),
        debounce_s=device.debounce_s,
        punch_windows=tuple(PunchWindow(w.start, w.end, w.punch) for w in device.punch_windows),
        feedback=device.feedback,
        max_backoff_s=device.max_backoff_s,
    )


def missing_pyscard() -> str | None:
    """What to do when card readers are configured but pyscard is not installed, else None."""
    try:
        import smartcard  # noqa: F401
    except ImportError as exc:
        return (
            f"card readers (kind = pcsc) need pyscard ({exc}): install it with pip install "
            "'ekinerja-gateway[pcsc]' (it compiles: apt-get install gcc python3-dev libpcsclite-dev pcscd)"
        )
    return None


class GatewayService:
    """One gateway: its buffer, its drivers and its pusher."""

    def __init__(self, config: GatewayConfig) -> None:
        self.config = config
        self.buffer = Buffer(config.gateway.data_dir / BUFFER_FILE)
        self.buffer.on_writable = self._buffer_writable
        self.devices = {d.id: d for d in config.devices}
        self.drivers = {d.id: ZkDriver(zk_settings(config, d)) for d in config.terminals}
        self.on_new_events: Callable[[], None] = lambda: None
        self.keepers = {
            d.id: DeviceKeeper(d, self.drivers[d.id], self.buffer, lambda: self.on_new_events())
            for d in config.terminals
        }
        self.status = {device_id: keeper.status for device_id, keeper in self.keepers.items()}
        self.known_cards = KnownCards(config.gateway.data_dir / KNOWN_CARDS_FILE)
        self.card_keepers = {
            d.id: CardReaderKeeper(d, self.buffer, self.known_cards.is_known, lambda: self.on_new_events())
            for d in config.card_readers
        }
        self.card_status: dict[str, CardReaderStatus] = {i: k.status for i, k in self.card_keepers.items()}
        self.on_punches: Callable[[Sequence[PunchEvent]], None] = lambda events: None  # punches as stored (MQTT)
        for keeper in self.keepers.values():
            keeper.on_punches = lambda events: self.on_punches(events)
        for card_keeper in self.card_keepers.values():
            card_keeper.on_punches = lambda events: self.on_punches(events)
        self.card_watches: dict[str, PcscWatch] = {}  # built by run(): only the watch needs pyscard
        self.captures: dict[str, ZkLiveCapture] = {}  # the live terminals' captures, while running
        self.thresholds = Thresholds(**config.alerts.model_dump())
        self._pushing = threading.Lock()  # the scheduled push and a sync-now command take turns
        self.metrics = GatewayMetrics(self)
        self._snapshot_lock = threading.Lock()
        self._last_snapshot: Snapshot | None = None
        self._snapshot_started = 0.0
        self.web: WebServer | None = None  # while running
        self.mqtt: MqttBridge | None = None  # while running, with [mqtt] set

    # The HTTP side is built on first use: `gateway pull` never talks to the store.
    @functools.cached_property
    def client(self) -> PushClient:
        """The store client."""
        from ekinerja.sync.push import PushClient

        store = self.config.store
        if store.plain_http_to_remote():
            log.warning(
                "the store is at a plain http:// address on another machine (%s): this gateway's token and punches "
                "cross the network unencrypted; use its https:// address (and [store] ca_file for a private CA)",
                store.shown_url(),
            )
        return PushClient(store.url, store.token, self.config.gateway.id, store.timeout_s, store.ca_file)

    @functools.cached_property
    def reporter(self) -> StatusReporter:
        """The status reports to the store's fleet view."""
        return StatusReporter(self, self.config.store.report_interval_s)

    @functools.cached_property
    def pusher(self) -> Pusher:
        """The push job's state (backoff, last success)."""
        from ekinerja.sync.push import Pusher

        store = self.config.store
        return Pusher(self.buffer, self.client, store.batch_size, store.max_backoff_s)

    def require_pyscard(self) -> None:
        """Raise an OperatorError saying how to install pyscard when card readers need it."""
        missing = missing_pyscard() if self.config.card_readers else None
        if missing:
            raise OperatorError(missing)

    def _card_watches(self) -> dict[str, PcscWatch]:
        if not self.config.card_readers:
            return {}
        self.require_pyscard()
        from ekinerja.drivers.pcsc import PcscWatch

        return {
            d.id: PcscWatch(pcsc_settings(self.config, d), self.card_keepers[d.id]) for d in self.config.card_readers
        }

    def close(self) -> None:
        """Release the HTTP pool and the buffer file."""
        if "client" in self.__dict__:
            self.client.close()
        self.buffer.close()

    def pull_device(self, device_id: str, *, force: bool = False) -> PullResult | None:
        """Poll one device into the buffer. Returns None when it is unreachable or backing off."""
        return self.keepers[device_id].poll(force=force)

    def pull_all(self) -> dict[str, PullResult | None]:
        """Poll every device once, one after the other, ignoring backoff."""
        return {device_id: self.pull_device(device_id, force=True) for device_id in self.drivers}

    def sync_once(self) -> DrainReport:
        """Push everything pending now, once."""
        from ekinerja.sync.push import drain

        return drain(self.buffer, self.client, self.config.store.batch_size)

    def push_now(self) -> DrainReport | None:
        """One push run now, whatever the backoff says (the sync-now command)."""
        return self._push(ignore_backoff=True)

    def _push(self, *, ignore_backoff: bool) -> DrainReport | None:
        """One run of the pusher, taking turns with any other, counted in the metrics."""
        with self._pushing:
            if ignore_backoff:
                self.pusher.backoff.succeeded()
            try:
                report = self.pusher.run_once()
            except BufferWriteFailed:
                # The buffer said why. The store's answer could not be recorded: the batch goes again
                # (answered duplicate) once it can be; meanwhile pushes back off as for a store that is down.
                self.pusher.backoff.failed()
                return None
        if report is not None:
            self.metrics.observe_push(report)
        return report

    def _buffer_writable(self) -> None:
        """The buffer can be written again: read what the terminals kept, and push, without waiting out backoffs."""
        for device_id, keeper in self.keepers.items():
            if not keeper.waiting_for_room:
                continue
            capture = self.captures.get(device_id)
            if capture is not None:
                capture.renew()
            else:
                self.drivers[device_id].backoff.succeeded()
        if "pusher" in self.__dict__:
            self.pusher.backoff.succeeded()
        self.on_new_events()

    def snapshot(self) -> Snapshot:
        """The picture the status page, MQTT and /metrics show.

        It counts the buffer (a tenth of a second or more for a few hundred thousand punches), so
        callers that queue up while one is being taken share the next one rather than each counting again.
        """
        asked = time.monotonic()
        with self._snapshot_lock:
            if self._last_snapshot is not None and self._snapshot_started >= asked:
                return self._last_snapshot  # begun after this caller asked: as fresh as its own
            self._snapshot_started = time.monotonic()
            self._last_snapshot = take_snapshot(self, self.thresholds)
            return self._last_snapshot

    def run(self, stop: threading.Event) -> None:
        """The long-lived service: scheduled polls and pushes until ``stop`` is set."""
        from ekinerja.sync.jobs import Jobs

        limit_malloc_arenas()  # a thread per terminal: see malloc_arenas
        self.card_watches = self._card_watches()
        _ = self.pusher, self.reporter  # built here, before the threads that read them
        web = self._start_web(stop)
        bridge = self._start_mqtt()
        polled = [d for d in self.config.terminals if not d.live]
        jobs = Jobs(len(polled))
        for device in polled:
            jobs.add_poll(device.id, device.poll_interval_s, functools.partial(self._poll_job, device.id))
        jobs.add_push(self.config.store.push_interval_s, self._push_job)
        if self.config.card_readers:
            jobs.add_repeating("cards", self.config.store.cards_refresh_s, self.refresh_known_cards)
        # Looks every WATCH_S whether a report is due (first at once), so a device that comes or goes shows soon.
        jobs.add_repeating("report", WATCH_S, functools.partial(self._report_job, stop))
        jobs.add_daily("prune", self.prune)
        self.on_new_events = jobs.push_soon
        jobs.start()
        captures = self._start_live_captures(stop) + self._start_card_watches(stop)
        log.info(
            "gateway %s running: %d terminal(s) (%d live), %d card reader entr(ies), pushing to %s",
            self.config.gateway.id,
            len(self.drivers),
            len(captures) - len(self.card_watches),
            len(self.card_watches),
            self.config.store.shown_url(),
        )
        sd_notify.ready(f"running: {len(self.drivers)} terminal(s), {len(self.card_watches)} card reader entr(ies)")
        try:
            stop.wait()
        finally:
            sd_notify.stopping()
            if bridge is not None:  # first: the broker hears "offline" at once, and no command starts
                bridge.stop()
                self.mqtt = None
            self._stop_promptly(jobs, captures)
            if web is not None:
                web.stop()

    def _start_mqtt(self) -> MqttBridge | None:
        """The MQTT bridge when ``[mqtt]`` is set; it connects in the background, so a broker down costs nothing."""
        if self.config.mqtt is None:
            return None
        from ekinerja.gateway.mqtt_bridge import start_bridge

        self.mqtt = start_bridge(self)
        return self.mqtt

    def _start_web(self, stop: threading.Event) -> WebServer | None:
        """The status page, /healthz and /metrics; a gateway without its page still keeps every punch."""
        from ekinerja.gateway.web import WebServer

        web = WebServer(self, alive=lambda: not stop.is_set(), extra_routers=[self.metrics.router()])
        try:
            web.start()
        except OperatorError as exc:
            log.error("%s; the gateway runs on without its status page", exc)
            return None
        self.web = web
        return web

    def _stop_promptly(self, jobs: Jobs, captures: list[threading.Thread]) -> None:
        """No new poll starts, and every terminal request in flight fails now rather than at its timeout."""
        jobs.pause()
        for driver in self.drivers.values():
            driver.abort()
        for watch in self.card_watches.values():
            watch.abort()
        for thread in captures:
            thread.join(STOP_WAIT_S)
            if thread.is_alive():
                log.warning("%s did not stop within %g s", thread.name, STOP_WAIT_S)
        jobs.stop()
        self.on_new_events = lambda: None
        for driver in self.drivers.values():  # nothing runs any more: one-off reads may follow
            driver.stopping = False

    def _start_live_captures(self, stop: threading.Event) -> list[threading.Thread]:
        """A thread per ``live`` device, each keeping its stream up until ``stop``."""
        threads = []
        for device in self.config.terminals:
            if not device.live:
                continue
            capture = ZkLiveCapture(
                self.drivers[device.id], self.keepers[device.id], device.poll_interval_s, device.live_silence_s
            )
            self.captures[device.id] = capture
            thread = threading.Thread(target=capture.run, args=(stop,), name=f"live {device.id}", daemon=True)
            thread.start()
            threads.append(thread)
        return threads

    def _start_card_watches(self, stop: threading.Event) -> list[threading.Thread]:
        """A thread per card-reader entry, each watching its readers until ``stop``."""
        threads = []
        for device_id, watch in self.card_watches.items():
            thread = threading.Thread(target=watch.run, args=(stop,), name=f"cards {device_id}", daemon=True)
            thread.start()
            threads.append(thread)
        return threads

    def prune(self) -> int:
        """Drop acknowledged events older than ``keep_acknowledged_days``; returns how many."""
        keep = timedelta(days=self.config.gateway.keep_acknowledged_days)
        try:
            pruned = self.buffer.prune_acknowledged(datetime.now(UTC) - keep)
        except BufferWriteFailed:  # the buffer said why; nothing is lost by pruning a day later
            log.warning("acknowledged events not pruned from the buffer (it cannot be written); tried again tomorrow")
            return 0
        if pruned:
            log.info("pruned %d acknowledged event(s) older than %g day(s) from the buffer", pruned, keep.days)
        return pruned

    def refresh_known_cards(self) -> bool:
        """Fetch the registry's card list from the store; False (and the old list kept) when it cannot."""
        from ekinerja.sync.push import StoreRefused, StoreUnavailable

        try:
            self.known_cards.replace(self.client.known_cards())
        except (StoreUnavailable, StoreRefused) as exc:
            log.warning("card list not refreshed, the last one is kept (%d card(s)): %s", len(self.known_cards), exc)
            return False
        except OSError as exc:
            log.warning("card list not saved to %s: %s", self.known_cards.path, exc)
            return False
        return True

    def _poll_job(self, device_id: str) -> None:
        try:
            self.pull_device(device_id)
        except Exception:  # a job must never die: log and let the next interval try again
            log.exception("%s: unexpected error while polling", device_id)

    def _push_job(self) -> None:
        try:
            self._try_writing()
            self._push(ignore_backoff=False)
        except Exception:
            log.exception("unexpected error while pushing; pending punches stay in the buffer")

    def _report_job(self, stop: threading.Event) -> None:
        if stop.is_set():  # queued behind a push while stopping: a store that hangs must not hold the stop twice
            return
        try:
            self.reporter.tick()
        except Exception:  # a job must never die; the next tick tries again
            log.exception("unexpected error while reporting the status to the store")

    def _try_writing(self) -> None:
        """While the buffer's writes fail, try one: once there is room again, the alert and the metric
        clear and the terminals are read, even on a quiet night when nothing else writes."""
        if self.buffer.write_failure is not None:
            with contextlib.suppress(BufferWriteFailed):  # the buffer logs it, now and then
                self.buffer.check_writable()
