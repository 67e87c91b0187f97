"""One terminal at this gateway: its status, and what happens to what it yields.

A keeper turns a driver's reads into durable buffer rows and status, and applies the device's
policies (clock, full log) over the session the read came from. It serves the scheduled polls
and, for ``live`` devices, is the sink of the live capture. Rules live in the policy modules.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from ekinerja.config.gateway import ZkDevice
from ekinerja.drivers.zkteco import (
    ClearOutcome,
    DeviceCursor,
    DeviceInfo,
    DeviceRefused,
    DeviceSession,
    DeviceUnavailable,
    NotStored,
    PullResult,
    ZkDriver,
)
from ekinerja.gateway.buffer import Buffer
from ekinerja.gateway.buffer_writes import BufferWriteFailed
from ekinerja.gateway.clock_policy import should_set_clock
from ekinerja.gateway.log_policy import percent_used, should_clear_log
from ekinerja.sync.contract import DeviceRead, PunchEvent

log = logging.getLogger("ekinerja.gateway")

TOLD_PER_READ = 200


@dataclass
class DeviceStatus:
    """The last known state of one device, for the CLI and the status page."""

    device_id: str
    live: bool = False
    online: bool = False
    since: datetime | None = None  # when ``online`` last changed (or was first known)
    punches: int = 0  # new punches stored since the gateway started
    info: DeviceInfo | None = None
    last_poll: datetime | None = None
    last_error: str | None = None
    last_new: int = 0
    last_punch: datetime | None = None  # the device's wall-clock time of the newest punch read
    last_clock_set: tuple[datetime, float] | None = None  # when, and the skew it removed
    clock_set_unrecorded: str | None = None  # why the last clock set is missing from the buffer's record of them
    last_log_clear: tuple[datetime, int] | None = None  # when, and how many records were cleared
    live_events: int = 0
    live_unreadable: int = 0

    @property
    def log_percent(self) -> float | None:
        """How full the terminal's log is, in percent of its capacity."""
        return percent_used(self.info.records, self.info.records_capacity) if self.info else None


