"""The employee registry: who is who (NIP), in which unit, and by which ids the devices know them.

``ekinerja store import-employees`` and ``POST /v1/employees`` take the same CSV:
``nip,name,unit,zk_user_id,card_uid,active_from`` and optionally ``six_day,tpp_base,active_to``.
The whole file is checked first; one bad row rejects it and nothing is applied. Re-importing a
NIP updates it. A change of who holds a device id marks the months of everyone involved for
re-scoring, so punches that were unmatched are scored as soon as their mapping exists.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, literal_column, select, update
from sqlalchemy.dialects import mysql, postgresql, sqlite

from ekinerja.store import audit
from ekinerja.store.csv_input import (
    CsvRejected,
    RowProblem,
    convert_rows,
    duplicates,
    parse_amount,
    parse_bool,
    parse_date,
    read_table,
    reject_if,
    text_field,
)
from ekinerja.store.db import attendance_months, employees

REQUIRED = ("nip", "name", "unit", "zk_user_id", "card_uid", "active_from")
OPTIONAL = ("six_day", "tpp_base", "active_to")

_ZK_USER_ID = re.compile(r"^[ -~]{1,24}$")
_CARD_UID = re.compile(r"^(?:[0-9A-F]{2}){4,10}$")


def nip_problem(nip: str) -> str | None:
    """Why ``nip`` is not a valid NIP, or None.

    A NIP is 18 digits: birth date (YYYYMMDD), appointment month (YYYYMM), gender (1 or 2) and a
    three-digit sequence number.
    """
    if len(nip) != 18 or not nip.isascii() or not nip.isdigit():
        return f"NIP {nip!r} is not 18 digits"
    try:
        born = date(int(nip[0:4]), int(nip[4:6]), int(nip[6:8]))
    except ValueError:
        return f"NIP {nip}: {nip[0:8]} is not a real birth date"
    year, month = int(nip[8:12]), int(nip[12:14])
    if not 1 <= month <= 12 or year < 1900:
        return f"NIP {nip}: {nip[8:14]} is not a real appointment month"
    this_year = date.today().year
    if born.year > this_year - 15 or year > this_year + 1:
        return f"NIP {nip}: born {born.year} or appointed {year}, which cannot be"
    if year < born.year:
        return f"NIP {nip}: appointed ({year}) before born ({born.year})"
    if nip[14] not in "12":
        return f"NIP {nip}: the gender digit (15th) is {nip[14]}, not 1 or 2"
    return None


@dataclass(frozen=True)
class EmployeeRecord:
    """One employee as the registry holds them."""

    nip: str
    name: str
    unit: str
    zk_user_id: str | None
    card_uid: str | None
    active_from: date
    six_day: bool = False
    tpp_base: Decimal | None = None
    active_to: date | None = None

    def values(self) -> dict[str, Any]:
        """The record as column values."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


def employee_from_row(row: dict[str, str]) -> EmployeeRecord:
    """One CSV (or API) row as a record; RowProblem names the bad value."""
    nip = row.get("nip", "")
    problem = nip_problem(nip)
    if problem:
        raise RowProblem(problem)
    zk_user_id = row.get("zk_user_id") or None
    if zk_user_id is not None and not _ZK_USER_ID.match(zk_user_id):
        raise RowProblem(f"zk_user_id {zk_user_id!r} is not 1-24 printable ASCII characters")
    card_uid = (row.get("card_uid") or "").upper().replace(":", "").replace(" ", "") or None
    if card_uid is not None and not _CARD_UID.match(card_uid):
        raise RowProblem(f"card_uid {row['card_uid']!r} is not a 4-10 byte UID in hex")
    active_from = parse_date(row, "active_from")
    active_to = parse_date(row, "active_to", required=False)
    assert active_from is not None
    if active_to is not None and active_to < active_from:
        raise RowProblem(f"active_to {active_to} is before active_from {active_from}")
    if active_from.year < 1950:
        raise RowProblem(f"active_from {active_from} is before 1950")
    return EmployeeRecord(
        nip=nip,
        name=text_field(row, "name", 200) or "",
        unit=text_field(row, "unit", 200) or "",
        zk_user_id=zk_user_id,
        card_uid=card_uid,
        active_from=active_from,
        six_day=parse_bool(row, "six_day"),
        tpp_base=parse_amount(row, "tpp_base"),
        active_to=active_to,
    )


@dataclass(frozen=True)
class ImportSummary:
    """What an import did."""

    added: int
    updated: int
    unchanged: int
    ignored_columns: list[str]


def read_employees(text: str, source: str) -> tuple[list[tuple[int, EmployeeRecord]], list[str]]:
    """Every row of an employee CSV, checked; raises CsvRejected with every problem found."""
    table = read_table(text, source, REQUIRED, OPTIONAL)
    records, problems = convert_rows(table, employee_from_row)
    problems += duplicates(((line, r.nip) for line, r in records), "NIP")
    problems += duplicates(((line, r.zk_user_id) for line, r in records), "zk_user_id")
    problems += duplicates(((line, r.card_uid) for line, r in records), "card_uid")
    reject_if(source, table, problems)
    return records, table.ignored_columns


