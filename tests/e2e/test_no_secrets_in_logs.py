"""No token, password or comm key in any log line: a full run at DEBUG, grepped.

The store runs on PostgreSQL (password in its URL) over HTTPS (an encrypted key), with a gateway
token made by `store gateway add`, one from store.toml and client tokens; the gateway pushes with
its token, reads two terminals with comm keys (one of them wrong), publishes to mosquitto over TLS
with a password, and serves its page behind basic auth. Wrong tokens, a wrong page password and
a wrong database password are tried as well, and every command's output is grepped too.
"""

from __future__ import annotations

import base64
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from ekinerja.drivers.sim.zk_device import ZkDevice
from ekinerja.drivers.sim.zk_server import ZkSimulator
from ekinerja.sync.contract import Batch

from mosquitto import PASSWORD as MQTT_PASSWORD
from mosquitto import USER as MQTT_USER
from mosquitto import Mosquitto, Requester
from servers import PASSWORD as DB_PASSWORD
from servers import PostgresServer, free_port, unique_name
from stack import make_events, wait_for
from throwaway_ca import make_test_ca

CLI = [sys.executable, "-m", "ekinerja.cli", "--log-level", "DEBUG"]
COMM_KEY, WRONG_COMM_KEY = 987123, 456789
SECRETS_ENV = {
    "EK_DB_PW": DB_PASSWORD,
    "EK_OLD_GATEWAY_TOKEN": "rahasia-gateway-lama-5531",
    "EK_CORE_TOKEN": "rahasia-pembaca-core-8812",
    "EK_ADMIN_TOKEN": "rahasia-admin-bkd-2290",
    "EK_KEY_PW": "rahasia-kunci-tls-7745",
    "EK_WEB_PW": "rahasia-halaman-status-3318",
    "EK_MQTT_PW": MQTT_PASSWORD,
}


def run(*args: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout, env=env, check=False)


def store_toml(folder: Path, db_url: str, port: int, cert: Path, key: Path) -> Path:
    path = folder / "store.toml"
    path.write_text(
        f'[store]\ndatabase_url = "{db_url}"\nlisten = "127.0.0.1:{port}"\n'
        f'tls_cert = "{cert}"\ntls_key = "{key}"\ntls_key_password = "${{EK_KEY_PW}}"\n'
        '[[gateways]]\nid = "opd-lama"\ntoken = "${EK_OLD_GATEWAY_TOKEN}"\n'
        '[[clients]]\nid = "ekinerja-core"\ntoken = "${EK_CORE_TOKEN}"\n'
        '[[clients]]\nid = "bkd-admin"\ntoken = "${EK_ADMIN_TOKEN}"\ncan_write = true\n',
        encoding="utf-8",
    )
    return path


def gateway_toml(folder: Path, store_url: str, ca: Path, ports: tuple[int, int], broker: Mosquitto) -> Path:
    path = folder / "gateway.toml"
    path.write_text(
        f'[gateway]\nid = "opd-1"\ndata_dir = "data"\n'
        f'[store]\nurl = "{store_url}"\ntoken = "${{EK_GATEWAY_TOKEN}}"\nca_file = "{ca}"\npush_interval_s = 0.5\n'
        f'[web]\nlisten = "127.0.0.1:{free_port()}"\n'
        'username = "operator"\npassword = "${EK_WEB_PW}"\n'
        f'[mqtt]\nhost = "127.0.0.1"\nport = {broker.tls_port}\ntls = true\nca_file = "{broker.ca_file}"\n'
        f'username = "{MQTT_USER}"\npassword = "${{EK_MQTT_PW}}"\nstate_interval_s = 1\n'
        f'[[devices]]\nid = "pintu"\nkind = "zk"\nhost = "127.0.0.1"\nport = {ports[0]}\npassword = {COMM_KEY}\n'
        "poll_interval_s = 1\ntimeout_s = 3\n"
        f'[[devices]]\nid = "pintu-salah"\nkind = "zk"\nhost = "127.0.0.1"\nport = {ports[1]}\n'
        f"password = {WRONG_COMM_KEY}\npoll_interval_s = 1\ntimeout_s = 3\nmax_backoff_s = 2\n",
        encoding="utf-8",
    )
    return path


def leaks(text: str, secrets: list[str]) -> list[str]:
    """Each secret found in ``text`` (numbers only as whole numbers), with the line it is on."""
    found = []
    for secret in secrets:
        pattern = rf"(?<!\d){secret}(?!\d)" if secret.isdigit() else re.escape(secret)
        found += [f"{secret!r} in: {line[:200]}" for line in text.splitlines() if re.search(pattern, line)]
    return found


@pytest.fixture
def postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL of its own: the password in the store's URL is one of the secrets grepped for."""
    server = PostgresServer()
    try:
        server.start()
        yield server
    finally:
        server.stop()


