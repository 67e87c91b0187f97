"""The dashboard's user accounts: a slow password hash, a TOTP second factor, lockout, roles.

Passwords are kept as argon2id hashes (argon2-cffi's defaults); the second factor is a TOTP code
from an authenticator app (pyotp), each code good once. After ``MAX_FAILURES`` wrong logins in a
row an account is locked for ``LOCK_MINUTES``; the answer never says which of the user name,
password or code was wrong. Every change and every refused or locked login is in the audit log.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Connection, Engine, delete, or_, select, update

from ekinerja.store import audit
from ekinerja.store.db import sessions, users

MAX_FAILURES = 5
LOCK_MINUTES = 15
MIN_PASSWORD_LENGTH = 10
ISSUER = "e-Kinerja absensi"
USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")

_hasher = PasswordHasher()
# Verified when the user name is unknown, so a wrong name costs as long as a wrong password.
_DECOY = _hasher.hash("decoy password, never anyone's")


class Role(StrEnum):
    """What a user may do on the dashboard."""

    ADMIN = "admin"  # everything, every unit
    PERSONNEL = "personnel"  # registry, leave, manual attendance; every unit
    HEAD = "head"  # read only, own unit


@dataclass(frozen=True)
class User:
    """A signed-in user, as the pages need them."""

    username: str
    full_name: str
    role: Role
    unit: str | None

    def sees(self, unit: str | None) -> bool:
        """Whether this user may look at ``unit`` (None: every unit at once)."""
        return self.role is not Role.HEAD or (unit is not None and unit == self.unit)

    @property
    def edits(self) -> bool:
        """Whether this user may change the registry, leave and manual attendance."""
        return self.role in (Role.ADMIN, Role.PERSONNEL)


class AccountError(ValueError):
    """A user command that cannot be done as asked (the message says why)."""


@dataclass(frozen=True)
class LoginResult:
    """A signed-in user, or why not: ``refused`` (say nothing more) or ``locked`` until when."""

    user: User | None = None
    locked_until: datetime | None = None


def check_new_account(username: str, role: Role, unit: str | None) -> None:
    """Refuse a user name or a role and unit that cannot work."""
    if not USERNAME.match(username):
        raise AccountError(
            f"{username!r}: a user name is 2-64 of a-z, 0-9, '.', '_', '-', starting with a letter or digit"
        )
    if role is Role.HEAD and not unit:
        raise AccountError("a head of unit needs --unit, the unit as the registry names it")
    if role is not Role.HEAD and unit:
        raise AccountError(f"--unit is for a head of unit; a {role.value} user sees every unit")


def check_password(password: str) -> None:
    """Refuse a password too short to stand a guess."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(f"the password is shorter than {MIN_PASSWORD_LENGTH} characters")


def provisioning_uri(username: str, secret: str) -> str:
    """The otpauth:// URI an authenticator app reads (as a QR code) to make this user's codes."""
    return pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name=ISSUER)


def add(engine: Engine, user: User, password: str, by: str, now: datetime) -> str:
    """Create ``user``; returns the new TOTP secret to enrol in an authenticator app."""
    check_new_account(user.username, user.role, user.unit)
    check_password(password)
    secret = pyotp.random_base32()
    with engine.begin() as conn:
        if _row(conn, user.username) is not None:
            raise AccountError(f"user {user.username!r} exists already: use passwd or reset-totp")
        conn.execute(
            users.insert().values(
                username=user.username, full_name=user.full_name, role=user.role.value, unit=user.unit,
                password_hash=_hasher.hash(password), totp_secret=secret, created_at=now, updated_at=now,
            )
        )  # fmt: skip
        detail = {"role": user.role.value, "unit": user.unit, "full_name": user.full_name}
        audit.record(conn, by, now, [audit.Change("user.add", user.username, detail)])
    return secret


def set_password(engine: Engine, username: str, password: str, by: str, now: datetime) -> None:
    """Replace a user's password; also unlocks the account."""
    check_password(password)
    _change(engine, username, by, now, "user.passwd", password_hash=_hasher.hash(password))


def reset_totp(engine: Engine, username: str, by: str, now: datetime) -> str:
    """A new TOTP secret for a user who lost their authenticator; the old codes stop working."""
    secret = pyotp.random_base32()
    _change(engine, username, by, now, "user.reset_totp", totp_secret=secret, totp_last_step=None)
    return secret


def set_active(engine: Engine, username: str, active: bool, by: str, now: datetime) -> None:
    """Let a user sign in again, or stop them: a disabled user's sessions end at once (the record stays, for
    the audit log's sake)."""
    _change(engine, username, by, now, "user.enable" if active else "user.disable", active=active)


def unlock(engine: Engine, username: str, by: str, now: datetime) -> None:
    """Lift a lockout before it ends by itself."""
    _change(engine, username, by, now, "user.unlock")


def _change(engine: Engine, username: str, by: str, now: datetime, action: str, **values: Any) -> None:
    with engine.begin() as conn:
        if _row(conn, username) is None:
            raise AccountError(f"no user {username!r}: see `ekinerja store user list`")
        conn.execute(
            update(users)
            .where(users.c.username == username)
            .values(failed_logins=0, locked_until=None, updated_at=now, **values)
        )
        if action != "user.unlock":  # a new password or second factor: sessions made with the old end
            conn.execute(delete(sessions).where(sessions.c.username == username))
        audit.record(conn, by, now, [audit.Change(action, username, {})])


