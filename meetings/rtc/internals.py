"""The one module that touches aiortc's private API (pinned: see ``TESTED_AIORTC_VERSION``).

aiortc has no public API to forward RTP without decoding it, so the SFU reaches inside it
here and nowhere else. Every function says which internal it relies on; ``check_internals()``
asserts that each of them still exists with the shape we expect, so an aiortc upgrade fails
at import of :mod:`meetings.rtc.sfu` (and in ``tests/rtc/test_internals.py``), not in a meeting.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass
from typing import Any

import aioice.ice
import aiortc
import aiortc.codecs
import aiortc.rtcdtlstransport
import aiortc.rtcicetransport
import aiortc.rtcpeerconnection
import aiortc.rtcrtpreceiver
import aiortc.rtcrtpsender
import pylibsrtp
from aiortc import (
    RTCDtlsTransport,
    RTCPeerConnection,
    RTCRtpCodecParameters,
    RTCRtpReceiver,
    RTCRtpSender,
    RTCRtpTransceiver,
)
from aiortc import clock as _clock
from aiortc import rtp as _rtp
from aiortc.codecs import is_rtx as _is_rtx
from pylibsrtp import _binding as _srtp_binding

from meetings.rtc.estimate import RembThrottle
from meetings.rtc.forwarder import abs_send_time as abs_send_time  # the SFU's callers name it here

# Re-exported so that the forwarder can name aiortc's parsed packet without importing aiortc.
RtpPacket = _rtp.RtpPacket

TESTED_AIORTC_VERSION = "1.16.0"

MID_URI = "urn:ietf:params:rtp-hdrext:sdes:mid"
AUDIO_LEVEL_URI = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"
ABS_SEND_TIME_URI = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
RID_URI = "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id"
REPAIRED_RID_URI = "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id"

# Name-mangled private attributes (``self.__x`` in class C is stored as ``_C__x``).
_R = "_RTCRtpReceiver__"
_S = "_RTCRtpSender__"
_P = "_RTCPeerConnection__"
RECEIVER_ATTRS = (
    f"{_R}codecs",
    f"{_R}remote_streams",
    f"{_R}rtx_ssrc",
    f"{_R}nack_generator",
    f"{_R}remote_bitrate_estimator",
    f"{_R}rtcp_ssrc",
    f"{_R}decoder_thread",
    f"{_R}decoder_queue",
    f"{_R}timestamp_mapper",
    f"{_R}jitter_buffer",
)
SENDER_ATTRS = (
    "_ssrc",
    "_rtx_ssrc",
    f"{_S}encoder",
    f"{_S}ntp_timestamp",
    f"{_S}rtp_timestamp",
    f"{_S}packet_count",
    f"{_S}octet_count",
    f"{_S}lsr",
    f"{_S}lsr_time",
    f"{_S}cname",
    f"{_S}rtcp_started",
    f"{_S}rtcp_exited",
)
TRANSCEIVER_ATTRS = ("_codecs", "_headerExtensions")
_D = "_RTCDtlsTransport__"
DTLS_COUNTERS = (f"{_D}tx_bytes", f"{_D}tx_packets")
DTLS_RX_COUNTERS = (f"{_D}rx_bytes", f"{_D}rx_packets")

RtpHandler = Callable[[RtpPacket, RTCRtpCodecParameters], None]
"""Called synchronously for each media packet of a tapped receiver (no await, must not block)."""
_SYNC_HANDLER = "_giaoban_handle_rtp"  # our synchronous handler, set on tapped receivers
_REMB_THROTTLE = "_giaoban_remb_throttle"  # when a tapped receiver's REMB goes out
FrameHandler = Callable[[RTCRtpCodecParameters, bytes, int], None]


class InternalsError(RuntimeError):
    """aiortc no longer has an internal the SFU relies on: re-check the pinned version."""


# --- check --------------------------------------------------------------------------------


def _params(func: Any) -> list[str]:
    return list(inspect.signature(func).parameters)


def _expect_signature(owner: type, name: str, params: list[str], problems: list[str]) -> None:
    func = getattr(owner, name, None)
    if func is None:
        problems.append(f"{owner.__name__}.{name} is missing")
    elif _params(func) != params:
        problems.append(f"{owner.__name__}.{name}{_params(func)} != {params}")


def _expect_names(owner: type, method: str, names: Iterable[str], problems: list[str]) -> None:
    """The method's bytecode must still use these (attribute) names."""
    func = getattr(owner, method, None)
    code = getattr(func, "__code__", None)
    if code is None:
        problems.append(f"{owner.__name__}.{method} is missing")
        return
    missing = [n for n in names if n not in code.co_names]
    if missing:
        problems.append(f"{owner.__name__}.{method} no longer uses {missing}")


