"""``ekinerja store user add|passwd|reset-totp|unlock|list``: the dashboard's accounts, from a shell.

A password is typed twice at a hidden prompt, or read from the first line of stdin with
``--password-stdin`` (for scripts). A new second factor is shown once, as a QR code for an
authenticator app and as its secret and otpauth:// URI; the store keeps it to check codes.
"""

from __future__ import annotations

import argparse
import getpass
import io
import sys
from pathlib import Path
from typing import Any

import segno

from ekinerja.store import accounts
from ekinerja.store.accounts import AccountError, Role, User
from ekinerja.store.attendance import Office
from ekinerja.store.cli_attendance import BadRequest, operator, utc_now, with_store
from ekinerja.store.registry import list_employees


def register(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``store user ...`` under ``store``."""
    user = actions.add_parser(
        "user", help="the dashboard's accounts: add, passwd, reset-totp, unlock, disable, enable, list"
    )
    verbs = user.add_subparsers(dest="user_command", required=True, metavar="ACTION")
    for name, help_text, func in (
        ("add", "add a user and show their second factor once", _add),
        ("passwd", "set a user's password (also lifts a lockout)", _passwd),
        ("reset-totp", "a new second factor for a user who lost theirs", _reset_totp),
        ("unlock", "lift a lockout before it ends by itself", _unlock),
        ("disable", "stop a user signing in (their sessions end at once); the account is kept", _disable),
        ("enable", "let a disabled user sign in again", _enable),
        ("list", "every user, their role and unit, and any lockout", _list),
    ):
        verb = verbs.add_parser(name, help=help_text)
        verb.add_argument("--config", type=Path, required=True, help="store.toml")
        if name != "list":
            verb.add_argument("username", help="the user name they sign in with, e.g. kabag.umum")
            verb.add_argument("--by", default=None, help="who does it, for the audit log (default: the login name)")
        if name in ("add", "passwd"):
            verb.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
        verb.set_defaults(func=lambda a, f=func: with_store(a, f))
    add = verbs.choices["add"]
    add.add_argument("--name", required=True, help="their full name, as the dashboard greets them")
    add.add_argument("--role", required=True, choices=[r.value for r in Role], help="admin, personnel or head")
    add.add_argument("--unit", default=None, help="for a head of unit: the unit, as the registry names it")


def _password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass(f"password for {args.username}: ")
    if getpass.getpass("again: ") != first:
        raise BadRequest("the two passwords differ; nothing was changed")
    return first


def _show_second_factor(username: str, secret: str) -> None:
    uri = accounts.provisioning_uri(username, secret)
    qr = io.StringIO()
    segno.make(uri, error="m").terminal(out=qr, compact=True)
    print(f"Second factor of {username}: scan this with an authenticator app (shown only now).")
    print(qr.getvalue())
    print(f"or enter the key by hand: {secret}")
    print(f"otpauth URI: {uri}")


def _guarded(action: Any) -> Any:
    try:
        return action()
    except AccountError as exc:
        raise BadRequest(str(exc)) from None


def _add(args: argparse.Namespace, engine: Any, _office: Office) -> int:
    user = User(args.username, args.name, Role(args.role), args.unit)
    _guarded(lambda: accounts.check_new_account(user.username, user.role, user.unit))
    if user.unit is not None:
        _check_unit(engine, user.unit)
    password = _password(args)
    secret = _guarded(lambda: accounts.add(engine, user, password, operator(args), utc_now()))
    print(f"user {user.username} added as {user.role.value}" + (f" of {user.unit}" if user.unit else ""))
    _show_second_factor(user.username, secret)
    return 0


def _check_unit(engine: Any, unit: str) -> None:
    """Refuse a head's unit the registry does not name (a typo would let them see nobody, silently).

    An empty registry cannot tell: a new store may add its users before importing its employees,
    so the unit is taken with a warning.
    """
    units = sorted({e.unit for e in list_employees(engine)})
    if not units:
        print(f"warning: the registry has no employees yet, so unit {unit!r} is not checked: write it exactly "
              "as the employee import will", file=sys.stderr)  # fmt: skip
    elif unit not in units:
        raise BadRequest(f"unit {unit!r} is not in the registry (its units: {', '.join(units)}); nothing was changed")


def _passwd(args: argparse.Namespace, engine: Any, _office: Office) -> int:
    password = _password(args)
    _guarded(lambda: accounts.set_password(engine, args.username, password, operator(args), utc_now()))
    print(f"password of {args.username} set")
    return 0


def _reset_totp(args: argparse.Namespace, engine: Any, _office: Office) -> int:
    secret = _guarded(lambda: accounts.reset_totp(engine, args.username, operator(args), utc_now()))
    _show_second_factor(args.username, secret)
    return 0


def _unlock(args: argparse.Namespace, engine: Any, _office: Office) -> int:
    _guarded(lambda: accounts.unlock(engine, args.username, operator(args), utc_now()))
    print(f"{args.username} may sign in again")
    return 0


def _disable(args: argparse.Namespace, engine: Any, _office: Office) -> int:
    _guarded(lambda: accounts.set_active(engine, args.username, False, operator(args), utc_now()))
    print(f"{args.username} may no longer sign in; their sessions have ended")
    return 0


def _enable(args: argparse.Namespace, engine: Any, _office: Office) -> int:
    _guarded(lambda: accounts.set_active(engine, args.username, True, operator(args), utc_now()))
    print(f"{args.username} may sign in again")
    return 0


def _list(_args: argparse.Namespace, engine: Any, _office: Office) -> int:
    now = utc_now()
    for user, locked_until, active in accounts.listing(engine):
        lock = f"\tlocked until {locked_until:%Y-%m-%d %H:%M} UTC" if locked_until and locked_until > now else ""
        off = "" if active else "\tdisabled"
        print(f"{user.username}\t{user.role.value}\t{user.unit or 'every unit'}\t{user.full_name}{lock}{off}")
    return 0
