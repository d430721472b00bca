"""The minutes, read-only and live, in the meeting room (issue #6), in headless Chromium."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.async_api import expect

from meetings.directory.models import Role, UnitKind
from tests.browser.conftest import artifact
from tests.conftest import PASSWORD, World

pytestmark = pytest.mark.browser


async def signed_in_room(browser: Any, live_url: str, email: str, occurrence_id: int) -> Any:
    """A new browser context: sign in, open the meeting room, join (camera off)."""
    context = await browser.new_context(viewport={"width": 1100, "height": 800}, locale="vi-VN")
    page = await context.new_page()
    await page.goto(f"{live_url}/login")
    await page.fill("#f-email", email)
    await page.fill("#f-password", PASSWORD)
    await page.keyboard.press("Enter")
    await page.wait_for_url(f"{live_url}/")
    await page.goto(f"{live_url}/rooms/{occurrence_id}")
    await page.wait_for_selector("#join-button:not([disabled])", timeout=15_000)
    await page.uncheck("#want-video")
    await page.click("#join-button")
    await page.wait_for_selector("#room:not([hidden])", timeout=15_000)
    return page


async def test_a_participant_sees_the_secretarys_entry_appear_live(
    world: World, live_url: str, browser: Any
) -> None:
    centre = await world.unit("P-PHONGDIEN", UnitKind.CENTRE, "Phường Phong Điền")
    dept = await world.unit("VP-UBND", UnitKind.DEPARTMENT, "Văn phòng UBND")
    member = await world.person("a@hue.example", Role.MEMBER, centre, name="Nguyễn Văn An")
    secretary = await world.person("thuky@hue.example", Role.SECRETARY, dept, name="Trần Thư Ký")
    _series, occurrence = await world.open_meeting(["P-PHONGDIEN", "VP-UBND"])
    member_page = await signed_in_room(browser, live_url, member.email, occurrence.id)
    secretary_page = await signed_in_room(browser, live_url, secretary.email, occurrence.id)
    try:
        # The member's panel: folded at first, opened by keyboard; no editor link for them.
        await member_page.click("#open-minutes")  # the minutes are a side panel
        toggle = member_page.locator("#toggle-minutes")
        assert await toggle.inner_text() == "Biên bản"
        assert await toggle.get_attribute("aria-expanded") == "false"
        await toggle.focus()
        await member_page.keyboard.press("Enter")
        assert await toggle.get_attribute("aria-expanded") == "true"
        await member_page.wait_for_selector("#minutes-sections .minutes-section", timeout=10_000)
        assert await member_page.locator("#minutes-editor").is_hidden()
        assert await member_page.locator("#minutes-note").is_hidden()

        # The secretary opens the editor from the room, in a second window.
        await secretary_page.click("#open-minutes")
        await secretary_page.click("#toggle-minutes")
        link = secretary_page.locator("#minutes-editor")
        await link.wait_for(state="visible", timeout=10_000)
        assert await link.inner_text() == "Mở trình soạn biên bản"
        assert (await link.get_attribute("target"), await link.get_attribute("rel")) == ("_blank", "noopener")
        async with secretary_page.context.expect_page() as opened:
            await link.click()
        editor = await opened.value
        await editor.wait_for_load_state()
        assert "/edit" in editor.url
        await expect(editor.locator("#live-status")).not_to_have_text("…", timeout=10_000)
        await editor.focus("#c-text")
        await editor.keyboard.type("/n Đường truyền <b>ổn định</b> từ 8 giờ")
        await editor.keyboard.press("Enter")

        # It appears in the member's panel without a reload, as text.
        entry = member_page.locator("#minutes-sections li.minutes-entry", has_text="Đường truyền")
        await entry.wait_for(timeout=10_000)
        assert "Đường truyền <b>ổn định</b> từ 8 giờ" in await entry.inner_text()
        assert await member_page.locator("#minutes-sections b").count() == 0
        assert await entry.get_attribute("data-kind") == "note"
        # A change is applied in place too.
        box = editor.locator("#entries textarea").first
        await box.fill("Đường truyền ổn định từ 8 giờ 15")
        await editor.keyboard.press("Tab")
        await expect(member_page.locator("#minutes-sections")).to_contain_text("từ 8 giờ 15", timeout=10_000)
        assert await member_page.locator("#minutes-sections li.minutes-entry").count() == 1
        await member_page.screenshot(path=artifact("room-minutes.png"))

        # Phone-sized: the panel fits.
        await member_page.set_viewport_size({"width": 375, "height": 740})
        assert await member_page.evaluate("document.documentElement.scrollWidth > window.innerWidth") is False
        await member_page.screenshot(path=artifact("room-minutes-phone.png"), full_page=True)
        await editor.close()
    finally:
        for page in (member_page, secretary_page):
            await page.click("#leave")
            await page.context.close()


async def test_a_join_link_guest_gets_a_short_note_not_an_error(
    world: World, live_url: str, browser: Any
) -> None:
    from datetime import UTC, datetime, timedelta

    from meetings.schedule.links import JoinLink, make_join_token

    centre = await world.unit("P-PHONGDIEN", UnitKind.CENTRE, "Phường Phong Điền")
    guest = await world.person("g@hue.example", Role.MEMBER, centre, name="Khách Mời")
    series, occurrence = await world.open_meeting(["P-PHONGDIEN"])
    token = make_join_token(
        world.settings.secret_key,
        JoinLink(guest.id, series.id, None, datetime.now(UTC) + timedelta(days=1)),
    )
    context = await browser.new_context(viewport={"width": 1100, "height": 800}, locale="vi-VN")
    page = await context.new_page()
    try:
        await page.goto(f"{live_url}/rooms/{occurrence.id}?token={token}")
        await page.wait_for_selector("#join-button:not([disabled])", timeout=15_000)
        await page.click("#join-button")
        await page.wait_for_selector("#room:not([hidden])", timeout=15_000)
        await page.click("#open-minutes")
        await page.click("#toggle-minutes")
        note = page.locator("#minutes-note")
        await note.wait_for(state="visible", timeout=5000)
        assert await note.inner_text() == "Đăng nhập để theo dõi biên bản tại đây."
        assert await page.locator("#minutes-sections > *").count() == 0
        assert await page.locator("#minutes-editor").is_hidden()
        await page.click("#leave")
    finally:
        await context.close()
