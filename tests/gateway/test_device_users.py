"""`ekinerja gateway devices --users`: the terminals' users as a CSV the registry imports once completed."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
from pathlib import Path

from ekinerja.drivers.sim.zk_device import ZkDevice
from ekinerja.drivers.sim.zk_server import ZkSimulator
from ekinerja.store.registry import read_employees

from stack import free_port, write_gateway_toml


def run_users(config: Path) -> subprocess.CompletedProcess[str]:
    args = [sys.executable, "-m", "ekinerja.cli", "gateway", "devices", "--users", "--config", str(config)]
    return subprocess.run(args, capture_output=True, text=True, timeout=60, cwd=config.parent)


def test_users_of_every_terminal_merge_into_one_importable_csv(tmp_path: Path) -> None:
    front = ZkDevice.generate(users=3, records=0, serial="FRONT00001", seed=1)
    side = ZkDevice.generate(users=2, records=0, serial="SIDE000001", seed=2, user_format=28)
    front.add_user("A7", "Tamu Dinas", uid=50, card=12345678)
    with ZkSimulator(front) as one, ZkSimulator(side, protocol="udp") as two:
        config = write_gateway_toml(tmp_path, "http://127.0.0.1:9", "token-0123456789",
                                    {"depan": (one.port, "tcp"), "samping": (two.port, "udp")})  # fmt: skip
        done = run_users(config)
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(io.StringIO(done.stdout)))
    assert [r["zk_user_id"] for r in rows] == ["1001", "1002", "1003", "A7"]
    assert [r["devices"] for r in rows] == ["depan samping", "depan samping", "depan", "depan"]
    assert rows[3]["name"] == "Tamu Dinas" and rows[3]["zk_card"] == "12345678"
    assert rows[0]["name"] == front.users[0].name and rows[0]["nip"] == rows[0]["unit"] == ""

    # The IT team fills in NIP, unit and the first day: the store's import takes the file as it is.
    nips = ["198503142010012003", "199001012015031001", "197912312005022002", "198801012012121001"]
    for row, nip in zip(rows, nips, strict=True):
        row.update(nip=nip, unit="Bagian Umum", active_from="2026-01-01")
    completed = io.StringIO()
    writer = csv.DictWriter(completed, list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    records, ignored = read_employees(completed.getvalue(), "completed.csv")
    assert [r.zk_user_id for _line, r in records] == ["1001", "1002", "1003", "A7"]
    assert ignored == ["devices", "zk_card"]


def test_an_offline_terminal_is_named_and_the_others_still_listed(tmp_path: Path) -> None:
    with ZkSimulator(ZkDevice.generate(users=2, records=0, seed=3)) as sim:
        config = write_gateway_toml(tmp_path, "http://127.0.0.1:9", "token-0123456789",
                                    {"depan": (sim.port, "tcp"), "mati": (free_port(), "udp")})  # fmt: skip
        done = run_users(config)
    assert done.returncode == 1
    assert "mati: OFFLINE, its users are not listed" in done.stderr and "Traceback" not in done.stderr
    assert [r["zk_user_id"] for r in csv.DictReader(io.StringIO(done.stdout))] == ["1001", "1002"]
