"""Small state files beside the buffer, written so a crash leaves the old file or the new one."""

from __future__ import annotations

import os
from pathlib import Path


def write_whole(path: Path, text: str, mode: int) -> None:
    """Write ``text`` to ``path`` through a temporary file renamed over it; ``mode`` for a new file."""
    temporary = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    os.replace(temporary, path)
