"""Who punched, and when in the office's day: stored punches resolved to NIPs in local time.

A punch's subject (a ZK user id or a card UID) names an employee through the registry: a mapping
for that very device (gateway and device id) wins over the employee's own ``zk_user_id`` or
``card_uid``. Punches that resolve to no one stay stored and are listed as unmatched; they are
scored as soon as a mapping names them.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, Connection, func, or_, select, tuple_

from ekinerja.store.db import employees, punches, subject_mappings
from ekinerja.store.scoring import Punch
from ekinerja.sync.contract import PunchEvent

SubjectKey = tuple[str, str]  # (subject_kind, subject_value)


@dataclass(frozen=True)
class Resolver:
    """Subjects to NIPs: per device first, then the registry's own ids."""

    by_subject: dict[SubjectKey, str]
    by_device: dict[tuple[str, str, str, str], str]

    def nip(self, gateway_id: str, device_id: str, kind: str, value: str) -> str | None:
        """The NIP a punch of this device and subject belongs to, or None."""
        if self.by_device:
            found = self.by_device.get((gateway_id, device_id, kind, value))
            if found is not None:
                return found
        return self.by_subject.get((kind, value))

    def subjects_of(self, nips: Collection[str]) -> list[SubjectKey]:
        """Every subject that may resolve to one of ``nips`` (to read only their punches)."""
        keys = {key for key, nip in self.by_subject.items() if nip in nips}
        keys |= {(kind, value) for (_g, _d, kind, value), nip in self.by_device.items() if nip in nips}
        return sorted(keys)


def load_resolver(conn: Connection) -> Resolver:
    """The registry's current mappings."""
    by_subject: dict[SubjectKey, str] = {}
    for nip, zk_user_id, card_uid in conn.execute(
        select(employees.c.nip, employees.c.zk_user_id, employees.c.card_uid)
    ):
        if zk_user_id:
            by_subject[("zk_user_id", zk_user_id)] = nip
        if card_uid:
            by_subject[("card_uid", card_uid)] = nip
    by_device = {
        (r.gateway_id, r.device_id, r.subject_kind, r.subject_value): r.nip
        for r in conn.execute(select(subject_mappings))
    }
    return Resolver(by_subject, by_device)


class LocalClock:
    """UTC instants to the office's wall clock; the offset is looked up once per UTC hour."""

    def __init__(self, zone: ZoneInfo) -> None:
        self.zone = zone
        self._offsets: dict[tuple[date, int], timedelta] = {}

    def local(self, instant: datetime) -> datetime:
        """``instant`` (naive UTC) as naive local time."""
        key = (instant.date(), instant.hour)
        offset = self._offsets.get(key)
        if offset is None:
            hour = datetime.combine(key[0], time(key[1]), UTC)
            offset = self._offsets[key] = hour.astimezone(self.zone).utcoffset() or timedelta(0)
        return instant + offset

    def utc_bounds(self, first: date, last: date) -> tuple[datetime, datetime]:
        """The naive UTC instants where local ``first`` starts and local ``last`` ends."""
        start = datetime.combine(first, time.min, self.zone).astimezone(UTC).replace(tzinfo=None)
        end = datetime.combine(last + timedelta(days=1), time.min, self.zone).astimezone(UTC).replace(tzinfo=None)
        return start, end


def load_punches(
    conn: Connection, zone: ZoneInfo, first: date, last: date, nips: Collection[str] | None
) -> dict[str, dict[date, list[Punch]]]:
    """Resolved punches of local days ``first..last`` by NIP and day (everyone's, or ``nips``')."""
    resolver = load_resolver(conn)
    clock = LocalClock(zone)
    start, end = clock.utc_bounds(first, last)
    columns = (
        punches.c.gateway_id, punches.c.device_id, punches.c.subject_kind, punches.c.subject_value,
        punches.c.occurred_at, punches.c.punch,
    )  # fmt: skip
    query = select(*columns).where(punches.c.occurred_at >= start, punches.c.occurred_at < end)
    if nips is not None:
        subjects = resolver.subjects_of(nips)
        if not subjects:
            return {}
        query = query.where(or_(*(_subject_in(subjects[i : i + 200]) for i in range(0, len(subjects), 200))))
    out: dict[str, dict[date, list[Punch]]] = {}
    nip_of = resolver.nip
    for gateway_id, device_id, kind, value, occurred_at, state in conn.execute(query):
        nip = nip_of(gateway_id, device_id, kind, value)
        if nip is None or (nips is not None and nip not in nips):
            continue
        at = clock.local(occurred_at)
        out.setdefault(nip, {}).setdefault(at.date(), []).append(Punch(at, state))
    return out


def _subject_in(subjects: list[SubjectKey]) -> ColumnElement[bool]:
    return tuple_(punches.c.subject_kind, punches.c.subject_value).in_(subjects)


def resolve_events(conn: Connection, zone: ZoneInfo, events: Sequence[PunchEvent]) -> Iterator[tuple[str, datetime]]:
    """(NIP, local time) of each event that resolves to an employee."""
    resolver = load_resolver(conn)
    clock = LocalClock(zone)
    for e in events:
        subject = e.subject
        kind, value = ("zk_user_id", subject.zk_user_id) if subject.zk_user_id else ("card_uid", subject.card_uid)
        nip = resolver.nip(e.gateway_id, e.device_id, kind, value or "")
        if nip is not None:
            yield nip, clock.local(e.occurred_at.astimezone(UTC).replace(tzinfo=None))


@dataclass(frozen=True)
class Unmatched:
    """A subject seen on a device that no mapping names yet."""

    gateway_id: str
    device_id: str
    subject_kind: str
    subject_value: str
    punches: int
    first_seen: datetime
    last_seen: datetime


def unmatched(conn: Connection, limit: int = 1000) -> list[Unmatched]:
    """Subjects whose punches resolve to no one, most punches first."""
    resolver = load_resolver(conn)
    query = select(
        punches.c.gateway_id, punches.c.device_id, punches.c.subject_kind, punches.c.subject_value,
        func.count(), func.min(punches.c.occurred_at), func.max(punches.c.occurred_at),
    ).group_by(punches.c.gateway_id, punches.c.device_id, punches.c.subject_kind, punches.c.subject_value)  # fmt: skip
    found = [Unmatched(*row) for row in conn.execute(query) if resolver.nip(*row[:4]) is None]
    return sorted(found, key=lambda u: (-u.punches, u.gateway_id, u.device_id, u.subject_value))[:limit]
