"""Buffer append: events per second into the durable buffer, in batches, with synchronous commits.

Target (issue 2): at least 20,000 events per second.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from ekinerja.gateway.buffer import Buffer
from ekinerja.sync.contract import EventFactory, Punch, Source, Subject, Verify

from harness import report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1000)
    args = parser.parse_args()
    factory = EventFactory(
        gateway_id="opd-bench", device_id="pintu", device_serial="BENCH00001", source=Source.ZK,
        timezone="Asia/Jakarta", captured_at=datetime.now(UTC), clock_skew_s=1.5,
    )  # fmt: skip
    subjects = [Subject(zk_user_id=str(1001 + i)) for i in range(500)]
    start = datetime(2025, 1, 2, 7, 0)
    events = [
        factory.make(subject=subjects[i % 500], verify=Verify.FINGERPRINT, punch=Punch.IN,
                     device_time=start + timedelta(seconds=17 * i))
        for i in range(args.events)
    ]  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        buffer = Buffer(Path(tmp) / "buffer.sqlite3")
        started = time.perf_counter()
        for i in range(0, len(events), args.batch):
            buffer.append(events[i : i + args.batch])
        elapsed = time.perf_counter() - started
        assert buffer.backlog().pending == args.events
        buffer.close()
    rate = args.events / elapsed
    report(
        "buffer_append",
        events=args.events,
        batch=args.batch,
        commits=-(-args.events // args.batch),
        synchronous="FULL (WAL)",
        seconds=round(elapsed, 3),
        events_per_s=round(rate),
        target_events_per_s=20_000,
        met=rate >= 20_000,
    )


if __name__ == "__main__":
    main()
