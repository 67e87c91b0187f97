"""Live capture from a ZKTeco terminal: punches as they happen, with the log as the safety net.

pyzk opens and authenticates the session and registers for events; this module reads the event
packets itself. pyzk's own ``live_capture`` cannot be trusted with a year unattended: it loops
forever on an event size it does not know, raises on a user id it has not downloaded and on an
impossible date, and reads TCP as if every segment held exactly one packet.

A live event is only a fast copy of a log record. Every session starts with an incremental read
of the log, and a session is renewed every ``renew_s``, after ``silence_s`` without an event (a
terminal that restarted, or a link that died without a word, sends nothing: over UDP there is
not even a closed connection to notice), and at once after any error or an event that cannot be
read; so whatever the stream missed is read from the log at the next renewal. The live and the
logged copy of a punch are one event: same device, time, subject and punch, hence the same id.
"""

from __future__ import annotations

import logging
import socket
import struct
import threading
import time
from collections.abc import Callable
from datetime import date, datetime
from typing import Any, NamedTuple, Protocol

from zk import const
from zk.exception import ZKError

from ekinerja.drivers.zk_records import DeviceUser
from ekinerja.drivers.zkteco import (
    PUNCH_CODES,
    VERIFY_CODES,
    DeviceCursor,
    DeviceInfo,
    DeviceSession,
    DeviceUnavailable,
    NotStored,
    PullResult,
    ZkDriver,
    subject_key,
)
from ekinerja.sync.contract import DeviceRead

log = logging.getLogger("ekinerja.drivers.zk.live")

_TOP = struct.Struct("<4sI")
_TCP_MAGIC = b"\x50\x50\x82\x7d"
_HEADER = struct.Struct("<4H")
_MAX_PACKET = 1 << 16
# Event payload layouts by size: a numeric user id, or a 24-byte text id with 0, 4 or 20 more bytes.
_NUMERIC_EVENT = struct.Struct("<IBB6s")
_TEXT_EVENT = struct.Struct("<24sBB6s")
_TEXT_EVENT_SIZES = (32, 36, 52)


class LiveEvent(NamedTuple):
    """One punch as the terminal pushed it."""

    user_id: str
    verify_code: int
    punch_code: int
    day: date
    second: int
    by_number: bool = False  # a 12-byte event: a number that may be the user id or the internal uid


def parse_live_event(payload: bytes, encoding: str = "UTF-8") -> LiveEvent | str:
    """The punch in an event payload, or why it cannot be read (the log copy is read instead)."""
    if len(payload) == _NUMERIC_EVENT.size:
        number, verify, punch, stamp = _NUMERIC_EVENT.unpack(payload)
        user_id = str(number)
    elif len(payload) in _TEXT_EVENT_SIZES:
        raw_id, verify, punch, stamp = _TEXT_EVENT.unpack_from(payload)
        user_id = raw_id.split(b"\x00", 1)[0].decode(encoding, errors="replace").strip()
    else:
        return f"unknown live event size: {len(payload)} bytes (known: 12, 32, 36, 52)"
    year, month, day, hour, minute, second = stamp
    try:
        when = datetime(2000 + year, month, day, hour, minute, second)
    except ValueError as exc:
        return f"impossible date in a live event: {exc}"
    if subject_key(user_id) is None:
        return f"unreadable user id {user_id!r} in a live event"
    numeric = len(payload) == _NUMERIC_EVENT.size
    return LiveEvent(user_id, verify, punch, when.date(), hour * 3600 + minute * 60 + second, numeric)


