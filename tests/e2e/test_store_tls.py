"""The store over HTTPS with a throwaway CA: the store serves TLS from its config, the gateway verifies
it against its ``ca_file`` and refuses any other certificate. Real processes, real sockets."""

from __future__ import annotations

import os
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from ekinerja.config.gateway import GatewayConfig
from ekinerja.config.loader import load_model
from ekinerja.drivers.sim.zk_device import ZkDevice
from ekinerja.drivers.sim.zk_server import ZkSimulator
from ekinerja.gateway.buffer import PendingEvent
from ekinerja.gateway.service import GatewayService
from ekinerja.sync.push import PushClient, StoreUnavailable

from servers import free_port
from stack import FEED_AUTH, FEED_TOKEN, make_events, running, wait_for, write_gateway_toml
from throwaway_ca import make_test_ca

TOKEN = "tls-test-token-opd-1"
CLI = [sys.executable, "-m", "ekinerja.cli"]


def store_toml(folder: Path, port: int, tls: str) -> Path:
    path = folder / "store.toml"
    path.write_text(
        f'[store]\ndatabase_url = "sqlite:///{folder}/store.db"\nlisten = "127.0.0.1:{port}"\n{tls}\n'
        f'[[gateways]]\nid = "opd-1"\ntoken = "{TOKEN}"\n'
        f'[[clients]]\nid = "feed-reader"\ntoken = "{FEED_TOKEN}"\n',
        encoding="utf-8",
    )
    return path


@contextmanager
def https_store(folder: Path, ca: Path, tls: str) -> Iterator[str]:
    """``store serve --migrate`` with TLS; yields its https:// URL once it answers over TLS."""
    port = free_port()
    config = store_toml(folder, port, tls)
    log = folder / "store.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([*CLI, "store", "serve", "--migrate", "--config", str(config)], stdout=out, stderr=out)
    url = f"https://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, log.read_text()
            try:
                if httpx.get(url + "/healthz", verify=ssl.create_default_context(cafile=str(ca))).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0, log.read_text()


@pytest.fixture
def ca(tmp_path: Path) -> tuple[Path, Path, Path]:
    return make_test_ca(tmp_path)


def test_the_gateway_pushes_over_https_verified_against_its_ca(tmp_path: Path, ca: tuple[Path, Path, Path]) -> None:
    ca_file, cert, key = ca
    device = ZkDevice.generate(users=5, records=120, serial="TLS0000001", seed=31)
    tls = f'tls_cert = "{cert}"\ntls_key = "{key}"'
    with https_store(tmp_path, ca_file, tls) as url, ZkSimulator(device) as sim:
        config = write_gateway_toml(
            tmp_path, url, TOKEN, {"pintu": (sim.port, "tcp")}, extra_store=f'ca_file = "{ca_file}"'
        )
        service = GatewayService(load_model(config, GatewayConfig))
        trusted = ssl.create_default_context(cafile=str(ca_file))

        def stored() -> int:
            return len(httpx.get(url + "/v1/feed?limit=1000", verify=trusted, headers=FEED_AUTH).json()["items"])

        with running(service):
            wait_for(lambda: stored() == 120, 30, "the punches to reach the store over HTTPS")
        assert service.buffer.backlog().pending == 0
    assert "CERTIFICATE" not in (tmp_path / "store.log").read_text()


def test_any_other_certificate_or_plain_http_is_refused(tmp_path: Path, ca: tuple[Path, Path, Path]) -> None:
    ca_file, cert, key = ca
    stranger_ca, _cert, _key = make_test_ca(tmp_path, "stranger")
    pending = [PendingEvent(n, e) for n, e in enumerate(make_events(3))]
    with https_store(tmp_path, ca_file, f'tls_cert = "{cert}"\ntls_key = "{key}"') as url:
        for client in (PushClient(url, TOKEN, "opd-1"), PushClient(url, TOKEN, "opd-1", ca_file=stranger_ca)):
            with pytest.raises(StoreUnavailable, match="CERTIFICATE_VERIFY_FAILED"):
                client.push(pending)
            client.close()
        plain = PushClient(url.replace("https://", "http://"), TOKEN, "opd-1", timeout_s=3)
        with pytest.raises(StoreUnavailable, match="unreachable"):
            plain.push(pending)
        plain.close()
        trusted = PushClient(url, TOKEN, "opd-1", ca_file=ca_file)
        assert trusted.push(pending).accepted == 3
        trusted.close()


