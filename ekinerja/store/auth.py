"""Which gateway is calling: bearer tokens checked against SHA-256 hashes.

Only the hashes from ``store.toml`` (``GatewayCredential.token_hash()``) are kept in memory, so a
memory dump or a log line cannot leak a usable token. The token alone identifies the gateway; the
API then refuses a batch that claims another gateway's id.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass

from ekinerja.config.store import ApiClient, GatewayCredential


class GatewayAuth:
    """The gateways allowed to push, looked up by their token."""

    def __init__(self, gateways: Iterable[GatewayCredential]) -> None:
        self._entries = [(bytes.fromhex(gateway.token_hash()), gateway.id) for gateway in gateways]

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def gateway_ids(self) -> set[str]:
        """The ids of the gateways listed in store.toml."""
        return {gateway_id for _digest, gateway_id in self._entries}

    def identify(self, token: str) -> str | None:
        """The id of the gateway ``token`` belongs to, or None for an unknown token.

        Every stored hash is compared, in constant time, whatever matches: the time taken tells an
        attacker neither which entry matched nor how much of a hash did.
        """
        presented = hashlib.sha256(token.encode()).digest()
        found: str | None = None
        for digest, gateway_id in self._entries:
            if hmac.compare_digest(presented, digest) and found is None:
                found = gateway_id
        return found


@dataclass(frozen=True)
class Client:
    """A caller of the report and registry API."""

    id: str
    can_write: bool


class ClientAuth:
    """The report and registry clients, looked up by their token (constant time, hashes only)."""

    def __init__(self, clients: Iterable[ApiClient]) -> None:
        clients = list(clients)
        self._tokens = GatewayAuth(clients)
        self._clients = {c.id: Client(c.id, c.can_write) for c in clients}

    def __len__(self) -> int:
        return len(self._clients)

    def identify(self, token: str) -> Client | None:
        """The client ``token`` belongs to, or None."""
        client_id = self._tokens.identify(token)
        return None if client_id is None else self._clients[client_id]
