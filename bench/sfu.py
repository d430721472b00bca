"""``python -m bench sfu [--sizes 10,20,40,60] [--quick]``: the media plane under a city meeting's load.

N endpoints, 4 publishing video (pre-encoded VP8, ~500 kbps, 25 fps, looped; a PLI makes the
loop jump to its keyframe) and 3 speaking (a precomputed tone, Opus-encoded by aiortc, which
also writes the RFC 6464 level the SFU selects on), everyone receiving 3 audio and 4 video slots.
The SFU runs in its own process; the endpoints are spread over ``GENERATORS`` load-generator
processes (most endpoints only receive). ICE runs on 127.0.0.1 only, in every process.
Each N is one bounded run: set-up (time-limited), a warm-up, a fixed measuring window, a late
joiner's keyframe time, tear-down. By default the sizes go on past 60 (``ESCALATE``) until the
server process reaches one full core, the load generators saturate, or ``MAX_N``.
Then, at 60 endpoints (and 120 when reached), the three forwarding paths side by side,
``COMPARE_ROUNDS`` times alternating, in µs of SFU CPU per RTP packet the receivers got (as an
external harness measures), with loss: the C path as shipped (``packet``), the C path before
issue #18 item 4 (``c-today``) and the Python reference (``python``); and simulcast publishers
against single-layer forwarding (``single``, ``simulcast``, ``sc-today``), issue #16's target.
Then, on a small scenario, the same load through the packet-level SFU, the frame-level path
(jitter buffer + re-packetisation) and aiortc's ``MediaRelay`` (decode + re-encode), and ratios.
"""

from __future__ import annotations

import asyncio
import contextlib
import cProfile
import fractions
import logging
import math
import multiprocessing
import multiprocessing.connection
import os
import random
import time
from array import array
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import av
from aiortc import (
    MediaStreamTrack,
    RTCBundlePolicy,
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpCodecParameters,
    RTCRtpHeaderExtensionParameters,
    RTCRtpParameters,
    RTCRtpTransceiver,
    RTCSessionDescription,
)
from aiortc.contrib.media import MediaRelay
from aiortc.mediastreams import MediaStreamError
from aiortc.rtp import (
    RTCP_PSFB_PLI,
    HeaderExtensionsMap,
    RtcpPsfbPacket,
    RtcpRrPacket,
    RtcpSrPacket,
    RtpPacket,
)

from meetings.rtc import internals
from meetings.rtc.forwarder import is_keyframe
from meetings.rtc.framelevel import EncodedFrameTrack

if TYPE_CHECKING:  # the SFU itself is imported by the server process only
    from meetings.rtc.sfu import SfuEvent

NAME = "sfu"
DEFAULT_SIZES = [10, 20, 40, 60]
QUICK_SIZES = [10, 20]
ESCALATE = [80, 100, 120]  # after the defaults, while the server is under one core
MAX_N = 120
VIDEO_PUBLISHERS = 4
SPEAKERS = 3
AUDIO_SLOTS = 3
VIDEO_SLOTS = 4
GENERATORS = 4  # load-generator processes
WARMUP_S = 3.0  # after every endpoint joined, before measuring
# Simulcast against single-layer forwarding: measured once the 60 receivers' bandwidth estimates
# have settled. They all join within seconds, and for the next ~10 s each ramps from its first
# estimate to the top layer: probes, padding, layer switches and keyframes, once per join in a
# meeting, which at 3 s made a third of the difference (docs/media.md, "Simulcast CPU").
SETTLED_WARMUP_S = 15.0
MEASURE_S = 8.0
QUICK_MEASURE_S = 4.0
KEYFRAME_WAIT_S = 3.0
SMALL_N = 5  # the three-way comparison: 2 video publishers, 2 speakers, everyone receiving
SATURATED_PCT = 90.0  # a load generator this busy caps the packet rate
COMPARE_ROUNDS = 3  # the side-by-side comparisons: each mode this many times, alternating; medians


def loopback_only() -> None:
    """ICE gathers 127.0.0.1 only (as in tests/conftest.py): the benchmark never leaves loopback."""
    import aioice.ice

    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]


def _configuration() -> RTCConfiguration:
    # No STUN server (aiortc would default to a public one): host candidates on loopback only.
    return RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)


# --- media --------------------------------------------------------------------------------


