"""Simulcast layers: the VP8 descriptor, rid negotiation, per-layer routing and switching, and
the continuity (sequence numbers, picture ids, TL0PICIDX) a receiver sees across switches."""

from __future__ import annotations

import asyncio
import itertools
import logging
from typing import Any

import pytest
from aiortc import RTCRtpCodecParameters
from aiortc.rtp import RtpPacket

from meetings.rtc import simulcast, vp8
from meetings.rtc.forwarder import DownlinkQueue, KeyframeThrottle
from meetings.rtc.selection import LevelWindow
from meetings.rtc.sfu import (
    DYNACAST_HOLD,
    LAYER_NOMINAL_BPS,
    LAYER_RAMP,
    LAYER_TIMEOUT,
    Layer,
    LayerChanged,
    LayersWanted,
    Publication,
    Sfu,
    SfuConfig,
    SfuEvent,
    _Participant,
    _Slot,
)
from tests.rtc.test_forwarder import IMPLEMENTATIONS, Impl, Sink, _target, vp8_packet


@pytest.fixture(params=IMPLEMENTATIONS)
def impl(request: pytest.FixtureRequest) -> Impl:
    return Impl(request.param)


# --- the VP8 payload descriptor -----------------------------------------------------------------


def test_descriptor_fields_are_read_and_rewritten_in_place() -> None:
    payload = vp8_packet(0x1234, 77, 2, sync=True, start=True)
    d = vp8.parse_descriptor(payload)
    assert d is not None
    assert (d.size, d.start, d.picture_id, d.long_picture_id, d.tl0picidx, d.tid, d.layer_sync) == (
        6,
        True,
        0x1234,
        True,
        77,
        2,
        True,
    )
    rewritten = vp8.rewrite_descriptor(payload, d, 0x7FFF, 3)
    again = vp8.parse_descriptor(rewritten)
    assert again is not None and (again.picture_id, again.tl0picidx, again.tid) == (0x7FFF, 3, 2)
    assert len(rewritten) == len(payload) and rewritten[6:] == payload[6:]
    short = vp8.parse_descriptor(vp8_packet(0x45, 1, 0, long_id=False))
    assert short is not None and short.picture_id == 0x45 and not short.long_picture_id and short.size == 5
    assert vp8.parse_descriptor(bytes([0x90, 0x80])) is None  # I set, picture id missing
    assert vp8.parse_descriptor(b"") is None
    plain = vp8.parse_descriptor(bytes([0x10, 0x00]))
    assert plain is not None and plain.tid is None and plain.picture_id is None and plain.size == 1


def test_keyframe_size_is_read_from_the_vp8_frame_header() -> None:
    # RFC 6386 9.1: 3-byte tag, start code, 14-bit width and height (2 scale bits above).
    header = b"\x00\x00\x00\x9d\x01\x2a" + (640 | 0x4000).to_bytes(2, "little") + (360).to_bytes(2, "little")
    assert vp8.keyframe_size(bytes([0x90, 0x80, 0x81, 0x00]) + header) == (640, 360)
    assert vp8.keyframe_size(bytes([0x90, 0x80, 0x81, 0x00]) + b"\x01" + header[1:]) is None  # delta
    assert vp8.keyframe_size(bytes([0x80, 0x80, 0x81, 0x00]) + header) is None  # not a frame start


# --- negotiation -----------------------------------------------------------------------------


def _offer(*lines: str) -> str:
    body = [
        "v=0",
        "m=audio 9 UDP/TLS/RTP/SAVPF 111",
        "a=mid:0",
        "a=sendrecv",
        "m=video 9 UDP/TLS/RTP/SAVPF 96",
        "a=mid:1",
        "a=sendrecv",
        *lines,
        "",
    ]
    return "\r\n".join(body)


def test_the_rids_of_an_offer_are_read_in_simulcast_order() -> None:
    sdp = _offer("a=rid:f send", "a=rid:q send max-width=320", "a=rid:h send", "a=simulcast:send q;h;f")
    assert simulcast.offered_layers(sdp) == {"1": ("q", "h", "f")}
    assert simulcast.offered_layers(_offer()) == {}  # no simulcast: a single-layer publication


