"""``python -m bench join [--sizes 10] [--quick]``: from the invitation link to the first remote media.

The app runs in its own process (SQLite in a temporary folder, 127.0.0.1, a free port); headless
Chromium (Debian's, fake camera and microphone) is driven by Playwright. The chair joins first,
camera and microphone on, and stays: the publisher. Then, N times, a centre officer opens their
personal invitation link in a fresh browser context, clicks "Join the meeting", then "Join now"
as soon as the pre-join screen allows it, and we take the time from ``page.goto`` to the first
remote video frame decoded and to the first remote audio samples received (``getStats``,
polled every 10 ms by a script the page carries from its first line). The same N times in
audio-only mode (no video slots offered: to the first audio samples). Each officer joins once,
then leaves (its context closed). Median and p95 per mode, and the ratio audio-only/full.

Today's flow is measured in the same run as the baseline: a second app process (its own
SQLite, its own chair publishing) runs the SFU as before issue #18
(``SfuConfig(keyframe_when_connected=False, resume_silence=0)``: a new receiver's keyframe
asked for the moment its slot is assigned), and its pages join as before #18
(``window.__giaobanPrepare = false``: the peer connection made after ``welcome``, the offer
after ``room``); its "full-today" joins are interleaved with the others. Every officer looks
at the pre-join screen for ``THINK_S`` before pressing "Join now" (a person reads it and
chooses; the page prepares its peer connection meanwhile, where it does).

Then the join phase by phase (docs/media.md), for the full mode: the page's moments
(``room/timing.js``, switched on by the init script; read from its hidden ``#join-timing``), the
server's (``meetings.rtc.join`` DEBUG lines: offer received, answer ready, ICE and DTLS
connected, keyframe requested, keyframe forwarded), and ``getStats()``'s first video packet and
first frame decoded, all on the wall clock, each as p50/p95 after the click and as the time
spent in each phase.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import multiprocessing
import multiprocessing.connection
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import chromium

NAME = "join"
DEFAULT_SIZES = [20]
QUICK_SIZES = [4]
HOST = "127.0.0.1"
SECRET = "bench-join-secret-key-not-for-production"
JOIN_TIMEOUT_S = 30.0  # one join that has not shown media by then counts as failed
BUDGET_S = 330.0  # the whole benchmark stops starting joins after this (set-up included)
START_TIMEOUT_S = 60.0
THINK_S = 1.0  # on the pre-join screen, from "Join now" enabled to the click (both modes)

# Carried by every page from its first line: records (Date.now(), ms) the first remote video frame
# decoded and the first remote audio samples received on the room's peer connection.
FIRST_MEDIA = """
window.__giaobanTiming = true;
window.__firstMedia = {video: null, audio: null, videoPacket: null, pli: null};
(function poll() {
  const g = window.__giaoban;
  const pc = g && g.pc;
  const done = () => window.__firstMedia.video !== null && window.__firstMedia.audio !== null;
  if (!pc || done()) { if (!done()) setTimeout(poll, 10); return; }
  pc.getStats().then((stats) => {
    const now = Date.now();
    stats.forEach((s) => {
      if (s.type !== "inbound-rtp") return;
      const first = window.__firstMedia;
      if (s.kind === "video" && s.packetsReceived > 0 && first.videoPacket === null) first.videoPacket = now;
      if (s.kind === "video" && s.framesDecoded > 0 && first.video === null) {
        first.video = now;
        first.pli = s.pliCount || 0;
      }
      if (s.kind === "audio" && s.totalSamplesReceived > 0 && first.audio === null) first.audio = now;
    });
  }).catch(() => {}).finally(() => setTimeout(poll, 10));
})();
"""


# --- the app in its own process -------------------------------------------------------------


class _PhaseFile(logging.Handler):
    """Appends the SFU's join phases (``meetings.rtc.join``) to a JSON-lines file."""

    def __init__(self, path: str) -> None:
        super().__init__(logging.DEBUG)
        self.path = path

    def emit(self, record: logging.LogRecord) -> None:
        line = {k: getattr(record, k, None) for k in ("participant", "phase", "at")}
        with open(self.path, "a", encoding="utf-8") as out:
            out.write(json.dumps(line) + "\n")


