"""The dashboard's words, in Bahasa Indonesia first and English.

Each language is a folder of TOML files under ``messages/`` (one per page, plus ``common.toml``); a key
appears once per language, and both languages have the same keys (a test holds them to it).
"""

from __future__ import annotations

import tomllib
from datetime import date
from decimal import Decimal
from functools import cache
from importlib import resources

LANGUAGES = ("id", "en")
DEFAULT = "id"
_SWAP = str.maketrans(",.", ".,")


@cache
def messages(lang: str) -> dict[str, str]:
    """Every message of ``lang`` (one of LANGUAGES), by key; a key in two files is an error."""
    found: dict[str, str] = {}
    folder = resources.files("ekinerja.store.dashboard") / "messages" / lang
    for file in sorted(folder.iterdir(), key=lambda f: f.name):
        if not file.name.endswith(".toml"):
            continue
        for key, value in tomllib.loads(file.read_text(encoding="utf-8")).items():
            if key in found:
                raise ValueError(f"messages/{lang}/{file.name}: {key} is already defined in another file")
            found[key] = str(value)
    return found


def choose(asked: str | None, remembered: str | None) -> str:
    """The language to answer in: asked in the query, else remembered in a cookie, else Indonesian."""
    for lang in (asked, remembered):
        if lang in LANGUAGES:
            return lang
    return DEFAULT


class Words:
    """Messages of one language for a template: ``t("late")``, ``t("refreshes", seconds=15)``."""

    def __init__(self, lang: str) -> None:
        self.lang = lang
        self._messages = messages(lang)

    def __call__(self, key: str, **values: object) -> str:
        """The message ``key``, filled with ``values``; a missing key shows as itself (never a crash)."""
        text = self._messages.get(key, key)
        return text.format(**values) if values else text

    def number(self, value: float | Decimal | None, places: int = 0) -> str:
        """``value`` written the language's way: 1.234,5 in Indonesian, 1,234.5 in English; None as "–"."""
        if value is None:
            return "–"
        text = f"{value:,.{places}f}"
        return text.translate(_SWAP) if self.lang == "id" else text

    def month(self, month: date) -> str:
        """``month`` by name and year: "November 2026"."""
        return f"{self(f'month_{month.month}')} {month.year}"