def check_internals(*, strict_version: bool = False) -> None:
    """Raise ``InternalsError`` listing every aiortc internal that is gone or changed shape."""
    problems: list[str] = []
    if strict_version and aiortc.__version__ != TESTED_AIORTC_VERSION:
        problems.append(f"aiortc {aiortc.__version__} is not the tested {TESTED_AIORTC_VERSION}")
    # Methods we replace on instances, call, or wrap.
    _expect_signature(RTCRtpReceiver, "_handle_rtp_packet", ["self", "packet", "arrival_time_ms"], problems)
    _expect_signature(RTCRtpReceiver, "receive", ["self", "parameters"], problems)
    _expect_signature(RTCRtpReceiver, "_send_rtcp", ["self", "packet"], problems)
    _expect_signature(RTCRtpReceiver, "_send_rtcp_pli", ["self", "media_ssrc"], problems)
    _expect_signature(RTCRtpReceiver, "_send_rtcp_nack", ["self", "media_ssrc", "lost"], problems)
    _expect_signature(RTCRtpReceiver, f"{_R}stop_decoder", ["self"], problems)
    _expect_signature(RTCRtpSender, "_handle_rtcp_packet", ["self", "packet"], problems)
    _expect_signature(RTCRtpSender, "_next_encoded_frame", ["self", "codec"], problems)
    _expect_signature(RTCDtlsTransport, "_send_rtp", ["self", "data"], problems)
    _expect_signature(RTCRtpSender, "_run_rtcp", ["self"], problems)
    _expect_signature(RTCRtpSender, "_send_rtcp", ["self", "packets"], problems)
    # The sender starts its RTCP loop by name (replaced on the instance by quiet_sender_rtcp),
    # and computes round-trip times from the LSR we record for our own sender reports.
    _expect_names(RTCRtpSender, "send", ["_run_rtcp"], problems)
    _expect_names(
        RTCRtpSender,
        "_run_rtcp",
        [f"{_S}rtcp_started", f"{_S}rtcp_exited", f"{_S}lsr", f"{_S}lsr_time"],
        problems,
    )
    _expect_names(RTCRtpSender, "_handle_rtcp_packet", [f"{_S}lsr", f"{_S}lsr_time"], problems)
    # Instance attributes are assigned in __init__ under these mangled names.
    _expect_names(RTCRtpReceiver, "__init__", RECEIVER_ATTRS, problems)
    _expect_names(RTCRtpSender, "__init__", SENDER_ATTRS, problems)
    _expect_names(RTCRtpTransceiver, "__init__", TRANSCEIVER_ATTRS, problems)
    # The transport routes packets by calling these names on the receiver / sender instance,
    # so an instance attribute replaces the method; the peer connection calls receive()/send().
    _expect_names(RTCDtlsTransport, "_handle_rtp_data", ["_handle_rtp_packet"], problems)
    _expect_names(RTCDtlsTransport, "_handle_rtcp_data", ["_handle_rtcp_packet"], problems)
    _expect_names(RTCPeerConnection, "_RTCPeerConnection__connect", ["receive", "send"], problems)
    # RtpWire: the DTLS transport's state, its ICE transport, its SRTP session and counters;
    # aioice's nominated pair; pylibsrtp's session buffer and libsrtp's srtp_protect.
    _expect_names(RTCDtlsTransport, "__init__", ["_state", "_transport", *DTLS_COUNTERS], problems)
    # direct_rtp_receive: what the transport's own receive path reads and routes with.
    _expect_names(
        RTCDtlsTransport,
        "__init__",
        ["_rx_srtp", "_rtp_header_extensions_map", "_rtp_router", *DTLS_RX_COUNTERS],
        problems,
    )
    _expect_names(
        RTCDtlsTransport, "_recv_next", ["_rx_srtp", "unprotect", "is_rtcp", "current_ms"], problems
    )
    _expect_names(RTCDtlsTransport, "_handle_rtp_data", ["_rtp_header_extensions_map", "route_rtp"], problems)
    _expect_names(aioice.ice.Connection, "data_received", ["_queue"], problems)
    _expect_names(RTCDtlsTransport, "_setup_srtp", ["_tx_srtp", "allow_repeat_tx"], problems)
    _expect_names(RTCDtlsTransport, "_send_rtp", ["_state", "_tx_srtp", "protect"], problems)
    _expect_names(aiortc.rtcicetransport.RTCIceTransport, "__init__", ["_connection"], problems)
    _expect_names(aioice.ice.Connection, "__init__", ["_nominated"], problems)
    _expect_names(
        aioice.ice.Connection, "sendto", ["_nominated", "protocol", "send_data", "remote_addr"], problems
    )
    _expect_names(aioice.ice.StunProtocol, "send_data", ["transport", "sendto"], problems)
    _expect_names(aioice.ice.StunProtocol, "datagram_received", ["receiver", "data_received"], problems)
    _expect_names(pylibsrtp.Session, "__init__", ["_cdata", "_srtp"], problems)
    # gather_host_candidates_on: the peer connection gathers on each of its ICE transports'
    # gatherer, which asks its aioice Connection; we replace that Connection's gather_candidates.
    _expect_names(
        RTCPeerConnection,
        "_RTCPeerConnection__gather",
        ["_RTCPeerConnection__iceTransports", "gather"],
        problems,
    )
    _expect_names(
        aiortc.rtcicetransport.RTCIceGatherer, "gather", ["_connection", "gather_candidates"], problems
    )
    _expect_names(
        aioice.ice.Connection,
        "gather_candidates",
        [
            "_local_candidates_start",
            "get_host_addresses",
            "_components",
            "_local_candidates",
            "_local_candidates_end",
        ],
        problems,
    )
    _expect_signature(
        aioice.ice.Connection,
        "get_component_candidates",
        ["self", "component", "addresses", "timeout"],
        problems,
    )
    # set_transceiver_codecs: setRemoteDescription fills ``_codecs``; the answer and the
    # send()/receive() parameters read it.
    _expect_names(RTCPeerConnection, "setRemoteDescription", ["_codecs"], problems)
    _expect_names(RTCPeerConnection, f"{_P}localRtp", ["_codecs"], problems)
    _expect_names(RTCPeerConnection, f"{_P}remoteRtp", ["_codecs"], problems)
    create_media = getattr(aiortc.rtcpeerconnection, "create_media_description_for_transceiver", None)
    if create_media is None or "_codecs" not in create_media.__code__.co_names:
        problems.append("create_media_description_for_transceiver no longer reads _codecs")
    if not hasattr(_rtp.RtpPacket(), "payload_type"):
        problems.append("RtpPacket.payload_type is missing")
    if not hasattr(aiortc.rtcdtlstransport, "State") or not hasattr(
        aiortc.rtcdtlstransport.State, "CONNECTED"
    ):
        problems.append("aiortc.rtcdtlstransport.State.CONNECTED is missing")
    # _skip_stun_parse: the protocols a connection gathered, and what each hands data to.
    _expect_names(aioice.ice.Connection, "__init__", ["_protocols"], problems)
    _expect_names(aioice.ice.StunProtocol, "datagram_received", ["receiver", "local_candidate"], problems)
    if not hasattr(_srtp_binding.lib, "srtp_protect"):
        problems.append("pylibsrtp._binding.lib.srtp_protect is missing")
    # The decoder path we bypass: the original handler queues frames only while a thread runs.
    _expect_names(
        RTCRtpReceiver, "_handle_rtp_packet", [f"{_R}decoder_queue", f"{_R}decoder_thread"], problems
    )
    # The sender creates its encoder only once its track yields (an idle track never does).
    _expect_names(RTCRtpSender, "_next_encoded_frame", ["recv", "get_encoder"], problems)
    for module, name in (
        (aiortc.rtcrtpreceiver, "get_decoder"),
        (aiortc.rtcrtpsender, "get_encoder"),
        (aiortc.codecs, "is_rtx"),
        (_rtp, "unwrap_rtx"),
        (_rtp, "pack_remb_fci"),
        (_rtp, "unpack_remb_fci"),
        (_rtp, "RtcpPsfbPacket"),
        (_rtp, "RtcpRtpfbPacket"),
        (_rtp, "RTCP_PSFB_PLI"),
        (_rtp, "RTCP_PSFB_FIR"),
        (_rtp, "RTCP_PSFB_APP"),
        (_rtp, "RTCP_RTPFB_NACK"),
        (_rtp, "RtcpByePacket"),
        (_rtp, "RtcpRrPacket"),
        (_rtp, "RtcpSrPacket"),
        (_clock, "current_ntp_time"),
    ):
        if not hasattr(module, name):
            problems.append(f"{module.__name__}.{name} is missing")
    packet = _rtp.RtpPacket()
    for attr in ("ssrc", "sequence_number", "timestamp", "marker", "payload_type", "payload", "padding_size"):
        if not hasattr(packet, attr):
            problems.append(f"RtpPacket.{attr} is missing")
    statistics = aiortc.rtcrtpreceiver.StreamStatistics(90000)  # received_counts reads these
    for attr in ("base_seq", "max_seq", "packets_received"):
        if not hasattr(statistics, attr):
            problems.append(f"StreamStatistics.{attr} is missing")
    if not isinstance(getattr(type(statistics), "packets_expected", None), property):
        problems.append("StreamStatistics.packets_expected is missing")
    for attr in ("audio_level", "mid", "rtp_stream_id", "repaired_rtp_stream_id"):
        if not hasattr(packet.extensions, attr):
            problems.append(f"HeaderExtensions.{attr} is missing")
    video_extensions = getattr(aiortc.codecs, "HEADER_EXTENSIONS", {}).get("video")
    if not isinstance(video_extensions, list):
        problems.append("aiortc.codecs.HEADER_EXTENSIONS['video'] is not a list")
    if not hasattr(aiortc.rtcrtpreceiver, "NackGenerator"):
        problems.append("aiortc.rtcrtpreceiver.NackGenerator is missing")
    _expect_names(aiortc.rtcdtlstransport.RtpRouter, "__init__", ["mid_table", "ssrc_table"], problems)
    if problems:
        raise InternalsError("aiortc internals changed: " + "; ".join(problems))


