"""``ekinerja store gateway add|rotate|revoke|list``: the tokens gateways push with.

A new token is printed once, on stdout, for the operator to put in that gateway's ``gateway.toml``;
the store keeps only its hash. Each change is in the audit log with who ran it.
"""

from __future__ import annotations

import argparse
import re
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

from ekinerja.store import gateway_tokens
from ekinerja.store.attendance import Office
from ekinerja.store.cli_attendance import BadRequest, operator, utc_now, with_store

_GATEWAY_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")


def _gateway_id(text: str) -> str:
    if not _GATEWAY_ID.match(text):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a gateway id (letters, digits, . _ : -, at most 64, as in its gateway.toml)"
        )
    return text


def _hours(text: str) -> float:
    try:
        hours = float(text)
    except ValueError:
        hours = -1
    if not 0 <= hours <= 24 * 30:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of hours from 0 to 720")
    return hours


def register(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``store gateway ...`` under ``store``."""
    gateway = actions.add_parser("gateway", help="make, rotate and revoke the tokens gateways push with")
    verbs = gateway.add_subparsers(dest="gateway_command", required=True, metavar="ACTION")
    for name, help_text, func in (
        ("add", "make the first token of a gateway and print it once", _add),
        ("rotate", "make a new token for a gateway and print it once; the old one ends", _rotate),
        ("revoke", "refuse every token of a gateway from now on", _revoke),
        ("list", "the gateways that have a valid token", _list),
    ):
        verb = verbs.add_parser(name, help=help_text)
        verb.add_argument("--config", type=Path, required=True, help="store.toml")
        if name != "list":
            verb.add_argument("gateway_id", type=_gateway_id, help="the gateway's id, as in its gateway.toml")
            verb.add_argument("--by", default=None, help="who does it, for the audit log (default: the login name)")
        verb.set_defaults(func=lambda a, f=func: with_store(a, f))
    verbs.choices["rotate"].add_argument(
        "--grace-hours", type=_hours, default=0.0,
        help="keep the old token valid this long, until the gateway has the new one (default 0: refused at once)",
    )  # fmt: skip
    verbs.choices["revoke"].add_argument("--reason", default=None, help="why, for the audit log")


def _show(gateway_id: str, token: str) -> None:
    print(token)
    print(
        f"This is the token of gateway {gateway_id!r}; it is shown only now. Put it in that gateway's "
        'gateway.toml as [store] token = "${EKINERJA_TOKEN}" with EKINERJA_TOKEN set in its environment '
        "(or the token itself), then restart the gateway.",
        file=sys.stderr,
    )


def _add(args: argparse.Namespace, engine: Any, _office: Office) -> int:
    try:
        token = gateway_tokens.add(engine, args.gateway_id, operator(args), utc_now())
    except gateway_tokens.TokenError as exc:
        raise BadRequest(str(exc)) from None
    _show(args.gateway_id, token)
    return 0


def _rotate(args: argparse.Namespace, engine: Any, _office: Office) -> int:
    grace = timedelta(hours=args.grace_hours)
    try:
        token = gateway_tokens.rotate(engine, args.gateway_id, operator(args), utc_now(), grace)
    except gateway_tokens.TokenError as exc:
        raise BadRequest(str(exc)) from None
    _show(args.gateway_id, token)
    return 0


def _revoke(args: argparse.Namespace, engine: Any, _office: Office) -> int:
    try:
        count = gateway_tokens.revoke(engine, args.gateway_id, operator(args), utc_now(), args.reason)
    except gateway_tokens.TokenError as exc:
        raise BadRequest(str(exc)) from None
    print(f"gateway {args.gateway_id!r}: {count} token(s) revoked; its pushes are refused from now on")
    return 0


def _list(_args: argparse.Namespace, engine: Any, _office: Office) -> int:
    for entry in gateway_tokens.listing(engine, utc_now()):
        graces = "".join(f"; 1 old until {end:%Y-%m-%d %H:%M} UTC" for end in entry.ending)
        print(f"{entry.gateway_id}\t{entry.lasting} valid{graces}; newest made {entry.created_at:%Y-%m-%d %H:%M} UTC")
    return 0
