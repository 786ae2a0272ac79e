"""Headless Chromium from Debian's `chromium` package, driven by Playwright (its own browser download is never used)."""

from __future__ import annotations

import shutil

CHROMIUM = shutil.which("chromium")
# No network of its own: no updates, no sync, no QUIC; nothing but the pages it is sent to.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def launch(playwright):
    """A Chromium browser from `playwright.chromium`, the system's build."""
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
