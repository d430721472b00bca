"""The connection check in a real Chromium (fake camera and microphone), against the real media server."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import expect
from sqlalchemy import select

from meetings.directory.models import Role, UnitKind
from meetings.readiness.models import CheckVerdict, ConnectionCheck
from meetings.schedule.links import JoinLink, make_join_token
from meetings.settings import Settings
from tests.browser.conftest import artifact
from tests.browser.test_figures_manual_browser import sign_in
from tests.conftest import World
from web.app import create_app

pytestmark = pytest.mark.browser
WIDE = "document.documentElement.scrollWidth > window.innerWidth"


async def run_check(page: Any) -> Any:
    """Start the check, confirm the test sound, and wait for the stored verdict."""
    await page.click("#check-start")
    await expect(page.locator("#step-camera")).to_have_attribute("data-state", "ok", timeout=20_000)
    await expect(page.locator("#step-microphone")).to_have_attribute("data-state", "ok", timeout=20_000)
    await page.click("#play-sound")
    await page.click("#heard-yes")
    await expect(page.locator("#step-speaker")).to_have_attribute("data-state", "ok")
    await expect(page.locator("#step-network")).to_have_attribute("data-state", "ok", timeout=60_000)
    result = page.locator("#check-result")
    await expect(page.locator("#check-result[data-check]")).to_be_visible(timeout=20_000)  # stored
    return result


async def test_an_invitee_runs_the_check_from_the_invitation_link(
    world: World, live_url: str, browser: Any
) -> None:
    vnpt = await world.unit("VNPT", UnitKind.TELECOM, "VNPT Huế", phone="0234 3822 999")
    centre = await world.unit("P-PHONGDIEN", UnitKind.CENTRE, "Phường Phong Điền", operator_id=vnpt.id)
    person = await world.person("an@hue.example", Role.MEMBER, centre, name="Nguyễn Văn An", password=False)
    series, occurrence = await world.open_meeting(["P-PHONGDIEN"])
    token = make_join_token(
        world.settings.secret_key, JoinLink(person.id, series.id, None, datetime.now(UTC) + timedelta(days=1))
    )
    context = await browser.new_context(viewport={"width": 390, "height": 844}, locale="vi-VN")  # a phone
    page = await context.new_page()
    # From the join page's room, its pre-join screen offers the check.
    await page.goto(f"{live_url}/rooms/{occurrence.id}?token={token}")
    await page.click("#prejoin-check")
    await expect(page.locator("#check-title")).to_have_text("Kiểm tra thiết bị và đường truyền")
    result = await run_check(page)
    await expect(result).to_have_attribute("data-verdict", "video")  # loopback carries anything
    await expect(page.locator("#result-headline")).to_have_text("Đủ để họp có hình")
    await page.screenshot(path=artifact("check-phone.png"), full_page=True)
    assert not await page.evaluate(WIDE)  # readable on a phone: nothing scrolls sideways
    for figure in ("#fig-rtt", "#fig-down", "#fig-up"):
        assert (await page.locator(figure).inner_text()) != "–"
    async with world.db() as db:
        check = await db.scalar(select(ConnectionCheck))
    assert check is not None
    assert (check.person_id, check.unit_id, check.occurrence_id) == (person.id, centre.id, occurrence.id)
    assert check.verdict is CheckVerdict.VIDEO
    assert (check.camera_ok, check.microphone_ok, check.speaker_ok) == (True, True, True)
    assert check.rtt_ms is not None and check.down_kbps is not None and check.up_kbps is not None
    assert check.loss_pct is not None and check.loss_pct < 10 and check.details["source"] == "server"
    # Back on the page later: their last result is there, and the way back to the meeting.
    await page.reload()
    await expect(page.locator("#last-check .verdict-headline")).to_have_text("Đủ để họp có hình")
    await expect(page.locator("#back-to-room")).to_be_visible()
    await context.close()


async def test_a_signed_in_person_runs_it_from_the_home_page(
    world: World, live_url: str, browser: Any
) -> None:
    centre = await world.unit("P-HUONGTRA", UnitKind.CENTRE, "Phường Hương Trà")
    await world.person("binh@hue.example", Role.MEMBER, centre, name="Trần Thị Bình")
    context = await browser.new_context(viewport={"width": 1100, "height": 800}, locale="vi-VN")
    page = await context.new_page()
    await sign_in(page, live_url, "binh@hue.example")
    await page.click("#home-check")
    result = await run_check(page)
    await expect(result).to_have_attribute("data-verdict", "video")
    async with world.db() as db:
        check = await db.scalar(select(ConnectionCheck))
    assert check is not None and check.unit_id == centre.id and check.occurrence_id is None
    await context.close()


@pytest.fixture
async def busy_url(settings: Settings) -> AsyncIterator[str]:
    """The app on a free loopback port, its probes all taken (``check_max_probes`` = 0)."""
    server = TestServer(create_app(dataclasses.replace(settings, check_max_probes=0)), host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url("")).rstrip("/")
    finally:
        await server.close()


async def test_a_check_that_cannot_measure_the_network_says_who_to_call(
    world: World, busy_url: str, browser: Any
) -> None:
    vnpt = await world.unit("VNPT", UnitKind.TELECOM, "VNPT Huế", phone="0234 3822 999")
    centre = await world.unit("P-PHONGDIEN", UnitKind.CENTRE, "Phường Phong Điền", operator_id=vnpt.id)
    person = await world.person("an@hue.example", Role.MEMBER, centre, password=False)
    series, _occurrence = await world.open_meeting(["P-PHONGDIEN"])
    token = make_join_token(
        world.settings.secret_key, JoinLink(person.id, series.id, None, datetime.now(UTC) + timedelta(days=1))
    )
    context = await browser.new_context(locale="vi-VN")
    page = await context.new_page()
    await page.goto(f"{busy_url}/join/{token}/check")
    await page.click("#check-start")
    await expect(page.locator("#step-network")).to_have_attribute("data-state", "bad", timeout=20_000)
    await expect(page.locator("#network-status")).to_contain_text("Vui lòng thử lại sau một phút")
    await page.click("#play-sound")
    await page.click("#heard-no")
    await expect(page.locator("#check-result")).to_have_attribute("data-verdict", "failed", timeout=20_000)
    await expect(page.locator("#result-headline")).to_have_text(
        "Không kết nối được — gọi hỗ trợ: 0234 3822 999"
    )
    await expect(page.locator("#result-advice li")).to_have_count(2)  # the network, the speaker
    async with world.db() as db:
        check = await db.scalar(select(ConnectionCheck))
    assert check is not None and check.verdict is CheckVerdict.FAILED and check.speaker_ok is False
    assert "thử lại" in check.details["error"]
    await context.close()
