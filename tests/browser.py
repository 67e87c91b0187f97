"""Debian's chromium through Playwright, for the page tests (RIG.md, "A real browser for page tests")."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parent / ".artifacts"
"""Screenshots the page tests keep for review (ignored by git)."""


@contextmanager
def chromium() -> Iterator[Browser]:
    """Headless chromium; a missing browser fails the test loudly."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(
            f"{CHROMIUM} is missing: pages are tested in Debian's chromium. Run scripts/test.sh "
            "(it installs it) or apt-get install chromium; never `playwright install`."
        )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