def _serve(
    database_url: str,
    var_dir: str,
    channel: multiprocessing.connection.Connection,
    phases: str,
    today: bool = False,
) -> None:
    """Child process: run the app on a free loopback port, send the port, stop when told; the
    SFU's join phases go to the file ``phases``. ``today``: the join as before issue #18."""
    import aioice.ice

    # ICE on 127.0.0.1 only, as in the tests: the benchmark never leaves loopback.
    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: [HOST]

    async def main() -> None:
        from aiohttp import web

        from meetings.settings import load_settings
        from web.app import create_app

        if today:
            import functools

            import web.media_ctx as media_ctx
            from meetings.rtc.sfu import SfuConfig

            today_config = functools.partial(SfuConfig, keyframe_when_connected=False, resume_silence=0.0)
            setattr(media_ctx, "SfuConfig", today_config)  # noqa: B010 (what the app builds its SFU from)

        settings = load_settings(
            environ={},
            database_url=database_url,
            secret_key=SECRET,
            var_dir=var_dir,
            log_format="text",
            log_level="WARNING",
            mail_catcher_port=0,
            scheduler_enabled=False,
        )
        app = create_app(settings)
        join_log = logging.getLogger("meetings.rtc.join")
        join_log.setLevel(logging.DEBUG)
        join_log.propagate = False
        join_log.addHandler(_PhaseFile(phases))
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, HOST, 0)
        await site.start()
        port = runner.addresses[0][1]
        channel.send(port)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, channel.recv)  # any message (or the parent gone): stop
        await runner.cleanup()

    with contextlib.suppress(EOFError, KeyboardInterrupt):
        asyncio.run(main())


# --- data -------------------------------------------------------------------------------------


@dataclass
class Meeting:
    """The seeded meeting: the chair's join token and one token per officer and mode."""

    chair: str
    officers: list[str]


async def _seed(database_url: str, officers: int) -> Meeting:
    """A department chair, a centre with `officers` people, an ad hoc meeting starting in 5 minutes."""
    from sqlalchemy import select

    from meetings.cli import CLI_ACTOR
    from meetings.db import create_engine, create_sessionmaker
    from meetings.directory.models import Person, Role, Unit, UnitKind
    from meetings.directory.service import person_search_text, unit_search_text
    from meetings.schedule import service
    from meetings.schedule.links import JoinLink, make_join_token
    from meetings.schedule.models import Occurrence

    engine = create_engine(database_url)
    sessions = create_sessionmaker(engine)
    now = datetime.now(UTC)
    try:
        async with sessions() as db:
            dept = Unit(code="VP-UBND", kind=UnitKind.DEPARTMENT, name="Văn phòng UBND", active=True)
            centre = Unit(code="P-PHONGDIEN", kind=UnitKind.CENTRE, name="Phường Phong Điền", active=True)
            for unit in (dept, centre):
                unit.search_text = unit_search_text(unit)
                db.add(unit)
            await db.flush()
            people = [
                Person(email="chair@hue.example", name="Phan Chủ Trì", role=Role.CHAIR, unit_id=dept.id)
            ]
            people += [
                Person(email=f"tt{i}@hue.example", name=f"Cán bộ {i}", role=Role.MEMBER, unit_id=centre.id)
                for i in range(officers)
            ]
            for person in people:
                person.active, person.language, person.phone, person.title = True, "vi", "", ""
                person.search_text = person_search_text(person)
                db.add(person)
            await db.commit()
            start = (now + timedelta(minutes=5)).astimezone(ZoneInfo("Asia/Ho_Chi_Minh"))
            ctx = service.Context(
                base_url="http://bench",
                secret=SECRET,
                organizer_email="vp@hue.example",
                organizer_name="VP",
                now=now,
            )
            series = await service.create_adhoc(
                db,
                CLI_ACTOR,
                service.SeriesInput(
                    title="Đo thời gian vào phòng",
                    start_date=start.date().isoformat(),
                    start_time=start.strftime("%H:%M"),
                    duration_minutes="60",
                    unit_codes=["P-PHONGDIEN"],
                    chair_email="chair@hue.example",
                ),
                ctx,
            )
            assert await db.scalar(select(Occurrence.id).where(Occurrence.series_id == series.id))
            await db.commit()
            expires = now + timedelta(days=1)
            tokens = [make_join_token(SECRET, JoinLink(p.id, series.id, None, expires)) for p in people]
    finally:
        await engine.dispose()
    return Meeting(chair=tokens[0], officers=tokens[1:])


# --- one join -----------------------------------------------------------------------------------