class EventStream:
    """The event packets arriving on an open pyzk connection, each acknowledged as the terminal expects.

    Reads pyzk's socket and sends its ACK through pyzk (``_ZK__sock``, ``_ZK__ack_ok``: pyzk 0.9
    has no public way to read events other than its ``live_capture``; the version is pinned).
    """

    def __init__(self, conn: Any, where: str) -> None:
        self._conn = conn
        self._sock: socket.socket = conn._ZK__sock
        self._ack: Callable[[], None] = conn._ZK__ack_ok
        self._tcp: bool = conn.tcp
        self._where = where
        self._pending = bytearray()

    def start(self) -> None:
        """Ask the terminal to push attendance events on this connection."""
        try:
            self._conn.cancel_capture()
            self._conn.reg_event(const.EF_ATTLOG)
        except ZKError as exc:
            raise DeviceUnavailable(
                f"{self._where}: the terminal refused live events ({exc}); set live = false for it"
            ) from None

    def next(self, timeout_s: float) -> bytes | None:
        """The payload of the next event, or None when none arrived within ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            packet = self._read_packet(remaining)
            if packet is None:
                return None
            command, _checksum, _session, _reply = _HEADER.unpack_from(packet)
            if command != const.CMD_REG_EVENT:  # a late reply to an earlier command: not ours to read
                continue
            self._ack()
            return bytes(packet[_HEADER.size :])

    def _read_packet(self, timeout_s: float) -> bytes | None:
        self._sock.settimeout(timeout_s)
        try:
            return self._tcp_packet() if self._tcp else self._udp_packet()
        except TimeoutError:
            return None
        except OSError as exc:
            raise DeviceUnavailable(f"{self._where}: live connection failed ({exc})") from None

    def _udp_packet(self) -> bytes | None:
        data = self._sock.recv(_MAX_PACKET)
        return data if len(data) >= _HEADER.size else None

    def _tcp_packet(self) -> bytes:
        while True:
            if len(self._pending) >= _TOP.size:
                magic, length = _TOP.unpack_from(self._pending)
                if magic != _TCP_MAGIC or not _HEADER.size <= length <= _MAX_PACKET:
                    raise DeviceUnavailable(f"{self._where}: the live stream is garbled; reconnecting")
                end = _TOP.size + length
                if len(self._pending) >= end:
                    packet = bytes(self._pending[_TOP.size : end])
                    del self._pending[:end]
                    return packet
            data = self._sock.recv(_MAX_PACKET)
            if not data:
                raise DeviceUnavailable(f"{self._where}: the terminal closed the live connection (restarted?)")
            self._pending += data


class LiveSink(Protocol):
    """Where a live capture delivers; each call returns only once what it got is durable."""

    def cursor(self) -> DeviceCursor:
        """How far the log has been read; NotStored when a read could not be kept now (nothing is downloaded)."""

    def pulled(self, result: PullResult, session: DeviceSession) -> None:
        """The catch-up read that starts every session (the terminal still connected)."""

    def punched(self, read: DeviceRead) -> None:
        """Punches that arrived live; NotStored when they could not be kept (the log still holds them)."""

    def unreadable(self, reason: str) -> None:
        """A live event that could not be read (its log copy is read at once instead)."""

    def failed(self, error: DeviceUnavailable) -> None:
        """The session failed; the driver's backoff says when to try again."""


class UserDirectory:
    """Who a numbered live event means. Some terminals put the user id in the event's number,
    others (with 8-byte records) their internal uid, and a uid can be handed to another person
    at any moment. So a number is taken live only when it is an enrolled user id and no other
    person's uid; anything else is left to the log, which names the user unambiguously. A live
    copy can be late, never a punch for the wrong person."""

    def __init__(self, users: list[DeviceUser]) -> None:
        self.user_ids = {u.user_id for u in users}
        self.by_uid = {u.uid: u.user_id for u in users}

    def resolve(self, event: LiveEvent) -> str | None:
        """The user id of the event, or None when the log must say who it was."""
        if not event.by_number:
            return event.user_id
        if event.user_id in self.user_ids and self.by_uid.get(int(event.user_id)) in (None, event.user_id):
            return event.user_id
        return None


# After this many live events in a row that cannot be read, the terminal is read by polling only.
UNREADABLE_BEFORE_POLLING = 3


