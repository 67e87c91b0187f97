"""The registry's card UIDs as the gateway last fetched them, kept on disk.

Card readers tell "unknown card" at the door from this list. It is refreshed from the store on a
schedule and written to a file beside the buffer, so a gateway restarted during a store outage
still knows its cards. Before the first successful fetch nothing is called unknown: every card
is greeted as accepted, and every punch is stored and sent either way.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

from ekinerja.gateway.whole_file import write_whole

log = logging.getLogger("ekinerja.gateway")


class KnownCards:
    """The card list and its file; safe to read from the reader threads while it is replaced."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fetched_at: datetime | None = None
        self._uids: frozenset[str] | None = None
        self._lock = threading.Lock()
        self._load()

    def _load(self) -> None:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            uids, fetched = frozenset(data["card_uids"]), datetime.fromisoformat(data["fetched_at"])
        except FileNotFoundError:
            return
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("%s cannot be read (%s); cards count as known until the store sends its list", self.path, exc)
            return
        self._uids, self.fetched_at = uids, fetched

    def is_known(self, card_uid: str) -> bool | None:
        """Whether the registry knows the card; None while no list was ever fetched."""
        uids = self._uids
        return None if uids is None else card_uid in uids

    def __len__(self) -> int:
        return len(self._uids or ())

    def replace(self, card_uids: Iterable[str]) -> None:
        """Take a freshly fetched list, and keep it on disk (written whole, then renamed)."""
        uids, now = frozenset(card_uids), datetime.now(UTC)
        with self._lock:
            text = json.dumps({"fetched_at": now.isoformat(), "card_uids": sorted(uids)})
            write_whole(self.path, text, mode=0o644)
            changed = uids != self._uids
            self._uids, self.fetched_at = uids, now
        if changed:
            log.info("the registry knows %d card(s) for this gateway", len(uids))
