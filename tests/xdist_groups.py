"""``--dist loadgroup`` that keeps each ``xdist_group`` in one worker again: a plugin of tests/conftest.py.

pytest-xdist 3.8 groups tests by a ``@group`` suffix its workers write into the node ids they
report; pytest 9.2's structured node ids no longer take that write, so every mark is silently
ignored and grouped tests spread over the workers (pytest-xdist issue 1386). Here each worker
writes the groups of its tests to a file the controller named for it, before it reports its
collection, and the controller's scheduler reads them when it splits the tests into work units.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest
from xdist.remote import Producer
from xdist.scheduler import LoadGroupScheduling
from xdist.workermanage import WorkerController

# The tests that kill and restart processes at random moments under load and count what the kills
# hit (a download, a push between the store's commit and its answer): run side by side, they load
# each other's processes enough that those moments stop coming. One at a time, in one worker.
STRESS = pytest.mark.xdist_group("stress")

FOLDER = pytest.StashKey[Path]()
KEY = "ekinerja_xdist_groups"  # in each worker's workerinput: the file it writes


def group_of(item: pytest.Item) -> str | None:
    """The group of the test's ``xdist_group`` marks, named as xdist names it; None without one."""
    names = {
        str(mark.args[0] if mark.args else mark.kwargs.get("name", "default"))
        for mark in item.iter_markers("xdist_group")
    }
    return "_".join(sorted(names)) or None


class GroupScheduling(LoadGroupScheduling):
    """A work unit per group the workers wrote, and one per other test."""

    def __init__(self, config: pytest.Config, log: Producer | None = None) -> None:
        super().__init__(config, log)
        self.folder = config.stash[FOLDER]
        self.groups: dict[str, str] | None = None

    def _split_scope(self, nodeid: str) -> str:
        if self.groups is None:  # first called once every worker has reported its collection
            self.groups = {}
            for file in self.folder.glob("*.json"):
                self.groups |= json.loads(file.read_text())
        return self.groups.get(nodeid) or super()._split_scope(nodeid)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: WorkerController) -> None:
    """Controller: name the file where the worker writes its groups."""
    if FOLDER not in node.config.stash:
        node.config.stash[FOLDER] = Path(tempfile.mkdtemp(prefix="ekinerja-xdist-groups-"))
    node.workerinput[KEY] = str(node.config.stash[FOLDER] / f"{node.gateway.id}.json")


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Producer) -> GroupScheduling | None:
    return GroupScheduling(config, log) if config.getvalue("dist") == "loadgroup" else None


@pytest.hookimpl(trylast=True)  # after the hooks that add marks
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Worker: write the groups of its tests (before it reports them to the controller)."""
    workerinput: dict[str, Any] = getattr(config, "workerinput", {})
    if KEY in workerinput:
        groups = {item.nodeid: group for item in items if (group := group_of(item))}
        Path(workerinput[KEY]).write_text(json.dumps(groups))


def pytest_unconfigure(config: pytest.Config) -> None:
    if FOLDER in config.stash:
        shutil.rmtree(config.stash[FOLDER], ignore_errors=True)
