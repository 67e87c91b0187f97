"""``ekinerja store user ...`` as an IT technician runs it: real processes on SQLite."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pyotp
import pytest

from ekinerja.store import accounts
from ekinerja.store.db import make_engine

CLI = [sys.executable, "-m", "ekinerja.cli", "store"]


def run(tmp_path: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = os.environ | {"USER": "petugas-it"}
    return subprocess.run([*CLI, *args, "--config", str(tmp_path / "store.toml")], input=stdin, capture_output=True,
                          text=True, timeout=60, cwd=tmp_path, env=env)  # fmt: skip


@pytest.fixture
def store(tmp_path: Path) -> Path:
    (tmp_path / "store.toml").write_text(f'[store]\ndatabase_url = "sqlite:///{tmp_path}/store.db"\n')
    assert run(tmp_path, "migrate").returncode == 0
    return tmp_path


def sign_in(folder: Path, username: str, password: str, secret: str) -> accounts.LoginResult:
    engine = make_engine(f"sqlite:///{folder}/store.db")
    try:
        now = datetime.now(UTC).replace(tzinfo=None)
        return accounts.authenticate(engine, username, password, pyotp.TOTP(secret).now(), now)
    finally:
        engine.dispose()


def secret_of(output: str) -> str:
    found = re.search(r"enter the key by hand: ([A-Z2-7]{32})", output)
    assert found, output
    return found.group(1)


def test_add_sign_in_passwd_reset_totp_and_list(store: Path) -> None:
    added = run(store, "user", "add", "kabag.umum", "--name", "Kepala Bagian Umum", "--role", "head",
                "--unit", "Bagian Umum", "--password-stdin", stdin="sandi-kabag-umum-1\n")  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert "user kabag.umum added as head of Bagian Umum" in added.stdout
    assert "█" in added.stdout or "▀" in added.stdout, "a QR code for the authenticator app"
    secret = secret_of(added.stdout)
    assert "otpauth://totp/e-Kinerja%20absensi:kabag.umum?secret=" in added.stdout
    assert sign_in(store, "kabag.umum", "sandi-kabag-umum-1", secret).user is not None
    changed = run(store, "user", "passwd", "kabag.umum", "--password-stdin", stdin="sandi-baru-kabag-2\n")
    assert changed.returncode == 0 and "password of kabag.umum set" in changed.stdout
    reset = run(store, "user", "reset-totp", "kabag.umum")
    new_secret = secret_of(reset.stdout)
    assert new_secret != secret
    listed = run(store, "user", "list")
    assert listed.stdout.strip() == "kabag.umum\thead\tBagian Umum\tKepala Bagian Umum"
    assert run(store, "user", "unlock", "kabag.umum").returncode == 0
    disabled = run(store, "user", "disable", "kabag.umum")
    assert disabled.returncode == 0 and "may no longer sign in" in disabled.stdout
    assert sign_in(store, "kabag.umum", "sandi-baru-kabag-2", new_secret).user is None, "a disabled user cannot"
    assert run(store, "user", "list").stdout.strip().endswith("\tdisabled")
    assert run(store, "user", "enable", "kabag.umum").returncode == 0
    assert sign_in(store, "kabag.umum", "sandi-baru-kabag-2", new_secret).user is not None


MISTAKES = [
    (["add", "kabag", "--name", "K", "--role", "head", "--password-stdin"], "sandi-cukup-panjang\n", "needs --unit"),
    (["add", "sdm", "--name", "S", "--role", "personnel", "--password-stdin"], "pendek\n", "shorter than 10"),
    (["add", "Bukan Nama", "--name", "X", "--role", "admin", "--password-stdin"], "sandi-cukup-panjang\n",
     "a user name is"),
    (["add", "x1", "--name", "X", "--role", "boss"], "", "invalid choice: 'boss'"),
    (["passwd", "siapa", "--password-stdin"], "sandi-yang-cukup-panjang\n", "no user 'siapa'"),
    (["reset-totp", "siapa"], "", "no user 'siapa'"),
    (["disable", "siapa"], "", "no user 'siapa'"),
]  # fmt: skip


def test_mistakes_are_one_line_exit_2_and_change_nothing(store: Path) -> None:
    # One store for every case: each command is a process, and each would otherwise migrate its own.
    for args, stdin, message in MISTAKES:
        done = run(store, "user", *args, stdin=stdin)
        assert done.returncode == 2, (args, done.stdout + done.stderr)
        assert message in done.stderr and "Traceback" not in done.stderr, args
    assert run(store, "user", "list").stdout == ""


def test_a_head_s_unit_must_be_one_the_registry_names(store: Path) -> None:
    empty = run(store, "user", "add", "kabag.baru", "--name", "K", "--role", "head", "--unit", "Bagian Baru",
                "--password-stdin", stdin="sandi-cukup-panjang\n")  # fmt: skip
    assert empty.returncode == 0 and "warning: the registry has no employees yet" in empty.stderr, empty.stderr
    people = store / "pegawai.csv"
    people.write_text(
        "nip,name,unit,zk_user_id,card_uid,active_from\n"
        "198503142010012003,Ani Lestari,Bagian Umum,1001,,2025-01-01\n"
        "197912312005022002,Citra Dewi,Bidang Aset,1003,,2025-01-01\n"
    )
    assert run(store, "import-employees", str(people)).returncode == 0
    typo = run(store, "user", "add", "kabag.umum", "--name", "K", "--role", "head", "--unit", "Bagian Umm",
               "--password-stdin", stdin="sandi-cukup-panjang\n")  # fmt: skip
    assert typo.returncode == 2 and "Traceback" not in typo.stderr, typo.stderr
    assert "unit 'Bagian Umm' is not in the registry (its units: Bagian Umum, Bidang Aset)" in typo.stderr
    assert "kabag.umum" not in run(store, "user", "list").stdout, "nothing was changed"
    right = run(store, "user", "add", "kabag.umum", "--name", "K", "--role", "head", "--unit", "Bagian Umum",
                "--password-stdin", stdin="sandi-cukup-panjang\n")  # fmt: skip
    assert right.returncode == 0 and "warning" not in right.stderr, right.stderr
