"""Scoring a month for 30,000 employees from raw punches, on SQLite and on PostgreSQL.

September 2026 (22 working days under perma-3-2020), 2 to 4 punches a day per employee, about 2
million punches in the store's own tables. Timed: the store's month scoring from the raw punches to
the kept month rows (read punches and registry, resolve, score every day, write 30,000 rows), and
the re-scoring of one employee's month after a late punch, which is what the store does per late
punch. Target (issue 3): the month within 10 s on each backend; the late punch in milliseconds.
PostgreSQL is the tests' throwaway server (tests/servers.py).
"""

from __future__ import annotations

import argparse
import logging
import random
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, func, select

from ekinerja.config.rules import load_profile
from ekinerja.store.attendance import Office
from ekinerja.store.db import attendance_months, employees, make_engine, punches
from ekinerja.store.month_scoring import score_month_rows
from ekinerja.store.schema import upgrade
from ekinerja.store.scoring import Scorer
from ekinerja.sync.contract import Punch, Subject, compute_event_id

from harness import report

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from servers import PostgresServer

MONTH = date(2026, 9, 1)
WIB = timedelta(hours=7)
COLUMNS = (
    "event_id", "gateway_id", "device_id", "device_serial", "source", "verify", "subject_kind", "subject_value",
    "punch", "device_time", "timezone", "occurred_at", "clock_skew_s", "captured_at", "received_at",
)  # fmt: skip


def nip_of(i: int) -> str:
    born = date(1970, 1, 1) + timedelta(days=i % 10000)
    return f"{born:%Y%m%d}{2000 + i % 20}{1 + i % 12:02d}{1 + i % 2}{i % 1000:03d}"


def employee_rows(n: int) -> list[dict[str, Any]]:
    now = datetime.now(UTC).replace(tzinfo=None)
    return [
        {"nip": nip_of(i), "name": f"Pegawai {i}", "unit": f"Unit {i % 40}", "zk_user_id": str(100000 + i),
         "card_uid": None, "six_day": False, "tpp_base": 5_000_000, "active_from": date(2020, 1, 1),
         "active_to": None, "updated_at": now}
        for i in range(n)
    ]  # fmt: skip


def punch_rows(n: int, working_days: list[date], seed: int = 7) -> Iterator[tuple[Any, ...]]:
    """2 to 4 punches a day for every employee (in, sometimes a break out and in, out), day by day as
    the gateways deliver them."""
    rng = random.Random(seed)
    captured = datetime(2026, 10, 1, 1, 0)
    subjects = [Subject(zk_user_id=str(100000 + i)) for i in range(n)]
    for day in working_days:
        base = datetime.combine(day, datetime.min.time())
        for subject in subjects:
            times = [(base + timedelta(minutes=420 + rng.randrange(75)), Punch.IN)]
            if rng.random() < 0.5:
                times.append((base + timedelta(minutes=720 + rng.randrange(20)), Punch.BREAK_OUT))
                if rng.random() < 0.8:
                    times.append((base + timedelta(minutes=770 + rng.randrange(20)), Punch.BREAK_IN))
            times.append((base + timedelta(minutes=940 + rng.randrange(90)), Punch.OUT))
            for local, kind in times:
                yield (
                    compute_event_id("BENCH0001", subject, local, kind), "opd-bench", "pintu", "BENCH0001", "zk",
                    "fingerprint", "zk_user_id", subject.zk_user_id, kind.value, local, "Asia/Jakarta", local - WIB,
                    None, captured, captured,
                )  # fmt: skip


