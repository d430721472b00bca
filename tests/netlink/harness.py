"""Real Chromium clients of a real SFU over shaped links: the weak-link scenarios' harness (#16).

``Meeting`` runs one ``Sfu`` in the test's process and a small aiohttp server for the test
client (``page/client.html``, ``page/client.js``) and its offer (``POST /offer``: the SFU's
answer). The server listens on 127.0.0.1 and on the host side of each shaped link. Without
impairments the SFU gathers on the first link's host address, which clients on this host and in
the links' namespaces all reach. With ``relay=True`` it gathers on 127.0.0.1 and announces that
address, where a ``shapedlink.Relay`` fronts its ports (so every client's media crosses the
relay, and the relay delays and drops what the clients of an impaired link send and receive).
The relay runs in this process's event loop, beside the SFU and Playwright: every packet to a
weak receiver waited for that loop twice, and a busy moment of it (a join, a layer switch)
showed as jitter the link did not have (4.7 % of a 300 kbit/s receiver's audio concealed
in one run with no loss and no probe, 0-0.5 % in the others). A client in a link's namespace
is Chromium launched through ``Link.wrapper``.

The page writes its ``getStats()`` rows as JSON into ``#figures`` every 500 ms; ``Client.figures``
reads that text (a DOM value, never an evaluated script) and ``Figures`` sums what the tests
assert on: audio concealment (concealedSamples / totalSamplesReceived), framesDecoded,
freezeCount, frameWidth, jitterBufferDelay.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

import chromium
import shapedlink
from meetings.rtc.sfu import LayerChanged, Sfu, SfuConfig, SfuEvent
from tests.browser.conftest import chromium_path

PREFIX = "nl"  # the namespaces of tests/netlink: nl<pid>x<index>
PAGE = Path(__file__).parent / "page"
# Audio elements play without a click; the fake devices of chromium.FLAGS feed the publishers.
FLAGS = ["--autoplay-policy=no-user-gesture-required"]
# The scenarios publish simulcast, as the room page does; NETLINK_SIMULCAST=0 publishes one
# layer (today's page) to check the harness against a single-layer SFU.
SIMULCAST = os.environ.get("NETLINK_SIMULCAST", "1") != "0"
CONNECT_S = 40.0  # from opening the page to the connection and the first media, generously

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Figures:
    """One ``getStats()`` reading of a client: ``t`` in ms (performance.now), the RTP rows."""

    t: float
    rows: tuple[dict[str, Any], ...]

    def inbound(self, kind: str, mids: Sequence[str] | None = None) -> list[dict[str, Any]]:
        return [
            r
            for r in self.rows
            if r["type"] == "inbound-rtp" and r.get("kind") == kind and (mids is None or r.get("mid") in mids)
        ]

    def outbound(self, kind: str) -> list[dict[str, Any]]:
        return [r for r in self.rows if r["type"] == "outbound-rtp" and r.get("kind") == kind]

    def total(self, name: str, kind: str, mids: Sequence[str] | None = None) -> float:
        return float(sum(r.get(name, 0) or 0 for r in self.inbound(kind, mids)))

    def samples(self, mids: Sequence[str] | None = None) -> float:
        return self.total("totalSamplesReceived", "audio", mids)

    def frames(self, mids: Sequence[str] | None = None) -> float:
        return self.total("framesDecoded", "video", mids)

    def widths(self, mids: Sequence[str] | None = None) -> list[int]:
        """The frame width of each inbound video stream that has decoded a frame."""
        return [int(r["frameWidth"]) for r in self.inbound("video", mids) if r.get("frameWidth")]

    def sent_widths(self) -> dict[str, int]:
        """The frame width of each outbound video layer, by rid ("" for a single layer)."""
        return {
            str(r.get("rid", "")): int(r["frameWidth"]) for r in self.outbound("video") if r.get("frameWidth")
        }


@dataclass(frozen=True)
class Window:
    """What a client received between two readings."""

    seconds: float
    concealed_pct: float | None
    fps: float
    freezes_per_min: float
    jitter_buffer_ms: float | None
    kbps: float
    widths: list[int]

    def line(self) -> str:
        pct = "—" if self.concealed_pct is None else f"{self.concealed_pct:.2f} %"
        jb = "—" if self.jitter_buffer_ms is None else f"{self.jitter_buffer_ms:.0f} ms"
        return (
            f"{self.seconds:.1f} s: audio concealed {pct}, jitter buffer {jb}, {self.fps:.1f} fps, "
            f"{self.freezes_per_min:.1f} freezes/min, widths {self.widths}, {self.kbps:.0f} kbit/s"
        )


def window(before: Figures, after: Figures, mids: Sequence[str] | None = None) -> Window:
    """The figures of the time between ``before`` and ``after`` (audio and video of ``mids``)."""
    seconds = max((after.t - before.t) / 1000, 1e-3)
    samples = after.samples(mids) - before.samples(mids)
    concealed = after.total("concealedSamples", "audio", mids) - before.total(
        "concealedSamples", "audio", mids
    )
    emitted = after.total("jitterBufferEmittedCount", "audio", mids) - before.total(
        "jitterBufferEmittedCount", "audio", mids
    )
    delay = after.total("jitterBufferDelay", "audio", mids) - before.total("jitterBufferDelay", "audio", mids)
    received = sum(
        after.total("bytesReceived", k, mids) - before.total("bytesReceived", k, mids)
        for k in ("audio", "video")
    )
    return Window(
        seconds=seconds,
        concealed_pct=100 * concealed / samples if samples > 0 else None,
        fps=(after.frames(mids) - before.frames(mids)) / seconds,
        freezes_per_min=(
            after.total("freezeCount", "video", mids) - before.total("freezeCount", "video", mids)
        )
        * 60
        / seconds,
        jitter_buffer_ms=1000 * delay / emitted if emitted > 0 else None,
        kbps=received * 8 / 1000 / seconds,
        widths=after.widths(mids),
    )


@dataclass
class Client:
    """One test page (one participant) in a browser."""

    name: str
    page: Any
    sfu: Sfu

    async def figures(self) -> Figures:
        """The page's latest ``getStats()`` reading (fails at once if the page reported an error)."""
        error = await self.page.locator("#state").get_attribute("data-error")
        if error:
            raise AssertionError(f"{self.name}'s page failed: {error}")
        text = await self.page.locator("#figures").text_content()
        data = json.loads(text or "{}")
        if not data:
            return Figures(0.0, ())
        return Figures(float(data["t"]), tuple(data["rows"]))

    async def fresh(self) -> Figures:
        """A reading taken after this call (the page refreshes every 500 ms)."""
        first = await self.figures()
        while True:
            await asyncio.sleep(0.2)
            now = await self.figures()
            if now.t != first.t:
                return now

    def mids(self, kind: str) -> list[str]:
        """The mids of this participant's receiving slots of ``kind``."""
        return [
            t.mid
            for t in self.sfu.peer_connection(self.name).getTransceivers()
            if t.mid is not None and t.kind == kind and t.direction in ("sendonly", "sendrecv")
        ]

    def slot_of(self, publisher: str, kind: str) -> str | None:
        """The mid of this participant's slot that now carries ``publisher``'s ``kind``, if any."""
        published = {
            t.mid for t in self.sfu.peer_connection(publisher).getTransceivers() if t.kind == kind and t.mid
        }
        for mid, carried in self.sfu.assignments(self.name).items():
            if carried is not None and carried[0] == publisher and carried[1] in published:
                return mid
        return None

    async def capture_width(self) -> int:
        """The width this publisher's camera captures (its full-size layer)."""
        value = await self.page.locator("#state").get_attribute("data-capture-width")
        return int(value or 0)