def test_an_encrypted_key_with_its_password(tmp_path: Path, ca: tuple[Path, Path, Path]) -> None:
    ca_file, cert, key = ca
    locked = tmp_path / "locked.key"
    subprocess.run(["openssl", "pkey", "-in", str(key), "-aes256", "-passout", "pass:kunci-rahasia", "-out",
                    str(locked)], check=True, capture_output=True)  # fmt: skip
    os.environ["EKINERJA_TEST_KEY_PW"] = "kunci-rahasia"
    tls = f'tls_cert = "{cert}"\ntls_key = "{locked}"\ntls_key_password = "${{EKINERJA_TEST_KEY_PW}}"'
    with https_store(tmp_path, ca_file, tls) as url:
        client = PushClient(url, TOKEN, "opd-1", ca_file=ca_file)
        assert client.push([PendingEvent(n, e) for n, e in enumerate(make_events(2))]).accepted == 2
        client.close()
    assert "kunci-rahasia" not in (tmp_path / "store.log").read_text()


@pytest.mark.parametrize(
    ("tls", "message"),
    [
        ('tls_cert = "{cert}"', "give both tls_cert and tls_key, or neither"),
        ('tls_cert = "{cert}"\ntls_key = "nowhere.key"', "nowhere.key: no such file"),
        ('tls_cert = "{garbage}"\ntls_key = "{key}"', "not a usable PEM file"),
        ('tls_cert = "{other_cert}"\ntls_key = "{key}"', "the key does not belong to the certificate"),
        ('tls_key_password = "x"', "tls_key_password is set without tls_cert and tls_key"),
    ],
)
def test_a_store_tls_mistake_is_exit_2_naming_it(
    tmp_path: Path, ca: tuple[Path, Path, Path], tls: str, message: str
) -> None:
    _ca, cert, key = ca
    _other_ca, other_cert, _other_key = make_test_ca(tmp_path, "other")
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("-----BEGIN CERTIFICATE-----\nbukan sertifikat\n-----END CERTIFICATE-----\n")
    filled = tls.format(cert=cert, key=key, garbage=garbage, other_cert=other_cert)
    config = store_toml(tmp_path, free_port(), filled)
    done = subprocess.run([*CLI, "store", "migrate", "--config", str(config)], capture_output=True, text=True,
                          timeout=60)  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert message in done.stderr and "store" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "store.db").exists(), "a config error changes nothing"


@pytest.mark.parametrize(
    ("url", "ca_line", "message"),
    [
        ("https://127.0.0.1:1", 'ca_file = "nowhere.pem"', "no such file"),
        ("https://127.0.0.1:1", 'ca_file = "{garbage}"', "not a usable PEM file"),
        ("http://127.0.0.1:1", 'ca_file = "{ca}"', "url is not https://"),
    ],
)
def test_a_gateway_ca_file_mistake_is_exit_2_naming_it(
    tmp_path: Path, ca: tuple[Path, Path, Path], url: str, ca_line: str, message: str
) -> None:
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate at all\n")
    config = write_gateway_toml(tmp_path, url, TOKEN, {}, extra_store=ca_line.format(garbage=garbage, ca=ca[0]))
    done = subprocess.run([*CLI, "gateway", "check-config", "--config", str(config)], capture_output=True, text=True,
                          timeout=60)  # fmt: skip
    assert done.returncode == 2
    assert "store" in done.stderr and "ca_file" in done.stderr and message in done.stderr
    assert "Traceback" not in done.stderr


def test_plain_http_to_another_machine_is_warned_about(tmp_path: Path) -> None:
    remote = load_model(write_gateway_toml(tmp_path, "http://10.20.30.40:8400", TOKEN, {}), GatewayConfig)
    local = load_model(write_gateway_toml(tmp_path, "http://127.0.0.1:8400", TOKEN, {}), GatewayConfig)
    secure = load_model(write_gateway_toml(tmp_path, "https://absensi.example.go.id", TOKEN, {}), GatewayConfig)
    assert [c.store.plain_http_to_remote() for c in (remote, local, secure)] == [True, False, False]
