"""A person in a browser: sign in on a phone-sized screen, by keyboard, and read the directory."""

from __future__ import annotations

from typing import Any

import pytest

from meetings.db import create_engine, create_sessionmaker
from meetings.demo import DEMO_PASSWORD, load_demo
from meetings.settings import Settings
from tests.browser.conftest import artifact

pytestmark = pytest.mark.browser


async def load_city(settings: Settings) -> None:
    engine = create_engine(settings.database_url)
    async with create_sessionmaker(engine)() as db:
        await load_demo(db)
        await db.commit()
    await engine.dispose()


async def test_admin_signs_in_by_keyboard_on_a_phone_and_sees_the_city(
    settings: Settings, live_url: str, browser: Any
) -> None:
    await load_city(settings)
    context = await browser.new_context(viewport={"width": 375, "height": 740}, locale="vi-VN")
    page = await context.new_page()
    await page.goto(f"{live_url}/directory")
    assert "/login" in page.url
    assert await page.locator("h1").inner_text() == "Đăng nhập"
    # Keyboard only: the skip link comes first, then the form fields in order.
    await page.keyboard.press("Tab")
    assert await page.evaluate("document.activeElement.className") == "skip"
    await page.locator("#f-email").focus()
    await page.keyboard.type("admin@hue.example")
    await page.keyboard.press("Tab")
    await page.keyboard.type(DEMO_PASSWORD)
    await page.keyboard.press("Enter")
    await page.wait_for_url(f"{live_url}/directory")
    heading = await page.locator("h1").inner_text()
    assert heading == "Danh bạ"
    centres = page.locator("section.group[data-kind=centre]")
    assert "Trung tâm phục vụ hành chính công" in await centres.locator("h2").inner_text()
    assert await centres.locator("li").count() == 40
    assert await page.locator("section.group li").count() == 57
    # Nothing is wider than the phone's screen.
    overflow = await page.evaluate("document.documentElement.scrollWidth > window.innerWidth")
    assert overflow is False
    await page.screenshot(path=artifact("directory-phone.png"), full_page=False)
    # Search without diacritics finds the ward with them.
    await page.fill("#q", "phong dien")
    async with page.expect_navigation():
        await page.keyboard.press("Enter")
    items = page.locator("section.group li")
    assert await items.count() == 1
    assert "Phường Phong Điền" in await items.first.inner_text()
    await context.close()
