"""Month scoring passes: worker processes give the same rows as one process; no late input is lost."""

from __future__ import annotations

import json
import multiprocessing
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, select

from ekinerja.config.rules import load_profile
from ekinerja.store import month_scoring
from ekinerja.store.attendance import Office, load_employees
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
    import_employees(engine, people, "test", datetime.now(UTC).replace(tzinfo=None))
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


def test_an_input_changed_during_a_pass_leaves_the_row_stale(populated: Engine) -> None:
    engine = populated
    with engine.connect() as conn:
        staff = load_employees(conn, MONTH, date(2026, 1, 31), None)
    before_read = datetime.now(UTC).replace(tzinfo=None) - timedelta(seconds=5)
    with engine.begin() as conn:  # a late punch arrives while the pass is reading
        mark_stale(conn, [NIPS[0]], MONTH)
    month_scoring.score_and_keep(engine, OFFICE, MONTH, date(2026, 1, 31), staff, before_read)
    with engine.connect() as conn:
        stale = dict(conn.execute(select(attendance_months.c.nip, attendance_months.c.stale)).all())
    assert stale == {NIPS[0]: True, NIPS[1]: False, NIPS[2]: False, NIPS[3]: False}
    assert month_scoring.rescore_stale(engine, OFFICE).months == 1
    with engine.connect() as conn:
        assert not any(conn.execute(select(attendance_months.c.stale)).scalars())
