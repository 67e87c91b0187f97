"""ZKTeco terminals through pyzk: read the log, turn records into PunchEvents.

pyzk handles the connection and the buffered transfer; this module decides when a download is
needed (the record count changed), parses the bytes itself (``zk_records``) and quarantines what
cannot be parsed. The driver knows its device and nothing else: no buffer, no HTTP.
"""

from __future__ import annotations

import hashlib
import logging
import socket
import struct
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import ValidationError
from zk import ZK, const
from zk.exception import ZKError

from ekinerja.backoff import Backoff
from ekinerja.bulk import gc_paused
from ekinerja.drivers.zk_records import (
    AttendanceRecord,
    BadRecord,
    DeviceUser,
    parse_attendance,
    parse_users,
    record_size,
    split_dataset,
)
from ekinerja.sync.contract import EventFactory, Punch, PunchEvent, Source, Subject, Verify

log = logging.getLogger("ekinerja.drivers.zk")

# ZK verify codes as terminals report them; firmware differs, so anything else is "unknown".
VERIFY_CODES = {
    0: Verify.PASSWORD.value,
    1: Verify.FINGERPRINT.value,
    2: Verify.CARD.value,
    3: Verify.PASSWORD.value,
    4: Verify.CARD.value,
    15: Verify.FACE.value,
}
PUNCH_CODES = {code: Punch.from_zk(code).value for code in range(6)}


def subject_key(user_id: str) -> str | None:
    """The subject key of a terminal's user id, or None when it cannot be one."""
    try:
        return Subject(zk_user_id=user_id).key()
    except ValidationError:
        return None


def _last_record_sha(body: bytes, count: int, upto: int | None = None) -> str | None:
    """SHA-256 of the raw bytes of record ``upto - 1`` (default: the last record)."""
    size = record_size(body, count)
    end = count if upto is None else upto
    if size is None or end <= 0:
        return None
    return hashlib.sha256(body[(end - 1) * size : end * size]).hexdigest()


class _EndOfStreamRaises:
    """pyzk's TCP socket, except that a connection the terminal closed raises instead of reading b"".

    pyzk 0.9 loops on ``recv`` until it has the rest of a chunk; once the terminal has closed the
    connection (a reboot mid-transfer), ``recv`` returns b"" forever and that loop never ends.
    """

    def __init__(self, sock: Any) -> None:
        self._sock = sock

    def recv(self, size: int, *flags: int) -> bytes:
        data: bytes = self._sock.recv(size, *flags)
        if not data and size:
            raise ConnectionResetError("the terminal closed the connection")
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


def _wake(sock: Any, *, tcp: bool) -> None:
    """Make a request blocked on ``sock`` fail now.

    A TCP socket is shut down. pyzk's UDP socket is not connected, and shutting it down wakes
    nobody on Linux: a one-byte datagram to it does, and pyzk cannot parse it.
    """
    if tcp:
        sock.shutdown(socket.SHUT_RDWR)
        return
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as waker:
        waker.sendto(b"\x00", ("127.0.0.1", sock.getsockname()[1]))


class DeviceUnavailable(Exception):
    """The terminal did not answer or the link failed; the message says what to check."""


class DeviceRefused(DeviceUnavailable):
    """The terminal answers but refuses us (comm key): retrying soon cannot help, an operator must act."""


class NotStored(Exception):
    """Raised by whoever a read is handed to when it could not keep it (the gateway's disk full).

    The terminal still holds every punch of it in its log, and the cursor did not move: the
    driver backs off and the log is read again later. The sink has said why.
    """


@dataclass(frozen=True)
class ZkSettings:
    """What the driver needs to reach one terminal (taken from the gateway config)."""

    gateway_id: str
    device_id: str
    host: str
    port: int = 4370
    protocol: str = "tcp"
    password: int = 0
    timeout_s: float = 10.0
    max_backoff_s: float = 300.0
    timezone: str = "Asia/Jakarta"
    correct_skew: bool = False
    encoding: str = "UTF-8"


@dataclass(frozen=True)
class DeviceCursor:
    """How far the gateway has read a terminal's log.

    ``last_record_sha`` is the SHA-256 of the raw bytes of the last record read: the log is
    resumed after ``record_count`` records only while that record is still where it was.
    ``log_sha`` is that of the whole log: it is cleared only while it is still exactly that.
    """

    serial: str | None = None
    record_count: int = 0
    last_device_time: datetime | None = None
    last_record_sha: str | None = None
    log_sha: str | None = None  # of the whole log as last downloaded: what a clear may remove


@dataclass(frozen=True)
class DeviceInfo:
    """What a poll learned about the terminal itself."""

    serial: str
    firmware: str
    users: int
    records: int
    records_capacity: int
    device_time: datetime
    clock_skew_s: float