def _row(conn: Connection, username: str) -> Any:
    return conn.execute(select(users).where(users.c.username == username)).first()


def listing(engine: Engine) -> list[tuple[User, datetime | None, bool]]:
    """Every user, with the end of their lockout if locked, and whether they may sign in at all."""
    with engine.connect() as conn:
        rows = conn.execute(select(users).order_by(users.c.username)).all()
    return [(_user(row), row.locked_until, bool(row.active)) for row in rows]


def _user(row: Any) -> User:
    return User(row.username, row.full_name, Role(row.role), row.unit)


def authenticate(engine: Engine, username: str, password: str, code: str, now: datetime) -> LoginResult:
    """Check a login (password and TOTP code) and count it; a success resets the count.

    The attempt is counted before the slow check, in its own short transaction, and a code is spent
    by a conditional update: logins tried at the same time (or one code sent twice) cannot slip past
    the lockout or reuse a code, on any backend. No transaction is held during the argon2 check.
    """
    attempt = _count_attempt(engine, username, now)
    if attempt.user is None:
        _password_ok(_DECOY, password)  # a wrong name costs as long as a wrong password
        return LoginResult(locked_until=attempt.locked_until)
    if attempt.locked_until is not None:
        return LoginResult(locked_until=attempt.locked_until)
    step = _code_step(attempt.secret, code, now)
    if _password_ok(attempt.hash, password) and step is not None and _spend(engine, username, step, now):
        return LoginResult(user=attempt.user)
    return _refuse(engine, username, attempt.count, now)


@dataclass(frozen=True)
class _Attempt:
    """A login attempt once counted: whose, their n-th in a row, or why it stops here."""

    user: User | None = None
    count: int = 0
    hash: str = ""
    secret: str = ""
    locked_until: datetime | None = None


def _count_attempt(engine: Engine, username: str, now: datetime) -> _Attempt:
    with engine.begin() as conn:
        row = conn.execute(select(users).where(users.c.username == username)).first()
        if row is None or not row.active:
            # Not the name tried: people type their password into the name field.
            audit.record(conn, "login", now, [audit.Change("login.refused", "(unknown user)", {})])
            return _Attempt()
        if row.locked_until is not None and row.locked_until > now:
            audit.record(conn, username, now, [audit.Change("login.locked", username, {})])
            return _Attempt(_user(row), locked_until=row.locked_until)
        where = users.c.username == username
        conn.execute(update(users).where(where).values(failed_logins=users.c.failed_logins + 1))
        count = int(conn.execute(select(users.c.failed_logins).where(where)).scalar_one())
        if count > MAX_FAILURES:  # attempts in flight beyond the allowed: locked before any check
            locked = now + timedelta(minutes=LOCK_MINUTES)
            conn.execute(update(users).where(where).values(failed_logins=0, locked_until=locked))
            audit.record(conn, username, now, [audit.Change("login.lockout", username, {"failures": count})])
            return _Attempt(_user(row), count, locked_until=locked)
        return _Attempt(_user(row), count, row.password_hash, row.totp_secret)


def _spend(engine: Engine, username: str, step: int, now: datetime) -> bool:
    """Mark the code's step used and reset the count, unless that step or a later one was used already."""
    fresh = or_(users.c.totp_last_step.is_(None), users.c.totp_last_step < step)
    with engine.begin() as conn:
        spent = conn.execute(
            update(users)
            .where(users.c.username == username, fresh)
            .values(failed_logins=0, locked_until=None, totp_last_step=step)
        )
        if spent.rowcount != 1:
            return False
        audit.record(conn, username, now, [audit.Change("login.ok", username, {})])
    return True


def _refuse(engine: Engine, username: str, count: int, now: datetime) -> LoginResult:
    """A wrong login, already counted: locked once it is the MAX_FAILURES-th in a row."""
    locked = now + timedelta(minutes=LOCK_MINUTES) if count >= MAX_FAILURES else None
    with engine.begin() as conn:
        if locked is not None:
            conn.execute(update(users).where(users.c.username == username).values(failed_logins=0, locked_until=locked))
        action = "login.lockout" if locked else "login.refused"
        audit.record(conn, username, now, [audit.Change(action, username, {"failures": count})])
    return LoginResult(locked_until=locked)


def _password_ok(stored: str, password: str) -> bool:
    try:
        return bool(_hasher.verify(stored, password))
    except (VerificationError, InvalidHashError):
        return False


def _code_step(secret: str, code: str, now: datetime) -> int | None:
    """The 30-second step ``code`` belongs to (this one or either neighbour, for clock drift), or None."""
    code = code.strip().replace(" ", "")
    if not (len(code) == 6 and code.isdigit()):
        return None
    totp = pyotp.TOTP(secret)
    for offset in (0, -1, 1):
        moment = (now + timedelta(seconds=30 * offset)).replace(tzinfo=UTC)  # ``now`` is naive UTC
        if totp.verify(code, for_time=moment, valid_window=0):
            return int(moment.timestamp()) // 30
    return None