def test_bad_rids_are_refused_with_a_logged_reason(caplog: pytest.LogCaptureFixture) -> None:
    sdp = _offer(
        "a=rid:q send",
        "a=rid:h send",
        "a=rid:bad-rid send",
        "a=rid:x send",
        "a=rid:y send",
        "a=rid:z send",
        "a=rid:unlisted send",
        "a=simulcast:send q;~h;bad-rid;nope;x;q;y;z",
    )
    with caplog.at_level(logging.INFO, logger="meetings.rtc.simulcast"):
        # ~h: paused now (dynacast turned it off before this renegotiation), still a layer.
        assert simulcast.offered_layers(sdp) == {"1": ("q", "h", "x")}
    reasons = caplog.text
    assert "'y'" in reasons and "at most 3 layers" in reasons
    assert "'bad-rid'" in reasons and "not a valid rid" in reasons
    assert "'nope'" in reasons and "no a=rid send line" in reasons
    assert "listed twice" in reasons
    assert "'z'" in reasons and "at most 3 layers" in reasons
    assert "'unlisted'" in reasons and "not in a=simulcast" in reasons
    long_rid = "a" * 17
    assert simulcast.offered_layers(_offer(f"a=rid:{long_rid} send", f"a=simulcast:send {long_rid}")) == {}


def test_the_answer_gets_the_matching_receive_lines() -> None:
    answer = _offer("a=recvonly")
    munged = simulcast.answer_layers(answer, {"1": ("q", "h", "f")})
    video = munged.split("m=video")[1]
    assert "a=rid:q recv\r\na=rid:h recv\r\na=rid:f recv\r\na=simulcast:recv q;h;f\r\n" in video
    assert "a=rid" not in munged.split("m=video")[0]
    assert munged.endswith("\r\n") and simulcast.answer_layers(answer, {}) == answer


# --- continuity across temporal drops and spatial switches -------------------------------------


def _stream(slot: Any, frames: list[tuple[int, int, int, bool]], seq: int, now: float) -> int:
    """Forward (picture id, tl0, tid, keyframe) frames of two packets each; returns the next seq."""
    for picture_id, tl0, tid, key in frames:
        for part in range(2):
            payload = vp8_packet(
                picture_id, tl0, tid, start=part == 0, keyframe=key and part == 0, sync=tid > 0
            )
            slot.forward("VP8", seq, picture_id * 3000, part, payload, key and part == 0, None, None, now)
            seq = (seq + 1) % 65536
    return seq


def _l1t3(
    first_picture: int, first_tl0: int, count: int, key: bool = True
) -> list[tuple[int, int, int, bool]]:
    pattern = [0, 2, 1, 2]
    frames: list[tuple[int, int, int, bool]] = []
    tl0 = first_tl0
    for i in range(count):
        tid = pattern[i % 4]
        if tid == 0 and i:
            tl0 = (tl0 + 1) % 256
        frames.append(((first_picture + i) % 32768, tl0, tid, key and i == 0))
    return frames


def test_seq_and_picture_ids_stay_contiguous_across_drops_and_a_switch(impl: Impl) -> None:
    sink = Sink()
    slot = impl.slot(_target(), sink)
    slot.switch("publisher")
    seq = _stream(slot, _l1t3(32760, 250, 8), 65530, 0.0)  # all layers, through both wraps
    slot.set_temporal(0)  # base layer only from the next frame
    seq = _stream(slot, _l1t3(32768 % 32768, 252, 8, key=False), seq, 0.3)
    slot.switch_layer()  # another simulcast layer: its own numbering everywhere
    _stream(slot, _l1t3(1000, 9, 8), 20000, 0.6)
    slot.downlink.flush()
    packets = [RtpPacket.parse(d) for d in sink.sent]
    seqs = [p.sequence_number for p in packets]
    assert all((b - a) % 65536 == 1 for a, b in itertools.pairwise(seqs)), seqs
    descriptors = [vp8.parse_descriptor(p.payload) for p in packets]
    pictures = [d.picture_id or 0 for d in descriptors if d is not None and d.start]
    assert all((b - a) % 32768 == 1 for a, b in itertools.pairwise(pictures)), pictures
    tids = [d.tid for d in descriptors if d is not None]
    assert tids[16:24] == [0] * 8  # only the base layer while temporal 0 held (2 frames x 2 packets)
    tl0s = [d.tl0picidx or 0 for d in descriptors if d is not None and d.start]
    assert all((b - a) % 256 in (0, 1) for a, b in itertools.pairwise(tl0s)), tl0s
    assert slot.stats.skipped_temporal == 24  # 2 x 6 frames of TID 1/2, two packets each


