"""Chromium 156 against the SFU, no app: does it send RED, FEC and DTX when the answer says so?

Chromium offers ``red/48000/2`` (fmtp ``111/111``) after Opus by default; the SFU answers RED
first (meetings/rtc/audio_codecs.py), and Chromium then sends RED. A Chromium receiver that
offered RED gets the RED packets as they are, one that took RED out of its offer gets the
primary Opus: both decode audio. With ``usedtx=1`` in the answer a silent microphone sends a
packet every ~200 ms instead of every 20 ms. (tests/rtc/chromium_peer.py: the bare peers.)
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import chromium
from bench.audioloss import write_wav
from meetings.rtc.sfu import Sfu
from tests.browser.conftest import chromium_path
from tests.rtc.chromium_peer import FLAGS, ChromiumPeer, page_server

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
async def sfu() -> AsyncIterator[Sfu]:
    instance = Sfu()
    try:
        yield instance
    finally:
        await instance.close()


async def _launch(pw: Any, extra: list[str] | None = None) -> Any:
    return await chromium.launch(pw, chromium_path(), [*FLAGS, *(extra or [])])


async def test_chromium_sends_red_to_the_sfu_which_strips_it_for_a_receiver_without_red(sfu: Sfu) -> None:
    from playwright.async_api import async_playwright

    async with page_server() as url, async_playwright() as pw:
        browser = await _launch(pw)
        try:
            publisher = await ChromiumPeer.join(browser, url, sfu, "publisher", microphone=True, slots=0)
            assert "a=fmtp:63 111/111" in publisher.offer  # Chromium offers RED by itself
            assert "a=fmtp:111 useinbandfec=1;usedtx=1" in publisher.answer
            with_red = await ChromiumPeer.join(browser, url, sfu, "with-red", microphone=False, slots=1)
            plain = await ChromiumPeer.join(browser, url, sfu, "plain", microphone=False, slots=1, red=False)
            assert "red/48000" in with_red.answer and "red/48000" not in plain.answer
            for peer in (with_red, plain):
                await peer.until(lambda s: s["samples"] > 2 * 48000, 30, "two seconds of audio decoded")
            [pub] = sfu._participants["publisher"].publications.values()
            # Every packet Chromium sent was RED (any other would have had its codec noted in keys).
            assert pub.sending == "RED" and pub.keys == {}
            assert pub.red_dropped == {}
            # What each receiver was sent: RED as it came, or the primary Opus (fewer bytes).
            [red_slot] = sfu._participants["with-red"].slots.values()
            [plain_slot] = sfu._participants["plain"].slots.values()
            assert red_slot.forwarder.forwarded > 50 and plain_slot.forwarder.forwarded > 50
            got_red, got_plain = await with_red.stats(), await plain.stats()
            per_packet_red = got_red["received_bytes"] / got_red["received_packets"]
            per_packet_plain = got_plain["received_bytes"] / got_plain["received_packets"]
            assert per_packet_red > per_packet_plain
            for peer in (publisher, with_red, plain):
                await peer.close()
        finally:
            await browser.close()


async def test_a_silent_chromium_microphone_sends_dtx(sfu: Sfu, tmp_path: Path) -> None:
    from playwright.async_api import async_playwright

    silence = tmp_path / "silence.wav"
    write_wav(silence, "silence", seconds=2)
    async with page_server() as url, async_playwright() as pw:
        browser = await _launch(pw, [f"--use-file-for-fake-audio-capture={silence}"])
        try:
            publisher = await ChromiumPeer.join(browser, url, sfu, "publisher", microphone=True, slots=0)
            first = await publisher.until(lambda s: s["sent_packets"] > 0, 30, "audio sent")
            # Without DTX, 50 packets a second (150 in 3 s); in DTX about 5 a second (measured).
            await asyncio.sleep(3)
            later = await publisher.stats()
            assert later["sent_packets"] - first["sent_packets"] < 3 * 20
            [pub] = sfu._participants["publisher"].publications.values()
            assert pub.received > 0
            await publisher.close()
        finally:
            await browser.close()
