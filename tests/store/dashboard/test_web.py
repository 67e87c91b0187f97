"""The dashboard's sign-in, sessions, CSRF, lockout, roles and language, through the real app (TestClient)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pyotp
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from ekinerja.store import accounts, audit
from ekinerja.store.accounts import Role, User
from ekinerja.store.app import create_app
from ekinerja.store.dashboard import i18n, signin
from ekinerja.store.db import users

from samples import ADMIN as WRITER
from samples import CONFIG, CORE, EMPLOYEES, csv_post

PASSWORD = "sandi-dasbor-kuat-1"
HEAD = User("kabag.umum", "Kepala Bagian Umum", Role.HEAD, "Bagian Umum")
ADMIN = User("admin.bkd", "Admin BKD", Role.ADMIN, None)


@pytest.fixture
def client(engine: Engine) -> Iterator[TestClient]:
    with TestClient(create_app(CONFIG, engine), follow_redirects=False) as client:
        assert csv_post(client, "/v1/employees", EMPLOYEES).status_code == 200
        yield client


def secret_for(engine: Engine, user: User) -> str:
    return accounts.add(engine, user, PASSWORD, "test", datetime.now(UTC).replace(tzinfo=None) - timedelta(minutes=5))


def login_form(client: TestClient, next_path: str = "/hari-ini") -> str:
    form = client.get("/masuk", params={"next": next_path})
    assert form.status_code == 200
    token = re.search(r'name="login_token" value="([^"]+)"', form.text)
    assert token
    return token.group(1)


def sign_in(client: TestClient, user: str, password: str, code: str, next_path: str = "/hari-ini") -> httpx.Response:
    token = login_form(client, next_path)
    data = {"username": user, "password": password, "code": code, "login_token": token, "next": next_path}
    return client.post("/masuk", data=data)


def test_a_page_needs_sign_in_and_comes_back_after_it(client: TestClient, engine: Engine) -> None:
    refused = client.get("/hari-ini", params={"unit": "Bagian Umum"})
    assert refused.status_code == 303 and refused.headers["location"] == "/masuk?next=/hari-ini%3Funit%3DBagian%2BUmum"
    secret = secret_for(engine, ADMIN)
    signed = sign_in(client, "admin.bkd", PASSWORD, pyotp.TOTP(secret).now(), "/hari-ini?unit=Bagian Umum")
    assert signed.status_code == 303 and signed.headers["location"] == "/hari-ini?unit=Bagian%20Umum"
    cookie = signed.headers["set-cookie"]
    assert "ekinerja_session=" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie
    page = client.get("/hari-ini", params={"unit": "Bagian Umum"})
    assert page.status_code == 200 and "Hari ini" in page.text and 'data-unit="Bagian Umum"' in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["cache-control"] == "no-store"


def test_the_login_form_needs_its_own_cookie(client: TestClient, engine: Engine) -> None:
    secret = secret_for(engine, ADMIN)
    login_form(client)
    data = {"username": "admin.bkd", "password": PASSWORD, "code": pyotp.TOTP(secret).now(), "login_token": "forged"}
    answer = client.post("/masuk", data=data)
    assert answer.status_code == 400 and "Formulir kedaluwarsa" in answer.text
    assert "ekinerja_session" not in answer.headers.get("set-cookie", "")


def test_sign_ins_beyond_those_being_checked_are_refused_at_once(client: TestClient, engine: Engine) -> None:
    """A flood of sign-ins cannot take the threads and memory the gateways' pushes need: beyond
    CHECKS_AT_ONCE, a sign-in is answered 429 without a password check, and counts for nothing."""
    secret = secret_for(engine, ADMIN)
    for _ in range(signin.CHECKS_AT_ONCE):  # as if that many checks were running
        assert signin.CHECKS.acquire(blocking=False)
    try:
        busy = sign_in(client, "admin.bkd", PASSWORD, pyotp.TOTP(secret).now())
    finally:
        for _ in range(signin.CHECKS_AT_ONCE):
            signin.CHECKS.release()
    assert busy.status_code == 429 and busy.headers["retry-after"] == "2" and "Coba lagi beberapa detik" in busy.text
    with engine.connect() as conn:
        assert conn.execute(select(users.c.failed_logins)).scalar_one() == 0
    assert sign_in(client, "admin.bkd", PASSWORD, pyotp.TOTP(secret).now()).status_code == 303


def test_wrong_logins_are_told_alike_then_locked(client: TestClient, engine: Engine) -> None:
    secret = secret_for(engine, ADMIN)
    for password in ("salah-satu-sandi", "salah-dua-sandi!", "salah-tiga-sandi", "salah-empat-sandi"):
        answer = sign_in(client, "admin.bkd", password, pyotp.TOTP(secret).now())
        assert answer.status_code == 401 and "Nama pengguna, kata sandi atau kode salah." in answer.text
    unknown = sign_in(client, "tidak.ada", PASSWORD, "123456")
    assert "Nama pengguna, kata sandi atau kode salah." in unknown.text
    locked = sign_in(client, "admin.bkd", "salah-lima-sandi", pyotp.TOTP(secret).now())
    assert "Akun terkunci" in locked.text and "WIB" in locked.text
    right = sign_in(client, "admin.bkd", PASSWORD, pyotp.TOTP(secret).now())
    assert right.status_code == 401 and "Akun terkunci" in right.text


def test_a_head_of_unit_sees_only_their_unit(client: TestClient, engine: Engine) -> None:
    secret = secret_for(engine, HEAD)
    assert sign_in(client, "kabag.umum", PASSWORD, pyotp.TOTP(secret).now()).status_code == 303
    own = client.get("/hari-ini")
    assert own.status_code == 200 and 'data-unit="Bagian Umum"' in own.text and "Bidang Aset" not in own.text
    other = client.get("/hari-ini", params={"unit": "Bidang Aset"})
    assert other.status_code == 403 and "tidak berhak" in other.text


def test_sign_out_needs_the_session_token_and_ends_the_session(client: TestClient, engine: Engine) -> None:
    secret = secret_for(engine, ADMIN)
    sign_in(client, "admin.bkd", PASSWORD, pyotp.TOTP(secret).now())
    page = client.get("/hari-ini")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert csrf
    assert client.post("/keluar", data={"csrf_token": "forged"}).status_code == 403
    assert client.get("/hari-ini").status_code == 200, "a forged sign-out changed nothing"
    assert client.post("/keluar", data={"csrf_token": csrf.group(1)}).status_code == 303
    assert client.get("/hari-ini").status_code == 303, "the session ended"


ELSEWHERE = [
    "//evil.example/x",
    "/\\evil.example",  # a browser reads the backslash as a slash: //evil.example
    "/\\/evil.example",
    "\\\\evil.example",
    "/\t/evil.example",  # a browser drops tabs and line breaks from a URL
    "/\n/evil.example",
    "/hari-ini\r\nSet-Cookie: a=b",
    "/hari-ini\x00",
    "/rekap\x7f",
    "https://evil.example/",
]


def test_only_local_paths_are_followed_after_sign_in(client: TestClient, engine: Engine) -> None:
    secret = secret_for(engine, ADMIN)
    for target in ELSEWHERE:
        form = client.get("/masuk", params={"next": target})
        assert form.status_code == 200 and 'name="next" value="/hari-ini"' in form.text, target
        answer = sign_in(client, "admin.bkd", PASSWORD, pyotp.TOTP(secret).now(), target)
        assert answer.status_code == 303 and answer.headers["location"] == "/hari-ini", target
        client.cookies.clear()
        secret = accounts.reset_totp(engine, "admin.bkd", "test", datetime.now(UTC).replace(tzinfo=None))  # new code


def test_english_on_request_and_remembered(client: TestClient) -> None:
    english = client.get("/masuk", params={"lang": "en"})
    assert "Sign in" in english.text and "lang=en" in english.headers["set-cookie"]
    assert "Sign in" in client.get("/masuk").text
    assert "Masuk" in client.get("/masuk", params={"lang": "id"}).text


def test_both_languages_have_every_message() -> None:
    assert set(i18n.messages("id")) == set(i18n.messages("en"))


@pytest.mark.every_backend
def test_control_characters_in_a_unit_are_a_400_page(client: TestClient, engine: Engine) -> None:
    """On PostgreSQL a NUL reaching the database was a 500: every page's unit is refused before."""
    secret = secret_for(engine, ADMIN)
    assert sign_in(client, "admin.bkd", PASSWORD, pyotp.TOTP(secret).now()).status_code == 303
    for path in ("/hari-ini", "/rekap", "/rekap/cetak", "/rekap.csv", "/disiplin", "/karyawan"):
        for unit in ("Bagian\x00Umum", "Bagian\nUmum", "\x1b[31m"):
            answer = client.get(path, params={"unit": unit})
            assert answer.status_code == 400 and answer.headers["content-type"].startswith("text/html"), (path, unit)
            assert "unit: berisi karakter kendali" in answer.text and unit not in answer.text, (path, unit)


