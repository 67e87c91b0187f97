"""The wire contract between a gateway and the store.

This module imports nothing of the project: drivers, gateway and store all build on it.
Every model rejects unknown fields, so a typo in a producer fails loudly instead of being dropped,
and pydantic's errors carry the location of the bad field (``events.3.device_time``).
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal, NamedTuple, Self, overload
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

CONTRACT_VERSION = 1
MAX_BATCH_EVENTS = 5000
"""The largest batch the store accepts; gateways send at most this many events per POST."""


class Source(StrEnum):
    """Which kind of driver read the punch."""

    ZK = "zk"
    PCSC = "pcsc"
    ADMS = "adms"


class Verify(StrEnum):
    """How the person proved who they are at the device."""

    FINGERPRINT = "fingerprint"
    FACE = "face"
    CARD = "card"
    PASSWORD = "password"
    UNKNOWN = "unknown"


class Punch(StrEnum):
    """The punch state; ZK terminals number these 0..5 in this order."""

    IN = "in"
    OUT = "out"
    BREAK_OUT = "break_out"
    BREAK_IN = "break_in"
    OT_IN = "ot_in"
    OT_OUT = "ot_out"
    UNKNOWN = "unknown"

    @classmethod
    def from_zk(cls, code: int) -> Punch:
        """Map a ZK punch state (0..5) to a Punch; anything else is UNKNOWN."""
        return _ZK_PUNCHES[code] if 0 <= code < len(_ZK_PUNCHES) else cls.UNKNOWN


# ZK punch states in the terminal's numbering; built once, as drivers map every record.
_ZK_PUNCHES = (Punch.IN, Punch.OUT, Punch.BREAK_OUT, Punch.BREAK_IN, Punch.OT_IN, Punch.OT_OUT)


@functools.lru_cache(maxsize=64)
def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown IANA time zone {name!r} (use e.g. Asia/Jakarta)") from exc


def _check_zone(name: str) -> str:
    _zone(name)
    return name


def _check_naive(value: datetime) -> datetime:
    if value.tzinfo is not None:
        raise ValueError("device_time is the device's wall clock and must carry no UTC offset")
    return value


def _to_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("must be an instant with a UTC offset, e.g. 2026-01-05T00:31:00Z")
    try:
        return value.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00+01:00 is a year before the first one Python knows
        raise ValueError("is out of range once converted to UTC") from None


ZoneName = Annotated[str, AfterValidator(_check_zone)]
NaiveDateTime = Annotated[datetime, AfterValidator(_check_naive)]
UtcDateTime = Annotated[datetime, AfterValidator(_to_utc)]
Identifier = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")]
CardUid = Annotated[str, Field(pattern=r"^(?:[0-9A-F]{2}){4,10}$")]
"""A card's UID as upper-case hex: 4 to 10 bytes (ISO 14443 UIDs are 4, 7 or 10; FeliCa IDm 8)."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Subject(_Model):
    """Who punched, as the device knows them. Exactly one field is set."""

    zk_user_id: str | None = Field(default=None, min_length=1, max_length=24, pattern=r"^[ -~]+$")
    card_uid: CardUid | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        if (self.zk_user_id is None) == (self.card_uid is None):
            raise ValueError("subject needs exactly one of zk_user_id or card_uid")
        return self

    def key(self) -> str:
        """A stable text form, used in the event id and in the store's index."""
        return f"zk:{self.zk_user_id}" if self.zk_user_id is not None else f"card:{self.card_uid}"


def event_id_of(device_key: str, subject_key: str, device_time: str, punch: str) -> str:
    """The event id from its parts in text form: ``device_time`` as ISO seconds, no offset."""
    return hashlib.sha256(f"{device_key}\x1f{subject_key}\x1f{device_time}\x1f{punch}".encode()).hexdigest()


def compute_event_id(device_key: str, subject: Subject, device_time: datetime, punch: Punch) -> str:
    """The deterministic id of a punch: re-reading the same device log yields the same id.

    ``device_key`` is the device serial, or ``gateway_id/device_id`` for devices without one.
    """
    if device_time.microsecond:
        device_time = device_time.replace(microsecond=0)
    return event_id_of(device_key, subject.key(), device_time.isoformat(), punch)  # a StrEnum formats as its value


