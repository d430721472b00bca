"""Probes for the SFU tests with real aiortc peers: codec choice, wire taps, a lossy link.

Everything here observes or perturbs *client* peers (and, for upstream loss, the SFU's socket
side of one connection) from the outside; the SFU under test is never patched. The few aiortc
and aioice private names a test needs (a receiver's ``_handle_rtp_packet`` via
``internals.observe_*``, a DTLS transport's ``_send_rtp``, a sender's ``_handle_rtcp_packet``,
an ICE transport's aioice ``_connection`` and its ``data_received``) are reached through
``_private`` below, which fails with a clear message if aiortc renamed them.
"""

from __future__ import annotations

import re
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import aiortc.rtcrtpreceiver
import aiortc.rtcrtpsender
import pytest
from aiortc import RTCPeerConnection, RTCRtpSender, RTCRtpTransceiver
from aiortc.codecs import CODECS
from aiortc.rtcrtpparameters import RTCRtcpFeedback, RTCRtpCodecParameters
from aiortc.rtp import (
    RTCP_PSFB_FIR,
    RTCP_PSFB_PLI,
    RTCP_RTPFB_NACK,
    RtcpPacket,
    RtcpPsfbPacket,
    RtcpRtpfbPacket,
    RtpPacket,
    is_rtcp,
)

from meetings.rtc import internals

# --- codecs ---------------------------------------------------------------------------------


def prefer_codec(
    transceiver: RTCRtpTransceiver,
    mime: str,
    *,
    profile: str | None = None,
    mode: int | None = None,
    rtx: bool = True,
) -> None:
    """Offer only ``mime`` (H.264: optionally one profile-level-id / packetization mode), + RTX."""
    capabilities = RTCRtpSender.getCapabilities(transceiver.kind).codecs
    chosen = [
        c
        for c in capabilities
        if c.mimeType.lower() == mime.lower()
        and (profile is None or c.parameters.get("profile-level-id") == profile)
        and (mode is None or str(c.parameters.get("packetization-mode")) == str(mode))
    ]
    assert chosen, f"aiortc cannot offer {mime} {profile or ''}"
    if rtx:
        chosen += [c for c in capabilities if c.mimeType.lower().endswith("/rtx")]
    transceiver.setCodecPreferences(chosen)


def add_h264_mode0(monkeypatch: pytest.MonkeyPatch) -> None:
    """Teach every aiortc peer of this process H.264 packetization-mode 0 (aiortc has only 1).

    aiortc's H.264 packetiser still aggregates small NAL units into STAP-A packets, which mode 0
    does not allow; that is irrelevant to the SFU, which must only match modes, never depacketise.
    """
    used = {c.payloadType for codecs in CODECS.values() for c in codecs}
    pt = next(p for p in range(105, 128, 2) if p not in used and p + 1 not in used)
    mode0 = RTCRtpCodecParameters(
        mimeType="video/H264",
        clockRate=90000,
        payloadType=pt,
        rtcpFeedback=[
            RTCRtcpFeedback(type="nack"),
            RTCRtcpFeedback(type="nack", parameter="pli"),
            RTCRtcpFeedback(type="goog-remb"),
        ],
        parameters={"level-asymmetry-allowed": "1", "packetization-mode": "0", "profile-level-id": "42e01f"},
    )
    rtx = RTCRtpCodecParameters(
        mimeType="video/rtx", clockRate=90000, payloadType=pt + 1, parameters={"apt": pt}
    )
    monkeypatch.setitem(CODECS, "video", [*CODECS["video"], mode0, rtx])


@contextmanager
def recording_codecs(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, list[Any]]]:
    """Record who creates decoders (by thread) and encoders (by sender) in this process."""
    made: dict[str, list[Any]] = {"decoder_threads": [], "decoder_codecs": [], "encoder_senders": []}
    get_decoder = vars(aiortc.rtcrtpreceiver)["get_decoder"]
    get_encoder = vars(aiortc.rtcrtpsender)["get_encoder"]

    def counting_decoder(codec: Any) -> Any:
        made["decoder_threads"].append(threading.current_thread())
        made["decoder_codecs"].append(codec.mimeType)
        return get_decoder(codec)

    def counting_encoder(codec: Any) -> Any:
        made["encoder_senders"].append(sys._getframe(1).f_locals.get("self"))
        return get_encoder(codec)

    with monkeypatch.context() as patch:
        patch.setattr(aiortc.rtcrtpreceiver, "get_decoder", counting_decoder)
        patch.setattr(aiortc.rtcrtpsender, "get_encoder", counting_encoder)
        yield made


