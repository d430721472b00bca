"""``python -m bench weaklink [--sizes 30] [--quick]``: what a receiver on a weak link gets.

Issue #16's baseline. The app runs in its own process (SQLite in a temporary folder); its media
server gathers on 127.0.0.1 and announces the host side of the first shaped link
(``media_announced_address``), where a ``shapedlink.Relay`` in the same process fronts each
of its ports (``follow_sfu_ports``). The publisher, the chair, is headless Debian Chromium on
this side (fake camera and microphone, unshaped). For each link profile, one receiver, a
centre officer with camera and microphone off, is Chromium launched *inside* a network
namespace (``shapedlink.shaped_link``) whose veth is shaped with ``tbf`` (both directions) and
whose media the relay delays, jitters and drops as the profile says. The receiver joins
unshaped, the profile is applied once remote audio and video arrive; for a constant profile
the window starts ``SETTLE_S`` later (what a centre whose link *is* 300 kbit/s hears, once
adapted to it), and the audio concealment of those first seconds, the fall from an unlimited
link, is its own column ("fall %"). ``getStats()`` is read at the start and the end of a fixed
window (``--sizes``: its length in seconds, 30 by
default, 10 with ``--quick``): audio concealment % (concealedSamples / totalSamplesReceived),
video fps (framesDecoded per second), the resolution at the end, freezes per minute
(freezeCount), the kbit/s received, and the seconds to adapt: from a fall of the link's rate
(the profile applied after the join, or the drop) to the first reading (every 0.5 s) with a
frame width below the one before it, and from the rate's return to the first reading back at
the widest it showed at 2 Mbit/s before the fall ("—": not within the window, or no fall to
adapt to); "sfu↓ s" and "sfu↑ s" are the same seconds read from the SFU's own switches (its
``LayerChanged`` events, which take effect at the new layer's keyframe): the adaptation
itself, without the receiver's queues and decoder. The drop profile spends a third
of the window at 2 Mbit/s, a third at 250 kbit/s and the rest back at 2 Mbit/s (at most
``UP_WAIT_S`` more to see the top layer again). The receiver then leaves and its browser closes.

``MODES`` are the columns, each its own app process, measured with the same profiles in the
same run: ``adaptive`` (the publisher's page publishes as it does, VP8 simulcast with rids
q/h/f; the SFU allocates each receiver its layer) and ``baseline``, adaptation off as before
issue #16 (``SfuConfig(adaptive=False)``: every slot gets the top layer, never paused; the
publisher's ``addTransceiver`` is stripped of its simulcast ``sendEncodings`` by an init script,
so it sends one layer as the page did). Needs root (network namespaces, tc); every run is
bounded (set-up, join and window).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import multiprocessing
import multiprocessing.connection
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import chromium
import shapedlink
from bench.join import SECRET, _enter, _first_line, _seed
from shapedlink import Impairment

NAME = "weaklink"
DEFAULT_SIZES = [30]  # seconds measured per profile
QUICK_SIZES = [10]
HOST = "127.0.0.1"
START_TIMEOUT_S = 60.0
JOIN_TIMEOUT_S = 45.0  # from the invitation link to remote audio and video, unshaped
SEED = 16
WARMUP_S = 30.0  # the publisher's bandwidth estimate (and so its rate) grows for a while after it joins
SETTLE_S = 6.0  # a constant profile's window starts this long after the link changed (see docstring)
UP_WAIT_S = 20.0  # after the drop profile's rate returns, how long the top layer may take to come back
POLL_S = 0.5  # how often the receiver's frame width is read, for the seconds to adapt
# To look at one case: BENCH_WEAKLINK_PROFILES="5" (1-based, comma-separated) and
# BENCH_WEAKLINK_MODES="adaptive" run only those; BENCH_WEAKLINK_LOG=<file> has the app process
# write the media plane's DEBUG lines (estimates, probes, layer changes) there.
PROFILES_ENV, MODES_ENV, LOG_ENV = "BENCH_WEAKLINK_PROFILES", "BENCH_WEAKLINK_MODES", "BENCH_WEAKLINK_LOG"
# Targets of issue #16 (printed under the table, not asserted).
TARGETS = "targets: at 300 kbit/s audio concealment < 2 %; adapt down within 2 s, up within 15 s"


@dataclass(frozen=True)
class Profile:
    """A receiver's link: tbf rate each way (None: unlimited), relay impairment, a rate drop."""

    name: str
    kbit: int | None = None
    impairment: Impairment | None = None
    drop_to_kbit: int | None = None  # after a third of the window, the rate falls to this


