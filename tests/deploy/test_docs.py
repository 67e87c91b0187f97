"""The documents under docs/: every shell block is run by a test or marked illustrative (tests/docs_commands.py),
every test a block names reads it, and the links between the documents lead somewhere."""

from __future__ import annotations

import re

import pytest
from docs_commands import DOCS, SHELL, blocks

REPO = DOCS.parent
DOCUMENTS = sorted(p.name for p in DOCS.glob("*.md"))


def test_the_documents_the_issue_asks_for_are_there() -> None:
    assert {"panduan-operator.md", "api.md", "deploy.md"} <= set(DOCUMENTS)


@pytest.mark.parametrize("doc", DOCUMENTS)
def test_every_shell_block_is_run_by_a_test_or_marked_illustrative(doc: str) -> None:
    found = blocks(doc)
    assert found, f"docs/{doc} shows no block"
    unmarked = [b.line for b in found if b.lang in SHELL and not b.illustrative and b.name is None]
    assert not unmarked, f"docs/{doc}: shell blocks at lines {unmarked} are neither run by a test nor illustrative"
    named = [b.name for b in found if b.name]
    assert len(named) == len(set(named)), f"docs/{doc}: a block name is used twice"
    for b in found:
        if b.name is None:
            continue
        test = REPO / str(b.test)
        assert test.is_file(), f"docs/{doc}:{b.line} names {b.test}, which does not exist"
        source = test.read_text()
        asks = re.search(rf'(commands|block)\(\s*"{re.escape(doc)}",\s*"{re.escape(b.name)}"', source)
        assert asks, f"docs/{doc}:{b.line}: {b.test} never reads the block {b.name!r}"


@pytest.mark.parametrize("doc", DOCUMENTS)
def test_links_to_files_of_the_repository_lead_somewhere(doc: str) -> None:
    text = (DOCS / doc).read_text()
    for target in re.findall(r"\]\((?!https?:|#|mailto:)([^)#\s]+)", text):
        assert (DOCS / target).resolve().exists(), f"docs/{doc} links to {target}, which is missing"


def test_every_command_of_the_command_line_is_in_the_deploy_or_operator_guide() -> None:
    """The guides name each command an operator or IT team runs (the CLI's own help lists them all)."""
    text = " ".join((DOCS / doc).read_text() for doc in ("deploy.md", "panduan-operator.md"))
    for command in ("gateway check-config", "gateway devices", "gateway backlog", "gateway backup",
                    "gateway restore", "gateway recover", "store check-config", "store migrate", "store backup",
                    "store restore", "store gateway add", "store user add", "store import-employees",
                    "store import-leave"):  # fmt: skip
        assert f"ekinerja {command}" in text, f"no guide shows `ekinerja {command}`"


def test_nothing_in_docs_is_left_unwritten() -> None:
    for doc in DOCUMENTS:
        assert not re.search(r"\b(TODO|TBD|FIXME|XXX)\b", (DOCS / doc).read_text()), doc