def _require(obj: object, attrs: Iterable[str]) -> None:
    missing = [a for a in attrs if not hasattr(obj, a)]
    if missing:
        raise InternalsError(f"{type(obj).__name__} lacks {missing}")


# --- codecs -------------------------------------------------------------------------------


def transceiver_codecs(transceiver: RTCRtpTransceiver) -> list[RTCRtpCodecParameters]:
    """The codecs negotiated for a transceiver, in answer order (``RTCRtpTransceiver._codecs``)."""
    _require(transceiver, TRANSCEIVER_ATTRS)
    return list(transceiver._codecs)


def set_transceiver_codecs(transceiver: RTCRtpTransceiver, codecs: list[RTCRtpCodecParameters]) -> None:
    """Answer with these codecs (fmtp included) instead of those aiortc found in common.

    Call between ``setRemoteDescription(offer)`` (which sets them from aiortc's own codec list,
    so a codec aiortc does not know, such as RED, is never there) and ``createAnswer``. Before
    the first answer only: aiortc fixes a receiver's codecs at its first ``receive()``.
    Relies on: ``RTCRtpTransceiver._codecs``, read by ``create_media_description_for_transceiver``
    (the answer) and ``RTCPeerConnection.__localRtp``/``__remoteRtp`` (``send()``/``receive()``).
    """
    _require(transceiver, TRANSCEIVER_ATTRS)
    transceiver._codecs = list(codecs)


# --- gathering ----------------------------------------------------------------------------


def gather_host_candidates_on(pc: RTCPeerConnection, addresses: Iterable[str]) -> None:
    """Make the peer connection gather host candidates on these local addresses only.

    aioice gathers on every non-loopback interface (``aioice.ice.get_host_addresses``) and
    aiortc offers no setting. Call this after the transceivers exist and before
    ``setLocalDescription`` (which gathers): it replaces ``gather_candidates`` on the aioice
    ``Connection`` of each ICE transport not gathered yet (``RTCPeerConnection.__iceTransports``,
    ``RTCIceGatherer._connection``) with the same steps on the given addresses; server-reflexive
    and relayed candidates are gathered as before (``get_component_candidates``).
    """
    chosen = list(addresses)
    for transport in getattr(pc, f"{_P}iceTransports"):
        connection: aioice.ice.Connection = transport.iceGatherer._connection
        if connection._local_candidates_start:
            continue
        connection.gather_candidates = _gather_on(connection, chosen)  # type: ignore[method-assign]


def _gather_on(
    connection: aioice.ice.Connection, addresses: list[str]
) -> Callable[[], Coroutine[Any, Any, None]]:
    async def gather_candidates() -> None:
        if connection._local_candidates_start:
            return
        connection._local_candidates_start = True
        found = await asyncio.gather(
            *(
                connection.get_component_candidates(component=component, addresses=addresses)
                for component in connection._components
            )
        )
        for candidates in found:
            connection._local_candidates += candidates
        connection._local_candidates_end = True

    return gather_candidates


# --- receiving from a publisher -----------------------------------------------------------


def negotiate_stream_ids() -> None:
    """Offer to receive the rtp-stream-id and repaired-rtp-stream-id header extensions on video.

    A simulcast browser tags each layer's packets (and each layer's retransmissions) with its
    rid only if the answer lists them. aiortc answers with the intersection of the offer and
    ``aiortc.codecs.HEADER_EXTENSIONS`` (the list ``RTCPeerConnection`` imported), so they are
    added to that list in place; aiortc's parser (``HeaderExtensionsMap``) then reads them. Its
    own senders never write them. Idempotent.
    """
    video = aiortc.codecs.HEADER_EXTENSIONS["video"]
    present = {ext.uri for ext in video}
    # One id space per bundled transport: aiortc's own offers must not reuse an audio id.
    used = {ext.id for extensions in aiortc.codecs.HEADER_EXTENSIONS.values() for ext in extensions}
    for uri in (RID_URI, REPAIRED_RID_URI):
        if uri not in present:
            ext_id = next(i for i in range(1, 15) if i not in used)
            used.add(ext_id)
            video.append(aiortc.RTCRtpHeaderExtensionParameters(id=ext_id, uri=uri))


class _NoThread:
    """Stands in for the decoder thread so that aiortc's handler queues frames to our shim."""

    def join(self) -> None:
        return None


class _FrameQueue:
    """Stands in for the decoder queue: hands each reassembled frame to a callback."""

    def __init__(self, on_frame: FrameHandler) -> None:
        self._on_frame = on_frame

    def put(self, item: tuple[RTCRtpCodecParameters, Any] | None) -> None:
        if item is not None:
            codec, frame = item
            self._on_frame(codec, bytes(frame.data), int(frame.timestamp))


def _stop_decoder_thread(receiver: RTCRtpReceiver) -> None:
    # RTCRtpReceiver.receive() always starts a decoder thread; stopping it at once means no
    # decoder can ever be created for this receiver (the thread creates it lazily).
    getattr(receiver, f"{_R}stop_decoder")()