PROFILES = [
    Profile("unlimited"),
    Profile("1 Mbit/s", 1000),
    Profile("300 kbit/s", 300),
    Profile("300 kbit/s, 5 % loss, 150 ms RTT", 300, Impairment(delay_ms=75, jitter_ms=10, loss=0.05)),
    Profile("2 Mbit/s → 250 kbit/s", 2000, drop_to_kbit=250),
]


@dataclass(frozen=True)
class Mode:
    """A column: the SFU's adaptation (``SfuConfig.adaptive``) and whether the publisher sends simulcast."""

    adaptive: bool
    simulcast: bool


MODES: dict[str, Mode] = {
    "adaptive": Mode(adaptive=True, simulcast=True),
    "baseline": Mode(adaptive=False, simulcast=False),  # before #16: one layer, forwarded as is
}

# The baseline publisher's page: simulcast encodings dropped, so the camera is one stream.
SINGLE_LAYER = """(() => {
  const original = RTCPeerConnection.prototype.addTransceiver;
  RTCPeerConnection.prototype.addTransceiver = function (trackOrKind, init) {
    if (init && Array.isArray(init.sendEncodings) && init.sendEncodings.length > 1) {
      init = Object.assign({}, init);
      delete init.sendEncodings;
    }
    return original.call(this, trackOrKind, init);
  };
})();"""

STATS = """async () => {
  const pc = window.__giaoban && window.__giaoban.pc;
  const r = {t: performance.now(), concealed: 0, samples: 0, frames: 0, freezes: 0,
             width: 0, height: 0, fps: 0, bytes: 0, sent: 0, topWidth: 0, topLayer: "", encoded: {},
             limit: ""};
  if (!pc) return r;
  (await pc.getStats()).forEach((s) => {
    if (s.type === "outbound-rtp") r.sent += s.bytesSent || 0;
    if (s.type === "outbound-rtp" && s.kind === "video") {
      const layer = s.rid || String(s.ssrc);
      r.encoded[layer] = s.framesEncoded || 0;
      if ((s.frameWidth || 0) >= r.topWidth) {
        r.topWidth = s.frameWidth || 0;  // the publisher's largest layer: its encoder's frame rate
        r.topLayer = layer;
        r.limit = s.qualityLimitationReason || "";
      }
    }
    if (s.type !== "inbound-rtp") return;
    r.bytes += s.bytesReceived || 0;
    if (s.kind === "audio") {
      r.concealed += s.concealedSamples || 0;
      r.samples += s.totalSamplesReceived || 0;
    } else {
      r.frames += s.framesDecoded || 0;
      r.freezes += s.freezeCount || 0;
      if ((s.frameWidth || 0) > r.width) { r.width = s.frameWidth; r.height = s.frameHeight || 0; }
      r.fps = Math.max(r.fps, s.framesPerSecond || 0);
    }
  });
  return r;
}"""


@dataclass
class Result:
    """One profile in one mode, over the window (None: not measured)."""

    concealed_pct: float | None = None
    fps: float | None = None
    resolution: str = ""
    freezes_per_min: float | None = None
    kbps: float | None = None
    sent_kbps: float | None = None  # what the publisher sent meanwhile
    encoded_fps: float | None = None  # the frame rate the publisher encoded its largest layer at
    limited_by: str = ""  # and why it was limited (Chromium's qualityLimitationReason)
    relay_dropped: str = ""
    fall_pct: float | None = None  # audio concealment % in the SETTLE_S after the link changed
    down_s: float | None = None  # seconds to adapt down after the rate fell
    up_s: float | None = None  # seconds to come back up after it returned
    sfu_down_s: float | None = None  # the same, from the SFU's switches (its LayerChanged)
    sfu_up_s: float | None = None
    # Wall-clock moments of the link's changes, for the SFU's events: (start, shaped, fell, returned).
    moments: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
    error: str = ""


@dataclass
class Table:
    window_s: float
    rows: dict[str, dict[str, Result]] = field(default_factory=dict)


# --- the app in its own process, behind the relay -------------------------------------------


