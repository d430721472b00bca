"""A centre's daily report and a manual search, in headless Chromium."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from meetings.accounts.permissions import Actor
from meetings.directory.models import Role, UnitKind
from meetings.figures.models import DailyReport
from meetings.manual import service as manual
from tests.browser.conftest import artifact
from tests.conftest import PASSWORD, World

pytestmark = pytest.mark.browser
EDITOR = Actor(id=0, email="cli", name="cli", role=Role.SECRETARY, unit_id=None)


async def sign_in(page: Any, live_url: str, email: str) -> None:
    await page.goto(f"{live_url}/login")
    await page.fill("#f-email", email)
    await page.fill("#f-password", PASSWORD)
    await page.keyboard.press("Enter")
    await page.wait_for_url(f"{live_url}/")


async def test_a_centre_reports_its_day_from_the_home_page(world: World, live_url: str, browser: Any) -> None:
    centre = await world.unit("P-PHUXUAN", UnitKind.CENTRE, "Phường Phú Xuân")
    staff = await world.person("staff@hue.example", Role.MEMBER, centre, "Lê Thị Một Cửa")
    page = await browser.new_page()
    try:
        await sign_in(page, live_url, staff.email)
        assert await page.locator("#home-report .warning").count() == 1  # not reported yet
        await page.click("#home-report a.button")
        await page.wait_for_url(f"{live_url}/figures/report")
        await page.fill("#f-received", "12")
        await page.fill("#f-resolved", "40")  # more than received plus backlog
        await page.fill("#f-overdue", "1")
        await page.click("#figures-form button[type=submit]")
        await page.wait_for_selector("#f-resolved[aria-invalid=true]")
        assert await page.input_value("#f-received") == "12"  # what was typed is kept
        await page.fill("#f-resolved", "9")
        await page.click("#figures-form button[type=submit]")
        await page.wait_for_selector("#report-done")
        await page.screenshot(path=artifact("figures-report.png"), full_page=True)
        async with world.db() as db:
            report = await db.scalar(select(DailyReport))
        assert report is not None and (report.received, report.resolved, report.overdue) == (12, 9, 1)
        assert report.day == datetime.now(ZoneInfo("Asia/Ho_Chi_Minh")).date()
        await page.goto(f"{live_url}/")
        assert await page.locator("#home-report .warning").count() == 0
        assert "12" in (await page.text_content("#home-report") or "")
    finally:
        await page.close()


async def test_a_member_finds_an_article_typing_without_diacritics(
    world: World, live_url: str, browser: Any
) -> None:
    centre = await world.unit("P-THUANHOA", UnitKind.CENTRE, "Phường Thuận Hóa")
    member = await world.person("member@hue.example", Role.MEMBER, centre)
    async with world.db() as db:
        found = await manual.create(
            db,
            EDITOR,
            manual.ArticleInput(
                "certified_copies",
                "Chứng thực bản sao điện tử từ bản chính?",
                "Đối chiếu bản chính, ký số bản sao và trả trên Cổng dịch vụ công.",
            ),
        )
        await manual.publish(db, EDITOR, found.id)
        other = await manual.create(
            db,
            EDITOR,
            manual.ArticleInput("building_permits", "Cấp giấy phép xây dựng?", "Nộp hồ sơ tại UBND."),
        )
        await manual.publish(db, EDITOR, other.id)
        await db.commit()
    page = await browser.new_page()
    try:
        await sign_in(page, live_url, member.email)
        await page.fill("#home-manual-q", "chung thuc ban sao")
        await page.keyboard.press("Enter")
        await page.wait_for_selector("#manual-results")
        results = page.locator("#manual-results li a")
        assert await results.count() == 1
        assert await results.first.text_content() == "Chứng thực bản sao điện tử từ bản chính?"
        # Operators and quotes typed in the box are just text.
        await page.fill("#manual-q", 'giay "phep" (xay*')
        await page.keyboard.press("Enter")
        await page.wait_for_url("**phep**")
        await page.screenshot(path=artifact("manual-search.png"), full_page=True)
        await results.first.click()
        await page.wait_for_selector("#article-question")
        assert await page.text_content("#article-question") == "Cấp giấy phép xây dựng?"
    finally:
        await page.close()