async def until(check: Callable[[], Awaitable[Any]], seconds: float, what: str, step: float = 0.5) -> Any:
    """Poll ``check`` until it returns something truthy; fail after ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds:.0f} s waiting for {what}")
        await asyncio.sleep(step)


@dataclass
class Meeting:
    """An SFU, the test page's server and the relay in front of the SFU's media."""

    sfu: Sfu
    relay: shapedlink.Relay | None
    url: str  # on 127.0.0.1
    links: list[shapedlink.Link]
    events: list[tuple[float, SfuEvent]] = field(default_factory=list)  # (monotonic time, event)
    port: int = 0
    offers: dict[str, str] = field(default_factory=dict)  # the SDP offer each participant sent

    def layer_changes(self, subscriber: str) -> list[str]:
        """The ``LayerChanged`` events of ``subscriber``, as "+1.2 s mid 3: spatial 0" lines."""
        began = self.events[0][0] if self.events else 0.0
        return [
            f"+{at - began:.1f} s mid {e.mid}: "
            + ("paused" if e.paused else f"spatial {e.spatial} temporal {e.temporal} {e.width}×{e.height}")
            for at, e in self.events
            if isinstance(e, LayerChanged) and e.subscriber == subscriber
        ]

    def layers(self, subscriber: str) -> dict[str, LayerChanged]:
        """The latest ``LayerChanged`` of each of ``subscriber``'s slots (by mid)."""
        return {
            e.mid: e for _, e in self.events if isinstance(e, LayerChanged) and e.subscriber == subscriber
        }

    def front_url(self, link: shapedlink.Link) -> str:
        return f"http://{link.host_address}:{self.port}"

    async def browser(self, pw: Any, link: shapedlink.Link | None = None) -> Any:
        """Chromium here, or inside ``link``'s namespace (its page from the link's host side)."""
        path = chromium_path()
        if link is None:
            return await chromium.launch(pw, path, FLAGS)
        secure = f"--unsafely-treat-insecure-origin-as-secure={self.front_url(link)}"
        return await chromium.launch(pw, link.wrapper(path), [*FLAGS, secure])

    async def join(
        self,
        browser: Any,
        name: str,
        *,
        init_script: str = "",
        link: shapedlink.Link | None = None,
        microphone: bool = False,
        camera: bool = False,
        simulcast: bool = SIMULCAST,
        audio: int = 0,
        video: int = 0,
        unnegotiated: str = "",
        wait_media: bool = True,
    ) -> Client:
        """Open the test page as ``name``; return once connected (and receiving, when it receives)."""
        query = {"id": name, "audio": audio, "video": video}
        query |= {"microphone": int(microphone), "camera": int(camera), "simulcast": int(simulcast)}
        if unnegotiated:
            query["unnegotiated"] = unnegotiated
        base = self.url if link is None else self.front_url(link)
        context = await browser.new_context(viewport={"width": 800, "height": 600})
        if init_script:
            await context.add_init_script(init_script)
        page = await context.new_page()
        await page.goto(f"{base}/client.html?{urlencode(query)}")
        client = Client(name, page, self.sfu)

        async def connected() -> bool:
            await client.figures()  # raises on a page error
            return bool(await page.locator("#state").get_attribute("data-connection") == "connected")

        await until(connected, CONNECT_S, f"{name}'s connection")
        if wait_media and (audio or video):

            async def receiving() -> bool:
                figures = await client.figures()
                return (not audio or figures.samples() > 0) and (not video or figures.frames() > 0)

            await until(receiving, CONNECT_S, f"{name}'s first audio and video")
        return client

    def show_tiles(self, client: Client, width: int = 640, height: int = 360) -> None:
        """Tell the SFU each video slot of ``client`` is shown at ``width``×``height``."""
        mids = client.mids("video")
        assert mids, f"{client.name} has no video slot"
        self.sfu.set_tile_sizes(client.name, {mid: (width, height) for mid in mids})


