"""aiortc clients for the SFU tests: generated audio (a tone at a chosen level) and video."""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import math
import time
from array import array
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

from aiortc import (
    MediaStreamTrack,
    RTCBundlePolicy,
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpTransceiver,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError
from av import AudioFrame, VideoFrame

from meetings.rtc import internals, red
from meetings.rtc.forwarder import is_keyframe
from meetings.rtc.sfu import Sfu, Source

RATE = 48000
LOOPBACK = ("127.0.0.1",)
PTIME = 0.02
RED_PT = 63  # the payload type Chromium offers audio/red on


def offer_red(sdp: str, red_pt: int = RED_PT, fmtp: str | None = None) -> str:
    """The SDP with ``red/48000/2`` added to every audio m-section, as Chromium offers it:
    after Opus, with fmtp ``P/P`` (``P`` the section's Opus payload type) unless ``fmtp`` given."""
    sections = sdp.split("\r\nm=")
    for i, section in enumerate(sections):
        if not section.startswith("audio "):
            continue
        lines = section.split("\r\n")
        opus = next(line.split(" ")[0][9:] for line in lines if line.endswith(" opus/48000/2"))
        lines[0] += f" {red_pt}"
        at = next(j for j, line in enumerate(lines) if line.startswith(f"a=rtpmap:{opus} "))
        lines[at + 1 : at + 1] = [
            f"a=rtpmap:{red_pt} red/48000/2",
            f"a=fmtp:{red_pt} {fmtp or f'{opus}/{opus}'}",
        ]
        sections[i] = "\r\n".join(lines)
    return "\r\nm=".join(sections)


class RedEncoder:
    """Turns a client's outgoing Opus packets into RED (RFC 2198) as Chromium sends them: the
    previous frame as one redundant block, the current one as primary, on ``red_pt``.
    ``malformed_every``: every n-th packet's RED headers claim more than the payload holds."""

    def __init__(self, opus_pt: int, red_pt: int, malformed_every: int = 0) -> None:
        self.opus_pt = opus_pt
        self.red_pt = red_pt
        self.malformed_every = malformed_every
        self.sent = 0
        self._previous: tuple[int, bytes] | None = None

    def __call__(self, data: bytes) -> bytes:
        if data[1] & 0x7F != self.opus_pt:
            return data
        self.sent += 1
        size = 12 + 4 * (data[0] & 0x0F)
        if data[0] & 0x10:  # header extension: 4 bytes, then its length in words
            size += 4 + 4 * int.from_bytes(data[size + 2 : size + 4], "big")
        timestamp = int.from_bytes(data[4:8], "big")
        payload = bytes(data[size:])
        blocks = [red.RedBlock(self.opus_pt, 0, payload)]
        if self._previous is not None and 0 < timestamp - self._previous[0] < 1 << 14:
            blocks.insert(0, red.RedBlock(self.opus_pt, timestamp - self._previous[0], self._previous[1]))
        self._previous = (timestamp, payload)
        payload = red.build(blocks)
        if self.malformed_every and self.sent % self.malformed_every == 0:
            payload = bytes([0x80 | self.opus_pt, 0, 0x03, 0xFF, self.opus_pt]) + payload[-4:]
        return data[:1] + bytes([(data[1] & 0x80) | self.red_pt]) + data[2:size] + payload


class ToneTrack(MediaStreamTrack):
    """A 440 Hz tone at ``amplitude`` (0..1); aiortc puts its RFC 6464 level in each packet."""

    kind = "audio"

    def __init__(self, amplitude: float) -> None:
        super().__init__()
        self.amplitude = amplitude
        self._samples = int(RATE * PTIME)
        self._pcm = array(
            "h",
            (int(math.sin(2 * math.pi * 440 * i / RATE) * 32767 * amplitude) for i in range(self._samples)),
        ).tobytes()
        self._start: float | None = None
        self._pts = 0

    async def recv(self) -> AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.time()
        else:
            self._pts += self._samples
            await asyncio.sleep(self._start + self._pts / RATE - time.time())
        frame = AudioFrame(format="s16", layout="mono", samples=self._samples)
        frame.planes[0].update(self._pcm)
        frame.sample_rate = RATE
        frame.pts = self._pts
        frame.time_base = fractions.Fraction(1, RATE)
        return frame


class SmallVideoTrack(MediaStreamTrack):
    """160x120 frames at 15 fps: cheap to encode on a shared two-core machine."""

    kind = "video"

    def __init__(self, shade: int = 80) -> None:
        super().__init__()
        self._start: float | None = None
        self._pts = 0
        self._n = 0
        self._shade = shade

    async def recv(self) -> VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        step = 90000 // 15
        if self._start is None:
            self._start = time.time()
        else:
            self._pts += step
            await asyncio.sleep(self._start + self._pts / 90000 - time.time())
        self._n += 1
        frame = VideoFrame(width=160, height=120, format="yuv420p")
        luma = frame.planes[0]
        row = bytearray([self._shade]) * luma.line_size
        row[(self._n * 4) % 160] = 255  # a moving line, so frames differ
        luma.update(bytes(row) * (luma.buffer_size // luma.line_size))
        for chroma in frame.planes[1:]:
            chroma.update(bytes([128]) * chroma.buffer_size)
        frame.pts = self._pts
        frame.time_base = fractions.Fraction(1, 90000)
        return frame


@dataclass
class Received:
    """What a client got on one of its receiving transceivers."""

    frames: int = 0
    packets: int = 0
    payloads: list[bytes] = field(default_factory=list)
    payload_types: list[int] = field(default_factory=list)
    levels: list[int] = field(default_factory=list)
    first_keyframe_at: float | None = None


class Client:
    """A participant: publishes some tracks, receives on some slots, counts what arrives."""

    def __init__(
        self,
        name: str,
        *,
        amplitude: float | None = None,
        video: bool = False,
        screen: bool = False,
        audio_slots: int = 3,
        video_slots: int = 2,
        level_extension: bool = True,
        red: bool = False,
    ) -> None:
        self.name = name
        # False: the offer does not carry the RFC 6464 audio-level extension (a client or a
        # gateway that never sends it), so the answer does not negotiate it and none is sent.
        self.level_extension = level_extension
        # True: the offer has RED on its audio m-sections, as Chromium's; where the answer takes
        # it, what this client publishes goes out as RED (RedEncoder: aiortc knows no RED).
        self.red = red
        self.red_malformed_every = 0
        self.pc = RTCPeerConnection(RTCConfiguration(bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))
        self.sent_payloads: list[bytes] = []
        self.received: dict[str, Received] = defaultdict(Received)
        self.sources: dict[str, Source] = {}
        self._publish: list[RTCRtpTransceiver] = []
        self._tasks: list[asyncio.Task[None]] = []
        if amplitude is not None:
            self._publish.append(self.pc.addTransceiver(ToneTrack(amplitude), direction="sendonly"))
        if video:
            self._publish.append(self.pc.addTransceiver(SmallVideoTrack(), direction="sendonly"))
        if screen:
            self._publish.append(self.pc.addTransceiver(SmallVideoTrack(200), direction="sendonly"))
        self.slots = [self.pc.addTransceiver("audio", direction="recvonly") for _ in range(audio_slots)]
        self.slots += [self.pc.addTransceiver("video", direction="recvonly") for _ in range(video_slots)]
        for t in self.slots:
            self._observe(t)

    def _observe(self, transceiver: RTCRtpTransceiver) -> None:
        def on_packet(packet: internals.RtpPacket) -> None:
            mid = transceiver.mid or "?"
            r = self.received[mid]
            r.packets += 1
            r.payloads.append(packet.payload)
            r.payload_types.append(packet.payload_type)
            level = internals.packet_audio_level(packet)
            if level is not None:
                r.levels.append(level)
            if (
                transceiver.kind == "video"
                and r.first_keyframe_at is None
                and is_keyframe("VP8", packet.payload)
            ):
                r.first_keyframe_at = time.monotonic()

        internals.observe_received_rtp(transceiver.receiver, on_packet)

    async def _consume(self, transceiver: RTCRtpTransceiver) -> None:
        track = transceiver.receiver.track
        with contextlib.suppress(MediaStreamError):
            while True:
                await track.recv()
                self.received[transceiver.mid or "?"].frames += 1

    async def offer(self) -> None:
        """Set the local offer, gathering on 127.0.0.1 only.

        The server side chooses its addresses with the media_addresses setting; these test
        clients are aiortc peers too, and aiortc gathers on every non-loopback interface unless
        told otherwise, so they use the same helper the SFU uses (media stays on loopback).
        """
        internals.gather_host_candidates_on(self.pc, LOOPBACK)
        await self.pc.setLocalDescription(await self.pc.createOffer())

    async def connect(self, sfu: Sfu) -> None:
        """Offer to the SFU, apply its answer, start reading the received tracks."""
        await self.offer()
        answer = await sfu.join(self.name, self.local_offer().sdp, self.sources_by_mid())
        first = self.pc.getTransceivers()[0]
        internals.observe_sent_rtp(first.sender.transport, lambda p: self.sent_payloads.append(p.payload))
        if self.red and f"a=rtpmap:{RED_PT} red/48000/2" in answer:
            opus = int(next(line for line in answer.splitlines() if "opus/48000/2" in line)[9:].split(" ")[0])
            encoder = RedEncoder(opus, RED_PT, self.red_malformed_every)
            internals.rewrite_sent_rtp(first.sender.transport, encoder)
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        if self.red:  # what arrives as RED reaches the observers of the audio slots
            for t in self.slots:
                if t.kind == "audio":
                    internals.route_payload_type(t.receiver, RED_PT)
        for t in self.slots:
            self._tasks.append(asyncio.create_task(self._consume(t)))

    def local_offer(self) -> RTCSessionDescription:
        """The offer to send: with RED if asked, without the audio-level extension if asked."""
        offer = self.pc.localDescription
        sdp = offer_red(offer.sdp) if self.red else offer.sdp
        if not self.level_extension:
            lines = [line for line in sdp.splitlines() if internals.AUDIO_LEVEL_URI not in line]
            sdp = "\r\n".join(lines) + "\r\n"
        return RTCSessionDescription(sdp=sdp, type=offer.type)

    def sources_by_mid(self) -> dict[str, Source]:
        result: dict[str, Source] = {}
        videos = [t for t in self._publish if t.kind == "video"]
        for i, t in enumerate(videos):
            if t.mid is not None:
                result[t.mid] = "screen" if i == 1 else "camera"
        return result

    def slot_mids(self, kind: str) -> list[str]:
        return [t.mid or "?" for t in self.slots if t.kind == kind]

    def frames(self, kind: str) -> int:
        return sum(self.received[mid].frames for mid in self.slot_mids(kind))

    async def close(self) -> None:
        await self.pc.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


async def wait_for(predicate: Callable[[], bool], within: float = 10.0, step: float = 0.05) -> bool:
    """Poll ``predicate()`` until true or ``within`` seconds pass."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(step)
    return bool(predicate())
