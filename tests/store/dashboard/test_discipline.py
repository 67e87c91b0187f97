"""The "Disiplin" page: the watchlist (pure, table-driven) and the page through the app.

The page test scores the second half of December 2025 under perma-3-2020: employees active from
15 to 31 December, whose working days are the 15th-19th, 22nd-24th and 29th-31st (the 25th is a
national holiday, the 26th cuti bersama): 11 days, all closed whatever day the test runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pyotp
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from test_monthly import cells
from test_store_attendance import punch, push
from test_web import ADMIN, HEAD, PASSWORD, secret_for, sign_in

from ekinerja.store.dashboard.watchlist import busiest, trend, watch, watchlist
from ekinerja.store.db import make_engine
from ekinerja.store.schema import upgrade
from ekinerja.sync.contract import Punch, PunchEvent

from samples import ANI, BUDI, CITRA, CONFIG, csv_post

WORKING = [15, 16, 17, 18, 19, 22, 23, 24, 29, 30, 31]
DECEMBER = f"""nip,name,unit,zk_user_id,card_uid,active_from,active_to
{ANI},Ani Lestari,Bagian Umum,1001,,2025-12-15,2025-12-31
{BUDI},Budi Santoso,Bagian Umum,,04A1B2C3,2025-12-15,2025-12-31
{CITRA},Citra Dewi,Bidang Aset,1003,,2025-12-15,2025-12-31
"""


RUN = {"10-consecutive": "2025-01-14", "11-13": "2025-01-15"}


def row(tk: int, run: int = 1, band: str | None = None, crossed: dict[str, str] | None = None) -> dict[str, Any]:
    return {"nip": "1" * 18, "name": "A", "unit": "U", "tk_days": tk, "consecutive_tk_days": run, "band": band,
            "crossed": crossed or {}}  # fmt: skip


@pytest.mark.parametrize(
    ("line", "band", "next_band", "to_go", "approaching"),
    [
        (row(0, 0), None, "3", 3, False),
        (row(1), None, "3", 2, False),
        (row(2), None, "3", 1, True),  # one more day is a teguran lisan
        (row(3, band="3", crossed={"3": "2025-03-04"}), "3", "4-6", 1, True),
        (row(5, band="4-6", crossed={"3": "2025-02-03", "4-6": "2025-03-04"}), "4-6", "7-10", 2, False),
        (row(6, run=7, band="4-6", crossed={"3": "2025-02-03", "4-6": "2025-02-04"}), "4-6", "7-10", 1, True),
        (row(5, run=7, band="4-6", crossed={"3": "2025-02-03", "4-6": "2025-02-04"}), "4-6", "7-10", 2, True),  # run
        (row(28, band="28+", crossed={"28+": "2025-09-01"}), "28+", None, None, False),
        (row(12, run=12, band="10-consecutive", crossed=RUN), "10-consecutive", "14-16", 2, False),
    ],
)
def test_where_each_count_stands_and_what_comes_next(
    line: dict[str, Any], band: str | None, next_band: str | None, to_go: int | None, approaching: bool
) -> None:
    entry = watch(line)
    assert (entry.band.name if entry.band else None) == band
    assert (entry.next_band.name if entry.next_band else None) == next_band
    assert (entry.days_to_next, entry.approaching) == (to_go, approaching)
    assert [d.isoformat() for _b, d in entry.crossed] == sorted(line["crossed"].values())


def test_the_watchlist_puts_the_most_serious_first_and_counts_the_rest() -> None:
    rows = [
        row(0, 0) | {"name": "Nol"},
        row(2) | {"name": "Dua"},
        row(4, band="4-6", crossed={"3": "2025-01-02", "4-6": "2025-01-03"}) | {"name": "Empat"},
        row(11, band="11-13", crossed={"11-13": "2025-05-05"}) | {"name": "Sebelas"},
        row(2, run=2) | {"name": "Dua Berturut"},
    ]
    listed, clear = watchlist(rows)
    assert [w.name for w in listed] == ["Sebelas", "Empat", "Dua Berturut", "Dua"] and clear == 1


def test_tk_per_unit_and_month_and_the_busiest_units() -> None:
    counts = [("Umum", 1, 1), ("Umum", 3, 2), ("Aset", 2, 1), ("Umum", 3, 1), ("Umum", 4, 5)]  # April: after
    trend_ = trend(counts, 3)
    assert trend_ == {"Umum": [1, 0, 3], "Aset": [0, 1, 0]}
    assert busiest(trend_, most=1) == [("Umum", [1, 0, 3])]
    assert busiest({"B": [1], "A": [1]}) == [("A", [1]), ("B", [1])]


@pytest.fixture
def client(tmp_path: Path) -> Iterator[tuple[TestClient, Engine]]:
    """A store on SQLite with the December registry (the reports behind the page run on all three backends
    in tests/store/test_store_attendance.py)."""
    from ekinerja.store.app import create_app

    engine = make_engine(f"sqlite:///{tmp_path}/store.db")
    upgrade(engine)
    with TestClient(create_app(CONFIG, engine), follow_redirects=False) as client:
        assert csv_post(client, "/v1/employees", DECEMBER).status_code == 200
        yield client, engine
    engine.dispose()


def at(d: int, hour: int, minute: int) -> datetime:
    return datetime(2025, 12, d, hour, minute)


def december(client: TestClient) -> None:
    """Ani misses the 15th, 22nd and 23rd (3 TK); Budi misses the 30th and 31st (2 TK); Citra none."""
    events: list[PunchEvent] = []
    for d in WORKING:
        for user, card, missed in (("1001", None, (15, 22, 23)), (None, "04A1B2C3", (30, 31)), ("1003", None, ())):
            if d not in missed:
                events += [punch(user, at(d, 7, 20), Punch.IN, card), punch(user, at(d, 16, 40), Punch.OUT, card)]
    push(client, events)


def test_the_page_lists_who_crossed_or_nears_a_band_with_the_dates(client: tuple[TestClient, Engine]) -> None:
    web, engine = client
    december(web)
    sign_in(web, "admin.bkd", PASSWORD, pyotp.TOTP(secret_for(engine, ADMIN)).now())
    answer = web.get("/disiplin", params={"year": "2025"})
    assert answer.status_code == 200, answer.text
    ani, budi = cells(answer.text, ANI), cells(answer.text, BUDI)
    assert ani[3:5] == ["3", "2"] and ani[5].startswith("3: teguran lisan") and ani[7] == "3 2025-12-23"
    assert budi[3:5] == ["2", "2"] and "mendekati batas" in budi[0] and budi[6] == "3 hari, 1 hari lagi"
    assert f'data-nip="{CITRA}"' not in answer.text and "1 pegawai tanpa hari TK" in answer.text
    assert answer.text.index(ANI) < answer.text.index(BUDI), "a band reached comes first"
    assert "Dihitung sampai 2025-12-31." in answer.text and answer.text.count("<svg") == 1
    assert "<title>Bagian Umum, Des: 5</title>" in answer.text, "the trend: 3 + 2 TK days in December"


def test_a_head_of_unit_sees_only_their_unit_and_bad_years_are_named(client: tuple[TestClient, Engine]) -> None:
    web, engine = client
    december(web)
    sign_in(web, "kabag.umum", PASSWORD, pyotp.TOTP(secret_for(engine, HEAD)).now())
    own = web.get("/disiplin", params={"year": "2025"})
    assert own.status_code == 200 and f'data-nip="{ANI}"' in own.text and "Bidang Aset" not in own.text
    refused = web.get("/disiplin", params={"year": "2025", "unit": "Bidang Aset"})
    assert refused.status_code == 403 and CITRA not in refused.text
    for year in ("1999", "20x5", "3000", "-1", "2025.0", "²", "２０２５", "٢٠٢٥", "2025\u00b2"):
        wrong = web.get("/disiplin", params={"year": year})
        assert wrong.status_code == 400 and "year" in wrong.text and year in wrong.text, year


def test_an_empty_unit_or_year_is_an_empty_page(client: tuple[TestClient, Engine]) -> None:
    web, engine = client
    sign_in(web, "admin.bkd", PASSWORD, pyotp.TOTP(secret_for(engine, ADMIN)).now())
    for params in ({"year": "2025", "unit": "Tidak Ada"}, {"year": "2024"}, {"lang": "en"}):
        answer = web.get("/disiplin", params=params)
        assert answer.status_code == 200, params
        assert "Tidak ada pegawai dengan hari TK" in answer.text or "Nobody has a TK day" in answer.text, params


def test_the_year_links_stay_within_the_years_there_are(client: tuple[TestClient, Engine]) -> None:
    web, engine = client
    sign_in(web, "admin.bkd", PASSWORD, pyotp.TOTP(secret_for(engine, ADMIN)).now())
    this_year = web.app.state.store.office.now().year  # type: ignore[attr-defined]
    first = web.get("/disiplin", params={"year": "2000", "unit": "Bagian Umum"})
    assert first.status_code == 200 and "year=1999" not in first.text, "no link to a year that is refused"
    assert 'href="/disiplin?year=2001&amp;unit=Bagian+Umum" rel="next"' in first.text
    last = web.get("/disiplin")
    assert f'href="/disiplin?year={this_year - 1}" rel="prev"' in last.text
    assert 'rel="next"' not in last.text and f"year={this_year + 1}" not in last.text
    for year in (f"{this_year - 1}", "2000"):
        following = web.get("/disiplin", params={"year": year})
        link = f'href="/disiplin?year={int(year) + 1}" rel="next"'
        assert link in following.text and web.get(f"/disiplin?year={int(year) + 1}").status_code == 200
