"""Keep glibc from giving every thread its own malloc arena in the long-running gateway.

glibc hands each thread that allocates its own arena, up to eight per core. The gateway runs a
thread per terminal (polls and live captures): when twenty terminals catch up at once, their
short-lived parse buffers end up spread over many arenas, and memory freed there is seldom
returned to the system. Two arenas keep the process's resident memory near what it uses (the
effect of ``MALLOC_ARENA_MAX=2``, set from inside so no unit file or shell has to remember it).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger("ekinerja.gateway")

_M_ARENA_MAX = -8  # from glibc's malloc.h


def limit_malloc_arenas(arenas: int = 2) -> bool:
    """Cap glibc's malloc arenas; True when it took effect (False on other C libraries)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to cap
        return False
    ok = bool(mallopt(_M_ARENA_MAX, arenas))
    log.debug("malloc arenas capped at %d: %s", arenas, ok)
    return ok