def device_key(gateway_id: str, device_id: str, device_serial: str | None) -> str:
    """The device part of the event id: its serial when it has one."""
    return device_serial if device_serial else f"{gateway_id}/{device_id}"


class PunchEvent(_Model):
    """One punch, normalized. Build new ones with :meth:`create`."""

    event_id: str = Field(pattern=r"^[0-9a-f]{64}$")
    gateway_id: Identifier
    device_id: Identifier
    device_serial: str | None = Field(default=None, min_length=1, max_length=64)
    source: Source
    verify: Verify
    subject: Subject
    punch: Punch
    device_time: NaiveDateTime
    timezone: ZoneName = "Asia/Jakarta"
    occurred_at: UtcDateTime
    clock_skew_s: float | None = None
    captured_at: UtcDateTime

    @model_validator(mode="after")
    def _id_matches(self) -> Self:
        expected = compute_event_id(
            device_key(self.gateway_id, self.device_id, self.device_serial),
            self.subject,
            self.device_time,
            self.punch,
        )
        if self.event_id != expected:
            raise ValueError("event_id does not match the hash of device, subject, device_time and punch")
        return self

    @classmethod
    def create(
        cls,
        *,
        gateway_id: str,
        device_id: str,
        device_serial: str | None,
        source: Source,
        verify: Verify,
        subject: Subject,
        punch: Punch,
        device_time: datetime,
        timezone: str,
        captured_at: datetime,
        clock_skew_s: float | None = None,
        correct_skew: bool = False,
    ) -> PunchEvent:
        """Build one event, deriving its id and UTC instant. See :class:`EventFactory`."""
        factory = EventFactory(
            gateway_id=gateway_id,
            device_id=device_id,
            device_serial=device_serial,
            source=source,
            timezone=timezone,
            captured_at=captured_at,
            clock_skew_s=clock_skew_s,
            correct_skew=correct_skew,
        )
        return factory.make(subject=subject, verify=verify, punch=punch, device_time=device_time)


class EventOrigin(NamedTuple):
    """What the punches of one device read share: where they come from and when they were read."""

    gateway_id: str
    device_id: str
    device_serial: str | None
    source: Source
    timezone: str
    clock_skew_s: float | None
    captured_at: datetime

    @property
    def device_key(self) -> str:
        """The device part of the event id."""
        return device_key(self.gateway_id, self.device_id, self.device_serial)


PunchRow = tuple[str, str, str, str, str]
"""One punch of a read in compact text form: (subject key, verify, punch, device_time, occurred_at).

``device_time`` is ISO to the second without offset; ``occurred_at`` is ISO with ``+00:00``.
"""

_VERIFIES = {v.value: v for v in Verify}
_PUNCHES = {p.value: p for p in Punch}
_SUBJECT_FIELDS = {"zk": "zk_user_id", "card": "card_uid"}