def load(engine: Engine, n: int, working_days: list[date]) -> int:
    """The registry and the month's punches, inserted the fastest way each backend has."""
    with engine.begin() as conn:
        conn.execute(employees.insert(), employee_rows(n))
    raw = engine.raw_connection()
    count = 0
    try:
        cursor = raw.cursor()
        if engine.dialect.name == "postgresql":
            with cursor.copy(f"COPY punches ({', '.join(COLUMNS)}) FROM STDIN") as copy:  # type: ignore[attr-defined]
                for row in punch_rows(n, working_days):
                    copy.write_row(row)
                    count += 1
        else:
            # SQLite keeps instants as SQLAlchemy writes them: ISO text with microseconds.
            rows = [tuple(_sqlite_value(v) for v in r) for r in punch_rows(n, working_days)]
            count = len(rows)
            marks = ", ".join("?" * len(COLUMNS))
            cursor.executemany(f"INSERT INTO punches ({', '.join(COLUMNS)}) VALUES ({marks})", rows)
        raw.commit()
    finally:
        raw.close()
    # Statistics and (PostgreSQL) the visibility map, as autovacuum keeps them on a month-old table.
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM ANALYZE" if engine.dialect.name == "postgresql" else "ANALYZE")
    return count


def _sqlite_value(value: Any) -> Any:
    return value.isoformat(" ", "microseconds") if isinstance(value, datetime) else value


@contextmanager
def database(backend: str) -> Iterator[str]:
    if backend == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            yield f"sqlite:///{tmp}/store.db"
        return
    server = PostgresServer()
    server.start()
    try:
        yield server.create_database("bench")
    finally:
        server.stop()


def run(backend: str, n: int) -> dict[str, Any]:
    profile = load_profile("perma-3-2020")
    office = Office(Scorer(profile), ZoneInfo(profile.timezone))
    scorer = office.scorer
    last = MONTH.replace(day=30)
    working = [MONTH + timedelta(days=d) for d in range(30) if scorer.hours_for(MONTH + timedelta(days=d), False)]
    today = date(2026, 10, 1)
    with database(backend) as url:
        engine = make_engine(url)
        upgrade(engine)
        started = time.perf_counter()
        count = load(engine, n, working)
        load_s = time.perf_counter() - started
        started = time.perf_counter()
        done = score_month_rows(engine, office, MONTH, None, today)
        month_s = time.perf_counter() - started
        one = nip_of(n // 2)
        with engine.begin() as conn:
            conn.execute(
                punches.insert().values(dict(zip(COLUMNS, next(iter(_late_punch(n // 2, last))), strict=True)))
            )
        started = time.perf_counter()
        again = score_month_rows(engine, office, MONTH, {one}, today)
        one_s = time.perf_counter() - started
        with engine.connect() as conn:
            kept = conn.execute(select(func.count()).select_from(attendance_months)).scalar_one()
        engine.dispose()
    assert done.months == n == kept and again.months == 1 and again.changed_days == 1
    return {
        "backend": backend,
        "punches": count,
        "employee_days": n * len(working),
        "load_s": round(load_s, 1),
        "month_scoring_s": round(month_s, 2),
        "month_target_s": 10,
        "month_met": month_s <= 10,
        "one_late_punch_rescore_ms": round(one_s * 1000, 1),
        "one_late_punch_vs_month": f"1/{round(month_s / one_s)}",
    }


def _late_punch(i: int, day: date) -> Iterator[tuple[Any, ...]]:
    # Employee i's last day had no clock-out; the terminal that had it syncs days late.
    local = datetime.combine(day, datetime.min.time()) + timedelta(hours=18, minutes=5)
    subject = Subject(zk_user_id=str(100000 + i))
    now = datetime.now(UTC).replace(tzinfo=None)
    yield (
        compute_event_id("BENCH0002", subject, local, Punch.OUT), "opd-bench", "samping", "BENCH0002", "zk",
        "fingerprint", "zk_user_id", str(100000 + i), "out", local, "Asia/Jakarta", local - WIB, None, now, now,
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--employees", type=int, default=30_000)
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    args = parser.parse_args()
    # The store logs how long reading and scoring, and keeping, took.
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    results = [run(backend, args.employees) for backend in backends]
    report("score_month", employees=args.employees, month=MONTH.strftime("%Y-%m"), results=results,
           met=all(r["month_met"] for r in results))  # fmt: skip


if __name__ == "__main__":
    main()
