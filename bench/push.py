"""Push of 50,000 buffered punches to the store (SQLite), as whole processes.

`ekinerja gateway sync` (batches of 1,000) against a process that POSTs one punch per request, as
the ERPNext sync tool pushes, to the same kind of store. The baseline sends fewer punches (a rate
is compared; 50,000 single POSTs would take minutes).
Target (issue 2): at least 30x the events per second.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from ekinerja.gateway.buffer import Buffer
from ekinerja.sync.contract import EventFactory, Punch, PunchEvent, Source, Subject, Verify

from harness import GATEWAY_ID, PYTHON, TOKEN, report, store_process, timed_process, write_gateway_config

ONE_PER_POST = """
import json, sys
from datetime import UTC, datetime
import httpx
url, token, path, gateway_id = sys.argv[1:5]
events = json.load(open(path))
with httpx.Client(headers={"Authorization": "Bearer " + token}, timeout=30) as client:
    for event in events:
        body = {"gateway_id": gateway_id, "sent_at": datetime.now(UTC).isoformat(), "events": [event]}
        client.post(url + "/v1/punches", json=body).raise_for_status()
print(len(events))
"""


def make_events(n: int, serial: str) -> list[PunchEvent]:
    factory = EventFactory(
        gateway_id=GATEWAY_ID, device_id="pintu", device_serial=serial, source=Source.ZK,
        timezone="Asia/Jakarta", captured_at=datetime.now(UTC),
    )  # fmt: skip
    subjects = [Subject(zk_user_id=str(1001 + i)) for i in range(500)]
    start = datetime(2025, 1, 2, 7, 0)
    return [
        factory.make(subject=subjects[i % 500], verify=Verify.CARD, punch=Punch.OUT,
                     device_time=start + timedelta(seconds=13 * i))
        for i in range(n)
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--baseline-events", type=int, default=2_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ours_dir, base_dir = Path(tmp, "ours"), Path(tmp, "baseline")
        ours_dir.mkdir()
        base_dir.mkdir()
        with store_process(ours_dir) as url:
            config = write_gateway_config(ours_dir, url, [], batch_size=1000)
            buffer = Buffer(ours_dir / "gateway" / "buffer.sqlite3")
            buffer.append(make_events(args.events, "BENCHSYNC1"))
            buffer.close()
            ours_s, out = timed_process([PYTHON, "-m", "ekinerja.cli", "gateway", "sync", "--config", str(config)])
            assert f"{args.events} accepted" in out, out
        with store_process(base_dir) as url:
            events = [e.model_dump(mode="json") for e in make_events(args.baseline_events, "BENCHPOST1")]
            (base_dir / "events.json").write_text(json.dumps(events))
            base_s, out = timed_process(
                [PYTHON, "-c", ONE_PER_POST, url, TOKEN, str(base_dir / "events.json"), GATEWAY_ID]
            )
            assert int(out) == args.baseline_events
    ours_rate, base_rate = args.events / ours_s, args.baseline_events / base_s
    report(
        "push",
        events=args.events,
        sync_process_s=round(ours_s, 3),
        sync_events_per_s=round(ours_rate),
        baseline_events=args.baseline_events,
        one_post_per_punch_process_s=round(base_s, 3),
        one_post_per_punch_events_per_s=round(base_rate),
        speedup=round(ours_rate / base_rate, 1),
        target=30,
        met=ours_rate / base_rate >= 30,
    )


if __name__ == "__main__":
    main()