async def _offer(sfu: Sfu, offers: dict[str, str], request: web.Request) -> web.Response:
    data = await request.json()
    offers[str(data["id"])] = str(data["sdp"])
    answer = await sfu.join(str(data["id"]), str(data["sdp"]))
    return web.json_response({"sdp": answer})


def _file(name: str, content_type: str) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handler(_request: web.Request) -> web.Response:
        return web.Response(body=(PAGE / name).read_bytes(), content_type=content_type)

    return handler


@contextlib.asynccontextmanager
async def meeting(
    links: Sequence[shapedlink.Link] = (), *, relay: bool = False, **config: Any
) -> AsyncIterator[Meeting]:
    """An SFU (``SfuConfig(**config)``) and the test page's server; with ``relay``, the relay that
    impairs the links' clients (``Meeting.relay.impair``)."""
    front = shapedlink.Relay(links[0].host_address, "127.0.0.1") if links and relay else None
    announced = links[0].host_address if front is not None else ""
    addresses = ("127.0.0.1",) if front is not None or not links else (links[0].host_address,)
    events: list[tuple[float, SfuEvent]] = []

    def record(event: SfuEvent) -> None:
        events.append((time.monotonic(), event))

    sfu = Sfu(SfuConfig(media_addresses=addresses, announced_address=announced, **config), on_event=record)
    app = web.Application()
    app.router.add_get("/client.html", _file("client.html", "text/html"))
    app.router.add_get("/client.js", _file("client.js", "text/javascript"))

    offers: dict[str, str] = {}

    async def offer(request: web.Request) -> web.Response:
        return await _offer(sfu, offers, request)

    app.router.add_post("/offer", offer)
    runner = web.AppRunner(app, access_log=None)
    with contextlib.ExitStack() as stack:
        if front is not None:
            stack.enter_context(shapedlink.follow_sfu_ports(front))
            stack.callback(front.close)
        await runner.setup()
        try:
            await web.TCPSite(runner, "127.0.0.1", 0).start()
            port = runner.addresses[0][1]
            for link in links:
                await web.TCPSite(runner, link.host_address, port).start()
            yield Meeting(sfu, front, f"http://127.0.0.1:{port}", list(links), events, port, offers)
        finally:
            await sfu.close()
            await runner.cleanup()
