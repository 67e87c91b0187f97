"""The gateway's status report in the contract: strict bounds, and the error names the field."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from ekinerja.sync.contract import GatewayReport


def report_data() -> dict[str, Any]:
    """A valid report: a terminal, a card-reader entry, a backlog and an alert."""
    return {
        "contract_version": 1,
        "gateway_id": "opd-1",
        "taken_at": "2026-01-05T01:00:00Z",
        "devices": [
            {
                "id": "pintu",
                "kind": "zk",
                "online": False,
                "since": "2026-01-05T00:50:00+00:00",
                "serial": "CKPJ201960123",
                "firmware": "Ver 6.60 Jun 16 2015",
                "users": 120,
                "records": 4500,
                "capacity": 100000,
                "percent_used": 4.5,
                "clock_skew_s": -12.25,
                "last_punch": "2026-01-05T07:58:00",
                "last_error": "tcp://10.0.0.5:4370: timed out",
                "punches": 37,
            },
            {"id": "kartu", "kind": "pcsc", "online": True, "live": True, "readers": ["ACS ACR122U 00 00"]},
        ],
        "sync": {"pending": 3, "oldest_pending_at": "2026-01-05T00:58:00Z", "rejected": 1, "quarantined": 0},
        "alerts": [
            {"code": "device_offline", "device_id": "pintu", "message": "pintu offline for 10 min",
             "values": {"minutes": 10}},
            {"code": "disk_full", "message": "disk full", "values": {"minutes": 0, "folder": "/var/lib/ekinerja"}},
        ],
    }  # fmt: skip


def test_a_valid_report_round_trips_through_json() -> None:
    report = GatewayReport.model_validate(report_data())
    assert report.taken_at == datetime(2026, 1, 5, 1, 0, tzinfo=UTC)
    assert report.devices[0].last_punch == datetime(2026, 1, 5, 7, 58)  # the device's wall clock, as it was
    assert report.alerts[1].values == {"minutes": 0.0, "folder": "/var/lib/ekinerja"}
    assert GatewayReport.model_validate_json(report.model_dump_json()) == report


def _set(data: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    node: Any = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return data


BAD: list[tuple[tuple[Any, ...], Any]] = [
    (("contract_version",), 2),
    (("gateway_id",), "opd 1"),
    (("taken_at",), "2026-01-05T08:00:00"),  # no offset: not an instant
    (("devices", 0, "kind"), "adms"),
    (("devices", 0, "id"), ""),
    (("devices", 0, "since"), "2026-01-05T07:50:00"),
    (("devices", 0, "last_punch"), "2026-01-05T07:58:00+07:00"),  # the device's wall clock has no offset
    (("devices", 0, "clock_skew_s"), float("nan")),
    (("devices", 0, "clock_skew_s"), float("inf")),
    (("devices", 0, "clock_skew_s"), 1e11),
    (("devices", 0, "percent_used"), -1),
    (("devices", 0, "users"), -1),
    (("devices", 0, "records"), 2**60),
    (("devices", 0, "punches"), "many"),
    (("devices", 0, "last_error"), "x" * 501),
    (("devices", 0, "last_error"), "line one\nline two"),
    (("devices", 0, "serial"), "SN\x00"),
    (("devices", 0, "online"), "perhaps"),
    (("devices", 0, "colour"), "red"),  # unknown fields are refused, not dropped
    (("devices", 1, "readers"), [f"reader {n}" for n in range(21)]),
    (("devices", 1, "readers", 0), ""),
    (("sync", "pending"), -1),
    (("sync", "oldest_pending_at"), "yesterday"),
    (("sync", "last_error"), "bell\x07"),
    (("alerts", 0, "code"), "Device-Offline"),
    (("alerts", 0, "message"), "m" * 501),
    (("alerts", 0, "device_id"), "pintu utama"),
    (("alerts", 0, "values", "minutes"), [10]),
    (("alerts", 0, "values", "minutes"), float("nan")),
    (("alerts", 1, "values", "folder"), "tab\there"),
]


@pytest.mark.parametrize(("path", "value"), BAD, ids=lambda v: repr(v)[:40])
def test_a_bad_value_is_refused_naming_the_field(path: tuple[Any, ...], value: Any) -> None:
    data = _set(copy.deepcopy(report_data()), path, value)
    with pytest.raises(ValidationError) as caught:
        GatewayReport.model_validate(data)
    locs = [error["loc"] for error in caught.value.errors()]
    assert any(loc[: len(path)] == path for loc in locs), locs  # a union member may add its own step


@pytest.mark.parametrize(
    ("field", "item", "limit"),
    [("devices", {"kind": "zk", "online": True}, 500), ("alerts", {"code": "log_full", "message": "full"}, 500)],
)
def test_lists_are_bounded(field: str, item: dict[str, Any], limit: int) -> None:
    def many(n: int) -> dict[str, Any]:
        items = [{"id": f"d{i}", **item} if field == "devices" else item for i in range(n)]
        return report_data() | {field: items}

    assert len(getattr(GatewayReport.model_validate(many(limit)), field)) == limit
    with pytest.raises(ValidationError) as caught:
        GatewayReport.model_validate(many(limit + 1))
    assert caught.value.errors()[0]["loc"] == (field,)


def test_a_device_listed_twice_is_refused() -> None:
    data = report_data()
    data["devices"][1]["id"] = "pintu"
    with pytest.raises(ValidationError, match="every device id must appear once"):
        GatewayReport.model_validate(data)


def test_non_finite_numbers_in_json_are_refused() -> None:
    text = json.dumps(report_data()).replace('"clock_skew_s": -12.25', '"clock_skew_s": Infinity')
    assert "Infinity" in text
    with pytest.raises(ValidationError) as caught:
        GatewayReport.model_validate_json(text)
    assert caught.value.errors()[0]["loc"] == ("devices", 0, "clock_skew_s")
