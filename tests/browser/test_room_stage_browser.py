"""The room's stage, control bar, panels and state screens in Chromium (issue #17).

One or two real browsers (fake camera and microphone); the other participants are cheap
WebSocket participants: they join the same room through the real signaling socket without media,
so they are seated and drawn as tiles (initials), as an audio-only centre would be.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from playwright.async_api import expect
from sqlalchemy import select

from meetings.directory.models import Person, Role, Unit, UnitKind
from meetings.schedule.links import JoinLink, make_join_token
from meetings.schedule.models import Occurrence
from tests.browser.conftest import artifact
from tests.browser.prejoin import prejoin_ready
from tests.browser.test_room_three_browsers import EVENT_MS, Live, until
from tests.browser.test_room_three_browsers import live as live  # the fixture
from tests.conftest import World

pytestmark = pytest.mark.browser

CONTROLS = (
    "toggle-audio",
    "toggle-video",
    "toggle-hand",
    "toggle-screen",
    "toggle-audio-only",
    "toggle-layout",
    "open-participants",
    "open-chat",
    "open-minutes",
    "leave",
)

# The share of the stage the tiles cover, measured from the DOM: each tile's box clipped to the stage.
COVERAGE = """() => {
  const stage = document.getElementById("stage").getBoundingClientRect();
  let area = 0;
  for (const tile of document.querySelectorAll("#grid .tile")) {
    const r = tile.getBoundingClientRect();
    const w = Math.max(0, Math.min(r.right, stage.right) - Math.max(r.left, stage.left));
    const h = Math.max(0, Math.min(r.bottom, stage.bottom) - Math.max(r.top, stage.top));
    area += w * h;
  }
  return area / (stage.width * stage.height);
}"""

OVERFLOW = "document.documentElement.scrollWidth > window.innerWidth"
# Every tile with a picture shows frames (for the screenshots).
PICTURES = (
    "Array.from(document.querySelectorAll('#grid .tile:not(.no-video) video')).every(v => v.videoWidth > 0)"
)


class Meeting:
    """An open ad hoc meeting, its invited centres, and a join link for anyone."""

    def __init__(self, world: World, occurrence_id: int, series_id: int, people: list[Person]) -> None:
        self.world = world
        self.occurrence_id = occurrence_id
        self.series_id = series_id
        self.people = people  # people[0]: the chair; the others, one per centre

    def token(self, person: Person) -> str:
        link = JoinLink(person.id, self.series_id, None, datetime.now(UTC) + timedelta(days=1))
        return make_join_token(self.world.settings.secret_key, link)


async def meeting_with(world: World, centres: int) -> Meeting:
    """A meeting inviting `centres` centres (one officer each) and a chair from a department."""
    dept = await world.unit("VP-UBND", UnitKind.DEPARTMENT, "Văn phòng UBND")
    chair = await world.person("chair@hue.example", Role.CHAIR, dept, name="Phan Chủ Trì")
    people = [chair]
    codes = []
    for i in range(centres):
        code = f"P-{i + 1:02d}"
        unit = await world.unit(code, UnitKind.CENTRE, f"Phường Số {i + 1}")
        codes.append(code)
        people.append(
            await world.person(f"c{i + 1}@hue.example", Role.MEMBER, unit, name=f"Cán Bộ {i + 1:02d} Văn")
        )
    series, occurrence = await world.open_meeting(codes, chair_email=chair.email)
    return Meeting(world, occurrence.id, series.id, people)


class SocketParticipant:
    """A participant through the signaling socket only (no media): seated, shown as initials."""

    def __init__(self, url: str, occurrence_id: int, token: str) -> None:
        self.url, self.occurrence_id, self.token = url, occurrence_id, token
        self.session = aiohttp.ClientSession()
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.reader: asyncio.Task[None] | None = None

    async def join(self) -> None:
        self.ws = await self.session.ws_connect(
            f"{self.url}/rooms/{self.occurrence_id}/ws", headers={"Origin": self.url}
        )
        join = {
            "type": "join",
            "occurrence": self.occurrence_id,
            "token": self.token,
            "audio": False,
            "video": False,
        }
        await self.ws.send_str(json.dumps(join))
        self.reader = asyncio.create_task(self._read())

    async def send(self, **message: Any) -> None:
        assert self.ws is not None
        await self.ws.send_str(json.dumps(message))

    async def _read(self) -> None:
        assert self.ws is not None
        async for _msg in self.ws:
            pass

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self.reader is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.reader, 5)
        await self.session.close()


@pytest.fixture
async def sockets() -> AsyncIterator[list[SocketParticipant]]:
    """Socket participants, closed when the test ends."""
    made: list[SocketParticipant] = []
    yield made
    for participant in made:
        await participant.close()


async def add_sockets(
    made: list[SocketParticipant], live: Live, meeting: Meeting, people: list[Person]
) -> list[SocketParticipant]:
    added = []
    for person in people:
        participant = SocketParticipant(live.url, meeting.occurrence_id, meeting.token(person))
        made.append(participant)
        await participant.join()
        added.append(participant)
    return added


async def enter(
    stack: contextlib.AsyncExitStack,
    browser: Any,
    url: str,
    token: str,
    viewport: tuple[int, int],
    shot: str = "",
) -> Any:
    """A real browser joins from a personal link (camera on, microphone on)."""
    context = await browser.new_context(
        viewport={"width": viewport[0], "height": viewport[1]}, locale="vi-VN"
    )
    stack.push_async_callback(context.close)
    page = await context.new_page()
    await page.goto(f"{url}/join/{token}")
    await page.click("#join-room")
    await prejoin_ready(page)
    await until(lambda: page.evaluate("document.getElementById('preview').videoWidth > 0"), 20, "the preview")
    if shot:
        await page.screenshot(path=artifact(shot))
    await page.check("#want-audio")
    await page.click("#join-button")
    await page.wait_for_selector("#room:not([hidden])", timeout=EVENT_MS)
    return page


async def covered(page: Any, count: int) -> float:
    """The tiles' share of the stage once `count` tiles are laid out (0 until then)."""
    if await page.locator("#grid .tile").count() != count:
        return 0.0
    return float(await page.evaluate(COVERAGE))