def test_a_full_run_logs_no_secret(tmp_path: Path, postgres: PostgresServer) -> None:
    ca, cert, key = make_test_ca(tmp_path)
    locked = tmp_path / "store.key"
    subprocess.run(["openssl", "pkey", "-in", str(key), "-aes256", "-passout", f"pass:{SECRETS_ENV['EK_KEY_PW']}",
                    "-out", str(locked)], check=True, capture_output=True)  # fmt: skip
    name = unique_name("secrets")
    postgres.create_database(name)
    db_url = f"postgresql+psycopg://ekinerja:${{EK_DB_PW}}@127.0.0.1:{postgres.port}/{name}"
    env = os.environ | SECRETS_ENV
    outputs: list[str] = []
    port = free_port()
    config = store_toml(tmp_path, db_url, port, cert, locked)

    wrong_db = tmp_path / "wrong-password.toml"
    wrong_db.write_text(config.read_text().replace("${EK_DB_PW}", "sandi-db-salah-6604"))
    refused = run("store", "migrate", "--config", str(wrong_db), env=env)
    assert refused.returncode == 1 and "password authentication failed" in refused.stderr
    outputs += [refused.stdout, refused.stderr]

    for args in (("store", "migrate"), ("store", "gateway", "list")):
        done = run(*args, "--config", str(config), env=env)
        assert done.returncode == 0, done.stderr
        outputs += [done.stdout, done.stderr]
    made = run("store", "gateway", "add", "opd-1", "--config", str(config), env=env)
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    outputs.append(made.stderr)  # stdout is the token itself, shown once by design
    env["EK_GATEWAY_TOKEN"] = token
    secrets = [*SECRETS_ENV.values(), "sandi-db-salah-6604", token, str(COMM_KEY), str(WRONG_COMM_KEY)]
    secrets.append(base64.b64encode(f"operator:{SECRETS_ENV['EK_WEB_PW']}".encode()).decode())

    store_log, gateway_log = tmp_path / "store.log", tmp_path / "gateway.log"
    device = ZkDevice.generate(users=4, records=40, serial="SECRET0001", seed=41)
    other = ZkDevice.generate(users=2, records=5, serial="SECRET0002", seed=42)
    broker = Mosquitto(tls=True)
    broker.start()
    with (
        ZkSimulator(device, password=COMM_KEY) as sim,
        ZkSimulator(other, password=COMM_KEY) as wrong_sim,
        store_log.open("wb") as store_out,
        gateway_log.open("wb") as gateway_out,
    ):
        store = subprocess.Popen([*CLI, "store", "serve", "--config", str(config)], stdout=store_out,
                                 stderr=store_out, env=env)  # fmt: skip
        url = f"https://127.0.0.1:{port}"
        gw_config = gateway_toml(tmp_path, url, ca, (sim.port, wrong_sim.port), broker)
        gateway = subprocess.Popen([*CLI, "gateway", "run", "--config", str(gw_config)], stdout=gateway_out,
                                   stderr=gateway_out, env=env)  # fmt: skip
        try:
            exercise(url, ca, gw_config, env, token, broker, outputs, gateway_log)
        finally:
            for proc in (gateway, store):
                proc.send_signal(signal.SIGTERM)
                proc.wait(30)
            broker.close()
    logs = store_log.read_text() + gateway_log.read_text()
    assert "batch from gateway opd-1" in logs, "the store's DEBUG log ran"
    assert "pintu-salah (tcp://127.0.0.1:" in gateway_log.read_text() and "comm key refused" in logs
    found = leaks(logs + "\n".join(outputs), secrets)
    assert found == [], "\n".join(found)


def exercise(
    url: str, ca: Path, gw_config: Path, env: dict[str, str], token: str, broker: Mosquitto,
    outputs: list[str], gateway_log: Path,
) -> None:  # fmt: skip
    """Use every secret-bearing path: pushes, refusals, the page, MQTT commands, the CLI."""
    import ssl

    trusted = ssl.create_default_context(cafile=str(ca))
    core = {"Authorization": f"Bearer {SECRETS_ENV['EK_CORE_TOKEN']}"}

    def stored() -> int:
        try:
            answer = httpx.get(url + "/v1/feed?limit=1000", verify=trusted, headers=core, timeout=5)
        except httpx.TransportError:  # the store is still starting
            return -1
        return len(answer.json()["items"]) if answer.status_code == 200 else -1

    wait_for(lambda: stored() == 40, 60, f"the punches to reach the store\n{gateway_log.read_text()[-3000:]}")
    forged = httpx.post(url + "/v1/punches", json={}, headers={"Authorization": "Bearer dicoba-token-palsu-1"},
                        verify=trusted)  # fmt: skip
    assert forged.status_code == 401
    old = {"Authorization": f"Bearer {SECRETS_ENV['EK_OLD_GATEWAY_TOKEN']}"}
    batch = Batch(gateway_id="opd-1", sent_at=datetime.now(UTC), events=make_events(2)).model_dump(mode="json")
    as_other = httpx.post(url + "/v1/punches", json=batch, headers=old, verify=trusted)
    assert as_other.status_code == 403
    admin = {"Authorization": f"Bearer {SECRETS_ENV['EK_ADMIN_TOKEN']}"}
    assert httpx.get(url + "/v1/audit", headers=admin, verify=trusted).status_code == 200
    web = re.search(r"status page on (http://\S+)", gateway_log.read_text())
    assert web is not None, gateway_log.read_text()[-2000:]
    page = web.group(1).rstrip("/")
    assert httpx.get(page + "/api/status", auth=("operator", "salah-sandi-halaman")).status_code == 401
    assert httpx.get(page + "/api/status", auth=("operator", SECRETS_ENV["EK_WEB_PW"])).status_code == 200
    requester = Requester(broker, "ekinerja/opd-1")
    try:
        answer, _ = requester.request("status")
        assert answer["ok"] is True
    finally:
        requester.close()
    time.sleep(2)  # a few more polls of the terminal with the wrong comm key, and state publishes
    for args in (("backlog",), ("check-config",), ("devices",)):
        done = run("gateway", *args, "--config", str(gw_config), env=env, timeout=90)
        outputs += [done.stdout, done.stderr]