def h264_nal_types(payload: bytes) -> list[int]:
    """NAL unit types that start in this RTP payload (RFC 6184: single, STAP-A, FU-A start)."""
    if not payload:
        return []
    nal = payload[0] & 0x1F
    if nal == 24:  # STAP-A: 16-bit size + NAL unit, repeated
        types, pos = [], 1
        while pos + 2 < len(payload):
            size = int.from_bytes(payload[pos : pos + 2], "big")
            types.append(payload[pos + 2] & 0x1F)
            pos += 2 + size
        return types
    if nal == 28:  # FU-A: the fragmented unit's type, on its first fragment only
        return [payload[1] & 0x1F] if len(payload) > 1 and payload[1] & 0x80 else []
    return [nal]


# --- SDP --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Section:
    """What one m-section of an SDP says about its sender and its codecs."""

    mid: str
    kind: str
    ssrc: int | None
    rtx_ssrc: int | None
    codecs: dict[int, str]  # payload type -> codec name ("VP8", "H264", "rtx", ...)
    fmtp: dict[int, str]


def sdp_sections(sdp: str) -> dict[str, Section]:
    """The audio/video m-sections of an SDP by mid (ssrc-group FID gives the RTX SSRC)."""
    sections: dict[str, Section] = {}
    for chunk in sdp.split("\nm=")[1:]:
        kind = chunk.split(" ", 1)[0]
        mid = re.search(r"^a=mid:(\S+)", chunk, re.M)
        if mid is None or kind not in ("audio", "video"):
            continue
        codecs = {int(pt): name for pt, name in re.findall(r"^a=rtpmap:(\d+) ([^/\s]+)/", chunk, re.M)}
        fmtp = {int(pt): params for pt, params in re.findall(r"^a=fmtp:(\d+) (\S+)", chunk, re.M)}
        fid = re.search(r"^a=ssrc-group:FID (\d+) (\d+)", chunk, re.M)
        ssrc = re.search(r"^a=ssrc:(\d+) ", chunk, re.M)
        sections[mid.group(1)] = Section(
            mid=mid.group(1),
            kind=kind,
            ssrc=int(fid.group(1)) if fid else int(ssrc.group(1)) if ssrc else None,
            rtx_ssrc=int(fid.group(2)) if fid else None,
            codecs=codecs,
            fmtp=fmtp,
        )
    return sections


# --- taps -------------------------------------------------------------------------------------


def _private(obj: object, name: str) -> Any:
    """An aiortc/aioice private attribute a probe relies on; fails loudly if it is gone."""
    if not hasattr(obj, name):
        raise AssertionError(f"{type(obj).__name__}.{name} is gone: update tests/rtc/probes.py")
    return getattr(obj, name)


@dataclass
class StreamLog:
    """RTP packets of one stream as seen on the wire (RTX recorded under its original seq)."""

    media: list[tuple[int, int, bytes]] = field(default_factory=list)  # (seq, timestamp, payload)
    rtx: list[tuple[int, bytes]] = field(default_factory=list)  # (original seq, payload)
    payload_types: list[int] = field(default_factory=list)
    rtx_ssrcs: set[int] = field(default_factory=set)

    def seqs(self) -> set[int]:
        """Every media sequence number that arrived, first time or retransmitted."""
        return {seq for seq, _, _ in self.media} | {seq for seq, _ in self.rtx}

    def payloads(self) -> list[bytes]:
        return [p for _, _, p in self.media] + [p for _, p in self.rtx]

    def missing(self) -> list[int]:
        """Sequence numbers never received between the first media packet and the last one."""
        if not self.media:
            return []
        base = self.media[0][0]
        offsets = {((seq - base + 0x8000) & 0xFFFF) - 0x8000 for seq in self.seqs()}  # wrap-safe
        return [(base + i) & 0xFFFF for i in range(min(offsets), max(offsets) + 1) if i not in offsets]

    def frames(self) -> int:
        """Distinct RTP timestamps (frames) among the media packets."""
        return len({ts for _, ts, _ in self.media})


def _record(log: StreamLog, packet: RtpPacket, rtx_pts: set[int]) -> None:
    if packet.payload_type in rtx_pts:
        log.rtx_ssrcs.add(packet.ssrc)
        if len(packet.payload) >= 2:
            log.rtx.append((int.from_bytes(packet.payload[:2], "big"), packet.payload[2:]))
    elif packet.payload:
        log.media.append((packet.sequence_number, packet.timestamp, packet.payload))
        log.payload_types.append(packet.payload_type)


