"""State of a simulated ZKTeco terminal: identity, users, attendance log, clock, capacities.

The datasets a client downloads are kept packed as the terminal would store them, so serving
100,000 records is a bytes join, not 100,000 struct calls. Everything is guarded by one lock:
the server's connection threads, the background puncher and the tests use the device at once.
"""

from __future__ import annotations

import logging
import random
import struct
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta
from typing import Any, Self
from zoneinfo import ZoneInfo

from ekinerja.drivers.sim.zk_protocol import U32, encode_time, encode_time_parts, time_hex

log = logging.getLogger("ekinerja.sim.zk")

RECORD_FORMATS = (8, 16, 40)
USER_FORMATS = (28, 72)

# Attendance record layouts, little-endian, time as the ZK u32:
#   8 bytes:  uid u16, status u8, time u32, punch u8
#  16 bytes:  user_id u32, time u32, status u8, punch u8, 2 reserved, workcode u32
#  40 bytes:  uid u16, user_id 24s, status u8, time u32, punch u8, 8 reserved
_RECORD_STRUCTS = {
    8: struct.Struct("<HBIB"),
    16: struct.Struct("<IIBB2xI"),
    40: struct.Struct("<H24sBIB8x"),
}
# User layouts:
#  28 bytes: uid u16, privilege u8, password 5s, name 8s, card u32, pad, group u8, timezone i16,
#            user_id u32
#  72 bytes: uid u16, privilege u8, password 8s, name 24s, card u32, pad, group 7s, pad, user_id 24s
_USER28 = struct.Struct("<HB5s8sIxBhI")
_USER72 = struct.Struct("<HB8s24sIx7sx24s")
# Live attendance events: numeric user id (terminals with 8/16-byte records), or a 24-byte string.
_EVENT12 = struct.Struct("<IBB6s")
_EVENT32 = struct.Struct("<24sBB6s")
_SIZES = struct.Struct("<20i3i")

Listener = Callable[["ZkRecord"], None]


class DeviceDisabled(RuntimeError):
    """A punch on a terminal that a client has disabled (CMD_DISABLEDEVICE): its keypad is locked."""


@dataclass(frozen=True, slots=True)
class ZkUser:
    """A user enrolled on the terminal, as the terminal stores it (names already truncated)."""

    uid: int
    user_id: str
    name: str
    privilege: int = 0
    password: str = ""
    card: int = 0
    group_id: str = ""


@dataclass(frozen=True, slots=True)
class ZkRecord:
    """One attendance record. ``status`` is the verify code (1 finger, 15 face, 2 card, 0 PIN);
    ``punch`` the state key (0 in, 1 out, 2 break out, 3 break in, 4 overtime in, 5 overtime out).
    """

    user_id: str
    uid: int
    timestamp: datetime
    status: int
    punch: int


def _fit(text: str, size: int) -> bytes:
    """UTF-8 bytes of ``text`` cut to ``size`` bytes without splitting a character."""
    return text.encode()[:size].decode(errors="ignore").encode()


def _canonical_int(user_id: str, limit: int) -> int | None:
    """The integer a numeric user id stands for, if it round-trips through ``str(int)``."""
    if not user_id.isascii() or not user_id.isdigit() or str(int(user_id)) != user_id:
        return None
    value = int(user_id)
    return value if value <= limit else None


def _pack_user(fmt: int, user: ZkUser) -> bytes:
    if fmt == 28:
        group = int(user.group_id) if user.group_id else 0
        return _USER28.pack(
            user.uid,
            user.privilege,
            user.password.encode(),
            user.name.encode(),
            user.card,
            group,
            0,
            int(user.user_id),
        )
    return _USER72.pack(
        user.uid, user.privilege, user.password.encode(), user.name.encode(), user.card,
        user.group_id.encode(), user.user_id.encode(),
    )  # fmt: skip


