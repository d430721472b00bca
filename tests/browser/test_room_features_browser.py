"""The room page's features in Chromium: reconnection, device choice, views, screen share,
audio-only mode, connection quality, joining from the home page."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import expect
from sqlalchemy import select

import chromium
from meetings.rooms.models import Attendance
from meetings.schedule.models import Occurrence
from meetings.settings import Settings
from tests.browser.conftest import artifact, chromium_path
from tests.browser.prejoin import prejoin_ready
from tests.browser.test_room_browser import STATS, open_meeting, until
from tests.conftest import PASSWORD, World
from web import keys
from web.app import create_app

pytestmark = pytest.mark.browser


class Live:
    """The app on a loopback port, with its app object (rooms, media) reachable from the test."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.server = TestServer(create_app(settings), host="127.0.0.1")

    @property
    def url(self) -> str:
        return str(self.server.make_url("")).rstrip("/")

    @property
    def app(self) -> Any:
        return self.server.app


@pytest.fixture
async def live(settings: Settings) -> AsyncIterator[Live]:
    """Like `live_url`, with the app at hand."""
    server = Live(settings)
    await server.server.start_server()
    try:
        yield server
    finally:
        await server.server.close()


@pytest.fixture
async def cameras_browser() -> AsyncIterator[Any]:
    """Chromium with several fake cameras (the pre-join screen offers a choice).

    The 2nd and 3rd fake cameras deliver Y16 and MJPEG frames; the 4th is a plain I420 one.
    """
    from playwright.async_api import async_playwright

    path = chromium_path()
    async with async_playwright() as pw:
        instance = await chromium.launch(pw, path, ["--use-fake-device-for-media-stream=device-count=4"])
        try:
            yield instance
        finally:
            await instance.close()


async def prejoin(browser: Any, url: str, token: str) -> Any:
    """The room page from a personal invitation link, its preview running."""
    context = await browser.new_context(viewport={"width": 1100, "height": 800}, locale="vi-VN")
    page = await context.new_page()
    await page.goto(f"{url}/join/{token}")
    await page.click("#join-room")
    # The camera and microphone open (getUserMedia, then the device list). A bound, not a
    # target: one clean-clone run had a fresh Chromium inside a network namespace still without
    # its devices after 15 s (it passed on every rerun).
    await prejoin_ready(page)
    await until(lambda: page.evaluate("document.getElementById('preview').videoWidth > 0"), 10, "the preview")
    return page


async def join(page: Any, microphone: bool = True) -> None:
    """Press join on the pre-join screen and wait to be in the room, media connected."""
    if microphone:
        await page.check("#want-audio")
    await page.click("#join-button")
    await page.wait_for_selector("#room:not([hidden])", timeout=15_000)
    await page.wait_for_selector("#room[data-connection='connected']", timeout=20_000)
    await page.click("#open-participants")  # the list is a side panel, closed at first


async def enter(browser: Any, url: str, token: str, microphone: bool = True) -> Any:
    page = await prejoin(browser, url, token)
    await join(page, microphone)
    return page


async def media(page: Any) -> dict[str, int]:
    stats: dict[str, int] = await page.evaluate(STATS)
    return stats


async def growing(page: Any, what: str, seconds: float = 40) -> None:
    """The page's decoded frames (or audio samples) keep growing."""
    first = await until(lambda: media(page), 5, "stats")
    await until(lambda: _more(page, what, first[what]), seconds, f"{what} growing")


async def _more_reconnects(page: Any, before: int) -> bool:
    return bool(await page.evaluate("window.__giaoban.conn.reconnects") > before)


async def _more(page: Any, what: str, before: int) -> bool:
    return (await media(page))[what] > before


