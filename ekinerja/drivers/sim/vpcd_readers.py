"""vsmartcard's virtual readers as pcscd shows them, for tests, benchmarks and the demo (needs pyscard).

pcscd polls vpcd's slots every 0.4 s: a card put on a reader within that time after another left
it is never seen as new (the slot looked occupied at both polls). Real readers report slot changes
themselves; with vpcd, whoever taps cards in a row waits for the empty state in between.
"""

from __future__ import annotations

import time

from smartcard import scard

READERS = ("Virtual PCD 00 00", "Virtual PCD 00 01")
PORTS = (35963, 35964)  # where vpcd listens for the card of each reader


def wait_empty(*readers: str, timeout_s: float = 5.0) -> None:
    """Wait until pcscd reports no card on ``readers`` (both virtual readers by default).

    Raises TimeoutError when a card still lies there after ``timeout_s``, and ConnectionError when
    pcscd cannot be reached.
    """
    names = list(readers or READERS)
    code, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    if code != scard.SCARD_S_SUCCESS:
        raise ConnectionError(f"pcscd cannot be reached: {scard.SCardGetErrorMessage(code)}")
    try:
        states = [(name, scard.SCARD_STATE_UNAWARE) for name in names]
        deadline = time.monotonic() + timeout_s
        while True:
            code, found = scard.SCardGetStatusChange(context, 200, states)
            if code == scard.SCARD_S_SUCCESS:
                if all(event & scard.SCARD_STATE_EMPTY for _name, event, _atr in found):
                    return
                states = [(name, event & ~scard.SCARD_STATE_CHANGED) for name, event, _atr in found]
            if time.monotonic() > deadline:
                raise TimeoutError(f"a card still lies on {names} after {timeout_s} s")
    finally:
        scard.SCardReleaseContext(context)
