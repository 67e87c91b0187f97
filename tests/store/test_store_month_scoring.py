"""Month scoring passes: worker processes give the same rows as one process; no late input is lost."""

from __future__ import annotations

import json
import multiprocessing
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, select

from ekinerja.config.rules import load_profile
from ekinerja.store import entries, month_scoring
from ekinerja.store.attendance import Office, kept_days
from ekinerja.store.db import attendance_months
from ekinerja.store.ingest import ingest
from ekinerja.store.registry import import_employees, mark_stale
from ekinerja.store.scoring import Scorer
from ekinerja.sync.contract import Batch, Punch, PunchEvent, Source, Subject, Verify

MONTH = date(2026, 1, 1)
TODAY = date(2026, 2, 1)
NIPS = ["198503142010012003", "199001012015031001", "197912312005022002", "198801012012121001"]
OFFICE = Office(Scorer(load_profile("perma-3-2020")), ZoneInfo("Asia/Jakarta"))


def punch(n: int, when: datetime) -> PunchEvent:
    return PunchEvent.create(
        gateway_id="opd-1", device_id="pintu", device_serial="SN1", source=Source.ZK, verify=Verify.FINGERPRINT,
        subject=Subject(zk_user_id=str(1000 + n)), punch=Punch.IN if when.hour < 12 else Punch.OUT,
        device_time=when, timezone="Asia/Jakarta", captured_at=datetime.now(UTC),
    )  # fmt: skip


@pytest.fixture
def populated(engine: Engine) -> Engine:
    people = "nip,name,unit,zk_user_id,card_uid,active_from\n" + "".join(
        f"{nip},Pegawai {n},Unit {n % 2},{1000 + n},,2025-01-01\n" for n, nip in enumerate(NIPS)
    )
    import_employees(engine, people, "test", "test", datetime.now(UTC).replace(tzinfo=None))
    events = [punch(n, datetime(2026, 1, day, hour, 7 * n + day % 5)) for n in range(len(NIPS))
              for day in range(5, 24) for hour in (7, 16)]  # fmt: skip
    ingest(engine, Batch(gateway_id="opd-1", sent_at=datetime.now(UTC), events=events), datetime.now(UTC))
    return engine


def kept(engine: Engine) -> dict[str, tuple[str, int, int]]:
    with engine.connect() as conn:
        rows = conn.execute(select(attendance_months).where(attendance_months.c.month == MONTH)).all()
    return {r.nip: (r.days, r.tk_days, r.tl1) for r in rows}


@pytest.mark.parametrize("start", ["fork", "spawn"])
def test_worker_processes_keep_the_same_rows_as_one_process(
    populated: Engine, start: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = populated
    assert month_scoring.score_month_rows(engine, OFFICE, MONTH, None, TODAY).months == 4
    alone = kept(engine)
    with engine.begin() as conn:
        conn.execute(attendance_months.delete())
    monkeypatch.setattr(month_scoring, "PARALLEL_FROM", 2)
    monkeypatch.setattr(month_scoring, "_context", lambda: multiprocessing.get_context(start))
    done = month_scoring.score_month_rows(engine, OFFICE, MONTH, None, TODAY)
    assert done.months == 4 and kept(engine) == alone
    assert {nip: json.loads(days)[0][0] for nip, (days, _tk, _tl) in alone.items()} == dict.fromkeys(NIPS, 2)


def test_an_input_committed_while_a_pass_reads_leaves_the_row_stale(
    populated: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = populated
    assert month_scoring.score_month_rows(engine, OFFICE, MONTH, None, TODAY).months == 4
    leave = entries.LeaveEntry(NIPS[0], "CT", date(2026, 1, 7), date(2026, 1, 7), "keperluan keluarga", "Kasubbag")
    reading = month_scoring._score_staff

    def leave_arrives_meanwhile(*args: Any, **kwargs: Any) -> Any:
        rows = reading(*args, **kwargs)  # the pass has read its inputs: the leave is not in them
        now = datetime.now(UTC).replace(tzinfo=None)
        entries.add_leave(engine, [(1, leave)], "test", "operator", now, OFFICE.now().date())
        return rows

    monkeypatch.setattr(month_scoring, "_score_staff", leave_arrives_meanwhile)
    with engine.begin() as conn:
        mark_stale(conn, [NIPS[0]], MONTH)
    month_scoring.rescore_stale(engine, OFFICE)
    monkeypatch.setattr(month_scoring, "_score_staff", reading)
    with engine.connect() as conn:
        stale = dict(conn.execute(select(attendance_months.c.nip, attendance_months.c.stale)).all())
    assert stale[NIPS[0]] is True, "a result that misses the leave was kept as current"
    assert month_scoring.rescore_stale(engine, OFFICE).months == 1
    days = kept_days(engine, [MONTH], {NIPS[0]})[NIPS[0]]
    assert next(d for d in days if d.date == date(2026, 1, 7)).leave == "CT"


def test_an_employee_no_longer_active_leaves_the_reports(populated: Engine) -> None:
    engine = populated
    month_scoring.score_month_rows(engine, OFFICE, MONTH, None, TODAY)
    people = f"nip,name,unit,zk_user_id,card_uid,active_from\n{NIPS[0]},Pegawai 0,Unit 0,1000,,2026-03-01\n"
    import_employees(engine, people, "test", "test", datetime.now(UTC).replace(tzinfo=None))
    month_scoring.rescore_stale(engine, OFFICE)
    assert NIPS[0] not in kept(engine) and len(kept(engine)) == 3
