"""A network drop under a participant, for real: Chromium in a network namespace whose link is
cut (every packet dropped both ways) and restored. The page comes back to media on the same
socket with a new peer connection (the SFU cannot restart ICE): no new join, no pre-join screen
(issue #18, docs/signaling.md "Reconnection")."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import expect
from sqlalchemy import select

import chromium
import shapedlink
from meetings.rooms.models import Attendance
from meetings.settings import Settings
from tests.browser.conftest import chromium_path
from tests.browser.test_room_browser import open_meeting, until
from tests.browser.test_room_features_browser import enter
from tests.conftest import World
from web import keys
from web.app import create_app

pytestmark = pytest.mark.browser

CUT_S = 8.0  # Chromium's ICE says "disconnected" within this, after a cut

# Video frames decoded on the page's current peer connection, and which one it is.
FRAMES = """async () => {
  const g = window.__giaoban;
  const pc = g && g.pc;
  if (!pc) return {pc: 0, frames: 0};
  if (!pc.__jfId) pc.__jfId = Math.random();
  let frames = 0;
  (await pc.getStats()).forEach((s) => {
    if (s.type === "inbound-rtp" && s.kind === "video") frames += s.framesDecoded || 0;
  });
  return {pc: pc.__jfId, frames};
}"""


@dataclasses.dataclass
class RoutedLink:
    """Chromium's namespace behind a router namespace: a cut in the router drops packets in
    transit, so both ends see silence (a qdisc dropping on an end's own device fails its TCP
    writes, and Chromium closes its socket: not what a dropped network does)."""

    prefix: str
    host_address: str  # this side of the first pair: the app and its media listen here
    client: str  # the client's namespace
    router: str  # the router's namespace
    scripts: list[Path] = dataclasses.field(default_factory=list)

    def wrapper(self, executable: str) -> str:
        """A script that runs ``executable`` inside the client's namespace."""
        fd, name = tempfile.mkstemp(prefix=f"{self.client}-", suffix=".sh")
        with os.fdopen(fd, "w") as script:
            script.write(f'#!/bin/sh\nexec ip netns exec {self.client} {executable} "$@"\n')
        path = Path(name)
        path.chmod(0o700)
        self.scripts.append(path)
        return name

    def cut(self, on: bool, *, udp_only: bool = False) -> None:
        """Drop what the router forwards, both ways, silently (a blackhole route for every
        packet, or for UDP only: the media cut, the signaling socket not); or stop dropping."""
        router = ["ip", "-n", self.router]
        if not on:
            _ip(*router, "rule", "del", "pref", "100")
            return
        _ip(*router, "route", "replace", "blackhole", "default", "table", "100")
        _ip(*router, "rule", "add", "pref", "100", *(["ipproto", "udp"] if udp_only else []), "lookup", "100")


def _ip(*argv: str, check: bool = True) -> None:
    done = subprocess.run(list(argv), capture_output=True, text=True, timeout=10)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {done.stderr.strip()}")


