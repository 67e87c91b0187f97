"""Parsing of raw ZK datasets, table-driven over the three attendance layouts."""

from __future__ import annotations

import struct
from datetime import datetime

import pytest

from ekinerja.drivers.sim.zk_protocol import encode_time, encode_time_parts
from ekinerja.drivers.zk_records import decode_time, parse_attendance, parse_users, split_dataset

FEB_31 = encode_time_parts(2026, 2, 31, 0, 0, 0)  # representable on the terminal, impossible
WHEN = [datetime(2026, 1, 5, 7, 29, 59), datetime(2026, 1, 5, 16, 1, 0), datetime(2025, 12, 31, 23, 59, 59)]


def record(size: int, user: int, t: int, verify: int = 1, punch: int = 0) -> bytes:
    if size == 8:
        return struct.pack("<HBIB", user, verify, t, punch)
    if size == 16:
        return struct.pack("<IIBB2sI", user, t, verify, punch, b"", 0)
    return struct.pack("<H24sBIB8s", user, str(user).encode(), verify, t, punch, b"")


@pytest.mark.parametrize("size", [8, 16, 40])
def test_each_layout_parses_every_field(size: int) -> None:
    body = b"".join(record(size, 1001 + i, encode_time(t), verify=i, punch=i) for i, t in enumerate(WHEN))
    records, bad = parse_attendance(body, len(WHEN))
    assert bad == []
    assert [r.device_time for r in records] == WHEN
    assert [r.user_id for r in records] == ["1001", "1002", "1003"]
    assert [(r.verify_code, r.punch_code, r.position) for r in records] == [(0, 0, 0), (1, 1, 1), (2, 2, 2)]


def test_eight_byte_records_map_uid_to_user_id() -> None:
    body = record(8, 7, encode_time(WHEN[0])) + record(8, 9, encode_time(WHEN[1]))
    records, _ = parse_attendance(body, 2, uid_to_user={7: "19800101"})
    assert [r.user_id for r in records] == ["19800101", "9"]


@pytest.mark.parametrize("size", [8, 16, 40])
def test_impossible_date_is_set_aside_and_the_rest_parsed(size: int) -> None:
    body = record(size, 1, encode_time(WHEN[0])) + record(size, 2, FEB_31) + record(size, 3, encode_time(WHEN[1]))
    records, bad = parse_attendance(body, 3)
    assert [r.user_id for r in records] == ["1", "3"]
    assert len(bad) == 1 and bad[0].index == 1 and "impossible date" in bad[0].reason
    assert bad[0].raw == record(size, 2, FEB_31)


def test_unknown_record_size_quarantines_each_record_with_its_bytes() -> None:
    body = b"\x01" * 30 + b"\x02" * 30
    records, bad = parse_attendance(body, 2)
    assert records == []
    assert [(b.index, b.raw) for b in bad] == [(0, b"\x01" * 30), (1, b"\x02" * 30)]
    assert all("unknown record size: 30 bytes" in b.reason for b in bad)


def test_a_log_that_does_not_divide_into_its_count_is_refused() -> None:
    with pytest.raises(ValueError, match="does not divide into 2 records"):
        parse_attendance(b"\x00" * 41, 2)


def test_unreadable_user_id_is_set_aside() -> None:
    body = struct.pack("<H24sBIB8s", 1, b"\xff\xfe", 1, encode_time(WHEN[0]), 0, b"") + record(
        40, 5, encode_time(WHEN[1])
    )
    records, bad = parse_attendance(body, 2)
    assert [r.user_id for r in records] == ["5"] and bad[0].index == 0


def test_skip_resumes_after_records_already_read() -> None:
    body = b"".join(record(16, i, encode_time(WHEN[i % 3])) for i in range(10))
    records, _ = parse_attendance(body, 10, skip=7)
    assert [r.position for r in records] == [7, 8, 9]


def test_decode_time_rejects_impossible_dates() -> None:
    assert decode_time(encode_time(WHEN[0])) == WHEN[0]
    with pytest.raises(ValueError):
        decode_time(FEB_31)


def test_users_in_both_layouts() -> None:
    u28 = struct.pack("<HB5s8sIxBhI", 1, 0, b"", b"Budi", 0, 1, 0, 1001)
    u72 = struct.pack("<HB8s24sIx7sx24s", 2, 14, b"", b"Siti Aminah", 1234, b"1", b"19850101")
    assert [(u.uid, u.user_id, u.name) for u in parse_users(u28, 1)] == [(1, "1001", "Budi")]
    user = parse_users(u72, 1)[0]
    assert (user.uid, user.user_id, user.name, user.privilege, user.card) == (
        2,
        "19850101",
        "Siti Aminah",
        14,
        1234,
    )


def test_split_dataset_reads_the_length_prefix() -> None:
    assert split_dataset(struct.pack("<I", 3) + b"abcXYZ") == b"abc"
    assert split_dataset(b"\x01") == b""
