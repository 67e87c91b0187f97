"""`ekinerja demo` as a newcomer runs it: everything on one machine, stopped cleanly after N seconds."""

from __future__ import annotations

import re
import subprocess
import sys


def test_demo_runs_and_every_punch_reaches_the_store() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "ekinerja.cli", "demo", "--seconds", "6", "--port", "0", "--punch-every", "1"],
        capture_output=True, text=True, timeout=90, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert re.search(r"punch feed:\s+http://127\.0\.0\.1:\d+/v1/feed\?after=0", out)
    assert re.search(r"API \(OpenAPI\): http://127\.0\.0\.1:\d+/docs", out)
    assert "(tcp)" in out and "(udp)" in out
    final = re.search(r"demo stopped: (\d+) punches on the terminals, (\d+) in the store\.", out)
    assert final, out
    on_terminals, in_store = map(int, final.groups())
    assert on_terminals == in_store > 240  # 2 x 120 generated, plus the ones punched during the run
    assert "Traceback" not in done.stderr
