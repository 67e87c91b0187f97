"""docs/api.md against a real store: its curl commands run as written (the store's address moved to this
test's), and its examples of the feed's JSON and the monthly CSV have the fields the store answers with."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import httpx
from docs_commands import block, commands

from ekinerja.store.db import make_engine
from ekinerja.store.registry import import_employees
from ekinerja.sync.contract import Batch, EventFactory, Punch, Source, Subject, Verify

from samples import EMPLOYEES
from stack import FEED_TOKEN, store_server

GATEWAY_TOKEN = "api-doc-gateway-token"
DOCUMENTED = "https://absensi.example.go.id"


def january(base: str) -> None:
    """Ani's week of 5-9 January 2026: in and out each day, late on the 6th."""
    factory = EventFactory(gateway_id="opd-1", device_id="pintu", device_serial="DOC00001", source=Source.ZK,
                           timezone="Asia/Jakarta", captured_at=datetime.now(UTC))  # fmt: skip
    events = []
    for day in range(5, 10):
        arrival = datetime(2026, 1, day, 7, 45 if day == 6 else 7, 20)
        for at, kind in ((arrival, Punch.IN), (datetime(2026, 1, day, 16, 40), Punch.OUT)):
            events.append(factory.make(subject=Subject(zk_user_id="1001"), verify=Verify.FINGERPRINT, punch=kind,
                                       device_time=at))  # fmt: skip
    batch = Batch(gateway_id="opd-1", sent_at=datetime.now(UTC), events=events).model_dump(mode="json")
    answer = httpx.post(f"{base}/v1/punches", json=batch, headers={"Authorization": f"Bearer {GATEWAY_TOKEN}"})
    assert answer.status_code == 200 and answer.json()["accepted"] == 10, answer.text


def run(lines: list[str], work: Path) -> list[str]:
    outputs = []
    for line in lines:
        done = subprocess.run(["bash", "-c", line], cwd=work, capture_output=True, text=True, timeout=60, check=False,
                              env=os.environ | {"TOKEN": FEED_TOKEN})  # fmt: skip
        assert done.returncode == 0, f"{line}\n{done.stderr}"
        outputs.append(done.stdout)
    return outputs


def test_the_api_guides_commands_and_examples_match_the_store(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/store.db"
    with store_server(url, {"opd-1": GATEWAY_TOKEN}) as base:
        engine = make_engine(url)
        import_employees(engine, EMPLOYEES, "pegawai.csv", "test", datetime.now(UTC).replace(tzinfo=None))
        engine.dispose()
        january(base)
        [feed] = run(commands("api.md", "feed", {DOCUMENTED: base}), tmp_path)
        daily, _csv, discipline, changes = run(commands("api.md", "reports", {DOCUMENTED: base}), tmp_path)
    page = json.loads(feed)
    assert len(page["items"]) == 10 and page["next_after"] == 10 and page["has_more"] is False
    example = json.loads(block("api.md", "feed-json").text)
    assert set(example) == set(page) and set(example["items"][0]) == set(page["items"][0])
    assert set(example["items"][0]["event"]) == set(page["items"][0]["event"]), "the example's event fields"
    days = json.loads(daily)["days"]
    assert [d["tl"] for d in days] == [0, 1, 0, 0, 0] and all(not d["tk"] for d in days)
    assert json.loads(discipline)["year"] == 2026 and "items" in json.loads(changes)
    answered = (tmp_path / "rekap-2026-01.csv").read_text()
    shown = block("api.md", "monthly-csv").text
    assert answered.splitlines()[0] == shown.splitlines()[0], "the example's columns are the store's"
    rows = list(csv.reader(io.StringIO(shown)))
    assert len(rows[1]) == len(rows[0])
