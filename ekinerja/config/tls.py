"""Checks of the TLS files a config names, so a bad file is a config error naming its key, not a
traceback from the TLS library when the first connection is made."""

from __future__ import annotations

import ssl
from pathlib import Path


def _reason(exc: ssl.SSLError | OSError) -> str:
    if isinstance(exc, ssl.SSLError):
        return f"not a usable PEM file ({exc.reason or exc.strerror or exc})"
    return exc.strerror or str(exc)


def ca_file_problem(path: Path) -> str | None:
    """Why ``path`` cannot serve as the CA certificates to verify a server against, or None."""
    if not path.is_file():
        return "no such file"
    try:
        ssl.create_default_context(cafile=str(path))
    except (ssl.SSLError, OSError) as exc:
        return _reason(exc)
    return None


def server_cert_problem(cert: Path, key: Path, password: str | None) -> str | None:
    """Why ``cert`` and ``key`` cannot serve HTTPS (missing, not PEM, not a pair, wrong password), or None."""
    for path in (cert, key):
        if not path.is_file():
            return f"{path}: no such file"
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(str(cert), str(key), password)
    except ssl.SSLError as exc:
        if "KEY_VALUES_MISMATCH" in str(exc):
            return "the key does not belong to the certificate"
        if "BAD_DECRYPT" in str(exc) or "bad decrypt" in str(exc):
            return "the key's password is wrong (tls_key_password)"
        return _reason(exc)
    except OSError as exc:
        return _reason(exc)
    return None