def _after_receive(receiver: RTCRtpReceiver, then: Callable[[], None]) -> None:
    """Run ``then`` right after aiortc's ``receive()`` (called by the peer connection)."""
    original = receiver.receive

    async def receive(parameters: Any) -> None:
        started = getattr(receiver, f"{_R}decoder_thread") is not None
        await original(parameters)
        if not started and getattr(receiver, f"{_R}decoder_thread") is not None:
            then()

    receiver.receive = receive  # type: ignore[method-assign]


def tap_receiver(
    receiver: RTCRtpReceiver,
    on_packet: RtpHandler,
    repaired_ssrc: Callable[[str], int | None] | None = None,
    adjust_remb: Callable[[int], int] | None = None,
) -> None:
    """Hand every RTP packet of a publisher's track to ``on_packet``; never decode it.

    Replaces ``RTCRtpReceiver._handle_rtp_packet`` on the instance (the DTLS transport's router
    calls it by name) with a copy of its bookkeeping (receiver-report statistics, RTX
    unwrapping, upstream NACKs, REMB) that skips depayloading, the jitter buffer and the
    decoder queue, and stops the decoder thread that ``receive()`` starts.
    Simulcast: NACKs are generated per SSRC (aiortc's generator follows one), and an RTX packet
    on an SSRC the SDP did not pair is unwrapped to ``repaired_ssrc(rid)``, the media SSRC of the
    layer its repaired-rtp-stream-id names (remembered for that RTX SSRC). ``adjust_remb``
    turns aiortc's receive-side estimate into the bitrate the REMB to the publisher says, and a
    ``RembThrottle`` (``estimate.py``; the receiver's, see :func:`remb_throttle`) decides when
    one goes out.
    Relies on: ``_RTCRtpReceiver__codecs``, ``__remote_streams``, ``__rtx_ssrc``,
    ``__nack_generator``, ``__remote_bitrate_estimator``, ``__rtcp_ssrc``, ``__stop_decoder``,
    ``_send_rtcp``, ``_send_rtcp_nack``, ``aiortc.rtp.unwrap_rtx``.
    """
    _require(receiver, RECEIVER_ATTRS)
    codecs: dict[int, RTCRtpCodecParameters] = getattr(receiver, f"{_R}codecs")
    streams: dict[int, Any] = getattr(receiver, f"{_R}remote_streams")
    rtx_ssrc: dict[int, int] = getattr(receiver, f"{_R}rtx_ssrc")
    nack = getattr(receiver, f"{_R}nack_generator")
    nacks: dict[int, Any] = {}
    nack_generator = aiortc.rtcrtpreceiver.NackGenerator
    estimator = getattr(receiver, f"{_R}remote_bitrate_estimator")
    statistics = aiortc.rtcrtpreceiver.StreamStatistics
    throttle = RembThrottle()  # REMBs as libwebrtc's receiver sends them (see RembThrottle)
    setattr(receiver, _REMB_THROTTLE, throttle)

    def handle_now(packet: _rtp.RtpPacket, arrival_time_ms: int) -> None:
        if not receiver._enabled:
            return
        if estimator is not None and packet.extensions.abs_send_time is not None:
            remb = estimator.add(
                abs_send_time=packet.extensions.abs_send_time,
                arrival_time_ms=arrival_time_ms,
                payload_size=len(packet.payload) + packet.padding_size,
                ssrc=packet.ssrc,
            )
            rtcp_ssrc = getattr(receiver, f"{_R}rtcp_ssrc")
            if rtcp_ssrc is not None and remb is not None:
                bitrate, ssrcs = remb
                if adjust_remb is not None:
                    bitrate = adjust_remb(bitrate)
                if throttle.allow(arrival_time_ms, bitrate):
                    feedback = _rtp.RtcpPsfbPacket(
                        fmt=_rtp.RTCP_PSFB_APP,
                        ssrc=rtcp_ssrc,
                        media_ssrc=0,
                        fci=_rtp.pack_remb_fci(bitrate, ssrcs),
                    )
                    _spawn(receiver._send_rtcp(feedback))
        codec = codecs.get(packet.payload_type)
        if codec is None:
            return
        stream = streams.get(packet.ssrc)
        if stream is None:
            stream = streams[packet.ssrc] = statistics(codec.clockRate)
        stream.add(packet)
        if _is_rtx(codec):
            original_ssrc = rtx_ssrc.get(packet.ssrc)
            if original_ssrc is None and repaired_ssrc is not None:
                rid = packet.extensions.repaired_rtp_stream_id
                original_ssrc = repaired_ssrc(rid) if rid is not None else None
                if original_ssrc is not None:
                    rtx_ssrc[packet.ssrc] = original_ssrc
            apt = codec.parameters.get("apt")
            if (
                original_ssrc is None
                or len(packet.payload) < 2
                or not isinstance(apt, int)
                or apt not in codecs
            ):
                return
            packet = _rtp.unwrap_rtx(packet, payload_type=apt, ssrc=original_ssrc)
            codec = codecs[apt]
        if nack is not None:
            generator = nacks.get(packet.ssrc)
            if generator is None:
                generator = nacks[packet.ssrc] = nack if not nacks else nack_generator()
            if generator.add(packet):
                _spawn(receiver._send_rtcp_nack(packet.ssrc, sorted(generator.missing)))
        if packet.payload:  # padding-only packets are bandwidth probes, not media
            on_packet(packet, codec)

    async def handle(packet: _rtp.RtpPacket, arrival_time_ms: int) -> None:
        handle_now(packet, arrival_time_ms)

    receiver._handle_rtp_packet = handle  # type: ignore[method-assign]
    setattr(receiver, _SYNC_HANDLER, handle_now)  # direct_rtp_receive calls it without a task
    _after_receive(receiver, lambda: _stop_decoder_thread(receiver))


def remb_throttle(receiver: RTCRtpReceiver) -> RembThrottle | None:
    """The throttle of a receiver's REMBs to its publisher (None: not tapped)."""
    throttle: RembThrottle | None = getattr(receiver, _REMB_THROTTLE, None)
    return throttle


_TASKS: set[asyncio.Task[None]] = set()


def _spawn(coro: Coroutine[Any, Any, None]) -> None:
    """Run an RTCP send (NACK, REMB) without making the packet path wait for it."""
    task = asyncio.ensure_future(coro)
    _TASKS.add(task)
    task.add_done_callback(_TASKS.discard)


def route_rtp(router: Any, packet: _rtp.RtpPacket) -> Any:
    """The receiver of a packet: aiortc's ``RtpRouter.route_rtp``, else by its mid.

    aiortc learns an SSRC the SDP did not announce (a simulcast layer, its RTX) only from a
    payload type that one transceiver alone uses; when several share it (camera and screen),
    the mid header extension says whose it is, and the SSRC is remembered (``ssrc_table``).
    """
    receiver = router.route_rtp(packet)
    if receiver is None:
        receiver = router.mid_table.get(packet.extensions.mid)
        if receiver is not None:
            router.ssrc_table[packet.ssrc] = receiver
    return receiver


