"""Reading a month's punches: only the first and last of a day are kept, whatever order rows come in."""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from ekinerja.store.punch_input import LocalClock, Resolver, _Collector, _punches


def collect(rows: list[tuple[str, str, datetime, str]]) -> dict[str, dict[date, list[tuple[datetime, str]]]]:
    resolver = Resolver({("zk_user_id", "1001"): "A", ("card_uid", "04A1B2C3"): "A", ("zk_user_id", "1002"): "B"}, {})
    kept: dict[str, Any] = {}
    _Collector(resolver, LocalClock(ZoneInfo("Asia/Jakarta")), timedelta(hours=7), None, kept, True)(rows)
    return {
        nip: {day: sorted((p.at, p.state) for p in _punches(pairs)) for day, pairs in days.items()}
        for nip, days in kept.items()
    }


def test_any_row_order_keeps_the_same_first_and_last_punches() -> None:
    rng = random.Random(3)
    base = datetime(2026, 1, 5, 0, 0)  # 07:00 WIB
    rows = [
        (kind, value, base + timedelta(hours=rng.randrange(0, 40), minutes=rng.randrange(60)), state)
        for kind, value in [("zk_user_id", "1001"), ("card_uid", "04A1B2C3"), ("zk_user_id", "1002"),
                            ("zk_user_id", "9999")]
        for state in ("in", "out", "in", "break_out")
        for _ in range(3)
    ]  # fmt: skip
    ordered = collect(sorted(rows))
    assert set(ordered) == {"A", "B"}, "the unknown subject 9999 is nobody's"
    for _ in range(5):
        rng.shuffle(rows)
        assert collect(rows) == ordered
