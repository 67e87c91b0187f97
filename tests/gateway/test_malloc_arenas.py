"""The malloc arena cap takes effect on this machine's C library (glibc on Debian)."""

from __future__ import annotations

import platform

from ekinerja.gateway.malloc_arenas import limit_malloc_arenas


def test_arenas_are_capped_on_glibc() -> None:
    assert limit_malloc_arenas(2) is (platform.libc_ver()[0] == "glibc")