NTP_UNIX_OFFSET = 2_208_988_800  # seconds from 1900 (NTP's epoch) to 1970 (Unix's)


def now_ms() -> int:
    """``aiortc.clock.current_ms()`` (milliseconds since 1900, what aiortc's receive-side
    estimator reads arrival times in) without building two datetimes per packet."""
    return int((time.time() + NTP_UNIX_OFFSET) * 1000)


def _skip_stun_parse(protocol: Any) -> None:
    """Hand RTP and RTCP datagrams to the connection without aioice's STUN parse attempt.

    aioice's ``StunProtocol.datagram_received`` tries to parse every datagram as STUN and passes
    it on when that fails. A first byte of 128-191 is RTP or RTCP and never STUN (RFC 7983:
    STUN's is 0-3), so those go to ``Connection.data_received`` at once, as aioice would pass
    them. Relies on: the protocol's ``receiver`` and ``local_candidate.component``.
    """
    original = protocol.datagram_received
    receiver = protocol.receiver
    component = protocol.local_candidate.component  # set when the socket was gathered

    def datagram_received(data: bytes, addr: tuple[Any, ...]) -> None:
        if data and 127 < data[0] < 192:
            receiver.data_received(data, component)
        else:
            original(data, addr)

    protocol.datagram_received = datagram_received


def direct_rtp_receive(transport: RTCDtlsTransport) -> None:
    """Handle incoming SRTP media datagrams as they are read, without aiortc's queue and task.

    aiortc hands every datagram through a queue to a task per connection, awaiting four
    coroutines before a receiver sees it. For media (not RTCP, STUN or DTLS, which keep that
    path) on a connected transport, this unprotects, parses, routes and calls the tapped
    receiver's synchronous handler right in aioice's ``data_received``. Receivers without our
    tap get aiortc's own handler, as a task. Also keeps the transport's receive counters.
    RTP and RTCP datagrams skip aioice's STUN parse (:func:`_skip_stun_parse`).
    Relies on: aioice ``Connection.data_received`` (wrapped on the instance) and
    ``Connection._protocols``, the DTLS
    transport's ``_state``, ``_rx_srtp``, ``_rtp_header_extensions_map``, ``_rtp_router``,
    ``__rx_bytes``/``__rx_packets``, ``aiortc.rtp.is_rtcp``; arrival times in
    ``aiortc.clock.current_ms``'s scale (:func:`now_ms`).
    """
    connection: Any = transport._transport._connection
    for protocol in connection._protocols:  # the sockets gathered for this connection
        _skip_stun_parse(protocol)
    original = connection.data_received
    router = transport._rtp_router
    extensions = transport._rtp_header_extensions_map
    rx_bytes, rx_packets = DTLS_RX_COUNTERS

    def data_received(data: bytes, component: int) -> None:
        session = transport._rx_srtp
        if (
            not (127 < data[0] < 192)
            or session is None
            or transport._state is not _CONNECTED
            or _rtp.is_rtcp(data)
        ):
            original(data, component)
            return
        setattr(transport, rx_bytes, getattr(transport, rx_bytes) + len(data))
        setattr(transport, rx_packets, getattr(transport, rx_packets) + 1)
        arrival_time_ms = now_ms()
        try:
            packet = _rtp.RtpPacket.parse(session.unprotect(data), extensions)
        except (pylibsrtp.Error, ValueError):
            return  # as aiortc: a packet that does not authenticate or parse is dropped
        receiver = route_rtp(router, packet)
        if receiver is None:
            return
        handle = getattr(receiver, _SYNC_HANDLER, None)
        if handle is not None:
            handle(packet, arrival_time_ms)
        else:
            _spawn(receiver._handle_rtp_packet(packet, arrival_time_ms=arrival_time_ms))

    connection.data_received = data_received


def tap_receiver_frames(receiver: RTCRtpReceiver, on_frame: FrameHandler) -> None:
    """Frame-level alternative (benchmark baseline): reassembled encoded frames, not decoded.

    Keeps aiortc's own ``_handle_rtp_packet`` (jitter buffer included) but, once ``receive()``
    has run, stops the decoder thread and puts a shim in place of ``__decoder_queue`` so the
    frames the jitter buffer completes go to ``on_frame(codec, data, timestamp)``.
    Relies on: ``_RTCRtpReceiver__decoder_queue``, ``__decoder_thread``, ``__stop_decoder``.
    """
    _require(receiver, RECEIVER_ATTRS)

    def install() -> None:
        _stop_decoder_thread(receiver)
        setattr(receiver, f"{_R}decoder_queue", _FrameQueue(on_frame))
        setattr(receiver, f"{_R}decoder_thread", _NoThread())

    _after_receive(receiver, install)


def decoder_thread(receiver: RTCRtpReceiver) -> threading.Thread | None:
    """The receiver's decoder thread, if one runs (``_RTCRtpReceiver__decoder_thread``)."""
    thread = getattr(receiver, f"{_R}decoder_thread")
    return thread if isinstance(thread, threading.Thread) else None


async def request_keyframe(receiver: RTCRtpReceiver, media_ssrc: int) -> None:
    """Send a PLI to the publisher (``RTCRtpReceiver._send_rtcp_pli``)."""
    await receiver._send_rtcp_pli(media_ssrc)


# --- sending to a subscriber --------------------------------------------------------------


class SenderFeedback:
    """What a subscriber's RTCP says about one of our senders; the forwarder overrides these."""

    async def on_nack(self, lost: list[int]) -> None:
        """The subscriber lost these (rewritten) sequence numbers."""

    async def on_keyframe_request(self) -> None:
        """The subscriber's decoder asked for a keyframe (PLI or FIR)."""

    async def on_remb(self, bitrate: int) -> None:
        """The subscriber estimates its downlink at ``bitrate`` bits per second."""

    async def on_receiver_report(self, fraction_lost: int, jitter: int, lsr: int, dlsr: int) -> None:
        """A report block about this sender (RFC 3550 6.4.1: loss in 1/256, jitter in RTP
        timestamp units, LSR and DLSR in 1/65536 s)."""