@pytest.fixture
def link() -> Iterator[RoutedLink]:
    """Host — router — client, two veth pairs on private /30s; namespaces ``jf…``, removed after."""
    why = shapedlink.unavailable()
    if why is not None:
        pytest.skip(why)
    prefix = f"jf{os.getpid() % 100000}"
    first, second = shapedlink._subnet(8), shapedlink._subnet(9)
    a1, a2 = (str(first.network_address + i) for i in (1, 2))
    b1, b2 = (str(second.network_address + i) for i in (1, 2))
    made = RoutedLink(prefix, a1, client=f"{prefix}c", router=f"{prefix}r")
    try:
        for ns in (made.router, made.client):
            _ip("ip", "netns", "add", ns)
            _ip("ip", "-n", ns, "link", "set", "lo", "up")
        _ip(
            "ip",
            "link",
            "add",
            f"{prefix}h",
            "type",
            "veth",
            "peer",
            "name",
            f"{prefix}r",
            "netns",
            made.router,
        )
        _ip(
            "ip", "-n", made.router, "link", "add", f"{prefix}s", "type", "veth", "peer", "name", f"{prefix}c"
        )
        _ip("ip", "-n", made.router, "link", "set", f"{prefix}c", "netns", made.client)
        _ip("ip", "addr", "add", f"{a1}/30", "dev", f"{prefix}h")
        _ip("ip", "link", "set", f"{prefix}h", "up")
        _ip("ip", "-n", made.router, "addr", "add", f"{a2}/30", "dev", f"{prefix}r")
        _ip("ip", "-n", made.router, "addr", "add", f"{b1}/30", "dev", f"{prefix}s")
        _ip("ip", "-n", made.router, "link", "set", f"{prefix}r", "up")
        _ip("ip", "-n", made.router, "link", "set", f"{prefix}s", "up")
        _ip("ip", "netns", "exec", made.router, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        _ip("ip", "-n", made.client, "addr", "add", f"{b2}/30", "dev", f"{prefix}c")
        _ip("ip", "-n", made.client, "link", "set", f"{prefix}c", "up")
        _ip("ip", "-n", made.client, "route", "add", "default", "via", b1)
        _ip("ip", "route", "add", str(second), "via", a2, "dev", f"{prefix}h")
        yield made
    finally:
        for path in made.scripts:
            path.unlink(missing_ok=True)
        for ns in (made.client, made.router):
            _ip("ip", "netns", "del", ns, check=False)
        _ip("ip", "link", "del", f"{prefix}h", check=False)  # its route goes with it


@dataclasses.dataclass
class OnLink:
    url: str
    app: Any
    browser: Any  # Chromium inside the link's namespace
    here: Any  # Chromium on this side


@pytest.fixture
async def on_link(settings: Settings, link: RoutedLink) -> AsyncIterator[OnLink]:
    """The app on the link's host side (media too), and a Chromium behind the link."""
    from playwright.async_api import async_playwright

    settings = dataclasses.replace(settings, media_addresses=link.host_address)
    server = TestServer(create_app(settings), host=link.host_address)
    await server.start_server()
    url = str(server.make_url("")).rstrip("/")
    try:
        async with async_playwright() as pw:
            secure = f"--unsafely-treat-insecure-origin-as-secure={url}"
            # The page's address is not loopback: a secure context only by this flag (getUserMedia).
            behind = await chromium.launch(pw, link.wrapper(chromium_path()), [secure])
            here = await chromium.launch(pw, chromium_path(), [secure])
            try:
                yield OnLink(url, server.app, behind, here)
            finally:
                await behind.close()
                await here.close()
    finally:
        await server.close()


async def frames(page: Any) -> dict[str, float]:
    found: dict[str, float] = await page.evaluate(FRAMES)
    return found


async def media_back(page: Any, seconds: float) -> float:
    """Wait until the page decodes video again; the time (monotonic) of the first new frame."""
    deadline = time.monotonic() + seconds
    last = await frames(page)
    while time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        now = await frames(page)
        if now["pc"] == last["pc"] and now["frames"] > last["frames"]:
            return time.monotonic()
        last = now
    raise AssertionError("no video within the time")


async def _in_meeting(world: World, on_link: OnLink) -> tuple[Any, Any, Any, Any, Any]:
    """A (behind the link) and B (here) in the meeting, both decoding: (a, b, room, a's seat, sfu)."""
    _series, people, tokens = await open_meeting(world)
    a = await enter(on_link.browser, on_link.url, tokens["a"])
    b = await enter(on_link.here, on_link.url, tokens["b"])
    await media_back(a, 30)
    await media_back(b, 30)
    media_node = on_link.app[keys.MEDIA]
    room = next(iter(media_node.registry))
    seat = room.participant(people["a"].id)
    return a, b, room, seat, media_node.sfus[room.occurrence_id]


async def _one_attendance(world: World, room: Any, seat: Any) -> None:
    async with world.db() as db:
        rows = list(
            await db.scalars(
                select(Attendance).where(
                    Attendance.occurrence_id == room.occurrence_id, Attendance.person_id == seat.person_id
                )
            )
        )
    assert len(rows) == 1 and rows[0].connections == 1, rows


async def test_a_network_drop_resumes_the_same_peer_connection_when_the_network_returns(
    world: World, on_link: OnLink, link: RoutedLink
) -> None:
    """Everything cut for 12 s (the page's ICE "disconnected" after 5–8 s): the page keeps its
    peer connection and socket, and both come back by themselves when the network does (before
    #18 it gave the peer connection up after 4 s and joined again over a network still away)."""
    a, b, room, seat, sfu = await _in_meeting(world, on_link)
    pc = sfu.peer_connection(seat.id)
    link.cut(True)
    await a.wait_for_selector("#room[data-connection='reconnecting']", timeout=CUT_S * 1000 + 4000)
    await expect(a.locator("#status")).to_have_attribute("data-state", "reconnecting")
    await asyncio.sleep(3)
    link.cut(False)
    back = time.monotonic()
    at = await media_back(a, 20)
    print(f"\nfull cut: A decodes video again {1000 * (at - back):.0f} ms after the network returned")
    await a.wait_for_selector("#room[data-connection='connected']", timeout=10_000)
    assert await a.locator("#connection-banner").is_hidden()
    # The same socket, seat and peer connection throughout.
    assert await a.evaluate("window.__giaoban.conn.reconnects") == 0
    assert await a.evaluate("window.__giaoban.conn.mediaRestarts") == 0
    assert room.participant(seat.person_id) is seat and sfu.peer_connection(seat.id) is pc
    await media_back(b, 20)
    await _one_attendance(world, room, seat)
    for page in (a, b):
        await page.context.close()


async def test_a_media_only_drop_comes_back_on_the_same_socket_with_a_new_peer_connection(
    world: World, on_link: OnLink, link: RoutedLink
) -> None:
    """UDP cut, the signaling socket not: once the socket answers while the media does not, a
    new peer connection on the same socket (`offer` with `restart`), no new join, no pre-join."""
    a, b, room, seat, sfu = await _in_meeting(world, on_link)
    old_pc = sfu.peer_connection(seat.id)
    link.cut(True, udp_only=True)
    await a.wait_for_selector("#room[data-connection='reconnecting']", timeout=CUT_S * 1000 + 4000)
    await until(lambda: a.evaluate("window.__giaoban.conn.mediaRestarts > 0"), 10, "a new peer connection")
    await asyncio.sleep(2)
    link.cut(False)
    back = time.monotonic()
    at = await media_back(a, 20)
    print(f"\nUDP cut: A decodes video again {1000 * (at - back):.0f} ms after the network returned")
    await a.wait_for_selector("#room[data-connection='connected']", timeout=10_000)
    assert await a.locator("#connection-banner").is_hidden()
    assert await a.locator("#prejoin").is_hidden()
    assert await a.evaluate("window.__giaoban.conn.reconnects") == 0
    assert room.participant(seat.person_id) is seat
    assert await until(lambda: _replaced(sfu, seat.id, old_pc), 10, "the old peer connection replaced")
    await media_back(b, 20)  # B gets A's picture again
    await _one_attendance(world, room, seat)
    for page in (a, b):
        await page.context.close()


async def _replaced(sfu: Any, participant: str, old: Any) -> bool:
    return bool(participant in sfu.participants() and sfu.peer_connection(participant) is not old)