def test_temporal_layers_come_back_at_a_layer_sync_frame(impl: Impl) -> None:
    sink = Sink()
    slot = impl.slot(_target(), sink)
    slot.switch("publisher")
    slot.set_temporal(0)
    seq = _stream(slot, _l1t3(1, 1, 4), 100, 0.0)
    slot.set_temporal(None)
    # TID 2 without the sync flag: still dropped; then a sync frame lets it through.
    slot.forward("VP8", seq, 0, 0, vp8_packet(5, 2, 2, sync=False), False, None, None, 0.1)
    assert slot.tid_max == 0
    slot.forward("VP8", seq + 1, 0, 0, vp8_packet(6, 2, 2, sync=True), False, None, None, 0.1)
    assert slot.tid_max == 2


# --- the forwarding unit: layers of one publication ------------------------------------------


class _Receiver:
    def __init__(self) -> None:
        self.plis: list[int] = []

    async def _send_rtcp_pli(self, media_ssrc: int) -> None:
        self.plis.append(media_ssrc)


class _Transceiver:
    def __init__(self) -> None:
        self.receiver = _Receiver()


VP8_CODEC = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=96)


def _packet(ssrc: int, seq: int, payload: bytes, rid: str | None = None) -> RtpPacket:
    packet = RtpPacket(
        payload_type=96, sequence_number=seq % 65536, timestamp=seq * 3000, ssrc=ssrc, payload=payload
    )
    packet.extensions.rtp_stream_id = rid
    return packet


