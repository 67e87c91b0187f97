"""Twenty terminals of 10,000 records each, caught up from empty by one gateway process.

`ekinerja gateway run` with 20 devices (half of them live) and an empty buffer, against 20
simulated terminals on loopback, pushing to a store process on SQLite: the time until the store
holds every record, and the gateway's peak memory (VmHWM). Baseline, in the same run: one process
that reads the same 20 terminals one after the other with pyzk's get_attendance() and stores
nothing, as a pull-only tool would.
Targets (issue 6): gateway RSS at most 100 MB; the time is reported.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time
from pathlib import Path

import httpx

from ekinerja.drivers.sim.zk_device import ZkDevice
from ekinerja.drivers.sim.zk_server import ZkSimulator

from harness import PYTHON, READER, report, store_process, write_gateway_config

PYZK_SEQUENTIAL = """
import resource, sys
from zk import ZK
total = 0
for port in sys.argv[1:]:
    conn = ZK("127.0.0.1", port=int(port), timeout=120, ommit_ping=True).connect()
    total += len(conn.get_attendance())
    conn.disconnect()
print(total, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident memory (VmHWM) in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM")


class FeedCounter:
    """Counts the store's punches by reading its feed onward from where it left off."""

    def __init__(self, url: str) -> None:
        self.client = httpx.Client(base_url=url, timeout=30, headers=READER)
        self.after = 0
        self.count = 0

    def __call__(self) -> int:
        while True:
            page = self.client.get("/v1/feed", params={"after": self.after, "limit": 5000}).json()
            self.count += len(page["items"])
            self.after = page["next_after"]
            if not page["has_more"]:
                return self.count


def run_gateway(folder: Path, url: str, ports: list[int], expected: int) -> tuple[float, float]:
    devices = [
        {"id": f"t{i:02d}", "kind": "zk", "host": "127.0.0.1", "port": port, "poll_interval_s": 5, "live": i % 2 == 0}
        for i, port in enumerate(ports)
    ]
    config = write_gateway_config(folder, url, devices)  # the default batch of 1,000
    feed_total = FeedCounter(url)
    started = time.perf_counter()
    gateway = subprocess.Popen(
        [PYTHON, "-m", "ekinerja.cli", "--log-level", "WARNING", "gateway", "run", "--config", str(config)]
    )
    try:
        while feed_total() < expected:
            if gateway.poll() is not None:
                raise SystemExit(f"the gateway exited with {gateway.returncode}")
            if time.perf_counter() - started > 600:
                raise SystemExit("the gateway did not catch up within 10 minutes")
            time.sleep(0.5)
        elapsed = time.perf_counter() - started
        return elapsed, peak_rss_mb(gateway.pid)
    finally:
        gateway.terminate()
        gateway.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--terminals", type=int, default=20)
    parser.add_argument("--records", type=int, default=10_000)
    args = parser.parse_args()
    devices = [
        ZkDevice.generate(users=200, records=args.records, serial=f"BENCH{i:05d}", seed=i)
        for i in range(args.terminals)
    ]
    sims = [ZkSimulator(d, protocol="tcp").start() for d in devices]
    expected = args.terminals * args.records
    try:
        with tempfile.TemporaryDirectory() as tmp, store_process(Path(tmp)) as url:
            gateway_s, gateway_rss = run_gateway(Path(tmp), url, [s.port for s in sims], expected)
            stored = FeedCounter(url)()
        started = time.perf_counter()
        out = subprocess.run(
            [PYTHON, "-c", PYZK_SEQUENTIAL, *(str(s.port) for s in sims)], capture_output=True, text=True, check=True
        ).stdout
        pyzk_s = time.perf_counter() - started
    finally:
        for sim in sims:
            sim.stop()
    total, pyzk_rss_kb = (int(x) for x in out.split())
    assert total == expected and stored == expected, (out, stored)
    report(
        "many_terminals",
        terminals=args.terminals,
        records_each=args.records,
        cpus=os.cpu_count(),
        gateway_catch_up_to_store_s=round(gateway_s, 2),
        gateway_peak_rss_mb=round(gateway_rss, 1),
        baseline_pyzk_sequential_download_only_s=round(pyzk_s, 2),
        baseline_pyzk_peak_rss_mb=round(pyzk_rss_kb / 1024, 1),
        target_rss_mb=100,
        met=gateway_rss <= 100,
    )


if __name__ == "__main__":
    main()
