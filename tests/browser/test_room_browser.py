"""Two people join one meeting from their invitation links in Chromium, see and hear each other."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from playwright.async_api import expect

from meetings.directory.models import Person, Role, UnitKind
from meetings.schedule.links import JoinLink, make_join_token
from tests.browser.conftest import artifact
from tests.browser.prejoin import prejoin_ready
from tests.conftest import World

pytestmark = pytest.mark.browser

HCM = ZoneInfo("Asia/Ho_Chi_Minh")

# Bytes of media the page has decoded so far, summed over its receive slots.
STATS = """async () => {
  const pc = window.__giaoban && window.__giaoban.pc;
  if (!pc) return {frames: 0, samples: 0};
  let frames = 0, samples = 0;
  (await pc.getStats()).forEach((s) => {
    if (s.type !== "inbound-rtp") return;
    if (s.kind === "video") frames += s.framesDecoded || 0;
    if (s.kind === "audio") samples += s.totalSamplesReceived || 0;
  });
  return {frames, samples};
}"""


async def open_meeting(world: World) -> tuple[int, dict[str, Person], dict[str, str]]:
    """An ad hoc meeting starting in five minutes (its room is open) for two centre officers and its chair."""
    centre = await world.unit("P-PHONGDIEN", UnitKind.CENTRE, "Phường Phong Điền")
    dept = await world.unit("VP-UBND", UnitKind.DEPARTMENT, "Văn phòng UBND")
    people = {
        "a": await world.person("a@hue.example", Role.MEMBER, centre, name="Nguyễn Văn An"),
        "b": await world.person("b@hue.example", Role.MEMBER, centre, name="Trần Thị Bình"),
    }
    people["chair"] = await world.person("chair@hue.example", Role.CHAIR, dept, name="Phan Chủ Trì")
    now = datetime.now(UTC)
    series, _occurrence = await world.open_meeting(["P-PHONGDIEN"], chair_email="chair@hue.example")
    tokens = {
        key: make_join_token(
            world.settings.secret_key, JoinLink(person.id, series.id, None, now + timedelta(days=1))
        )
        for key, person in people.items()
    }
    return series.id, people, tokens


async def until(check: Any, seconds: float, what: str) -> Any:
    """Poll an async check until it returns something truthy, or fail after `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.25)


async def enter(browser: Any, live_url: str, token: str, shot: str = "", centre: bool = True) -> Any:
    """Open the invitation link, go to the room, turn the microphone on, join."""
    context = await browser.new_context(viewport={"width": 1100, "height": 800}, locale="vi-VN")
    page = await context.new_page()
    await page.goto(f"{live_url}/join/{token}")
    await page.click("#join-room")
    await prejoin_ready(page)
    # A centre joins muted unless it asks otherwise.
    assert await page.is_checked("#want-audio") is not centre
    assert await page.is_checked("#want-video") is True
    await until(lambda: page.evaluate("document.getElementById('preview').videoWidth > 0"), 10, "the preview")
    if shot:
        await page.screenshot(path=artifact(shot))
    await page.check("#want-audio")
    await page.click("#join-button")
    await page.wait_for_selector("#room:not([hidden])", timeout=15_000)
    await page.click("#open-participants")  # the list is a side panel, closed at first
    return page


async def test_two_centres_see_and_hear_each_other(world: World, live_url: str, browser: Any) -> None:
    _series, people, tokens = await open_meeting(world)
    a = await enter(browser, live_url, tokens["a"], shot="room-prejoin.png")
    b = await enter(browser, live_url, tokens["b"])
    for page in (a, b):
        await until(lambda page=page: page.locator("#participants li").count(), 10, "the participants")
        await expect(page.locator("#participants li")).to_have_count(2, timeout=15_000)

    async def flowing(page: Any) -> dict[str, int]:
        stats: dict[str, int] = await page.evaluate(STATS)
        return stats if stats["frames"] > 0 and stats["samples"] > 0 else {}

    first = [await until(lambda p=p: flowing(p), 40, "media") for p in (a, b)]
    await asyncio.sleep(2)
    for page, before in zip((a, b), first, strict=True):
        after = await page.evaluate(STATS)
        assert after["frames"] > before["frames"], (before, after)
        assert after["samples"] > before["samples"], (before, after)
    # Both tiles carry a name and a unit.
    assert "Phường Phong Điền" in await b.locator(".tile").first.inner_text()
    await b.screenshot(path=artifact("room-grid.png"))

    # A mutes by keyboard; B's participant list shows it.
    await a.keyboard.press("m")
    muted = f"#participants li[data-person='{people['a'].id}'][data-muted='true']"
    await b.wait_for_selector(muted, timeout=10_000)
    assert await a.locator("#toggle-audio").get_attribute("aria-pressed") == "true"
    # A raises a hand (H) and writes in the chat; B sees both.
    await a.keyboard.press("h")
    await b.wait_for_selector(
        f"#participants li[data-person='{people['a'].id}'][data-hand='true']", timeout=10_000
    )
    await a.click("#open-chat")  # the chat is a side panel
    await a.fill("#chat-text", "Phường Phong Điền xin phát biểu")
    await a.press("#chat-text", "Enter")
    await expect(b.locator("#chat-log")).to_contain_text("xin phát biểu", timeout=10_000)

    # Phone-sized: nothing wider than the screen.
    await b.set_viewport_size({"width": 375, "height": 740})
    assert await b.evaluate("document.documentElement.scrollWidth > window.innerWidth") is False
    await b.screenshot(path=artifact("room-phone.png"))

    # A leaves; B sees one participant.
    await a.click("#leave")
    await expect(b.locator("#participants li")).to_have_count(1, timeout=15_000)
    for page in (a, b):
        await page.context.close()


async def test_the_join_is_timed_phase_by_phase_only_when_asked(
    world: World, live_url: str, browser: Any
) -> None:
    """room/timing.js (bench/join.py): with ?timing the page keeps each phase's first moment in
    #join-timing, in order; without it, nothing is added to the page."""
    _series, _people, tokens = await open_meeting(world)
    a = await enter(browser, live_url, tokens["a"])
    context = await browser.new_context(viewport={"width": 1100, "height": 800}, locale="vi-VN")
    b = await context.new_page()
    await b.goto(f"{live_url}/join/{tokens['b']}")
    room = await b.get_attribute("#join-room", "href")
    assert room and "?" in room
    await b.goto(f"{live_url}{room}&timing" if room.startswith("/") else f"{room}&timing")
    await b.wait_for_selector("#join-button:not([disabled])", timeout=15_000)
    timing = b.locator("#join-timing")
    await expect(timing).to_contain_text('"ice-gathered"', timeout=10_000)  # a person takes longer
    await b.click("#join-button")
    await b.wait_for_selector("#room:not([hidden])", timeout=15_000)
    await expect(timing).to_contain_text('"video-first-packet"', timeout=30_000)
    await expect(timing).to_contain_text('"dtls-connected"', timeout=10_000)
    marks = json.loads(await timing.text_content() or "{}")
    assert isinstance(marks["participant"], str) and marks["participant"]
    # The offer is made and gathered on the pre-join screen; it goes with `join` (issue #18).
    order = [
        "nav-start",
        "script",
        "gum-start",
        "gum-done",
        "offer-created",
        "ice-gathered",
        "click",
        "join-sent",
        "offer-sent",
        "welcome",
        "room",
        "answer",
        "answer-applied",
    ]
    times = [marks[name] for name in order]
    assert times == sorted(times), marks
    # After the answer arrives, the browser's events have no order with each other or with the
    # promise that applied it: they come from other threads. CI saw the first packet's unmute
    # 17 ms before `connected` (stop 25), and `ice-connected` before `answer-applied`. ICE
    # cannot connect before the answer (it carries the SFU's credentials), nor media flow.
    assert marks["answer"] <= marks["ice-connected"] <= marks["dtls-connected"], marks
    assert marks["answer"] <= marks["video-first-packet"], marks
    # Off by default: the page without the flag has no such element.
    assert await a.locator("#join-timing").count() == 0
    for page in (a, b):
        await page.context.close()


async def test_chair_gives_the_floor_and_mutes(world: World, live_url: str, browser: Any) -> None:
    _series, people, tokens = await open_meeting(world)
    c = await enter(browser, live_url, tokens["chair"], centre=False)
    a = await enter(browser, live_url, tokens["a"])
    member = people["a"].id
    await c.wait_for_selector("#chair-panel:not([hidden])", timeout=10_000)
    assert await a.locator("#chair-panel").is_hidden()
    # The member mutes, then raises a hand: the chair's queue shows the name.
    await a.wait_for_selector("#toggle-audio[aria-pressed='false']", timeout=10_000)
    await a.keyboard.press("m")
    await a.wait_for_selector("#toggle-audio[aria-pressed='true']", timeout=10_000)
    await a.keyboard.press("h")
    entry = c.locator(f"#queue li[data-person='{member}']")
    await entry.wait_for(timeout=10_000)
    assert "Nguyễn Văn An" in await entry.inner_text()
    await c.screenshot(path=artifact("room-chair-panel.png"))
    # Giving the floor unmutes the member's microphone and empties the queue.
    await entry.locator("button[data-action='give_floor']").click()
    await a.wait_for_selector("#toggle-audio[aria-pressed='false']", timeout=10_000)
    assert await a.locator("#toggle-hand").get_attribute("aria-pressed") == "false"
    await c.wait_for_selector(f"#queue li[data-person='{member}']", state="detached", timeout=10_000)
    # The chair mutes the member from the participants list.
    await c.click(f"#participants li[data-person='{member}'] button[data-action='mute']")
    await a.wait_for_selector("#toggle-audio[aria-pressed='true']", timeout=10_000)
    await c.wait_for_selector(f"#participants li[data-person='{member}'][data-muted='true']", timeout=10_000)
    for page in (a, c):
        await page.context.close()


async def test_a_removed_participant_sees_an_end_screen_not_the_room(
    world: World, live_url: str, browser: Any
) -> None:
    _series, people, tokens = await open_meeting(world)
    c = await enter(browser, live_url, tokens["chair"], centre=False)
    a = await enter(browser, live_url, tokens["a"])
    member = people["a"].id
    try:
        await c.click(f"#participants li[data-person='{member}'] button[data-action='remove']")
        over = a.locator("#over")
        await expect(over).to_be_visible(timeout=10_000)
        assert await over.get_attribute("data-reason") == "removed"
        # The room (stage, controls, chat) is gone from the page; what happened and what next are said.
        for hidden in ("#room", "#grid", ".controls", "#chat-form", "#prejoin"):
            await expect(a.locator(hidden)).to_be_hidden()
        await expect(a.locator("#over-title")).to_have_text("Bạn đã bị mời ra khỏi cuộc họp")
        await expect(a.locator("#over-message")).to_have_text("Người điều hành đã mời bạn ra khỏi cuộc họp.")
        await expect(a.locator("#over-next")).to_contain_text("phòng chờ")
        await expect(a.locator("#over-home")).to_have_attribute("href", "/")
        rejoin = a.locator("#over-rejoin")
        await expect(rejoin).to_have_text("Xin vào lại")
        await a.screenshot(path=artifact("room-removed.png"))
        # Asking again goes back to the pre-join screen of the same room (the lobby comes after).
        await rejoin.click()
        await a.wait_for_selector("#join-button:not([disabled])", timeout=15_000)

        # The chair leaves: the end screen says so and offers to join again.
        await c.click("#leave")
        await expect(c.locator("#over")).to_have_attribute("data-reason", "left", timeout=10_000)
        await expect(c.locator("#room")).to_be_hidden()
        await expect(c.locator("#over-title")).to_have_text("Bạn đã rời cuộc họp")
        await expect(c.locator("#over-message")).to_be_hidden()
        await expect(c.locator("#over-rejoin")).to_have_text("Tham gia lại")
    finally:
        for page in (a, c):
            await page.context.close()