async def test_the_stage_fills_the_window_for_1_2_6_and_12(
    world: World, live: Live, browser: Any, sockets: list[SocketParticipant]
) -> None:
    meeting = await meeting_with(world, 39)
    measured: dict[str, float] = {}
    async with contextlib.AsyncExitStack() as stack:
        a = await enter(stack, browser, live.url, meeting.token(meeting.people[1]), (1366, 768))
        await expect(a.locator("#drawer")).to_be_hidden()  # panels closed: the stage is the window

        async def measure(count: int, least: float = 0.70) -> None:
            for width, height in ((1366, 768), (1920, 1080)):
                await a.set_viewport_size({"width": width, "height": height})
                share = await until(
                    lambda: _enough(a, count, least), 20, f"{count} tiles laid out at {width}×{height}"
                )
                measured[f"{count}@{width}x{height}"] = round(share, 3)
                await a.screenshot(path=artifact(f"stage-{count}-{width}x{height}.png"))
                assert await a.evaluate(OVERFLOW) is False
                # The control bar is in the window, under the stage.
                bar = await a.locator(".controls").bounding_box()
                stage = await a.locator("#stage").bounding_box()
                assert bar["y"] + bar["height"] <= height + 1 and stage["y"] + stage["height"] <= bar["y"] + 1

        await measure(1)
        b = await enter(stack, browser, live.url, meeting.token(meeting.people[2]), (1100, 800))
        await expect(a.locator("#grid .tile:not(.no-video)")).to_have_count(2, timeout=EVENT_MS)
        await until(lambda: a.evaluate(PICTURES), 30, "the pictures")
        await measure(2)
        await add_sockets(sockets, live, meeting, meeting.people[3:7])
        await measure(6)
        await add_sockets(sockets, live, meeting, [*meeting.people[7:12], meeting.people[0]])
        await measure(12)
        # Forty: every tile still in the stage (the pictures never scroll; compact tiles, if
        # any, scroll in their own band).
        await add_sockets(sockets, live, meeting, meeting.people[12:40])
        await measure(40, least=0.01)
        main_overflows = "(e => e.scrollHeight > e.clientHeight + 1)(document.getElementById('stage-main'))"
        assert await a.evaluate(main_overflows) is False
        await asyncio.to_thread(
            Path(artifact("stage-coverage.json")).write_text, json.dumps(measured, indent=1)
        )
        assert all(share >= 0.70 for key, share in measured.items() if not key.startswith("40@")), measured
        await b.close()


