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
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, func, select

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

    def all_subjects(self) -> list[SubjectKey]:
        """Every subject that resolves to someone."""
        keys = set(self.by_subject) | {(kind, value) for (_g, _d, kind, value) in self.by_device}
        return sorted(keys)

    def subjects_of(self, nips: Collection[str]) -> list[SubjectKey]:
        """Every subject that may resolve to one of ``nips`` (to read only their punches)."""
        keys = {key for key, nip in self.by_subject.items() if nip in nips}
        keys |= {(kind, value) for (_g, _d, kind, value), nip in self.by_device.items() if nip in nips}
        return sorted(keys)


_FEW = 500


def load_resolver(conn: Connection, nips: Collection[str] | None = None) -> Resolver:
    """The registry's mappings: all of them, or what decides whose punches ``nips``' subjects are."""
    ids = select(employees.c.nip, employees.c.zk_user_id, employees.c.card_uid)
    mappings = select(subject_mappings)
    few = sorted(nips) if nips is not None and len(nips) <= _FEW else None
    if few is not None:
        ids = ids.where(employees.c.nip.in_(few))
    by_subject: dict[SubjectKey, str] = {}
    for nip, zk_user_id, card_uid in conn.execute(ids):
        if zk_user_id:
            by_subject[("zk_user_id", zk_user_id)] = nip
        if card_uid:
            by_subject[("card_uid", card_uid)] = nip
    if few is not None:
        # Their own mappings, and any device's mapping of their ids to someone else.
        values = sorted({value for _kind, value in by_subject})
        mappings = mappings.where(subject_mappings.c.nip.in_(few) | subject_mappings.c.subject_value.in_(values))
    by_device = {(r.gateway_id, r.device_id, r.subject_kind, r.subject_value): r.nip for r in conn.execute(mappings)}
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

    def fixed_offset(self, first: date, last: date) -> timedelta | None:
        """The zone's offset when it is the same all through ``first..last`` (WIB, WITA, WIT: always)."""
        offsets = {
            datetime.combine(first + timedelta(days=n), time.min, self.zone).utcoffset()
            for n in range((last - first).days + 2)
        }
        return offsets.pop() if len(offsets) == 1 else None


ByDay = dict[date, list[Punch]]
_SUBJECTS_PER_QUERY = 500
# While a month is read: per NIP and day, per punch state (or "" for all), the first and last punch.
_Pair = list[Any]  # [first moment, its state, last moment, its state]
_Kept = dict[str, dict[date, dict[str, _Pair]]]
_new_punch = tuple.__new__  # Punch(...) without the named tuple's Python-level __new__


def load_punches(
    conn: Connection,
    zone: ZoneInfo,
    first: date,
    last: date,
    nips: Collection[str] | None,
    *,
    by_state: bool = True,
) -> dict[str, ByDay]:
    """The punches that decide each day of ``first..last``, by NIP and local day (everyone's, or ``nips``').

    Only the first and last punch of a day (of each state, ``by_state``) decide it
    (:func:`~ekinerja.store.scoring.essential_punches`), so only those are kept. Punches are read
    subject by subject through the covering subject index, as the driver's raw rows.
    """
    resolver = load_resolver(conn, nips)
    clock = LocalClock(zone)
    start, end = clock.utc_bounds(first, last)
    subjects = resolver.subjects_of(nips) if nips is not None else resolver.all_subjects()
    columns = [punches.c.subject_kind, punches.c.subject_value, punches.c.occurred_at, punches.c.punch]
    if resolver.by_device:
        columns += [punches.c.gateway_id, punches.c.device_id]
    kept: _Kept = {}
    collect = _Collector(resolver, clock, clock.fixed_offset(first, last), nips, kept, by_state)
    for kind in sorted({kind for kind, _value in subjects}):
        values = [value for k, value in subjects if k == kind]
        for at in range(0, len(values), _SUBJECTS_PER_QUERY):
            # One kind and a plain IN list: every backend then reads the subject index (a row-value
            # IN made SQLite scan the month by time). Rows come subject by subject as the index holds
            # them; no ORDER BY, which cost PostgreSQL a sort per query: the collector takes any order.
            query = select(*columns).where(
                punches.c.subject_kind == kind,
                punches.c.subject_value.in_(values[at : at + _SUBJECTS_PER_QUERY]),
                punches.c.occurred_at >= start,
                punches.c.occurred_at < end,
            )
            result = conn.execute(query)
            try:
                # The driver's own rows: SQLAlchemy's per-row processing would cost more than the rest.
                collect(result.cursor.fetchall())
            finally:
                result.close()
    return {nip: {day: _punches(pairs) for day, pairs in days.items()} for nip, days in kept.items()}


