"""A throwaway certificate authority for TLS tests (the MQTT broker, the store over HTTPS), made with openssl."""

from __future__ import annotations

import subprocess
from pathlib import Path


def make_test_ca(folder: Path, name: str = "ca") -> tuple[Path, Path, Path]:
    """A throwaway CA and a certificate for 127.0.0.1 signed by it: (ca.pem, server.pem, server.key)."""
    ca_key, ca, key, csr, cert = (
        folder / f"{name}{suffix}" for suffix in (".key", ".pem", "-server.key", ".csr", "-server.pem")
    )
    san = folder / f"{name}-san.cnf"
    san.write_text("subjectAltName=IP:127.0.0.1\n")
    run = lambda *args: subprocess.run(["openssl", *args], check=True, capture_output=True)  # noqa: E731
    run(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        str(ca_key),
        "-out",
        str(ca),
        "-days",
        "2",
        "-subj",
        f"/CN=ekinerja test {name}",
    )
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr), "-subj", "/CN=127.0.0.1")
    run("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial", "-out", str(cert),
        "-days", "2", "-extfile", str(san))  # fmt: skip
    return ca, cert, key