def tap_sender_rtcp(sender: RTCRtpSender, feedback: SenderFeedback) -> None:
    """Route a subscriber's NACK, PLI/FIR and REMB for this sender to ``feedback``.

    Replaces ``RTCRtpSender._handle_rtcp_packet`` on the instance (the transport's router calls
    it by name); the report blocks about this sender in receiver (and sender) reports go to
    ``feedback.on_receiver_report`` and still to aiortc's handler for its statistics.
    Relies on: ``RTCRtpSender._handle_rtcp_packet``, ``_ssrc``, ``aiortc.rtp`` RTCP classes.
    """
    _require(sender, SENDER_ATTRS)
    original = sender._handle_rtcp_packet

    async def handle(packet: Any) -> None:
        if isinstance(packet, _rtp.RtcpRtpfbPacket) and packet.fmt == _rtp.RTCP_RTPFB_NACK:
            await feedback.on_nack(list(packet.lost))
        elif isinstance(packet, _rtp.RtcpPsfbPacket) and packet.fmt in (
            _rtp.RTCP_PSFB_PLI,
            _rtp.RTCP_PSFB_FIR,
        ):
            await feedback.on_keyframe_request()
        elif isinstance(packet, _rtp.RtcpPsfbPacket) and packet.fmt == _rtp.RTCP_PSFB_APP:
            try:
                bitrate, ssrcs = _rtp.unpack_remb_fci(packet.fci)
            except ValueError:
                return
            if sender._ssrc in ssrcs:
                await feedback.on_remb(bitrate)
        else:
            if isinstance(packet, (_rtp.RtcpRrPacket, _rtp.RtcpSrPacket)):
                for report in packet.reports:
                    if report.ssrc == sender._ssrc:
                        await feedback.on_receiver_report(
                            report.fraction_lost, report.jitter, report.lsr, report.dlsr
                        )
            await original(packet)

    sender._handle_rtcp_packet = handle  # type: ignore[method-assign]


@dataclass(frozen=True, slots=True)
class SendTarget:
    """Everything needed to put packets on the wire for one sender of a peer connection."""

    mid: str
    ssrc: int
    rtx_ssrc: int
    codecs: tuple[RTCRtpCodecParameters, ...]
    mid_ext_id: int | None
    audio_level_ext_id: int | None
    abs_send_time_ext_id: int | None


def send_target(transceiver: RTCRtpTransceiver) -> SendTarget:
    """The negotiated codecs, header extension ids and SSRCs of a transceiver's sender.

    Relies on: ``RTCRtpTransceiver._codecs``, ``._headerExtensions``, ``RTCRtpSender._ssrc``,
    ``._rtx_ssrc`` (the SSRCs aiortc announced in the SDP).
    """
    _require(transceiver, TRANSCEIVER_ATTRS)
    extensions = {ext.uri: ext.id for ext in transceiver._headerExtensions}
    return SendTarget(
        mid=transceiver.mid or "",
        ssrc=transceiver.sender._ssrc,
        rtx_ssrc=transceiver.sender._rtx_ssrc,
        codecs=tuple(transceiver._codecs),
        mid_ext_id=extensions.get(MID_URI),
        audio_level_ext_id=extensions.get(AUDIO_LEVEL_URI),
        abs_send_time_ext_id=extensions.get(ABS_SEND_TIME_URI),
    )


_CONNECTED = aiortc.rtcdtlstransport.State.CONNECTED
_SRTP_TRAILER: int = getattr(pylibsrtp, "SRTP_MAX_TRAILER_LEN", 16 + 128)  # tag + MKI


class RtpWire:
    """SRTP-protects and sends RTP on a DTLS transport, synchronously: no coroutine per packet.

    aiortc's path (``_send_rtp`` -> ``Connection.send`` -> ``sendto`` -> ``send_data``) is four
    awaited coroutines and two copies per packet; this writes the header and the payload into
    the SRTP session's own buffer, protects it in place with libsrtp's ``srtp_protect`` and hands
    a view of it to the nominated pair's UDP transport (which copies only if it has to queue).
    Everything runs on the event loop thread, so sharing the session buffer with aiortc's own
    (synchronous) ``protect_rtcp`` calls is safe.
    Relies on: ``RTCDtlsTransport._state``, ``._transport``, ``._tx_srtp`` and its transmit
    counters, ``RTCIceTransport._connection``, aioice ``Connection._nominated`` (pair
    ``.protocol.transport``, ``.remote_addr``), pylibsrtp ``Session._cdata``/``._srtp`` and
    ``pylibsrtp._binding.lib.srtp_protect`` (the libsrtp 2 signature pylibsrtp itself calls);
    optionally asyncio's datagram transport ``_sock``/``_buffer`` (written to directly while
    nothing is buffered, as its ``sendto()`` does; other transports get ``sendto()``).
    """

    __slots__ = (
        "_addr",
        "_cdata",
        "_connection",
        "_counted_bytes",
        "_counted_packets",
        "_dtls",
        "_len",
        "_limit",
        "_pair",
        "_py_bytes",
        "_py_packets",
        "_session",
        "_sock",
        "_srtp",
        "_udp",
        "_view",
        "fast",
    )

    def __init__(self, transport: RTCDtlsTransport, fast: Any = None) -> None:
        self._dtls = transport
        # The C path (meetings/rtc/_fastpath.Wire) bound here to the same session and socket;
        # None: this class protects and sends in Python.
        self.fast = fast
        self._connection: Any = transport._transport._connection
        self._session: Any = None
        self._pair: Any = None
        self._udp: Any = None
        self._sock: Any = None
        self._addr: Any = None
        self._cdata: Any = None
        self._view: memoryview | None = None
        self._srtp: Any = None
        self._len = _srtp_binding.ffi.new("int *")
        self._limit = 0
        self._py_packets = 0
        self._py_bytes = 0
        self._counted_packets = 0
        self._counted_bytes = 0

    @property
    def transport(self) -> RTCDtlsTransport:
        return self._dtls

    @property
    def sent_packets(self) -> int:
        return self._py_packets + (self.fast.packets if self.fast is not None else 0)

    @property
    def sent_bytes(self) -> int:
        return self._py_bytes + (self.fast.bytes if self.fast is not None else 0)

    def _connected(self) -> bool:
        return self._dtls._state is _CONNECTED and self._connection._nominated.get(1) is self._pair

    def _bind(self) -> None:
        dtls = self._dtls
        pair = self._connection._nominated.get(1)
        if dtls._state is not _CONNECTED or pair is None:
            if self.fast is not None:
                self.fast.unbind()
            raise ConnectionError("Cannot send encrypted RTP, not connected")
        session = dtls._tx_srtp
        if session is not self._session:
            self._session = session
            self._cdata = session._cdata
            self._view = memoryview(_srtp_binding.ffi.buffer(session._cdata))
            self._srtp = session._srtp[0]
            self._limit = len(self._view) - _SRTP_TRAILER
        self._pair = pair
        udp = pair.protocol.transport
        self._udp = udp
        self._addr = pair.remote_addr
        # asyncio's selector datagram transport: write to its socket directly while it has
        # nothing buffered (what its sendto() does, minus a layer of checks per packet).
        sock, buffered = getattr(udp, "_sock", None), getattr(udp, "_buffer", None)
        self._sock = sock if sock is not None and isinstance(buffered, deque) else None
        fast = self.fast
        if fast is not None:
            if self._sock is not None and isinstance(self._addr, tuple):  # plain UDP (not a TURN relay)
                bind_fast_wire(fast, session, self._sock, self._addr)
            else:
                fast.unbind()

    def send(self, header: bytes | bytearray, payload: bytes) -> None:
        """Protect ``header + payload`` and send it; ``ConnectionError`` if not connected."""
        if self._dtls._state is not _CONNECTED or self._connection._nominated.get(1) is not self._pair:
            self._bind()
        fast = self.fast
        if fast is not None and fast.bound:
            fast.send(header, payload)
            return
        view = self._view
        assert view is not None
        h = len(header)
        n = h + len(payload)
        if n > self._limit:
            raise ValueError("packet is too long")
        view[:h] = header
        view[h:n] = payload
        length = self._len
        length[0] = n
        rc = _srtp_binding.lib.srtp_protect(self._srtp, self._cdata, length)
        if rc:
            raise ConnectionError(f"SRTP protect failed ({rc})")
        size = length[0]
        sock = self._sock
        if sock is not None and not self._udp._buffer:
            try:
                sock.sendto(view[:size], self._addr)
            except (BlockingIOError, InterruptedError):
                self._udp.sendto(view[:size], self._addr)  # the transport queues a copy
            except OSError:
                return  # as asyncio does: a datagram that cannot be sent is lost
        else:
            self._udp.sendto(view[:size], self._addr)
        self._py_packets += 1
        self._py_bytes += size

    def send_rtcp(self, data: bytes) -> None:
        """Protect (SRTCP) and send a compound RTCP packet; ``ConnectionError`` if not connected."""
        if not self._connected():
            self._bind()
        protected = self._session.protect_rtcp(data)
        self._udp.sendto(protected, self._addr)

    def sync_counters(self) -> None:
        """Add what was sent since the last call to the transport's statistics (getStats).

        Also stops the C path once the connection is gone or its pair changed: between two
        calls (one SFU tick) it may still send on the old pair, which is harmless.
        """
        fast = self.fast
        if fast is not None and fast.bound and not self._connected():
            fast.unbind()
        dtls = self._dtls
        packets, sent = self.sent_packets - self._counted_packets, self.sent_bytes - self._counted_bytes
        if packets:
            setattr(dtls, DTLS_COUNTERS[0], getattr(dtls, DTLS_COUNTERS[0]) + sent)
            setattr(dtls, DTLS_COUNTERS[1], getattr(dtls, DTLS_COUNTERS[1]) + packets)
            self._counted_packets, self._counted_bytes = self.sent_packets, self.sent_bytes