@dataclass
class Join:
    """One officer's join: milliseconds from ``page.goto`` to each moment (None: not within the bound)."""

    clicked: float | None = None  # "Join now" clicked (the pre-join screen ready)
    video: float | None = None
    audio: float | None = None
    error: str = ""
    started: float = 0.0  # page.goto, wall clock (ms)
    page: dict[str, Any] = field(default_factory=dict)  # room/timing.js's marks (wall clock, ms)
    video_packet: float | None = None  # getStats: first video packet (wall clock, ms)
    decoded: float | None = None  # getStats: first video frame decoded (wall clock, ms)
    pli: int | None = None  # PLIs the page had sent by its first decoded frame


@dataclass
class Mode:
    name: str
    audio_only: bool
    server: int = 0  # which app process: 0 as built, 1 today's flow (the baseline)
    joins: list[Join] = field(default_factory=list)


async def _enter(page: Any, url: str, token: str, *, audio: bool, audio_only: bool = False) -> float:
    """Invitation link → room page → pre-join → "Join now"; returns the click time (Date.now() ms)."""
    await page.goto(f"{url}/join/{token}")
    await page.click("#join-room")
    await page.wait_for_selector("#join-button:not([disabled])", timeout=JOIN_TIMEOUT_S * 1000)
    # The button is enabled after 8 s without devices too (DEVICES_WAIT_MS): a join measured
    # without its camera and microphone would not be the join of a person.
    await page.wait_for_selector("#device-note", state="hidden", timeout=JOIN_TIMEOUT_S * 1000)
    await asyncio.sleep(THINK_S)
    await page.set_checked("#want-audio", audio)
    if audio_only:
        # No pre-join control for it (yet): what the in-room toggle sets, set before joining, so
        # the first offer has no video slots and the camera is off.
        await page.set_checked("#want-video", False)
        await page.evaluate("window.__giaoban.state.audioOnly = true")
    clicked: float = await page.evaluate("Date.now()")
    await page.click("#join-button")
    return clicked


def _first_line(exc: BaseException) -> str:
    lines = str(exc).splitlines()
    return f"{type(exc).__name__}: {lines[0][:100] if lines else ''}"


async def _one(browser: Any, url: str, token: str, audio_only: bool, today: bool = False) -> Join:
    """One fresh context joins from its invitation link; times to first media; then it leaves.
    ``today``: the page joins as before #18 (no peer connection before the click)."""
    context = await browser.new_context(viewport={"width": 1000, "height": 700}, locale="vi-VN")
    result = Join()
    try:
        async with asyncio.timeout(2 * JOIN_TIMEOUT_S):  # page.evaluate itself has no timeout
            await context.add_init_script(FIRST_MEDIA)
            if today:
                await context.add_init_script(script="window.__giaobanPrepare = false;")
            page = await context.new_page()
            started = result.started = time.time() * 1000
            clicked = await _enter(page, url, token, audio=False, audio_only=audio_only)
            result.clicked = clicked - started
            # Polled from here (wait_for_function would evaluate a string, which the page's CSP
            # forbids); the times themselves are taken in the page.
            wanted = ("audio",) if audio_only else ("video", "audio")
            deadline = time.monotonic() + JOIN_TIMEOUT_S
            while True:
                first = await page.evaluate("window.__firstMedia")
                if all(first[kind] is not None for kind in wanted):
                    break
                if time.monotonic() > deadline:
                    missing = " and ".join(k for k in wanted if first[k] is None)
                    result.error = f"no remote {missing} within {JOIN_TIMEOUT_S:.0f} s"
                    break
                await asyncio.sleep(0.05)
            result.video = first["video"] - started if first["video"] is not None else None
            result.audio = first["audio"] - started if first["audio"] is not None else None
            result.decoded, result.video_packet, result.pli = (
                first["video"],
                first["videoPacket"],
                first["pli"],
            )
            marks = page.locator("#join-timing")
            if await marks.count():
                result.page = json.loads(await marks.text_content() or "{}")
    except Exception as exc:  # one failed join is a row in the table, not the end of the run
        result.error = result.error or _first_line(exc)
    finally:
        await context.close()
    return result


# --- the run --------------------------------------------------------------------------------------


