"""The monitoring page in Chromium, on a phone's screen: a centre's officer joins the meeting
(an aiortc peer on the same server) and the support team sees their unit connected with the
media server's figures, live, then the drop-out alert when they leave."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from aiortc import RTCSessionDescription
from playwright.async_api import expect

from meetings.directory.models import Role, UnitKind
from meetings.schedule.links import JoinLink, make_join_token
from meetings.settings import Settings
from tests.browser.conftest import artifact
from tests.conftest import PASSWORD, World
from tests.rtc.clients import Client

pytestmark = pytest.mark.browser


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return dataclasses.replace(settings, monitor_sample_seconds=0.5)


async def join(
    http: aiohttp.ClientSession, live_url: str, occurrence: int, token: str, client: Client
) -> asyncio.Task[None]:
    """Join the room of `live_url`'s server as the token's holder and connect the media; the
    task reads the socket on (answering its pings) until it closes."""
    ws = await http.ws_connect(f"{live_url}/rooms/{occurrence}/ws", headers={"Origin": live_url})
    join = {"type": "join", "occurrence": occurrence, "token": token, "audio": True, "video": False}
    await ws.send_str(json.dumps(join))
    await client.offer()
    offer = client.pc.localDescription
    await ws.send_str(json.dumps({"type": "offer", "sdp": offer.sdp, "sources": client.sources_by_mid()}))
    async for msg in ws:
        data = json.loads(msg.data)
        if data["type"] == "answer":
            await client.pc.setRemoteDescription(RTCSessionDescription(sdp=data["sdp"], type="answer"))
            break

    async def read_on() -> None:
        async for _msg in ws:
            pass

    return asyncio.create_task(read_on())


async def test_the_support_team_sees_a_joined_participants_figures(
    world: World, live_url: str, browser: Any
) -> None:
    centre = await world.unit("P-ANCUU", UnitKind.CENTRE, "Phường An Cựu")
    other = await world.unit("P-BINHDIEN", UnitKind.CENTRE, "Xã Bình Điền")
    dept = await world.unit("VP-UBND", UnitKind.DEPARTMENT, "Văn phòng UBND")
    officer = await world.person("a@hue.example", Role.MEMBER, centre, name="Nguyễn Văn An")
    await world.person("chair@hue.example", Role.CHAIR, dept, name="Phan Chủ Trì")
    await world.person("support@hue.example", Role.SUPPORT, dept, name="Tổ Hỗ Trợ")
    series, occ = await world.open_meeting(["P-ANCUU", "P-BINHDIEN"], chair_email="chair@hue.example")
    token = make_join_token(
        world.settings.secret_key,
        JoinLink(officer.id, series.id, None, datetime.now(UTC) + timedelta(days=1)),
    )

    context = await browser.new_context(viewport={"width": 390, "height": 844}, locale="vi-VN")  # a phone
    page = await context.new_page()
    await page.goto(f"{live_url}/login")
    await page.fill("#f-email", "support@hue.example")
    await page.fill("#f-password", PASSWORD)
    await page.keyboard.press("Enter")
    await page.wait_for_url(f"{live_url}/")
    await page.goto(f"{live_url}/meetings/occurrences/{occ.id}/monitor")
    await expect(page.locator("#monitor-live")).to_have_text("Trực tiếp", timeout=10_000)
    unit = page.locator(f".monitor-unit[data-unit='{centre.id}']")
    await expect(unit.locator("[data-field=status]")).to_have_text("Chưa vào họp")
    await expect(page.locator(f".monitor-unit[data-unit='{other.id}']")).to_be_visible()

    client = Client("officer", amplitude=0.3, audio_slots=0, video_slots=0)
    http = aiohttp.ClientSession()
    reader = await join(http, live_url, occ.id, token, client)
    try:
        person = unit.locator(f"[data-person='{officer.id}']")
        await expect(unit.locator("[data-field=status]")).to_have_text("Đã kết nối", timeout=15_000)
        await expect(person).to_contain_text("Nguyễn Văn An")
        # The media server's own figures: the uplink it measures, the loss.
        await expect(person.locator("[data-field=up]")).to_have_text(
            re.compile(r"^\d[\d.]*$"), timeout=20_000
        )
        await expect(person.locator("[data-field=loss]")).to_have_text(re.compile(r"^\d"), timeout=20_000)
        await page.screenshot(path=artifact("readiness-monitor-phone.png"), full_page=True)
        # No wider than the phone: nothing to scroll sideways.
        width = await page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390
    finally:
        await client.close()
        await http.close()  # the socket closes: the officer has left
        with contextlib.suppress(asyncio.CancelledError):
            await reader
    alert = page.locator(f".monitor-alert[data-kind=dropped][data-unit='{centre.id}']")
    await expect(alert).to_contain_text("Phường An Cựu", timeout=15_000)
    await expect(unit.locator("[data-field=status]")).to_have_text("Đã rớt kết nối")
    await context.close()