def preencode_vp8(
    frames: int = 50, width: int = 320, height: int = 240, bitrate: int = 500_000
) -> list[bytes]:
    """A two-second VP8 loop (one keyframe) at ~``bitrate`` (500 kbps), encoded once."""
    codec = av.CodecContext.create("libvpx", "w")
    codec.width, codec.height = width, height
    codec.pix_fmt = "yuv420p"
    codec.bit_rate = bitrate
    codec.time_base = fractions.Fraction(1, 25)
    codec.gop_size = frames
    codec.options = {
        "deadline": "realtime",
        "cpu-used": "8",
        "lag-in-frames": "0",
        "minrate": str(bitrate),
        "maxrate": str(bitrate),
        "bufsize": str(bitrate),
    }
    out: list[bytes] = []
    seed = 1
    for i in range(frames):
        frame = av.VideoFrame(width=width, height=height, format="yuv420p")
        luma = frame.planes[0]
        rows = []
        x = (i * 6) % (width - 64)
        for y in range(luma.buffer_size // luma.line_size):
            row = bytearray([90 + y // 4]) * luma.line_size
            if 80 <= y < 144:  # a moving textured block: some motion to encode
                seed = (seed * 1103515245 + 12345) & 0x7FFFFFFF
                row[x : x + 64] = bytes((seed >> (k % 17)) & 0xFF for k in range(64))
            rows.append(bytes(row))
        luma.update(b"".join(rows))
        for chroma in frame.planes[1:]:
            chroma.update(bytes([128]) * chroma.buffer_size)
        frame.pts = i
        frame.time_base = codec.time_base
        out.extend(bytes(p) for p in codec.encode(frame))
    return out


class LoopedVideo(MediaStreamTrack):
    """Pre-encoded VP8 at 25 fps, looped; ``keyframe()`` restarts the loop at its keyframe."""

    kind = "video"

    def __init__(self, frames: list[bytes]) -> None:
        super().__init__()
        self._frames = frames
        self._n = 0
        self._pos = 0
        self._start = 0.0

    def keyframe(self) -> None:
        self._pos = 0

    async def recv(self) -> Any:
        if self.readyState != "live":
            raise MediaStreamError
        if self._n == 0:
            self._start = time.time()
        else:
            await asyncio.sleep(self._start + self._n / 25 - time.time())
        packet = av.Packet(self._frames[self._pos % len(self._frames)])
        packet.pts = self._n * 3600
        packet.time_base = fractions.Fraction(1, 90000)
        self._n += 1
        self._pos += 1
        return packet


class _KeyframeOnRequest(internals.SenderFeedback):
    """A publisher's answer to the SFU's PLI: the looped video jumps to its keyframe."""

    def __init__(self, track: LoopedVideo) -> None:
        self._track = track

    async def on_keyframe_request(self) -> None:
        self._track.keyframe()


# The page's camera layers (docs/media.md, "Simulcast from the browser"): rid, size, bitrate.
SIMULCAST_LAYERS = (("q", 160, 90, 100_000), ("h", 320, 180, 300_000), ("f", 640, 360, 800_000))
VP8_PACKET_MAX = 1300  # payload bytes per packet, descriptor included (aiortc's VP8 packetiser)


def preencode_simulcast(frames: int = 50) -> list[list[bytes]]:
    """One pre-encoded loop per simulcast layer (``SIMULCAST_LAYERS``), lowest first."""
    return [preencode_vp8(frames, width, height, bitrate) for _, width, height, bitrate in SIMULCAST_LAYERS]


def vp8_payloads(frame: bytes, picture_id: int) -> list[bytes]:
    """A VP8 frame cut into RTP payloads as aiortc does: a 4-byte descriptor with the 15-bit
    picture id on each, the start bit on the first."""
    step = VP8_PACKET_MAX - 4
    pid = bytes([0x80 | (picture_id >> 8) & 0x7F, picture_id & 0xFF])
    return [
        bytes([0x90 if pos == 0 else 0x80, 0x80]) + pid + frame[pos : pos + step]
        for pos in range(0, len(frame), step)
    ]


def _section(sdp: str, mid: str) -> list[str]:
    """The lines of the m-section of ``sdp`` with ``a=mid:<mid>``."""
    for section in sdp.replace("\r\n", "\n").split("\nm=")[1:]:
        lines = section.split("\n")
        if f"a=mid:{mid}" in lines:
            return lines
    return []


class SimulcastCamera:
    """A camera published as VP8 simulcast as Chromium sends it, written by hand (aiortc sends
    one encoding per track, so its video transceiver carries no track here).

    ``offer`` adds ``a=rid:<rid> send`` per layer and ``a=simulcast:send q;h;f`` to the video
    m-section and drops its ``a=ssrc`` lines (Chromium announces none for simulcast). After the
    answer, ``start`` sends each layer's pre-encoded loop at 25 fps on its own SSRC through the
    connection's SRTP session (``internals.rtp_wire``: real SRTP on the wire), with the mid and
    abs-send-time extensions on every packet and the rtp-stream-id one until a receiver report
    names the layer's SSRC (as Chromium). A PLI for a layer's SSRC restarts that layer's loop at
    its keyframe. No retransmissions (loopback).

    Dynacast as the page does it (``Call.setLayers`` in web/static/js/room/call.js, on the
    server's ``layers_wanted``): ``set_layers(mid, rids)`` stops sending the layers whose rid
    is not listed (Chromium's ``encodings[i].active = false``: no packets at all on that SSRC)
    and starts the listed ones again, each resumed layer from its loop's keyframe (a re-enabled
    simulcast encoder starts with one). A mid that is not this camera's changes nothing.
    """

    def __init__(self, loops: list[list[bytes]], rids: tuple[str, ...] = ("q", "h", "f")) -> None:
        internals.negotiate_stream_ids()  # the offer must carry the rtp-stream-id extension
        self.loops, self.rids = loops, rids
        self.ssrcs = random.sample(range(1, 1 << 32), len(loops))
        self._seq = [random.getrandbits(16) for _ in loops]
        self._ts0 = [random.getrandbits(32) for _ in loops]
        self._picture = [random.getrandbits(15) for _ in loops]
        self._pos = [0] * len(loops)
        self.acked = [False] * len(loops)  # a receiver report named the layer: no rid any more
        self.sent = [0] * len(loops)  # packets per layer
        self.keyframe_requests = 0
        self.active = [True] * len(loops)  # encodings on: what the last layers_wanted listed
        self.mid: str | None = None  # the video m-section's mid, once offered
        self._task: asyncio.Task[None] | None = None

    def offer(self, sdp: str, mid: str) -> str:
        """The offer with this camera's layers declared on the video m-section ``mid``."""
        self.mid = mid  # known from here on, as the page's: layers_wanted may come before the answer
        newline = "\r\n" if "\r\n" in sdp else "\n"
        sections = sdp.split(newline + "m=")
        for i, section in enumerate(sections):
            lines = section.split(newline)
            if i == 0 or f"a=mid:{mid}" not in lines:
                continue
            tail = []
            while lines and lines[-1] == "":
                tail.append(lines.pop())
            lines = [line for line in lines if not line.startswith(("a=ssrc:", "a=ssrc-group:"))]
            lines += [f"a=rid:{rid} send" for rid in self.rids]
            lines.append("a=simulcast:send " + ";".join(self.rids))
            sections[i] = newline.join(lines + tail)
        return (newline + "m=").join(sections)

    def start(self, transceiver: RTCRtpTransceiver, answer: str) -> None:
        """Start sending on the transceiver's (bundled) transport, as the answer negotiated."""
        mid = transceiver.mid or ""
        lines = _section(answer, mid)
        payload_type = next(
            int(x[9:].split()[0]) for x in lines if x.startswith("a=rtpmap:") and " VP8/" in x
        )
        extensions = [
            RTCRtpHeaderExtensionParameters(id=int(x[9:].split()[0]), uri=x.split()[1])
            for x in lines
            if x.startswith("a=extmap:")
        ]
        extension_map = HeaderExtensionsMap()
        extension_map.configure(RTCRtpParameters(headerExtensions=extensions))
        transport = transceiver.sender.transport
        internals.observe_received_rtcp(transport, self._on_rtcp)
        wire = internals.rtp_wire(transport)
        self._task = asyncio.create_task(self._run(wire, extension_map, payload_type, mid))

    def set_layers(self, mid: str, rids: Sequence[str]) -> bool:
        """Send only the layers named in ``rids`` (the SFU's ``LayersWanted``); whether ``mid``
        is this camera's video m-section."""
        if self.mid is None or mid != self.mid:
            return False
        for i, rid in enumerate(self.rids):
            on = rid in rids
            if on and not self.active[i]:
                self._pos[i] = 0  # a re-enabled encoding starts with a keyframe
            self.active[i] = on
        return True

    def _on_rtcp(self, packet: Any) -> None:
        if (
            isinstance(packet, RtcpPsfbPacket)
            and packet.fmt == RTCP_PSFB_PLI
            and packet.media_ssrc in self.ssrcs
        ):
            self._pos[self.ssrcs.index(packet.media_ssrc)] = 0
            self.keyframe_requests += 1
        elif isinstance(packet, (RtcpRrPacket, RtcpSrPacket)):
            for report in packet.reports:
                if report.ssrc in self.ssrcs:
                    self.acked[self.ssrcs.index(report.ssrc)] = True

    async def _run(
        self, wire: internals.RtpWire, extension_map: HeaderExtensionsMap, pt: int, mid: str
    ) -> None:
        start, n = time.time(), 0
        while True:
            await asyncio.sleep(start + n / 25 - time.time())
            send_time = internals.abs_send_time()
            for i, loop in enumerate(self.loops):
                if not self.active[i]:
                    continue  # an inactive encoding sends nothing
                payloads = vp8_payloads(loop[self._pos[i] % len(loop)], self._picture[i])
                timestamp = (self._ts0[i] + n * 3600) & 0xFFFFFFFF
                for k, payload in enumerate(payloads):
                    packet = RtpPacket(
                        payload_type=pt,
                        marker=int(k == len(payloads) - 1),
                        sequence_number=self._seq[i],
                        timestamp=timestamp,
                        ssrc=self.ssrcs[i],
                    )
                    packet.extensions.mid = mid
                    packet.extensions.abs_send_time = send_time
                    if not self.acked[i]:
                        packet.extensions.rtp_stream_id = self.rids[i]
                    try:
                        wire.send(packet.serialize(extension_map), payload)
                    except ConnectionError:
                        break  # not connected (yet): the frame is skipped
                    self._seq[i] = (self._seq[i] + 1) & 0xFFFF
                    self.sent[i] += 1
                self._pos[i] += 1
                self._picture[i] = (self._picture[i] + 1) & 0x7FFF
            n += 1

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


def tone_loop(hz: float, amplitude: float) -> list[bytes]:
    """One second of a tone as 50 frames of 20 ms (s16 mono, 48 kHz), computed once."""
    frames = []
    for f in range(50):
        pcm = array(
            "h",
            (int(math.sin(2 * math.pi * hz * (f * 960 + i) / 48000) * 32767 * amplitude) for i in range(960)),
        )
        frames.append(pcm.tobytes())
    return frames


class Tone(MediaStreamTrack):
    """A precomputed tone (whole hertz, so a one-second loop is seamless); aiortc encodes it."""

    kind = "audio"

    def __init__(self, amplitude: float, hz: int) -> None:
        super().__init__()
        self._frames = tone_loop(hz, amplitude)
        self._pts, self._start = 0, 0.0

    async def recv(self) -> Any:
        if self.readyState != "live":
            raise MediaStreamError
        if self._pts == 0:
            self._start = time.time()
        else:
            await asyncio.sleep(self._start + self._pts / 48000 - time.time())
        frame = av.AudioFrame(format="s16", layout="mono", samples=960)
        frame.planes[0].update(self._frames[(self._pts // 960) % len(self._frames)])
        frame.sample_rate = 48000
        frame.pts = self._pts
        frame.time_base = fractions.Fraction(1, 48000)
        self._pts += 960
        return frame


# --- process plumbing ---------------------------------------------------------------------


PUSH = "push"  # a message the server sends unasked on a join pipe: ("push", kind, *args)


class _Channel:
    """One end of a multiprocessing pipe, read from the event loop (no thread per pipe).

    ``on_push`` takes the messages tagged ``PUSH`` (the SFU's events for a load generator's
    endpoints) as they arrive, so that they never stand in for the answer ``ask`` waits for.
    """

    def __init__(
        self,
        conn: multiprocessing.connection.Connection,
        on_push: Callable[[tuple[Any, ...]], None] | None = None,
    ) -> None:
        self.conn = conn
        self._on_push = on_push
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        asyncio.get_running_loop().add_reader(conn.fileno(), self._readable)

    def _readable(self) -> None:
        try:
            while self.conn.poll():
                message = self.conn.recv()
                if self._on_push is not None and isinstance(message, tuple) and message[:1] == (PUSH,):
                    self._on_push(message[1:])
                    continue
                self._queue.put_nowait(message)
        except (EOFError, OSError):
            asyncio.get_running_loop().remove_reader(self.conn.fileno())
            self._queue.put_nowait(None)

    async def recv(self, within: float | None = None) -> Any:
        return await asyncio.wait_for(self._queue.get(), within)

    def send(self, message: Any) -> None:
        self.conn.send(message)

    async def ask(self, *message: Any, within: float = 30.0) -> Any:
        self.send(message)
        return await self.recv(within)

    def close(self) -> None:
        asyncio.get_running_loop().remove_reader(self.conn.fileno())
        self.conn.close()


def _rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


# --- the server process -------------------------------------------------------------------


def push_message(event: SfuEvent) -> tuple[Any, ...] | None:
    """What the server pushes to the load generator of the endpoint an SFU event is for, or
    None. As ``MeetingSession.on_media``: the SFU's ``LayersWanted`` goes to the publisher it
    names only (the page's ``layers_wanted``: ``mid``, ``rids``)."""
    from meetings.rtc.sfu import LayersWanted

    if isinstance(event, LayersWanted):
        return (PUSH, "layers_wanted", event.participant, event.mid, tuple(event.rids))
    return None


def deliver_push(endpoints: Mapping[str, _Endpoint], message: tuple[Any, ...]) -> None:
    """A pushed message (``push_message`` without its tag) to the endpoint it names, as the
    page handles it; one for an endpoint this process does not hold is dropped."""
    kind, name, *args = message
    endpoint = endpoints.get(name)
    if kind == "layers_wanted" and endpoint is not None:
        endpoint.layers_wanted(*args)


PACKET_MODES = ("packet", "python", "single", "simulcast", "sc-top")
# bench/simulcast.py's modes, all on the C path. "single": single-layer publishers, adaptation
# off (the forwarding before issue #16); "simulcast": simulcast publishers, each receiver's
# layers from the allocation (SfuConfig's default), half of the receivers reporting small
# tiles; "sc-top": simulcast publishers, adaptation off (every slot the top layer).
SIMULCAST_MODES = ("simulcast", "sc-top")
# Today's C path (before issue #18 item 4) for the side-by-side: the same mode with
# SfuConfig(direct_paced=False), every packet of a paced receiver through the Python queue.
TODAY_MODES = {"c-today": "packet", "sc-today": "simulcast"}


def base_mode(mode: str) -> str:
    """The mode a "today" mode is the earlier path of (itself for the others)."""
    return TODAY_MODES.get(mode, mode)


SMALL_TILE = (160, 90)  # what half of the receivers report in "simulcast" mode (odd endpoints)
LARGE_TILE = (640, 360)


def _server(
    control: multiprocessing.connection.Connection,
    generators: list[multiprocessing.connection.Connection],
    mode: str,
) -> None:
    loopback_only()
    if pidfile := os.environ.get("BENCH_SFU_SERVER_PIDFILE"):  # for profiling: py-spy record --pid
        with open(pidfile, "w") as f:
            f.write(str(os.getpid()))
    if log := os.environ.get("BENCH_SFU_LOG"):  # the SFU's debug log (estimates, probes, layers)
        logging.basicConfig(
            filename=f"{log}.{mode}", level=logging.DEBUG, format="%(relativeCreated)d %(name)s %(message)s"
        )
        for noisy in ("aioice", "aiortc"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
    asyncio.run(_serve(control, generators, mode))


async def _serve(
    control_conn: multiprocessing.connection.Connection,
    generator_conns: list[multiprocessing.connection.Connection],
    mode: str,
) -> None:
    from meetings.rtc.sfu import Sfu, SfuConfig, offered_media

    # The join pipe of the load generator that holds each endpoint: where its events go.
    owners: dict[str, _Channel] = {}

    pushed = [0]  # LayersWanted events told to publishers

    def on_event(event: SfuEvent) -> None:
        message = push_message(event)
        if message is not None and (channel := owners.get(message[2])):
            pushed[0] += 1
            channel.send(message)

    # "packet": the packet-level SFU as shipped (C fan-out); "python": the same on its Python core.
    direct_paced = mode not in TODAY_MODES
    mode = base_mode(mode)
    adaptive = mode not in ("single", "sc-top")
    sfu = Sfu(
        SfuConfig(
            video_last_n=VIDEO_SLOTS, native=mode != "python", adaptive=adaptive, direct_paced=direct_paced
        ),
        on_event=on_event,
    )
    delays: dict[bool, list[float]] = {False: [], True: []}
    lags: list[float] = []
    sampling = [False]

    def probe(video: bool, seconds: float) -> None:
        if sampling[0]:
            delays[video].append(seconds)

    sfu.delay_probe = probe
    room = _BaselineRoom(mode) if mode not in PACKET_MODES else None
    # CPU seconds in the SFU's tick (selection, allocation, upkeep) and in the allocation alone.
    tick_cpu = {"tick": 0.0, "adapt": 0.0}

    def timed(step: Callable[..., None], *keys: str) -> Callable[..., None]:
        def run(*args: Any) -> None:
            start = time.process_time()
            try:
                step(*args)
            finally:
                for key in keys:
                    tick_cpu[key] += time.process_time() - start

        return run

    sfu._select = timed(sfu._select, "tick")  # type: ignore[method-assign]
    sfu._adapt = timed(sfu._adapt, "tick", "adapt")  # type: ignore[method-assign]
    sfu._maintain = timed(sfu._maintain, "tick")  # type: ignore[method-assign]

    async def lag_sampler() -> None:
        # How late the event loop runs a 10 ms timer: what a packet waits before it is read.
        while True:
            start = time.monotonic()
            await asyncio.sleep(0.01)
            if sampling[0]:
                lags.append(time.monotonic() - start - 0.01)

    async def serve_joins(channel: _Channel) -> None:
        while (message := await channel.recv()) is not None:
            _, name, sdp, sources = message
            if room is None:
                owners[name] = channel
                channel.send(await sfu.join(name, sdp, sources))
                if mode == "simulcast":  # as the page would: the rendered size of each video tile
                    tile = SMALL_TILE if int(name[1:]) % 2 else LARGE_TILE
                    mids = [m for m, kind, d in offered_media(sdp) if kind == "video" and d == "recvonly"]
                    sfu.set_tile_sizes(name, dict.fromkeys(mids, tile))
            else:
                channel.send((await room.join(RTCSessionDescription(sdp=sdp, type="offer"))).sdp)

    # BENCH_SFU_PROFILE=<path>: the server's cProfile statistics over the measuring window, in
    # <path>.<mode> (read with pstats); the profiler's own cost inflates every figure.
    profile = os.environ.get("BENCH_SFU_PROFILE")
    profiler = cProfile.Profile() if profile else None
    control = _Channel(control_conn)
    joiners = [asyncio.create_task(serve_joins(_Channel(c))) for c in generator_conns]
    sampler = asyncio.create_task(lag_sampler())
    while (message := await control.recv()) is not None:
        command, *args = message
        if command == "sample":
            sampling[0] = bool(args[0])
            if profiler is not None and sampling[0]:  # the measuring window only
                profiler.enable()
            elif profiler is not None:
                profiler.disable()
            control.send(None)
        elif command == "stats":
            stats = sfu.stats() if room is None else {}
            control.send(
                {
                    "cpu": time.process_time(),
                    "sys": os.times().system,
                    "rss": _rss_mib(),
                    "sent": stats.get("sent", 0),
                    "received": stats.get("received", 0),
                    "audio_delays": delays[False][-50000:],
                    "video_delays": delays[True][-50000:],
                    "lags": lags[-5000:],
                    "layers": _layer_mix(sfu) if room is None else {},
                    "dropped": stats.get("dropped_video", 0),
                    "keyframe_requests": sfu.keyframe_requests,
                    "layers_wanted": pushed[0],
                    "tick_cpu": tick_cpu["tick"],
                    "adapt_cpu": tick_cpu["adapt"],
                }
            )
            delays[False].clear()
            delays[True].clear()
            lags.clear()
        elif command == "close":
            break
    if profiler is not None:
        profiler.dump_stats(f"{profile}.{mode}")
    sampler.cancel()
    for task in joiners:
        task.cancel()
    await sfu.close()
    if room is not None:
        await room.close()
    control.send(None)


def _layer_mix(sfu: Any) -> dict[str, int]:
    """How many video slots carrying a stream forward each spatial layer now ("0" lowest; a
    single-layer stream is "0"); "-": none (paused, or waiting for the layer's keyframe)."""
    mix: Counter[str] = Counter()
    streams = sfu.streams()
    for name in sfu.participants():
        for mid, carried in sfu.assignments(name).items():
            if carried is None or streams.get(f"{carried[0]}/{carried[1]}", (None, None))[1] != "video":
                continue
            layer = sfu.forwarded_layer(name, mid)
            mix["-" if layer is None else str(layer)] += 1
    return dict(mix)


class _BaselineRoom:
    """Frame-level or MediaRelay forwarding: publishers join first, slots take tracks in order."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.relay = MediaRelay()
        self.pcs: list[RTCPeerConnection] = []
        self.tracks: dict[str, list[Any]] = {"audio": [], "video": []}
        self.frame_sinks: dict[int, list[EncodedFrameTrack]] = {}

    async def join(self, offer: RTCSessionDescription) -> RTCSessionDescription:
        pc = RTCPeerConnection(_configuration())
        self.pcs.append(pc)
        await pc.setRemoteDescription(offer)
        mine: list[Any] = []
        taken = {"audio": 0, "video": 0}
        for t in pc.getTransceivers():
            direction = _offered_direction(offer.sdp, t.mid or "")
            if direction in ("sendonly", "sendrecv"):
                if self.mode == "frame":
                    key = id(t)
                    self.frame_sinks[key] = []
                    sinks = self.frame_sinks[key]

                    def on_frame(
                        codec: RTCRtpCodecParameters, data: bytes, ts: int, sinks: Any = sinks
                    ) -> None:
                        for sink in sinks:
                            sink.push(data, ts)

                    internals.tap_receiver_frames(t.receiver, on_frame)
                    self.tracks[t.kind].append(key)
                else:
                    self.tracks[t.kind].append(t.receiver.track)
                mine.append(self.tracks[t.kind][-1])
            if direction in ("recvonly", "sendrecv"):
                others = [x for x in self.tracks[t.kind] if all(x is not m for m in mine)]
                if taken[t.kind] < len(others):
                    source = others[taken[t.kind]]
                    taken[t.kind] += 1
                    if self.mode == "frame":
                        track = EncodedFrameTrack(t.kind, 48000 if t.kind == "audio" else 90000)
                        self.frame_sinks[source].append(track)
                        t.sender.replaceTrack(track)
                    else:
                        t.sender.replaceTrack(self.relay.subscribe(source, buffered=False))
                    t.direction = "sendrecv" if direction == "sendrecv" else "sendonly"
        await pc.setLocalDescription(await pc.createAnswer())
        return pc.localDescription

    async def close(self) -> None:
        for pc in self.pcs:
            await pc.close()


def _offered_direction(sdp: str, mid: str) -> str:
    for section in sdp.split("\nm=")[1:]:
        if f"a=mid:{mid}\r" in section or f"a=mid:{mid}\n" in section:
            for d in ("sendrecv", "sendonly", "recvonly", "inactive"):
                if f"a={d}" in section:
                    return d
    return "sendrecv"


# --- the load generators ------------------------------------------------------------------


@dataclass
class _Load:
    """What one load-generator process sent and received (e2e only for its own publishers)."""

    sent_at: dict[bytes, float] = field(default_factory=dict)
    order: deque[bytes] = field(default_factory=deque)
    received: int = 0
    e2e: dict[str, list[float]] = field(default_factory=lambda: {"audio": [], "video": []})
    sampling: bool = False

    def note_sent(self, payload: bytes) -> None:
        if not self.sampling:
            return
        self.sent_at[payload] = time.monotonic()
        self.order.append(payload)
        if len(self.order) > 20000:
            self.sent_at.pop(self.order.popleft(), None)

    def note_received(self, kind: str, payload: bytes) -> None:
        self.received += 1
        if self.sampling:
            sent = self.sent_at.get(payload)
            if sent is not None:
                self.e2e[kind].append(time.monotonic() - sent)


@dataclass(frozen=True)
class _Spec:
    name: str
    video: bool
    tone: float | None
    full: bool = True  # False: a cheap receiver that counts its SRTP datagrams and never decrypts
    simulcast: bool = False  # its camera is three simulcast layers (SimulcastCamera)


class _Endpoint:
    def __init__(
        self, spec: _Spec, load: _Load, video: list[bytes], layers: list[list[bytes]] | None = None
    ) -> None:
        self.name = spec.name
        self.load = load
        self.full = spec.full
        self.publishing = False
        self.video_track: LoopedVideo | None = None
        self.camera: SimulcastCamera | None = None
        self.camera_transceiver: RTCRtpTransceiver | None = None
        if spec.video and spec.simulcast:
            assert layers is not None, "a simulcast publisher needs its layers' loops"
            self.camera = SimulcastCamera(layers)  # before the peer connection: the rid extension
        self.pc = RTCPeerConnection(_configuration())
        if spec.tone is not None:
            self.pc.addTransceiver(Tone(spec.tone, 440 + 37 * int(spec.name[1:])), direction="sendonly")
            self.publishing = True
        if self.camera is not None:
            self.camera_transceiver = self.pc.addTransceiver("video", direction="sendonly")
            self.publishing = True
        elif spec.video:
            self.video_track = LoopedVideo(video)
            self.pc.addTransceiver(self.video_track, direction="sendonly")
            self.publishing = True
        self.slots = [self.pc.addTransceiver("audio", direction="recvonly") for _ in range(AUDIO_SLOTS)]
        self.slots += [self.pc.addTransceiver("video", direction="recvonly") for _ in range(VIDEO_SLOTS)]
        self.keyframes: dict[int, float] = {}  # video slot index -> first keyframe time
        self.expect_keyframes = VIDEO_SLOTS
        self.keyframes_done = asyncio.Event()
        self.connected_at: float | None = None
        for index, t in enumerate(self.slots):
            self._count(index, t)
        if self.video_track is not None:
            sender = self.pc.getTransceivers()[1 if spec.tone is not None else 0].sender
            internals.tap_sender_rtcp(sender, _KeyframeOnRequest(self.video_track))

        @self.pc.on("connectionstatechange")
        def on_state() -> None:
            if self.pc.connectionState == "connected" and self.connected_at is None:
                self.connected_at = time.monotonic()

    def _count(self, index: int, t: RTCRtpTransceiver) -> None:
        kind = t.kind

        def on_packet(packet: internals.RtpPacket, codec: RTCRtpCodecParameters) -> None:
            self.load.note_received(kind, packet.payload)
            if kind == "video" and index not in self.keyframes and is_keyframe(codec.name, packet.payload):
                self.keyframes[index] = time.monotonic()
                if len(self.keyframes) >= self.expect_keyframes:
                    self.keyframes_done.set()

        internals.tap_receiver(t.receiver, on_packet)  # count, never decode

    def layers_wanted(self, mid: str, rids: Sequence[str]) -> None:
        """The server's ``layers_wanted`` for this endpoint (the page's handler): only the listed
        layers of its camera go on; another mid changes nothing."""
        if self.camera is not None:
            self.camera.set_layers(mid, rids)

    def _count_datagram(self, size: int) -> bool:
        self.load.received += 1
        return False

    async def connect(self, server: _Channel) -> None:
        async def join(name: str, sdp: str) -> str:
            return str(await server.ask("join", name, sdp, {}))

        await self.join(join)

    async def join(self, join: Callable[[str, str], Awaitable[str]]) -> None:
        """Offer, get the answer from ``join(name, offer_sdp)``, apply it, start the camera."""
        await self.pc.setLocalDescription(await self.pc.createOffer())
        if self.publishing:
            internals.observe_sent_rtp(
                self.pc.getTransceivers()[0].sender.transport, lambda p: self.load.note_sent(p.payload)
            )
        if not self.full:
            internals.divert_received_rtp(
                self.pc.getTransceivers()[0].receiver.transport, self._count_datagram
            )
        offer = self.pc.localDescription.sdp
        if self.camera is not None and self.camera_transceiver is not None:
            offer = self.camera.offer(offer, self.camera_transceiver.mid or "")
        answer = await join(self.name, offer)
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        if self.camera is not None and self.camera_transceiver is not None:
            self.camera.start(self.camera_transceiver, answer)

    async def close(self) -> None:
        if self.camera is not None:
            await self.camera.stop()
        await self.pc.close()


def _generator(
    control: multiprocessing.connection.Connection,
    server: multiprocessing.connection.Connection,
    specs: list[_Spec],
    video: list[bytes],
    layers: list[list[bytes]] | None = None,
) -> None:
    loopback_only()
    asyncio.run(_generate(control, server, specs, video, layers))


async def _generate(
    control_conn: multiprocessing.connection.Connection,
    server_conn: multiprocessing.connection.Connection,
    specs: list[_Spec],
    video: list[bytes],
    layers: list[list[bytes]] | None = None,
) -> None:
    load = _Load()
    endpoints = [_Endpoint(spec, load, video, layers) for spec in specs]
    by_name = {e.name: e for e in endpoints}
    control = _Channel(control_conn)
    server = _Channel(server_conn, lambda message: deliver_push(by_name, message))
    try:
        for e in endpoints:
            await e.connect(server)
        control.send(("ready", len(endpoints)))
        while (message := await control.recv()) is not None:
            command, *args = message
            if command == "sample":
                load.sampling = bool(args[0])
                if not load.sampling:
                    load.sent_at.clear()
                    load.order.clear()
                control.send(None)
            elif command == "stats":
                connected = sum(e.pc.connectionState == "connected" for e in endpoints)
                control.send(
                    {
                        "cpu": time.process_time(),
                        "received": load.received,
                        "e2e_audio": load.e2e["audio"][-20000:],
                        "e2e_video": load.e2e["video"][-20000:],
                        "connected": connected,
                    }
                )
                load.e2e["audio"].clear()
                load.e2e["video"].clear()
            elif command == "newcomer":
                late = _Endpoint(_Spec("l999", False, None), load, video)
                endpoints.append(late)
                await late.connect(server)
                late.expect_keyframes = args[0]
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(late.keyframes_done.wait(), KEYFRAME_WAIT_S)
                ms = None
                if late.connected_at is not None and len(late.keyframes) >= args[0]:
                    ms = (max(late.keyframes.values()) - late.connected_at) * 1000
                control.send(ms)
            elif command == "close":
                break
    finally:
        for e in endpoints:
            await e.close()
        control.send(None)


# --- one run ------------------------------------------------------------------------------


@dataclass
class Row:
    mode: str
    n: int
    cpu_pct: float
    pps: float
    us_per_packet: float
    audio_p50: float | None
    audio_p99: float | None
    video_p50: float | None
    video_p99: float | None
    lag_p99: float | None
    e2e_audio_p99: float | None
    keyframe_ms: float | None
    rss: float
    generator_pct: float
    incoming_pps: float = 0.0  # packets the SFU received from publishers per second
    delivered_pps: float = 0.0  # RTP packets the endpoints received per second
    dropped: int = 0  # packets the SFU's downlink queues dropped in the window
    keyframe_requests: int = 0  # keyframes the SFU asked publishers for in the window
    layers_wanted: int = 0  # LayersWanted the SFU told publishers in the window (dynacast)
    layers: dict[str, int] = field(default_factory=dict)  # video slots per forwarded layer, at the end
    tick_share: float = 0.0  # of the server's CPU time, the SFU's tick (selection, allocation, upkeep)
    adapt_share: float = 0.0  # of it, the allocation (_adapt)
    sys_share: float = 0.0  # of the server's CPU time, the part spent in the kernel (UDP sends)
    note: str = ""

    @property
    def saturated(self) -> bool:
        return self.generator_pct >= SATURATED_PCT or bool(self.note)


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] * 1000


def _failed(mode: str, n: int, note: str) -> Row:
    return Row(mode, n, 0.0, 0.0, 0.0, None, None, None, None, None, None, None, 0.0, 0.0, note=note)


async def _scenario(
    mode: str,
    n: int,
    video: list[bytes],
    publishers: int,
    speakers: int,
    generators: int,
    measure_s: float,
    layers: list[list[bytes]] | None = None,
    warmup_s: float = WARMUP_S,
) -> Row:
    ctx = multiprocessing.get_context("spawn")
    generators = max(1, min(generators, n))
    server_control, server_control_child = ctx.Pipe()
    join_pipes = [ctx.Pipe() for _ in range(generators)]
    server = ctx.Process(
        target=_server, args=(server_control_child, [b for _, b in join_pipes], mode), daemon=True
    )
    specs: list[list[_Spec]] = [[] for _ in range(generators)]
    for i in range(n):  # round robin: publishers and speakers land in different processes
        # Publishers, speakers and one receiver per process handle media fully; the rest count.
        full = i < max(publishers, speakers) + generators
        specs[i % generators].append(
            _Spec(
                f"e{i:03}",
                i < publishers,
                (0.5 / (i + 1)) if i < speakers else None,
                full,
                simulcast=base_mode(mode) in SIMULCAST_MODES,
            )
        )
    simulcast = base_mode(mode) in SIMULCAST_MODES
    if simulcast and layers is None:
        raise ValueError(f"mode {mode} needs the simulcast layers' loops")
    controls = []
    processes = [server]
    for g in range(generators):
        parent, child = ctx.Pipe()
        controls.append(parent)
        processes.append(
            ctx.Process(
                target=_generator,
                args=(child, join_pipes[g][0], specs[g], video, layers if simulcast else None),
                daemon=True,
            )
        )
    for process in processes:
        process.start()
    server_ch = _Channel(server_control)
    gen_ch = [_Channel(c) for c in controls]
    try:
        setup_timeout = 20.0 + 0.5 * n
        try:
            ready = await asyncio.wait_for(asyncio.gather(*(g.recv() for g in gen_ch)), setup_timeout)
        except TimeoutError:
            return _failed(mode, n, f"not all {n} endpoints joined within {setup_timeout:.0f} s")
        if any(r is None for r in ready):
            return _failed(mode, n, "a load generator failed while joining")
        await asyncio.sleep(warmup_s)
        await asyncio.gather(server_ch.ask("sample", True), *(g.ask("sample", True) for g in gen_ch))
        before, *gen_before = await asyncio.gather(server_ch.ask("stats"), *(g.ask("stats") for g in gen_ch))
        started = time.monotonic()
        await asyncio.sleep(measure_s)
        after, *gen_after = await asyncio.gather(server_ch.ask("stats"), *(g.ask("stats") for g in gen_ch))
        elapsed = time.monotonic() - started
        await asyncio.gather(server_ch.ask("sample", False), *(g.ask("sample", False) for g in gen_ch))
        received = sum(a["received"] - b["received"] for a, b in zip(gen_after, gen_before, strict=True))
        sent = after["sent"] - before["sent"] if base_mode(mode) in PACKET_MODES else received
        cpu = after["cpu"] - before["cpu"]
        generator_pct = max(
            100 * (a["cpu"] - b["cpu"]) / elapsed for a, b in zip(gen_after, gen_before, strict=True)
        )
        e2e_audio = [x for a in gen_after for x in a["e2e_audio"]]
        connected = sum(a["connected"] for a in gen_after)
        keyframe_ms = await gen_ch[0].ask("newcomer", min(VIDEO_SLOTS, publishers), within=30.0)
        return Row(
            mode=mode,
            n=n,
            cpu_pct=100 * cpu / elapsed,
            pps=sent / elapsed,
            us_per_packet=cpu / max(sent, 1) * 1e6,
            audio_p50=_pct(after["audio_delays"], 0.5),
            audio_p99=_pct(after["audio_delays"], 0.99),
            video_p50=_pct(after["video_delays"], 0.5),
            video_p99=_pct(after["video_delays"], 0.99),
            lag_p99=_pct(after["lags"], 0.99),
            e2e_audio_p99=_pct(e2e_audio, 0.99),
            keyframe_ms=keyframe_ms,
            rss=after["rss"],
            generator_pct=generator_pct,
            incoming_pps=(after["received"] - before["received"]) / elapsed,
            sys_share=100 * (after["sys"] - before["sys"]) / max(cpu, 1e-9),
            delivered_pps=received / elapsed,
            dropped=after["dropped"] - before["dropped"],
            keyframe_requests=after.get("keyframe_requests", 0) - before.get("keyframe_requests", 0),
            layers_wanted=after.get("layers_wanted", 0) - before.get("layers_wanted", 0),
            layers=after["layers"],
            tick_share=100 * (after["tick_cpu"] - before["tick_cpu"]) / max(cpu, 1e-9),
            adapt_share=100 * (after["adapt_cpu"] - before["adapt_cpu"]) / max(cpu, 1e-9),
            note="" if connected == n else f"only {connected} of {n} connected",
        )
    finally:
        for channel in gen_ch:
            channel.send(("close",))
        for channel in gen_ch:
            with contextlib.suppress(TimeoutError, EOFError, OSError):
                await channel.recv(15)
        server_ch.send(("close",))
        with contextlib.suppress(TimeoutError, EOFError, OSError):
            await server_ch.recv(15)
        for ch in (server_ch, *gen_ch):
            ch.close()
        for process in processes:
            process.join(5)
            if process.is_alive():
                process.terminate()
                process.join(5)


# --- report -------------------------------------------------------------------------------


def _fmt(value: float | None, spec: str = ".1f") -> str:
    return "n/a" if value is None else format(value, spec)


def _print_header() -> None:
    print(
        f"{'mode':<7}{'N':>4}{'CPU %':>7}{'in/s':>5}{'pkt/s':>7}{'µs/pkt':>7}"
        f"{'aud50':>7}{'aud99':>7}{'vid50':>7}{'vid99':>7}{'lag99':>7}{'e2e a99':>8}{'kf ms':>7}"
        f"{'RSS':>5}{'sys %':>6}{'gen %':>6}",
        flush=True,
    )


def _print_row(r: Row) -> None:
    if r.note and not r.pps:
        print(f"{r.mode:<7}{r.n:>4}  ({r.note})", flush=True)
        return
    print(
        f"{r.mode:<7}{r.n:>4}{r.cpu_pct:>7.1f}{r.incoming_pps:>5.0f}{r.pps:>7.0f}{r.us_per_packet:>7.1f}"
        f"{_fmt(r.audio_p50, '.2f'):>7}{_fmt(r.audio_p99, '.2f'):>7}{_fmt(r.video_p50, '.2f'):>7}"
        f"{_fmt(r.video_p99, '.2f'):>7}{_fmt(r.lag_p99, '.2f'):>7}{_fmt(r.e2e_audio_p99):>8}"
        f"{_fmt(r.keyframe_ms, '.0f'):>7}{r.rss:>5.0f}{r.sys_share:>6.0f}{r.generator_pct:>6.0f}"
        + (f"  ({r.note})" if r.note else ""),
        flush=True,
    )


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _compare_header() -> None:
    print(
        f"{'mode':<10}{'N':>4}{'CPU %':>7}{'in/s':>6}{'sent/s':>8}{'got/s':>8}{'loss %':>7}{'µs/got':>8}"
        f"{'drop':>6}{'vid99':>7}{'gen %':>6}  load (1 min)",
        flush=True,
    )


def _compare_row(r: Row) -> None:
    if r.note and not r.pps:
        print(f"{r.mode:<10}{r.n:>4}  ({r.note})", flush=True)
        return
    print(
        f"{r.mode:<10}{r.n:>4}{r.cpu_pct:>7.1f}{r.incoming_pps:>6.0f}{r.pps:>8.0f}{r.delivered_pps:>8.0f}"
        f"{_loss(r):>7.2f}{_us_per_got(r) or 0.0:>8.2f}{r.dropped:>6}{_fmt(r.video_p99, '.2f'):>7}"
        f"{r.generator_pct:>6.0f}  {os.getloadavg()[0]:.2f}" + (f"  ({r.note})" if r.note else ""),
        flush=True,
    )


def _loss(r: Row) -> float:
    """Percent of the packets the SFU sent that the endpoints did not get (±0.2: read apart)."""
    return 100 * (1 - r.delivered_pps / r.pps) if r.pps else 0.0


def _us_per_got(r: Row) -> float | None:
    """What an external harness measures: SFU process CPU ÷ RTP packets the receivers got."""
    return r.cpu_pct / 100 / r.delivered_pps * 1e6 if r.delivered_pps and not r.note else None


def _median(values: list[float | None]) -> float | None:
    kept = sorted(v for v in values if v is not None)
    if not kept:
        return None
    middle = len(kept) // 2
    return kept[middle] if len(kept) % 2 else (kept[middle - 1] + kept[middle]) / 2


def _compare(
    n: int,
    modes: Sequence[str],
    video: list[bytes],
    measure_s: float,
    layers: list[list[bytes]] | None = None,
    warmup_s: float = WARMUP_S,
) -> dict[str, list[Row]]:
    """The modes alternating, COMPARE_ROUNDS times; then each mode's median µs/got and loss."""
    _compare_header()
    rows: dict[str, list[Row]] = {mode: [] for mode in modes}
    for _ in range(COMPARE_ROUNDS):
        for mode in modes:
            row = asyncio.run(
                _scenario(mode, n, video, VIDEO_PUBLISHERS, SPEAKERS, GENERATORS, measure_s, layers, warmup_s)
            )
            rows[mode].append(row)
            _compare_row(row)
    return rows


def _summary(rows: dict[str, list[Row]], base: str) -> None:
    medians = {mode: _median([_us_per_got(r) for r in rs]) for mode, rs in rows.items()}
    reference = medians.get(base)
    parts = []
    for mode, rs in rows.items():
        value, loss = medians[mode], _median([_loss(r) for r in rs if not r.note])
        ratio = f" ×{value / reference:.2f}" if value is not None and reference else ""
        parts.append(f"{mode} {_fmt(value, '.2f')}{ratio} (loss {_fmt(loss, '.2f')} %)")
    print(f"median µs of SFU CPU per packet got (ratio to {base}): " + ", ".join(parts), flush=True)


def side_by_side(n: int, video: list[bytes], measure_s: float) -> dict[str, list[Row]]:
    """The forwarding unit's three paths at N endpoints, in one run."""
    print(
        f"\nN={n}, side by side, {COMPARE_ROUNDS} rounds alternating (load average {_load()}): the C path "
        "as shipped (packet: a paced receiver's packets leave from C while its queue is empty), "
        "today's C path before issue #18 item 4 (c-today: every packet of a paced receiver through "
        "the Python queue), the Python reference (python). µs/got = SFU process CPU ÷ RTP packets "
        "the receivers got.",
        flush=True,
    )
    rows = _compare(n, ("packet", "c-today", "python"), video, measure_s)
    _summary(rows, "c-today")
    return rows


def simulcast_side_by_side(n: int, video: list[bytes], measure_s: float) -> dict[str, list[Row]]:
    """Issue #16's target: simulcast publishers (allocation on) against single-layer forwarding
    (adaptation off, the forwarding before #16), on this C path and on today's (sc-today)."""
    print(
        f"\nN={n}, simulcast publishers vs single-layer, {COMPARE_ROUNDS} rounds alternating (load "
        f"average {_load()}): single (single-layer, adaptation off), simulcast (three layers, "
        "allocation on, this C path), sc-today (the same on today's C path); measured from "
        f"{SETTLED_WARMUP_S:.0f} s after the joins (estimates settled)",
        flush=True,
    )
    rows = _compare(
        n, ("single", "simulcast", "sc-today"), video, measure_s, preencode_simulcast(), SETTLED_WARMUP_S
    )
    _summary(rows, "single")
    return rows


def run(sizes: Sequence[int]) -> int:
    """Run every size (then larger ones while the server is under a core), then the comparison."""
    loopback_only()
    video = preencode_vp8()
    quick = list(sizes) == QUICK_SIZES
    measure_s = QUICK_MEASURE_S if quick else MEASURE_S
    escalate = list(sizes) == DEFAULT_SIZES
    print(
        f"SFU benchmark: {VIDEO_PUBLISHERS} video publishers, {SPEAKERS} speakers, "
        f"{AUDIO_SLOTS}+{VIDEO_SLOTS} slots per endpoint; server in its own process, endpoints in "
        f"{GENERATORS} load-generator processes; {os.cpu_count()} CPUs; {measure_s:.0f} s per size.\n"
        "CPU % is the server process (100 = one core); aud/vid are server-side delays in ms (packet "
        "in the forwarder to sent, per receiver); lag99 is the server's event-loop lag p99 (what a "
        "packet may wait before it is read); e2e a99 is publisher send to receiver arrival, audio; "
        "kf ms: a late joiner's time from connected to a keyframe on every video slot; gen % is the "
        "busiest load generator (100 = one core); sys % is the kernel's share of the server's CPU; in/s "
        f"is what the publishers delivered to the SFU (nominal {(VIDEO_PUBLISHERS + SPEAKERS) * 50}: "
        "less means the machine starved the load generators, and pkt/s is capped accordingly).",
        flush=True,
    )
    _print_header()
    queue = list(sizes)
    reached: set[int] = set()
    while queue:
        n = queue.pop(0)
        row = asyncio.run(_scenario("packet", n, video, VIDEO_PUBLISHERS, SPEAKERS, GENERATORS, measure_s))
        _print_row(row)
        if not row.note:
            reached.add(n)
        bigger = [m for m in ESCALATE if n < m <= MAX_N]
        if escalate and not queue and bigger:
            if row.cpu_pct < 100 and not row.saturated:
                queue.append(bigger[0])
            else:
                why = "the server reached one core" if row.cpu_pct >= 100 else "the load generators saturated"
                print(f"(stopped at N={n}: {why})", flush=True)
    # At 60 endpoints (or the largest size asked), and at 120 too when the run reached it.
    for compare_n in sorted({60 if 60 in sizes else max(sizes), *(n for n in reached if n >= MAX_N)}):
        side_by_side(compare_n, video, measure_s)
    if not quick:
        simulcast_side_by_side(60 if 60 in sizes else max(sizes), video, measure_s)
    print(f"\nSmall scenario (N={SMALL_N}, 2 video publishers, 2 speakers): packet vs frame vs MediaRelay")
    _print_header()
    small = []
    for mode in ("packet", "frame", "relay"):
        small.append(asyncio.run(_scenario(mode, SMALL_N, video, 2, 2, 1, measure_s)))
        _print_row(small[-1])
    base = small[0].us_per_packet or 1.0
    print(
        "CPU per forwarded packet, relative to packet-level: "
        + ", ".join(f"{r.mode} ×{r.us_per_packet / base:.1f}" for r in small),
        flush=True,
    )
    return 0
