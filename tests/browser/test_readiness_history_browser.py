"""A support engineer follows a centre's connection history in headless Chromium."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from playwright.async_api import expect

from meetings.directory.models import Role, UnitKind
from meetings.readiness.followup import Mailing, follow_up_all
from meetings.readiness.history import Thresholds
from meetings.readiness.models import CheckVerdict, ConnectionCheck, ConnectionOutcome
from tests.browser.conftest import artifact
from tests.conftest import PASSWORD, World
from tests.readiness.history_helpers import FIRST, record
from web import keys

pytestmark = pytest.mark.browser
GOOD, WEAK = ConnectionOutcome.GOOD, ConnectionOutcome.WEAK
OUTCOMES = [GOOD, GOOD, WEAK, GOOD, ConnectionOutcome.EXCUSED, GOOD, WEAK, ConnectionOutcome.FAILED]
OUTCOMES += [GOOD, WEAK, GOOD, WEAK]


async def test_support_opens_a_centres_history_from_the_home_page(
    world: World, live_url: str, browser: Any
) -> None:
    vnpt = await world.unit("VNPT", UnitKind.TELECOM, "VNPT Huế")
    centre = await world.unit("P-PHONGDIEN", UnitKind.CENTRE, "Phường Phong Điền", operator_id=vnpt.id)
    calm = await world.unit("P-THUANHOA", UnitKind.CENTRE, "Phường Thuận Hóa", operator_id=vnpt.id)
    await world.person("support@hue.example", Role.SUPPORT, vnpt, "Kỹ thuật hỗ trợ")
    async with world.db() as db:
        for n, outcome in enumerate(OUTCOMES):
            await record(db, centre.id, n, outcome)
            await record(db, calm.id, n, ConnectionOutcome.GOOD)
        db.add(
            ConnectionCheck(
                unit_id=centre.id,
                at=FIRST + timedelta(days=12),
                verdict=CheckVerdict.FAILED,
                details={},
            )
        )
        await db.commit()
    await follow_up_all(
        world.app[keys.DB],
        Thresholds(),
        Mailing("http://t", "giaoban@hue.example", "VP"),
        tz=world.settings.tz,
        now=FIRST + timedelta(days=12),
    )
    page = await browser.new_page(viewport={"width": 1100, "height": 900})
    try:
        await page.goto(f"{live_url}/login")
        await page.fill("#f-email", "support@hue.example")
        await page.fill("#f-password", PASSWORD)
        await page.keyboard.press("Enter")
        await page.wait_for_url(f"{live_url}/")
        await page.click("#home-connection-history a[href='/readiness/history']")
        await page.wait_for_url(f"{live_url}/readiness/history")
        rows = page.locator("#history-overview tbody tr")
        await expect(rows).to_have_count(2)
        await expect(rows.first).to_have_attribute("data-unit", "P-PHONGDIEN")  # most trouble first
        await page.fill("#q", "thuan hoa")
        await page.keyboard.press("Enter")
        await expect(rows).to_have_count(1)
        await expect(rows.first).to_have_attribute("data-unit", "P-THUANHOA")
        await page.fill("#q", "phong dien")
        await page.keyboard.press("Enter")
        await expect(rows.first).to_have_attribute("data-unit", "P-PHONGDIEN")
        await rows.first.locator("a").first.click()
        chart = page.locator("#history-chart")
        await expect(chart.locator("g.mark")).to_have_count(len(OUTCOMES))
        await expect(chart.locator("g.mark[data-outcome='failed']")).to_have_count(1)
        await expect(page.locator("#history-follow-up")).to_contain_text("VĐ-")
        await expect(page.locator("#history-checks tbody tr")).to_have_count(1)
        await expect(page.locator("#history-meetings tbody tr")).to_have_count(len(OUTCOMES))
        box = await chart.bounding_box()
        assert box is not None and box["width"] > 300 and box["height"] > 250
        await chart.screenshot(path=artifact("readiness-history-chart.png"))
        await page.screenshot(path=artifact("readiness-history.png"), full_page=True)
        # On a phone the chart scales down with the screen instead of overflowing it.
        await page.set_viewport_size({"width": 375, "height": 740})
        box = await chart.bounding_box()
        assert box is not None and 0 < box["width"] <= 375
        await page.screenshot(path=artifact("readiness-history-phone.png"), full_page=True)
    finally:
        await page.close()
