"""A device read: the compact rows a driver produces and the buffer stores, and the events they are."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from ekinerja.sync.contract import DeviceRead, EventFactory, Punch, PunchEvent, Source, Subject, Verify

CAPTURED = datetime(2026, 3, 2, 9, 0, 0, 250000, tzinfo=UTC)


def factory(zone: str = "Asia/Jakarta", skew: float | None = None, correct: bool = False) -> EventFactory:
    return EventFactory(
        gateway_id="opd-1", device_id="pintu", device_serial="SN1", source=Source.ZK, timezone=zone,
        captured_at=CAPTURED, clock_skew_s=skew, correct_skew=correct,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("zone", "day", "second", "skew", "correct"),
    [
        ("Asia/Jakarta", date(2026, 1, 5), 0, None, False),  # WIB midnight: the previous UTC day
        ("Asia/Jakarta", date(2026, 1, 5), 7 * 3600 - 1, None, False),  # the last second of that UTC day
        ("Asia/Jakarta", date(2026, 1, 5), 7 * 3600, None, False),
        ("Asia/Makassar", date(2026, 2, 28), 3 * 3600, None, False),  # WITA, across the month end
        ("Asia/Jayapura", date(2026, 1, 1), 5 * 3600, None, False),  # WIT, across the year end
        ("Asia/Jakarta", date(2024, 2, 29), 86399, None, False),  # leap day, last second
        ("Asia/Jakarta", date(2026, 1, 5), 8 * 3600, 90.4, True),  # corrected in whole seconds
        ("Asia/Jakarta", date(2026, 1, 5), 8 * 3600, -90.6, True),
        ("Asia/Jakarta", date(2026, 1, 5), 8 * 3600, 90.0, False),  # alert policy: measured, not applied
        ("Asia/Jakarta", date(2026, 1, 5), 8 * 3600, 3 * 86400 + 5, True),  # a clock three days ahead
        ("Europe/Berlin", date(2026, 3, 29), 2 * 3600 + 1800, None, False),  # a day the offset changes
    ],
)
def test_wall_times_match_zoneinfo(zone: str, day: date, second: int, skew: float | None, correct: bool) -> None:
    local, occurred = factory(zone, skew, correct).wall_times(day, second)
    wall = datetime.combine(day, datetime.min.time()) + timedelta(seconds=second)
    expected = wall.replace(tzinfo=ZoneInfo(zone)).astimezone(UTC) - timedelta(seconds=round(skew or 0) * correct)
    assert local == wall.isoformat()
    assert datetime.fromisoformat(occurred) == expected
    assert occurred.endswith("+00:00")


def test_rows_stand_for_the_same_events_as_the_factory_makes() -> None:
    f = factory(skew=2.0, correct=True)
    read = f.new_read()
    made = []
    for i, (user, verify, punch) in enumerate([("1001", Verify.CARD, Punch.IN), ("ab:c", Verify.FACE, Punch.OT_OUT)]):
        device_time = datetime(2026, 1, 5, 6, 59, 58) + timedelta(seconds=i)
        subject = Subject(zk_user_id=user)
        read.rows.append(f.row(subject=subject, verify=verify, punch=punch, device_time=device_time))
        made.append(PunchEvent.create(
            gateway_id="opd-1", device_id="pintu", device_serial="SN1", source=Source.ZK, verify=verify,
            subject=subject, punch=punch, device_time=device_time, timezone="Asia/Jakarta", captured_at=CAPTURED,
            clock_skew_s=2.0, correct_skew=True,
        ))  # fmt: skip
    assert list(read) == made and read[1] == made[1] and read[0:1] == made[:1] and len(read) == 2
    # Full validation agrees: ids, instants and types are what a validated event holds.
    assert [PunchEvent.model_validate_json(e.model_dump_json()) for e in read] == made


def test_loose_events_group_into_reads_by_origin() -> None:
    a, b = factory(), factory(zone="Asia/Makassar")
    card = Subject(card_uid="04A1B2C3")
    events = [
        a.make(subject=card, verify=Verify.CARD, punch=Punch.UNKNOWN, device_time=datetime(2026, 1, 5, 7, 0, 0, 900)),
        b.make(subject=card, verify=Verify.CARD, punch=Punch.IN, device_time=datetime(2026, 1, 5, 7, 0)),
        a.make(subject=card, verify=Verify.CARD, punch=Punch.OUT, device_time=datetime(2026, 1, 5, 16, 0)),
    ]
    reads = DeviceRead.group(events)
    assert [r.origin.timezone for r in reads] == ["Asia/Jakarta", "Asia/Makassar"]
    assert [len(r) for r in reads] == [2, 1]
    assert list(reads[0]) == [events[0], events[2]] and list(reads[1]) == [events[1]]
    assert reads[0].rows[0][0] == "card:04A1B2C3" and reads[0].rows[0][3] == "2026-01-05T07:00:00"


def test_a_damaged_row_raises_instead_of_making_a_wrong_event() -> None:
    read = factory().new_read()
    read.rows.append(("zk:7", "fingerprint", "in", "2026-13-01T07:00:00", "2026-01-05T00:00:00+00:00"))
    with pytest.raises(ValueError):
        read[0]
