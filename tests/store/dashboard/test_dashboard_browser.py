"""The dashboard in a real browser (Debian's chromium through Playwright), against a store served by uvicorn.

Signing in with password and authenticator code, then watching "Hari ini" fill as punches arrive;
a monthly recap opened, its CSV downloaded and its printable page; the discipline watchlist; a head
of unit refused another unit's page. Screenshots are kept in tests/.artifacts/ for review.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pyotp
import pytest
from playwright.sync_api import Browser, Page, expect

from ekinerja.store import accounts
from ekinerja.store.accounts import Role, User
from ekinerja.store.dashboard.pages import today
from ekinerja.store.db import make_engine
from ekinerja.store.registry import import_employees
from ekinerja.sync.contract import Batch, EventFactory, Punch, Source, Subject, Verify

from browser import ARTIFACTS, chromium
from stack import FEED_AUTH, store_server

TOKEN = "dashboard-browser-token-1"
PASSWORD = "sandi-dasbor-kuat-1"
WIB = ZoneInfo("Asia/Jakarta")
STAFF = """nip,name,unit,zk_user_id,card_uid,active_from
198503142010012003,Ani Lestari,Bagian Umum,1001,,2025-01-01
199001012015031001,Budi Santoso,Bagian Umum,1002,,2025-01-01
197912312005022002,Citra Dewi,Bidang Aset,1003,,2025-01-01
"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as browser:
        yield browser


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, dict[str, str]]]:
    """A store with three employees and two users; yields its URL and each user's TOTP secret."""
    monkeypatch.setattr(today, "REFRESH_S", 2)  # the page refreshes itself; the test need not wait 15 s
    url = f"sqlite:///{tmp_path}/store.db"
    with store_server(url, {"opd-1": TOKEN}) as base:
        engine = make_engine(url)
        earlier = datetime.now(UTC).replace(tzinfo=None) - timedelta(minutes=5)
        import_employees(engine, STAFF, "staff.csv", "test", earlier)
        secrets = {
            user.username: accounts.add(engine, user, PASSWORD, "test", earlier)
            for user in (User("admin.bkd", "Admin BKD", Role.ADMIN, None),
                         User("kabag.aset", "Kepala Bidang Aset", Role.HEAD, "Bidang Aset"))
        }  # fmt: skip
        engine.dispose()
        yield base, secrets


