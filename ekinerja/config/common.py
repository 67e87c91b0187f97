"""Field types shared by the gateway's and the store's config models."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit, urlunsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationInfo

from ekinerja.sync.contract import ZoneName

__all__ = ["ListenAddress", "ListenAddressOrAnyPort", "Section", "ZoneName", "resolve_path"]


class Section(BaseModel):
    """Base of every config table: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")


def _check_listen(value: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError("must be HOST:PORT, e.g. 127.0.0.1:8400")
    return value


ListenAddress = Annotated[str, AfterValidator(_check_listen)]


def _check_listen_any_port(value: str) -> str:
    return value if value.endswith(":0") and value[:-2] else _check_listen(value)


ListenAddressOrAnyPort = Annotated[str, AfterValidator(_check_listen_any_port)]
"""HOST:PORT, where port 0 picks a free port (tests, the demo)."""


def split_listen(value: str) -> tuple[str, int]:
    """``"127.0.0.1:8400"`` -> ``("127.0.0.1", 8400)``."""
    host, _, port = value.rpartition(":")
    return host.strip("[]"), int(port)


def without_credentials(url: str) -> str:
    """``url`` without any user:password part, for logs and screens."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit(parts._replace(netloc=netloc))


def resolve_path(value: Path, info: ValidationInfo) -> Path:
    """Relative paths in a config file are relative to that file's folder."""
    context: Any = info.context or {}
    base = context.get("config_dir")
    if base is not None and not value.is_absolute():
        return (Path(base) / value).resolve()
    return value