@dataclass(frozen=True)
class QuarantinedRecord:
    """A record that could not become a PunchEvent, kept with its raw bytes."""

    device_id: str
    device_serial: str
    record_index: int
    raw: bytes
    reason: str


# Parsing a downloaded log and storing its events is where a read holds memory (a few MB per
# 10,000 records) and the CPU. Downloads from many terminals go on at once, but one log at a time
# is parsed and stored, so the gateway's memory does not grow with the number of terminals
# catching up together; under the GIL two would not parse faster (bench/many_terminals.py).
LOG_READS_AT_ONCE = 1
_log_reads = threading.BoundedSemaphore(LOG_READS_AT_ONCE)


@dataclass
class PullResult:
    """The outcome of one poll: new events, quarantined records and the cursor after them.

    A result that downloaded holds one of the LOG_READS_AT_ONCE slots until :meth:`release`
    (once its events are stored); :meth:`ZkDriver.pull` releases it in any case.
    """

    info: DeviceInfo
    cursor: DeviceCursor
    downloaded: bool
    events: Sequence[PunchEvent] = ()
    quarantined: list[QuarantinedRecord] = field(default_factory=list)
    _slot: ExitStack = field(default_factory=ExitStack, repr=False)

    def release(self) -> None:
        """Let another terminal's log be parsed (the events are stored; safe to call twice)."""
        self._slot.close()


