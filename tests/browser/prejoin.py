"""The pre-join screen, ready to join with the camera and microphone open (browser tests)."""

from __future__ import annotations

from typing import Any

from tests.browser.conftest import artifact


async def prejoin_ready(page: Any) -> None:
    """Wait for the pre-join screen's "Vào họp" with the camera and microphone open.

    Twice (CI run 24, and a local run at 08:25 UTC), right after a shaped-link scenario had
    failed, the first page of a freshly launched Chromium never had its ``getUserMedia`` settle
    (fake devices: the preview black, the device lists empty, no error). The page then lets one
    join without them after 8 s, with a note (``DEVICES_WAIT_MS``); these tests need the
    devices, so, as a person would, this reloads once, saying so. A second time fails with what
    the page showed and a screenshot."""
    from playwright.async_api import TimeoutError as PlaywrightTimeout

    for attempt in range(2):
        try:
            await page.wait_for_selector("#join-button:not([disabled])", timeout=20_000)
            await page.wait_for_selector("#device-note", state="hidden", timeout=20_000)
            return
        except PlaywrightTimeout:
            await page.screenshot(path=artifact(f"prejoin-timeout-{attempt}.png"))
            shown = {}
            for name in ("device-note", "join-button"):
                element = page.locator(f"#{name}")
                shown[name] = await element.text_content() if await element.count() else None
            if attempt:
                raise AssertionError(
                    f"the pre-join screen at {page.url} never had the devices: {shown}"
                ) from None
            print(f"\nthe pre-join screen at {page.url} had no devices ({shown}): reloading")
            await page.reload()
