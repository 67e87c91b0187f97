"""`ekinerja demo` as a newcomer runs it: everything on one machine, stopped cleanly after N seconds."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import pytest

from pcscd import PCSCD_GROUP, Pcscd

# Every demo uses this machine's pcscd when one answers, and takes port 8401 for its page when it
# is free: with the pcscd fixture or without, the demos run one at a time, beside pcscd's tests.
pytestmark = pytest.mark.xdist_group(PCSCD_GROUP)

CLI = [sys.executable, "-m", "ekinerja.cli"]


def test_demo_runs_and_every_punch_reaches_the_store(tmp_path: Path, pcscd: Pcscd) -> None:
    done = subprocess.run(
        [*CLI, "demo", "--seconds", "6", "--port", "0", "--punch-every", "1", "--data-dir", str(tmp_path / "demo")],
        capture_output=True, text=True, timeout=90, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    feed_line = r'punch feed:\s+curl -H "Authorization: Bearer \S+" "http://127\.0\.0\.1:\d+/v1/feed\?after=0"'
    assert re.search(feed_line, out)
    assert re.search(r"API \(OpenAPI\): http://127\.0\.0\.1:\d+/docs", out)
    assert re.search(r"status page:\s+http://127\.0\.0\.1:\d+/ ", out)
    assert "(tcp, live capture)" in out and "(udp, polled every 2 s)" in out
    assert "RFID reader kartu-pintu: 'Virtual PCD 00 00' under pcscd" in out
    final = re.search(r"demo stopped: (\d+) punches on the terminals, (\d+) card punches \((\d+) taps\), (\d+) in", out)
    assert final, out
    on_terminals, card_punches, taps, in_store = map(int, final.groups())
    assert on_terminals > 240  # 2 x 120 generated, plus the ones punched during the run
    assert taps >= 3 and card_punches == taps  # one card a second, a different card each time
    assert in_store == on_terminals + card_punches
    assert "Traceback" not in done.stderr

    # The demo registered the terminals' users: the reports it points to have them.
    nip = re.search(r"/v1/attendance/daily\?nip=(\d{18})&from=", out)
    assert nip, out
    config = tmp_path / "store.toml"
    config.write_text(f'[store]\ndatabase_url = "sqlite:///{tmp_path}/demo/store.db"\n')
    today = date.today()
    daily = subprocess.run(
        [*CLI, "store", "report", "daily", "--config", str(config), "--nip", nip.group(1),
         "--from", str(today - timedelta(days=10)), "--to", str(today)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert daily.returncode == 0, daily.stderr
    assert any(day["first_in"] for day in json.loads(daily.stdout)["days"]), daily.stdout


def short_demo(python: list[str], folder: Path) -> subprocess.CompletedProcess[str]:
    """A 3-second demo; it must exit 0."""
    done = subprocess.run(
        [*python, "demo", "--seconds", "3", "--port", "0", "--data-dir", str(folder / "demo")],
        capture_output=True, text=True, timeout=90, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def test_demo_without_a_card_reader_says_how_to_add_one(tmp_path: Path, pcscd_daemon: Pcscd) -> None:
    pcscd_daemon.stop()
    done = short_demo(CLI, tmp_path)
    assert "RFID reader: not in this demo: pcscd is not running" in done.stdout
    assert "apt-get install pcscd vsmartcard-vpcd" in done.stdout
    final = re.search(r"demo stopped: (\d+) punches on the terminals, 0 card punches \(0 taps\), (\d+) in", done.stdout)
    assert final and final.group(1) == final.group(2), done.stdout


# pyscard is an optional extra (it compiles): a machine without it runs the demo and its terminals.
WITHOUT_PYSCARD = [
    sys.executable,
    "-c",
    "import sys; sys.modules['smartcard'] = None; from ekinerja.cli import main; sys.exit(main(sys.argv[1:]))",
]


def test_demo_runs_without_pyscard(tmp_path: Path) -> None:
    done = short_demo(WITHOUT_PYSCARD, tmp_path)
    assert "RFID reader: not in this demo: pyscard is not installed" in done.stdout
    assert "Traceback" not in done.stderr


def test_a_card_reader_without_pyscard_is_a_clear_error(tmp_path: Path) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text(
        '[gateway]\nid = "opd-1"\n[store]\nurl = "http://127.0.0.1:9"\ntoken = "token-12345"\n'
        '[[devices]]\nid = "kartu"\nkind = "pcsc"\nreader = "ACR122U"\n'
    )
    checked = subprocess.run(
        [*WITHOUT_PYSCARD, "gateway", "check-config", "--config", str(config)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert checked.returncode == 0 and "warning: card readers (kind = pcsc) need pyscard" in checked.stdout
    ran = subprocess.run(
        [*WITHOUT_PYSCARD, "gateway", "run", "--config", str(config)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert ran.returncode == 1, ran.stdout + ran.stderr
    assert "pip install 'ekinerja-gateway[pcsc]'" in ran.stderr and "Traceback" not in ran.stderr