def import_employees(engine: Engine, text: str, source: str, by: str, now: datetime) -> ImportSummary:
    """Check and apply an employee CSV in one transaction (all or nothing), recorded in the audit log as ``by``."""
    records, ignored = read_employees(text, source)
    with engine.begin() as conn:
        existing = {row.nip: row for row in conn.execute(select(employees))}
        problems = _held_by_others(records, existing)
        if problems:
            raise CsvRejected(source, problems)
        holders = {
            column: {getattr(e, column): nip for nip, e in existing.items() if getattr(e, column)}
            for column in ("zk_user_id", "card_uid")
        }
        inserts: list[dict[str, Any]] = []
        updates: list[dict[str, Any]] = []
        touched: set[str] = set()
        changes: list[audit.Change] = []
        for _line, record in records:
            old = existing.get(record.nip)
            if old is not None and not _changed(old, record):
                continue
            changes.append(_audited(old, record, source))
            values = record.values() | {"updated_at": now}
            if old is None:
                inserts.append(values)
            else:
                updates.append({f"v_{name}": value for name, value in values.items()} | {"key": record.nip})
            touched.add(record.nip)
            touched |= {holders[c][getattr(record, c)] for c in holders if getattr(record, c) in holders[c]}
        if updates:
            # Ids may move between employees within one file (a swap): free them all before any is taken.
            freed = [{"key": u["key"]} for u in updates]
            conn.execute(
                employees.update().where(employees.c.nip == bindparam("key")).values(zk_user_id=None, card_uid=None),
                freed,
            )
            columns: dict[str, Any] = {name[2:]: bindparam(name) for name in updates[0] if name != "key"}
            conn.execute(employees.update().where(employees.c.nip == bindparam("key")).values(columns), updates)
        if inserts:
            conn.execute(employees.insert(), inserts)
        mark_stale(conn, touched)
        audit.record(conn, by, now, changes)
    return ImportSummary(len(inserts), len(updates), len(records) - len(inserts) - len(updates), ignored)


def _audited(old: Any, record: EmployeeRecord, source: str) -> audit.Change:
    if old is None:
        return audit.Change("employee.add", record.nip, record.values(), source)
    diff = {name: [getattr(old, name), value] for name, value in record.values().items() if getattr(old, name) != value}
    return audit.Change("employee.change", record.nip, diff, source)


def _changed(old: Any, record: EmployeeRecord) -> bool:
    return any(getattr(old, name) != value for name, value in record.values().items())


def _held_by_others(records: list[tuple[int, EmployeeRecord]], existing: dict[str, Any]) -> list[str]:
    """A device id this file gives to one NIP while another employee, not in the file, keeps it."""
    in_file = {r.nip for _line, r in records}
    problems = []
    for column in ("zk_user_id", "card_uid"):
        holder = {getattr(e, column): nip for nip, e in existing.items() if getattr(e, column) and nip not in in_file}
        for line, record in records:
            value = getattr(record, column)
            if value is not None and holder.get(value, record.nip) != record.nip:
                problems.append(f"line {line}: {column} {value} already belongs to NIP {holder[value]}")
    return problems


def mark_stale(conn: Connection, nips: Iterable[str], month: date | None = None) -> None:
    """Mark kept months of ``nips`` for re-scoring: every month kept, or one ``month``.

    Each mark counts up the row's ``version``; a scoring pass keeps its result only where the
    version is still the one it saw before reading its inputs. With a ``month``, a row is added
    for an employee who has none yet, so that the count exists for a pass running meanwhile.
    """
    chosen = sorted(set(nips))
    now = datetime.now(UTC).replace(tzinfo=None)
    table = attendance_months
    for start in range(0, len(chosen), 500):
        part = chosen[start : start + 500]
        stmt = update(table).where(table.c.nip.in_(part))
        if month is None:
            conn.execute(stmt.values(stale=True, stale_at=now, version=attendance_months.c.version + 1))
            continue
        rows = [{"nip": nip, "month": month, "stale": True, "stale_at": now, "version": 1} for nip in part]
        _upsert_stale(conn, rows)


def _upsert_stale(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Insert the rows, or mark the existing ones stale: one statement, so no scoring pass slips between."""
    table = attendance_months
    dialect = conn.dialect.name
    bumped = table.c.version + literal_column("1")  # literal: pymysql cannot batch a bound value here
    stmt: Any
    if dialect in ("mysql", "mariadb"):
        stmt = mysql.insert(table)
        stmt = stmt.on_duplicate_key_update(stale=stmt.inserted.stale, stale_at=stmt.inserted.stale_at, version=bumped)
    else:
        stmt = postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table)
        stmt = stmt.on_conflict_do_update(
            index_elements=["nip", "month"],
            set_={"stale": stmt.excluded.stale, "stale_at": stmt.excluded.stale_at, "version": bumped},
        )
    conn.execute(stmt, rows)


def list_employees(engine: Engine, unit: str | None = None) -> list[EmployeeRecord]:
    """The registry, by NIP, optionally one unit."""
    query = select(employees).order_by(employees.c.nip)
    if unit is not None:
        query = query.where(employees.c.unit == unit)
    names = [f.name for f in fields(EmployeeRecord)]
    with engine.connect() as conn:
        return [EmployeeRecord(**{n: getattr(row, n) for n in names}) for row in conn.execute(query)]
