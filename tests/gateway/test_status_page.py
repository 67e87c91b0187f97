"""The status page, its JSON and /healthz: over HTTP against the real server, and in a real browser.

Two simulated ZK terminals and a store feed a running gateway; its page is served by uvicorn on a
loopback port and read with httpx, and with Debian's chromium through Playwright (RIG.md, "A real
browser for page tests"). A screenshot is kept in tests/.artifacts/ for review.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, ConsoleMessage, expect
from prometheus_client.parser import text_string_to_metric_families

from ekinerja.config.gateway import GatewayConfig
from ekinerja.config.loader import load_model
from ekinerja.drivers.sim.zk_device import ZkDevice
from ekinerja.drivers.sim.zk_server import ZkSimulator
from ekinerja.gateway.service import GatewayService
from ekinerja.gateway.web import WebServer

from browser import ARTIFACTS, chromium
from stack import free_port, running, store_server, wait_for, write_gateway_toml

TOKEN = "status-page-token-1"
USER, PASSWORD = "it-kantor", "rahasia-sekali-1"


@dataclass
class Gateway:
    """A running gateway with its page, its terminals and the page's base URL."""

    service: GatewayService
    sims: dict[str, ZkSimulator]
    url: str
    web: WebServer


def _service(folder: Path, store_url: str, sims: dict[str, ZkSimulator], extra_toml: str) -> GatewayService:
    devices = {name: (sim.port, "tcp") for name, sim in sims.items()}
    path = write_gateway_toml(
        folder, store_url, TOKEN, devices, poll_interval_s=1, device_extra=dict.fromkeys(sims, "timeout_s = 1")
    )
    # write_gateway_toml ends with [web]: its listen line is replaced, and extra_toml adds to the table
    web = f'listen = "127.0.0.1:{free_port()}"\nrefresh_s = 1\n{extra_toml}\n'
    path.write_text(path.read_text().replace('listen = "127.0.0.1:0"\n', web))
    return GatewayService(load_model(path, GatewayConfig))


@contextmanager
def gateway(tmp_path: Path, extra_toml: str = "") -> Iterator[Gateway]:
    """Terminals pintu-utama and pintu-samping (its clock 5 min off), a store, the gateway and its page."""
    devices = {
        "pintu-utama": ZkDevice.generate(users=5, records=40, serial="PAGE000001", seed=11),
        "pintu-samping": ZkDevice.generate(users=3, records=12, serial="PAGE000002", seed=12, clock_offset_s=300),
    }
    with ExitStack() as stack:
        sims = {name: stack.enter_context(ZkSimulator(device, protocol="tcp")) for name, device in devices.items()}
        store = stack.enter_context(store_server(f"sqlite:///{tmp_path}/store.db", {"opd-1": TOKEN}))
        service = _service(tmp_path, store, sims, extra_toml)
        stack.enter_context(running(service))
        wait_for(lambda: service.web is not None, what="the gateway's status page")  # started by service.run
        assert service.web is not None
        wait_for(lambda: all(s.online for s in service.status.values()), what="both terminals online")
        yield Gateway(service, sims, service.web.url, service.web)


def test_api_status_lists_the_devices_and_healthz_answers(tmp_path: Path) -> None:
    with gateway(tmp_path) as gw, httpx.Client(base_url=gw.url, timeout=10) as client:
        wait_for(lambda: gw.service.buffer.backlog().pending == 0, what="the punches pushed to the store")
        response = client.get("/api/status")
        assert response.status_code == 200
        assert response.headers["cache-control"] == "no-store"
        status = response.json()
        assert status["gateway_id"] == "opd-1" and status["refresh_s"] == 1
        assert status["timezone"] == "Asia/Jakarta"
        devices = {d["id"]: d for d in status["devices"]}
        assert set(devices) == {"pintu-utama", "pintu-samping"}
        assert devices["pintu-utama"]["online"] and devices["pintu-utama"]["records"] == 40
        assert devices["pintu-samping"]["serial"] == "PAGE000002"
        assert status["sync"]["pending"] == 0 and status["sync"]["store_reachable"] is True
        assert {(a["code"], a["device_id"]) for a in status["alerts"]} == {("clock_skew", "pintu-samping")}

        health = client.get("/healthz")
        assert health.status_code == 200
        assert health.json() == {"status": "ok", "gateway_id": "opd-1", "buffer": "ok"}

        page = client.get("/")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "script-src 'sha256-" in page.headers["content-security-policy"]
        assert client.get("/docs").status_code == 404, "no API browser is served"