async def _enough(page: Any, count: int, least: float) -> float:
    """The coverage once the layout has settled (the same twice, after a resize is followed)."""
    share = await covered(page, count)
    await asyncio.sleep(0.3)
    again = await covered(page, count)
    return share if share == again and share >= least else 0.0


async def test_a_phone_keeps_the_control_bar_in_view(
    world: World, live: Live, browser: Any, sockets: list[SocketParticipant]
) -> None:
    meeting = await meeting_with(world, 3)
    async with contextlib.AsyncExitStack() as stack:
        a = await enter(stack, browser, live.url, meeting.token(meeting.people[1]), (390, 844))
        await enter(stack, browser, live.url, meeting.token(meeting.people[2]), (1100, 800))
        await add_sockets(sockets, live, meeting, meeting.people[3:4])
        await expect(a.locator("#grid .tile")).to_have_count(3, timeout=EVENT_MS)
        await until(lambda: covered(a, 3), 20, "three tiles laid out")
        await expect(a.locator("#grid .tile:not(.no-video)")).to_have_count(2, timeout=EVENT_MS)
        await until(lambda: a.evaluate(PICTURES), 30, "the pictures")
        await a.screenshot(path=artifact("room-phone-390x844.png"))
        assert await a.evaluate(OVERFLOW) is False
        # Every control in the window, no scrolling, at least 44 px each way.
        for control in CONTROLS:
            box = await a.locator(f"#{control}").bounding_box()
            assert box is not None, control
            assert box["width"] >= 44 and box["height"] >= 44, (control, box)
            assert box["x"] >= 0 and box["x"] + box["width"] <= 390, (control, box)
            assert box["y"] >= 0 and box["y"] + box["height"] <= 844, (control, box)
        # The tiles above the bar, one under the other.
        bar = await a.locator(".controls").bounding_box()
        for tile in await a.locator("#grid .tile").all():
            box = await tile.bounding_box()
            assert box["y"] + box["height"] <= bar["y"] + 1 and box["x"] + box["width"] <= 390
        # A panel is a full-height sheet over the stage; it closes again.
        await a.click("#open-participants")
        sheet = await a.locator("#drawer").bounding_box()
        assert sheet["width"] >= 389 and sheet["height"] >= 0.6 * 844, sheet
        await expect(a.locator("#participants li")).to_have_count(3)
        await a.screenshot(path=artifact("room-phone-participants.png"))
        # On a phone, one sheet at a time.
        await a.click("#open-chat")
        await expect(a.locator("#panel-participants")).to_be_hidden()
        await a.fill("#chat-text", "Phường Số 1 đã vào")
        await a.press("#chat-text", "Enter")
        await expect(a.locator("#chat-log")).to_contain_text("đã vào")
        await a.keyboard.press("Escape")
        await expect(a.locator("#drawer")).to_be_hidden()
        assert await a.evaluate(OVERFLOW) is False
        # A tablet standing up: the same.
        await a.set_viewport_size({"width": 768, "height": 1024})
        await until(lambda: covered(a, 3), 20, "three tiles laid out on a tablet")
        assert await a.evaluate(OVERFLOW) is False
        bar = await a.locator(".controls").bounding_box()
        assert bar["y"] + bar["height"] <= 1024 + 1
        await a.screenshot(path=artifact("room-tablet-768x1024.png"))