async def test_the_page_reconnects_by_itself_keeping_mute_and_hand(
    world: World, live: Live, browser: Any
) -> None:
    _series_id, people, tokens = await open_meeting(world)
    a = await enter(browser, live.url, tokens["a"])
    b = await enter(browser, live.url, tokens["b"])
    await growing(a, "frames")
    await growing(b, "frames")
    await growing(a, "samples")
    # A mutes the microphone and raises a hand before the network drops.
    await a.keyboard.press("m")
    await a.keyboard.press("h")
    a_item = f"#participants li[data-person='{people['a'].id}']"
    await b.wait_for_selector(f"{a_item}[data-muted='true'][data-hand='true']", timeout=10_000)

    # The network drops under A: its socket is cut without a close frame, the server lets go
    # of its peer connection (the socket handler's cleanup).
    media_node = live.app[keys.MEDIA]
    room = next(iter(media_node.registry))
    occurrence_id = room.occurrence_id
    old = room.participant(people["a"].id)
    old.ws._req.transport.abort()  # what a dead link looks like to the server

    await a.wait_for_selector("#connection-banner:not([hidden])", timeout=10_000)
    assert await a.locator("#connection-banner").inner_text() == "Đang kết nối lại…"
    assert await a.get_attribute("#room", "data-connection") == "reconnecting"
    # A screen of its own says what is retried and that nothing needs doing.
    await expect(a.locator("#status")).to_have_attribute("data-state", "reconnecting")
    await expect(a.locator("#status-message")).to_contain_text("lần thử")
    await a.screenshot(path=artifact("state-reconnecting.png"))
    # Back by itself: no pre-join screen, the banner gone, media flowing both ways again.
    await a.wait_for_selector("#room[data-connection='connected']", timeout=30_000)
    assert await a.locator("#connection-banner").is_hidden()
    assert await a.locator("#prejoin").is_hidden()
    assert await a.evaluate("window.__giaoban.conn.reconnects") >= 1
    new = room.participant(people["a"].id)
    assert new is not None and new.id != old.id
    await growing(a, "frames")
    await growing(a, "samples")
    await growing(b, "frames")
    # Still muted, hand still up, as everyone sees it.
    assert await a.get_attribute("#toggle-audio", "aria-pressed") == "true"
    assert await a.get_attribute("#toggle-hand", "aria-pressed") == "true"
    await b.wait_for_selector(f"{a_item}[data-muted='true'][data-hand='true']", timeout=10_000)
    state = room.state_of(people["a"].id)
    assert state is not None and state.audio_muted and state.hand_raised
    assert room.queue == [people["a"].id]
    # One attendance record for A, two connections merged.
    async with world.db() as db:
        rows = list(
            await db.scalars(
                select(Attendance).where(
                    Attendance.occurrence_id == occurrence_id, Attendance.person_id == people["a"].id
                )
            )
        )
    assert len(rows) == 1, rows
    assert rows[0].connections == 2 and rows[0].connected

    # Now only the media path fails, under a live socket: the server closes it (4105), the page
    # comes back the same way.
    reconnects = await a.evaluate("window.__giaoban.conn.reconnects")
    sfu = media_node.sfus[occurrence_id]
    await sfu.peer_connection(new.id).close()
    await until(lambda: _more_reconnects(a, reconnects), 20, "a reconnect")
    await a.wait_for_selector("#room[data-connection='connected']", timeout=30_000)
    await growing(a, "frames")
    assert await a.get_attribute("#toggle-audio", "aria-pressed") == "true"
    for page in (a, b):
        await page.context.close()


async def test_the_page_comes_back_after_the_server_restarts(world: World, live: Live, browser: Any) -> None:
    _series_id, people, tokens = await open_meeting(world)
    a = await enter(browser, live.url, tokens["a"])
    b = await enter(browser, live.url, tokens["b"])
    await growing(a, "frames")
    await b.keyboard.press("h")
    await a.wait_for_selector(f"#participants li[data-person='{people['b'].id}'][data-hand='true']")
    occurrence_id = next(iter(live.app[keys.MEDIA].registry)).occurrence_id

    # The server goes away (its sockets closed with 4104, its peer connections with it) and comes
    # back a few seconds later on the same port, its rooms empty: the pages come back by themselves.
    port = live.server.port
    await live.server.close()
    for page in (a, b):
        await page.wait_for_selector("#room[data-connection='reconnecting']", timeout=10_000)
        assert await page.locator("#connection-banner").is_visible()
    await asyncio.sleep(3)  # a failed attempt or two while it is down
    assert await a.get_attribute("#room", "data-connection") == "reconnecting"
    live.server = TestServer(create_app(live.settings), host="127.0.0.1", port=port)
    await live.server.start_server()
    for page in (a, b):
        await page.wait_for_selector("#room[data-connection='connected']", timeout=40_000)
        assert await page.locator("#connection-banner").is_hidden()
    await growing(a, "frames")
    await growing(b, "frames")
    # The new room learnt B's hand and microphone from B's page, not from its own memory.
    room = live.app[keys.MEDIA].registry.get(occurrence_id)
    assert room is not None and room.queue == [people["b"].id]
    await a.wait_for_selector(f"#participants li[data-person='{people['b'].id}'][data-hand='true']")
    state = room.state_of(people["b"].id)
    assert state is not None and not state.audio_muted
    async with world.db() as db:
        rows = list(await db.scalars(select(Attendance).where(Attendance.occurrence_id == occurrence_id)))
    assert sorted((r.person_id, r.connections) for r in rows) == sorted(
        [(people["a"].id, 2), (people["b"].id, 2)]
    )
    for page in (a, b):
        await page.context.close()