class DeviceKeeper:
    """Polls or captures one terminal into the buffer; see the module docstring."""

    def __init__(self, device: ZkDevice, driver: ZkDriver, buffer: Buffer, on_new_events: Callable[[], None]) -> None:
        self.device = device
        self.driver = driver
        self.buffer = buffer
        self.on_new_events = on_new_events
        self.status = DeviceStatus(device.id, live=device.live)
        self._polling = threading.Lock()  # a scheduled poll and one asked for by a command take turns
        self.clock_set_wanted = threading.Event()  # a command asked for the clock to be set at the next read
        self.waiting_for_room = False  # the last read could not be stored: the buffer cannot be written
        # Told of punches as they are stored (MQTT). A poll's read is told only when it is a few
        # new punches, not a whole log read for the first time.
        self.on_punches: Callable[[Sequence[PunchEvent]], None] = lambda events: None

    def poll(self, *, force: bool = False) -> PullResult | None:
        """Read the device once into the buffer. Returns None when it is unreachable or backing off."""
        if not force and not self.driver.backoff.ready():
            return None
        with self._polling:
            return self._poll()

    def _poll(self) -> PullResult | None:
        self.status.last_poll = datetime.now(UTC)
        try:
            result = self.driver.pull(self.cursor(), then=self.pulled)
        except DeviceUnavailable as exc:
            self.failed(exc)
            return None
        except NotStored:
            # Wait one poll interval at most, not the backoff's longer waits: the log keeps the
            # punches meanwhile, and the buffer may have room again by then.
            self.driver.backoff.failed(at_most_s=self.device.poll_interval_s)
            return None
        self.driver.backoff.succeeded()
        return result

    # --- what reads bring (also the live capture's sink) ---------------------------------------

    def cursor(self) -> DeviceCursor:
        """How far the device's log has been read. While the buffer's writes fail, one is tried first,
        and NotStored raised when it fails too: the log is then not downloaded only to be thrown away."""
        if self.buffer.write_failure is not None:
            try:
                self.buffer.check_writable()
            except BufferWriteFailed as exc:
                raise self._not_stored("its log not read", exc) from None
        return self.buffer.cursor(self.device.id)

    def pulled(self, result: PullResult, session: DeviceSession) -> None:
        """Store a read of the log, then apply the clock and log policies while still connected."""
        status = self.status
        if not status.online:
            log.info("%s: online, serial %s, %d records", self.device.id, result.info.serial, result.info.records)
            status.since = datetime.now(UTC)
        status.online, status.info = True, result.info
        status.last_poll = datetime.now(UTC)
        try:
            status.last_new = self._store(result)
        except BufferWriteFailed as exc:
            raise self._not_stored(f"{len(result.events)} punch(es) read not stored", exc) from None
        status.last_error, self.waiting_for_room = None, False
        result.release()  # stored: another terminal's log may be parsed while the policies talk to this one
        status.last_punch = max(filter(None, (status.last_punch, result.cursor.last_device_time)), default=None)
        if self.driver.stopping:  # the gateway is stopping: no clock set, no clear now
            return
        try:
            self._keep_clock(result, session)
            self._keep_log(result, session)
        except DeviceUnavailable as exc:  # what was read is stored; the policies try again next time
            status.last_error = str(exc)
            log.warning("%s; the punches read are stored, the next poll tries again", exc)
        except BufferWriteFailed:  # the buffer said why; a cleared log not recorded is read whole next time
            log.warning("%s: a log clear could not be recorded in the buffer", self.device.id)

    def _not_stored(self, what: str, error: BufferWriteFailed) -> NotStored:
        """A read that could not be stored: the terminal keeps it. Said once while the buffer stays
        unwritable, not at every retry (the buffer itself logs why, and again now and then)."""
        if not self.waiting_for_room:
            log.warning(
                "%s: %s, as the buffer cannot be written; the terminal keeps its punches in its log, "
                "read again once the buffer can be written",
                self.device.id,
                what,
            )
        self.status.last_error, self.waiting_for_room = f"punches not stored: {error}", True
        return NotStored(self.status.last_error)

    def punched(self, read: DeviceRead) -> None:
        """Store punches that arrived live and have them pushed at once; NotStored when they cannot be."""
        try:
            added = self.buffer.append(read)
        except BufferWriteFailed as exc:
            raise self._not_stored("a live punch not stored", exc) from None
        self.waiting_for_room = False
        self.status.live_events += len(read)
        self.status.punches += added
        if added:
            self.on_punches(read)
        for event in read:
            log.debug("%s: live punch of %s at %s", self.device.id, event.subject.key(), event.device_time)
            self.status.last_punch = max(filter(None, (self.status.last_punch, event.device_time)))
        if added:
            self.on_new_events()

    def unreadable(self, reason: str) -> None:
        """A live event that could not be read: counted; its log copy is read at once."""
        self.status.live_unreadable += 1
        log.warning("%s: %s; reading it from the log instead", self.device.id, reason)

    def failed(self, error: DeviceUnavailable) -> None:
        """The device could not be read: mark it offline and back off (long when it refused us)."""
        status = self.status
        # A refused comm key will not fix itself: wait the longest at once rather than hammer the terminal.
        backoff = self.driver.backoff
        delay = backoff.failed(at_least_s=backoff.max_s if isinstance(error, DeviceRefused) else 0)
        if not self.driver.stopping and (status.online or status.last_error != str(error)):
            log.warning("%s; will retry in %.0f s", error, delay)
        if status.online or status.since is None:
            status.since = datetime.now(UTC)
        status.online, status.last_error = False, str(error)

    # --- policies ----------------------------------------------------------------------------------

    def _store(self, result: PullResult) -> int:
        if not result.downloaded:
            return 0
        added = self.buffer.append(
            result.events, device_id=self.device.id, cursor=result.cursor, quarantined=result.quarantined
        )
        self.status.punches += added
        if added and len(result.events) <= TOLD_PER_READ:
            self.on_punches(result.events)
        log.info(
            "%s: %d record(s) read, %d new, %d quarantined",
            self.device.id,
            len(result.events),
            added,
            len(result.quarantined),
        )
        if added:
            self.on_new_events()
        return added

    def _keep_clock(self, result: PullResult, session: DeviceSession) -> None:
        """Set the device's clock when its policy says so (see clock_policy.should_set_clock)."""
        device, info = self.device, result.info
        asked = self.clock_set_wanted.is_set()
        if not asked and not should_set_clock(
            policy=device.clock_policy,
            skew_s=info.clock_skew_s,
            threshold_s=device.clock_threshold_s,
            device_time=info.device_time,
            last_punch=result.cursor.last_device_time,
            quiet=timedelta(minutes=device.quiet_minutes),
        ):
            return
        session.set_time()
        self.clock_set_wanted.clear()
        try:
            self.buffer.record_clock_set(device.id, info.serial, info.clock_skew_s)
            self.status.clock_set_unrecorded = None
        except BufferWriteFailed as exc:  # the clock is set all the same: say so, and what is missing
            self.status.clock_set_unrecorded = str(exc)
            log.warning("%s: its clock was set, but the buffer could not record it (it cannot be written)", device.id)
        self.status.info = self.driver.read_info(session.conn)  # the skew as it is now, for the page and alerts
        self.status.last_clock_set = (datetime.now(UTC), info.clock_skew_s)
        log.warning(
            "%s (serial %s): its clock was %+.0f s off; set to the gateway's clock (%s)",
            device.id,
            info.serial,
            info.clock_skew_s,
            "asked by a command" if asked else "clock_policy = correct",
        )

    def _buffer_writable(self) -> bool:
        """Whether a write succeeds now: the clear and the cursor's rewind must be recorded after it."""
        try:
            self.buffer.check_writable()
        except BufferWriteFailed:
            return False
        return True

    def _keep_log(self, result: PullResult, session: DeviceSession) -> None:
        """Clear a full log when its policy allows (see log_policy.should_clear_log) and the buffer can
        record it: asked last, as asking writes."""
        device, info, cursor = self.device, result.info, result.cursor
        if device.clear_log_at_percent is None:
            return
        all_read = cursor.serial == info.serial and cursor.record_count == info.records
        rule = functools.partial(
            should_clear_log,
            at_percent=device.clear_log_at_percent,
            records=info.records,
            capacity=info.records_capacity,
        )
        if not rule(all_read=all_read, unacknowledged=0):  # spare the buffer the count
            return
        # The cursor as stored now: another process (`gateway pull` by hand) may have changed it
        # since this read was stored, and only what the buffer holds may decide a clear.
        stored = self.buffer.cursor(device.id)
        all_read = all_read and (stored.serial, stored.record_count, stored.log_sha) == (
            cursor.serial,
            cursor.record_count,
            cursor.log_sha,
        )
        waiting = self.buffer.unacknowledged(device.id)
        if not rule(all_read=all_read, unacknowledged=waiting):
            log.info("%s: its log is full; cleared once the store acknowledges %d more punch(es)", device.id, waiting)
            return
        if not self._buffer_writable():
            log.info("%s: its log is full; not cleared while the buffer cannot be written", device.id)
            return
        outcome = session.clear_log(cursor)
        if outcome is ClearOutcome.CHANGED:
            self.buffer.rewind_cursor(device.id)
            log.warning("%s: %s; nothing cleared, the log is read whole at the next poll", device.id, outcome.value)
            return
        if outcome is ClearOutcome.PUNCHED:
            log.info("%s: %s; the next poll reads the new punches and tries again", device.id, outcome.value)
            return
        self.buffer.record_log_clear(device.id, info.serial, info.records)
        self.status.last_log_clear = (datetime.now(UTC), info.records)
        log.warning(
            "%s (serial %s): its log was %.0f%% full; cleared %d records, every one acknowledged by the store",
            device.id,
            info.serial,
            percent_used(info.records, info.records_capacity) or 0,
            info.records,
        )
