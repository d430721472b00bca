"""``python -m bench weaklink [--sizes 30] [--quick]``: what a receiver on a weak link gets.

Issue #16's baseline. The app runs in its own process (SQLite in a temporary folder); its media
server gathers on 127.0.0.1 and announces the host side of the first shaped link
(``media_announced_address``), where a ``shapedlink.Relay`` in the same process fronts each
of its ports (``follow_sfu_ports``). The publisher, the chair, is headless Debian Chromium on
this side (fake camera and microphone, unshaped). For each link profile, one receiver, a
centre officer with camera and microphone off, is Chromium launched *inside* a network
namespace (``shapedlink.shaped_link``) whose veth is shaped with ``tbf`` (both directions) and
whose media the relay delays, jitters and drops as the profile says. The receiver joins
unshaped, the profile is applied once remote audio and video arrive, then ``getStats()`` is
read at the start and the end of a fixed window (``--sizes``: its length in seconds, 30 by
default, 10 with ``--quick``): audio concealment % (concealedSamples / totalSamplesReceived),
video fps (framesDecoded per second), the resolution at the end, freezes per minute
(freezeCount), and the kbit/s received. The receiver then leaves and its browser closes.

``MODES`` are the columns: today only the baseline (no adaptation exists); an adaptive mode
later adds its app settings there and is measured with the same profiles, side by side.
Needs root (network namespaces, tc); every run is bounded (set-up, join and window).
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import multiprocessing.connection
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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

# The columns: app settings per mode. An adaptive mode (simulcast, bandwidth estimation, audio
# first) adds its switch here, e.g. "adaptive": {...}, and is measured with the same profiles.
MODES: dict[str, dict[str, Any]] = {"baseline": {}}

STATS = """async () => {
  const pc = window.__giaoban && window.__giaoban.pc;
  const r = {t: performance.now(), concealed: 0, samples: 0, frames: 0, freezes: 0,
             width: 0, height: 0, fps: 0, bytes: 0, sent: 0};
  if (!pc) return r;
  (await pc.getStats()).forEach((s) => {
    if (s.type === "outbound-rtp") r.sent += s.bytesSent || 0;
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
    relay_dropped: str = ""
    error: str = ""


@dataclass
class Table:
    window_s: float
    rows: dict[str, dict[str, Result]] = field(default_factory=dict)


# --- the app in its own process, behind the relay -------------------------------------------


def _serve(
    database_url: str,
    var_dir: str,
    front: str,
    impaired: list[tuple[str, Impairment]],
    settings_extra: dict[str, Any],
    channel: multiprocessing.connection.Connection,
) -> None:
    """Child process: the app on 127.0.0.1 and ``front``, media fronted by the relay."""

    async def main() -> None:
        from aiohttp import web

        from meetings.settings import load_settings
        from web.app import create_app

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
            **settings_extra,
        )
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
                break
            await runner.cleanup()
            relay.close()

    with contextlib.suppress(EOFError, KeyboardInterrupt):
        asyncio.run(main())


def _detailed_video(path: Path, frames: int = 50, width: int = 640, height: int = 360) -> None:
    """A Y4M clip for the publisher's fake camera: moving detail, so the encoder needs bits.

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
        link.shape(profile.kbit, profile.kbit)
        await asyncio.sleep(1.0)  # the queue the old rate filled drains (or fills) first
        start = await _stats(page)
        sent_start = await _stats(publisher)
        if profile.drop_to_kbit is not None:
            await asyncio.sleep(window / 3)
            link.shape(profile.drop_to_kbit, profile.drop_to_kbit)
            await asyncio.sleep(window * 2 / 3)
        else:
            await asyncio.sleep(window)
        end = await _stats(page)
        sent_end = await _stats(publisher)
        seconds = (end["t"] - start["t"]) / 1000
        samples = end["samples"] - start["samples"]
        result.concealed_pct = 100 * (end["concealed"] - start["concealed"]) / samples if samples else None
        result.fps = (end["frames"] - start["frames"]) / seconds
        result.resolution = f"{end['width']:.0f}×{end['height']:.0f}" if end["width"] else "—"
        result.freezes_per_min = (end["freezes"] - start["freezes"]) * 60 / seconds
        result.kbps = (end["bytes"] - start["bytes"]) * 8 / 1000 / seconds
        result.sent_kbps = (sent_end["sent"] - sent_start["sent"]) * 8 / 1000 / seconds
        await context.close()
    except Exception as exc:  # one failed profile is a row in the table, not the end of the run
        result.error = _first_line(exc)
    finally:
        link.shape(None, None)
        await browser.close()
    return result


async def _measure(
    links: list[shapedlink.Link], url: str, publisher_url: str, tokens: list[str], window: float, server: Any
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
            page = await chair.new_page()
            await _enter(page, publisher_url, tokens[0], audio=True)
            await page.wait_for_selector("#room:not([hidden])", timeout=START_TIMEOUT_S * 1000)
            await asyncio.sleep(WARMUP_S)  # the publisher's sending rate ramps up first
            for profile, link, token in zip(PROFILES, links, tokens[1:], strict=False):
                server.send("counts")
                before = server.recv()
                result = await _receive(pw, link, profile, url, token, window, page)
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


# --- the table ------------------------------------------------------------------------------------


def _f(value: float | None, spec: str = ".1f") -> str:
    return "—" if value is None else format(value, spec)


def _line(r: Result) -> str:
    if r.error:
        return f"failed: {r.error}"
    return (
        f"concealed {_f(r.concealed_pct)} %, {_f(r.fps)} fps at {r.resolution}, "
        f"{_f(r.freezes_per_min)} freezes/min, {_f(r.kbps, '.0f')} kbit/s received "
        f"(publisher sent {_f(r.sent_kbps, '.0f')})"
        + (f", relay dropped {r.relay_dropped}" if r.relay_dropped else "")
    )


def _report(table: Table) -> int:
    modes = list(MODES)
    print()
    print(f"Receivers on shaped links, {table.window_s:.0f} s window per profile (getStats):")
    header = f"{'profile':<34}" + "".join(
        f" | {mode + ': audio conc. %':>24} {'fps':>5} {'resolution':>10} {'freezes/min':>11}"
        f" {'kbit/s':>7} {'sent':>5}"
        for mode in modes
    )
    print(header)
    print("-" * len(header))
    status = 0
    for profile in PROFILES:
        cells = []
        for mode in modes:
            r = table.rows.get(mode, {}).get(profile.name, Result(error="not run"))
            if r.error:
                status = 1
                cells.append(f" | {'failed: ' + r.error[:60]:<62}")
                continue
            cells.append(
                f" | {_f(r.concealed_pct):>24} {_f(r.fps):>5} {r.resolution:>10}"
                f" {_f(r.freezes_per_min):>11} {_f(r.kbps, '.0f'):>7} {_f(r.sent_kbps, '.0f'):>5}"
            )
        print(f"{profile.name:<34}" + "".join(cells))
    return status


def run(sizes: Sequence[int]) -> int:
    """Each mode (today: the baseline), each profile: one receiver for ``sizes[0]`` seconds."""
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
        for mode, extra in MODES.items():
            print(f"mode {mode}:", flush=True)
            folder = Path(tempfile.mkdtemp(prefix="bench-weaklink-"))
            database_url = f"sqlite+aiosqlite:///{folder / 'giaoban.sqlite3'}"
            upgrade_sync(database_url)
            meeting = asyncio.run(_seed(database_url, len(PROFILES)))
            spawn = multiprocessing.get_context("spawn")
            parent, child = spawn.Pipe()
            server = spawn.Process(
                target=_serve,
                args=(database_url, str(folder / "var"), front, impaired, extra, child),
                daemon=True,
            )
            server.start()
            child.close()
            try:
                if not parent.poll(START_TIMEOUT_S):
                    raise RuntimeError(f"the app did not start within {START_TIMEOUT_S:.0f} s")
                port = parent.recv()
                bound = START_TIMEOUT_S + len(PROFILES) * (JOIN_TIMEOUT_S + window + 30)
                measuring = _measure(
                    links,
                    f"http://{front}:{port}",
                    f"http://{HOST}:{port}",
                    [meeting.chair, *meeting.officers],
                    window,
                    parent,
                )
                table.rows[mode] = asyncio.run(asyncio.wait_for(measuring, bound))
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