async def test_prejoin_device_choice_then_grid_and_speaker_views(
    world: World, live: Live, browser: Any, cameras_browser: Any
) -> None:
    _series_id, people, tokens = await open_meeting(world)
    a = await prejoin(cameras_browser, live.url, tokens["a"])
    # The person's name and unit; a centre's microphone is off unless asked.
    assert await a.locator("#prejoin-name").inner_text() == "Nguyễn Văn An"
    assert await a.locator("#prejoin-unit").inner_text() == "Phường Phong Điền"
    assert await a.is_checked("#want-audio") is False
    # The fake cameras offered; choosing another restarts the preview with it.
    cameras = await a.eval_on_selector_all("#camera-select option", "o => o.map(x => x.value)")
    assert len(cameras) == 4 and await a.locator("#mic-select option").count() >= 1
    in_use = "window.__giaoban.state.local?.getVideoTracks()[0]?.getSettings().deviceId"
    assert await a.evaluate(in_use) == cameras[0]
    # The call prepared on the pre-join screen (issue #18) takes the new camera without a new
    # peer connection or offer: replaceTrack on its transceiver.
    await until(lambda: _gathered(a), 10, "the call prepared")
    await a.evaluate("window.__giaoban.pc.__prepared = true")
    await a.select_option("#camera-select", cameras[3])
    await until(lambda: a.evaluate(f"{in_use} === {cameras[3]!r}"), 10, "the fourth camera")
    await until(lambda: a.evaluate("document.getElementById('preview').videoWidth > 0"), 10, "the preview")
    assert await a.input_value("#camera-select") == cameras[3]
    assert await a.evaluate("window.__giaoban.pc.__prepared === true")
    prepared_camera = """window.__giaoban.pc.getSenders().filter(s => s.track && s.track.kind === 'video')
      .map(s => s.track.getSettings().deviceId)"""
    await until(lambda: a.evaluate(f"({prepared_camera})[0] === {cameras[3]!r}"), 10, "its camera")
    await a.screenshot(path=artifact("room-prejoin-devices.png"))
    await join(a)
    # The chosen camera is the one sent.
    sent = """window.__giaoban.pc.getSenders().filter(s => s.track && s.track.kind === 'video')
      .map(s => s.track.getSettings().deviceId)"""
    assert await a.evaluate(sent) == [cameras[3]]

    b = await enter(browser, live.url, tokens["b"])
    await growing(a, "frames")
    await growing(b, "frames")
    grid = b.locator("#grid")
    assert await grid.get_attribute("data-layout") == "grid"
    assert await b.locator("#grid .tile").count() == 2
    # Both speak (fake audio): the dominant speaker's tile and list entry are highlighted.
    await b.wait_for_selector("#grid .tile.speaking[data-speaking='true']", timeout=20_000)
    await b.wait_for_selector("#participants li[data-speaking='true']", timeout=10_000)
    await b.screenshot(path=artifact("room-grid-view.png"))

    # Speaker view: one big tile (the speaker, else the other person), the rest as a strip.
    await b.click("#toggle-layout")
    await b.wait_for_selector("#grid[data-layout='speaker']")
    assert await b.get_attribute("#toggle-layout", "aria-pressed") == "true"
    assert await b.locator("#grid .tile.main").count() == 1
    big = await b.locator("#grid .tile.main").bounding_box()
    small = await b.locator("#grid .tile:not(.main)").first.bounding_box()
    assert big["width"] > 2 * small["width"], (big, small)
    assert await b.locator("#grid .tile.speaking").count() == 1
    await b.screenshot(path=artifact("room-speaker-view.png"))
    await b.click("#toggle-layout")
    await b.wait_for_selector("#grid[data-layout='grid']")
    assert await b.locator("#grid .tile.main").count() == 0

    # The keyboard shortcuts are listed, and V turns the camera off (the others see it).
    shortcuts = await b.locator("#shortcuts").inner_text()
    assert all(key in shortcuts for key in ("M", "V", "H")), shortcuts
    await b.keyboard.press("v")
    assert await b.get_attribute("#toggle-video", "aria-pressed") == "true"
    await a.wait_for_selector(
        f"#participants li[data-person='{people['b'].id}'][data-camera='false']", timeout=10_000
    )
    for page in (a, b):
        await page.context.close()


