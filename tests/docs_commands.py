"""The commands the documents under docs/ show, for the tests that run them as written.

Every fenced shell block in docs/*.md follows a marker line:

    <!-- illustrative -->                    shown, not run by a test (it changes the machine: apt, systemctl,
                                             useradd; or needs what no test machine has)
    <!-- run: NAME by tests/PATH.py -->      run by that test, which reads it with commands(DOC, NAME)

Any other block (CSV, TOML, PHP) may carry a run marker too, for a test that reads it with block().
tests/deploy/test_docs.py holds every shell block to one of the two, and every named test to reading it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

DOCS = Path(__file__).resolve().parents[1] / "docs"
SHELL = ("sh", "bash", "shell", "console")
MARKER = re.compile(r"<!-- (?:(illustrative)|run: ([a-z0-9-]+) by (tests/[\w/.-]+\.py)) -->")
FENCE = re.compile(r"^```(\w*)\s*$")


@dataclass(frozen=True)
class Block:
    """One fenced block of a document, with the marker line before it (if any)."""

    doc: str
    line: int
    lang: str
    text: str
    illustrative: bool
    name: str | None
    test: str | None


def blocks(doc: str) -> list[Block]:
    """Every fenced block of ``docs/<doc>``, in order."""
    lines = (DOCS / doc).read_text(encoding="utf-8").splitlines()
    found, i = [], 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if opening is None:
            i += 1
            continue
        end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
        before = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
        marker = MARKER.fullmatch(before.strip())
        found.append(
            Block(doc, i + 1, opening[1], "\n".join(lines[i + 1 : end]) + "\n", bool(marker and marker[1]),
                  marker[2] if marker else None, marker[3] if marker else None)
        )  # fmt: skip
        i = end + 1
    return found


def block(doc: str, name: str) -> Block:
    """The block of ``doc`` marked ``run: name``."""
    named = [b for b in blocks(doc) if b.name == name]
    assert len(named) == 1, f"docs/{doc} has {len(named)} block(s) named {name!r}"
    return named[0]


def commands(doc: str, name: str, places: Mapping[str, str] | None = None) -> list[str]:
    """The commands of the named shell block: continued lines joined, comments and blank lines left out,
    and each of ``places`` (what the docs write, e.g. /etc/ekinerja) replaced by where the test has it."""
    text = re.sub(r"\\\n\s*", "", block(doc, name).text)
    out = []
    for line in text.splitlines():
        line = re.sub(r"\s+#\s.*$", "", line).strip()  # a trailing comment
        if not line or line.startswith("#"):
            continue
        for written, here in (places or {}).items():
            line = line.replace(written, here)
        out.append(line)
    return out
