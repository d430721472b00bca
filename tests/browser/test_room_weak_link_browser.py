"""Weak links in the browser room (#16): the page publishes simulcast, tells the server its tile
sizes, and shows what the forwarding unit does (paused video, layers, estimates).

The SFU's own layer and estimate events come from the forwarding unit's allocation; here the
server side is driven by hand (``MeetingSession.on_media``) so the page's side is tested alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from typing import Any

import pytest
from playwright.async_api import expect

from meetings.live import protocol as proto
from meetings.live.session import MeetingSession
from meetings.rtc.sfu import LayerChanged, LayersWanted, LinkEstimate, Sfu, SfuEvent
from tests.browser.conftest import artifact
from tests.browser.test_room_three_browsers import (
    EVENT_MS,
    MEDIA_S,
    TEST_S,
    Live,
    connection_id,
    enter,
    open_meeting,
    seated,
    until,
)
from tests.browser.test_room_three_browsers import live as live  # the fixture
from tests.conftest import World
from web import keys

pytestmark = pytest.mark.browser

PAUSED = "Đường truyền yếu — tạm dừng hình"


# The screen share's sender as the page set it up (read, not waited on: `until` polls it).
SCREEN_SENDER = """() => {
  const call = window.__giaoban.conn.call;
  const screen = call && call.screen;
  if (!screen || !screen.sender.track) return null;
  const p = screen.sender.getParameters();
  if (!p.degradationPreference) return null;
  return {
    hint: screen.sender.track.contentHint,
    encodings: p.encodings.map((e) => ({maxFramerate: e.maxFramerate, scale: e.scaleResolutionDownBy})),
    degradation: p.degradationPreference,
  };
}"""


def session_of(live: Live, occurrence_id: int) -> MeetingSession:
    return live.app[keys.MEDIA].meetings[occurrence_id]


def section(sdp: str, mid: str) -> list[str]:
    """The lines of one m-section of an SDP, found by its mid."""
    for chunk in re.split(r"\r?\nm=", sdp)[1:]:
        lines = chunk.splitlines()
        if f"a=mid:{mid}" in lines:
            return lines
    raise AssertionError(f"no m-section {mid}")


def camera_mid(live: Live, occurrence_id: int, participant: str) -> str | None:
    """The mid of a connection's camera publication, as the SFU has it."""
    sfu = live.app[keys.MEDIA].sfus[occurrence_id]
    for key, (owner, kind, source) in sfu.streams().items():
        if owner == participant and kind == "video" and source == "camera":
            return key.split("/", 1)[1]
    return None


