"""The wire contract between a gateway and the store.

This module imports nothing of the project: drivers, gateway and store all build on it.
Every model rejects unknown fields, so a typo in a producer fails loudly instead of being dropped,
and pydantic's errors carry the location of the bad field (``events.3.device_time``).
"""

from __future__ import annotations

import functools
import hashlib
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal, Self
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
    return value.astimezone(UTC)


ZoneName = Annotated[str, AfterValidator(_check_zone)]
NaiveDateTime = Annotated[datetime, AfterValidator(_check_naive)]
UtcDateTime = Annotated[datetime, AfterValidator(_to_utc)]
Identifier = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Subject(_Model):
    """Who punched, as the device knows them. Exactly one field is set."""

    zk_user_id: str | None = Field(default=None, min_length=1, max_length=24, pattern=r"^[ -~]+$")
    card_uid: str | None = Field(default=None, pattern=r"^(?:[0-9A-F]{2}){4,10}$")

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        if (self.zk_user_id is None) == (self.card_uid is None):
            raise ValueError("subject needs exactly one of zk_user_id or card_uid")
        return self

    def key(self) -> str:
        """A stable text form, used in the event id and in the store's index."""
        return f"zk:{self.zk_user_id}" if self.zk_user_id is not None else f"card:{self.card_uid}"


def compute_event_id(device_key: str, subject: Subject, device_time: datetime, punch: Punch) -> str:
    """The deterministic id of a punch: re-reading the same device log yields the same id.

    ``device_key`` is the device serial, or ``gateway_id/device_id`` for devices without one.
    """
    if device_time.microsecond:
        device_time = device_time.replace(microsecond=0)
    canonical = f"{device_key}\x1f{subject.key()}\x1f{device_time.isoformat()}\x1f{punch.value}"
    return hashlib.sha256(canonical.encode()).hexdigest()


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


class EventFactory:
    """Makes the PunchEvents of one device read, where device, zone, capture time and skew are shared.

    ``occurred_at`` is ``device_time`` read in ``timezone``; with ``correct_skew`` the measured
    skew (device clock minus true time) is subtracted. Every part is typed and checked here, so
    events are built with :func:`trusted_event`, without pydantic's second validation pass: a
    terminal's log holds a hundred thousand records. The store validates the wire form in full.
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
        self._key = device_key(gateway_id, device_id, device_serial)
        self._shift = timedelta(seconds=clock_skew_s) if correct_skew and clock_skew_s else timedelta(0)
        # Per local date: what to subtract from device_time to get UTC (offset plus skew), or None
        # on a day the zone changes offset.
        self._day_shifts: dict[date, timedelta | None] = {}
        self._fixed = {
            "gateway_id": gateway_id,
            "device_id": device_id,
            "device_serial": device_serial,
            "source": source,
            "timezone": timezone,
            "clock_skew_s": clock_skew_s,
            "captured_at": captured_at.astimezone(UTC),
        }

    def _occurred_at(self, device_time: datetime) -> datetime:
        day = device_time.date()
        try:
            shift = self._day_shifts[day]
        except KeyError:
            first = datetime.combine(day, datetime.min.time(), self._zone).utcoffset()
            last = datetime.combine(day, datetime.max.time(), self._zone).utcoffset()
            shift = self._day_shifts[day] = first + self._shift if first is not None and first == last else None
        if shift is None:
            return device_time.replace(tzinfo=self._zone).astimezone(UTC) - self._shift
        return (device_time - shift).replace(tzinfo=UTC)

    def make(self, *, subject: Subject, verify: Verify, punch: Punch, device_time: datetime) -> PunchEvent:
        """One event of this read."""
        if device_time.tzinfo is not None:
            raise ValueError("device_time must be the device's naive wall-clock time")
        if device_time.microsecond:
            device_time = device_time.replace(microsecond=0)
        values = {
            "event_id": compute_event_id(self._key, subject, device_time, punch),
            "verify": verify,
            "subject": subject,
            "punch": punch,
            "device_time": device_time,
            "occurred_at": self._occurred_at(device_time),
            **self._fixed,
        }
        return trusted_event(values)


# Shared by every trusted event: all fields are set, and a frozen model never changes it.
_EVENT_FIELDS = set(PunchEvent.model_fields)
_set_attr = object.__setattr__


def trusted_event(values: dict[str, Any]) -> PunchEvent:
    """A PunchEvent from values already typed and checked (every field, right types), unvalidated.

    For the project's own producers only: events made by an EventFactory, or read back from the
    gateway's buffer. This is what ``PunchEvent.model_construct`` does, without its per-field
    loop; construction is most of the cost of handling a 100,000-record log. Data from outside
    goes through ``PunchEvent.model_validate``.
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