async def test_screen_share_audio_only_and_connection_quality(world: World, live: Live, browser: Any) -> None:
    _series_id, people, tokens = await open_meeting(world)
    a = await enter(browser, live.url, tokens["a"])
    b = await enter(browser, live.url, tokens["b"])
    await growing(b, "frames")

    # A shares the screen (headless Chromium captures a fake screen): B gets a screen tile.
    await a.click("#toggle-screen")
    await a.wait_for_selector("#toggle-screen[aria-pressed='true']", timeout=10_000)
    screen = f"#grid .tile.screen[data-screen='{people['a'].id}'] video"
    await b.wait_for_selector(screen, state="attached", timeout=20_000)
    await until(lambda: b.evaluate(f"document.querySelector({screen!r}).videoWidth > 0"), 20, "screen frames")
    await b.wait_for_selector(f"#participants li[data-person='{people['a'].id}'][data-screen='true']")
    # The screen takes the stage, the one speaking (else the other person) in its corner.
    await expect(b.locator("#grid .tile.screen.main")).to_have_count(1)
    await expect(
        b.locator(f"#grid .tile.screen.main .tile.pip[data-person='{people['a'].id}']")
    ).to_have_count(1)
    await b.screenshot(path=artifact("room-screen-share.png"))
    # Stopping drops it (another renegotiation).
    await a.click("#toggle-screen")
    await a.wait_for_selector("#toggle-screen[aria-pressed='false']")
    await b.wait_for_selector(screen, state="detached", timeout=20_000)
    await b.wait_for_selector(f"#participants li[data-person='{people['a'].id}'][data-screen='false']")
    await growing(b, "frames")  # the camera still comes through

    # B turns audio-only on: no video decoded any more, sound still; names in place of pictures.
    await b.click("#toggle-audio-only")
    await b.wait_for_selector("#room[data-audio-only='true']")
    assert await b.get_attribute("#toggle-video", "aria-pressed") == "true"  # camera off too
    await a.wait_for_selector(
        f"#participants li[data-person='{people['b'].id}'][data-camera='false']", timeout=10_000
    )
    await expect(b.locator("#grid .tile.no-video")).to_have_count(2, timeout=10_000)
    assert "NA" in await b.locator(f"#grid .tile[data-person='{people['a'].id}']").inner_text()
    await asyncio.sleep(2)  # let the renegotiation settle
    before = await media(b)
    await asyncio.sleep(3)
    after = await media(b)
    assert after["frames"] <= before["frames"], (before, after)
    assert after["samples"] > before["samples"], (before, after)
    # Back to video: the slots come back and frames flow again.
    await b.click("#toggle-audio-only")
    await b.wait_for_selector("#room[data-audio-only='false']")
    await growing(b, "frames")

    # Connection quality: each page measures itself, the server tells everyone the level.
    measured = "(l => l !== 'unknown' && l)(document.getElementById('quality').dataset.level)"
    level = await until(lambda: a.evaluate(measured), 20, "A's quality")
    assert level in {"good", "fair", "poor"}
    await b.wait_for_selector(
        f"#participants li[data-person='{people['a'].id}'][data-quality='{level}']", timeout=20_000
    )
    for page in (a, b):
        await page.context.close()


async def test_an_invitee_enters_an_open_room_from_the_home_page(
    world: World, live: Live, browser: Any
) -> None:
    _series_id, people, _tokens = await open_meeting(world)
    # A second meeting for the same centre, later today: its room is not open yet, no button.
    _later_series, later = await world.open_meeting(["P-PHONGDIEN"])
    async with world.db() as db:
        occurrence = await db.get(Occurrence, later.id)
        occurrence.start += timedelta(hours=2)
        occurrence.end += timedelta(hours=2)
        await db.commit()
    context = await browser.new_context(viewport={"width": 1000, "height": 800}, locale="vi-VN")
    page = await context.new_page()
    await page.goto(f"{live.url}/login")
    await page.fill("#f-email", people["a"].email)
    await page.fill("#f-password", PASSWORD)
    await page.press("#f-password", "Enter")
    await page.wait_for_url(f"{live.url}/")
    button = page.locator("#open-rooms a.join-room")
    assert await button.count() == 1
    assert await button.get_attribute("data-occurrence") != str(later.id)
    assert await button.inner_text() == "Vào phòng họp"
    await button.click()
    await page.wait_for_selector("#join-button:not([disabled])", timeout=15_000)
    assert "/rooms/" in page.url and "token=" not in page.url
    await join(page)
    await page.wait_for_selector(f"#participants li[data-person='{people['a'].id}']", timeout=10_000)
    await context.close()