class _LayerLog(logging.Handler):
    """The SFU's ``LayerChanged`` events (its DEBUG log): (wall time, width; 0 when paused).

    Emitted when a slot's switch takes effect (at the new layer's keyframe), so the seconds
    from a rate's fall to the first narrower one are the SFU's own adaptation: the estimate's
    reaction, the allocation and the keyframe; what the receiver shows adds its queues and its
    decoder (the "down s" column, from its decoded frame width).
    """

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.events: list[tuple[float, int]] = []

    def emit(self, record: logging.LogRecord) -> None:
        event = record.args[0] if isinstance(record.args, tuple) and record.args else None
        if type(event).__name__ == "LayerChanged":
            width = 0 if getattr(event, "paused", False) else int(getattr(event, "width", None) or 0)
            self.events.append((record.created, width))

    def take(self) -> list[tuple[float, int]]:
        events, self.events = self.events, []
        return events


def _sfu_seconds(
    events: list[tuple[float, int]], since: float, check: Any, until: float | None = None
) -> float | None:
    """Seconds from ``since`` (wall time) to the first SFU switch for which ``check(width)`` holds."""
    for at, width in events:
        if at >= since and (until is None or at < until) and check(width):
            return at - since
    return None


def _sfu_width_at(events: list[tuple[float, int]], moment: float) -> int:
    """The width the SFU forwarded at ``moment`` (0: none yet, or paused)."""
    before = [width for at, width in events if at <= moment]
    return before[-1] if before else 0


def _serve(
    database_url: str,
    var_dir: str,
    front: str,
    impaired: list[tuple[str, Impairment]],
    adaptive: bool,
    channel: multiprocessing.connection.Connection,
) -> None:
    """Child process: the app on 127.0.0.1 and ``front``, media fronted by the relay."""

    async def main() -> None:
        from aiohttp import web

        from meetings.rtc.sfu import Sfu, SfuConfig
        from meetings.settings import load_settings
        from web.app import create_app

        # The column's adaptation switch (no setting for it: a benchmark's, in this process
        # only): every SFU made here gets its SfuConfig with ``adaptive`` as the column says,
        # wherever the app builds that config.
        made = Sfu.__init__

        def init(self: Sfu, config: SfuConfig | None = None, *args: Any, **kwargs: Any) -> None:
            made(self, dataclasses.replace(config or SfuConfig(), adaptive=adaptive), *args, **kwargs)

        sfu_class: Any = Sfu
        sfu_class.__init__ = init

        relay = shapedlink.Relay(front, HOST, seed=SEED)
        for network, impairment in impaired:
            relay.impair(network, impairment)
        settings = load_settings(
            environ={},
            database_url=database_url,
            secret_key=SECRET,
            var_dir=var_dir,
            log_format="text",
            log_level="WARNING",
            mail_catcher_port=0,
            scheduler_enabled=False,
            media_addresses=HOST,
            media_announced_address=front,
        )
        layers = _LayerLog()
        sfu_log = logging.getLogger("meetings.rtc.sfu")
        sfu_log.setLevel(logging.DEBUG)
        sfu_log.addHandler(layers)
        if path := os.environ.get(LOG_ENV):
            handler = logging.FileHandler(path)
            handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(message)s"))
            media = logging.getLogger("meetings.rtc")
            media.setLevel(logging.DEBUG)
            media.addHandler(handler)
        with shapedlink.follow_sfu_ports(relay):
            runner = web.AppRunner(create_app(settings), access_log=None)
            await runner.setup()
            await web.TCPSite(runner, HOST, 0).start()
            port = runner.addresses[0][1]
            await web.TCPSite(runner, front, port).start()
            channel.send(port)
            loop = asyncio.get_running_loop()
            while True:
                message = await loop.run_in_executor(None, channel.recv)  # EOF: the parent is gone
                if message == "counts":
                    channel.send((relay.counts.impaired, relay.counts.dropped))
                    continue
                if message == "layers":  # what the SFU switched each receiver to, and when
                    channel.send(layers.take())
                    continue
                break
            await runner.cleanup()
            relay.close()

    with contextlib.suppress(EOFError, KeyboardInterrupt):
        asyncio.run(main())


