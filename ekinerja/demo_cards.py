"""The demo's RFID reader: vsmartcard's virtual reader under the machine's pcscd, tapped by simulated cards.

The demo includes it only when it can really run: pyscard installed, pcscd answering, and a
"Virtual PCD" reader listed. Otherwise it says what is missing and how to add it, and runs
without a card reader.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator

from ekinerja.drivers.sim.vpcd_card import DEFAULT_PORT, VirtualCard

READER = "Virtual PCD 00 00"  # vpcd's first reader; its cards connect to DEFAULT_PORT
HOW_TO_ENABLE = (
    "to include one: sudo apt-get install pcscd vsmartcard-vpcd libpcsclite-dev gcc python3-dev; "
    ".venv/bin/pip install -e '.[pcsc]'; start pcscd (sudo systemctl restart pcscd, or sudo pcscd); run the demo again"
)

log = logging.getLogger("ekinerja.demo")


def card_uid(n: int) -> str:
    """The demo card of employee ``n``: a 4-byte UID as MIFARE Classic cards have."""
    return f"04{0xA10000 + n:06X}"


def unavailable_reason() -> str | None:
    """Why the demo cannot include a card reader here, or None when it can."""
    try:
        from ekinerja.drivers.pcsc import PcscUnavailable, present_readers
    except ImportError:
        return "pyscard is not installed"
    try:
        readers = present_readers()
    except PcscUnavailable as exc:
        return f"pcscd is not running ({exc})"
    if READER not in readers:
        return f"pcscd has no {READER!r} reader (vsmartcard-vpcd is not installed, or pcscd predates it)"
    return None


class DemoCards:
    """Taps the demo's cards on the virtual reader in turn, one every ``every_s`` seconds, in a thread."""

    def __init__(self, uids: list[str], every_s: float) -> None:
        self.uids = uids
        self.every_s = every_s
        self.taps = 0
        self._stop = threading.Event()

    @contextlib.contextmanager
    def tapping(self) -> Iterator[DemoCards]:
        """Tap in the background for the block."""
        thread = threading.Thread(target=self._run, name="demo cards", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            thread.join(10)

    def _run(self) -> None:
        n = 0
        # A gap of at least 1 s: pcscd polls vpcd every 0.4 s and must see the reader empty between cards.
        while not self._stop.wait(max(self.every_s, 1.0)):
            try:
                VirtualCard(bytes.fromhex(self.uids[n % len(self.uids)]), port=DEFAULT_PORT).tap(hold_s=0.3)
            except Exception as exc:  # a demo card that cannot tap must not end the demo
                log.warning("demo card not tapped: %s", exc)
                continue
            self.taps += 1
            n += 1