def _stored_user(fmt: int, user: ZkUser) -> ZkUser:
    """``user`` as a terminal with ``fmt``-byte users stores it: checked, fields cut to size."""
    small = fmt == 28
    if small and _canonical_int(user.user_id, 0xFFFFFFFF) is None:
        raise ValueError(f"28-byte users need a numeric user id, got {user.user_id!r}")
    if not small and len(user.user_id.encode()) > 24:
        raise ValueError(f"user id longer than 24 bytes: {user.user_id!r}")
    if small and user.group_id and _canonical_int(user.group_id, 255) is None:
        raise ValueError(f"28-byte users need a group number 0..255, got {user.group_id!r}")
    if not 0 < user.uid <= 0xFFFF:
        raise ValueError(f"uid must be 1..65535, got {user.uid}")
    return replace(
        user,
        name=_fit(user.name, 8 if small else 24).decode().strip(),
        password=_fit(user.password, 5 if small else 8).decode(),
        group_id=_fit(user.group_id, 7).decode(),
    )


def _pack_record(fmt: int, record: ZkRecord, time_value: int) -> bytes:
    """One record in the terminal's layout; ``time_value`` is passed so bad dates can be packed."""
    if not (0 <= record.status <= 255 and 0 <= record.punch <= 255):
        raise ValueError("status and punch must be bytes")
    if fmt == 8:
        return _RECORD_STRUCTS[8].pack(record.uid, record.status, time_value, record.punch)
    if fmt == 16:
        number = _canonical_int(record.user_id, 0xFFFFFFFF)
        if number is None:
            raise ValueError(f"16-byte records need a numeric user id, got {record.user_id!r}")
        return _RECORD_STRUCTS[16].pack(number, time_value, record.status, record.punch, 0)
    raw_id = record.user_id.encode()
    if len(raw_id) > 24:
        raise ValueError(f"user id longer than 24 bytes: {record.user_id!r}")
    return _RECORD_STRUCTS[40].pack(record.uid, raw_id, record.status, time_value, record.punch)


def _check_time(moment: datetime) -> datetime:
    if not 2000 <= moment.year <= 2099:
        raise ValueError(f"a terminal stores years 2000 to 2099, not {moment.year}")
    return moment.replace(microsecond=0, tzinfo=None)