def bind_fast_wire(fast: Any, session: pylibsrtp.Session, sock: Any, addr: tuple[str, int]) -> None:
    """Point a ``_fastpath.Wire`` at an SRTP session (libsrtp's ``srtp_protect``, the session's
    context and buffer, kept alive by the wire) and a UDP socket and remote address."""
    ffi = _srtp_binding.ffi
    cdata: Any = session._cdata
    srtp: Any = session._srtp
    fast.bind(
        int(ffi.cast("uintptr_t", ffi.addressof(_srtp_binding.lib, "srtp_protect"))),
        int(ffi.cast("uintptr_t", srtp[0])),
        int(ffi.cast("uintptr_t", cdata)),
        len(ffi.buffer(cdata)) - _SRTP_TRAILER,
        session,
        sock,
        addr[0],
        addr[1],
    )


def rtp_wire(transport: RTCDtlsTransport, fast: Any = None) -> RtpWire:
    """The synchronous RTP send path of a (bundled) DTLS transport; see ``RtpWire``.

    ``fast``: a ``_fastpath.Wire`` to bind to the same session and socket (the slots' C path)."""
    return RtpWire(transport, fast)


def ntp_now() -> int:
    """The 64-bit NTP time now (``aiortc.clock``), for ``update_sender_report``."""
    return _clock.current_ntp_time()


def update_sender_report(
    sender: RTCRtpSender, rtp_timestamp: int, packets: int, octets: int, ntp: int | None = None
) -> None:
    """Make the sender's RTCP sender reports describe what we forwarded on its SSRC.

    Relies on: ``_RTCRtpSender__ntp_timestamp``, ``__rtp_timestamp``, ``__packet_count``,
    ``__octet_count`` (read by ``RTCRtpSender._run_rtcp``).
    """
    setattr(sender, f"{_S}ntp_timestamp", _clock.current_ntp_time() if ntp is None else ntp)
    setattr(sender, f"{_S}rtp_timestamp", rtp_timestamp)
    setattr(sender, f"{_S}packet_count", packets)
    setattr(sender, f"{_S}octet_count", octets)


def quiet_sender_rtcp(sender: RTCRtpSender) -> None:
    """Stop the sender's own RTCP loop (a sender report every ~1 s, per sender, each through
    aiortc's coroutine send path); ``sender_reports`` builds one compound packet per connection
    instead. On stop, the sender still says BYE as aiortc's loop does.
    Call before the sender starts (``send()`` starts ``_run_rtcp`` by name).
    Relies on: ``RTCRtpSender._run_rtcp``, ``_send_rtcp``, ``_RTCRtpSender__rtcp_started``,
    ``__rtcp_exited`` (what ``stop()`` waits for).
    """
    _require(sender, SENDER_ATTRS)

    async def run_rtcp() -> None:
        getattr(sender, f"{_S}rtcp_started").set()
        with contextlib.suppress(asyncio.CancelledError):  # as aiortc's loop: stop() cancels, then BYE
            await asyncio.Event().wait()
        await sender._send_rtcp([_rtp.RtcpByePacket(sources=[sender._ssrc])])
        getattr(sender, f"{_S}rtcp_exited").set()  # what stop() waits for

    sender._run_rtcp = run_rtcp  # type: ignore[method-assign]


_SR = struct.Struct("!BBHIQIII")  # RFC 3550 sender report without report blocks (28 bytes)
_RTCP_HEADER = struct.Struct("!BBH")