async def _measure(servers: list[tuple[str, Meeting]], n: int, deadline: float) -> list[Mode]:
    from playwright.async_api import async_playwright

    path = chromium.executable()
    if path is None:
        raise RuntimeError(f"Chromium is not installed ({chromium.INSTALL_HINT})")
    chromium.isolate_playwright()
    modes = [Mode("full", False), Mode("full-today", False, server=1), Mode("audio-only", True)]
    async with async_playwright() as pw:
        browser = await chromium.launch(pw, path)
        try:
            chairs = []
            for url, meeting in servers:
                chair = await browser.new_context(viewport={"width": 1000, "height": 700}, locale="vi-VN")
                chairs.append(chair)
                page = await chair.new_page()
                await _enter(page, url, meeting.chair, audio=True)
                await page.wait_for_selector("#room:not([hidden])", timeout=START_TIMEOUT_S * 1000)
            await asyncio.sleep(2)  # the publishers' media flowing to the SFUs
            tokens = [iter(meeting.officers) for _, meeting in servers]
            for _ in range(n):
                for mode in modes:  # interleaved, so that a change in load hits every mode alike
                    if time.monotonic() > deadline:
                        break
                    url = servers[mode.server][0]
                    token = next(tokens[mode.server])
                    mode.joins.append(
                        await _one(browser, url, token, mode.audio_only, today=mode.server == 1)
                    )
            for chair in chairs:
                await chair.close()
        finally:
            await browser.close()
    return modes


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _p95(values: list[float]) -> float | None:
    """Nearest rank: with 10 values, the slowest."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0f}"


def _ratio(a: float | None, b: float | None) -> str:
    return "n/a" if a is None or b is None or b == 0 else f"×{a / b:.2f}"


def _first(join: Join, audio_only: bool) -> float | None:
    """The moment the person is in the meeting: first video frame, or first audio in audio-only."""
    return join.audio if audio_only else join.video


def _report(modes: list[Mode], n: int) -> int:
    """Print the table and the ratios; 1 if a join failed or an audio-only join decoded video."""
    status = 0
    print(
        f"{'mode':<11}{'joins':>6}{'ok':>4}{'pre-join':>9}{'video p50':>10}{'p95':>6}"
        f"{'audio p50':>10}{'p95':>6}{'first p50':>10}{'p95':>6}{'click→first p50':>16}{'p95':>6}",
        flush=True,
    )
    first: dict[str, list[float]] = {}
    after_click: dict[str, list[float]] = {}
    for mode in modes:
        ok = [j for j in mode.joins if not j.error]
        clicked = [j.clicked for j in ok if j.clicked is not None]
        video = [j.video for j in ok if j.video is not None]
        audio = [j.audio for j in ok if j.audio is not None]
        first[mode.name] = [t for j in ok if (t := _first(j, mode.audio_only)) is not None]
        after_click[mode.name] = [
            t - j.clicked
            for j in ok
            if (t := _first(j, mode.audio_only)) is not None and j.clicked is not None
        ]
        figures = [
            (_median(video), _p95(video)),
            (_median(audio), _p95(audio)),
            (_median(first[mode.name]), _p95(first[mode.name])),
        ]
        print(
            f"{mode.name:<11}{len(mode.joins):>6}{len(ok):>4}{_ms(_median(clicked)):>9}"
            + "".join(f"{_ms(p50):>10}{_ms(p95):>6}" for p50, p95 in figures)
            + f"{_ms(_median(after_click[mode.name])):>16}{_ms(_p95(after_click[mode.name])):>6}",
            flush=True,
        )
        for j in mode.joins:
            if j.error:
                print(f"  !!! a {mode.name} join failed: {j.error}", flush=True)
                status = 1
        if len(mode.joins) < n:
            print(
                f"  (stopped after {len(mode.joins)} of {n} joins: time budget {BUDGET_S:.0f} s)", flush=True
            )
        if mode.audio_only and video:
            print("  !!! audio-only joins decoded video", flush=True)
            status = 1
    print(
        "audio-only/full, first media from the link: "
        f"p50 {_ratio(_median(first['audio-only']), _median(first['full']))}, "
        f"p95 {_ratio(_p95(first['audio-only']), _p95(first['full']))}; "
        "from the click: "
        f"p50 {_ratio(_median(after_click['audio-only']), _median(after_click['full']))}, "
        f"p95 {_ratio(_p95(after_click['audio-only']), _p95(after_click['full']))}",
        flush=True,
    )
    if "full-today" in after_click:
        now, today = after_click["full"], after_click["full-today"]
        print(
            f"full as built vs today's join, from the click to the first frame: p50 {_ms(_median(now))} vs "
            f"{_ms(_median(today))} ms ({_ratio(_median(now), _median(today))}), p95 {_ms(_p95(now))} vs "
            f"{_ms(_p95(today))} ms ({_ratio(_p95(now), _p95(today))})",
            flush=True,
        )
    return status


# --- the join phase by phase -------------------------------------------------------------------

# Spans of the join: (what, from, to); moments are "goto" (page.goto of the link), "page:<mark>"
# (room/timing.js), "server:<phase>" (meetings.rtc.join) or "stats:packet|decoded" (getStats).
PHASES: list[tuple[str, str, str]] = [
    ("page load: link → room page's script", "goto", "page:script"),
    ("getUserMedia (pre-join preview)", "page:gum-start", "page:gum-done"),
    ("script → pre-join ready", "page:script", "page:prejoin-ready"),
    ("pre-join (before the click): offer created", "page:script", "page:offer-created"),
    ("pre-join (before the click): offer → ICE gathered", "page:offer-created", "page:ice-gathered"),
    ("click → join (and offer) sent", "page:click", "page:join-sent"),
    ("socket and join: click → welcome", "page:click", "page:welcome"),
    ("welcome → seated (room)", "page:welcome", "page:room"),
    ("seated → offer created", "page:room", "page:offer-created"),
    ("ICE gathering before the offer goes", "page:offer-created", "page:offer-sent"),
    ("offer on the socket", "page:offer-sent", "server:offer"),
    ("SFU: offer → answer", "server:offer", "server:answer"),
    ("answer on the socket", "server:answer", "page:answer"),
    ("click → answer", "page:click", "page:answer"),
    ("ICE checks: answer → ICE connected", "page:answer", "page:ice-connected"),
    ("DTLS: ICE → connected", "page:ice-connected", "page:dtls-connected"),
    ("first keyframe: connected → 1st video packet", "page:dtls-connected", "page:video-first-packet"),
    ("decode: 1st video packet → frame decoded", "page:video-first-packet", "stats:decoded"),
    ("first audio: connected → 1st audio packet", "page:dtls-connected", "page:audio-first-packet"),
    ("click → first frame decoded (total)", "page:click", "stats:decoded"),
    ("SFU: keyframe asked → DTLS connected", "server:keyframe-request", "server:dtls-connected"),
    (
        "SFU: DTLS connected → keyframe asked (again)",
        "server:dtls-connected",
        "server:keyframe-request-connected",
    ),
    ("SFU: that request → 1st video packet", "server:keyframe-request-connected", "page:video-first-packet"),
]


def _server_phases(path: Path) -> dict[str, dict[str, float]]:
    """The SFU's join phases by participant (wall clock, ms)."""
    found: dict[str, dict[str, float]] = {}
    if not path.exists():
        return found
    for line in path.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        found.setdefault(str(row["participant"]), {})[str(row["phase"])] = float(row["at"]) * 1000
    return found


