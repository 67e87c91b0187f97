"""The "Karyawan" and "Perangkat" pages in a real browser (Debian's chromium), against a store served by uvicorn.

A personnel user signs in, enters leave for a past working day and sees the day's code change in
the store's daily report, then maps a punch no one was mapped to and sees it leave the list. The
fleet page shows a reporting gateway and a stale one. Screenshots are kept in tests/.artifacts/.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pyotp
import pytest
from playwright.sync_api import Browser, Page, expect
from test_fleet import report_data

from ekinerja.store import accounts
from ekinerja.store.accounts import Role, User
from ekinerja.store.db import make_engine
from ekinerja.store.fleet import keep_report
from ekinerja.store.registry import import_employees
from ekinerja.sync.contract import Batch, EventFactory, GatewayReport, Punch, Source, Subject, Verify

from browser import ARTIFACTS, chromium
from stack import FEED_AUTH, store_server

TOKEN = "dashboard-pages-token-1"
PASSWORD = "sandi-dasbor-kuat-1"
ANI, CITRA = "198503142010012003", "197912312005022002"
STAFF = f"""nip,name,unit,zk_user_id,card_uid,active_from
{ANI},Ani Lestari,Bagian Umum,1001,,2025-01-01
199001012015031001,Budi Santoso,Bagian Umum,1002,,2025-01-01
{CITRA},Citra Dewi,Bidang Aset,1003,,2025-01-01
"""
UNMATCHED = 'tr[data-subject="opd-1/pintu/zk_user_id/1009"]'


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as browser:
        yield browser


@pytest.fixture
def store(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """A store with three employees, a personnel user, two gateways' reports and an unmatched punch.

    Yields its URL and the user's TOTP secret.
    """
    url = f"sqlite:///{tmp_path}/store.db"
    with store_server(url, {"opd-1": TOKEN}) as base:
        engine = make_engine(url)
        earlier = datetime.now(UTC).replace(tzinfo=None) - timedelta(minutes=5)
        import_employees(engine, STAFF, "staff.csv", "test", earlier)
        user = User("kepeg.bkd", "Staf Kepegawaian BKD", Role.PERSONNEL, None)
        secret = accounts.add(engine, user, PASSWORD, "test", earlier)
        stale = report_data("opd-9") | {
            "alerts": [],
            "devices": [
                {
                    "id": "lobi",
                    "kind": "zk",
                    "online": True,
                    "clock_skew_s": 300,
                    "records": 95_000,
                    "capacity": 100_000,
                }
            ],
        }
        keep_report(engine, GatewayReport.model_validate(stale), datetime.now(UTC) - timedelta(hours=2))
        engine.dispose()
        answer = httpx.put(f"{base}/v1/gateway-report", json=report_data("opd-1"), headers=auth())
        assert answer.status_code == 204, answer.text
        punch_of_nobody(base)
        yield base, secret


def auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKEN}"}


def punch_of_nobody(base: str) -> None:
    """A clock-in last week by terminal user 1009, whom no employee or mapping names."""
    factory = EventFactory(gateway_id="opd-1", device_id="pintu", device_serial="DASH0001", source=Source.ZK,
                           timezone="Asia/Jakarta", captured_at=datetime.now(UTC))  # fmt: skip
    when = (datetime.now(UTC) - timedelta(days=7)).replace(tzinfo=None, hour=0, minute=15, second=0, microsecond=0)
    event = factory.make(subject=Subject(zk_user_id="1009"), verify=Verify.FINGERPRINT, punch=Punch.IN,
                         device_time=when + timedelta(hours=7))  # 07:15 WIB  # fmt: skip
    batch = Batch(gateway_id="opd-1", sent_at=datetime.now(UTC), events=[event]).model_dump(mode="json")
    answer = httpx.post(f"{base}/v1/punches", json=batch, headers=auth())
    assert answer.status_code == 200 and answer.json()["accepted"] == 1, answer.text


def sign_in(page: Page, base: str, username: str, secret: str, path: str) -> None:
    page.goto(base + path)
    expect(page).to_have_url(f"{base}/masuk?next={path}")
    page.get_by_label("Nama pengguna").fill(username)
    page.get_by_label("Kata sandi").fill(PASSWORD)
    page.get_by_label("Kode autentikator").fill(pyotp.TOTP(secret).now())
    page.get_by_role("button", name="Masuk").click()
    expect(page).to_have_url(base + path)


def days(base: str, nip: str, first: str, last: str) -> list[dict[str, Any]]:
    """The store's daily report, as the e-Kinerja core reads it."""
    answer = httpx.get(f"{base}/v1/attendance/daily", params={"nip": nip, "from": first, "to": last},
                       headers=FEED_AUTH)  # fmt: skip
    assert answer.status_code == 200, answer.text
    found: list[dict[str, Any]] = answer.json()["days"]
    return found