class ZkDriver:
    """Reads one ZKTeco terminal. Not thread-safe: one poll at a time per driver."""

    def __init__(self, settings: ZkSettings, clock: Callable[[], datetime] | None = None) -> None:
        self.settings = settings
        self.where = f"{settings.device_id} ({settings.protocol}://{settings.host}:{settings.port})"
        self._zone = ZoneInfo(settings.timezone)
        self._clock = clock or (lambda: datetime.now(UTC))
        self.backoff = Backoff(base_s=min(2.0, settings.max_backoff_s), max_s=settings.max_backoff_s)
        self.stopping = False
        self._conn: Any = None

    @contextmanager
    def connect(self) -> Iterator[Any]:
        """An open pyzk connection; any failure becomes DeviceUnavailable."""
        if self.stopping:
            raise DeviceUnavailable(f"{self.where}: the gateway is stopping")
        s = self.settings
        zk = ZK(
            s.host,
            port=s.port,
            timeout=s.timeout_s,
            password=s.password,
            force_udp=s.protocol == "udp",
            ommit_ping=True,
            encoding=s.encoding,
        )
        self._conn = zk  # pyzk's connect() returns this same object: abort() can reach it from now on
        try:
            conn = self._open(zk)
            if conn.tcp:  # pyzk's private socket attribute: see _EndOfStreamRaises
                conn._ZK__sock = _EndOfStreamRaises(conn._ZK__sock)
            try:
                with self.errors():
                    yield conn
            finally:
                # The link may already be gone; there is nothing left to release then.
                with suppress(Exception):
                    conn.disconnect()
        finally:
            self._conn = None

    def _open(self, zk: Any) -> Any:
        where = self.where
        try:
            return zk.connect()
        except ZKError as exc:
            if "Unauthenticated" in str(exc):
                raise DeviceRefused(f"{where}: comm key refused; check `password` for this device") from None
            raise DeviceUnavailable(f"{where}: no answer ({exc}); check power, cable and address") from None
        except struct.error:
            # pyzk cannot derive a comm key from some values (e.g. 131071): the key, not the link.
            raise DeviceRefused(f"{where}: pyzk cannot use this comm key; set another on the terminal") from None
        except (OSError, ValueError, IndexError) as exc:
            raise DeviceUnavailable(f"{where}: connection failed ({exc})") from None

    @contextmanager
    def errors(self, doing: str | None = None) -> Iterator[None]:
        """Turns whatever pyzk raises on a broken or refusing terminal into DeviceUnavailable."""
        try:
            yield
        except ZKError as exc:
            raise DeviceUnavailable(f"{self.where}: {f'{doing} ({exc})' if doing else exc}") from None
        except (OSError, ValueError, IndexError, TimeoutError, struct.error) as exc:
            failed = f"{type(exc).__name__}: {exc}"
            raise DeviceUnavailable(f"{self.where}: {doing or 'transfer failed'} ({failed})") from None

    def abort(self) -> None:
        """Stop at once (the gateway is stopping): the request in flight fails, none is started.

        A clear in progress fails too: a terminal re-enables itself when its session ends, and
        no clear is started once stopping (see DeviceSession.clear_log).
        """
        self.stopping = True
        conn = self._conn
        if conn is not None:
            with suppress(OSError, AttributeError):
                _wake(conn._ZK__sock, tcp=conn.tcp)

    def read_info(self, conn: Any) -> DeviceInfo:
        """Serial, firmware, sizes and clock skew; a handful of round trips."""
        conn.read_sizes()
        serial = str(conn.get_serialnumber() or "").strip()
        firmware = str(conn.get_firmware_version() or "").strip()
        before = self._clock()
        device_time = conn.get_time()
        after = self._clock()
        true_local = (before + (after - before) / 2).astimezone(self._zone).replace(tzinfo=None)
        skew = round((device_time - true_local).total_seconds(), 1)
        return DeviceInfo(serial, firmware, conn.users, conn.records, conn.rec_cap, device_time, skew)

    def pull(self, cursor: DeviceCursor, then: AfterPull | None = None) -> PullResult:
        """Poll the terminal; download and parse the log only when it changed since ``cursor``.

        ``then(result, session)`` runs before the connection closes, so whoever stores the
        result can act on the terminal (set its clock, clear its log) in the same session.
        """
        with self.connect() as conn:
            result = self.read_new(conn, cursor)
            try:
                if then is not None:
                    then(result, DeviceSession(self, conn))
            finally:
                result.release()
        return result

    def read_new(self, conn: Any, cursor: DeviceCursor) -> PullResult:
        """What the terminal holds beyond ``cursor``, over an open connection."""
        info = self.read_info(conn)
        # A full log may be one that overwrites its oldest records: its count no longer moves.
        full = 0 < info.records_capacity <= info.records
        if cursor.serial == info.serial and cursor.record_count == info.records and not full:
            return PullResult(info=info, cursor=cursor, downloaded=False)
        body, count = self.download_log(conn)
        users = self.users_on(conn) if record_size(body, count) == 8 else []
        skip = self._resume_index(cursor, info, body, count)
        result = PullResult(info=info, cursor=cursor, downloaded=True)
        uid_to_user = {u.uid: u.user_id for u in users}
        result._slot.enter_context(_log_reads)  # released by the caller once stored
        try:
            with gc_paused():
                records, bad = parse_attendance(
                    body, count, uid_to_user=uid_to_user, skip=skip, encoding=self.settings.encoding
                )
                self._to_events(records, info, result)
        except BaseException:
            result.release()
            raise
        result.quarantined += [self._quarantine(info, b) for b in bad]
        last_time = records[-1].device_time if records else cursor.last_device_time
        log_sha = hashlib.sha256(body).hexdigest()
        result.cursor = DeviceCursor(info.serial, count, last_time, _last_record_sha(body, count), log_sha)
        return result

    def read_users(self) -> list[DeviceUser]:
        """Every user enrolled on the terminal."""
        with self.connect() as conn:
            conn.read_sizes()
            return self.users_on(conn)

    def download_log(self, conn: Any, attempts: int = 3) -> tuple[bytes, int]:
        """The raw attendance log (without its length prefix) and its record count; after read_info.

        A punch landing during the download changes the count, and a log that no longer matches
        its count would be split at the wrong size: the count is read again after the download,
        and the download repeated until both agree.
        """
        for _ in range(attempts):
            count = conn.records
            if count == 0:
                return b"", 0
            data, _size = conn.read_with_buffer(const.CMD_ATTLOG_RRQ)
            body = split_dataset(data)
            conn.read_sizes()
            if conn.records == count and record_size(body, count) is not None:
                return body, count
        raise DeviceUnavailable(
            f"{self.settings.device_id}: the log ({len(body)} bytes) never matched its record count "
            f"({count}) in {attempts} downloads; punches arriving fast? The next poll tries again"
        )

    def users_on(self, conn: Any) -> list[DeviceUser]:
        """Every user enrolled on the terminal, over an open connection (after read_sizes)."""
        if conn.users == 0:
            return []
        data, _size = conn.read_with_buffer(const.CMD_USERTEMP_RRQ, const.FCT_USER)
        return parse_users(split_dataset(data), conn.users, self.settings.encoding)

    def _resume_index(self, cursor: DeviceCursor, info: DeviceInfo, body: bytes, count: int) -> int:
        """How many leading records were already read; 0 when the log was cleared, replaced or rewritten.

        The records read before must still be there byte for byte (the hash of the whole log as
        read, or of its last record for a cursor saved before the whole log was hashed): a
        terminal that overwrites its oldest records may keep both the count and the last record.
        """
        if cursor.serial != info.serial or not 0 < cursor.record_count <= count:
            return 0
        size = record_size(body, count)
        if cursor.log_sha is not None and size is not None:
            unchanged = hashlib.sha256(body[: cursor.record_count * size]).hexdigest() == cursor.log_sha
        else:
            unchanged = _last_record_sha(body, count, upto=cursor.record_count) == cursor.last_record_sha
        if not unchanged:
            full = 0 < info.records_capacity <= info.records  # a full log that overwrites is no surprise
            log.log(
                logging.INFO if full else logging.WARNING,
                "%s: the log no longer holds what was read before (%s); reading it whole",
                self.settings.device_id,
                "a full log overwriting its oldest records" if full else "cleared and refilled?",
            )
            return 0
        return cursor.record_count

    def event_factory(self, info: DeviceInfo) -> EventFactory:
        """Makes this terminal's events as read now, with the skew ``info`` measured."""
        s = self.settings
        return EventFactory(
            gateway_id=s.gateway_id,
            device_id=s.device_id,
            device_serial=info.serial or None,
            source=Source.ZK,
            timezone=s.timezone,
            captured_at=self._clock(),
            clock_skew_s=info.clock_skew_s,
            correct_skew=s.correct_skew,
        )

    def _to_events(self, records: list[AttendanceRecord], info: DeviceInfo, result: PullResult) -> None:
        factory = self.event_factory(info)
        read = factory.new_read()
        rows, wall_times = read.rows, factory.wall_times
        subjects: dict[str, str | None] = {}  # user id -> subject key, None when it cannot be one
        for rec in records:
            subject = subjects.get(rec.user_id, "")
            if subject == "":
                subject = subjects[rec.user_id] = subject_key(rec.user_id)
            if subject is None:
                bad = BadRecord(rec.position, b"", f"user id {rec.user_id!r} is not a valid subject")
                result.quarantined.append(self._quarantine(info, bad))
                continue
            rows.append(
                (
                    subject,
                    VERIFY_CODES.get(rec.verify_code, "unknown"),
                    PUNCH_CODES.get(rec.punch_code, "unknown"),
                    *wall_times(rec.day, rec.second),
                )
            )
        result.events = read

    def _quarantine(self, info: DeviceInfo, bad: BadRecord) -> QuarantinedRecord:
        log.warning(
            "%s (serial %s): record %d quarantined: %s",
            self.settings.device_id,
            info.serial,
            bad.index,
            bad.reason,
        )
        return QuarantinedRecord(self.settings.device_id, info.serial, bad.index, bad.raw, bad.reason)

    def set_time(self, when: datetime | None = None) -> None:
        """Set the terminal's clock to ``when`` (default: now in the device's zone)."""
        with self.connect() as conn:
            DeviceSession(self, conn).set_time(when)

    def local_now(self, when: datetime | None = None) -> datetime:
        """``when`` (default: now) as naive wall-clock time in the device's zone."""
        return (when or self._clock()).astimezone(self._zone).replace(tzinfo=None)


