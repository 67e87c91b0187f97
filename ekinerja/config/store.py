"""The store's configuration (``store.toml``)."""

from __future__ import annotations

import hashlib
from ipaddress import ip_address
from pathlib import Path
from typing import Self

from pydantic import Field, IPvAnyAddress, ValidationInfo, field_validator, model_validator

from ekinerja.config.common import ListenAddress, Section, ZoneName, resolve_path
from ekinerja.config.tls import server_cert_problem
from ekinerja.sync.contract import Identifier


class StoreSection(Section):
    """``[store]``: the database and the HTTP listener."""

    database_url: str = Field(
        default="sqlite:///data/store.db",
        description=(
            "SQLAlchemy URL: sqlite:///PATH (relative to where the store runs), "
            "postgresql+psycopg://user:${PW}@host/db or mysql+pymysql://user:${PW}@host/db?charset=utf8mb4."
        ),
    )
    listen: ListenAddress = Field(default="127.0.0.1:8400", description="HOST:PORT the API listens on.")
    rules: str = Field(
        default="perma-3-2020",
        min_length=1,
        description=(
            "The rule profile that scores attendance: a shipped name (perma-3-2020, permentan-68-2012, "
            "pergub-sumut-11-2017) or the path of a profile TOML, relative to this file."
        ),
    )
    timezone: ZoneName | None = Field(
        default=None,
        description="The offices' IANA zone for scoring (Asia/Jakarta, Asia/Makassar, Asia/Jayapura); "
        "default: the rule profile's.",
    )
    tls_cert: Path | None = Field(
        default=None,
        description="Serve HTTPS with this certificate (PEM, the chain after it); relative to this file. "
        "Without it the store speaks plain HTTP: put it behind a TLS reverse proxy.",
    )
    trusted_proxies: list[IPvAnyAddress] = Field(
        default_factory=lambda: [ip_address("127.0.0.1")],
        max_length=50,
        description="Addresses of the TLS reverse proxies whose X-Forwarded-Proto and -For the store believes "
        "(so sign-in cookies are Secure behind HTTPS). Default: a proxy on the same host.",
    )
    tls_key: Path | None = Field(default=None, description="The certificate's private key (PEM).")
    tls_key_password: str | None = Field(
        default=None, description="The key's password if it is encrypted; write ${ENV_NAME}."
    )

    @field_validator("tls_cert", "tls_key")
    @classmethod
    def _resolve(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        return None if value is None else resolve_path(value, info)

    @model_validator(mode="after")
    def _usable_tls(self) -> Self:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("give both tls_cert and tls_key, or neither")
        if self.tls_cert is not None and self.tls_key is not None:
            problem = server_cert_problem(self.tls_cert, self.tls_key, self.tls_key_password)
            if problem is not None:
                raise ValueError(f"tls_cert/tls_key: {problem}")
        elif self.tls_key_password is not None:
            raise ValueError("tls_key_password is set without tls_cert and tls_key")
        return self


class GatewayCredential(Section):
    """``[[gateways]]``: a gateway allowed to push, with its token."""

    id: Identifier = Field(description="The gateway's id, as in its gateway.toml.")
    token: str | None = Field(default=None, min_length=8, description="Its bearer token; prefer ${ENV_NAME}.")
    token_sha256: str | None = Field(
        default=None,
        pattern=r"^[0-9a-f]{64}$",
        description="SHA-256 (hex) of the token, instead of the token itself.",
    )

    @model_validator(mode="after")
    def _one_secret(self) -> Self:
        if (self.token is None) == (self.token_sha256 is None):
            raise ValueError("give exactly one of token or token_sha256")
        return self

    def token_hash(self) -> str:
        """The token's SHA-256; only this is kept in memory once loaded."""
        if self.token_sha256 is not None:
            return self.token_sha256
        assert self.token is not None
        return hashlib.sha256(self.token.encode()).hexdigest()


class ApiClient(GatewayCredential):
    """``[[clients]]``: a program or person allowed to read reports and manage the registry."""

    id: Identifier = Field(description="Who the client is, e.g. ekinerja-core or bkd-admin; kept with every change.")
    can_write: bool = Field(
        default=False,
        description="May import employees, leave and manual attendance; otherwise reports and lists only.",
    )


class StoreConfig(Section):
    """The whole ``store.toml``."""

    store: StoreSection = Field(default_factory=StoreSection, description="The database and the HTTP listener.")
    gateways: list[GatewayCredential] = Field(default_factory=list, description="Gateways allowed to push.")
    clients: list[ApiClient] = Field(
        default_factory=list, description="Programs and people allowed to read reports and manage the registry."
    )

    @model_validator(mode="after")
    def _unique_ids(self) -> Self:
        for table, entries in (("gateways", self.gateways), ("clients", self.clients)):
            ids = [e.id for e in entries]
            dupes = sorted({i for i in ids if ids.count(i) > 1})
            if dupes:
                raise ValueError(f"{table}: id {dupes[0]!r} is listed twice")
        hashes = [e.token_hash() for e in [*self.gateways, *self.clients]]
        if len(set(hashes)) != len(hashes):
            raise ValueError("two gateways or clients share a token: give each its own")
        return self
