"""The browser tests drive Debian's Chromium, never one Playwright downloaded, and never wait on eval."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest

import chromium
from tests.browser.conftest import chromium_path

TESTS = Path(__file__).parent.parent


@pytest.mark.browser
async def test_the_launched_browser_is_debians_chromium(browser: Any) -> None:
    line = chromium.version_line(chromium_path())
    assert browser.version == chromium.version_number(line), (browser.version, line)


def empty_folder(path: str) -> bool:
    return Path(path).is_dir() and not any(Path(path).iterdir())


@pytest.mark.browser
async def test_playwright_finds_no_downloaded_browser() -> None:
    from playwright.async_api import Error, async_playwright

    assert empty_folder(os.environ["PLAYWRIGHT_BROWSERS_PATH"])
    async with async_playwright() as pw:
        with pytest.raises(Error, match="Executable doesn't exist"):
            await pw.chromium.launch(headless=True)


def test_no_browser_test_waits_on_an_evaluated_string() -> None:
    """The app's CSP (no 'unsafe-eval') blocks Playwright's polled string predicates in Chromium."""
    offenders = [
        f"{path.relative_to(TESTS)}:{number}"
        for path in sorted(TESTS.rglob("*.py"))
        if path != Path(__file__)
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if re.search(r"\bwait_for_function\(", line)
    ]
    assert offenders == []