async def test_the_camera_is_published_as_simulcast_and_tile_sizes_reach_the_sfu(
    world: World, live: Live, browser: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    offers: list[proto.Sdp] = []
    offer = MeetingSession._offer

    async def recording_offer(self: MeetingSession, client: Any, message: proto.Sdp) -> None:
        offers.append(message)
        await offer(self, client, message)

    monkeypatch.setattr(MeetingSession, "_offer", recording_offer)
    tiles: list[tuple[str, dict[str, tuple[int, int]]]] = []
    set_tile_sizes = Sfu.set_tile_sizes

    def recording_tiles(self: Sfu, participant: str, sizes: Any) -> None:
        tiles.append((participant, dict(sizes)))
        set_tile_sizes(self, participant, sizes)

    monkeypatch.setattr(Sfu, "set_tile_sizes", recording_tiles)

    meeting = await open_meeting(world)
    people = meeting.people
    async with asyncio.timeout(TEST_S), contextlib.AsyncExitStack() as stack:
        chair = await enter(stack, browser, live.url, meeting.tokens["chair"], mic=True)
        a = await enter(stack, browser, live.url, meeting.tokens["a"], mic=False)
        await seated([chair, a], 2)

        # (a) Each page's first offer sends its camera as three simulcast layers, low to high.
        await until(lambda: len(offers) >= 2, MEDIA_S, "two offers")
        for message in offers[:2]:
            cameras = [mid for mid, source in message.sources if source == "camera"]
            assert len(cameras) == 1, message.sources
            lines = section(message.sdp, cameras[0])
            assert "a=simulcast:send q;h;f" in lines, lines
            assert [line for line in lines if line.startswith("a=rid:")] == [
                "a=rid:q send",
                "a=rid:h send",
                "a=rid:f send",
            ]
            assert any("urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id" in line for line in lines)
            assert any("urn:ietf:params:rtp-hdrext:sdes:mid" in line for line in lines)
            # VP8 first for the camera.
            first = lines[0].split()[3]
            assert f"a=rtpmap:{first} VP8/90000" in lines, lines[0]

        # (b) A's page tells the SFU how large it shows the chair's video, in device pixels.
        a_id = await connection_id(a)
        tile = a.locator(f"#grid .tile[data-person='{people['chair'].id}'][data-mid]")
        await expect(tile).to_have_count(1, timeout=MEDIA_S * 1000)
        mid = await tile.get_attribute("data-mid")
        assert mid is not None

        async def reported(narrower_than: int = 1_000_000) -> bool:
            box = await tile.bounding_box()
            if box is None or not tiles:
                return False
            want = (round(box["width"]), round(box["height"]))  # devicePixelRatio 1 here
            mine = [sizes for who, sizes in tiles if who == a_id]
            return bool(mine) and mine[-1].get(mid) == want and 0 < want[0] < narrower_than

        await until(reported, MEDIA_S, "A's tile size at the SFU")
        last = [sizes for who, sizes in tiles if who == a_id][-1]
        assert all(size == (0, 0) for other, size in last.items() if other != mid), last
        # A smaller window: the new size follows (waiting for the narrower tile itself: right
        # after the resize the layout may not have moved yet, and the old size still matched).
        before = last[mid]
        await a.set_viewport_size({"width": 700, "height": 500})
        await until(lambda: reported(before[0]), MEDIA_S, "A's new tile size at the SFU")
        after = [sizes for who, sizes in tiles if who == a_id][-1][mid]
        assert after[0] < before[0], (before, after)

        # A screen share: its own m-section, full size, a few frames a second, sharp text.
        await chair.click("#toggle-screen")
        await chair.wait_for_selector("#toggle-screen[aria-pressed='true']", timeout=EVENT_MS)
        await until(
            lambda: any(src == "screen" for m in offers for _, src in m.sources), MEDIA_S, "a screen offer"
        )
        params = await until(lambda: chair.evaluate(SCREEN_SENDER), MEDIA_S, "the screen sender")
        assert params == {
            "hint": "text",
            "encodings": [{"maxFramerate": 5, "scale": 1}],
            "degradation": "maintain-resolution",
        }, params


async def test_the_page_shows_what_the_forwarding_unit_does(
    world: World, live: Live, browser: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The test tells the page what the forwarding unit does (LayerChanged, LinkEstimate); the
    # SFU's own allocation would race it with real events for the same slots, and so would its
    # own layer switches (a publisher's top layer starting late under load switched the slot and
    # unpaused the tile the test had just paused): the SFU's LayerChanged events are not passed on,
    # nor its LinkEstimate ones (a real "1 Mbit/s" replaced the injected 280 kbit/s in the stats
    # overlay before the test read it, 2026-12-07).
    monkeypatch.setattr(Sfu, "_adapt", lambda self, now=None: None)
    emit = Sfu._emit

    def emit_but_layers(self: Sfu, event: SfuEvent) -> None:
        if not isinstance(event, LayerChanged | LinkEstimate):
            emit(self, event)

    monkeypatch.setattr(Sfu, "_emit", emit_but_layers)
    meeting = await open_meeting(world)
    people = meeting.people
    async with asyncio.timeout(TEST_S), contextlib.AsyncExitStack() as stack:
        chair = await enter(stack, browser, live.url, meeting.tokens["chair"], mic=True)
        a = await enter(stack, browser, live.url, meeting.tokens["a"], mic=False)
        await seated([chair, a], 2)
        session = session_of(live, meeting.occurrence_id)
        a_id = await connection_id(a)
        tile = a.locator(f"#grid .tile[data-person='{people['chair'].id}'][data-mid]")
        await expect(tile).to_have_count(1, timeout=MEDIA_S * 1000)
        await expect(tile).not_to_have_class(re.compile(r"\bno-video\b"), timeout=MEDIA_S * 1000)
        mid = await tile.get_attribute("data-mid")
        assert mid is not None

        # (c) The chair's video paused for A's bandwidth: the label over the initials, then gone.
        session.on_media(LayerChanged(a_id, mid, None, None, None, None, True))
        await expect(tile).to_have_attribute("data-paused", "true", timeout=EVENT_MS)
        await expect(tile.locator(".tile-paused")).to_have_text(PAUSED)
        await expect(tile.locator(".tile-paused")).to_be_visible()
        await expect(tile).to_have_class(re.compile(r"\bno-video\b"))
        await a.screenshot(path=artifact("room-paused.png"))
        # A layer for a slot A does not have changes nothing.
        session.on_media(LayerChanged(a_id, "999", None, None, None, None, True))
        session.on_media(LayerChanged(a_id, mid, 1, 2, 320, 180, False))
        await expect(tile).to_have_attribute("data-paused", "false", timeout=EVENT_MS)
        await expect(tile.locator(".tile-paused")).to_be_hidden()
        await expect(tile).not_to_have_class(re.compile(r"\bno-video\b"))

        # (e) The chair's panel shows what A receives: its layer, then "audio only" when paused.
        entry = chair.locator(f"#participants li[data-person='{people['a'].id}']")
        await expect(entry).to_have_attribute("data-layer", "320×180", timeout=EVENT_MS)
        await expect(entry.locator(".layer")).to_have_text("320×180")
        # A participant's own panel does not list the others' layers.
        await expect(a.locator(f"#participants li[data-person='{people['chair'].id}'] .layer")).to_have_count(
            0
        )
        session.on_media(LayerChanged(a_id, mid, None, None, None, None, True))
        await expect(entry).to_have_attribute("data-layer", "chỉ âm thanh", timeout=EVENT_MS)
        session.on_media(LayerChanged(a_id, mid, 2, None, 640, 360, False))
        await expect(entry).to_have_attribute("data-layer", "640×360", timeout=EVENT_MS)
        await chair.screenshot(path=artifact("room-chair-layers.png"))

        # The estimate reaches A's connection indicator and its stats overlay (S toggles it).
        session.on_media(LinkEstimate(a_id, 280_000, 95_000, 4.5, 160))
        await expect(a.locator("#quality .quality-figures")).to_contain_text("280 kbit/s", timeout=EVENT_MS)
        await expect(a.locator("#quality .quality-figures")).to_contain_text("160 ms")
        await a.keyboard.press("s")
        overlay = a.locator("#stats-overlay")
        await expect(overlay).to_be_visible()
        await expect(a.locator("#toggle-stats")).to_have_attribute("aria-pressed", "true")
        await expect(a.locator("#stats-link")).to_contain_text("nhận 280 kbit/s", timeout=EVENT_MS)
        await expect(a.locator("#stats-link")).to_contain_text("mất gói 4,5 %")
        row = a.locator(f"#stats-videos tr[data-mid='{mid}']")
        await expect(row).to_contain_text(people["chair"].name, timeout=EVENT_MS)
        await expect(row).to_contain_text(re.compile(r"\d+×\d+ \(S2\)"), timeout=MEDIA_S * 1000)

        await a.screenshot(path=artifact("room-stats.png"))


def accept_simulcast(answer: str, offer: str, mid: str) -> str:
    """An answer that receives the offer's m-section `mid` as simulcast (rids and the rid header
    extension mirrored), unless it does already: the page's side of dynacast needs the three
    encodings, whatever the forwarding unit of this branch makes of them."""
    sent = section(offer, mid)
    parts = re.split(r"(\r\nm=)", answer)
    for i in range(2, len(parts), 2):
        lines = parts[i].split("\r\n")
        if f"a=mid:{mid}" not in lines or any(line.startswith("a=simulcast:") for line in lines):
            continue
        extra = [line for line in sent if "sdes:rtp-stream-id" in line and line not in lines]
        extra += [line.replace(" send", " recv") for line in sent if line.startswith("a=rid:")]
        extra.append("a=simulcast:recv q;h;f")
        end = len(lines) - 1 if lines[-1] == "" else len(lines)
        parts[i] = "\r\n".join(lines[:end] + extra + lines[end:])
    return "".join(parts)


async def test_the_page_encodes_only_the_layers_someone_receives(
    world: World, live: Live, browser: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    join = Sfu.join

    async def simulcast_join(self: Sfu, participant: str, offer: str, sources: dict[str, Any]) -> str:
        answer = await join(self, participant, offer, sources)
        camera = next((mid for mid, source in sources.items() if source == "camera"), None)
        return accept_simulcast(answer, offer, camera) if camera else answer

    monkeypatch.setattr(Sfu, "join", simulcast_join)
    meeting = await open_meeting(world)
    async with asyncio.timeout(TEST_S), contextlib.AsyncExitStack() as stack:
        chair = await enter(stack, browser, live.url, meeting.tokens["chair"], mic=True)
        session = session_of(live, meeting.occurrence_id)
        chair_id = await connection_id(chair)
        cam = await until(lambda: camera_mid(live, meeting.occurrence_id, chair_id), MEDIA_S, "chair camera")
        await chair.click("#toggle-stats")
        send = chair.locator("#stats-send")
        await expect(send).to_contain_text(
            re.compile(r"^Các lớp hình camera đang gửi: q .* · h .* · f "), timeout=EVENT_MS
        )
        # (d) Alone in the meeting, nobody receives its camera: the forwarding unit keeps only the
        # lowest layer encoding (dynacast, the real SFU's LayersWanted) and the page stops the others.
        await expect(send).to_contain_text("h tắt · f tắt", timeout=EVENT_MS)
        await expect(send).not_to_contain_text("q tắt")
        # Receivers for every layer: the page starts them again; then only the lowest once more.
        session.on_media(LayersWanted(chair_id, "999", ()))  # not its camera: ignored
        session.on_media(LayersWanted(chair_id, cam, ("q", "h", "f")))
        await expect(send).not_to_contain_text("tắt", timeout=EVENT_MS)
        session.on_media(LayersWanted(chair_id, cam, ("q",)))
        await expect(send).to_contain_text("h tắt · f tắt", timeout=EVENT_MS)
        await expect(send).not_to_contain_text("q tắt")
