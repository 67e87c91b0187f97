"""Reading the CSV files people prepare in a spreadsheet: headers checked, problems per line.

Every import is all or nothing: the whole file is read and checked first, and the caller applies
it only when :class:`CsvRejected` was not raised. Problems name the line as a spreadsheet shows it
(the header is line 1).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any, TypeVar

from ekinerja.errors import OperatorError

T = TypeVar("T")

MAX_PROBLEMS = 50
"""Problems listed at most; a file with more is probably the wrong file."""


class CsvRejected(OperatorError):
    """The file was not applied; ``problems`` says why, line by line."""

    exit_code = 2

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        shown = problems[:MAX_PROBLEMS]
        more = [f"... and {len(problems) - MAX_PROBLEMS} more"] if len(problems) > MAX_PROBLEMS else []
        super().__init__(f"{source}: nothing was applied:\n" + "\n".join(f"  {p}" for p in shown + more))


class RowProblem(ValueError):
    """One value of one row is wrong; the message says which and why."""


@dataclass(frozen=True)
class CsvTable:
    """The rows of a CSV file, each with its line number, and the columns that were ignored."""

    rows: list[tuple[int, dict[str, str]]]
    ignored_columns: list[str]


def read_table(text: str, source: str, required: tuple[str, ...], optional: tuple[str, ...] = ()) -> CsvTable:
    """Split ``text`` into rows keyed by lower-case header; missing required columns reject the file.

    Columns neither required nor optional are reported back as ignored (exports from personnel
    systems carry many), never silently used.
    """
    if text.startswith("\ufeff"):  # spreadsheets save UTF-8 with a byte-order mark
        text = text[1:]
    sample = text[:4096]
    try:
        dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(sample, delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    reader = csv.reader(io.StringIO(text), dialect)
    try:
        return _read_rows(reader, source, required, optional)
    except csv.Error as exc:
        raise CsvRejected(
            source, [f"line {reader.line_num}: not readable as CSV ({exc}); an unclosed quote?"]
        ) from None


def _read_rows(reader: Any, source: str, required: tuple[str, ...], optional: tuple[str, ...]) -> CsvTable:
    header = [h.strip().lower() for h in next(reader, [])]
    missing = [c for c in required if c not in header]
    if missing:
        raise CsvRejected(source, [f"line 1: missing column(s) {', '.join(missing)} (found: {', '.join(header)})"])
    doubled = sorted({h for h in header if h and header.count(h) > 1})
    if doubled:
        raise CsvRejected(source, [f"line 1: column(s) {', '.join(doubled)} appear twice"])
    known = set(required) | set(optional)
    rows = []
    for values in reader:
        line = reader.line_num
        if not any(v.strip() for v in values):
            continue
        if len(values) > len(header):
            raise CsvRejected(source, [f"line {line}: {len(values)} values for {len(header)} columns"])
        padded = values + [""] * (len(header) - len(values))
        rows.append((line, {h: v.strip() for h, v in zip(header, padded, strict=True) if h in known}))
    return CsvTable(rows, [h for h in header if h and h not in known])


def convert_rows(table: CsvTable, convert: Callable[[dict[str, str]], T]) -> tuple[list[tuple[int, T]], list[str]]:
    """Convert every row: the rows that converted, and a problem for each one that did not."""
    converted: list[tuple[int, T]] = []
    problems: list[str] = []
    for line, row in table.rows:
        try:
            converted.append((line, convert(row)))
        except RowProblem as exc:
            problems.append(f"line {line}: {exc}")
    return converted, problems


def reject_if(source: str, table: CsvTable, problems: list[str]) -> None:
    """Raise CsvRejected for ``problems`` (in line order), or for a file without rows."""
    if problems:
        raise CsvRejected(source, sorted(problems, key=_line_number))
    if not table.rows:
        raise CsvRejected(source, ["the file has no rows"])


def _line_number(problem: str) -> int:
    number = problem.removeprefix("line ").split(":", 1)[0]
    return int(number) if number.isdigit() else 0


def parse_date(row: dict[str, str], column: str, *, required: bool = True) -> date | None:
    """A YYYY-MM-DD date from ``column``."""
    value = row.get(column, "")
    if not value:
        if required:
            raise RowProblem(f"{column} is empty")
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise RowProblem(f"{column} {value!r} is not a date as YYYY-MM-DD") from None


def parse_bool(row: dict[str, str], column: str) -> bool:
    """yes/no in English or Indonesian, true/false or 1/0; empty is no."""
    value = row.get(column, "").lower()
    if value in ("", "0", "no", "n", "false", "tidak", "t"):
        return False
    if value in ("1", "yes", "y", "true", "ya"):
        return True
    raise RowProblem(f"{column} {value!r} is not yes or no (ya/tidak, 1/0)")


_WHOLE_RUPIAH = re.compile(r"^(?:\d+|\d{1,3}(?:\.\d{3})+|\d{1,3}(?:,\d{3})+)$")


def parse_amount(row: dict[str, str], column: str) -> Decimal | None:
    """Whole rupiah, as 5250000, 5.250.000 or 5,250,000."""
    value = row.get(column, "").replace(" ", "")
    if not value:
        return None
    if not _WHOLE_RUPIAH.match(value) or len(value) > 20:
        raise RowProblem(f"{column} {row[column]!r} is not an amount in whole rupiah (e.g. 5250000 or 5.250.000)")
    return Decimal(value.replace(".", "").replace(",", ""))


def text_field(row: dict[str, str], column: str, max_length: int, *, required: bool = True) -> str | None:
    """A text value of at most ``max_length`` characters."""
    value = row.get(column, "")
    if not value:
        if required:
            raise RowProblem(f"{column} is empty")
        return None
    if len(value) > max_length:
        raise RowProblem(f"{column} is longer than {max_length} characters")
    if not value.isprintable():
        raise RowProblem(f"{column} holds a control character (a tab, a line break or a NUL)")
    return value


def duplicates(values: Iterator[tuple[int, str | None]], what: str) -> list[str]:
    """Problems for a value given on more than one line."""
    first_line: dict[str, int] = {}
    problems = []
    for line, value in values:
        if value is None:
            continue
        if value in first_line:
            problems.append(f"line {line}: {what} {value} is also on line {first_line[value]}")
        else:
            first_line[value] = line
    return problems