MALFORMED_NAMES = ["admin\x00.bkd", "admin.bkd\x00", "\x00", "admin\tbkd", "Admin.BKD", "admin bkd"]


@pytest.mark.every_backend
def test_a_malformed_user_name_is_an_unknown_user(
    client: TestClient, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Same status, same words and the same decoy hash as a name no one has, and no 500 on PostgreSQL."""
    secret_for(engine, ADMIN)
    checks: list[str] = []
    checking = accounts._password_ok
    monkeypatch.setattr(
        accounts, "_password_ok", lambda stored, password: checks.append(stored) or checking(stored, password)
    )
    unknown = sign_in(client, "tidak.ada", PASSWORD, "123456")
    assert unknown.status_code == 401 and "Nama pengguna, kata sandi atau kode salah." in unknown.text
    for name in MALFORMED_NAMES:
        answer = sign_in(client, name, PASSWORD, "123456")
        assert answer.status_code == unknown.status_code and "Nama pengguna, kata sandi atau kode salah." in answer.text
        assert "ekinerja_session" not in answer.headers.get("set-cookie", ""), name
    assert checks == [accounts._DECOY] * (1 + len(MALFORMED_NAMES)), "the decoy hash ran for every one"
    with engine.connect() as conn:
        refused = [r for r in audit.read(conn, 0, 1000) if r["action"] == "login.refused"]
    assert [r["target"] for r in refused] == ["(unknown user)"] * (1 + len(MALFORMED_NAMES))


def test_the_language_link_keeps_the_page_and_its_query(client: TestClient, engine: Engine) -> None:
    secret = secret_for(engine, ADMIN)
    login = client.get("/masuk", params={"next": "/rekap?month=2026-01"})
    assert 'href="/masuk?next=%2Frekap%3Fmonth%3D2026-01&amp;lang=en"' in login.text
    sign_in(client, "admin.bkd", PASSWORD, pyotp.TOTP(secret).now())
    recap = client.get("/rekap", params={"month": "2026-01", "unit": "Bagian Umum", "lang": "id"})
    assert 'class="lang" href="/rekap?month=2026-01&amp;unit=Bagian+Umum&amp;lang=en"' in recap.text
    english = client.get("/rekap", params={"month": "2026-01", "unit": "Bagian Umum", "lang": "en"})
    assert english.status_code == 200 and "January 2026" in english.text
    assert 'class="lang" href="/rekap?month=2026-01&amp;unit=Bagian+Umum&amp;lang=id"' in english.text
    token = re.search(r'name="csrf_token" value="([^"]+)"', recap.text)
    assert token
    mistake = client.post("/karyawan/cuti", params={"unit": "Bagian Umum"}, data={"csrf_token": token.group(1)})
    assert mistake.status_code == 400, "a form sent empty is shown again"
    link = re.search(r'class="lang" href="([^"]+)"', mistake.text)
    assert link and link.group(1) == "/karyawan?unit=Bagian+Umum&amp;lang=id", "the form's GET page, not its POST path"
    assert client.get(link.group(1).replace("&amp;", "&")).status_code == 200
    failed = client.post("/keluar", data={"csrf_token": "forged"})
    assert failed.status_code == 403 and 'class="lang" href="/?lang=en"' in failed.text, "/keluar has no page"


def test_a_form_sent_after_the_session_ended_comes_back_to_its_page(client: TestClient, engine: Engine) -> None:
    sent = client.post("/karyawan/cuti", params={"unit": "Bagian Umum"}, data={"nip": "1", "csrf_token": "old"})
    location = sent.headers["location"]
    assert sent.status_code == 303 and location == "/masuk?next=/karyawan%3Funit%3DBagian%2BUmum&resend=1"
    form = client.get(location)
    assert (
        form.status_code == 200 and 'data-note="resend"' in form.text and "kirim formulir itu sekali lagi" in form.text
    )
    assert 'name="next" value="/karyawan?unit=Bagian+Umum"' in form.text
    secret = secret_for(engine, ADMIN)
    signed = sign_in(client, "admin.bkd", PASSWORD, pyotp.TOTP(secret).now(), "/karyawan?unit=Bagian Umum")
    assert signed.status_code == 303 and client.get(signed.headers["location"]).status_code == 200
    assert "resend" not in client.get("/masuk", params={"next": "/hari-ini"}).text, "only after a lost form"
    client.cookies.clear()
    out = client.post("/keluar", data={"csrf_token": "old"})
    assert out.headers["location"] == "/masuk?next=/&resend=1", "a POST-only path with no page leads home"


INVALID = [  # (method, path, what is sent, the field named, what must not be echoed)
    ("post", "/masuk", {"username": "admin.bkd", "password": PASSWORD, "code": "", "login_token": "t"}, "code", None),
    ("post", "/masuk", {"username": "admin.bkd", "code": "123456", "login_token": "t"}, "password", None),
    ("post", "/masuk", {"username": "admin.bkd", "password": "rahasia-" * 26, "code": "1"}, "password", "rahasia-"),
    ("post", "/masuk", {"username": "a", "password": "p", "code": "1", "next": "/" + "n" * 500}, "next", "nnnnn"),
    ("get", "/masuk", {"next": "/" + "q" * 500}, "next", "qqqqq"),
    ("get", "/hari-ini", {"unit": "U" * 201}, "unit", "UUUUU"),
    ("get", "/rekap", {"month": "9" * 21}, "month", "99999"),
    ("post", "/karyawan/cuti", {"reason": "r" * 2001}, "reason", "rrrrr"),
]


@pytest.mark.parametrize(("method", "path", "sent", "field", "secret"), INVALID)
def test_a_request_fastapi_refuses_is_a_400_page_that_names_the_field(
    client: TestClient, method: str, path: str, sent: dict[str, str], field: str, secret: str | None
) -> None:
    answer = client.get(path, params=sent) if method == "get" else client.post(path, data=sent)
    assert answer.status_code == 400 and answer.headers["content-type"].startswith("text/html"), answer.text[:300]
    assert f"{field}: " in answer.text and 'role="alert"' in answer.text
    assert secret is None or secret not in answer.text, "what was sent is never echoed"
    assert "default-src 'self'" in answer.headers["content-security-policy"]


def test_the_api_still_answers_422_in_json(client: TestClient) -> None:
    feed = client.get("/v1/feed", params={"limit": 0}, headers=CORE)
    assert feed.status_code == 422 and feed.headers["content-type"] == "application/json"
    assert feed.json()["detail"][0]["loc"] == ["query", "limit"] and feed.json()["detail"][0]["input"] == "0"
    unit = client.get("/v1/employees", params={"unit": "a\x00b"}, headers=CORE)
    assert unit.status_code == 422 and unit.json()["detail"][0]["loc"] == ["query", "unit"]
    manual = client.post("/v1/manual-attendance", json={"nip": "1"}, headers=WRITER)
    assert manual.status_code == 422 and {"body", "nip"} <= set(manual.json()["detail"][0]["loc"])
    punches = client.post("/v1/punches", json={"events": []}, headers={"Authorization": "Bearer gateway-token-opd-1"})
    assert punches.status_code == 422 and "missing" in {e["type"] for e in punches.json()["detail"]}
