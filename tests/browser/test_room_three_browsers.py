"""Three people in one meeting in Chromium: media, mute at the server, hands, chat, moderation, lobby."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from playwright.async_api import expect
from sqlalchemy import select

from meetings import i18n
from meetings.directory.models import Person, Role, UnitKind
from meetings.rooms.models import ChatMessage
from meetings.rtc.sfu import Sfu
from meetings.schedule.links import JoinLink, make_join_token
from meetings.settings import Settings
from tests.browser.conftest import artifact
from tests.browser.prejoin import prejoin_ready
from tests.conftest import PASSWORD, World
from web import keys
from web.app import create_app

pytestmark = pytest.mark.browser

# What each remote person's media has given this page so far: {person id: {frames, samples}}.
# A receive slot's statistics are matched to the person it carries through its track.
PER_PERSON = """async () => {
  const g = window.__giaoban;
  const pc = g && g.pc;
  const out = {};
  if (!pc || pc.connectionState === "closed") return out;
  const midOf = new Map();
  for (const t of pc.getTransceivers()) if (t.mid !== null) midOf.set(t.receiver.track.id, t.mid);
  (await pc.getStats()).forEach((s) => {
    if (s.type !== "inbound-rtp") return;
    const slot = g.state.slots.get(s.mid !== undefined ? s.mid : midOf.get(s.trackIdentifier));
    if (!slot || slot.personId === null || slot.personId === undefined) return;
    const entry = out[slot.personId] || (out[slot.personId] = {frames: 0, samples: 0});
    if (s.kind === "video") entry.frames += s.framesDecoded || 0;
    if (s.kind === "audio") entry.samples += s.totalSamplesReceived || 0;
  });
  return out;
}"""

# Audio packets this page has sent (its microphone's publication).
AUDIO_SENT = """async () => {
  const pc = window.__giaoban.pc;
  let sent = 0;
  (await pc.getStats()).forEach((s) => {
    if (s.type === "outbound-rtp" && s.kind === "audio") sent += s.packetsSent || 0;
  });
  return sent;
}"""

# Slow, shared CI machines: every wait is generous; nothing is asserted about durations.
MEDIA_S = 45
EVENT_MS = 20_000
TEST_S = 240  # a whole test; a hang fails with the line it hung on
CLOSE_S = 60


async def until(check: Any, seconds: float, what: str) -> Any:
    """Poll a check (sync or async) until it returns something truthy, or fail after `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        value = check()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.25)


@dataclass
class Live:
    """The app served on a loopback port, and the app itself (its media plane is inspected)."""

    url: str
    app: web.Application


@pytest.fixture
async def live(settings: Settings) -> AsyncIterator[Live]:
    """Like `live_url`, keeping hold of the app."""
    app = create_app(settings)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield Live(str(server.make_url("")).rstrip("/"), app)
    finally:
        async with asyncio.timeout(CLOSE_S):  # a shutdown that hangs fails the test, not the run
            await server.close()


class Forwarding:
    """What a room's SFU forwards, read through its public API (``streams``, ``assignments``)."""

    def __init__(self, live: Live, occurrence_id: int) -> None:
        self.media = live.app[keys.MEDIA]
        self.occurrence_id = occurrence_id

    @property
    def sfu(self) -> Sfu:
        return self.media.sfus[self.occurrence_id]

    def microphone(self, participant: str) -> str | None:
        """The mid of a connection's microphone publication, if it publishes one (muted or not)."""
        for key, (owner, kind, source) in self.sfu.streams().items():
            if owner == participant and kind == "audio" and source == "microphone":
                return key.split("/", 1)[1]
        return None

    def listeners(self, participant: str) -> int:
        """How many receive slots (of everyone else) carry this connection's microphone now."""
        mid = self.microphone(participant)
        if mid is None:
            return 0
        return sum(
            1
            for other in self.sfu.participants()
            for carried in self.sfu.assignments(other).values()
            if carried == (participant, mid)
        )

    async def watch(self, participants: list[str], seconds: float) -> dict[str, list[int]]:
        """`listeners` of each connection, sampled every 0.2 s for `seconds`."""
        samples: dict[str, list[int]] = {p: [] for p in participants}
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for p in participants:
                samples[p].append(self.listeners(p))
            await asyncio.sleep(0.2)
        return samples


@dataclass
class Meeting:
    """An open meeting: its occurrence, its people by key and their personal join tokens."""

    occurrence_id: int
    people: dict[str, Person]
    tokens: dict[str, str]


async def open_meeting(world: World) -> Meeting:
    """A meeting starting in five minutes for a centre's two officers, chaired from a department."""
    centre = await world.unit("P-PHONGDIEN", UnitKind.CENTRE, "Phường Phong Điền")
    dept = await world.unit("VP-UBND", UnitKind.DEPARTMENT, "Văn phòng UBND")
    people = {
        "chair": await world.person("chair@hue.example", Role.CHAIR, dept, name="Phan Chủ Trì"),
        "a": await world.person("a@hue.example", Role.MEMBER, centre, name="Nguyễn Văn An"),
        "b": await world.person("b@hue.example", Role.MEMBER, centre, name="Trần Thị Bình"),
    }
    series, occurrence = await world.open_meeting(["P-PHONGDIEN"], chair_email="chair@hue.example")
    expires = datetime.now(UTC) + timedelta(days=1)
    tokens = {
        key: make_join_token(world.settings.secret_key, JoinLink(person.id, series.id, None, expires))
        for key, person in people.items()
    }
    return Meeting(occurrence.id, people, tokens)


async def new_page(stack: contextlib.AsyncExitStack, browser: Any) -> Any:
    """A page in a fresh browser context, closed when the test ends (even on failure)."""
    context = await browser.new_context(viewport={"width": 1100, "height": 800}, locale="vi-VN")
    stack.push_async_callback(context.close)
    return await context.new_page()


async def prejoin(page: Any, mic: bool, shot: str = "") -> None:
    """On the pre-join screen: wait for the preview, choose the microphone, click "Join now"."""
    await prejoin_ready(page)
    await until(lambda: page.evaluate("document.getElementById('preview').videoWidth > 0"), 20, "the preview")
    if shot:
        await page.screenshot(path=artifact(shot))
    await page.set_checked("#want-audio", mic)
    await page.click("#join-button")


async def enter(
    stack: contextlib.AsyncExitStack, browser: Any, url: str, token: str, mic: bool, shot: str = ""
) -> Any:
    """Open a personal invitation link, go to the room, join with the microphone on or off."""
    page = await new_page(stack, browser)
    await page.goto(f"{url}/join/{token}")
    await page.click("#join-room")
    await prejoin(page, mic, shot)
    await page.wait_for_selector("#room:not([hidden])", timeout=EVENT_MS)
    await page.click("#open-participants")  # the list is a side panel, closed at first
    return page


def listed(person: Person, muted: bool | None = None, hand: bool | None = None) -> str:
    """The selector of a person's entry in the participants panel, in a given state."""
    selector = f"#participants li[data-person='{person.id}']"
    if muted is not None:
        selector += f"[data-muted='{str(muted).lower()}']"
    if hand is not None:
        selector += f"[data-hand='{str(hand).lower()}']"
    return selector


async def seated(pages: list[Any], count: int) -> None:
    """Wait until every page lists `count` participants."""
    for page in pages:
        await until(
            lambda page=page: page.evaluate(
                f"document.querySelectorAll('#participants li[data-person]').length === {count}"
            ),
            EVENT_MS / 1000,
            f"{count} participants listed",
        )


async def connection_id(page: Any) -> str:
    """The page's connection (participant) id, as the SFU knows it."""
    value: str = await until(lambda: page.evaluate("window.__giaoban.state.me"), 10, "the connection id")
    return value


async def queue_of(page: Any) -> list[int]:
    """Person ids in the chair's speakers' queue, in order."""
    ids: list[str] = await page.evaluate(
        "Array.from(document.querySelectorAll('#queue li[data-person]')).map((li) => li.dataset.person)"
    )
    return [int(i) for i in ids]


async def queue_is(page: Any, expected: list[int]) -> bool:
    """Whether the chair's queue shows exactly these people, in this order."""
    return await queue_of(page) == expected


async def receiving(page: Any, others: list[Person]) -> dict[str, dict[str, int]]:
    """Per remote person, frames decoded and audio samples received; {} until all of them have some."""
    stats: dict[str, dict[str, int]] = await page.evaluate(PER_PERSON)
    for person in others:
        got = stats.get(str(person.id))
        if not got or got["frames"] == 0 or got["samples"] == 0:
            return {}
    return stats


async def test_three_browsers_decode_each_other_and_a_mute_stops_at_the_server(
    world: World, live: Live, browser: Any
) -> None:
    meeting = await open_meeting(world)
    people = meeting.people
    async with asyncio.timeout(TEST_S), contextlib.AsyncExitStack() as stack:
        pages = {
            "chair": await enter(stack, browser, live.url, meeting.tokens["chair"], mic=True),
            "a": await enter(
                stack, browser, live.url, meeting.tokens["a"], mic=True, shot="room3-prejoin.png"
            ),
            "b": await enter(stack, browser, live.url, meeting.tokens["b"], mic=True),
        }
        await seated(list(pages.values()), 3)

        # Every page decodes both other people's video and audio, and keeps doing so.
        others = {key: [p for k, p in people.items() if k != key] for key in pages}
        first = {
            key: await until(lambda key=key: receiving(pages[key], others[key]), MEDIA_S, f"{key}'s media")
            for key in pages
        }
        await asyncio.sleep(3)
        for key, page in pages.items():
            later = await page.evaluate(PER_PERSON)
            for person in others[key]:
                before, after = first[key][str(person.id)], later[str(person.id)]
                assert after["frames"] > before["frames"], (key, person.name, before, after)
                assert after["samples"] > before["samples"], (key, person.name, before, after)
        tiles = pages["b"].locator("#grid .tile[data-person]")
        assert await tiles.count() == 3
        assert (
            "Phường Phong Điền"
            in await pages["b"].locator(f"#grid [data-person='{people['a'].id}']").inner_text()
        )
        await pages["b"].screenshot(path=artifact("room3-grid.png"))

        # Both officers' microphones reach the SFU and are forwarded to the others.
        server = Forwarding(live, meeting.occurrence_id)
        a_id, b_id = await connection_id(pages["a"]), await connection_id(pages["b"])
        await until(lambda: server.listeners(a_id) and server.listeners(b_id), MEDIA_S, "both forwarded")

        # A mutes: the others' lists show it, and the SFU stops forwarding A's audio.
        await pages["a"].click("#toggle-audio")
        await pages["a"].wait_for_selector("#toggle-audio[aria-pressed='true']", timeout=EVENT_MS)
        for key in ("chair", "b"):
            await pages[key].wait_for_selector(listed(people["a"], muted=True), timeout=EVENT_MS)
        # The page silenced its own track too; turn it back on, as a stale or tampered page would:
        # what the SFU gets from A is audible again, and still must not be forwarded.
        await pages["a"].evaluate(
            "window.__giaoban.state.local.getAudioTracks().forEach((t) => (t.enabled = true))"
        )
        sent = await pages["a"].evaluate(AUDIO_SENT)
        forwarded = server.sfu.stats()["forwarded"]
        seen = await server.watch([a_id, b_id], 4)
        assert server.microphone(a_id) is not None, "A's microphone is no longer published"
        assert max(seen[a_id]) == 0, f"the muted microphone is still forwarded: {seen[a_id]}"
        assert max(seen[b_id]) > 0, f"the unmuted microphone stopped too: {seen[b_id]}"
        assert server.sfu.stats()["forwarded"] > forwarded
        assert await pages["a"].evaluate(AUDIO_SENT) > sent, (
            "A's browser stopped sending: not the SFU's doing"
        )


async def test_hands_queue_in_order_the_floor_unmutes_and_chat_is_kept(
    world: World, live: Live, browser: Any
) -> None:
    meeting = await open_meeting(world)
    people = meeting.people
    async with asyncio.timeout(TEST_S), contextlib.AsyncExitStack() as stack:
        chair = await enter(stack, browser, live.url, meeting.tokens["chair"], mic=True)
        a = await enter(stack, browser, live.url, meeting.tokens["a"], mic=False)
        b = await enter(stack, browser, live.url, meeting.tokens["b"], mic=False)
        await seated([chair, a, b], 3)
        await chair.wait_for_selector("#chair-panel:not([hidden])", timeout=EVENT_MS)
        assert await a.locator("#toggle-audio").get_attribute("aria-pressed") == "true"

        # A raises a hand, then B: the chair's queue keeps that order.
        await a.keyboard.press("h")
        await chair.wait_for_selector(f"#queue li[data-person='{people['a'].id}']", timeout=EVENT_MS)
        await b.click("#toggle-hand")
        await chair.wait_for_selector(f"#queue li[data-person='{people['b'].id}']", timeout=EVENT_MS)
        assert await queue_of(chair) == [people["a"].id, people["b"].id]
        await b.wait_for_selector(listed(people["a"], hand=True), timeout=EVENT_MS)

        # The chair gives A the floor: A is unmuted on its page, in the others' lists and at the SFU.
        server = Forwarding(live, meeting.occurrence_id)
        a_id = await connection_id(a)
        assert max((await server.watch([a_id], 1))[a_id]) == 0  # muted: not forwarded
        await chair.click(f"#queue li[data-person='{people['a'].id}'] button[data-action='give_floor']")
        await a.wait_for_selector("#toggle-audio[aria-pressed='false']", timeout=EVENT_MS)
        assert await a.locator("#toggle-hand").get_attribute("aria-pressed") == "false"
        for page in (chair, b):
            await page.wait_for_selector(listed(people["a"], muted=False, hand=False), timeout=EVENT_MS)
        await until(lambda: queue_is(chair, [people["b"].id]), EVENT_MS / 1000, "B alone in the queue")
        await until(lambda: server.listeners(a_id), MEDIA_S, "A's microphone forwarded")

        # B writes in the chat: everyone sees it, and it is kept with the occurrence.
        text = "Phường Phong Điền xin báo cáo tình hình"
        await b.click("#open-chat")  # the chat is a side panel
        await b.fill("#chat-text", text)
        await b.press("#chat-text", "Enter")
        for page in (chair, a, b):
            await until(
                lambda page=page: page.evaluate(
                    "(text) => document.getElementById('chat-log').textContent.includes(text)", text
                ),
                EVENT_MS / 1000,
                "the chat message",
            )
        async with world.db() as db:
            stored = list(
                await db.scalars(
                    select(ChatMessage).where(ChatMessage.occurrence_id == meeting.occurrence_id)
                )
            )
        assert [(m.person_id, m.name, m.text) for m in stored] == [(people["b"].id, "Trần Thị Bình", text)]


async def test_chair_mutes_removes_and_admits_from_the_lobby(world: World, live: Live, browser: Any) -> None:
    meeting = await open_meeting(world)
    people = meeting.people
    elsewhere = await world.unit("P-THUANHOA", UnitKind.CENTRE, "Phường Thuận Hóa")
    visitor = await world.person("khach@hue.example", Role.MEMBER, elsewhere, name="Lê Văn Khách")
    async with asyncio.timeout(TEST_S), contextlib.AsyncExitStack() as stack:
        chair = await enter(stack, browser, live.url, meeting.tokens["chair"], mic=True)
        a = await enter(stack, browser, live.url, meeting.tokens["a"], mic=True)
        b = await enter(stack, browser, live.url, meeting.tokens["b"], mic=True)
        await seated([chair, a, b], 3)
        await chair.wait_for_selector("#chair-panel:not([hidden])", timeout=EVENT_MS)

        # The chair mutes B: B's page follows, A's list shows it.
        await chair.wait_for_selector(listed(people["b"], muted=False), timeout=EVENT_MS)
        await chair.click(f"{listed(people['b'])} button[data-action='mute']")
        await b.wait_for_selector("#toggle-audio[aria-pressed='true']", timeout=EVENT_MS)
        await a.wait_for_selector(listed(people["b"], muted=True), timeout=EVENT_MS)

        # Both officers raise a hand, so that the chair's panel shows a queue as well as the lobby.
        for page, person in ((a, people["a"]), (b, people["b"])):
            await page.keyboard.press("h")
            await chair.wait_for_selector(f"#queue li[data-person='{person.id}']", timeout=EVENT_MS)
        await until(lambda: queue_is(chair, [people["a"].id, people["b"].id]), EVENT_MS / 1000, "two hands")

        # A member of a centre not invited signs in and opens the room: the lobby.
        guest = await new_page(stack, browser)
        await guest.goto(f"{live.url}/login?next=/rooms/{meeting.occurrence_id}")
        await guest.fill("#f-email", visitor.email)
        await guest.fill("#f-password", PASSWORD)
        await guest.press("#f-password", "Enter")
        await guest.wait_for_url(f"**/rooms/{meeting.occurrence_id}", timeout=EVENT_MS)
        await prejoin(guest, mic=False)
        with i18n.language("vi"):
            waiting = i18n.gettext("You are waiting in the lobby until a moderator lets you in.")
        await expect(guest.locator("body")).to_contain_text(waiting, timeout=EVENT_MS)
        assert await guest.locator("#room").is_hidden()
        waiting_entry = chair.locator(f"#lobby li[data-person='{visitor.id}']")
        await waiting_entry.wait_for(timeout=EVENT_MS)
        assert "Lê Văn Khách" in await waiting_entry.inner_text()
        assert await a.locator(listed(visitor)).count() == 0
        await chair.screenshot(path=artifact("room3-chair-panel.png"))

        # The chair admits the visitor: seated, listed everywhere.
        await waiting_entry.locator("button[data-action='admit']").click()
        await guest.wait_for_selector("#room:not([hidden])", timeout=EVENT_MS)
        await guest.click("#open-participants")
        for page in (chair, a, b, guest):
            await page.wait_for_selector(listed(visitor), timeout=EVENT_MS)
        await chair.wait_for_selector(
            f"#lobby li[data-person='{visitor.id}']", state="detached", timeout=EVENT_MS
        )

        # The chair removes A: A's page says so and A does not come back.
        with i18n.language("vi"):
            removed = i18n.gettext("A moderator removed you from the meeting.")
        await chair.click(f"{listed(people['a'])} button[data-action='remove']")
        await expect(a.locator("body")).to_contain_text(removed, timeout=EVENT_MS)
        for page in (chair, b, guest):
            await page.wait_for_selector(listed(people["a"]), state="detached", timeout=EVENT_MS)
        await asyncio.sleep(6)  # long enough for any reconnection attempt
        for page in (chair, b, guest):
            assert await page.locator(listed(people["a"])).count() == 0
        assert await chair.locator(f"#lobby li[data-person='{people['a'].id}']").count() == 0
        # At the server too: A holds no seat and does not wait in the lobby.
        room = live.app[keys.MEDIA].registry.get(meeting.occurrence_id)
        assert room is not None
        assert room.participant(people["a"].id) is None
        assert people["a"].id not in {p.person_id for p in room.waiting}
