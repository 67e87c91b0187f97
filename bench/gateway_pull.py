"""The whole pull into the durable buffer, as processes from start to exit.

`ekinerja gateway pull` (connect, download, parse, map to events, commit to the buffer) against a
process that only calls pyzk's get_attendance() and stores nothing, both reading the same
100,000-record simulated terminal (its own process) over loopback TCP.
Target (issue 2): at least 8x faster.
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
from pathlib import Path

from harness import PYTHON, free_port, report, timed_process, write_gateway_config

PYZK_ONLY = """
import sys
from zk import ZK
conn = ZK("127.0.0.1", port=int(sys.argv[1]), timeout=300, ommit_ping=True).connect()
print(len(conn.get_attendance()))
conn.disconnect()
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=100_000)
    args = parser.parse_args()
    port = free_port()
    sim = subprocess.Popen(
        [PYTHON, "-m", "ekinerja.cli", "--log-level", "WARNING", "sim", "zk", "--port", str(port),
         "--protocol", "tcp", "--users", "500", "--records", str(args.records), "--seed", "7"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert sim.stdout is not None
        sim.stdout.readline()  # the "listening" line
        with tempfile.TemporaryDirectory() as tmp:
            config = write_gateway_config(
                Path(tmp), "http://127.0.0.1:9", [{"id": "pintu", "kind": "zk", "host": "127.0.0.1", "port": port}]
            )
            pull_s, out = timed_process([PYTHON, "-m", "ekinerja.cli", "gateway", "pull", "--config", str(config)])
            assert f"{args.records} new" in out, out
            time.sleep(0.5)
            pyzk_s, out = timed_process([PYTHON, "-c", PYZK_ONLY, str(port)])
            assert int(out) == args.records, out
    finally:
        sim.terminate()
        sim.wait(10)
    report(
        "gateway_pull",
        records=args.records,
        gateway_pull_process_s=round(pull_s, 3),
        pyzk_get_attendance_process_s=round(pyzk_s, 3),
        speedup=round(pyzk_s / pull_s, 1),
        target=8,
        met=pyzk_s / pull_s >= 8,
    )


if __name__ == "__main__":
    main()