def sender_reports(reports: Iterable[tuple[RTCRtpSender, int, int, int]], ntp: int) -> bytes:
    """One compound RTCP packet: a sender report per ``(sender, rtp_timestamp, packets, octets)``
    and one SDES with their CNAMEs (RFC 3550 6.4.1, 6.5); records what each sender reported (its
    LSR, for round-trip times from the receiver reports, and the counters its statistics show).
    Relies on: ``_RTCRtpSender__lsr``, ``__lsr_time``, ``__cname`` and the counters in
    ``update_sender_report``.
    """
    out = bytearray()
    chunks: list[bytes] = []
    now = time.time()
    lsr = (ntp >> 16) & 0xFFFFFFFF
    for sender, rtp_timestamp, count, octets in reports:
        update_sender_report(sender, rtp_timestamp, count, octets, ntp)
        out += _SR.pack(
            0x80, 200, 6, sender._ssrc, ntp, rtp_timestamp, count & 0xFFFFFFFF, octets & 0xFFFFFFFF
        )
        setattr(sender, f"{_S}lsr", lsr)
        setattr(sender, f"{_S}lsr_time", now)
        cname = getattr(sender, f"{_S}cname")
        if cname is not None:
            item = cname.encode()[:255]
            chunk = struct.pack("!IBB", sender._ssrc, 1, len(item)) + item + b"\x00"  # CNAME, end of items
            chunks.append(chunk + b"\x00" * (-len(chunk) % 4))
    # One chunk per SDES packet: what RFC 3550 allows and what every parser reads (aiortc's own,
    # used by the test clients, misreads the padding between chunks of one packet).
    for chunk in chunks:
        out += _RTCP_HEADER.pack(0x81, 202, len(chunk) // 4) + chunk
    return bytes(out)


def received_counts(receiver: RTCRtpReceiver) -> tuple[int, int]:
    """Media packets expected (by sequence number) and received so far by a publication's
    receiver, RTX left out: the statistics aiortc keeps for its receiver reports.
    Relies on: ``_RTCRtpReceiver__remote_streams`` (``StreamStatistics``), ``__rtx_ssrc``.
    """
    streams: dict[int, Any] = getattr(receiver, f"{_R}remote_streams")
    rtx: dict[int, int] = getattr(receiver, f"{_R}rtx_ssrc")
    expected = received = 0
    for ssrc, stream in streams.items():
        if ssrc in rtx or stream.base_seq is None or stream.max_seq is None:
            continue
        expected += stream.packets_expected
        received += stream.packets_received
    return expected, received


def received_bytes(transport: RTCDtlsTransport) -> int:
    """Bytes received so far on a (bundled) transport (``_RTCDtlsTransport__rx_bytes``)."""
    return int(getattr(transport, DTLS_RX_COUNTERS[0]))


def sender_has_encoder(sender: RTCRtpSender) -> bool:
    """Whether aiortc created an encoder for this sender (``_RTCRtpSender__encoder``)."""
    return getattr(sender, f"{_S}encoder") is not None


def packet_audio_level(packet: _rtp.RtpPacket) -> int | None:
    """The RFC 6464 level in -dBov (0 loudest, 127 silence) parsed by aiortc, if present."""
    level = packet.extensions.audio_level
    if level is None:
        return None
    return int(level[1])


# --- observation (tests and benchmarks) ---------------------------------------------------


def observe_received_rtp(receiver: RTCRtpReceiver, on_packet: Callable[[RtpPacket], None]) -> None:
    """Call ``on_packet`` for each RTP packet a (client) receiver gets, then handle it as usual.

    Wraps ``RTCRtpReceiver._handle_rtp_packet`` on the instance.
    """
    original = receiver._handle_rtp_packet

    async def handle(packet: RtpPacket, arrival_time_ms: int) -> None:
        on_packet(packet)
        await original(packet, arrival_time_ms)

    receiver._handle_rtp_packet = handle  # type: ignore[method-assign]


def observe_sent_rtp(transport: RTCDtlsTransport, on_packet: Callable[[RtpPacket], None]) -> None:
    """Call ``on_packet`` for each plain RTP packet sent on a transport (``_send_rtp``)."""
    original = transport._send_rtp

    async def send(data: bytes) -> None:
        if not _rtp.is_rtcp(data):
            on_packet(_rtp.RtpPacket.parse(data))
        await original(data)

    transport._send_rtp = send  # type: ignore[method-assign]


def rewrite_sent_rtp(transport: RTCDtlsTransport, rewrite: Callable[[bytes], bytes]) -> None:
    """Test clients: each plain RTP packet sent on a transport goes out as ``rewrite(packet)``
    (RTCP untouched); wraps ``RTCDtlsTransport._send_rtp`` on the instance."""
    original = transport._send_rtp

    async def send(data: bytes) -> None:
        await original(data if _rtp.is_rtcp(data) else rewrite(data))

    transport._send_rtp = send  # type: ignore[method-assign]


def observe_received_rtcp(transport: RTCDtlsTransport, on_packet: Callable[[Any], None]) -> None:
    """Test clients and benchmarks: ``on_packet`` sees each RTCP packet a transport receives (aiortc's
    parsed ``RtcpPacket`` classes) before aiortc routes it, including feedback about SSRCs none of
    its senders has (the benchmark's hand-written simulcast layers). Wraps
    ``RTCDtlsTransport._handle_rtcp_data`` on the instance."""
    original = transport._handle_rtcp_data

    async def handle(data: bytes) -> None:
        with contextlib.suppress(ValueError):
            for packet in _rtp.RtcpPacket.parse(data):
                on_packet(packet)
        await original(data)

    transport._handle_rtcp_data = handle  # type: ignore[method-assign]


def route_payload_type(receiver: RTCRtpReceiver, payload_type: int) -> None:
    """Test clients: hand packets of a payload type aiortc did not negotiate (RED) to this
    receiver, so that ``observe_received_rtp`` sees them (aiortc then drops them, knowing no
    codec for them). Relies on ``RTCDtlsTransport._rtp_router.payload_type_table``."""
    table: dict[int, set[Any]] = receiver.transport._rtp_router.payload_type_table
    table.setdefault(payload_type, set()).add(receiver)


def divert_received_rtp(transport: RTCDtlsTransport, keep: Callable[[int], bool]) -> None:
    """Benchmarks' cheap receivers: ``keep(size)`` sees each incoming SRTP datagram first.

    aiortc unprotects and handles the datagram only if ``keep`` returns True; RTCP, STUN and
    DTLS always pass. Wraps aioice ``Connection.data_received`` on the instance (the nominated
    pair's ``StunProtocol.datagram_received`` calls it by name).
    """
    connection: Any = transport._transport._connection
    original = connection.data_received

    def data_received(data: bytes, component: int) -> None:
        if 127 < data[0] < 192 and not (len(data) >= 2 and 192 <= data[1] <= 208) and not keep(len(data)):
            return
        original(data, component)

    connection.data_received = data_received
