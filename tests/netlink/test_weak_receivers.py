"""Real Chromium receivers on shaped links (``shapedlink``), in one meeting with the chair.

What today's media plane guarantees (no adaptation yet, issue #16): a receiver whose link
carries 300 kbit/s and an unlimited one both decode audio; the weak one really gets no more
than its link carries. No timing or quality thresholds: those are the benchmark's
(``python -m bench weaklink``).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

import chromium
import shapedlink
from meetings.settings import Settings
from tests.browser.conftest import chromium_path
from tests.browser.test_room_browser import enter, open_meeting, until
from tests.conftest import World
from tests.netlink.harness import PREFIX
from web.app import create_app

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.netlink, pytest.mark.usefixtures("netns")]

WEAK_KBIT = 300

STATS = """async () => {
  const pc = window.__giaoban && window.__giaoban.pc;
  const r = {t: performance.now(), samples: 0, bytes: 0};
  if (!pc) return r;
  (await pc.getStats()).forEach((s) => {
    if (s.type !== "inbound-rtp") return;
    r.bytes += s.bytesReceived || 0;
    if (s.kind === "audio") r.samples += s.totalSamplesReceived || 0;
  });
  return r;
}"""


@dataclasses.dataclass
class Served:
    link: shapedlink.Link
    url: str  # on 127.0.0.1
    front_url: str  # on the host side of the link, which the namespace reaches


@pytest.fixture
async def served(settings: Settings) -> AsyncIterator[Served]:
    """The app on 127.0.0.1 and on a shaped link's host side; media on the host side, which the
    namespace and this host both reach (no relay: see ``tests/netlink/harness.py``)."""
    with shapedlink.shaped_link(0, prefix=PREFIX) as link:
        shaped = dataclasses.replace(settings, media_addresses=link.host_address)
        runner = web.AppRunner(create_app(shaped), access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, "127.0.0.1", 0).start()
            port = runner.addresses[0][1]
            await web.TCPSite(runner, link.host_address, port).start()
            yield Served(link, f"http://127.0.0.1:{port}", f"http://{link.host_address}:{port}")
        finally:
            await runner.cleanup()


async def test_a_300_kbit_receiver_and_an_unlimited_one_both_hear_the_meeting(
    world: World, served: Served
) -> None:
    from playwright.async_api import async_playwright

    path = chromium_path()
    _series, _people, tokens = await open_meeting(world)
    async with async_playwright() as pw:
        here = await chromium.launch(pw, path)
        # In the namespace; its page comes from the front address, a secure context by flag.
        weak = await chromium.launch(
            pw,
            served.link.wrapper(path),
            [f"--unsafely-treat-insecure-origin-as-secure={served.front_url}"],
        )
        try:
            chair = await enter(here, served.url, tokens["chair"], centre=False)
            strong = await enter(here, served.url, tokens["a"])
            served.link.shape(WEAK_KBIT, WEAK_KBIT)
            slow = await enter(weak, served.front_url, tokens["b"])

            async def hears(page: Any) -> bool:
                stats = await page.evaluate(STATS)
                return bool(stats["samples"] > 48000)  # a second of audio decoded

            for page in (strong, slow):
                await until(lambda page=page: hears(page), 60, "remote audio decoded")
            # The link carries no more than its rate (tbf cannot exceed it but by its burst).
            start = await slow.evaluate(STATS)
            await asyncio.sleep(5)
            end = await slow.evaluate(STATS)
            kbit = (end["bytes"] - start["bytes"]) * 8 / (end["t"] - start["t"])
            assert kbit <= WEAK_KBIT * 1.25
            assert end["samples"] > start["samples"]  # audio kept coming on the weak link
            for page in (chair, strong, slow):
                await page.context.close()
        finally:
            await weak.close()
            await here.close()