def rtx_payload_types() -> set[int]:
    """aiortc offers its codecs' own payload types, and the SFU's answers keep them."""
    return {
        c.payloadType
        for c in CODECS["video"]
        if c.mimeType.lower() == "video/rtx" and c.payloadType is not None
    }


def tap_received(transceiver: RTCRtpTransceiver) -> StreamLog:
    """Log every RTP packet a client's receiver gets, before aiortc unwraps RTX or buffers it."""
    log = StreamLog()
    rtx_pts = rtx_payload_types()
    internals.observe_received_rtp(transceiver.receiver, lambda p: _record(log, p, rtx_pts))
    return log


def tap_sent(pc: RTCPeerConnection, ssrcs: set[int]) -> StreamLog:
    """Log the RTP packets of these SSRCs a client sends (its bundled transport's ``_send_rtp``)."""
    log = StreamLog()
    rtx_pts = rtx_payload_types()

    def on_packet(packet: RtpPacket) -> None:
        if packet.ssrc in ssrcs:
            _record(log, packet, rtx_pts)

    internals.observe_sent_rtp(pc.getTransceivers()[0].sender.transport, on_packet)
    return log


def tap_sent_nacks(pc: RTCPeerConnection) -> list[tuple[int, list[int]]]:
    """(media SSRC, lost seqs) of every RTCP NACK a client sends (wraps ``_send_rtp``)."""
    nacks: list[tuple[int, list[int]]] = []
    transport = pc.getTransceivers()[0].sender.transport
    original = _private(transport, "_send_rtp")

    async def send(data: bytes) -> None:
        if is_rtcp(data):
            for packet in RtcpPacket.parse(data):
                if isinstance(packet, RtcpRtpfbPacket) and packet.fmt == RTCP_RTPFB_NACK:
                    nacks.append((packet.media_ssrc, list(packet.lost)))
        await original(data)

    transport._send_rtp = send  # type: ignore[method-assign]
    return nacks


@dataclass
class SenderFeedbackLog:
    """RTCP feedback a client's sender got: NACKs (lost seqs each) and keyframe requests."""

    nacks: list[list[int]] = field(default_factory=list)
    keyframe_requests: int = 0


def tap_sender_feedback(sender: RTCRtpSender) -> SenderFeedbackLog:
    """Log the NACK and PLI/FIR a client's sender gets (wraps its ``_handle_rtcp_packet``)."""
    log = SenderFeedbackLog()
    original = _private(sender, "_handle_rtcp_packet")

    async def handle(packet: Any) -> None:
        if isinstance(packet, RtcpRtpfbPacket) and packet.fmt == RTCP_RTPFB_NACK:
            log.nacks.append(list(packet.lost))
        elif isinstance(packet, RtcpPsfbPacket) and packet.fmt in (RTCP_PSFB_PLI, RTCP_PSFB_FIR):
            log.keyframe_requests += 1
        await original(packet)

    sender._handle_rtcp_packet = handle  # type: ignore[method-assign]
    return log


# --- a lossy link -----------------------------------------------------------------------------


def _is_rtp(data: bytes) -> bool:
    """SRTP (not SRTCP, STUN or DTLS): RTP version 2, payload type outside RTCP's 192–223."""
    return len(data) >= 12 and 128 <= data[0] < 192 and not 192 <= data[1] <= 223


@dataclass
class DropEveryNth:
    """Deterministic loss: drops every ``n``-th SRTP packet of ``ssrcs`` arriving at a peer.

    The RTP header (sequence number, SSRC) is not encrypted by SRTP, so the drop is chosen and
    recorded from the clear header; RTCP, STUN, DTLS and other SSRCs (RTX) always pass.
    """

    n: int
    ssrcs: set[int]
    enabled: bool = False
    seen: int = 0
    dropped: list[int] = field(default_factory=list)  # sequence numbers, in order

    def install(self, pc: RTCPeerConnection) -> None:
        """Wrap aioice's ``Connection.data_received`` of the peer's bundled transport."""
        ice = pc.getTransceivers()[0].receiver.transport.transport
        connection = _private(ice, "_connection")
        original: Callable[[bytes, int], None] = _private(connection, "data_received")

        def data_received(data: bytes, component: int) -> None:
            if self.enabled and _is_rtp(data) and int.from_bytes(data[8:12], "big") in self.ssrcs:
                self.seen += 1
                if self.seen % self.n == 0:
                    self.dropped.append(int.from_bytes(data[2:4], "big"))
                    return
            original(data, component)

        connection.data_received = data_received