class ZkDevice:
    """A terminal's state; thread-safe. Build one directly or with :meth:`generate`."""

    def __init__(
        self,
        *,
        serial: str = "SIM0000000001",
        firmware: str = "Ver 6.60 Jun 16 2015",
        platform: str = "ZMM220_TFT",
        device_name: str = "K40",
        mac: str = "00:17:61:00:00:01",
        record_format: int = 40,
        user_format: int = 72,
        users_cap: int = 3000,
        rec_cap: int = 100000,
        fingers_cap: int = 3000,
        clock_offset_s: float = 0.0,
        pin_width: int = 9,
        timezone: str = "Asia/Jakarta",
    ) -> None:
        if record_format not in RECORD_FORMATS:
            raise ValueError(f"record_format must be one of {RECORD_FORMATS}")
        if user_format not in USER_FORMATS:
            raise ValueError(f"user_format must be one of {USER_FORMATS}")
        self.serial, self.firmware, self.platform = serial, firmware, platform
        self.device_name, self.mac, self.pin_width = device_name, mac, pin_width
        self.record_format, self.user_format = record_format, user_format
        self.users_cap, self.rec_cap, self.fingers_cap = users_cap, rec_cap, fingers_cap
        self.enabled = True  # False while a client has it disabled: punches raise DeviceDisabled
        # A punch on a full log overwrites the oldest record: "shift" or "in place" (None: it grows).
        self.overwrite_when_full: str | None = None
        self._overwrites = 0
        self._clock_offset_s = float(clock_offset_s)
        # A terminal's clock shows local wall time where it hangs, whatever zone the host is in.
        self.zone = ZoneInfo(timezone)
        self._lock = threading.RLock()
        self._users: dict[int, ZkUser] = {}
        self._packed_users: dict[int, bytes] = {}
        self._uid_by_user_id: dict[str, int] = {}
        self._records: list[ZkRecord] = []
        # The log as the terminal stores it: packed records, bad-date raw records included.
        self._log = bytearray()
        self._log_count = 0
        self._listeners: list[Listener] = []

    def add_user(
        self,
        user_id: str,
        name: str = "",
        *,
        uid: int | None = None,
        privilege: int = 0,
        password: str = "",
        card: int = 0,
        group_id: str = "",
    ) -> ZkUser:
        """Enroll a user (or replace the one with the same uid); returns it as stored.

        Names and passwords are cut to the user format's field sizes and stripped, so the stored
        user equals what a client will read back.
        """
        with self._lock:
            uid = uid if uid is not None else max(self._users, default=0) + 1
            user = _stored_user(self.user_format, ZkUser(uid, user_id, name, privilege, password, card, group_id))
            self._packed_users[uid] = _pack_user(self.user_format, user)
            old = self._users.get(uid)
            if old is not None:
                self._uid_by_user_id.pop(old.user_id, None)
            self._users[uid] = user
            self._uid_by_user_id[user_id] = uid
        return user

    @property
    def users(self) -> list[ZkUser]:
        """The enrolled users, in uid order of enrollment."""
        with self._lock:
            return list(self._users.values())

    @property
    def user_count(self) -> int:
        """How many users are enrolled."""
        with self._lock:
            return len(self._users)

    @property
    def records(self) -> list[ZkRecord]:
        """The valid attendance records, oldest first (raw bad-date records are not included)."""
        with self._lock:
            return list(self._records)

    @property
    def record_count(self) -> int:
        """Records in the log as the terminal counts them (bad-date records included)."""
        with self._lock:
            return self._log_count

    def _resolve_uid(self, user_id: str) -> int:
        uid = self._uid_by_user_id.get(user_id)
        if uid is not None:
            return uid
        # An unknown user on an 8-byte-record terminal can only be told apart by its number.
        number = _canonical_int(user_id, 0xFFFF)
        return number if number is not None else 0

    def make_record(self, user_id: str, timestamp: datetime, status: int = 1, punch: int = 0) -> ZkRecord:
        """A record for ``user_id`` (uid looked up from the users), not yet added to the log."""
        with self._lock:
            uid = self._resolve_uid(user_id)
        return ZkRecord(user_id, uid, _check_time(timestamp), status, punch)

    def extend_records(self, records: Iterable[ZkRecord]) -> None:
        """Append records in bulk, without notifying live listeners (for preloading a log)."""
        fmt = self.record_format
        batch = list(records)
        packed = b"".join(_pack_record(fmt, r, encode_time(_check_time(r.timestamp))) for r in batch)
        with self._lock:
            self._records.extend(batch)
            self._log += packed
            self._log_count += len(batch)

    def add_punch(
        self, user_id: str, timestamp: datetime | None = None, *, status: int = 1, punch: int = 0
    ) -> ZkRecord:
        """Record a punch (at the device's current time by default) and push it to live listeners.

        Raises :class:`DeviceDisabled` while a client has the terminal disabled.
        """
        record = self.make_record(user_id, timestamp or self.now(), status, punch)
        packed = _pack_record(self.record_format, record, encode_time(record.timestamp))
        with self._lock:
            if not self.enabled:
                raise DeviceDisabled(f"{self.serial} is disabled: nobody can punch")
            if self.overwrite_when_full and self._log_count >= self.rec_cap:
                self._overwrite_oldest(record, packed)
            else:
                self._records.append(record)
                self._log += packed
                self._log_count += 1
            listeners = list(self._listeners)
        log.debug("punch %s at %s (status %d, punch %d)", user_id, record.timestamp, status, punch)
        for listener in listeners:
            try:
                listener(record)
            except Exception:
                log.exception("live listener failed")
        return record

    def _overwrite_oldest(self, record: ZkRecord, packed: bytes) -> None:
        """A full log that overwrites (such a log is assumed to hold no bad-date records).

        ``overwrite_when_full == "shift"``: the oldest record goes and the new one is appended;
        ``"in place"``: the new record takes the oldest one's slot, so the last record stays.
        """
        size = self.record_format
        if self.overwrite_when_full == "in place":
            slot = self._overwrites % self._log_count
            self._log[slot * size : (slot + 1) * size] = packed
            self._records[slot] = record
            self._overwrites += 1
            return
        del self._log[:size]
        self._records.pop(0)
        self._records.append(record)
        self._log += packed

    def add_bad_date_record(
        self,
        user_id: str,
        year: int,
        month: int,
        day: int,
        hour: int = 8,
        minute: int = 0,
        second: int = 0,
        *,
        status: int = 1,
        punch: int = 0,
    ) -> None:
        """Append a raw record whose date may not exist (e.g. 31 February), as corrupt logs hold.

        It counts as a record for the sizes but is not in :attr:`records`; pyzk's download aborts
        with ValueError when it meets one.
        """
        with self._lock:
            # The timestamp field is unused: the packed time is the raw value below.
            record = ZkRecord(user_id, self._resolve_uid(user_id), datetime(2000, 1, 1), status, punch)
            value = encode_time_parts(year, month, day, hour, minute, second)
            self._log += _pack_record(self.record_format, record, value)
            self._log_count += 1

    def clear_attendance(self) -> None:
        """Empty the attendance log (CMD_CLEAR_ATTLOG)."""
        with self._lock:
            self._records.clear()
            self._log = bytearray()
            self._log_count = 0

    def clear_data(self) -> None:
        """Remove users and attendance (CMD_CLEAR_DATA)."""
        with self._lock:
            self.clear_attendance()
            self._users.clear()
            self._packed_users.clear()
            self._uid_by_user_id.clear()

    @property
    def clock_offset_s(self) -> float:
        """Device time minus the local time of the device's zone, in seconds."""
        with self._lock:
            return self._clock_offset_s

    def now(self) -> datetime:
        """The device's current wall-clock time (naive, whole seconds)."""
        with self._lock:
            offset = self._clock_offset_s
        return (self._local_now() + timedelta(seconds=offset)).replace(microsecond=0)

    def _local_now(self) -> datetime:
        return datetime.now(self.zone).replace(tzinfo=None)

    def set_time(self, moment: datetime) -> None:
        """Set the device clock (CMD_SET_TIME): only the offset to the host clock is kept."""
        offset = (_check_time(moment) - self._local_now()).total_seconds()
        with self._lock:
            self._clock_offset_s = offset

    def jump_clock(self, delta_s: float) -> None:
        """Move the device clock by ``delta_s`` seconds (a drifting or tampered clock)."""
        with self._lock:
            self._clock_offset_s += float(delta_s)

    def users_dataset(self) -> bytes:
        """The users dataset of a buffered read: u32 byte length, then the packed users."""
        with self._lock:
            body = b"".join(self._packed_users.values())
        return U32.pack(len(body)) + body

    def attendance_dataset(self) -> bytes:
        """The attendance dataset: u32 byte length, then the packed records (bad ones included)."""
        with self._lock:
            body = bytes(self._log)
        return U32.pack(len(body)) + body

    def free_sizes(self) -> bytes:
        """CMD_GET_FREE_SIZES data: 20 int32 counters and capacities, then 12 bytes of face info.

        Capacities are read at each call, so tests may change ``rec_cap`` (a nearly full log) live.
        """
        fields = [0] * 23
        with self._lock:
            users, records = len(self._users), self._log_count
            cards = sum(1 for user in self._users.values() if user.card)
            fingers_cap, users_cap, rec_cap = self.fingers_cap, self.users_cap, self.rec_cap
        fields[4], fields[6], fields[8], fields[12] = users, 0, records, cards
        fields[14], fields[15], fields[16] = fingers_cap, users_cap, rec_cap
        fields[17], fields[18] = fingers_cap, max(users_cap - users, 0)
        fields[19] = max(rec_cap - records, 0)
        return _SIZES.pack(*fields)

    def event_payload(self, record: ZkRecord) -> bytes:
        """The data of a live attendance event for ``record``, in this terminal's event layout."""
        stamp = time_hex(record.timestamp)
        if self.record_format == 40:
            return _EVENT32.pack(record.user_id.encode(), record.status, record.punch, stamp)
        number = _canonical_int(record.user_id, 0xFFFFFFFF)
        return _EVENT12.pack(record.uid if number is None else number, record.status, record.punch, stamp)

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener(record)`` for every punch added from now on; returns the unsubscriber."""
        with self._lock:
            self._listeners.append(listener)

        def unsubscribe() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return unsubscribe

    @property
    def listener_count(self) -> int:
        """How many live listeners (subscribed client sessions) there are."""
        with self._lock:
            return len(self._listeners)

    @classmethod
    def generate(
        cls,
        users: int = 20,
        records: int = 200,
        *,
        record_format: int = 40,
        user_format: int = 72,
        serial: str = "SIM0000000001",
        start: datetime | None = None,
        seed: int | None = None,
        **device_args: Any,
    ) -> Self:
        """A terminal with ``users`` users (user ids 1001, 1002, ...) and ``records`` punches.

        Punches fall on working days, check-in around 07:30 and check-out around 16:00 local
        time, from ``start`` on (by default ending yesterday). Other keyword arguments go to the
        constructor (serial, record_format, user_format, ...).
        """
        device = cls(record_format=record_format, user_format=user_format, serial=serial, **device_args)
        rng = random.Random(seed)
        enrolled = [_enroll_random_user(device, rng, index) for index in range(users)]
        if records and enrolled:
            device.extend_records(_generate_records(device, rng, enrolled, records, start))
        return device


def terminal_options(device: ZkDevice) -> dict[str, str]:
    """Option values a terminal answers to CMD_OPTIONS_RRQ."""
    return {
        "~SerialNumber": device.serial,
        "~Platform": device.platform,
        "~DeviceName": device.device_name,
        "MAC": device.mac,
        "~ZKFPVersion": "10",
        "ZKFaceVersion": "0",
        "FaceFunOn": "0",
        "~ExtendFmt": "1" if device.record_format == 40 else "0",
        "~UserExtFmt": "1" if device.user_format == 72 else "0",
        "CompatOldFirmware": "0",
        "~PIN2Width": str(device.pin_width),
        "~OS": "1",
        "~MaxUserCount": str(device.users_cap // 100),
        "~MaxAttLogCount": str(device.rec_cap // 10000),
        "IPAddress": "192.168.1.201",
        "NetMask": "255.255.255.0",
        "GATEIPAddress": "192.168.1.1",
    }


_FIRST_NAMES = (
    "Agus", "Budi", "Dewi", "Eko", "Fitri", "Hadi", "Indah", "Joko", "Kartini", "Lestari", "Made",
    "Nur", "Putu", "Rina", "Sari", "Taufik", "Wayan", "Yanti", "Rudi", "Siti", "Bambang", "Ayu",
)  # fmt: skip
_LAST_NAMES = (
    "Santoso", "Wijaya", "Hartono", "Susanto", "Pratama", "Saputra", "Hidayat", "Nugroho", "Kusuma",
    "Setiawan", "Rahmawati", "Siregar", "Nasution", "Purba", "Sembiring", "Wibowo", "Halim",
)  # fmt: skip


def _enroll_random_user(device: ZkDevice, rng: random.Random, index: int) -> ZkUser:
    """Enroll the index-th generated user (user ids from 1001, uids from 1)."""
    return device.add_user(
        str(1001 + index),
        f"{rng.choice(_FIRST_NAMES)} {rng.choice(_LAST_NAMES)}",
        uid=index + 1,
        privilege=14 if index == 0 else 0,
        card=rng.randrange(1_000_000, 16_000_000) if rng.random() < 0.3 else 0,
        group_id="1",
    )


def _working_days(first: date) -> Iterable[date]:
    day = first
    while True:
        if day.weekday() < 5:
            yield day
        day += timedelta(days=1)


def _default_start(users: int, records: int) -> datetime:
    """Midnight of the working day from which ``records`` punches end about yesterday."""
    days_needed = records // max(2 * users * 95 // 100, 1) + 1
    day = date.today() - timedelta(days=1)
    while days_needed > 0:
        day -= timedelta(days=1)
        if day.weekday() < 5:
            days_needed -= 1
    return datetime.combine(day, time())


def _verify_code(rng: random.Random) -> int:
    draw = rng.random()
    return 1 if draw < 0.85 else 15 if draw < 0.95 else 2


def _generate_records(
    device: ZkDevice, rng: random.Random, users: list[ZkUser], count: int, start: datetime | None
) -> list[ZkRecord]:
    """``count`` punches, chronological, on working days from ``start``."""
    first = (start or _default_start(len(users), count)).date()
    result: list[ZkRecord] = []
    for day in _working_days(first):
        midnight = datetime.combine(day, time())
        punches: list[tuple[datetime, ZkUser, int]] = []
        for user in users:
            if rng.random() < 0.05:  # absent today
                continue
            arrive = 7.5 * 3600 + max(min(rng.gauss(0, 900), 5400), -3600)
            leave = 16 * 3600 + max(min(rng.gauss(600, 1200), 7200), -3600)
            punches.append((midnight + timedelta(seconds=int(arrive)), user, 0))
            punches.append((midnight + timedelta(seconds=int(leave)), user, 1))
        punches.sort(key=lambda item: item[0])
        for moment, user, punch in punches:
            result.append(ZkRecord(user.user_id, user.uid, moment, _verify_code(rng), punch))
            if len(result) == count:
                return result
    raise AssertionError("unreachable: working days never run out")
