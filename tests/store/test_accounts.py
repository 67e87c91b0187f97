"""Dashboard accounts: password and TOTP, codes good once, lockout, roles; on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pyotp
import pytest
from sqlalchemy import Engine, select

from ekinerja.store import accounts
from ekinerja.store.accounts import AccountError, Role, User
from ekinerja.store.db import audit_log, users

NOW = datetime(2026, 11, 30, 1, 0, 0)
PASSWORD = "kata-sandi-kuat-1"
ADMIN = User("admin.bkd", "Admin BKD", Role.ADMIN, None)


def code(secret: str, at: datetime) -> str:
    return pyotp.TOTP(secret).at(at.replace(tzinfo=UTC))


def actions(engine: Engine) -> list[tuple[str, str]]:
    with engine.connect() as conn:
        return [(r.action, r.target) for r in conn.execute(select(audit_log).order_by(audit_log.c.seq))]


def test_password_and_code_sign_in_and_a_code_is_good_once(engine: Engine) -> None:
    secret = accounts.add(engine, ADMIN, PASSWORD, "cli:root", NOW)
    signed = accounts.authenticate(engine, "admin.bkd", PASSWORD, code(secret, NOW), NOW)
    assert signed.user == ADMIN
    replay = accounts.authenticate(engine, "admin.bkd", PASSWORD, code(secret, NOW), NOW + timedelta(seconds=5))
    assert replay.user is None, "the same code twice"
    later = NOW + timedelta(seconds=60)
    assert accounts.authenticate(engine, "admin.bkd", PASSWORD, code(secret, later), later).user == ADMIN
    drift = NOW + timedelta(seconds=120)
    neighbour = code(secret, drift - timedelta(seconds=30))  # a phone 30 s slow still works
    assert accounts.authenticate(engine, "admin.bkd", PASSWORD, neighbour, drift).user == ADMIN
    assert accounts.authenticate(engine, "admin.bkd", "salah-sandi-123", code(secret, NOW + timedelta(minutes=9)),
                                 NOW + timedelta(minutes=9)).user is None  # fmt: skip
    with engine.connect() as conn:
        stored = conn.execute(select(users.c.password_hash)).scalar_one()
    assert stored.startswith("$argon2id$") and PASSWORD not in stored


def test_five_failures_lock_the_account_for_fifteen_minutes(engine: Engine) -> None:
    secret = accounts.add(engine, ADMIN, PASSWORD, "cli:root", NOW)
    for n in range(accounts.MAX_FAILURES):
        result = accounts.authenticate(engine, "admin.bkd", f"tebakan-{n}-xyz", "000000", NOW)
        assert result.user is None
    assert result.locked_until == NOW + timedelta(minutes=accounts.LOCK_MINUTES)
    right = NOW + timedelta(minutes=5)
    locked = accounts.authenticate(engine, "admin.bkd", PASSWORD, code(secret, right), right)
    assert locked.user is None and locked.locked_until == result.locked_until, "locked even with the right login"
    after = NOW + timedelta(minutes=accounts.LOCK_MINUTES, seconds=1)
    assert accounts.authenticate(engine, "admin.bkd", PASSWORD, code(secret, after), after).user == ADMIN
    assert [a for a, _t in actions(engine)] == [
        "user.add", *["login.refused"] * 4, "login.lockout", "login.locked", "login.ok",
    ]  # fmt: skip


def test_passwd_unlocks_and_reset_totp_ends_the_old_codes(engine: Engine) -> None:
    old = accounts.add(engine, ADMIN, PASSWORD, "cli:root", NOW)
    for _ in range(accounts.MAX_FAILURES):
        accounts.authenticate(engine, "admin.bkd", "bukan-sandinya-1", "000000", NOW)
    accounts.set_password(engine, "admin.bkd", "sandi-baru-yang-kuat", "cli:root", NOW)
    t1 = NOW + timedelta(seconds=30)
    assert accounts.authenticate(engine, "admin.bkd", "sandi-baru-yang-kuat", code(old, t1), t1).user == ADMIN
    new = accounts.reset_totp(engine, "admin.bkd", "cli:root", NOW)
    t2 = NOW + timedelta(seconds=90)
    assert accounts.authenticate(engine, "admin.bkd", "sandi-baru-yang-kuat", code(old, t2), t2).user is None
    assert accounts.authenticate(engine, "admin.bkd", "sandi-baru-yang-kuat", code(new, t2), t2).user == ADMIN


def test_an_unknown_user_is_refused_like_a_wrong_password_and_not_named(engine: Engine) -> None:
    accounts.add(engine, ADMIN, PASSWORD, "cli:root", NOW)
    typed_password_as_name = "kata-sandi-rahasia-saya"
    assert accounts.authenticate(engine, typed_password_as_name, "x", "123456", NOW).user is None
    assert actions(engine)[-1] == ("login.refused", "(unknown user)")


@pytest.mark.parametrize(
    ("username", "role", "unit", "problem"),
    [
        ("Admin", Role.ADMIN, None, "a user name is"),
        ("x", Role.ADMIN, None, "a user name is"),
        ("kabag.umum", Role.HEAD, None, "needs --unit"),
        ("sdm", Role.PERSONNEL, "Bagian Umum", "--unit is for a head of unit"),
    ],
)
def test_accounts_that_cannot_work_are_refused(
    engine: Engine, username: str, role: Role, unit: str | None, problem: str
) -> None:
    with pytest.raises(AccountError, match=problem):
        accounts.add(engine, User(username, "Nama", role, unit), PASSWORD, "cli:root", NOW)
    with pytest.raises(AccountError, match="shorter than 10"):
        accounts.add(engine, ADMIN, "pendek", "cli:root", NOW)
    assert accounts.listing(engine) == []


HEAD = User("kabag.umum", "Kabag Umum", Role.HEAD, "Bagian Umum")
PERSONNEL = User("sdm", "Subbag Kepegawaian", Role.PERSONNEL, None)


@pytest.mark.parametrize(
    ("user", "unit", "sees"),
    [
        (ADMIN, "Bagian Umum", True), (ADMIN, None, True),
        (PERSONNEL, "Bidang Aset", True), (PERSONNEL, None, True),
        (HEAD, "Bagian Umum", True), (HEAD, "Bidang Aset", False), (HEAD, None, False),
    ],
)  # fmt: skip
def test_who_sees_which_unit(user: User, unit: str | None, sees: bool) -> None:
    assert user.sees(unit) is sees


@pytest.mark.parametrize(("user", "edits"), [(ADMIN, True), (PERSONNEL, True), (HEAD, False)])
def test_who_edits(user: User, edits: bool) -> None:
    assert user.edits is edits


def test_logins_at_the_same_time_cannot_pass_the_lockout_or_share_a_code(engine: Engine) -> None:
    """Twelve wrong logins at once lock the account (each is counted before its slow check), and one code
    sent four times at once signs in once."""
    secret = accounts.add(engine, ADMIN, PASSWORD, "cli:root", NOW)
    with ThreadPoolExecutor(12) as pool:
        tried = list(pool.map(lambda n: accounts.authenticate(engine, "admin.bkd", f"tebakan-{n}-xyz", "000000", NOW),
                              range(12)))  # fmt: skip
    assert all(r.user is None for r in tried)
    with engine.connect() as conn:
        locked_until = conn.execute(select(users.c.locked_until)).scalar_one()
    assert locked_until == NOW + timedelta(minutes=accounts.LOCK_MINUTES), "locked however the attempts interleaved"
    later = NOW + timedelta(minutes=accounts.LOCK_MINUTES, seconds=1)
    same = code(secret, later)
    with ThreadPoolExecutor(4) as pool:
        signed = list(pool.map(lambda _n: accounts.authenticate(engine, "admin.bkd", PASSWORD, same, later), range(4)))
    assert sum(r.user == ADMIN for r in signed) == 1, "a code is good once, even sent four times at once"
