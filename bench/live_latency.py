"""Punch to store feed through live capture: p50 and p95 over 100 punches.

One `ekinerja gateway run` process reads two simulated terminals on loopback: one with
``live = true``, and as the baseline in the same run one polled at the shortest interval the
config allows (1 s). Each punch is made on both terminals at once; its latency is the store's
``received_at`` (the instant the store took it, as the feed shows) minus the instant it was
punched. The store is its own process, on SQLite.
Target (issue 6): live p95 at most 1 s.
"""

from __future__ import annotations

import argparse
import random
import statistics
import subprocess
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

from ekinerja.drivers.sim.zk_device import ZkDevice
from ekinerja.drivers.sim.zk_server import ZkSimulator

from harness import PYTHON, READER, percentile, report, store_process, write_gateway_config


def feed_received(url: str) -> dict[tuple[str, str], datetime]:
    """When the store received each punch, by (device serial, user id)."""
    out: dict[tuple[str, str], datetime] = {}
    after = 0
    with httpx.Client(base_url=url, timeout=30, headers=READER) as client:
        while True:
            page = client.get("/v1/feed", params={"after": after, "limit": 5000}).json()
            for item in page["items"]:
                event = item["event"]
                received = datetime.fromisoformat(item["received_at"].replace("Z", "+00:00"))
                out[(event["device_serial"], event["subject"]["zk_user_id"])] = received
            after = page["next_after"]
            if not page["has_more"]:
                return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--punches", type=int, default=100)
    parser.add_argument("--gap", type=float, default=0.3, help="mean seconds between punches")
    args = parser.parse_args()
    live_dev = ZkDevice.generate(users=args.punches, records=0, serial="LIVE-BENCH", seed=1)
    poll_dev = ZkDevice.generate(users=args.punches, records=0, serial="POLL-BENCH", seed=2)
    rng = random.Random(3)
    punched: dict[str, datetime] = {}
    with (
        ZkSimulator(live_dev, protocol="tcp") as live_sim,
        ZkSimulator(poll_dev, protocol="tcp") as poll_sim,
        tempfile.TemporaryDirectory() as tmp,
        store_process(Path(tmp)) as url,
    ):
        devices = [
            {"id": "live", "kind": "zk", "host": "127.0.0.1", "port": live_sim.port, "live": True},
            {"id": "polled", "kind": "zk", "host": "127.0.0.1", "port": poll_sim.port, "poll_interval_s": 1},
        ]
        config = write_gateway_config(Path(tmp), url, devices)
        text = config.read_text().replace("timeout_s = 120", "timeout_s = 120\npush_interval_s = 5")
        config.write_text(text)
        gateway = subprocess.Popen(
            [PYTHON, "-m", "ekinerja.cli", "--log-level", "WARNING", "gateway", "run", "--config", str(config)]
        )
        try:
            deadline = time.monotonic() + 30
            while live_dev.listener_count == 0:
                if time.monotonic() > deadline or gateway.poll() is not None:
                    raise SystemExit("the gateway never opened its live session")
                time.sleep(0.05)
            for i in range(args.punches):
                user = str(1001 + i)
                punched[user] = datetime.now(UTC)
                live_dev.add_punch(user, punch=i % 2)
                poll_dev.add_punch(user, punch=i % 2)
                time.sleep(rng.uniform(0, 2 * args.gap))
            time.sleep(3)
            received = feed_received(url)
        finally:
            gateway.terminate()
            gateway.wait(30)
    live = [(received[("LIVE-BENCH", u)] - t).total_seconds() for u, t in punched.items()]
    polled = [(received[("POLL-BENCH", u)] - t).total_seconds() for u, t in punched.items()]
    report(
        "live_latency",
        punches=args.punches,
        live_p50_s=round(statistics.median(live), 3),
        live_p95_s=round(percentile(live, 95), 3),
        live_max_s=round(max(live), 3),
        baseline_polled_1s_p50_s=round(statistics.median(polled), 3),
        baseline_polled_1s_p95_s=round(percentile(polled, 95), 3),
        target_p95_s=1.0,
        met=percentile(live, 95) <= 1.0,
    )


if __name__ == "__main__":
    main()
