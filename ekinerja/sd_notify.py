"""Telling systemd that a service is ready or stopping (``Type=notify`` units in deploy/systemd/).

The protocol is one datagram to the socket named by ``$NOTIFY_SOCKET`` (a path, or ``@name`` in the
abstract namespace); outside systemd the variable is unset and nothing is sent.
"""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger("ekinerja")


def notify(state: str) -> bool:
    """Send ``state`` (e.g. ``READY=1``) to the service manager; False when there is none or it is gone."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    target = "\0" + address[1:] if address.startswith("@") else address
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(target)
            sock.sendall(state.encode())
    except OSError as exc:  # the manager went away: the service itself must go on
        log.warning("could not tell the service manager %r at %s: %s", state, address, exc)
        return False
    return True


def ready(status: str) -> bool:
    """Ready: systemd starts the units ordered after this one, and ``systemctl status`` shows ``status``."""
    return notify(f"READY=1\nSTATUS={status}")


def stopping() -> bool:
    """Stopping on purpose: systemd does not count it as a failure."""
    return notify("STOPPING=1")