async def test_keyboard_only_through_the_control_bar_and_the_panels(
    world: World, live: Live, browser: Any, sockets: list[SocketParticipant]
) -> None:
    meeting = await meeting_with(world, 2)
    async with contextlib.AsyncExitStack() as stack:
        a = await enter(stack, browser, live.url, meeting.token(meeting.people[1]), (1366, 768))
        await add_sockets(sockets, live, meeting, meeting.people[2:3])
        await expect(a.locator("#grid .tile")).to_have_count(2, timeout=EVENT_MS)
        # Tab reaches every control in order.
        reached: list[str] = []
        for _ in range(40):
            await a.keyboard.press("Tab")
            focused = await a.evaluate("document.activeElement && document.activeElement.id")
            if focused and focused not in reached:
                reached.append(focused)
            if focused == "leave":
                break
        assert [c for c in reached if c in CONTROLS] == list(CONTROLS), reached
        # The chat: Enter opens it with the focus in the message box; Escape closes, back on the button.
        await a.focus("#open-chat")
        await a.keyboard.press("Enter")
        await expect(a.locator("#open-chat")).to_have_attribute("aria-expanded", "true")
        await expect(a.locator("#chat-text")).to_be_focused()
        await a.keyboard.type("Xin chào")
        await a.keyboard.press("Enter")
        await expect(a.locator("#chat-log")).to_contain_text("Xin chào", timeout=EVENT_MS)
        await a.keyboard.press("Escape")
        await expect(a.locator("#panel-chat")).to_be_hidden()
        await expect(a.locator("#open-chat")).to_be_focused()
        # A message while the chat is closed: an unread count on its button.
        await sockets[0].send(type="chat", text="Phường Số 2 nghe rõ")
        await expect(a.locator("#open-chat .count")).to_have_text("1", timeout=EVENT_MS)
        # The participants: opened and closed from the keyboard, the list by unit.
        await a.focus("#open-participants")
        await a.keyboard.press("Enter")
        await expect(a.locator("#participants-title")).to_be_focused()
        await expect(a.locator("#participants li")).to_have_count(2)
        await a.keyboard.press("Tab")  # its close button
        await a.keyboard.press("Enter")
        await expect(a.locator("#panel-participants")).to_be_hidden()
        await expect(a.locator("#open-participants")).to_be_focused()
        # The shortcuts still work from the bar: M mutes.
        pressed = await a.get_attribute("#toggle-audio", "aria-pressed")
        await a.keyboard.press("m")
        await expect(a.locator("#toggle-audio")).not_to_have_attribute("aria-pressed", pressed or "")


async def test_the_chairs_roll_call_strip_follows_the_centres(
    world: World, live: Live, browser: Any, sockets: list[SocketParticipant]
) -> None:
    meeting = await meeting_with(world, 8)
    chair, centres = meeting.people[0], meeting.people[1:]
    async with contextlib.AsyncExitStack() as stack:
        c = await enter(stack, browser, live.url, meeting.token(chair), (1366, 768))
        await enter(stack, browser, live.url, meeting.token(centres[0]), (1100, 800))
        strip = c.locator("#chair-strip")
        await expect(strip).to_be_visible(timeout=EVENT_MS)
        unit_of = {}
        async with world.db() as db:
            for unit in await db.scalars(select(Unit)):
                unit_of[unit.code] = unit.id
        first = c.locator(f"#rollcall li[data-unit='{unit_of['P-01']}']")
        second = c.locator(f"#rollcall li[data-unit='{unit_of['P-02']}']")
        await expect(first).to_have_attribute("data-status", "present", timeout=EVENT_MS)
        await expect(second).to_have_attribute("data-status", "absent")
        await expect(c.locator("#rollcall li")).to_have_count(8)
        # A centre joins: its unit turns present, the summary counts it.
        joined = await add_sockets(sockets, live, meeting, centres[1:6])
        await expect(second).to_have_attribute("data-status", "audio", timeout=EVENT_MS)  # no camera
        await expect(c.locator("#rollcall-summary")).to_contain_text("6/8", timeout=EVENT_MS)
        # Two hands: the queue in the strip, the floor given from there.
        await joined[0].send(type="hand", raised=True)
        await joined[2].send(type="hand", raised=True)
        entry = c.locator(f"#queue li[data-person='{centres[1].id}']")
        await expect(entry).to_be_visible(timeout=EVENT_MS)
        await expect(c.locator("#queue li[data-person]")).to_have_count(2, timeout=EVENT_MS)
        # Someone not invited waits in the lobby: counted in the strip.
        dept = await world.unit("SO-KHAC", UnitKind.DEPARTMENT, "Sở Khác")
        visitor = await world.person("v@hue.example", Role.MEMBER, dept, name="Lê Văn Khách")
        await add_sockets(sockets, live, meeting, [visitor])
        await expect(c.locator("#lobby-count")).to_have_attribute("data-waiting", "true", timeout=EVENT_MS)
        await expect(c.locator("#lobby-count")).to_contain_text("1")
        await expect(c.locator("#chair-panel")).to_be_visible()  # beside the stage on a wide screen
        await until(lambda: covered(c, 7), 20, "seven tiles laid out")
        await c.screenshot(path=artifact("room-chair.png"))
        # The strip does not cover the stage.
        strip_box = await strip.bounding_box()
        stage_box = await c.locator("#stage").bounding_box()
        assert strip_box["y"] + strip_box["height"] <= stage_box["y"] + 1
        await entry.locator("button[data-action='give_floor']").click()
        await expect(entry).to_have_count(0, timeout=EVENT_MS)


