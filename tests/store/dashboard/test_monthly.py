"""The "Rekap bulanan" page: its totals (pure), and the page, its CSV and its printable form through the app.

January 2026 under perma-3-2020 (Monday-Thursday 07:30-16:00, Friday 07:30-16:30, WIB): 5-9 January
has no holiday, and every day is closed, so the recap is final.
"""

from __future__ import annotations

import csv
import io
import re
from datetime import date, datetime, timedelta
from decimal import Decimal

import pyotp
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from test_store_attendance import day, punch, push
from test_web import ADMIN, HEAD, PASSWORD, client, secret_for, sign_in

from ekinerja.store.dashboard.recap import band_ranges, band_totals, by_unit, daily_counts, day_kind, tk_per_unit
from ekinerja.store.reports import MONTHLY_COLUMNS, Report
from ekinerja.store.scoring.day import DayScore
from ekinerja.sync.contract import Punch

from samples import ANI, BUDI, CITRA, CORE

__all__ = ["client"]  # the fixture, shared with test_web


def score(d: int = 5, *, working: bool = True, first_in: int | None = 7, tl: int = 0, tk: bool = False,
          leave: str | None = None) -> DayScore:  # fmt: skip
    """A closed January day: ``first_in`` is an hour, or None for no clock-in."""
    arrived = datetime(2026, 1, d, first_in, 40) if first_in is not None else None
    return DayScore(date(2026, 1, d), working, arrived, None, None, None, tl, 0, tk, leave, False, 0.0)


@pytest.mark.parametrize(
    ("day_score", "kind"),
    [
        (score(), "on_time"),
        (score(tl=2), "late"),
        (score(first_in=None), "no_clock_in"),
        (score(first_in=None, tk=True), "tk"),
        (score(first_in=None, leave="CT"), "leave"),
        (score(leave="DL", tl=1), "leave"),  # leave excuses the day even with a punch
        (score(working=False), None),  # a weekend or holiday is not on the chart
        (score(working=False, leave="CT"), None),
    ],
)
def test_each_working_day_counts_once_on_the_daily_chart(day_score: DayScore, kind: str | None) -> None:
    assert day_kind(day_score) == kind


def test_daily_counts_are_per_date_in_date_order() -> None:
    days = {
        ANI: [score(6, tl=1), score(5), score(10, working=False)],
        BUDI: [score(5, first_in=None, tk=True), score(6)],
    }
    assert daily_counts(days) == [
        (date(2026, 1, 5), {"on_time": 1, "tk": 1}),
        (date(2026, 1, 6), {"late": 1, "on_time": 1}),
    ]


def row(nip: str, name: str, unit: str, tl: list[int], tk: int, cut: float, amount: str | None) -> dict[str, object]:
    return {"nip": nip, "name": name, "unit": unit, "tl": tl, "psw": [0, 1, 0, 0], "tk_days": tk, "leave_days": 1,
            "cut_percent": cut, "cut_amount": amount}  # fmt: skip


def test_units_total_their_employees_and_rank_by_tk() -> None:
    rows = [
        row(CITRA, "Citra", "Bidang Aset", [0, 0, 0, 1], 3, 9.0, "360000.00"),
        row(BUDI, "Budi", "Bagian Umum", [1, 0, 0, 0], 0, 0.5, None),
        row(ANI, "Ani", "Bagian Umum", [2, 1, 0, 0], 1, 4.5, "225000.00"),
    ]
    units = by_unit(rows)
    assert [u.unit for u in units] == ["Bagian Umum", "Bidang Aset"]
    umum = units[0]
    assert [e["name"] for e in umum.employees] == ["Ani", "Budi"]
    assert (umum.tl, umum.psw, umum.tk_days, umum.leave_days) == ([3, 1, 0, 0], [0, 2, 0, 0], 1, 2)
    assert umum.cut_amount == Decimal("225000.00") and umum.mean_cut_percent == 2.5
    assert band_totals(units) == [3, 1, 0, 1] and band_totals(units, "psw") == [0, 3, 0, 0]
    assert tk_per_unit(units) == [("Bidang Aset", 3.0), ("Bagian Umum", 1.0)]
    assert by_unit([]) == [] and band_totals([]) == [0, 0, 0, 0]