def _chosen(variable: str) -> list[str]:
    """The comma-separated choices in environment ``variable`` (none: everything runs)."""
    return [item.strip() for item in os.environ.get(variable, "").split(",") if item.strip()]


def _detailed_video(path: Path, frames: int = 50, width: int = 960, height: int = 540) -> None:
    """A Y4M clip for the publisher's fake camera: moving detail, so the encoder needs bits.

    960×540, what the room page captures (the smallest picture Chromium sends three simulcast
    layers of; they go out 160, 320 and 640 pixels wide).

    Chromium's own fake camera (a simple animation) encodes to ~215 kbit/s, under every
    profile but the lowest; this clip (noise scrolling over a gradient) asks for as much as
    the publisher's bandwidth estimate allows.
    """
    import random

    noise = random.Random(SEED).randbytes(height * width * 2)  # rows twice as wide, to scroll
    chroma = bytes([128]) * (width * height // 2)
    with path.open("wb") as clip:
        clip.write(f"YUV4MPEG2 W{width} H{height} F20:1 Ip A1:1 C420jpeg\n".encode())
        for i in range(frames):
            shift = (i * 8) % width
            rows = (noise[y * 2 * width + shift : y * 2 * width + shift + width] for y in range(height))
            clip.write(b"FRAME\n" + b"".join(rows) + chroma)


# --- one receiver -------------------------------------------------------------------------------


async def _stats(page: Any) -> dict[str, float]:
    async with asyncio.timeout(10):
        result: dict[str, float] = await page.evaluate(STATS)
    return result


class _Widths:
    """The receiver's frame width every ``POLL_S`` (monotonic time, width), read in the background."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.readings: list[tuple[float, float]] = []
        self.task = asyncio.create_task(self._poll())

    async def _poll(self) -> None:
        with contextlib.suppress(Exception):  # the page closing ends it
            while True:
                width = (await _stats(self.page))["width"]
                self.readings.append((time.monotonic(), width))
                await asyncio.sleep(POLL_S)

    def width_at(self, moment: float) -> float:
        """The last width read before ``moment`` (0: none yet)."""
        before = [w for t, w in self.readings if t <= moment]
        return before[-1] if before else 0.0

    def widest(self, start: float, end: float) -> float:
        """The widest frame read between two moments (0: none)."""
        return max((w for t, w in self.readings if start <= t <= end), default=0.0)

    def seconds_until(self, moment: float, check: Any) -> float | None:
        """Seconds from ``moment`` to the first reading after it for which ``check(width)`` holds."""
        for t, width in self.readings:
            if t >= moment and width and check(width):
                return t - moment
        return None

    async def stop(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


def _concealed(start: dict[str, float], end: dict[str, float]) -> float | None:
    """Audio concealment % between two readings (None: no audio received meanwhile)."""
    samples = end["samples"] - start["samples"]
    return 100 * (end["concealed"] - start["concealed"]) / samples if samples else None


async def _receive(
    pw: Any, link: shapedlink.Link, profile: Profile, url: str, token: str, window: float, publisher: Any
) -> Result:
    """A receiver in ``link``'s namespace joins, the profile applies, the window is measured."""
    path = chromium.executable()
    assert path is not None
    result = Result()
    # The page is served from the front address, not 127.0.0.1: tell Chromium it is a secure
    # context, or it offers neither media devices nor the pre-join screen.
    secure = f"--unsafely-treat-insecure-origin-as-secure={url}"
    browser = await chromium.launch(pw, link.wrapper(path), [secure])
    widths: _Widths | None = None
    try:
        context = await browser.new_context(viewport={"width": 1000, "height": 700}, locale="vi-VN")
        page = await context.new_page()
        async with asyncio.timeout(JOIN_TIMEOUT_S):
            await page.goto(f"{url}/join/{token}")
            await page.click("#join-room")
            await page.wait_for_selector("#join-button:not([disabled])")
            await page.set_checked("#want-audio", False)
            await page.set_checked("#want-video", False)
            await page.click("#join-button")
            while True:
                first = await _stats(page)
                if first["samples"] > 0 and first["frames"] > 0:
                    break
                await asyncio.sleep(0.25)
        widths = _Widths(page)
        await asyncio.sleep(2 * POLL_S)  # a width read before the rate changes
        shaped, shaped_wall = time.monotonic(), time.time()
        before = await _stats(page)
        link.shape(profile.kbit, profile.kbit)
        if profile.drop_to_kbit is None:  # the link as it stays: measured once adapted to it
            await asyncio.sleep(SETTLE_S)
            settled = await _stats(page)
            result.fall_pct = _concealed(before, settled)
        else:
            await asyncio.sleep(1.0)  # the queue the old rate filled drains (or fills) first
        start = await _stats(page)
        sent_start = await _stats(publisher)
        fell = returned = fell_wall = returned_wall = 0.0
        started, started_wall = time.monotonic(), time.time()
        if profile.drop_to_kbit is not None:
            await asyncio.sleep(window / 3)
            fell, fell_wall = time.monotonic(), time.time()
            link.shape(profile.drop_to_kbit, profile.drop_to_kbit)
            await asyncio.sleep(window / 3)
            returned, returned_wall = time.monotonic(), time.time()
            link.shape(profile.kbit, profile.kbit)
            await asyncio.sleep(window / 3)
            top = widths.widest(started, fell)
            deadline = returned + window / 3 + UP_WAIT_S
            while time.monotonic() < deadline:  # the top layer back, or the deadline
                if widths.seconds_until(returned, lambda w: w >= top) is not None:
                    break
                await asyncio.sleep(POLL_S)
        else:
            await asyncio.sleep(window)
        end = await _stats(page)
        sent_end = await _stats(publisher)
        await widths.stop()
        if profile.kbit is not None:  # a fall from unlimited: how long until a smaller layer
            unshaped = widths.width_at(shaped)
            result.down_s = widths.seconds_until(shaped, lambda w: w < unshaped)
        result.moments = (started_wall, shaped_wall, fell_wall, returned_wall)
        if profile.drop_to_kbit is not None:
            # Down: narrower than what it showed at the fall; up: back at the widest it showed
            # at 2 Mbit/s before the fall (a probe's moment at another width does not count).
            top = widths.widest(started, fell)
            at_fall = widths.width_at(fell)
            result.down_s = widths.seconds_until(fell, lambda w: w < at_fall)
            if result.down_s is not None:  # back up from a layer it went down to
                result.up_s = widths.seconds_until(returned, lambda w: w >= top)
        seconds = (end["t"] - start["t"]) / 1000
        result.concealed_pct = _concealed(start, end)
        result.fps = (end["frames"] - start["frames"]) / seconds
        result.resolution = f"{end['width']:.0f}×{end['height']:.0f}" if end["width"] else "—"
        result.freezes_per_min = (end["freezes"] - start["freezes"]) * 60 / seconds
        result.kbps = (end["bytes"] - start["bytes"]) * 8 / 1000 / seconds
        result.sent_kbps = (sent_end["sent"] - sent_start["sent"]) * 8 / 1000 / seconds
        # The same layer at both ends (the widest at the end): which layer is widest changes
        # when dynacast pauses the top one, and two layers' counters gave -91.6 fps.
        top_layer = str(sent_end["topLayer"])
        encoded_start: dict[str, float] = cast(Any, sent_start["encoded"])
        encoded_end: dict[str, float] = cast(Any, sent_end["encoded"])
        if top_layer in encoded_start and top_layer in encoded_end:
            result.encoded_fps = (
                (encoded_end[top_layer] - encoded_start[top_layer])
                * 1000
                / (max(sent_end["t"] - sent_start["t"], 1.0))
            )
        result.limited_by = str(sent_end["limit"])
        await context.close()
    except Exception as exc:  # one failed profile is a row in the table, not the end of the run
        result.error = _first_line(exc)
    finally:
        if widths is not None:
            await widths.stop()
        link.shape(None, None)
        await browser.close()
    return result


async def _measure(
    links: list[shapedlink.Link],
    url: str,
    publisher_url: str,
    tokens: list[str],
    window: float,
    server: Any,
    mode: Mode,
) -> dict[str, Result]:
    from playwright.async_api import async_playwright

    path = chromium.executable()
    if path is None:
        raise RuntimeError(f"Chromium is not installed ({chromium.INSTALL_HINT})")
    chromium.isolate_playwright()
    results: dict[str, Result] = {}
    clip = Path(tempfile.mkdtemp(prefix="bench-weaklink-clip-")) / "detail.y4m"
    _detailed_video(clip)
    async with async_playwright() as pw:
        browser = await chromium.launch(pw, path, [f"--use-file-for-fake-video-capture={clip}"])
        try:
            chair = await browser.new_context(viewport={"width": 1000, "height": 700}, locale="vi-VN")
            if not mode.simulcast:
                await chair.add_init_script(SINGLE_LAYER)
            page = await chair.new_page()
            await _enter(page, publisher_url, tokens[0], audio=True)
            await page.wait_for_selector("#room:not([hidden])", timeout=START_TIMEOUT_S * 1000)
            # The publisher's sending rate ramps up first (shorter for a short window).
            await asyncio.sleep(min(WARMUP_S, 1.5 * window))
            chosen = _chosen(PROFILES_ENV)
            cases = enumerate(zip(PROFILES, links, tokens[1:], strict=False), 1)
            for number, (profile, link, token) in cases:
                if chosen and str(number) not in chosen:
                    continue
                server.send("counts")
                before = server.recv()
                server.send("layers")  # forget the switches of earlier profiles
                server.recv()
                result = await _receive(pw, link, profile, url, token, window, page)
                server.send("layers")
                _sfu_adaptation(result, profile, server.recv())
                server.send("counts")
                after = server.recv()
                if profile.impairment is not None:
                    seen, dropped = after[0] - before[0], after[1] - before[1]
                    result.relay_dropped = f"{dropped}/{seen}"
                results[profile.name] = result
                print(f"  {profile.name}: {_line(result)}", flush=True)
            await chair.close()
        finally:
            await browser.close()
            shutil.rmtree(clip.parent, ignore_errors=True)
    return results


def _sfu_adaptation(result: Result, profile: Profile, events: list[tuple[float, int]]) -> None:
    """The SFU's seconds to adapt down and up, from its switches (as the receiver's, see _receive)."""
    start, shaped, fell, returned = result.moments
    if profile.kbit is not None and shaped:
        unshaped = _sfu_width_at(events, shaped)
        result.sfu_down_s = _sfu_seconds(events, shaped, lambda w: w < unshaped)
    if profile.drop_to_kbit is not None and fell:
        at_fall = _sfu_width_at(events, fell)
        result.sfu_down_s = _sfu_seconds(events, fell, lambda w: w < at_fall, until=returned)
        top = max([w for at, w in events if start <= at <= fell] + [_sfu_width_at(events, start)])
        if result.sfu_down_s is not None:
            result.sfu_up_s = _sfu_seconds(events, returned, lambda w: w >= top)


# --- the table ------------------------------------------------------------------------------------


def _f(value: float | None, spec: str = ".1f") -> str:
    return "—" if value is None else format(value, spec)


def _limited(reason: str) -> str:
    return f", limited by {reason}" if reason not in ("", "none") else ""


def _line(r: Result) -> str:
    if r.error:
        return f"failed: {r.error}"
    return (
        f"concealed {_f(r.concealed_pct)} %, {_f(r.fps)} fps at {r.resolution}, "
        f"{_f(r.freezes_per_min)} freezes/min, {_f(r.kbps, '.0f')} kbit/s received "
        f"(publisher sent {_f(r.sent_kbps, '.0f')}, its largest layer encoded at {_f(r.encoded_fps)} fps"
        f"{_limited(r.limited_by)}), adapted down in {_f(r.down_s)} s, up in {_f(r.up_s)} s "
        f"(the SFU's switches: {_f(r.sfu_down_s)} s, {_f(r.sfu_up_s)} s), "
        f"concealed {_f(r.fall_pct)} % in the {SETTLE_S:.0f} s after the link changed"
        + (f", relay dropped {r.relay_dropped}" if r.relay_dropped else "")
    )


CELL = (
    f"{'conc. %':>7} {'fps':>5} {'resolution':>10} {'frz/min':>7} {'down s':>6} {'up s':>5}"
    f" {'sfu↓ s':>6} {'sfu↑ s':>6} {'kbit/s':>6} {'fall %':>6}"
)


def _cell(r: Result) -> str:
    if r.error:
        return f"{'failed: ' + r.error[: len(CELL) - 8]:<{len(CELL)}}"
    return (
        f"{_f(r.concealed_pct, '.2f'):>7} {_f(r.fps):>5} {r.resolution:>10} {_f(r.freezes_per_min):>7}"
        f" {_f(r.down_s):>6} {_f(r.up_s):>5} {_f(r.sfu_down_s):>6} {_f(r.sfu_up_s):>6}"
        f" {_f(r.kbps, '.0f'):>6} {_f(r.fall_pct, '.2f'):>6}"
    )


def _report(table: Table) -> int:
    """The table: a row per profile, the modes side by side; status 1 if a cell failed."""
    modes = list(MODES)
    print()
    print(
        f"A receiver on a shaped link, {table.window_s:.0f} s window per profile (getStats): audio "
        "concealment %, video fps, resolution at the end, freezes per minute, seconds to adapt down "
        f"and up, kbit/s received; for the constant profiles the window starts {SETTLE_S:.0f} s after "
        f"the link changed, and 'fall %' is the audio concealment in those {SETTLE_S:.0f} s"
    )
    print(f"{'':<34}" + "".join(f" | {mode:^{len(CELL)}}" for mode in modes))
    header = f"{'profile':<34}" + "".join(f" | {CELL}" for _ in modes)
    print(header)
    print("-" * len(header))
    status = 0
    for profile in PROFILES:
        cells = []
        for mode in modes:
            r = table.rows.get(mode, {}).get(profile.name, Result(error="not run"))
            status = max(status, int(bool(r.error)))
            cells.append(f" | {_cell(r)}")
        print(f"{profile.name:<34}" + "".join(cells))
    print(TARGETS)
    return status


def run(sizes: Sequence[int]) -> int:
    """Each mode (adaptive, baseline), each profile: one receiver for ``sizes[0]`` seconds."""
    from meetings.db.migrate import upgrade_sync

    reason = shapedlink.unavailable()
    if reason is not None:
        print(f"weaklink: not run ({reason})")
        return 1
    window = float(sizes[0])
    table = Table(window)
    began = time.monotonic()
    with contextlib.ExitStack() as stack:
        links = [stack.enter_context(shapedlink.shaped_link(i)) for i in range(len(PROFILES))]
        front = links[0].host_address
        impaired = [
            (str(link.network), p.impairment) for link, p in zip(links, PROFILES, strict=True) if p.impairment
        ]
        print(
            f"Weak-link benchmark: one publisher (Chromium, fake camera and microphone, unshaped) and, per "
            f"profile, one receiver (Chromium in a network namespace, tbf both ways, UDP relay for delay, "
            f"jitter and loss, seed {SEED}); {os.cpu_count()} CPUs, load average "
            f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}; media announced on {front}.",
            flush=True,
        )
        for name, mode in MODES.items():
            if _chosen(MODES_ENV) and name not in _chosen(MODES_ENV):
                continue
            print(f"mode {name}:", flush=True)
            folder = Path(tempfile.mkdtemp(prefix="bench-weaklink-"))
            database_url = f"sqlite+aiosqlite:///{folder / 'giaoban.sqlite3'}"
            upgrade_sync(database_url)
            meeting = asyncio.run(_seed(database_url, len(PROFILES)))
            spawn = multiprocessing.get_context("spawn")
            parent, child = spawn.Pipe()
            server = spawn.Process(
                target=_serve,
                args=(database_url, str(folder / "var"), front, impaired, mode.adaptive, child),
                daemon=True,
            )
            server.start()
            child.close()
            try:
                if not parent.poll(START_TIMEOUT_S):
                    raise RuntimeError(f"the app did not start within {START_TIMEOUT_S:.0f} s")
                port = parent.recv()
                bound = (
                    START_TIMEOUT_S + WARMUP_S + len(PROFILES) * (JOIN_TIMEOUT_S + window + 30) + UP_WAIT_S
                )
                measuring = _measure(
                    links,
                    f"http://{front}:{port}",
                    f"http://{HOST}:{port}",
                    [meeting.chair, *meeting.officers],
                    window,
                    parent,
                    mode,
                )
                table.rows[name] = asyncio.run(asyncio.wait_for(measuring, bound))
            finally:
                with contextlib.suppress(OSError):
                    parent.send("stop")
                server.join(15)
                if server.is_alive():
                    server.terminate()
                    server.join(5)
                parent.close()
                shutil.rmtree(folder, ignore_errors=True)
    status = _report(table)
    print(f"({time.monotonic() - began:.0f} s in all)", flush=True)
    return status
