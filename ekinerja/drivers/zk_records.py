"""Parsing of the raw datasets a ZKTeco terminal sends (users and attendance log).

pyzk moves the bytes; we parse them ourselves because pyzk's loop re-slices the buffer for every
record (quadratic) and aborts the whole download on one impossible date. Here each record is
unpacked in place with ``struct.iter_unpack`` and a bad record is set aside with its raw bytes.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any, NamedTuple

ATTENDANCE_FORMATS = {
    8: struct.Struct("<HBIB"),  # uid, verify, time, punch
    16: struct.Struct("<IIBB2sI"),  # user_id, time, verify, punch, reserved, workcode
    40: struct.Struct("<H24sBIB8s"),  # uid, user_id, verify, time, punch, reserved
}
USER_FORMATS = {
    28: struct.Struct("<HB5s8sIxBhI"),  # uid, privilege, password, name, card, group, tz, user_id
    72: struct.Struct("<HB8s24sIx7sx24s"),  # uid, privilege, password, name, card, group, user_id
}
_U32 = struct.Struct("<I")
_EPOCH_YEAR = 2000


class AttendanceRecord(NamedTuple):
    """One attendance record as the terminal stored it; its time as a date and a second of that day."""

    position: int  # in the log, from 0
    user_id: str
    uid: int
    day: date
    second: int
    verify_code: int
    punch_code: int

    @property
    def device_time(self) -> datetime:
        """The device's wall-clock time of the punch."""
        return datetime.combine(self.day, time.min) + timedelta(seconds=self.second)


@dataclass(frozen=True, slots=True)
class BadRecord:
    """A record that could not be parsed; kept with its raw bytes for the quarantine."""

    index: int
    raw: bytes
    reason: str


@dataclass(frozen=True, slots=True)
class DeviceUser:
    """A user enrolled on the terminal."""

    uid: int
    user_id: str
    name: str
    privilege: int
    card: int


def decode_time(value: int) -> datetime:
    """Decode ZK's packed time; raises ValueError for an impossible date (e.g. 31 February)."""
    value, second = divmod(value, 60)
    value, minute = divmod(value, 60)
    value, hour = divmod(value, 24)
    value, day = divmod(value, 31)
    year, month = divmod(value, 12)
    return datetime(year + _EPOCH_YEAR, month + 1, day + 1, hour, minute, second)


class _DayDecoder:
    """The date of ZK's packed day number, worked out once per day: a log holds many punches a day."""

    def __init__(self) -> None:
        self.known: dict[int, date | str] = {}

    def __call__(self, day_number: int) -> date | str:
        """The date, or why it is impossible."""
        day = self.known.get(day_number)
        if day is None:
            try:
                day = decode_time(day_number * 86400).date()
            except ValueError as exc:
                day = f"impossible date: {exc}"
            self.known[day_number] = day
        return day


def _text(raw: bytes, encoding: str) -> str:
    return raw.split(b"\x00", 1)[0].decode(encoding, errors="replace").strip()


def _raw(body: bytes, index: int, size: int) -> bytes:
    return bytes(body[index * size : (index + 1) * size])


def _plausible_user_id(user_id: str) -> bool:
    # The contract takes 1-24 printable ASCII characters; anything else is a corrupt record.
    return 0 < len(user_id) <= 24 and user_id.isascii() and user_id.isprintable()


def split_dataset(data: bytes) -> bytes:
    """Strip the u32 length that starts every ZK dataset; the body must be as long as it says."""
    if len(data) < 4:
        return b""
    (size,) = _U32.unpack_from(data)
    return bytes(data[4 : 4 + size])


def record_size(body: bytes, count: int) -> int | None:
    """The size of one record, or None when the body does not divide into ``count`` records."""
    if count <= 0 or len(body) % count:
        return None
    return len(body) // count