def test_basic_auth_guards_everything_but_healthz(tmp_path: Path) -> None:
    with gateway(tmp_path, f'username = "{USER}"\npassword = "{PASSWORD}"') as gw:
        with httpx.Client(base_url=gw.url, timeout=10) as anonymous:
            for path in ("/", "/api/status", "/metrics"):
                refused = anonymous.get(path)
                assert refused.status_code == 401, path
                assert refused.headers["www-authenticate"].startswith("Basic"), path
            assert anonymous.get("/api/status", auth=(USER, "wrong-password")).status_code == 401
            assert anonymous.get("/api/status", auth=("someone", PASSWORD)).status_code == 401
            assert anonymous.get("/healthz").status_code == 200, "/healthz must stay open for monitors"
        with httpx.Client(base_url=gw.url, timeout=10, auth=(USER, PASSWORD)) as client:
            assert client.get("/").status_code == 200
            response = client.get("/api/status")
            assert response.status_code == 200
            assert {d["id"] for d in response.json()["devices"]} == {"pintu-utama", "pintu-samping"}
            metrics = client.get("/metrics")
        assert metrics.status_code == 200
        up = {
            s.labels["device"]: s.value
            for family in text_string_to_metric_families(metrics.text)
            for s in family.samples
            if s.name == "ekinerja_gateway_device_up"
        }
        assert up == {"pintu-utama": 1.0, "pintu-samping": 1.0}


def test_healthz_is_503_when_the_service_is_not_running(tmp_path: Path) -> None:
    path = write_gateway_toml(tmp_path, "http://127.0.0.1:9", TOKEN, {})
    path.write_text(path.read_text().replace('listen = "127.0.0.1:0"', f'listen = "127.0.0.1:{free_port()}"'))
    service = GatewayService(load_model(path, GatewayConfig))
    try:
        with WebServer(service, alive=lambda: False) as web:
            response = httpx.get(f"{web.url}/healthz", timeout=10)
    finally:
        service.close()
    assert response.status_code == 503
    assert response.json()["status"] == "unavailable"
    assert "not running" in response.json()["reason"]


# --- in a real browser -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's chromium, headless, through Playwright; a missing browser fails the tests loudly."""
    with chromium() as browser:
        yield browser


def _is_page_error(message: ConsoleMessage) -> bool:
    # Failed fetches are expected while the page server is stopped; anything else (a policy violation) is not.
    return message.type == "error" and not message.text.startswith("Failed to load resource")


def _device(device_id: str, availability: str) -> str:
    return f'[data-device="{device_id}"] [data-availability="{availability}"]'


def test_the_page_shows_devices_languages_and_a_terminal_going_offline(tmp_path: Path, browser: Browser) -> None:
    # An offline terminal is an alert at once, so the page shows its translation too.
    with gateway(tmp_path, "\n[alerts]\ndevice_offline_minutes = 0") as gw:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on("console", lambda msg: errors.append(msg.text) if _is_page_error(msg) else None)
        page.goto(gw.url + "/")

        # Bahasa Indonesia by default, every device listed and online.
        expect(page.locator("html")).to_have_attribute("lang", "id")
        for device_id in ("pintu-utama", "pintu-samping"):
            expect(page.locator(_device(device_id, "online"))).to_have_text("Terhubung")
        expect(page.locator("h1")).to_have_text("Status gateway presensi")
        expect(page.locator('[data-device="pintu-utama"]')).to_contain_text("40 dari")
        expect(page.locator('[data-alert="clock_skew"]')).to_contain_text("Jam pintu-samping selisih")
        expect(page.locator('[data-sync="store"]')).to_have_text("Terjangkau")
        expect(page.locator('[data-sync="mqtt"]')).to_have_text("Tidak dipakai")  # no [mqtt] in this gateway
        expect(page.locator("#meta")).to_contain_text("opd-1")

        # The gateway's page server goes away: the page says so and keeps trying until it is back.
        gw.web.stop()
        expect(page.locator("#banner")).to_contain_text("Gateway tidak dapat dihubungi", timeout=10_000)
        gw.web.start()
        expect(page.locator("#banner")).to_be_hidden(timeout=10_000)

        # A terminal goes away: offline at the gateway's next poll, and on the page at its next refresh.
        gw.sims["pintu-samping"].stop()
        page.wait_for_selector(_device("pintu-samping", "offline"), timeout=15_000)
        expect(page.locator(_device("pintu-samping", "offline"))).to_have_text("Terputus")
        expect(page.locator(_device("pintu-utama", "online"))).to_be_visible()
        expect(page.locator('[data-alert="device_offline"]')).to_contain_text("pintu-samping terputus selama")
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=ARTIFACTS / "status-page.png", full_page=True)

        # English with the toggle, kept in the address so a reload stays in English.
        page.click("#lang-toggle")
        expect(page.locator("html")).to_have_attribute("lang", "en")
        expect(page.locator(_device("pintu-samping", "offline"))).to_have_text("Offline")
        expect(page.locator(_device("pintu-utama", "online"))).to_have_text("Online")
        expect(page.locator("h1")).to_have_text("Attendance gateway status")
        expect(page.locator('[data-alert="device_offline"]')).to_contain_text("pintu-samping offline for")
        expect(page.locator("#lang-toggle")).to_have_text("Bahasa Indonesia")
        assert "lang=en" in page.url
        page.reload()
        expect(page.locator(_device("pintu-samping", "offline"))).to_have_text("Offline")
        page.screenshot(path=ARTIFACTS / "status-page-en.png", full_page=True)
        page.close()
        assert not errors, f"the page logged errors: {errors}"