async def test_each_state_has_its_own_screen(
    world: World, live: Live, browser: Any, sockets: list[SocketParticipant]
) -> None:
    meeting = await meeting_with(world, 1)
    async with contextlib.AsyncExitStack() as stack:
        # Pre-join.
        context = await browser.new_context(viewport={"width": 1366, "height": 768}, locale="vi-VN")
        stack.push_async_callback(context.close)
        chair = await enter(
            stack, browser, live.url, meeting.token(meeting.people[0]), (1366, 768), shot="prejoin.png"
        )
        # The lobby: someone not invited waits, on a screen that says for whom.
        dept = await world.unit("SO-KHAC", UnitKind.DEPARTMENT, "Sở Khác")
        visitor = await world.person("v@hue.example", Role.MEMBER, dept, name="Lê Văn Khách")
        page = await context.new_page()
        await page.goto(f"{live.url}/join/{meeting.token(visitor)}")
        await page.click("#join-room")
        await page.wait_for_selector("#join-button:not([disabled])", timeout=EVENT_MS)
        await page.click("#join-button")
        status = page.locator("#status")
        await expect(status).to_have_attribute("data-state", "lobby", timeout=EVENT_MS)
        await expect(page.locator("#status-title")).to_have_text("Đang chờ chủ trì cho vào")
        await expect(page.locator("#room")).to_be_hidden()
        await expect(page.locator("#prejoin")).to_be_hidden()
        await page.screenshot(path=artifact("state-lobby.png"))
        # Admitted: the room, the screen gone.
        await chair.click("#lobby li button[data-action='admit']")
        await expect(page.locator("#room")).to_be_visible(timeout=EVENT_MS)
        await expect(status).to_be_hidden()
        # Ended: the end screen for everyone.
        chair.on("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
        await chair.click("#end-meeting")
        await expect(page.locator("#over")).to_have_attribute("data-reason", "ended", timeout=EVENT_MS)
        await expect(page.locator("#room")).to_be_hidden()
        await page.screenshot(path=artifact("state-ended.png"))

    # Not started yet: a meeting three hours away.
    later = await meeting_with_later(world)
    async with contextlib.AsyncExitStack() as stack:
        context = await browser.new_context(viewport={"width": 1366, "height": 768}, locale="vi-VN")
        stack.push_async_callback(context.close)
        page = await context.new_page()
        await page.goto(f"{live.url}/join/{later.token(later.people[0])}")
        await page.click("#join-room")
        await page.wait_for_selector("#join-button:not([disabled])", timeout=EVENT_MS)
        await page.click("#join-button")
        await expect(page.locator("#status")).to_have_attribute("data-state", "not-started", timeout=EVENT_MS)
        await expect(page.locator("#status-title")).to_have_text("Cuộc họp chưa bắt đầu")
        await expect(page.locator("#status-message")).to_contain_text("mở")
        await expect(page.locator("#status-retry")).to_be_focused()
        await expect(page.locator("#room")).to_be_hidden()
        await page.screenshot(path=artifact("state-not-started.png"))
        # Trying again too early: the same screen.
        await page.click("#status-retry")
        await expect(page.locator("#status")).to_have_attribute("data-state", "not-started", timeout=EVENT_MS)


async def meeting_with_later(world: World) -> Meeting:
    """Another meeting, moved three hours ahead: its room is not open yet."""
    unit = await world.unit("P-LATER", UnitKind.CENTRE, "Phường Sau")
    person = await world.person("later@hue.example", Role.MEMBER, unit, name="Hồ Văn Sau")
    series, occurrence = await world.open_meeting(["P-LATER"])
    async with world.db() as db:
        occ = await db.get(Occurrence, occurrence.id)
        assert occ is not None
        occ.start = occ.start + timedelta(hours=3)
        occ.end = occ.end + timedelta(hours=3)
        await db.commit()
    return Meeting(world, occurrence.id, series.id, [person])
