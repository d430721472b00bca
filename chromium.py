"""Debian's Chromium, the one browser the browser tests and the join benchmark drive through Playwright.

Never a browser Playwright downloaded: the executable is always ``shutil.which("chromium")`` (the
Debian package ``chromium``), and ``isolate_playwright()`` points Playwright's browser cache at an
empty folder so that a launch without our executable fails instead of finding a cached build.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

# Fake camera and microphone, no prompts, no background traffic (tests and benchmark alike).
FLAGS = [
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-sandbox",
    "--disable-gpu",
]
INSTALL_HINT = "apt-get install chromium"


def executable() -> str | None:
    """The path of Debian's ``chromium``, or None when it is not installed.

    Raises RuntimeError if the ``chromium`` on the PATH is a browser Playwright downloaded.
    """
    path = shutil.which("chromium")
    if path is not None and "ms-playwright" in str(Path(path).resolve()):
        raise RuntimeError(f"{path} is a browser Playwright downloaded, not Debian's ({INSTALL_HINT})")
    return path


def version_line(path: str) -> str:
    """What ``chromium --version`` prints, e.g. "Chromium 156.0.8078.129 built on Debian GNU/Linux 12"."""
    done = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30, check=True)
    return done.stdout.strip()


def version_number(line: str) -> str:
    """The dotted version in a ``chromium --version`` line ("156.0.8078.129")."""
    found = re.search(r"\d+(?:\.\d+){3}", line)
    if found is None:
        raise ValueError(f"no version in {line!r}")
    return found.group(0)


def isolate_playwright() -> None:
    """Point Playwright's browser cache at an empty folder: only an explicit executable can launch."""
    os.environ["PLAYWRIGHT_BROWSERS_PATH"] = tempfile.mkdtemp(prefix="giaoban-no-browsers-")


async def launch(playwright: Any, path: str, extra: list[str] | None = None) -> Any:
    """Headless Debian Chromium at `path` with the fake media devices (and `extra` flags)."""
    return await playwright.chromium.launch(
        executable_path=path, headless=True, args=[*FLAGS, *(extra or [])]
    )