def past_working_day(base: str, nip: str) -> dict[str, Any]:
    """The latest closed working day of the last two weeks with no clock-in and no leave: a TK."""
    today = datetime.now(UTC).date()
    listed = days(base, nip, (today - timedelta(days=14)).isoformat(), today.isoformat())
    return [d for d in listed if d["working"] and not d["open"] and d["tk"] and d["leave"] is None][-1]


def test_leave_and_a_mapping_entered_in_the_browser(browser: Browser, store: tuple[str, str]) -> None:
    base, secret = store
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    sign_in(page, base, "kepeg.bkd", secret, "/karyawan")
    expect(page.get_by_role("heading", level=1)).to_have_text("Karyawan")
    day = past_working_day(base, ANI)["date"]
    leave = page.get_by_role("form", name="Catat cuti atau dinas")
    leave.get_by_label("NIP").fill(ANI)
    leave.get_by_label("Kode").select_option("CT")
    leave.get_by_label("Hari pertama").fill(day)
    leave.get_by_label("Hari terakhir").fill(day)
    leave.get_by_label("Alasan").fill("Cuti tahunan, urusan keluarga")
    leave.get_by_label("Disetujui oleh").fill("Kepala Bagian Umum")
    leave.get_by_role("button", name="Simpan cuti/dinas").click()
    expect(page.get_by_role("status")).to_contain_text("Cuti/dinas tersimpan")
    [scored] = days(base, ANI, day, day)
    assert scored["leave"] == "CT" and not scored["tk"], scored
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / "dashboard-employees.png", full_page=True)

    row = page.locator(UNMATCHED)
    expect(row).to_contain_text("1009")
    row.get_by_label("Petakan ke NIP").fill(CITRA)
    row.get_by_role("button", name="Petakan").click()
    expect(page.get_by_role("status")).to_contain_text("Pemetaan tersimpan")
    expect(page.locator(UNMATCHED)).to_have_count(0)
    expect(page.locator('[data-empty="unmatched"]')).to_be_visible()
    page.close()


def test_a_mistake_is_shown_on_the_form(browser: Browser, store: tuple[str, str]) -> None:
    base, secret = store
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    sign_in(page, base, "kepeg.bkd", secret, "/karyawan")
    manual = page.get_by_role("form", name="Catat absen manual")
    manual.get_by_label("NIP").fill("198001012006041001")  # a valid NIP no one in the registry has
    manual.get_by_label("Jam").fill("07:25")
    manual.get_by_label("Alasan").fill("Mesin pintu mati")
    manual.get_by_label("Disetujui oleh").fill("Kepala Bagian Umum")
    manual.get_by_role("button", name="Simpan absen manual").click()
    expect(page.get_by_role("alert")).to_contain_text("NIP ini tidak ada di daftar pegawai")
    manual = page.get_by_role("form", name="Catat absen manual")
    expect(manual.get_by_label("Alasan")).to_have_value("Mesin pintu mati")
    expect(manual.get_by_label("NIP")).to_have_attribute("aria-invalid", "true")
    page.screenshot(path=ARTIFACTS / "dashboard-employees-mistake.png", full_page=True)
    page.close()


def test_the_fleet_page(browser: Browser, store: tuple[str, str]) -> None:
    base, secret = store
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    sign_in(page, base, "kepeg.bkd", secret, "/perangkat")
    expect(page.get_by_role("heading", level=1)).to_have_text("Perangkat")
    expect(page.locator('section[data-gateway="opd-9"] [data-flag="stale"]')).to_have_text("TIDAK MELAPOR")
    expect(page.locator('section[data-gateway="opd-1"] [data-flag="stale"]')).to_have_count(0)
    expect(page.locator('[data-device="lobi"] [data-flag="log"]')).to_be_visible()
    expect(page.locator('[data-count="offline"]')).to_have_text("1")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / "dashboard-devices.png", full_page=True)
    page.close()
