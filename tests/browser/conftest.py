"""Headless Chromium (Debian's) driven by Playwright, against the real app on a real port."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

import chromium
from meetings.settings import Settings
from web.app import create_app

ARTIFACTS = Path(__file__).parent.parent.parent / "test-artifacts"


def chromium_path() -> str:
    """Debian's Chromium; its absence skips browser tests on a developer machine, fails CI."""
    path = chromium.executable()
    if path is None:
        if os.environ.get("CI"):
            raise RuntimeError(f"CI must run the browser tests: {chromium.INSTALL_HINT}")
        pytest.skip(f"Chromium is not installed ({chromium.INSTALL_HINT})")
    return path


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    """A headless Chromium (Debian's)."""
    from playwright.async_api import async_playwright

    path = chromium_path()
    async with async_playwright() as pw:
        instance = await chromium.launch(pw, path)
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
