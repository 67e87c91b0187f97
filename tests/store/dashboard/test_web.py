"""The dashboard's sign-in, sessions, CSRF, lockout, roles and language, through the real app (TestClient)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pyotp
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from ekinerja.store import accounts
from ekinerja.store.accounts import Role, User
from ekinerja.store.app import create_app
from ekinerja.store.dashboard import i18n

from samples import CONFIG, EMPLOYEES, csv_post

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


def test_only_local_paths_are_followed_after_sign_in(client: TestClient, engine: Engine) -> None:
    secret = secret_for(engine, ADMIN)
    answer = sign_in(client, "admin.bkd", PASSWORD, pyotp.TOTP(secret).now(), "//evil.example/x")
    assert answer.headers["location"] == "/hari-ini"


def test_english_on_request_and_remembered(client: TestClient) -> None:
    english = client.get("/masuk", params={"lang": "en"})
    assert "Sign in" in english.text and "lang=en" in english.headers["set-cookie"]
    assert "Sign in" in client.get("/masuk").text
    assert "Masuk" in client.get("/masuk", params={"lang": "id"}).text


def test_both_languages_have_every_message() -> None:
    assert set(i18n.messages("id")) == set(i18n.messages("en"))