class DeviceRead(Sequence[PunchEvent]):
    """The PunchEvents of one device read, held as compact rows and built when asked for.

    A terminal's first read can hold a hundred thousand punches; the rows are what the buffer
    stores, so the full models are only made for the events that are sent or inspected.
    """

    __slots__ = ("_fixed", "_key", "_subjects", "origin", "rows")

    def __init__(self, origin: EventOrigin, rows: list[PunchRow] | None = None) -> None:
        self.origin = origin
        self.rows: list[PunchRow] = [] if rows is None else rows
        self._key = origin.device_key
        self._fixed = origin._asdict()
        self._fixed["captured_at"] = origin.captured_at.astimezone(UTC)
        self._subjects: dict[str, Subject] = {}

    @staticmethod
    def group(events: Iterable[PunchEvent]) -> list[DeviceRead]:
        """Loose events as reads, one per origin, in the order the origins first appear."""
        reads: dict[EventOrigin, DeviceRead] = {}
        for e in events:
            origin = EventOrigin(
                e.gateway_id, e.device_id, e.device_serial, e.source, e.timezone, e.clock_skew_s, e.captured_at
            )
            read = reads.get(origin)
            if read is None:
                read = reads[origin] = DeviceRead(origin)
            read.rows.append(
                (
                    e.subject.key(),
                    e.verify.value,
                    e.punch.value,
                    e.device_time.replace(microsecond=0).isoformat(),
                    e.occurred_at.isoformat(),
                )
            )
        return list(reads.values())

    def event(self, row: PunchRow) -> PunchEvent:
        """The full event of one row (its id is derived, not stored)."""
        subject_key, verify, punch, device_time, occurred_at = row
        subject = self._subjects.get(subject_key)
        if subject is None:
            kind, _, value = subject_key.partition(":")
            fields: dict[str, Any] = {_SUBJECT_FIELDS[kind]: value}
            subject = self._subjects[subject_key] = Subject.model_construct(**fields)
        return trusted_event(
            {
                "event_id": event_id_of(self._key, subject_key, device_time, punch),
                "verify": _VERIFIES[verify],
                "subject": subject,
                "punch": _PUNCHES[punch],
                "device_time": datetime.fromisoformat(device_time),
                "occurred_at": datetime.fromisoformat(occurred_at),
                **self._fixed,
            }
        )

    def __len__(self) -> int:
        return len(self.rows)

    @overload
    def __getitem__(self, index: int) -> PunchEvent: ...

    @overload
    def __getitem__(self, index: slice) -> list[PunchEvent]: ...

    def __getitem__(self, index: int | slice) -> PunchEvent | list[PunchEvent]:
        if isinstance(index, slice):
            return [self.event(row) for row in self.rows[index]]
        return self.event(self.rows[index])

    def __iter__(self) -> Iterator[PunchEvent]:
        return map(self.event, self.rows)


# "HH:MM:SS" per second of the day, filled as seconds are met: a log repeats the same minutes.
_HMS: dict[int, str] = {}


def _hms(second: int) -> str:
    text = _HMS.get(second)
    if text is None:
        hour, rest = divmod(second, 3600)
        text = _HMS[second] = f"{hour:02d}:{rest // 60:02d}:{rest % 60:02d}"
    return text


class _DayClock(NamedTuple):
    """One local date of a zone: its ISO prefix, and what to subtract to reach UTC (None on an offset change)."""

    prefix: str
    shift_s: int | None
    utc_prefixes: tuple[str, str, str]  # the UTC dates before, on and after this one


