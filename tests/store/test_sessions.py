"""Dashboard sessions: idle expiry, the 24-hour cap, extension while used, sign-out, an inactive user, and a
password or second factor reset ending every session of the user; on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Engine, update

from ekinerja.store import accounts, sessions
from ekinerja.store.accounts import Role, User
from ekinerja.store.db import users

NOW = datetime(2026, 11, 30, 1, 0, 0)
ANI = User("ani.kepeg", "Ani Lestari", Role.PERSONNEL, None)


def test_a_session_lives_while_used_for_a_day_at_most(engine: Engine) -> None:
    accounts.add(engine, ANI, "kata-sandi-kuat-1", "cli:root", NOW)
    cookie, started = sessions.start(engine, ANI, NOW)
    assert sessions.find(engine, cookie, NOW) == started and len(started.csrf_token) >= 40
    idle = timedelta(hours=sessions.IDLE_HOURS)
    assert sessions.find(engine, cookie, NOW + idle - timedelta(minutes=1)) == started, "used within the idle time"
    at = NOW + idle - timedelta(minutes=1)
    for _ in range(3):  # used every 7 h 59 min: extended each time, until the cap
        at += idle - timedelta(minutes=1)
        found = sessions.find(engine, cookie, at)
        if at < NOW + timedelta(hours=sessions.MAX_HOURS):
            assert found == started, at
        else:
            assert found is None, "never longer than MAX_HOURS from sign-in, however used"
    assert sessions.find(engine, cookie, NOW + timedelta(hours=sessions.MAX_HOURS)) is None
    assert sessions.find(engine, "not-a-session", NOW) is None and sessions.find(engine, None, NOW) is None


def test_an_idle_session_ends_and_sign_out_ends_it_at_once(engine: Engine) -> None:
    accounts.add(engine, ANI, "kata-sandi-kuat-1", "cli:root", NOW)
    cookie, _ = sessions.start(engine, ANI, NOW)
    assert sessions.find(engine, cookie, NOW + timedelta(hours=sessions.IDLE_HOURS, seconds=1)) is None
    other, _ = sessions.start(engine, ANI, NOW)
    sessions.end(engine, other)
    assert sessions.find(engine, other, NOW) is None


def test_an_inactive_user_or_a_reset_ends_every_session(engine: Engine) -> None:
    accounts.add(engine, ANI, "kata-sandi-kuat-1", "cli:root", NOW)
    first, _ = sessions.start(engine, ANI, NOW)
    with engine.begin() as conn:
        conn.execute(update(users).values(active=False))
    assert sessions.find(engine, first, NOW) is None
    with engine.begin() as conn:
        conn.execute(update(users).values(active=True))
    assert sessions.find(engine, first, NOW) is not None
    accounts.set_password(engine, ANI.username, "kata-sandi-baru-2", "cli:root", NOW)
    assert sessions.find(engine, first, NOW) is None, "a new password signs out everywhere"
    second, _ = sessions.start(engine, ANI, NOW)
    accounts.reset_totp(engine, ANI.username, "cli:root", NOW)
    assert sessions.find(engine, second, NOW) is None, "a new second factor signs out everywhere"