def parse_users(body: bytes, count: int, encoding: str = "UTF-8") -> list[DeviceUser]:
    """Parse the user dataset (28- or 72-byte records)."""
    if count <= 0 or len(body) % count or len(body) // count not in USER_FORMATS:
        return []
    size = len(body) // count
    users = []
    for fields in USER_FORMATS[size].iter_unpack(body):
        if size == 28:
            uid, privilege, _pw, name, card, _group, _tz, user_id = fields
            users.append(DeviceUser(uid, str(user_id), _text(name, encoding), privilege, card))
        else:
            uid, privilege, _pw, name, card, _group, user_id = fields
            users.append(DeviceUser(uid, _text(user_id, encoding), _text(name, encoding), privilege, card))
    return users


def parse_attendance(
    body: bytes,
    count: int,
    *,
    uid_to_user: dict[int, str] | None = None,
    skip: int = 0,
    encoding: str = "UTF-8",
) -> tuple[list[AttendanceRecord], list[BadRecord]]:
    """Parse the attendance log in one linear pass, skipping the first ``skip`` records.

    8-byte records carry only the internal uid, so ``uid_to_user`` maps it to the user id people
    know; an unmapped uid is kept as its number. A record with an impossible time or an unreadable
    user id becomes a BadRecord with its raw bytes, and so does every record of a size this parser
    does not know. The body must divide into ``count`` records (see :func:`record_size`).
    """
    if count == 0 and not body:  # an empty (or just cleared) log
        return [], []
    size = record_size(body, count)
    if size is None:
        raise ValueError(f"a log of {len(body)} bytes does not divide into {count} records")
    if size not in ATTENDANCE_FORMATS:
        reason = f"unknown record size: {size} bytes (known: 8, 16, 40)"
        return [], [BadRecord(i, _raw(body, i, size), reason) for i in range(skip, count)]
    reader = _RecordReader(size, uid_to_user or {}, encoding)
    records: list[AttendanceRecord] = []
    bad: list[BadRecord] = []
    view = memoryview(body)[skip * size :]
    for index, fields in enumerate(ATTENDANCE_FORMATS[size].iter_unpack(view), start=skip):
        record = reader.read(index, fields)
        if isinstance(record, str):
            bad.append(BadRecord(index, _raw(body, index, size), record))
        else:
            records.append(record)
    return records, bad


class _RecordReader:
    """Turns the unpacked fields of one record into an AttendanceRecord, or the reason it is bad.

    A log repeats a few hundred users over a few hundred days: each user id and each day is
    decoded and checked once.
    """

    def __init__(self, size: int, uid_to_user: dict[int, str], encoding: str) -> None:
        self.size = size
        self.uid_to_user = uid_to_user
        self.encoding = encoding
        self.decode_day = _DayDecoder()
        self.user_ids: dict[Any, str] = {}  # by uid (8 and 16 bytes) or raw user id (40 bytes)
        self.unreadable: dict[Any, str] = {}

    def read(self, index: int, fields: tuple[Any, ...]) -> AttendanceRecord | str:
        if self.size == 40:
            uid, user_key, verify, time_value, punch, _res = fields
        elif self.size == 16:
            uid, time_value, verify, punch, _res, _work = fields
            user_key = uid
        else:
            uid, verify, time_value, punch = fields
            user_key = uid
        day_number, second = divmod(time_value, 86400)
        day = self.decode_day.known.get(day_number) or self.decode_day(day_number)
        if isinstance(day, str):
            return day
        user_id = self.user_ids.get(user_key) or self._user_id(user_key)
        if user_id is None:
            return self.unreadable[user_key]
        return AttendanceRecord(index, user_id, uid, day, second, verify, punch)

    def _user_id(self, user_key: Any) -> str | None:
        if self.size == 40:
            user_id = _text(user_key, self.encoding)
        elif self.size == 8:
            user_id = self.uid_to_user.get(user_key) or str(user_key)
        else:
            user_id = str(user_key)
        if not _plausible_user_id(user_id):
            self.unreadable[user_key] = f"unreadable user id {user_id!r}"
            return None
        self.user_ids[user_key] = user_id
        return user_id