def january(client: TestClient) -> None:
    """Ani on time on the 5th, 1 minute late on the 6th, 75 minutes late on the 8th; Budi only on the 5th."""
    push(client, [
        punch("1001", day(5, 7, 25), Punch.IN), punch("1001", day(5, 16, 5), Punch.OUT),
        punch("1001", day(6, 7, 31), Punch.IN), punch("1001", day(6, 16, 1), Punch.OUT),
        punch("1001", day(8, 8, 45), Punch.IN), punch("1001", day(8, 16, 30), Punch.OUT),
        punch(None, day(5, 7, 29), Punch.IN, card="04A1B2C3"), punch(None, day(5, 16, 0), Punch.OUT, card="04A1B2C3"),
    ])  # fmt: skip


def cells(page: str, nip: str) -> list[str]:
    """The text of the cells of ``nip``'s line in a table."""
    line = re.search(rf'<tr[^>]* data-nip="{nip}"[^>]*>(.*?)</tr>', page, re.S)
    assert line, f"no line for {nip}"
    return [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", line.group(1), re.S)]


def test_the_recap_page_shows_the_monthly_report_with_charts(client: TestClient, engine: Engine) -> None:
    january(client)
    sign_in(client, "admin.bkd", PASSWORD, pyotp.TOTP(secret_for(engine, ADMIN)).now())
    answer = client.get("/rekap", params={"month": "2026-01"})
    assert answer.status_code == 200, answer.text
    report = client.get("/v1/attendance/monthly", params={"month": "2026-01"}, headers=CORE).json()["employees"]
    for r in report:
        shown = cells(answer.text, r["nip"])
        assert shown[:3] == [r["name"], r["nip"], str(r["working_days"])]
        assert shown[3:11] == [str(v) for v in r["tl"] + r["psw"]] and shown[11] == str(r["tk_days"])
    ani = {r["nip"]: r for r in report}[ANI]
    assert ani["tl"][:3] == [1, 0, 1] and ani["tk_days"] > 0, "the sample month has lateness and absence"
    assert answer.text.count("<svg") == 3 and "Januari 2026" in answer.text
    # The TL histogram shows the month's band totals, the daily chart a bar on the 5th with both on time.
    assert "TL1 (1–30 mnt): 1" in answer.text and "TL3 (61–90 mnt): 1" in answer.text
    assert "TL4 (≥91 mnt / tanpa absen masuk): 0" in answer.text, "a missing clock-in counts in TL4: said so"
    assert "<title>Tepat waktu: 2 (2026-01-05)</title>" in answer.text
    assert 'href="/rekap.csv?month=2026-01"' in answer.text and 'href="/rekap?month=2025-12"' in answer.text


def test_the_csv_download_is_the_monthly_report(client: TestClient, engine: Engine) -> None:
    january(client)
    sign_in(client, "admin.bkd", PASSWORD, pyotp.TOTP(secret_for(engine, ADMIN)).now())
    download = client.get("/rekap.csv", params={"month": "2026-01", "unit": "Bagian Umum"})
    assert download.status_code == 200 and download.headers["content-type"].startswith("text/csv")
    assert download.headers["content-disposition"] == 'attachment; filename="rekap-2026-01-bagian-umum.csv"'
    api = client.get("/v1/attendance/monthly", params={"month": "2026-01", "unit": "Bagian Umum", "format": "csv"},
                     headers=CORE)  # fmt: skip
    assert download.text == api.text
    assert {r["nip"] for r in csv.DictReader(io.StringIO(download.text))} == {ANI, BUDI}


def test_the_printable_recap_has_the_table_and_room_to_sign(client: TestClient, engine: Engine) -> None:
    january(client)
    sign_in(client, "admin.bkd", PASSWORD, pyotp.TOTP(secret_for(engine, ADMIN)).now())
    printed = client.get("/rekap/cetak", params={"month": "2026-01", "unit": "Bidang Aset"})
    assert printed.status_code == 200
    assert "Rekapitulasi Kehadiran Pegawai" in printed.text and "Kepala Subbagian Tata Usaha" in printed.text
    assert cells(printed.text, CITRA)[:2] == ["Citra Dewi", CITRA] and f'data-nip="{ANI}"' not in printed.text
    assert "<svg" not in printed.text


def test_a_head_of_unit_sees_the_recap_of_their_unit_only(client: TestClient, engine: Engine) -> None:
    january(client)
    sign_in(client, "kabag.umum", PASSWORD, pyotp.TOTP(secret_for(engine, HEAD)).now())
    own = client.get("/rekap", params={"month": "2026-01"})
    assert own.status_code == 200 and f'data-nip="{ANI}"' in own.text and f'data-nip="{CITRA}"' not in own.text
    for path in ("/rekap", "/rekap.csv", "/rekap/cetak"):
        refused = client.get(path, params={"month": "2026-01", "unit": "Bidang Aset"})
        assert refused.status_code == 403 and CITRA not in refused.text, path
    assert client.get("/rekap.csv", params={"month": "2026-01"}).text.count("\n") == 3  # header, Ani, Budi


def test_a_month_that_cannot_be_read_is_named(client: TestClient, engine: Engine) -> None:
    sign_in(client, "admin.bkd", PASSWORD, pyotp.TOTP(secret_for(engine, ADMIN)).now())
    for month in ("2026-13", "26-01", "januari", "2026-01-05", "1999-12", "2026-00", "x" * 21):
        for path in ("/rekap", "/rekap.csv", "/rekap/cetak"):
            answer = client.get(path, params={"month": month})
            assert answer.status_code in (400, 422) and "month" in answer.text, (path, month)
            if len(month) <= 20:
                assert answer.status_code == 400 and "YYYY-MM" in answer.text, (path, month)


def test_a_unit_with_nobody_and_a_month_with_nothing_are_empty_pages(client: TestClient, engine: Engine) -> None:
    sign_in(client, "admin.bkd", PASSWORD, pyotp.TOTP(secret_for(engine, ADMIN)).now())
    empty = client.get("/rekap", params={"month": "2026-01", "unit": "Tidak Ada"})
    assert empty.status_code == 200 and "Belum ada pegawai" in empty.text and "Belum ada data." in empty.text
    english = client.get("/rekap", params={"month": "2025-02", "lang": "en"})
    assert english.status_code == 200 and "February 2025" in english.text


def test_a_month_after_this_one_is_refused_and_not_linked(client: TestClient, engine: Engine) -> None:
    sign_in(client, "admin.bkd", PASSWORD, pyotp.TOTP(secret_for(engine, ADMIN)).now())
    this_month = client.app.state.store.office.now().date().replace(day=1)  # type: ignore[attr-defined]
    following = (this_month + timedelta(days=32)).replace(day=1)
    for month in (f"{following:%Y-%m}", "2100-12", "2099-01"):
        for path in ("/rekap", "/rekap.csv", "/rekap/cetak"):
            answer = client.get(path, params={"month": month})
            assert answer.status_code == 400, (path, month)
            assert f"is not a month from 2000-01 to {this_month:%Y-%m}" in answer.text, (path, month)
    current = client.get("/rekap")
    assert (
        current.status_code == 200
        and 'rel="next"' not in current.text
        and f"month={following:%Y-%m}" not in current.text
    )
    assert f'max="{this_month:%Y-%m}"' in current.text
    earlier = client.get("/rekap", params={"month": "2026-01"})
    assert 'href="/rekap?month=2026-02" rel="next"' in earlier.text
    first = client.get("/rekap", params={"month": "2000-01"})
    assert first.status_code == 200 and "month=1999-12" not in first.text


def test_the_csv_download_has_its_header_even_with_nobody_in_it(client: TestClient, engine: Engine) -> None:
    january(client)
    sign_in(client, "admin.bkd", PASSWORD, pyotp.TOTP(secret_for(engine, ADMIN)).now())
    api = client.get("/v1/attendance/monthly", params={"month": "2026-01", "format": "csv"}, headers=CORE)
    header = api.text.splitlines()[0]
    assert header == ",".join(MONTHLY_COLUMNS), "the columns of an empty report are those of a full one"
    empty = client.get("/rekap.csv", params={"month": "2026-01", "unit": "Tidak Ada"})
    assert empty.status_code == 200 and empty.text == header + "\n"
    assert list(csv.DictReader(io.StringIO(empty.text))) == []
    assert Report({}, "employees", [], MONTHLY_COLUMNS).as_csv() == header + "\n", "the API's own empty report too"


@pytest.mark.parametrize(
    ("starts", "ranges"),
    [
        ([1, 31, 61, 91], [(1, 30), (31, 60), (61, 90), (91, None)]),
        ([1, 61], [(1, 60), (61, None)]),  # Pergub Sumut: over 60 minutes counts as TK, two bands
        ([5], [(5, None)]),
    ],
)
def test_band_ranges_follow_the_profile(starts: list[int], ranges: list[tuple[int, int | None]]) -> None:
    assert band_ranges(starts) == ranges