class EventFactory:
    """Makes the events of one device read, where device, zone, capture time and skew are shared.

    ``occurred_at`` is ``device_time`` read in ``timezone``; with ``correct_skew`` the measured
    skew (device clock minus true time), rounded to the whole seconds a device clock counts, is
    subtracted. Times are worked out once per local date and written as text, so a read of a
    hundred thousand punches costs a tuple each (:meth:`wall_times`); :meth:`make` builds one full event.
    """

    def __init__(
        self,
        *,
        gateway_id: str,
        device_id: str,
        device_serial: str | None,
        source: Source,
        timezone: str,
        captured_at: datetime,
        clock_skew_s: float | None = None,
        correct_skew: bool = False,
    ) -> None:
        if captured_at.tzinfo is None:
            raise ValueError("captured_at must carry a UTC offset")
        self._zone = _zone(timezone)
        self._correction_s = round(clock_skew_s) if correct_skew and clock_skew_s else 0
        self._days: dict[date, _DayClock] = {}
        self.origin = EventOrigin(
            gateway_id, device_id, device_serial, source, timezone, clock_skew_s, captured_at.astimezone(UTC)
        )
        self._single = DeviceRead(self.origin)

    def new_read(self) -> DeviceRead:
        """An empty read of this origin, to fill with :meth:`add`."""
        return DeviceRead(self.origin)

    def _day(self, day: date) -> _DayClock:
        first = datetime.combine(day, time.min, self._zone).utcoffset()
        last = datetime.combine(day, time.max, self._zone).utcoffset()
        shift = None if first is None or first != last else int(first.total_seconds()) + self._correction_s
        utc = tuple(f"{(day + timedelta(days=d)).isoformat()}T" for d in (-1, 0, 1))
        clock = self._days[day] = _DayClock(f"{day.isoformat()}T", shift, (utc[0], utc[1], utc[2]))
        return clock

    def wall_times(self, day: date, second: int) -> tuple[str, str]:
        """``device_time`` and ``occurred_at`` as text, for ``second`` (0-86399) of local ``day``."""
        clock = self._days.get(day) or self._day(day)
        local = clock.prefix + (_HMS.get(second) or _hms(second))
        if clock.shift_s is None:  # the zone changes offset that day: let zoneinfo decide
            wall = datetime.combine(day, time.min) + timedelta(seconds=second)
            instant = wall.replace(tzinfo=self._zone).astimezone(UTC) - timedelta(seconds=self._correction_s)
            return local, instant.isoformat()
        utc_day, utc_second = divmod(second - clock.shift_s, 86400)
        if -1 <= utc_day <= 1:
            prefix = clock.utc_prefixes[utc_day + 1]
        else:  # a clock off by days
            prefix = f"{(day + timedelta(days=utc_day)).isoformat()}T"
        return local, f"{prefix}{_HMS.get(utc_second) or _hms(utc_second)}+00:00"

    def row(self, *, subject: Subject, verify: Verify, punch: Punch, device_time: datetime) -> PunchRow:
        """One punch of this read in compact form."""
        if device_time.tzinfo is not None:
            raise ValueError("device_time must be the device's naive wall-clock time")
        second = device_time.hour * 3600 + device_time.minute * 60 + device_time.second
        local, occurred = self.wall_times(device_time.date(), second)
        return (subject.key(), verify.value, punch.value, local, occurred)

    def make(self, *, subject: Subject, verify: Verify, punch: Punch, device_time: datetime) -> PunchEvent:
        """One full event of this read."""
        return self._single.event(self.row(subject=subject, verify=verify, punch=punch, device_time=device_time))


# Shared by every trusted event: all fields are set, and a frozen model never changes it.
_EVENT_FIELDS = set(PunchEvent.model_fields)
_set_attr = object.__setattr__


def trusted_event(values: dict[str, Any]) -> PunchEvent:
    """A PunchEvent from values already typed and checked (every field, right types), unvalidated.

    For the project's own producers only: events made by an EventFactory or a DeviceRead, whose
    parts were checked when they were made. This is what ``PunchEvent.model_construct`` does,
    without its per-field loop; construction is most of the cost of handling a 100,000-record log.
    Data from outside goes through ``PunchEvent.model_validate``.
    """
    event = PunchEvent.__new__(PunchEvent)
    _set_attr(event, "__dict__", values)
    _set_attr(event, "__pydantic_fields_set__", _EVENT_FIELDS)
    _set_attr(event, "__pydantic_extra__", None)
    _set_attr(event, "__pydantic_private__", None)
    return event


class Batch(_Model):
    """What a gateway POSTs to ``/v1/punches``: events from that gateway only."""

    contract_version: Literal[1] = 1
    gateway_id: Identifier
    sent_at: UtcDateTime
    events: list[PunchEvent] = Field(min_length=1, max_length=MAX_BATCH_EVENTS)


class Outcome(StrEnum):
    """What the store did with one event of a batch."""

    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    REJECTED = "rejected"


class EventResult(_Model):
    """The store's answer for one event."""

    event_id: str
    outcome: Outcome
    seq: int | None = Field(default=None, description="feed position of the stored copy")
    reason: str | None = Field(default=None, description="why it was rejected")


class BatchResult(_Model):
    """The store's answer to a batch: one result per event, in the batch's order."""

    accepted: int
    duplicate: int
    rejected: int
    results: list[EventResult]


class KnownCards(_Model):
    """What ``GET /v1/cards`` answers a gateway: the card UIDs the registry resolves to someone for it.

    The gateway keeps the list so a reader can tell "unknown card" at the door, even while the
    store is unreachable; the punch of an unknown card is stored and sent all the same.
    """

    gateway_id: Identifier
    card_uids: list[CardUid]


