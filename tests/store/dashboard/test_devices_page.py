"""The "Perangkat" page through the app: who may see it, and what a gateway's report becomes on it."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pyotp
from fastapi.testclient import TestClient
from sqlalchemy import Engine, update
from test_fleet import report_data
from test_web import ADMIN, HEAD, PASSWORD, client, secret_for, sign_in

from ekinerja.store import gateway_tokens
from ekinerja.store.accounts import Role, User
from ekinerja.store.dashboard.fleet_view import never_reported
from ekinerja.store.db import gateway_reports
from ekinerja.store.fleet import keep_report
from ekinerja.sync.contract import GatewayReport

from samples import GATEWAY

__all__ = ["client"]  # the fixture, shared with test_web

PERSONNEL = User("kepeg.bkd", "Staf Kepegawaian BKD", Role.PERSONNEL, None)


def signed_in_as(client: TestClient, engine: Engine, user: User) -> None:
    answer = sign_in(client, user.username, PASSWORD, pyotp.TOTP(secret_for(engine, user)).now())
    assert answer.status_code == 303, answer.text


def section(page: str, gateway: str) -> str:
    """The HTML of one gateway's section of the page."""
    found = re.search(rf'<section class="gateway[^"]*" data-gateway="{gateway}">(.*?)</section>', page, re.S)
    assert found, f"no section for {gateway}"
    return found.group(1)


def count(page: str, name: str) -> int:
    found = re.search(rf'data-count="{name}">(\d+)<', page)
    assert found, name
    return int(found.group(1))


def row(html: str, device: str) -> str:
    found = re.search(rf'<tr data-device="{device}"[^>]*>(.*?)</tr>', html, re.S)
    assert found, device
    return found.group(0)


def stale_gateway(engine: Engine) -> None:
    """opd-9, last heard from an hour ago: a terminal whose clock is 5 minutes off and whose log is 95 % full."""
    data = report_data("opd-9", pending=120)
    data["devices"] = [{"id": "lobi", "kind": "zk", "online": True, "clock_skew_s": 300.4, "records": 95_000,
                        "capacity": 100_000, "serial": "CKPJ2020", "firmware": "Ver 6.60"}]  # fmt: skip
    data["alerts"] = []
    keep_report(engine, GatewayReport.model_validate(data), datetime.now(UTC) - timedelta(hours=1))


def test_a_report_put_by_a_gateway_is_on_the_page(client: TestClient, engine: Engine) -> None:
    assert client.put("/v1/gateway-report", json=report_data("opd-1", pending=3), headers=GATEWAY).status_code == 204
    stale_gateway(engine)
    signed_in_as(client, engine, PERSONNEL)
    page = client.get("/perangkat")
    assert page.status_code == 200 and '<meta http-equiv="refresh" content="60">' in page.text
    assert [count(page.text, n) for n in ("reporting", "stale", "online", "offline", "alerts", "flagged")] == [
        1, 1, 2, 1, 1, 1]  # fmt: skip
    fresh, stale = section(page.text, "opd-1"), section(page.text, "opd-9")
    assert page.text.index('data-gateway="opd-9"') < page.text.index('data-gateway="opd-1"'), "stale ones first"
    assert 'data-flag="stale"' not in fresh and "TIDAK MELAPOR" not in fresh
    assert 'data-flag="stale"' in stale and "TIDAK MELAPOR" in stale and "1 jam lalu" in stale
    assert "3 punch menunggu" in fresh and "2026-01-05 07:58:00 WIB" in fresh  # the oldest, at the office's clock
    assert re.search(r'data-fact="rejected"[^>]*>1 / 0<', fresh)
    assert '<li data-alert="device_offline"><b>pintu</b>: pintu offline for 10 min</li>' in fresh
    pintu, kartu = row(fresh, "pintu"), row(fresh, "kartu")
    assert 'class="offline"' in pintu and "Luring" in pintu and "sejak 2026-01-05 07:50:00 WIB" in pintu
    assert "CKPJ2019" in pintu and "2026-01-05 07:58:00" in pintu and "10.0.0.5:4370: timed out" in pintu
    assert "-12 s" in pintu and 'data-flag="skew"' not in pintu  # 12 s off is within the limit
    assert "Daring" in kartu and "ACS ACR122U 00 00" in kartu and "Pembaca kartu (PC/SC)" in kartu
    lobi = row(stale, "lobi")
    assert "+300 s" in lobi and 'data-flag="skew"' in lobi, "a clock 5 minutes off is flagged"
    assert "95000 / 100000 (95 %)" in lobi and 'data-flag="log"' in lobi, "a log 95 % full is flagged"
    assert "CKPJ2020" in lobi and "Ver 6.60" in lobi


def test_the_page_in_english(client: TestClient, engine: Engine) -> None:
    stale_gateway(engine)
    signed_in_as(client, engine, ADMIN)
    page = client.get("/perangkat", params={"lang": "en"})
    assert page.status_code == 200
    assert "NOT REPORTING" in page.text and "1 h ago" in page.text and "log nearly full" in page.text


def test_no_gateway_yet_and_an_unreadable_report(client: TestClient, engine: Engine) -> None:
    signed_in_as(client, engine, ADMIN)
    empty = client.get("/perangkat")
    assert empty.status_code == 200 and "Belum ada gateway" in empty.text and count(empty.text, "reporting") == 0
    stale_gateway(engine)
    with engine.begin() as conn:  # as if kept by a store version whose report this one cannot read
        conn.execute(update(gateway_reports).values(report='{"contract_version": 99}'))
    page = client.get("/perangkat")
    assert page.status_code == 200 and "tidak dapat dibaca" in section(page.text, "opd-9")


def test_a_head_of_unit_may_not_see_the_fleet(client: TestClient, engine: Engine) -> None:
    assert client.get("/perangkat").status_code == 303, "signed out: to the sign-in page"
    signed_in_as(client, engine, HEAD)
    refused = client.get("/perangkat")
    assert refused.status_code == 403 and "tidak berhak" in refused.text
    assert 'href="/perangkat"' not in client.get("/hari-ini").text, "no link to a page they may not see"


def test_the_nav_links_both_pages_for_those_who_may_see_them(client: TestClient, engine: Engine) -> None:
    signed_in_as(client, engine, PERSONNEL)
    nav = client.get("/perangkat").text.split("<nav>")[1].split("</nav>")[0]
    assert '<a href="/perangkat" aria-current="page">Perangkat</a>' in nav and 'href="/karyawan"' in nav
    assert nav.index('href="/hari-ini"') < nav.index('href="/perangkat"') < nav.index('href="/karyawan"')


def test_registered_gateways_that_never_reported_are_listed(client: TestClient, engine: Engine) -> None:
    """opd-1 is in store.toml and opd-bappeda has a token made with `store gateway add`; neither reported yet."""
    gateway_tokens.add(engine, "opd-bappeda", "cli:test", datetime.now(UTC).replace(tzinfo=None))
    signed_in_as(client, engine, ADMIN)
    before = client.get("/perangkat").text
    assert re.findall(r'data-gateway-silent="([^"]+)"', before) == ["opd-1", "opd-bappeda"]
    assert client.put("/v1/gateway-report", json=report_data("opd-1", pending=0), headers=GATEWAY).status_code == 204
    after = client.get("/perangkat").text
    assert re.findall(r'data-gateway-silent="([^"]+)"', after) == ["opd-bappeda"] and section(after, "opd-1")
    assert never_reported({"b", "a"}, []) == ["a", "b"]
