"""The readiness board in Chromium on a phone: a centre joins from a second browser and its row turns
"in the meeting" without a reload; an excuse typed on the phone shows at once."""

from __future__ import annotations

import dataclasses
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import expect

from meetings.directory.models import Role, UnitKind
from meetings.readiness.models import CheckVerdict, ConnectionCheck
from meetings.schedule.links import JoinLink, make_join_token
from meetings.schedule.models import SeriesInvitee
from meetings.settings import Settings
from tests.browser.conftest import artifact
from tests.conftest import PASSWORD, World

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # A unit invited while the board is open shows at the next reload.
    return dataclasses.replace(settings, readiness_board_refresh_seconds=0.5)


def keep(name: str, text: str) -> None:
    """Write a figure under test-artifacts/."""
    Path(artifact(name)).write_text(text, encoding="utf-8")


async def sign_in(page: Any, live_url: str, email: str, then: str) -> None:
    await page.goto(f"{live_url}/login?next={then}")
    await page.fill("#f-email", email)
    await page.fill("#f-password", PASSWORD)
    async with page.expect_navigation():
        await page.press("#f-password", "Enter")


async def test_a_centre_joining_turns_its_row_joined_live_on_a_phone(
    world: World, live_url: str, browser: Any
) -> None:
    centre = await world.unit("P-PHONGDIEN", UnitKind.CENTRE, "Phường Phong Điền", phone="0234 3551 234")
    other = await world.unit("P-KIMLONG", UnitKind.CENTRE, "Phường Kim Long")
    ioc = await world.unit("IOC", UnitKind.SUPPORT, "Trung tâm IOC")
    dept = await world.unit("VP-UBND", UnitKind.DEPARTMENT, "Văn phòng UBND")
    member = await world.person("a@hue.example", Role.MEMBER, centre, name="Nguyễn Văn An")
    await world.person("k@hue.example", Role.MEMBER, other, name="Lê Thị Kim", phone="0905 123 456")
    await world.person("hotro@hue.example", Role.SUPPORT, ioc, name="Đặng Quang Huy")
    await world.person("chair@hue.example", Role.CHAIR, dept, name="Phan Chủ Trì")
    series, occurrence = await world.open_meeting(
        ["P-PHONGDIEN", "P-KIMLONG"], chair_email="chair@hue.example"
    )
    board_path = f"/meetings/occurrences/{occurrence.id}/readiness"
    # Phong Điền passed its connection check this morning; Kim Long's failed.
    async with world.db() as db:
        for unit, person, verdict, figures in (
            (centre, member.id, CheckVerdict.VIDEO, (38.0, 0.2, 1450.0, 3200.0)),
            (other, None, CheckVerdict.FAILED, (None, None, None, None)),
        ):
            rtt, loss, up, down = figures
            db.add(
                ConnectionCheck(
                    person_id=person,
                    unit_id=unit.id,
                    at=datetime.now(UTC) - timedelta(minutes=20),
                    verdict=verdict,
                    rtt_ms=rtt,
                    loss_pct=loss,
                    up_kbps=up,
                    down_kbps=down,
                )
            )
        await db.commit()

    # The support officer watches the board on a phone.
    phone = await browser.new_context(viewport=PHONE, locale="vi-VN", is_mobile=True, has_touch=True)
    board = await phone.new_page()
    await sign_in(board, live_url, "hotro@hue.example", board_path)
    assert board.url.endswith(board_path)
    await expect(board.locator("#board-live")).to_have_attribute("data-state", "on", timeout=10_000)
    row = board.locator(f"li.board-row[data-unit='{centre.id}']")
    await expect(row).to_have_attribute("data-status", "checked")
    await expect(row.locator("[data-part=check]")).to_contain_text("38 ms")
    await expect(row.locator("[data-part=phone] a")).to_have_attribute("href", "tel:02343551234")
    await expect(board.locator(f"li.board-row[data-unit='{other.id}']")).to_have_attribute(
        "data-status", "failed"
    )

    # The centre joins from its invitation link in another browser.
    token = make_join_token(
        world.settings.secret_key, JoinLink(member.id, series.id, None, datetime.now(UTC) + timedelta(days=1))
    )
    desk = await browser.new_context(viewport={"width": 1100, "height": 800}, locale="vi-VN")
    room = await desk.new_page()
    await room.goto(f"{live_url}/join/{token}")
    await room.click("#join-room")
    await expect(room.locator("#join-button")).to_be_enabled(timeout=15_000)
    await room.click("#join-button")
    await expect(room.locator("#room")).to_be_visible(timeout=15_000)
    seated = time.monotonic()
    # The board shows it without a reload (the socket pushed it).
    await expect(row).to_have_attribute("data-status", "joined", timeout=10_000)
    latency = time.monotonic() - seated
    await expect(row.locator("[data-part=connected]")).to_contain_text("Nguyễn Văn An")
    await expect(row.locator("[data-part=status]")).to_have_text("Đã vào họp")
    await expect(board.locator("[data-count=joined]")).to_have_text("1")
    # Problems first: the centre not yet connected is above the one in the meeting.
    units = await board.locator("li.board-row").evaluate_all("(rows) => rows.map((r) => r.dataset.unit)")
    assert units.index(str(other.id)) < units.index(str(centre.id)), units
    # A figure for the report (not an assertion: the machine is shared).
    keep("readiness-board-join-latency.txt", f"room shown to board row joined: {latency:.3f} s\n")

    # The support officer marks the other centre excused from the phone: shown at once.
    other_row = board.locator(f"li.board-row[data-unit='{other.id}']")
    await other_row.locator("summary").click()
    await other_row.locator("input[name=reason]").fill("Mất điện cả phường")
    await other_row.locator("form[data-board-action=excuse] button").click()
    await expect(other_row).to_have_attribute("data-status", "excused", timeout=10_000)
    await expect(other_row.locator("[data-part=mark]")).to_contain_text("Mất điện cả phường")
    await expect(other_row.locator("form[data-board-action=unexcuse]")).to_be_visible()

    # A unit invited while the board is open appears at the next reload, with working actions.
    late = await world.unit("P-THUANHOA", UnitKind.CENTRE, "Phường Thuận Hóa")
    await world.person("t@hue.example", Role.MEMBER, late, name="Trương Văn Thuận")
    async with world.db() as db:
        db.add(SeriesInvitee(series_id=series.id, unit_id=late.id))
        await db.commit()
    late_row = board.locator(f"li.board-row[data-unit='{late.id}']")
    await expect(late_row).to_have_attribute("data-status", "not_yet", timeout=10_000)
    await late_row.locator("summary").click()
    await late_row.locator("input[name=note]").fill("Đang gọi")
    await late_row.locator("form[data-board-action=help] button").click()
    await expect(late_row).to_have_attribute("data-status", "helping", timeout=10_000)
    await expect(late_row.locator("[data-part=mark]")).to_contain_text("Đặng Quang Huy đang hỗ trợ: Đang gọi")

    # Readable on a phone: nothing wider than the screen.
    overflow = await board.evaluate("document.documentElement.scrollWidth > window.innerWidth")
    assert overflow is False
    await board.screenshot(path=artifact("readiness-board-phone.png"), full_page=True)

    # The centre leaves: its row shows its check again.
    await desk.close()
    await expect(row).to_have_attribute("data-status", "checked", timeout=15_000)
    await phone.close()