def _punches(pairs: dict[str, _Pair]) -> list[Punch]:
    out = []
    for low, low_state, high, high_state in pairs.values():
        out.append(_new_punch(Punch, (low, low_state, False)))
        if high is not low:
            out.append(_new_punch(Punch, (high, high_state, False)))
    return out


class _Collector:
    """Folds raw punch rows into the first and last moment of each state and day.

    Rows of one subject usually come together (the index's order), which saves resolving each row;
    any order gives the same result.
    """

    def __init__(
        self, resolver: Resolver, clock: LocalClock, offset: timedelta | None, nips: Collection[str] | None,
        kept: _Kept, by_state: bool,
    ) -> None:  # fmt: skip
        self.resolver, self.clock, self.offset, self.nips, self.kept = resolver, clock, offset, nips, kept
        self.by_state = by_state

    def _days_of(self, row: Any) -> dict[date, dict[str, _Pair]] | None:
        resolver = self.resolver
        if resolver.by_device:
            nip = resolver.nip(row[4], row[5], row[0], row[1])
        else:
            nip = resolver.by_subject.get((row[0], row[1]))
        if nip is None or (self.nips is not None and nip not in self.nips):
            return None
        return self.kept.setdefault(nip, {})

    def __call__(self, rows: Sequence[Any]) -> None:
        offset, local, parse = self.offset, self.clock.local, datetime.fromisoformat
        per_device, by_state = bool(self.resolver.by_device), self.by_state
        subject: tuple[str, str] | None = None
        days: dict[date, dict[str, _Pair]] | None = None
        day: date | None = None
        states: dict[str, _Pair] = {}
        for row in rows:
            if per_device or (row[0], row[1]) != subject:
                subject, day = (row[0], row[1]), None
                days = self._days_of(row)
            if days is None:
                continue
            occurred = row[2]
            if type(occurred) is str:  # SQLite hands back its stored text
                occurred = parse(occurred)
            at = occurred + offset if offset is not None else local(occurred)
            if at.date() != day:
                day = at.date()
                states = days.setdefault(day, {})
            state = row[3]
            key = state if by_state else ""
            pair = states.get(key)
            if pair is None:
                states[key] = [at, state, at, state]
            elif at > pair[2]:
                pair[2], pair[3] = at, state
            elif at < pair[0]:  # the same person's other subject (a card and a finger)
                pair[0], pair[1] = at, state


def resolver_for_subjects(conn: Connection, subjects: Collection[SubjectKey]) -> Resolver:
    """Just the mappings that decide whose ``subjects`` are (a batch's, not the whole registry)."""
    by_subject: dict[SubjectKey, str] = {}
    by_device: dict[tuple[str, str, str, str], str] = {}
    for kind, column in (("zk_user_id", employees.c.zk_user_id), ("card_uid", employees.c.card_uid)):
        values = sorted({value for k, value in subjects if k == kind})
        for at in range(0, len(values), _FEW):
            part = values[at : at + _FEW]
            by_subject.update(
                {
                    (kind, value): nip
                    for nip, value in conn.execute(select(employees.c.nip, column).where(column.in_(part)))
                }
            )
            mapped = select(subject_mappings).where(
                subject_mappings.c.subject_kind == kind, subject_mappings.c.subject_value.in_(part)
            )
            by_device.update(
                {(r.gateway_id, r.device_id, r.subject_kind, r.subject_value): r.nip for r in conn.execute(mapped)}
            )
    return Resolver(by_subject, by_device)


def _subject_key(event: PunchEvent) -> SubjectKey:
    subject = event.subject
    if subject.zk_user_id is not None:
        return ("zk_user_id", subject.zk_user_id)
    return ("card_uid", subject.card_uid or "")


def resolve_events(conn: Connection, zone: ZoneInfo, events: Sequence[PunchEvent]) -> Iterator[tuple[str, datetime]]:
    """(NIP, local time) of each event that resolves to an employee."""
    keys = [_subject_key(e) for e in events]
    resolver = resolver_for_subjects(conn, set(keys))
    clock = LocalClock(zone)
    for e, (kind, value) in zip(events, keys, strict=True):
        nip = resolver.nip(e.gateway_id, e.device_id, kind, value)
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
