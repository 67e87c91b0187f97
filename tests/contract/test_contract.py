"""The wire contract: deterministic ids, strict validation that names the field."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from ekinerja.sync.contract import (
    Batch,
    EventFactory,
    Punch,
    PunchEvent,
    Source,
    Subject,
    Verify,
    compute_event_id,
)

CAPTURED = datetime(2026, 1, 5, 1, 0, tzinfo=UTC)


def make(**overrides: object) -> PunchEvent:
    args: dict[str, object] = {
        "gateway_id": "opd-1",
        "device_id": "pintu",
        "device_serial": "SN1",
        "source": Source.ZK,
        "verify": Verify.FINGERPRINT,
        "subject": Subject(zk_user_id="1001"),
        "punch": Punch.IN,
        "device_time": datetime(2026, 1, 5, 7, 31, 12),
        "timezone": "Asia/Jakarta",
        "captured_at": CAPTURED,
    }
    args.update(overrides)
    return PunchEvent.create(**args)  # type: ignore[arg-type]


def test_event_id_is_deterministic_and_ignores_capture_details() -> None:
    a = make()
    b = make(captured_at=CAPTURED + timedelta(hours=3), verify=Verify.FACE, clock_skew_s=12.0)
    assert a.event_id == b.event_id
    assert len(a.event_id) == 64


@pytest.mark.parametrize(
    "change",
    [
        {"device_serial": "SN2"},
        {"subject": Subject(zk_user_id="1002")},
        {"device_time": datetime(2026, 1, 5, 7, 31, 13)},
        {"punch": Punch.OUT},
    ],
)
def test_event_id_changes_with_each_identifying_field(change: dict[str, object]) -> None:
    assert make().event_id != make(**change).event_id


def test_device_without_serial_is_keyed_by_gateway_and_device() -> None:
    a = make(device_serial=None)
    b = make(device_serial=None, gateway_id="opd-2")
    assert a.event_id != b.event_id


@pytest.mark.parametrize(
    ("zone", "expected_utc"),
    [
        ("Asia/Jakarta", datetime(2026, 1, 5, 0, 31, 12)),
        ("Asia/Makassar", datetime(2026, 1, 4, 23, 31, 12)),
        ("Asia/Jayapura", datetime(2026, 1, 4, 22, 31, 12)),
    ],
)
def test_occurred_at_reads_device_time_in_its_zone(zone: str, expected_utc: datetime) -> None:
    assert make(timezone=zone).occurred_at == expected_utc.replace(tzinfo=UTC)


def test_skew_correction_only_when_asked() -> None:
    assert make(clock_skew_s=120.0).occurred_at == datetime(2026, 1, 5, 0, 31, 12, tzinfo=UTC)
    corrected = make(clock_skew_s=120.0, correct_skew=True)
    assert corrected.occurred_at == datetime(2026, 1, 5, 0, 29, 12, tzinfo=UTC)
    assert corrected.event_id == make().event_id


def test_wire_round_trip() -> None:
    event = make(clock_skew_s=-3.5)
    assert PunchEvent.model_validate_json(event.model_dump_json()) == event


def _errors(exc: ValidationError) -> list[str]:
    return [".".join(str(p) for p in err["loc"]) for err in exc.errors()]


def test_tampered_event_id_is_rejected() -> None:
    data = make().model_dump(mode="json")
    data["subject"] = {"zk_user_id": "9999"}
    with pytest.raises(ValidationError, match="event_id does not match"):
        PunchEvent.model_validate(data)


@pytest.mark.parametrize(
    ("field", "value", "loc"),
    [
        ("device_time", "2026-01-05T07:31:12+07:00", "device_time"),
        ("punch", "lunch", "punch"),
        ("timezone", "Asia/Medan", "timezone"),
        ("occurred_at", "2026-01-05T00:31:12", "occurred_at"),
        ("source", "usb", "source"),
        ("color", "red", "color"),
    ],
)
def test_validation_errors_name_the_field(field: str, value: str, loc: str) -> None:
    data = make().model_dump(mode="json")
    data[field] = value
    with pytest.raises(ValidationError) as info:
        PunchEvent.model_validate(data)
    assert loc in _errors(info.value)


def test_batch_errors_name_the_event_index() -> None:
    good = make().model_dump(mode="json")
    bad = dict(good, verify="retina")
    with pytest.raises(ValidationError) as info:
        Batch.model_validate({"gateway_id": "opd-1", "sent_at": "2026-01-05T01:00:00Z", "events": [good, bad]})
    assert "events.1.verify" in _errors(info.value)


@pytest.mark.parametrize(
    "subject",
    [{}, {"zk_user_id": "1", "card_uid": "04A1B2C3"}, {"card_uid": "04a1b2c3"}, {"card_uid": "04A1B2"}],
)
def test_subject_needs_exactly_one_wellformed_key(subject: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        Subject.model_validate(subject)


def test_create_refuses_an_aware_device_time() -> None:
    with pytest.raises(ValueError, match="naive"):
        make(device_time=datetime(2026, 1, 5, 7, 0, tzinfo=timezone(timedelta(hours=7))))


def test_compute_event_id_drops_microseconds() -> None:
    s = Subject(card_uid="04A1B2C3")
    assert compute_event_id("x", s, datetime(2026, 1, 1, 8, 0, 0, 500), Punch.IN) == compute_event_id(
        "x", s, datetime(2026, 1, 1, 8, 0, 0), Punch.IN
    )


@pytest.mark.parametrize(
    "local",
    [
        datetime(2026, 3, 29, 1, 30),
        datetime(2026, 3, 29, 3, 30),
        datetime(2026, 10, 25, 2, 30),
        datetime(2026, 6, 1, 8),
    ],
)
def test_factory_instants_match_zoneinfo_even_on_offset_change_days(local: datetime) -> None:
    # Indonesia keeps one offset all year; a zone with daylight saving exercises the slow path.
    factory = EventFactory(
        gateway_id="opd-1", device_id="pintu", device_serial="SN1", source=Source.ZK,
        timezone="Europe/Berlin", captured_at=CAPTURED, clock_skew_s=30.0, correct_skew=True,
    )  # fmt: skip
    event = factory.make(subject=Subject(zk_user_id="7"), verify=Verify.FACE, punch=Punch.OUT, device_time=local)
    expected = local.replace(tzinfo=ZoneInfo("Europe/Berlin")).astimezone(UTC) - timedelta(seconds=30)
    assert event.occurred_at == expected and event.occurred_at.tzinfo is UTC
    assert PunchEvent.model_validate_json(event.model_dump_json()) == event


@pytest.mark.parametrize(
    ("code", "punch"),
    [(0, Punch.IN), (1, Punch.OUT), (2, Punch.BREAK_OUT), (3, Punch.BREAK_IN), (4, Punch.OT_IN), (5, Punch.OT_OUT),
     (6, Punch.UNKNOWN), (255, Punch.UNKNOWN), (-1, Punch.UNKNOWN)],
)  # fmt: skip
def test_zk_punch_states(code: int, punch: Punch) -> None:
    assert Punch.from_zk(code) is punch
