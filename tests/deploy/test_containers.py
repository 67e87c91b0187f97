"""deploy/container/: no container runtime runs on these machines, so what can be checked without one is:
the files the compose files mount and the Dockerfile copies exist, their commands parse with the real
command line, the configs they mount pass the real config checks, and every secret they name is in
env.example. What runs inside is what deploy/install.sh installs, tested in test_install.py.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from ekinerja.cli import build_parser
from ekinerja.config.loader import load_model
from ekinerja.config.store import StoreConfig
from ekinerja.store.attendance import Office

REPO = Path(__file__).resolve().parents[2]
HERE = REPO / "deploy" / "container"
MADE_BY_THE_OPERATOR = {"./mosquitto/passwd", "./mosquitto/certs"}  # deploy/mosquitto/README.md says how


def compose(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((HERE / name).read_text())
    return loaded


def secrets_of(text: str) -> set[str]:
    """The ${NAME} values a file reads from the environment (comments left out)."""
    lines = (line for line in text.splitlines() if not line.lstrip().startswith("#"))
    return set(re.findall(r"\$\{([A-Z_]+)[:?}]", "\n".join(lines)))


def listed() -> set[str]:
    return set(re.findall(r"^([A-Z_]+)=", (HERE / "env.example").read_text(), re.M))


@pytest.mark.parametrize("name", ["compose.central.yml", "compose.gateway.yml"])
def test_what_a_compose_file_mounts_builds_and_runs_exists(name: str) -> None:
    services = compose(name)["services"]
    for service, spec in services.items():
        for volume in spec.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith(".") and source not in MADE_BY_THE_OPERATOR:
                assert (HERE / source).exists(), f"{name}: {service} mounts {source}, which is missing"
        if "build" in spec:
            context = (HERE / spec["build"]["context"]).resolve()
            assert context == REPO and (context / spec["build"]["dockerfile"]).is_file()
        command = spec.get("command", [])
        if spec.get("image", "").startswith("ekinerja"):
            build_parser().parse_args(command)  # exits (SystemExit) if the command line does not exist
            config = Path(command[command.index("--config") + 1])
            mounted = [v.split(":")[0] for v in spec["volumes"] if v.split(":")[1] == str(config)]
            assert mounted, f"{name}: {service} reads {config}, which it does not mount"
    assert "postgres" not in services or "fsync" not in str(services["postgres"]), "durable commits stay on"


def test_the_dockerfile_copies_what_exists_and_runs_a_supported_python() -> None:
    text = (HERE / "Dockerfile").read_text()
    for line in re.findall(r"^COPY (.+) \S+$", text, re.M):
        for source in line.split():
            assert (REPO / source).exists(), f"Dockerfile copies {source}, which is missing"
    version = re.search(r"^FROM python:(\d+)\.(\d+)", text, re.M)
    assert version and (int(version[1]), int(version[2])) >= (3, 11)
    assert re.search(r"^USER ekinerja$", text, re.M), "the image does not run as root"
    entry = re.search(r"^CMD \[(.+)\]$", text, re.M)
    assert entry
    build_parser().parse_args([part.strip().strip('"') for part in entry[1].split(",")])


def test_the_mounted_configs_pass_the_real_checks(tmp_path: Path) -> None:
    env = {name: f"value-of-{name.lower()}" for name in listed()}
    os.environ.update(env)
    try:
        store = load_model(HERE / "store.toml", StoreConfig)
        Office.from_config(store, HERE)
        assert store.store.listen == "0.0.0.0:8400" and "value-of-ekinerja_db_password" in store.store.database_url
    finally:
        for name in env:
            os.environ.pop(name, None)
    checked = subprocess.run(
        [sys.executable, "-m", "ekinerja.cli", "gateway", "check-config", "--config", str(HERE / "gateway.toml")],
        capture_output=True, text=True, env=os.environ | env, check=False,
    )  # fmt: skip
    assert checked.returncode == 0 and "data in /var/lib/ekinerja/gateway" in checked.stdout, checked.stderr


def test_every_secret_named_is_in_env_example() -> None:
    used = set()
    for name in ("store.toml", "gateway.toml", "compose.central.yml", "compose.gateway.yml"):
        used |= secrets_of((HERE / name).read_text())
    assert used and used <= listed(), f"not in env.example: {sorted(used - listed())}"