class ZkLiveCapture:
    """Keeps one terminal's live stream up, renewing it every ``renew_s`` and after any failure."""

    def __init__(self, driver: ZkDriver, sink: LiveSink, renew_s: float, silence_s: float | None = None) -> None:
        self.driver = driver
        self.sink = sink
        self.renew_s = renew_s
        self.silence_s = min(silence_s or renew_s, renew_s)
        self.sessions = 0
        self.unreadable_in_a_row = 0
        self._renew = threading.Event()

    def renew(self) -> None:
        """End the current session now (or a wait for the next): the next one starts with a read of the log."""
        self._renew.set()
        self.driver.backoff.next_attempt = 0.0  # asked for: try now, not after the backoff

    @property
    def polling_only(self) -> bool:
        """Whether live events proved unreadable and the terminal is read by polling instead."""
        return self.unreadable_in_a_row >= UNREADABLE_BEFORE_POLLING

    def run(self, stop: threading.Event) -> None:
        """Capture until ``stop`` is set."""
        while not stop.is_set():
            wait = self.driver.backoff.next_attempt - time.monotonic()
            if wait > 0:
                stop.wait(min(wait, 0.2))
                continue
            try:
                self._session(stop)
            except DeviceUnavailable as exc:
                self.sink.failed(exc)
            except NotStored:  # the sink said why; a later session catches up from the log, by renew_s at most
                self.driver.backoff.failed(at_most_s=self.renew_s)
            except Exception as exc:  # a capture thread must never die: report and start over
                log.exception("%s: unexpected error in live capture", self.driver.settings.device_id)
                self.sink.failed(DeviceUnavailable(f"{self.driver.settings.device_id}: {exc}"))

    def _session(self, stop: threading.Event) -> None:
        """One connection: catch up from the log, then take events until renewal, stop or failure."""
        self._renew.clear()  # this session's catch-up is what a renewal asked for
        if self.polling_only:  # read the log, then leave the terminal alone until the next read
            with self.driver.connect() as conn:
                self._catch_up(conn)
            self.driver.backoff.succeeded()
            deadline = time.monotonic() + self.renew_s
            while not (stop.is_set() or self._renew.is_set()) and time.monotonic() < deadline:
                stop.wait(0.5)
            return
        with self.driver.connect() as conn:
            self._catch_up(conn)
            # Measured again: the sink may have just set the terminal's clock (clock_policy = correct).
            info = self.driver.read_info(conn)
            renew_at = time.monotonic() + self.renew_s
            # Read at every session: a slot given to another person keeps the user count.
            users = UserDirectory(self.driver.users_on(conn))
            stream = EventStream(conn, self.driver.where)
            stream.start()
            self.sessions += 1
            self._take_events(stop, stream, info, users, renew_at)
            conn._ZK__sock.settimeout(self.driver.settings.timeout_s)  # pyzk's goodbye waits with its own
        self.driver.backoff.succeeded()  # a stream that dies as soon as it starts keeps backing off

    def _take_events(
        self, stop: threading.Event, stream: EventStream, info: DeviceInfo, users: UserDirectory, renew_at: float
    ) -> None:
        """Hand each event to the sink until renewal, silence or stop; return early on one that cannot be read."""
        quiet_until = time.monotonic() + self.silence_s
        while (
            not (stop.is_set() or self._renew.is_set())
            and (remaining := min(renew_at, quiet_until) - time.monotonic()) > 0
        ):
            payload = stream.next(min(remaining, 0.5))
            if payload is None:
                continue
            quiet_until = time.monotonic() + self.silence_s
            event = parse_live_event(payload, self.driver.settings.encoding)
            if isinstance(event, str):
                self._unreadable(event)
                return  # the next session starts with the log, which holds this punch
            user_id = users.resolve(event)
            subject = subject_key(user_id) if user_id is not None else None
            if subject is None:
                self._unreadable(f"live event of user {event.user_id!r}, unknown or ambiguous on the terminal")
                return
            self.unreadable_in_a_row = 0
            self.driver.backoff.succeeded()
            self.sink.punched(self._read(subject, event, info))

    def _unreadable(self, reason: str) -> None:
        self.unreadable_in_a_row += 1
        if self.polling_only:
            reason += f"; {self.unreadable_in_a_row} in a row: this terminal is now read by polling only"
        self.sink.unreadable(reason)

    def _catch_up(self, conn: Any) -> None:
        """Read the log beyond the cursor and hand it to the sink; nothing of it is kept after."""
        result = self.driver.read_new(conn, self.sink.cursor())
        try:
            self.sink.pulled(result, DeviceSession(self.driver, conn))
        finally:
            result.release()

    def _read(self, subject: str, event: LiveEvent, info: DeviceInfo) -> DeviceRead:
        factory = self.driver.event_factory(info)
        read = factory.new_read()
        read.rows.append(
            (
                subject,
                VERIFY_CODES.get(event.verify_code, "unknown"),
                PUNCH_CODES.get(event.punch_code, "unknown"),
                *factory.wall_times(event.day, event.second),
            )
        )
        return read