def _keyframe(width: int) -> bytes:
    frame = (
        b"\x00\x00\x00\x9d\x01\x2a" + width.to_bytes(2, "little") + (width * 9 // 16).to_bytes(2, "little")
    )
    return bytes([0x90, 0x80, 0x81, 0x00]) + frame


async def test_layers_route_by_rid_and_switch_at_the_target_keyframe(
    caplog: pytest.LogCaptureFixture,
) -> None:
    events: list[SfuEvent] = []
    sfu = Sfu(SfuConfig(keyframe_interval=0.0, adaptive=False), on_event=events.append)
    try:
        publisher = _Participant("pub", pc=None, downlink=DownlinkQueue(Sink()))  # type: ignore[arg-type]
        viewer = _Participant("viewer", pc=None, downlink=DownlinkQueue(Sink()))  # type: ignore[arg-type]
        sfu._participants.update(pub=publisher, viewer=viewer)
        transceiver = _Transceiver()
        pub = Publication(
            participant="pub",
            mid="1",
            kind="video",
            source="camera",
            transceiver=transceiver,  # type: ignore[arg-type]
            throttle=KeyframeThrottle(),
            levels=LevelWindow(1.0),
        )
        publisher.publications["1"] = pub
        sfu._set_layers(pub, ("q", "h", "f"))
        sink = Sink()
        forwarder = sfu._slot_class(_target(), 90000, DownlinkQueue(sink, native=sfu._native))
        slot = viewer.slots["2"] = _Slot("2", "video", None, forwarder)  # type: ignore[arg-type]
        handle = sfu._packet_handler(pub)
        sfu._assign(viewer, slot, pub)
        assert (
            slot.pending is pub.layers[2] and slot.layer is None
        )  # no policy: the top layer, from its keyframe
        ssrcs = {"q": 111, "h": 222, "f": 333}
        widths = {"q": 160, "h": 320, "f": 640}
        with caplog.at_level(logging.INFO, logger="meetings.rtc.sfu"):
            handle(_packet(999, 1, _keyframe(100), rid="x"), VP8_CODEC)  # a rid never negotiated
        assert "rid 'x' was not negotiated" in caplog.text and 999 not in pub.by_ssrc
        seq = {rid: 1000 * (i + 1) for i, rid in enumerate(ssrcs)}

        def send(rid: str, key: bool, tag: bool = False) -> None:
            payload = _keyframe(widths[rid]) if key else bytes([0x90, 0x80, 0x81, 0x01, 0x01, 0x00, 0x00])
            handle(_packet(ssrcs[rid], seq[rid], payload, rid if tag else None), VP8_CODEC)
            seq[rid] += 1

        for rid in ssrcs:  # the first packets carry the rid; later ones only the SSRC
            send(rid, True, tag=True)
            send(rid, False)
        assert {layer.rid: layer.ssrc for layer in pub.layers} == {"q": 111, "h": 222, "f": 333}
        assert [layer.width for layer in pub.layers] == [160, 320, 640]
        assert slot.layer is pub.layers[2]
        assert LayerChanged("viewer", "2", 2, None, 640, 360, False) in events
        sfu._update_layers(10.0**9)  # measured once: every layer is active (just arrived)
        for layer in pub.layers:
            layer.last_packet = 10.0**9
        sfu._update_layers(10.0**9)
        top_sent = len(sink.sent)
        assert top_sent == 2  # the top layer's keyframe and its delta, nothing of the others

        sfu.set_layer("viewer", "2", 0)  # down to the lowest layer: at its next keyframe
        await asyncio.sleep(0)
        assert transceiver.receiver.plis[-1] == 111  # asked on that layer's SSRC
        assert LayersWanted("pub", "1", ("q",)) in events  # dynacast: nobody needs h and f
        send("f", False)  # still the top layer until the lowest one's keyframe
        send("q", False)
        assert slot.layer is pub.layers[2] and len(sink.sent) == top_sent + 1
        send("q", True)
        assert slot.layer is pub.layers[0]
        assert events[-1] == LayerChanged("viewer", "2", 0, None, 160, 90, False)
        send("f", False)  # the old layer no longer reaches the slot
        send("q", False)
        forwarder.downlink.flush()
        out = [RtpPacket.parse(d).sequence_number for d in sink.sent]
        assert all((b - a) % 65536 == 1 for a, b in itertools.pairwise(out)), out
        assert len(out) == top_sent + 3

        sfu.set_layer("viewer", "2", None)  # paused: at once, nothing forwarded
        assert events[-2:] == [
            LayerChanged("viewer", "2", None, None, None, None, True),
            LayersWanted("pub", "1", ()),
        ]
        send("q", True)
        assert len(sink.sent) == top_sent + 3

        sfu.set_layer("viewer", "2", 1)
        send("h", True)
        assert slot.layer is pub.layers[1] and len(sink.sent) == top_sent + 4
        # The middle layer stops arriving (Chromium drops layers under CPU load): the slot
        # moves to the nearest active one below, at its keyframe.
        later = 10.0**9 + LAYER_TIMEOUT + 1
        pub.layers[0].last_packet = later
        sfu._update_layers(later)
        assert not pub.layers[1].active and slot.pending is pub.layers[0]
        send("q", True)
        assert slot.layer is pub.layers[0]
        forwarder.downlink.flush()
        out = [RtpPacket.parse(d).sequence_number for d in sink.sent]
        assert all((b - a) % 65536 == 1 for a, b in itertools.pairwise(out)), out

        # A renegotiation (screen share, audio-only) while dynacast has f paused: the offer
        # lists "q;h;~f". The layers stay, with their SSRCs: Chromium no longer tags these
        # streams with their rid, so a layer that forgot its SSRC would never be found again.
        layers_before = list(pub.layers)
        sfu._set_layers(
            pub,
            simulcast.offered_layers(
                _offer("a=rid:q send", "a=rid:h send", "a=rid:f send", "a=simulcast:send q;h;~f")
            )["1"],
        )
        assert pub.layers == layers_before and pub.by_ssrc == {
            111: pub.layers[0],
            222: pub.layers[1],
            333: pub.layers[2],
        }
        sent = len(sink.sent)
        send("q", True)  # untagged, as Chromium sends by now
        assert slot.layer is pub.layers[0] and len(sink.sent) == sent + 1
    finally:
        sfu._participants.clear()
        await sfu.close()


async def test_each_layer_gets_its_own_nacks_and_its_retransmissions_find_it() -> None:
    """The receive path: a NACK generator per SSRC, and RTX on an SSRC no SDP paired unwrapped
    to the layer its repaired-rtp-stream-id names."""
    from aiortc import RTCCertificate, RTCDtlsTransport, RTCIceGatherer, RTCIceTransport, RTCRtpReceiver

    from meetings.rtc import internals

    transport = RTCDtlsTransport(RTCIceTransport(RTCIceGatherer()), [RTCCertificate.generateCertificate()])
    receiver = RTCRtpReceiver("video", transport)
    rtx = RTCRtpCodecParameters(mimeType="video/rtx", clockRate=90000, payloadType=97, parameters={"apt": 96})
    vars(receiver)["_RTCRtpReceiver__codecs"].update({96: VP8_CODEC, 97: rtx})
    nacks: list[tuple[int, list[int]]] = []

    async def send_nack(media_ssrc: int, lost: list[int]) -> None:
        nacks.append((media_ssrc, lost))

    receiver._send_rtcp_nack = send_nack  # type: ignore[method-assign]
    got: list[tuple[int, int, bytes]] = []
    internals.tap_receiver(
        receiver,
        lambda packet, codec: got.append((packet.ssrc, packet.sequence_number, packet.payload)),
        {"q": 111, "h": 222}.get,
    )
    handle = vars(receiver)["_giaoban_handle_rtp"]
    for ssrc, seq in ((111, 1), (222, 500), (111, 3), (222, 501)):  # 111 lost 2; 222 lost nothing
        handle(_packet(ssrc, seq, b"media"), 0)
    retransmission = RtpPacket(
        payload_type=97, sequence_number=7, timestamp=0, ssrc=999, payload=b"\x00\x02again"
    )
    retransmission.extensions.repaired_rtp_stream_id = "q"
    handle(retransmission, 0)
    await asyncio.sleep(0)
    assert nacks == [(111, [2])]
    assert got[-1] == (111, 2, b"again")
    later = RtpPacket(payload_type=97, sequence_number=8, timestamp=0, ssrc=999, payload=b"\x00\x04more")
    handle(later, 0)  # the RTX SSRC is remembered: later ones need no extension
    assert got[-1] == (111, 4, b"more")
    await transport.stop()


def test_an_unannounced_ssrc_is_routed_by_its_mid_when_the_payload_type_is_shared() -> None:
    from aiortc.rtcdtlstransport import RtpRouter

    from meetings.rtc import internals

    router = RtpRouter()
    camera, screen = object(), object()
    router.register_receiver(camera, ssrcs=[], payload_types=[96, 97], mid="1")  # type: ignore[arg-type]
    router.register_receiver(screen, ssrcs=[], payload_types=[96, 97], mid="2")  # type: ignore[arg-type]
    tagged = _packet(4242, 1, b"x")
    tagged.extensions.mid = "2"
    assert internals.route_rtp(router, tagged) is screen
    assert internals.route_rtp(router, _packet(4242, 2, b"x")) is screen  # no mid any more: by SSRC
    assert internals.route_rtp(router, _packet(5151, 1, b"x")) is None  # neither known


def test_the_c_fast_path_sends_the_rewritten_descriptor() -> None:
    """On a bound wire (no Python in the path) the rewritten picture id and TL0PICIDX go out,
    and a NACKed packet is resent from the history (original payload + rewritten descriptor)
    with the same bytes."""
    import socket

    from pylibsrtp import Policy, Session

    from meetings.rtc import forwarder
    from meetings.rtc.internals import bind_fast_wire

    if not forwarder.NATIVE_AVAILABLE:
        pytest.skip("meetings/rtc/_fastpath is not built")
    key = bytes(range(30))
    profile = Policy.SRTP_PROFILE_AES128_CM_SHA1_80
    tx = Session(Policy(key=key, ssrc_type=Policy.SSRC_ANY_OUTBOUND, srtp_profile=profile))
    rx = Session(Policy(key=key, ssrc_type=Policy.SSRC_ANY_INBOUND, srtp_profile=profile))
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        receiver.bind(("127.0.0.1", 0))
        receiver.settimeout(5)
        sender.setblocking(False)
        sink = Sink()
        slot = Impl("native").slot(_target(rtx=False), sink)
        bind_fast_wire(slot.downlink.fast, tx, sender, receiver.getsockname())
        slot.switch("publisher")
        _stream(slot, _l1t3(100, 7, 4), 500, 0.0)  # pictures 100-103, TL0 7
        slot.switch_layer()
        _stream(slot, _l1t3(9000, 200, 2), 40000, 0.5)  # another layer: 9000-9001, TL0 200
        packets = [RtpPacket.parse(rx.unprotect(receiver.recv(2048))) for _ in range(12)]
        assert sink.sent == []  # all of it in C
        starts = [vp8.parse_descriptor(p.payload) for p in packets[::2]]
        assert [(d.picture_id, d.tl0picidx) for d in starts if d is not None] == [
            (100, 7),
            (101, 7),
            (102, 7),
            (103, 7),
            (104, 8),
            (105, 8),
        ]
        assert packets[8].payload[6:] == vp8_packet(9000, 200, 0, keyframe=True)[6:]  # the rest as sent
        assert slot.retransmit([packets[8].sequence_number], None) == 1  # through the queue
        [resent] = [RtpPacket.parse(d) for d in sink.sent]
        assert resent.payload == packets[8].payload
    finally:
        receiver.close()
        sender.close()


def test_the_answer_starts_a_simulcast_publishers_estimate_high_enough_for_its_layers() -> None:
    from meetings.rtc.simulcast import start_bitrate

    answer = "\r\n".join(
        [
            "v=0",
            "m=audio 9 UDP/TLS/RTP/SAVPF 111",
            "a=mid:0",
            "a=rtpmap:111 opus/48000/2",
            "m=video 9 UDP/TLS/RTP/SAVPF 96 97 102",
            "a=mid:1",
            "a=rtpmap:96 VP8/90000",
            "a=rtpmap:97 rtx/90000",
            "a=fmtp:97 apt=96",
            "a=rtpmap:102 H264/90000",
            "a=fmtp:102 packetization-mode=1",
            "m=video 9 UDP/TLS/RTP/SAVPF 96",
            "a=mid:2",
            "a=rtpmap:96 VP8/90000",
            "",
        ]
    )
    lines = start_bitrate(answer, {"1"}, 1000).split("\r\n")
    assert "a=fmtp:96 x-google-start-bitrate=1000" in lines
    assert "a=fmtp:102 packetization-mode=1;x-google-start-bitrate=1000" in lines
    assert "a=fmtp:97 apt=96" in lines, "RTX untouched"
    assert lines.count("a=fmtp:96 x-google-start-bitrate=1000") == 1, "mid 2 is not a simulcast publication"
    assert lines[-1] == "", "the final newline stays"
    assert start_bitrate(answer, set(), 1000) == answer


def test_a_layer_that_just_restarted_costs_what_it_did_before_not_its_first_seconds() -> None:
    """Dynacast resumed a layer: its first second measured the keyframe (1.6 Mbit/s), the next the
    encoder ramping up (50 kbit/s); before any measurement the allocation read 0 (a flat default),
    and a 440 kbit/s probe put a 250 kbit/s receiver on 640×360 and off again within a second."""
    top = Layer(spatial=2, rid="f", throttle=KeyframeThrottle(0.5))
    top.active_since = 100.0
    assert top.cost(101.0) == LAYER_NOMINAL_BPS[2], "never measured: the page's maxBitrate for it"
    top.bitrate_bps, top.steady_bps = 1_585_099, 760_000
    assert top.cost(101.0) == 760_000, "ramping: what it cost once steady"
    top.bitrate_bps = 48_705
    assert top.cost(100.0 + LAYER_RAMP - 0.1) == 760_000
    assert top.cost(100.0 + LAYER_RAMP) == 760_000, "past the ramp: its smoothed rate"
    top.steady_bps = 0
    assert top.cost(100.0 + LAYER_RAMP) == 48_705, "until smoothed: what it measures"


def test_dynacast_stops_a_layer_only_once_the_allocation_has_not_wanted_it_for_a_while() -> None:
    """A receiver stepping between the lowest and the middle layer every second turned the
    publisher's top layer (wanted while it may step up to it) off and on every second."""
    sfu = Sfu(SfuConfig())
    pub = Publication(
        participant="pub",
        mid="1",
        kind="video",
        source="camera",
        transceiver=_Transceiver(),  # type: ignore[arg-type]
        throttle=KeyframeThrottle(),
        levels=LevelWindow(1.0),
    )
    sfu._set_layers(pub, ("q", "h", "f"))
    assert sfu._held_wanted(pub, ("q", "h", "f"), 100.0) == ("q", "h", "f")
    for t in (100.5, 101.0, 102.0, 103.0, 104.0, 104.9):  # the allocation wants h and f on and off
        wanted = ("q",) if int(t) % 2 == 0 else ("q", "h", "f")
        assert sfu._held_wanted(pub, wanted, t) == ("q", "h", "f"), t
    assert sfu._held_wanted(pub, ("q",), 103.0 + DYNACAST_HOLD + 0.1) == ("q",), "not wanted for the hold"
    assert sfu._held_wanted(pub, ("q", "f"), 110.0) == ("q", "f"), "wanted again: at once"