def _moments(join: Join, server: dict[str, dict[str, float]]) -> dict[str, float]:
    """Every moment of one join, wall clock (ms)."""
    moments: dict[str, float] = {"goto": join.started}
    for name, value in join.page.items():
        if isinstance(value, int | float):
            moments[f"page:{name}"] = float(value)
    for name, value in server.get(str(join.page.get("participant", "")), {}).items():
        moments[f"server:{name}"] = value
    if join.video_packet is not None:
        moments["stats:packet"] = join.video_packet
    if join.decoded is not None:
        moments["stats:decoded"] = join.decoded
    return moments


def _phase_report(mode: Mode, server: dict[str, dict[str, float]]) -> None:
    """The phase table of one mode: each moment after the click, then each span."""
    joins = [_moments(j, server) for j in mode.joins if not j.error]
    if not joins:
        return
    print(f"\nThe join phase by phase ({mode.name}, {len(joins)} joins; ms, p50 / p95 by nearest rank):")
    after: dict[str, list[float]] = {}
    for moments in joins:
        click = moments.get("page:click")
        if click is None:
            continue
        for name, at in moments.items():
            after.setdefault(name, []).append(at - click)
    print(f"  {'moment (ms after the click)':<44}{'p50':>8}{'p95':>8}{'n':>4}")
    for name, values in sorted(after.items(), key=lambda kv: statistics.median(kv[1])):
        print(f"  {name:<44}{_ms(_median(values)):>8}{_ms(_p95(values)):>8}{len(values):>4}")
    print(f"  {'phase (ms spent)':<44}{'p50':>8}{'p95':>8}{'n':>4}")
    for label, start, end in PHASES:
        spans = [m[end] - m[start] for m in joins if start in m and end in m]
        if not spans:
            continue
        print(f"  {label:<44}{_ms(_median(spans)):>8}{_ms(_p95(spans)):>8}{len(spans):>4}")
    ok = [j for j in mode.joins if not j.error]
    unconnected = sum(
        1 for j in ok if "keyframe-unconnected" in server.get(str(j.page.get("participant", "")), {})
    )
    plis = [j.pli for j in ok if j.pli is not None]
    print(
        f"  a keyframe reached the SFU for a slot before its receiver was connected: {unconnected} of "
        f"{len(ok)} joins; PLIs the page sent before its first frame: "
        f"p50 {_ms(_median([float(p) for p in plis]))}, max {max(plis) if plis else 'n/a'}",
        flush=True,
    )


