"""Headless Chromium as a bare WebRTC peer of an in-process ``Sfu`` (no app, no signaling server).

A page served from 127.0.0.1 (a secure context, so ``getUserMedia`` works with the fake
microphone) builds one ``RTCPeerConnection``: a ``sendonly`` microphone if asked, and
``recvonly`` audio slots. The offer is taken once ICE gathering is complete, handed to
``Sfu.join`` and the answer applied: no trickle, no app. ``stats()`` reads ``getStats()``.
Used by the RED tests (tests/rtc/test_audio_red_browser.py) and ``python -m bench audioloss``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

from aiohttp import web

from meetings.rtc.sfu import Sfu

PAGE = "<!doctype html><title>peer</title><p>peer</p>"
FLAGS = ["--autoplay-policy=no-user-gesture-required"]

# Run with page.evaluate(function, argument); functions, never strings to wait on.
OFFER = """async ({microphone, slots, red}) => {
  const pc = new RTCPeerConnection({bundlePolicy: "max-bundle"});
  window.__peer = pc;
  const withoutRed = RTCRtpReceiver.getCapabilities("audio").codecs.filter(
    (c) => c.mimeType.toLowerCase() !== "audio/red");
  const transceivers = [];
  if (microphone) {
    const stream = await navigator.mediaDevices.getUserMedia({audio: true});
    transceivers.push(pc.addTransceiver(stream.getAudioTracks()[0], {direction: "sendonly"}));
  }
  for (let i = 0; i < slots; i++) {
    const t = pc.addTransceiver("audio", {direction: "recvonly"});
    transceivers.push(t);
    // Play what arrives: Chromium decodes (and counts samples) only for a track that plays.
    const audio = new Audio();
    audio.srcObject = new MediaStream([t.receiver.track]);
    audio.play().catch(() => null);
    document.body.append(audio);
  }
  if (!red) transceivers.forEach((t) => t.setCodecPreferences(withoutRed));
  await pc.setLocalDescription();
  if (pc.iceGatheringState !== "complete") {
    await new Promise((resolve) => {
      pc.addEventListener("icegatheringstatechange", () => {
        if (pc.iceGatheringState === "complete") resolve(null);
      });
    });
  }
  return pc.localDescription.sdp;
}"""

ANSWER = """async (sdp) => { await window.__peer.setRemoteDescription({type: "answer", sdp}); }"""

STATS = """async () => {
  const pc = window.__peer;
  const codecs = {};
  const out = {sent_bytes: 0, sent_packets: 0, sent_codec: "", received_bytes: 0, received_packets: 0,
               concealed: 0, samples: 0, fec: 0, lost: 0, received_codec: "", connection: pc.connectionState};
  const report = await pc.getStats();
  report.forEach((s) => { if (s.type === "codec") codecs[s.id] = s.mimeType; });
  report.forEach((s) => {
    if (s.type === "outbound-rtp" && s.kind === "audio") {
      out.sent_bytes += s.bytesSent || 0;
      out.sent_packets += s.packetsSent || 0;
      out.sent_codec = codecs[s.codecId] || out.sent_codec;
    }
    if (s.type === "inbound-rtp" && s.kind === "audio") {
      out.received_bytes += s.bytesReceived || 0;
      out.received_packets += s.packetsReceived || 0;
      out.concealed += s.concealedSamples || 0;
      out.samples += s.totalSamplesReceived || 0;
      out.fec += s.fecPacketsReceived || 0;
      out.lost += s.packetsLost || 0;
      out.received_codec = codecs[s.codecId] || out.received_codec;
    }
  });
  return out;
}"""


@contextlib.asynccontextmanager
async def page_server() -> AsyncIterator[str]:
    """A blank page on 127.0.0.1 (a secure context for getUserMedia); yields its URL."""

    async def blank(_request: web.Request) -> web.Response:
        return web.Response(text=PAGE, content_type="text/html")

    app = web.Application()
    app.router.add_get("/", blank)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/"
    finally:
        await runner.cleanup()


class ChromiumPeer:
    """One page of a launched browser, connected to the SFU as ``name``."""

    def __init__(self, page: Any, name: str) -> None:
        self.page = page
        self.name = name
        self.offer = ""
        self.answer = ""

    @classmethod
    async def join(
        cls,
        browser: Any,
        url: str,
        sfu: Sfu,
        name: str,
        *,
        microphone: bool,
        slots: int,
        red: bool = True,
        munge_answer: Callable[[str], str] = lambda sdp: sdp,
    ) -> ChromiumPeer:
        """``red``: offer RED as Chromium does by default; False: take it out of the offer."""
        context = await browser.new_context()
        page = await context.new_page()
        await page.goto(url)
        peer = cls(page, name)
        peer.offer = await page.evaluate(OFFER, {"microphone": microphone, "slots": slots, "red": red})
        peer.answer = munge_answer(await sfu.join(name, peer.offer))
        await page.evaluate(ANSWER, peer.answer)
        return peer

    async def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = await self.page.evaluate(STATS)
        return result

    async def until(
        self, check: Callable[[dict[str, Any]], bool], within: float, what: str
    ) -> dict[str, Any]:
        """Poll ``stats()`` until ``check`` holds; AssertionError naming ``what`` after ``within`` s."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            stats = await self.stats()
            if check(stats):
                return stats
            if loop.time() > deadline:
                raise AssertionError(f"{self.name}: {what} (last stats {stats})")
            await asyncio.sleep(0.2)

    async def close(self) -> None:
        await self.page.context.close()