def push(base: str, user_id: str, moments: list[datetime], kind: Punch = Punch.IN) -> None:
    """Fingerprint punches at the door at WIB ``moments``, pushed as the gateway would."""
    factory = EventFactory(gateway_id="opd-1", device_id="pintu", device_serial="DASH0001", source=Source.ZK,
                           timezone="Asia/Jakarta", captured_at=datetime.now(UTC))  # fmt: skip
    events = [factory.make(subject=Subject(zk_user_id=user_id), verify=Verify.FINGERPRINT, punch=kind, device_time=at)
              for at in moments]  # fmt: skip
    batch = Batch(gateway_id="opd-1", sent_at=datetime.now(UTC), events=events).model_dump(mode="json")
    answer = httpx.post(f"{base}/v1/punches", json=batch, headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 200 and answer.json()["accepted"] == len(events), answer.text


def punch_arriving(base: str, user_id: str) -> datetime:
    """A fingerprint clock-in at the door, pushed as the gateway would; returns its WIB wall time.

    At 07:10 today, or now if earlier: a punch after midday would count as a clock-out.
    """
    factory = EventFactory(gateway_id="opd-1", device_id="pintu", device_serial="DASH0001", source=Source.ZK,
                           timezone="Asia/Jakarta", captured_at=datetime.now(UTC))  # fmt: skip
    now = datetime.now(WIB).replace(tzinfo=None, microsecond=0)
    moment = min(now, now.replace(hour=7, minute=10, second=0))
    event = factory.make(subject=Subject(zk_user_id=user_id), verify=Verify.FINGERPRINT, punch=Punch.IN,
                         device_time=moment)  # fmt: skip
    batch = Batch(gateway_id="opd-1", sent_at=datetime.now(UTC), events=[event]).model_dump(mode="json")
    answer = httpx.post(f"{base}/v1/punches", json=batch, headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 200 and answer.json()["accepted"] == 1, answer.text
    return moment


def sign_in(page: Page, base: str, username: str, secret: str, path: str = "/hari-ini") -> None:
    page.goto(base + path)
    expect(page).to_have_url(f"{base}/masuk?next={path.replace('?', '%3F').replace('=', '%3D')}")
    page.get_by_label("Nama pengguna").fill(username)
    page.get_by_label("Kata sandi").fill(PASSWORD)
    page.get_by_label("Kode autentikator").fill(pyotp.TOTP(secret).now())
    page.get_by_role("button", name="Masuk").click()


def test_sign_in_and_watch_today_fill(browser: Browser, store: tuple[str, dict[str, str]]) -> None:
    base, secrets = store
    page = browser.new_page()
    sign_in(page, base, "admin.bkd", secrets["admin.bkd"])
    expect(page.get_by_role("heading", level=1)).to_contain_text("Hari ini")
    umum = page.locator('section[data-unit="Bagian Umum"]')
    # Whether a working day or not, nobody has punched yet.
    expect(umum.locator('[data-count="in"]')).to_have_text("0")
    expect(umum.locator('[data-count="late"]')).to_have_text("0")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / "dashboard-today-empty.png", full_page=True)
    arrived = punch_arriving(base, "1001").strftime("%H:%M")
    ani = umum.locator('tr[data-nip="198503142010012003"]')
    # The page refreshes itself: no reload here.
    expect(ani.locator("td").nth(2)).to_have_text(arrived, timeout=15_000)
    page.screenshot(path=ARTIFACTS / "dashboard-today.png", full_page=True)
    page.get_by_role("link", name="English").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Today")
    page.close()


def test_a_head_of_unit_is_refused_another_unit(browser: Browser, store: tuple[str, dict[str, str]]) -> None:
    base, secrets = store
    page = browser.new_page()
    sign_in(page, base, "kabag.aset", secrets["kabag.aset"])
    expect(page.locator('section[data-unit="Bidang Aset"]')).to_be_visible()
    expect(page.locator('section[data-unit="Bagian Umum"]')).to_have_count(0)
    answer = page.goto(f"{base}/hari-ini?unit=Bagian%20Umum")
    assert answer is not None and answer.status == 403
    expect(page.get_by_role("alert")).to_contain_text("tidak berhak")
    page.screenshot(path=ARTIFACTS / "dashboard-refused.png", full_page=True)
    page.close()


def test_a_monthly_recap_its_csv_and_its_printable_page(
    browser: Browser, store: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    base, secrets = store
    # January 2026: Ani on time on Monday the 5th, 45 minutes late on the 6th, every other working day absent.
    push(base, "1001", [datetime(2026, 1, 5, 7, 20), datetime(2026, 1, 6, 8, 15)])
    push(base, "1001", [datetime(2026, 1, 5, 16, 30), datetime(2026, 1, 6, 16, 30)], Punch.OUT)
    page = browser.new_page(accept_downloads=True)
    sign_in(page, base, "admin.bkd", secrets["admin.bkd"], "/rekap?month=2026-01")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Rekap bulanan: Januari 2026")
    ani = page.locator('tr[data-nip="198503142010012003"]')
    expect(ani.locator("td").nth(4)).to_have_text("1")  # TL2: the 6th
    expect(ani.locator('[data-col="tk"]')).to_have_text("18")  # 20 working days, 2 present
    expect(page.locator(".charts svg")).to_have_count(3)
    page.screenshot(path=ARTIFACTS / "dashboard-monthly.png", full_page=True)
    with page.expect_download() as download_info:
        page.get_by_role("link", name="Unduh CSV").click()
    download = download_info.value
    assert download.suggested_filename == "rekap-2026-01.csv"
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    api = httpx.get(f"{base}/v1/attendance/monthly", params={"month": "2026-01", "format": "csv"}, headers=FEED_AUTH)
    assert saved.read_text(encoding="utf-8") == api.text and api.text.count("\n") == 4  # header and 3 employees
    page.get_by_role("link", name="Versi cetak").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Rekapitulasi Kehadiran Pegawai")
    page.emulate_media(media="print")
    expect(page.locator("header")).to_be_hidden()  # the paper shows the report, not the site's menus
    expect(page.get_by_text("Kepala Subbagian Tata Usaha")).to_be_visible()
    page.screenshot(path=ARTIFACTS / "dashboard-monthly-print.png", full_page=True)
    page.emulate_media(media="screen")
    page.goto(f"{base}/disiplin?year=2026")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Disiplin 2026")
    expect(page.locator('tr[data-nip="198503142010012003"]')).to_have_class("heavy")  # absent all year but two days
    page.screenshot(path=ARTIFACTS / "dashboard-discipline.png", full_page=True)
    page.close()
