"""The system's headless Chromium (Debian's package, `bin/chromium` installs it) driven by Playwright for Python.

Playwright's own browser download is never used: `executable_path` points at /usr/bin/chromium (or $CHROMIUM).
Used by the browser tests (tests/browser) and the screenshot script (python -m localdev.screenshot).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Playwright

# What works on a headless CI box: no sandbox (root in a container), no GPU, and nothing that phones home.
LAUNCH_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def chromium_path() -> str | None:
    """The Chromium binary to drive: $CHROMIUM, else Debian's /usr/bin/chromium, else one on PATH."""
    wanted = os.environ.get("CHROMIUM")
    if wanted:
        return wanted if Path(wanted).exists() else None
    for candidate in ("/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser")):
        if candidate and Path(candidate).exists():
            return candidate
    return None


def launch(playwright: Playwright) -> Browser:
    path = chromium_path()
    if path is None:
        raise RuntimeError("No Chromium found: run bin/chromium (apt-get install -y chromium) or set CHROMIUM.")
    return playwright.chromium.launch(executable_path=path, headless=True, args=list(LAUNCH_FLAGS))
