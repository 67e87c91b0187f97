"""deploy/nginx/ekinerja-store.conf in front of a real store, with a throwaway CA's certificate.

The shipped file is used as it is, but for what a test machine must change: its ports (free ones
on 127.0.0.1), the store's port and the certificate paths. nginx runs as this test's child.
"""

from __future__ import annotations

import re
import shutil
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from ekinerja.sync.contract import Batch

from servers import free_port
from stack import FEED_AUTH, make_events, read_whole_feed, store_server
from throwaway_ca import make_test_ca

SHIPPED = Path(__file__).resolve().parents[2] / "deploy" / "nginx" / "ekinerja-store.conf"
TOKEN = "nginx-test-token"
MAIN = """user root;
pid {dir}/nginx.pid;
error_log {dir}/error.log;
events {{}}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    include {dir}/site.conf;
}}
"""


def site(store_port: int, http_port: int, https_port: int, cert: Path, key: Path) -> str:
    text = SHIPPED.read_text()
    text = "\n".join(line for line in text.splitlines() if "listen [::]" not in line)  # IPv6 may be off here
    replacements = {
        "server 127.0.0.1:8400;": f"server 127.0.0.1:{store_port};",
        "listen 80;": f"listen 127.0.0.1:{http_port};",
        "listen 443 ssl http2;": f"listen 127.0.0.1:{https_port} ssl http2;",
        "/etc/ssl/ekinerja/fullchain.pem": str(cert),
        "/etc/ssl/ekinerja/privkey.pem": str(key),
    }
    for old, new in replacements.items():
        assert text.count(old) == 1, f"the shipped file no longer has {old!r}"
        text = text.replace(old, new)
    return text


@pytest.fixture
def proxied(tmp_path: Path) -> Iterator[tuple[str, str, str, Path]]:
    """A store behind nginx; yields (https URL, http URL, the store's own URL, the CA file)."""
    nginx = shutil.which("nginx", path="/usr/sbin:/usr/bin")
    if nginx is None:
        pytest.fail("nginx is missing: scripts/test.sh installs nginx-light")
    ca, cert, key = make_test_ca(tmp_path)
    http_port, https_port = free_port(), free_port()
    with store_server(f"sqlite:///{tmp_path}/store.db", {"opd-1": TOKEN}) as direct:
        store_port = int(direct.rsplit(":", 1)[1])
        (tmp_path / "site.conf").write_text(site(store_port, http_port, https_port, cert, key))
        main = tmp_path / "nginx.conf"
        main.write_text(MAIN.format(dir=tmp_path))
        checked = subprocess.run([nginx, "-t", "-p", str(tmp_path), "-c", str(main)], capture_output=True, text=True)
        assert checked.returncode == 0 and "syntax is ok" in checked.stderr, checked.stderr
        proc = subprocess.Popen([nginx, "-p", str(tmp_path), "-c", str(main), "-g", "daemon off;"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        try:
            deadline = time.monotonic() + 10
            while socket.socket().connect_ex(("127.0.0.1", https_port)) != 0:
                assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "error.log").read_text()
                time.sleep(0.05)
            yield f"https://127.0.0.1:{https_port}", f"http://127.0.0.1:{http_port}", direct, ca
        finally:
            proc.send_signal(signal.SIGQUIT)  # graceful: finish the requests in flight
            proc.wait(timeout=10)


def test_the_store_behind_nginx_over_https(proxied: tuple[str, str, str, Path]) -> None:
    https, http, direct, ca = proxied
    with httpx.Client(base_url=https, verify=ssl.create_default_context(cafile=str(ca)), timeout=30) as client:
        health = client.get("/healthz")
        assert health.status_code == 200 and health.headers["strict-transport-security"] == "max-age=31536000"
        batch = Batch(gateway_id="opd-1", sent_at=datetime.now(UTC), events=make_events(2000))
        headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
        pushed = client.post("/v1/punches", content=batch.model_dump_json(), headers=headers)
        assert pushed.status_code == 200 and pushed.json()["accepted"] == 2000
        assert client.get("/v1/feed", params={"limit": 5}, headers=FEED_AUTH).json()["items"][0]["seq"] == 1
        too_big = client.post("/v1/punches", content=b"x" * (17 * 1024 * 1024), headers={"Authorization": "Bearer x"})
        assert too_big.status_code == 413, "nginx stops a body over the store's own limit"
        # The sign-in cookie is Secure behind nginx (X-Forwarded-Proto), and only there.
        secure = client.get("/masuk").headers["set-cookie"]
    plain = httpx.get(f"{direct}/masuk").headers["set-cookie"]
    assert "ekinerja_login=" in secure and "Secure" in secure and "Secure" not in plain
    redirect = httpx.get(f"{http}/healthz")
    assert redirect.status_code == 301 and redirect.headers["location"] == "https://127.0.0.1/healthz"
    assert len(read_whole_feed(direct)) == 2000
    with pytest.raises(httpx.ConnectError):  # a gateway that does not know the CA is refused
        httpx.get(f"{https}/healthz")
    assert re.search(r"^\s*server_name absensi\.example\.go\.id;", SHIPPED.read_text(), re.M)