AfterPull = Callable[[PullResult, "DeviceSession"], None]


class ClearOutcome(Enum):
    """What became of a request to clear a terminal's log."""

    CLEARED = "cleared"
    PUNCHED = "someone punched since the log was read; nothing cleared"
    CHANGED = "the log is not the one that was read (cleared and refilled, or oldest records overwritten)"


class DeviceSession:
    """Actions on a terminal over a connection that is already open (see :meth:`ZkDriver.pull`)."""

    def __init__(self, driver: ZkDriver, conn: Any) -> None:
        self.driver = driver
        self.conn = conn

    def set_time(self, when: datetime | None = None) -> None:
        """Set the terminal's clock to ``when`` (default: now in the device's zone)."""
        with self.driver.errors("could not set its clock"):
            self.conn.set_time(self.driver.local_now(when))

    def clear_log(self, cursor: DeviceCursor) -> ClearOutcome:
        """Empty the attendance log if it is still exactly the one ``cursor`` read; verify it is empty.

        The terminal is disabled meanwhile so nobody can punch between the check and the clear.
        The check downloads the log again and compares it whole: a count alone cannot tell a log
        refilled to the same count, or one that overwrote its oldest records, from the one read.
        """
        driver, conn = self.driver, self.conn
        if driver.stopping:
            raise DeviceUnavailable(f"{driver.where}: the gateway is stopping; the log is cleared another time")
        with driver.errors("clearing its log failed"):
            conn.disable_device()
            try:
                conn.read_sizes()
                if conn.records != cursor.record_count:
                    return ClearOutcome.PUNCHED
                body, _count = driver.download_log(conn)
                if hashlib.sha256(body).hexdigest() != cursor.log_sha:
                    return ClearOutcome.CHANGED
                conn.clear_attendance()
                conn.read_sizes()
                if conn.records != 0:
                    raise DeviceUnavailable(
                        f"{driver.where}: the log still holds {conn.records} records after clearing"
                    )
                return ClearOutcome.CLEARED
            finally:
                with suppress(Exception):  # the link may be gone; the terminal re-enables when it ends
                    conn.enable_device()
