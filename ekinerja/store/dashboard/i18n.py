"""The dashboard's words, in Bahasa Indonesia first and English, from one TOML file per language."""

from __future__ import annotations

import tomllib
from functools import cache
from importlib import resources

LANGUAGES = ("id", "en")
DEFAULT = "id"


@cache
def messages(lang: str) -> dict[str, str]:
    """Every message of ``lang`` (one of LANGUAGES), by key."""
    text = (resources.files("ekinerja.store.dashboard") / "messages" / f"{lang}.toml").read_text(encoding="utf-8")
    return {key: str(value) for key, value in tomllib.loads(text).items()}


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