async def _gathered(page: Any) -> bool:
    return bool(await page.evaluate("window.__giaoban.pc?.iceGatheringState === 'complete'"))


# The first getUserMedia settles only after 11 s (a permission prompt left open, a camera driver
# that hangs); an init script runs before the page's own, whatever its CSP.
SLOW_DEVICES = """(() => {
  const devices = navigator.mediaDevices;
  const open = devices.getUserMedia.bind(devices);
  let first = true;
  devices.getUserMedia = (constraints) => {
    if (!first) return open(constraints);
    first = false;
    return new Promise((resolve, reject) => setTimeout(() => open(constraints).then(resolve, reject), 11000));
  };
})();"""


async def test_devices_that_take_long_to_open_do_not_keep_anyone_out_and_join_when_ready(
    world: World, live: Live, browser: Any
) -> None:
    """After 8 s without the camera and microphone the pre-join screen lets one join, saying why;
    once they open, they join the call: the others see the picture."""
    _series, _people, tokens = await open_meeting(world)
    a = await enter(browser, live.url, tokens["a"])
    context = await browser.new_context(viewport={"width": 1100, "height": 800}, locale="vi-VN")
    await context.add_init_script(SLOW_DEVICES)
    b = await context.new_page()
    await b.goto(f"{live.url}/join/{tokens['b']}")
    await b.click("#join-room")
    note = b.locator("#device-note")
    await expect(note).to_contain_text("chưa mở được camera", timeout=15_000)
    await expect(b.locator("#join-button")).to_be_enabled()
    await b.screenshot(path=artifact("room-prejoin-devices-slow.png"))
    await b.click("#join-button")
    await b.wait_for_selector("#room:not([hidden])", timeout=15_000)
    await expect(a.locator("#participants li")).to_have_count(2, timeout=15_000)
    assert (await media(a))["frames"] == 0, "B has no camera yet: nothing to see"

    async def decoded() -> int:
        return (await media(a))["frames"]

    # The devices open (11 s after the page): a new peer connection offers them.
    await until(decoded, 30, "B's picture at A once B's camera opened")
    assert await note.is_hidden()
    for page in (a, b):
        await page.context.close()


async def test_the_pre_join_screen_prepares_the_call_and_joining_only_sends_it(
    world: World, live: Live, browser: Any
) -> None:
    """Issue #18: the peer connection, its offer and ICE gathering are ready on the pre-join
    screen; the click sends the offer with `join` and turns on what the person chose. Leaving the
    pre-join screen leaves nothing on the server."""
    _series_id, people, tokens = await open_meeting(world)
    media_node = live.app[keys.MEDIA]
    # B opens the pre-join screen, its call prepared, and goes away without joining.
    gone = await prejoin(browser, live.url, tokens["b"])
    await until(lambda: _gathered(gone), 10, "B's call prepared")
    await gone.context.close()
    await asyncio.sleep(0.5)
    assert not media_node.sfus and all(not room.participants for room in media_node.registry)

    context = await browser.new_context(viewport={"width": 1100, "height": 800}, locale="vi-VN")
    await context.add_init_script(script="window.__giaobanTiming = true")
    a = await context.new_page()
    await a.goto(f"{live.url}/join/{tokens['a']}")
    await a.click("#join-room")
    await prejoin_ready(a)
    await until(lambda: _gathered(a), 10, "A's call prepared")
    # Microphone on, camera off: what is sent follows the choice.
    await a.check("#want-audio")
    await a.uncheck("#want-video")
    await a.click("#join-button")
    await a.wait_for_selector("#room[data-connection='connected']", timeout=20_000)
    marks = json.loads(await a.locator("#join-timing").text_content() or "{}")
    assert marks["ice-gathered"] < marks["click"] < marks["offer-sent"] <= marks["welcome"], marks
    assert marks["welcome"] < marks["answer"] < marks["dtls-connected"], marks
    assert await a.get_attribute("#toggle-video", "aria-pressed") == "true"
    assert await a.get_attribute("#toggle-audio", "aria-pressed") == "false"
    enabled = """window.__giaoban.pc.getSenders().filter(s => s.track)
      .map(s => [s.track.kind, s.track.enabled]).sort()"""
    assert await a.evaluate(enabled) == [["audio", True], ["video", False]]

    b = await enter(browser, live.url, tokens["b"])  # its participants panel open
    await b.wait_for_selector(
        f"#participants li[data-person='{people['a'].id}'][data-camera='false'][data-muted='false']",
        timeout=10_000,
    )
    await growing(a, "frames")
    await growing(b, "samples")
    for page in (a, b):
        await page.context.close()
