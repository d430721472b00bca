"""Headless Chromium (Debian's) driven by Playwright, against the real app on a real port."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from meetings.settings import Settings
from web.app import create_app

CHROMIUM_ARGS = [
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-sandbox",
    "--disable-gpu",
]
ARTIFACTS = Path(__file__).parent.parent.parent / "test-artifacts"


def chromium_path() -> str:
    """Debian's Chromium; its absence skips browser tests on a developer machine, fails CI."""
    path = shutil.which("chromium")
    if path is None:
        if os.environ.get("CI"):
            raise RuntimeError("CI must run the browser tests: apt-get install chromium")
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    return path


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    """A headless Chromium."""
    from playwright.async_api import async_playwright

    path = chromium_path()
    async with async_playwright() as pw:
        instance = await pw.chromium.launch(executable_path=path, headless=True, args=CHROMIUM_ARGS)
        try:
            yield instance
        finally:
            await instance.close()


@pytest.fixture
async def live_url(settings: Settings) -> AsyncIterator[str]:
    """The app served on a free loopback port."""
    server = TestServer(create_app(settings), host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url("")).rstrip("/")
    finally:
        await server.close()


def artifact(name: str) -> str:
    """A path for a screenshot kept after the run."""
    ARTIFACTS.mkdir(exist_ok=True)
    return str(ARTIFACTS / name)