def _start(
    folder: Path, officers: int, today: bool
) -> tuple[multiprocessing.process.BaseProcess, multiprocessing.connection.Connection, str, Meeting, Path]:
    """One app process on its own seeded SQLite database: (process, channel, url, meeting, phases)."""
    from meetings.db.migrate import upgrade_sync

    name = "today" if today else "app"
    database_url = f"sqlite+aiosqlite:///{folder / f'{name}.sqlite3'}"
    upgrade_sync(database_url)
    meeting = asyncio.run(_seed(database_url, officers))
    spawn = multiprocessing.get_context("spawn")
    parent, child = spawn.Pipe()
    phases = folder / f"{name}-phases.jsonl"
    server = spawn.Process(
        target=_serve,
        args=(database_url, str(folder / f"{name}-var"), child, str(phases), today),
        daemon=True,
    )
    server.start()
    child.close()  # ours: a child that dies then reads as EOF at once
    try:
        if not parent.poll(START_TIMEOUT_S):
            raise RuntimeError(f"the app did not start within {START_TIMEOUT_S:.0f} s")
        try:
            url = f"http://{HOST}:{parent.recv()}"
        except EOFError:
            raise RuntimeError("the app process exited at start (its error is above)") from None
    except BaseException:
        _stop(server, parent)
        raise
    return server, parent, url, meeting, phases


def _stop(server: multiprocessing.process.BaseProcess, parent: multiprocessing.connection.Connection) -> None:
    with contextlib.suppress(OSError):
        parent.send("stop")
    server.join(15)
    if server.is_alive():
        server.terminate()
        server.join(5)
    parent.close()


def run(sizes: Sequence[int]) -> int:
    """For each size N: N joins per mode (full, full as before #18, audio-only), then the tables."""
    status = 0
    for n in sizes:
        began = time.monotonic()
        folder = Path(tempfile.mkdtemp(prefix="bench-join-"))
        started: list[tuple[multiprocessing.process.BaseProcess, multiprocessing.connection.Connection]] = []
        try:
            servers: list[tuple[str, Meeting]] = []
            phase_files: list[Path] = []
            for today in (False, True):
                server, parent, url, meeting, phases = _start(folder, 2 * n, today)
                started.append((server, parent))
                servers.append((url, meeting))
                phase_files.append(phases)
            print(
                f"Join benchmark: {n} joins per mode from the invitation link (fresh context each), one "
                f"publisher per app (the chair, camera and microphone on); two apps in their own "
                f"processes, {servers[0][0]} as built and {servers[1][0]} with today's join "
                f"(full-today: peer connection after welcome, offer after room, keyframe asked at slot "
                f"assignment) (SQLite); {THINK_S:.1f} s on the pre-join screen; headless Chromium, fake "
                f"devices; {os.cpu_count()} CPUs, load average "
                f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}. Times in ms from page.goto(link): "
                "pre-join = 'Join now' clicked; video = first remote frame decoded; audio = first "
                f"remote audio samples; first = what the mode waits for (full: video, audio-only: audio); "
                f"click→first: from 'Join now' to it. p95 by nearest rank (of {n}: the slowest).",
                flush=True,
            )
            measuring = _measure(servers, n, began + BUDGET_S)
            # Joins stop starting at the budget; the one under way and the tear-down may finish.
            modes = asyncio.run(asyncio.wait_for(measuring, BUDGET_S + 2 * JOIN_TIMEOUT_S + START_TIMEOUT_S))
            status = max(status, _report(modes, n))
            server_phases = [_server_phases(path) for path in phase_files]
            for mode in modes:
                _phase_report(mode, server_phases[mode.server])
            print(f"({time.monotonic() - began:.0f} s in all)", flush=True)
        finally:
            for server, parent in started:
                _stop(server, parent)
            shutil.rmtree(folder, ignore_errors=True)
    return status
