"""``ekinerja store import-employees|import-leave|report``: the registry and the reports, from a shell.

They work on the database directly (the store need not be running), after the same schema check as
``store serve``. A rejected CSV prints every problem with its line and changes nothing (exit 2).
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from ekinerja.config.loader import load_model
from ekinerja.config.store import StoreConfig
from ekinerja.errors import OperatorError
from ekinerja.store import reports
from ekinerja.store.attendance import Office
from ekinerja.store.entries import import_leave
from ekinerja.store.registry import import_employees


def register(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the registry and report commands under ``store``."""
    employees = actions.add_parser("import-employees", help="add or update employees from a CSV file")
    employees.add_argument("--config", type=Path, required=True, help="store.toml")
    employees.add_argument("--by", default=None, help="who imports it, for the audit log (default: the login name)")
    employees.add_argument("file", type=Path, help="CSV: nip,name,unit,zk_user_id,card_uid,active_from[,...]")
    employees.set_defaults(func=lambda a: with_store(a, _import_employees))
    leave = actions.add_parser("import-leave", help="add leave and duty from a CSV file")
    leave.add_argument("--config", type=Path, required=True, help="store.toml")
    leave.add_argument("--by", default=None, help="who enters it (default: the login name)")
    leave.add_argument("file", type=Path, help="CSV: nip,code,start,end,reason,approved_by")
    leave.set_defaults(func=lambda a: with_store(a, _import_leave))
    report = actions.add_parser("report", help="print a report (JSON or CSV)")
    report.add_argument("--config", type=Path, required=True, help="store.toml")
    report.add_argument("kind", choices=["daily", "monthly", "discipline"], help="which report")
    report.add_argument("--nip", help="daily: the employee")
    report.add_argument("--from", dest="first", type=date.fromisoformat, help="daily: first day YYYY-MM-DD")
    report.add_argument("--to", dest="last", type=date.fromisoformat, help="daily: last day YYYY-MM-DD")
    report.add_argument("--month", type=_month, help="monthly: YYYY-MM")
    report.add_argument("--year", type=_year, help="discipline: the year")
    report.add_argument("--as-of", type=date.fromisoformat, help="discipline: count up to this day")
    report.add_argument("--unit", help="monthly, discipline: only this unit")
    report.add_argument("--format", choices=["json", "csv"], default="json")
    report.set_defaults(func=lambda a: with_store(a, _report))


def _month(text: str) -> date:
    try:
        month = datetime.strptime(text, "%Y-%m").date()
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a month as YYYY-MM") from None
    if not 1900 <= month.year <= 2199:
        raise argparse.ArgumentTypeError(f"{text!r}: the year must be between 1900 and 2199")
    return month


def _year(text: str) -> int:
    if not text.isdigit() or not 1900 <= int(text) <= 2199:
        raise argparse.ArgumentTypeError(f"{text!r} is not a year between 1900 and 2199")
    return int(text)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise BadRequest(f"{path}: file not found") from None
    except UnicodeDecodeError:
        raise BadRequest(f"{path}: not UTF-8 text (save it from the spreadsheet as CSV UTF-8)") from None


def utc_now() -> datetime:
    """Now, as the store keeps instants: naive UTC."""
    return datetime.now(UTC).replace(tzinfo=None)


def operator(args: argparse.Namespace) -> str:
    """Who runs an account or token command, for the audit log: ``--by``, else cli:<login name>."""
    return str(args.by or f"cli:{getpass.getuser()}")


class BadRequest(OperatorError):
    """A command asked for something that cannot be answered."""

    exit_code = 2


def with_store(args: argparse.Namespace, action: Any) -> int:
    """Run ``action(args, engine, office)`` on the configured database, once its schema is checked."""
    from ekinerja.store.cli import ready_engine  # the store's CLI registers this module

    config = load_model(args.config, StoreConfig)
    office = Office.from_config(config, args.config.parent)
    engine = ready_engine(config, args.config)
    try:
        return int(action(args, engine, office))
    finally:
        engine.dispose()


def _import_employees(args: argparse.Namespace, engine: Any, _office: Office) -> int:
    by = args.by or f"cli:{getpass.getuser()}"
    summary = import_employees(engine, _read(args.file), str(args.file), by, datetime.now(UTC).replace(tzinfo=None))
    print(f"{args.file}: {summary.added} added, {summary.updated} updated, {summary.unchanged} unchanged")
    if summary.ignored_columns:
        print(f"ignored column(s): {', '.join(summary.ignored_columns)}")
    return 0


def _import_leave(args: argparse.Namespace, engine: Any, office: Office) -> int:
    by = args.by or getpass.getuser()
    codes = office.scorer.profile.leave.keys()
    now = datetime.now(UTC).replace(tzinfo=None)
    added = import_leave(engine, _read(args.file), str(args.file), codes, by, now, office.now().date())
    print(f"{args.file}: {added} leave entr{'y' if added == 1 else 'ies'} added")
    return 0


def _report(args: argparse.Namespace, engine: Any, office: Office) -> int:
    try:
        if args.kind == "daily":
            _need(args, "nip", "first", "last")
            report = reports.daily(engine, office, args.nip, args.first, args.last)
        elif args.kind == "monthly":
            _need(args, "month")
            report = reports.monthly(engine, office, args.month, args.unit)
        else:
            _need(args, "year")
            report = reports.discipline(engine, office, args.year, args.as_of, args.unit)
    except (reports.ReportRequestError, LookupError) as exc:
        raise BadRequest(f"report {args.kind}: {exc.args[0]}") from None
    if args.format == "csv":
        sys.stdout.write(report.as_csv())
    else:
        print(json.dumps(report.as_json(), indent=2, ensure_ascii=False, default=str))
    return 0


def _need(args: argparse.Namespace, *names: str) -> None:
    missing = [f"--{n.replace('first', 'from').replace('last', 'to')}" for n in names if getattr(args, n) is None]
    if missing:
        raise BadRequest(f"report {args.kind} needs {', '.join(missing)}")
