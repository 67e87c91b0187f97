"""Which gateway is calling: bearer tokens checked against SHA-256 hashes.

Only the hashes from ``store.toml`` (``GatewayCredential.token_hash()``) are kept in memory, so a
memory dump or a log line cannot leak a usable token. The token alone identifies the gateway; the
API then refuses a batch that claims another gateway's id.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

from ekinerja.config.store import GatewayCredential


class GatewayAuth:
    """The gateways allowed to push, looked up by their token."""

    def __init__(self, gateways: Iterable[GatewayCredential]) -> None:
        self._entries = [(bytes.fromhex(gateway.token_hash()), gateway.id) for gateway in gateways]

    def __len__(self) -> int:
        return len(self._entries)

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