class FeedItem(_Model):
    """One stored punch in arrival order."""

    seq: int
    received_at: UtcDateTime
    event: PunchEvent


class FeedPage(_Model):
    """A page of the feed. Resume with ``after=next_after``."""

    items: list[FeedItem]
    next_after: int
    has_more: bool


# --- the gateway's status report (PUT /v1/gateway-report) -----------------------------------------

MAX_REPORT_DEVICES = 500
MAX_REPORT_ALERTS = 500
MAX_REPORT_READERS = 20
MAX_REPORT_TEXT = 500
_PRINTABLE = r"^[^\x00-\x1f\x7f-\x9f]*$"  # no control characters: a report is shown on pages and in logs

ReportText = Annotated[str, Field(max_length=MAX_REPORT_TEXT, pattern=_PRINTABLE)]
"""Free text of a report (an error, an alert's message): one line, at most 500 characters."""
Count = Annotated[int, Field(ge=0, le=2**53)]
"""A count; at most 2**53, what a JavaScript page still reads exactly."""
Finite = Annotated[float, Field(allow_inf_nan=False)]


def _check_wall_clock(value: datetime) -> datetime:
    if value.tzinfo is not None:
        raise ValueError("must be the device's wall-clock time, without a UTC offset")
    return value


WallClock = Annotated[datetime, AfterValidator(_check_wall_clock)]


class DeviceReport(_Model):
    """One terminal (``zk``) or card-reader entry (``pcsc``) as the gateway last saw it."""

    id: Identifier
    kind: Literal["zk", "pcsc"]
    online: bool
    since: UtcDateTime | None = Field(default=None, description="when it went online or offline")
    serial: str | None = Field(default=None, max_length=64, pattern=_PRINTABLE)
    firmware: str | None = Field(default=None, max_length=100, pattern=_PRINTABLE)
    users: Count | None = None
    records: Count | None = None
    capacity: Count | None = None
    percent_used: Finite | None = Field(default=None, ge=0, le=1_000_000, description="of the log's capacity")
    clock_skew_s: Finite | None = Field(default=None, ge=-1e10, le=1e10, description="device clock minus true time")
    last_punch: WallClock | None = Field(default=None, description="the device's wall-clock time of its newest punch")
    last_error: ReportText | None = None
    punches: Count = Field(default=0, description="new punches stored since the gateway started")
    live: bool = False
    readers: list[Annotated[str, Field(min_length=1, max_length=200, pattern=_PRINTABLE)]] = Field(
        default_factory=list, max_length=MAX_REPORT_READERS, description="pcsc: the readers watched"
    )


class SyncReport(_Model):
    """The gateway's buffer and its pushes."""

    pending: Count
    oldest_pending_at: UtcDateTime | None = None
    rejected: Count = 0
    quarantined: Count = 0
    last_success: UtcDateTime | None = Field(default=None, description="the last push that sent punches")
    last_error: ReportText | None = None


AlertValue = Finite | ReportText


class AlertReport(_Model):
    """One condition the gateway's IT team must act on (the rules are the gateway's ``[alerts]``)."""

    code: str = Field(min_length=1, max_length=64, pattern=r"^[a-z_]+$")
    device_id: Identifier | None = None
    message: ReportText
    values: dict[Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z_]+$")], AlertValue] = Field(
        default_factory=dict, max_length=20
    )


class GatewayReport(_Model):
    """What a gateway PUTs to ``/v1/gateway-report``: its status page's picture, for the fleet view."""

    contract_version: Literal[1] = 1
    gateway_id: Identifier
    taken_at: UtcDateTime
    devices: list[DeviceReport] = Field(default_factory=list, max_length=MAX_REPORT_DEVICES)
    sync: SyncReport
    alerts: list[AlertReport] = Field(default_factory=list, max_length=MAX_REPORT_ALERTS)

    @model_validator(mode="after")
    def _unique_devices(self) -> Self:
        ids = [d.id for d in self.devices]
        if len(set(ids)) != len(ids):
            raise ValueError("devices: every device id must appear once")
        return self
