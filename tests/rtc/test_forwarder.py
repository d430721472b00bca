"""Packet rewriting, keyframe detection, the downlink queue and keyframe throttling."""

from __future__ import annotations

import os
import random
import socket
import struct
from typing import Any

import pytest
from aiortc.rtp import RtpPacket
from pylibsrtp import Policy, Session

from meetings.rtc import forwarder
from meetings.rtc.forwarder import (
    DownlinkQueue,
    KeyframeThrottle,
    SeqRewriter,
    SlotTarget,
    build_rtp,
    fanout_py,
    is_keyframe,
    pack_extensions,
)

IMPLEMENTATIONS = ["python", "native"]


class Impl:
    """One forwarding core: the Python reference or the C fast path."""

    def __init__(self, name: str) -> None:
        if name == "native" and not forwarder.NATIVE_AVAILABLE:
            if os.environ.get("CI"):
                raise RuntimeError("CI must build meetings/rtc/_fastpath (a C compiler and Python headers)")
            pytest.skip("meetings/rtc/_fastpath is not built (no C compiler here)")
        self.native = name == "native"
        self.slot_class: Any
        self.fanout: Any
        self.slot_class, self.fanout = forwarder.implementation(self.native)

    def slot(self, target: SlotTarget, sink: Any, **queue: Any) -> Any:
        return self.slot_class(target, 90000, DownlinkQueue(sink, native=self.native, **queue))


@pytest.fixture(params=IMPLEMENTATIONS)
def impl(request: pytest.FixtureRequest) -> Impl:
    return Impl(request.param)


VP8_KEY = bytes([0x90, 0x80, 0x12, 0x00, 0x9D, 0x01, 0x2A])  # X,S; I; pid 0x12; P=0
VP8_DELTA = bytes([0x90, 0x80, 0x13, 0x01])
VP8_CONTINUATION = bytes([0x80, 0x80, 0x12, 0x00])  # S=0


def vp8_packet(
    picture_id: int,
    tl0: int,
    tid: int,
    *,
    sync: bool = False,
    start: bool = True,
    keyframe: bool = False,
    long_id: bool = True,
    body: bytes = b"frame",
) -> bytes:
    """A VP8 RTP payload with a full descriptor (X, I, L, T) as Chromium sends for L1T3."""
    pid = (
        bytes([0x80 | (picture_id >> 8) & 0x7F, picture_id & 0xFF]) if long_id else bytes([picture_id & 0x7F])
    )
    descriptor = (
        bytes([0x90 if start else 0x80, 0xE0]) + pid + bytes([tl0, (tid << 6) | (0x20 if sync else 0)])
    )
    frame = (b"\x00\x00\x00\x9d\x01\x2a" if keyframe else b"\x01\x00\x00") + body
    return descriptor + frame


def test_vp8_and_h264_keyframes_are_recognised() -> None:
    assert is_keyframe("VP8", VP8_KEY)
    assert not is_keyframe("VP8", VP8_DELTA)
    assert not is_keyframe("VP8", VP8_CONTINUATION)
    assert is_keyframe("VP8", bytes([0x90, 0x80, 0x80, 0x01, 0x00]))  # 15-bit picture id
    assert is_keyframe("VP8", bytes([0x10, 0x00]))  # no extension
    assert is_keyframe("H264", bytes([0x65, 0x88]))  # IDR
    assert not is_keyframe("H264", bytes([0x41, 0x9A]))
    assert is_keyframe("H264", bytes([0x18, 0x00, 0x02, 0x67, 0x42, 0x00, 0x02, 0x68, 0xCE]))  # STAP-A SPS
    assert is_keyframe("H264", bytes([0x7C, 0x85, 0x00]))  # FU-A start of IDR
    assert not is_keyframe("H264", bytes([0x7C, 0x05, 0x00]))  # FU-A middle
    assert not is_keyframe("VP8", b"")


def test_sequence_numbers_stay_continuous_across_switches_and_pauses() -> None:
    r = SeqRewriter(clock_rate=48000)
    assert r.rewrite(100, 1000, now=0.0) == (100, 1000)
    assert r.rewrite(101, 1960, now=0.02) == (101, 1960)
    r.restart()  # another source, far away in sequence space
    seq, ts = r.rewrite(50000, 7, now=1.02) or (0, 0)
    assert seq == 102
    assert ts == 1960 + 48000  # a second later in the outgoing timeline
    assert r.rewrite(50001, 967, now=1.04) == (103, ts + 960)
    assert r.rewrite(49999, 0, now=1.05) is None  # older than the switch: not forwarded
    assert r.rewrite(50003, 2887, now=1.06) == (105, ts + 2880)  # a gap upstream stays a gap
    assert r.rewrite(50002, 1927, now=1.07) == (104, ts + 1920)  # late retransmission fills it
    r.restart()  # same source after a pause
    assert r.rewrite(50100, 100000, now=2.0)[0] == 106  # type: ignore[index]


def test_sequence_wraps_around() -> None:
    r = SeqRewriter(clock_rate=90000)
    r.rewrite(65535, 0, now=0.0)
    assert r.rewrite(0, 3000, now=0.03) == (0, 3000)


def _target(kind: str = "video", rtx: bool = True) -> SlotTarget:
    return SlotTarget(
        kind=kind,
        mid="4",
        ssrc=0x11223344,
        rtx_ssrc=0x55667788,
        payload_types={"VP8": 97, "OPUS": 111},
        rtx_payload_types={97: 98} if rtx else {},
        mid_ext_id=1,
        audio_level_ext_id=2,
        abs_send_time_ext_id=3,
    )


class Sink:
    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def __call__(self, header: bytes | bytearray, payload: bytes) -> None:
        self.sent.append(bytes(header) + payload)  # the header is only valid during the call


async def test_a_forwarded_packet_has_our_header_and_their_payload(impl: Impl) -> None:
    sink = Sink()
    slot = impl.slot(_target(), sink)
    slot.switch("publisher")
    assert not slot.forward(
        codec="VP8",
        seq=7,
        timestamp=9,
        marker=0,
        payload=VP8_DELTA,
        keyframe=False,
        audio_level=None,
        send_time=5,
        now=0.0,
    )
    assert slot.forward(
        codec="VP8",
        seq=8,
        timestamp=9,
        marker=1,
        payload=VP8_KEY,
        keyframe=True,
        audio_level=None,
        send_time=5,
        now=0.0,
    )
    slot.downlink.flush()
    [data] = sink.sent
    packet = RtpPacket.parse(data)  # an independent parser
    assert packet.ssrc == 0x11223344
    assert packet.payload_type == 97
    assert packet.marker == 1
    assert packet.payload == VP8_KEY
    assert data[12:14] == b"\xbe\xde"


async def test_nack_retransmits_from_history_with_rtx(impl: Impl) -> None:
    sink = Sink()
    slot = impl.slot(_target(), sink)
    slot.switch("publisher")
    for i in range(5):
        slot.forward(
            codec="VP8",
            seq=10 + i,
            timestamp=0,
            marker=0,
            payload=VP8_KEY if i == 0 else bytes([i]),
            keyframe=i == 0,
            audio_level=None,
            send_time=None,
            now=0.0,
        )
    slot.downlink.flush()
    out_seqs = [RtpPacket.parse(d).sequence_number for d in sink.sent]
    assert slot.retransmit([out_seqs[2], 60000], None) == 1
    slot.downlink.flush()
    rtx = RtpPacket.parse(sink.sent[-1])
    assert rtx.ssrc == 0x55667788 and rtx.payload_type == 98
    assert rtx.payload == struct.pack("!H", out_seqs[2]) + bytes([2])

    plain = impl.slot(_target(rtx=False), sink)
    plain.switch("publisher")
    plain.forward(
        codec="VP8",
        seq=1,
        timestamp=0,
        marker=0,
        payload=VP8_KEY,
        keyframe=True,
        audio_level=None,
        send_time=None,
        now=0.0,
    )
    plain.retransmit([plain.out_seq], None)
    plain.downlink.flush()
    assert sink.sent[-1] == sink.sent[-2]


async def test_a_nack_for_a_packet_older_than_a_second_or_3_round_trips_is_not_answered(impl: Impl) -> None:
    # Back from a network cut, Chromium NACKs the whole gap; the SFU has asked for a keyframe
    # already, and sending the history again only fills the link ahead of it.
    sink = Sink()
    slot = impl.slot(_target(), sink)
    slot.switch("publisher")
    for i in range(31):  # 3 s of video, a packet every 0.1 s (9,000 ticks of the 90 kHz clock)
        slot.forward(
            codec="VP8",
            seq=10 + i,
            timestamp=i * 9000,
            marker=1,
            payload=VP8_KEY if i == 0 else bytes([i]),
            keyframe=i == 0,
            audio_level=None,
            send_time=None,
            now=i * 0.1,
        )
    slot.downlink.flush()
    out_seqs = [RtpPacket.parse(d).sequence_number for d in sink.sent]
    assert len(out_seqs) == 31
    # 0.5 s old, 1.0 s old: sent again; 1.5 and 2.9 s old: not.
    assert slot.retransmit([out_seqs[25], out_seqs[20], out_seqs[15], out_seqs[1]], None) == 2
    assert slot.stale_nacks == 2 and slot.retransmitted == 2
    slot.downlink.flush()
    again = [struct.unpack("!H", RtpPacket.parse(d).payload[:2])[0] for d in sink.sent[31:]]
    assert sorted(again) == sorted([out_seqs[25], out_seqs[20]])
    # On a 600 ms round trip, 1.8 s of history is still worth sending.
    assert slot.retransmit([out_seqs[15], out_seqs[1]], None, rtt=0.6) == 1


async def test_the_downlink_queue_stays_bounded_and_audio_never_waits_even_at_a_rate_below_its_own(
    impl: Impl,
) -> None:
    sink, clock = Sink(), [0.0]
    queue = DownlinkQueue(sink, limit=4, clock=lambda: clock[0], native=impl.native)
    queue.set_rate(8_000)  # 1 kB/s: below what the audio alone needs
    video = impl.slot_class(_target(), 90000, queue)
    video.switch("publisher")
    video.waiting_keyframe = False

    def forward(seq: int, keyframe: bool = False) -> None:
        video.forward(
            codec="VP8", seq=seq, timestamp=seq * 3000, marker=0, payload=VP8_KEY if keyframe else VP8_DELTA,
            keyframe=keyframe, audio_level=None, send_time=None, now=clock[0],
        )  # fmt: skip

    for seq in range(1, 5):
        forward(seq)
    assert len(queue) == 4 and not sink.sent
    forward(5)  # over the limit: the oldest goes, and the slot's later ones with it
    assert len(queue) == 0 and queue.dropped_video == 5
    assert video.waiting_keyframe  # the decoder needs a keyframe after a drop
    forward(6)
    forward(7, keyframe=True)
    assert len(queue) == 1
    for i in range(6):
        queue.push(bytes([i]) * 20, b"", video=False)
    assert [d[0] for d in sink.sent] == [0, 1, 2, 3, 4, 5], "audio left at once, every packet"
    clock[0] = 0.2  # 200 bytes of room, but the audio's 348 are owed: the video still waits
    queue.flush()
    assert len(queue) == 1 and len(sink.sent) == 6
    clock[0] = 2.0  # the debt is paid (and the video waited too long to be shown)
    queue.push(b"\x80\x6f" + bytes(10), b"audio", video=False)
    queue.flush()
    assert sink.sent[-1].endswith(b"audio") and len(queue) == 0 and queue.late_video >= 1


async def test_a_paced_queue_sends_audio_at_once_and_drops_late_video_without_a_gap(impl: Impl) -> None:
    sink, clock = Sink(), [0.0]
    queue = DownlinkQueue(sink, clock=lambda: clock[0], native=impl.native, max_video_delay=1.0)
    video = impl.slot_class(_target(), 90000, queue)
    video.switch("publisher")
    needed: list[object] = []
    video.on_keyframe_needed = needed.append

    def forward(seq: int, keyframe: bool = False) -> None:
        payload = VP8_KEY if keyframe else VP8_DELTA
        video.forward(
            codec="VP8", seq=seq, timestamp=seq * 3000, marker=1, payload=payload, keyframe=keyframe,
            audio_level=None, send_time=None, now=clock[0],
        )  # fmt: skip

    def seqs() -> list[int]:
        return [struct.unpack_from("!H", packet, 2)[0] for packet in sink.sent]

    forward(100, keyframe=True)  # unpaced: straight out
    queue.set_rate(8_000)  # 1 kB/s: nothing more leaves until the clock moves
    for seq in range(101, 105):
        forward(seq)
    queue.push(b"\x80\x6f" + bytes(10), b"audio", video=False)
    assert len(queue) == 4 and len(sink.sent) == 2, "the audio left at once, ahead of the queued video"
    assert sink.sent[-1].endswith(b"audio")
    first = seqs()[0]
    clock[0] = 1.5  # the video waited longer than a second: too late to show, all of it dropped
    queue.flush()
    assert len(queue) == 0 and queue.late_video == 1 and queue.dropped_video == 4
    assert needed == [video] and video.waiting_keyframe
    queue.set_rate(None)
    forward(105)  # not a keyframe: still waiting
    forward(106, keyframe=True)
    assert seqs()[-1] == (first + 1) % 65536, "the next packet the receiver gets follows the last it got"


async def test_a_layer_switch_drops_the_old_layers_queued_video_without_leaving_a_gap(impl: Impl) -> None:
    """On a fall the queue holds the old, larger layer: the new layer's keyframe must not wait behind it."""
    sink, clock = Sink(), [0.0]
    queue = DownlinkQueue(sink, clock=lambda: clock[0], native=impl.native)
    video = impl.slot_class(_target(), 90000, queue)
    video.switch("publisher")
    other = impl.slot_class(_target(), 90000, queue)  # another tile's slot keeps its packets
    other.switch("publisher")

    def forward(slot: Any, seq: int, keyframe: bool = False) -> None:
        payload = VP8_KEY if keyframe else VP8_DELTA
        slot.forward(
            codec="VP8", seq=seq, timestamp=seq * 3000, marker=1, payload=payload, keyframe=keyframe,
            audio_level=None, send_time=None, now=clock[0],
        )  # fmt: skip

    forward(video, 100, keyframe=True)  # unpaced: straight out
    forward(other, 7, keyframe=True)
    queue.set_rate(8_000)  # 1 kB/s: nothing more leaves until the clock moves
    for seq in range(101, 106):
        forward(video, seq)
    forward(other, 8)
    queue.push(b"\x80\x6f" + bytes(10), b"audio", video=False)
    assert len(queue) == 6 and sink.sent[-1].endswith(b"audio"), "audio never waits"
    assert queue.supersede(video) == 5
    assert len(queue) == 1 and queue.superseded_video == 5 and queue.dropped_video == 5
    assert queue.supersede(video) == 0
    video.switch_layer()  # the Sfu switches the slot at the new layer's keyframe
    forward(video, 5000, keyframe=True)
    queue.set_rate(None)
    queue.flush()
    first = struct.unpack_from("!H", sink.sent[0], 2)[0]
    assert len(sink.sent) == 5 and sink.sent[2].endswith(b"audio"), "the audio went first"
    assert sink.sent[3].endswith(VP8_DELTA)  # the other tile's queued packet stayed
    assert sink.sent[4].endswith(VP8_KEY[-3:])  # its picture id rewritten: the keyframe start code
    assert struct.unpack_from("!H", sink.sent[4], 2)[0] == (first + 1) % 65536, (
        "the new layer's keyframe follows the last packet the receiver got"
    )


async def test_probe_padding_is_rtx_copies_of_the_latest_packets(impl: Impl) -> None:
    """A padded probe: what the receiver drops as duplicates but its estimator counts."""
    sink = Sink()
    slot = impl.slot(_target(), sink)
    assert slot.pad(5000, None) == 0, "nothing sent yet: nothing to copy"
    slot.switch("publisher")
    for seq in range(10, 14):
        payload = (VP8_KEY if seq == 10 else VP8_DELTA) + bytes(300)
        slot.forward(
            codec="VP8", seq=seq, timestamp=seq * 3000, marker=1, payload=payload, keyframe=seq == 10,
            audio_level=None, send_time=None, now=0.0,
        )  # fmt: skip
    media = list(sink.sent)
    newest = struct.unpack_from("!H", media[-1], 2)[0]
    queued = slot.pad(700, 0x123456)
    copies = sink.sent[len(media) :]
    assert queued >= 700 and len(copies) == 3 and slot.padded == queued
    for back, copy in enumerate(copies):  # newest first, on the RTX stream, its own sequence
        assert copy[1] & 0x7F == 98 and struct.unpack_from("!I", copy, 8)[0] == 0x55667788
        assert struct.unpack_from("!H", copy, 2)[0] == back + 1
        original = media[-1 - back]
        payload_at = 12 + 4 + 4 * struct.unpack_from("!H", copy, 14)[0]  # after the extensions
        assert struct.unpack_from("!H", copy, payload_at)[0] == (newest - back) % 65536  # the OSN
        assert copy.endswith(original[-300:])
    assert len(copies) == len(sink.sent) - len(media)
    plain = impl.slot(_target(rtx=False), Sink())
    plain.switch("publisher")
    plain.forward(
        codec="VP8", seq=1, timestamp=0, marker=1, payload=VP8_KEY, keyframe=True, audio_level=None,
        send_time=None, now=0.0,
    )  # fmt: skip
    assert plain.pad(5000, None) == 0, "no RTX: no padding (the step up itself probes)"


def test_a_packet_leaving_the_paced_queue_carries_the_time_it_left() -> None:
    extensions = pack_extensions([(1, b"4"), (3, b"\x12\x34\x56"), (2, b"\x80")])
    packet = build_rtp(
        payload_type=97, marker=1, seq=7, timestamp=9, ssrc=1, extensions=extensions, payload=b"x"
    )
    header = packet[:-1]
    stamped = forwarder.restamp_send_time(header, 3, 0xABCDEF)
    assert stamped == header.replace(b"\x12\x34\x56", b"\xab\xcd\xef")
    assert forwarder.restamp_send_time(header, 5, 0xABCDEF) == header, "no such extension: unchanged"
    plain = build_rtp(payload_type=97, marker=1, seq=7, timestamp=9, ssrc=1, extensions=b"", payload=b"")
    assert forwarder.restamp_send_time(plain, 3, 0xABCDEF) == plain


async def test_keyframe_requests_are_throttled_per_publisher() -> None:
    throttle = KeyframeThrottle(0.5)
    asks = [throttle.allow(t / 100) for t in range(0, 150)]  # a request every 10 ms for 1.5 s
    assert sum(asks) == 3
    assert throttle.sent == 3


def test_extension_blocks() -> None:
    assert pack_extensions([]) == b""
    one = pack_extensions([(1, b"0"), (2, b"\x1e")])
    assert one[:4] == b"\xbe\xde\x00\x01"
    two = pack_extensions([(15, b"x")])
    assert two[:2] == b"\x10\x00"
    data = build_rtp(payload_type=111, marker=0, seq=1, timestamp=2, ssrc=3, extensions=one, payload=b"p")
    assert RtpPacket.parse(data).payload == b"p"


def test_the_c_fast_path_is_built_in_ci() -> None:
    """CI installs a compiler: the SFU there must forward in C, as in production."""
    if os.environ.get("CI"):
        assert forwarder.NATIVE_AVAILABLE and forwarder.NATIVE
        assert forwarder.SlotForwarder.__name__ == "NativeSlotForwarder"


@pytest.mark.parametrize("kind", ["audio", "video"])
def test_the_c_core_writes_the_same_bytes_as_the_python_one(kind: str) -> None:
    """Random traffic (reordering, loss, duplicates, wrap-around, switches, drops, NACKs) through
    both cores: the same decisions and byte-identical output, packet by packet."""
    if not forwarder.NATIVE_AVAILABLE:
        pytest.skip("meetings/rtc/_fastpath is not built")
    rng = random.Random(20261127)
    sinks = [Sink(), Sink()]
    slots = [Impl("python").slot(_target(kind), sinks[0]), Impl("native").slot(_target(kind), sinks[1])]
    fanouts = [fanout_py, forwarder.implementation(True)[1]]
    codec = "VP8" if kind == "video" else "OPUS"
    seq, ts, now = 65000, 4294900000, 0.0
    source = 0
    picture_id, tl0 = 32760, 250
    for step in range(4000):
        now += rng.choice([0.0, 0.001, 0.02, 0.5])
        action = rng.random()
        if action < 0.02:
            source += 1
            seq, ts = rng.randrange(65536), rng.randrange(1 << 32)
            for slot in slots:
                slot.switch(f"publisher-{source}")
            continue
        if action < 0.03:
            for slot in slots:
                slot.lost_video()
            continue
        if action < 0.035:  # another simulcast layer of the same source
            seq, ts = rng.randrange(65536), rng.randrange(1 << 32)
            picture_id, tl0 = rng.randrange(1 << 15), rng.randrange(256)
            for slot in slots:
                slot.switch_layer()
            continue
        if action < 0.045:
            wanted = rng.choice([None, 0, 1, 2])
            for slot in slots:
                slot.set_temporal(wanted)
            continue
        if action < 0.06 and kind == "video":
            lost = [rng.randrange(65536) for _ in range(3)] + [
                slots[0].out_seq,
                (slots[0].out_seq - 5) % 65536,
            ]
            send_time = rng.choice([None, rng.randrange(1 << 24)])
            counts = [slot.retransmit(lost, send_time) for slot in slots]
            assert counts[0] == counts[1]
            continue
        jump = rng.choice([1, 1, 1, 1, 2, 0, -1, -3, 5])
        seq = (seq + jump) % 65536
        ts = (ts + 3000 * max(jump, 0)) % (1 << 32)
        key = rng.random() < 0.1
        if rng.random() < 0.6:  # a frame of an L1T3 stream: picture id, TL0PICIDX, TID, layer sync
            if jump > 0:
                picture_id = (picture_id + jump) % (1 << 15)
            tid = 0 if key else rng.choice([0, 2, 1, 2])
            if tid == 0 and jump > 0:
                tl0 = (tl0 + 1) % 256
            payload = vp8_packet(
                picture_id,
                tl0,
                tid,
                sync=rng.random() < 0.3,
                start=key or rng.random() < 0.5,
                keyframe=key,
                long_id=rng.random() < 0.9,
            )
        elif key:
            payload = VP8_KEY
        else:
            payload = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 40)))
        args = (
            rng.choice([codec, codec, "H264/1"]),
            seq,
            ts,
            rng.randrange(2),
            payload,
            key,
            rng.choice([None, rng.randrange(128)]),
            rng.choice([None, rng.randrange(1 << 24)]),
            now,
        )
        if step % 2:
            results = [slot.forward(*args) for slot in slots]
        else:
            results = [bool(f([slot], *args, None)) for f, slot in zip(fanouts, slots, strict=True)]
        assert results[0] == results[1], step
        assert slots[0].waiting_keyframe == slots[1].waiting_keyframe
        assert (slots[0].out_seq, slots[0].out_ts) == (slots[1].out_seq, slots[1].out_ts)
        assert [(s.tid_max, s.pic_last_out, s.tl0_last_out) for s in slots[:1]] == [
            (s.tid_max, s.pic_last_out, s.tl0_last_out) for s in slots[1:]
        ], step
    assert sinks[0].sent == sinks[1].sent
    assert len(sinks[0].sent) > 1000
    assert slots[0].stats == slots[1].stats
    if kind == "video":
        assert slots[0].stats.skipped_temporal > 50  # the temporal filter was exercised


def test_the_c_wire_protects_and_sends_what_a_receiver_can_unprotect() -> None:
    """The C send path: SRTP with libsrtp's own function, one datagram per packet, on a real socket."""
    if not forwarder.NATIVE_AVAILABLE:
        pytest.skip("meetings/rtc/_fastpath is not built")
    from meetings.rtc.internals import bind_fast_wire

    key = bytes(range(30))
    tx = Session(
        Policy(
            key=key, ssrc_type=Policy.SSRC_ANY_OUTBOUND, srtp_profile=Policy.SRTP_PROFILE_AES128_CM_SHA1_80
        )
    )
    rx = Session(
        Policy(key=key, ssrc_type=Policy.SSRC_ANY_INBOUND, srtp_profile=Policy.SRTP_PROFILE_AES128_CM_SHA1_80)
    )
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        receiver.bind(("127.0.0.1", 0))
        receiver.settimeout(5)
        sender.setblocking(False)
        sink = Sink()
        slot = Impl("native").slot(_target("video"), sink)
        wire = slot.downlink.fast
        with pytest.raises(ConnectionError):
            wire.send(b"\x80" + bytes(11), b"x")
        assert wire.direct  # an empty, unpaced queue lets slots send on their own from the start
        bind_fast_wire(wire, tx, sender, receiver.getsockname())
        slot.switch("publisher")
        payloads = [VP8_KEY, b"second", bytes(1000)]
        for i, payload in enumerate(payloads):
            assert slot.forward("VP8", 100 + i, 0, 0, payload, i == 0, None, 77, 0.0)
        received = [RtpPacket.parse(rx.unprotect(receiver.recv(2048))) for _ in payloads]
        assert [p.payload for p in received] == payloads
        assert [p.sequence_number for p in received] == [100, 101, 102]
        assert all(p.ssrc == 0x11223344 and p.payload_type == 97 for p in received)
        assert sink.sent == []  # nothing took the Python path
        assert slot.downlink.sent_packets == 3 and wire.fast_packets == 3
        sender.close()  # a closed socket: the packet takes the queue's (Python) path instead
        assert slot.forward("VP8", 103, 0, 0, b"late", False, None, None, 0.0)
        assert [RtpPacket.parse(d).payload for d in sink.sent] == [b"late"]
    finally:
        receiver.close()
        sender.close()


def test_compound_sender_reports_parse_as_rtcp() -> None:
    """Our hand-packed SR + SDES compound is what an independent RTCP parser (aiortc's) reads."""
    from types import SimpleNamespace

    from aiortc.rtp import RtcpPacket, RtcpSdesPacket, RtcpSrPacket

    from meetings.rtc.internals import sender_reports

    # Stand-ins with the sender attributes sender_reports reads and writes.
    senders: list[Any] = [
        SimpleNamespace(_ssrc=ssrc, _RTCRtpSender__cname="{giaoban-sfu}") for ssrc in (11, 22)
    ]
    data = sender_reports([(senders[0], 1234, 10, 1000), (senders[1], 5678, 20, 20000)], ntp=(7 << 32) | 99)
    packets = RtcpPacket.parse(data)
    srs = [p for p in packets if isinstance(p, RtcpSrPacket)]
    assert [(p.ssrc, p.sender_info.rtp_timestamp, p.sender_info.packet_count) for p in srs] == [
        (senders[0]._ssrc, 1234, 10),
        (senders[1]._ssrc, 5678, 20),
    ]
    assert srs[1].sender_info.octet_count == 20000 and srs[0].sender_info.ntp_timestamp == (7 << 32) | 99
    chunks = [c for p in packets if isinstance(p, RtcpSdesPacket) for c in p.chunks]
    assert [(c.ssrc, c.items) for c in chunks] == [(s._ssrc, [(1, b"{giaoban-sfu}")]) for s in senders]
    assert senders[0]._RTCRtpSender__lsr == (((7 << 32) | 99) >> 16) & 0xFFFFFFFF


class _Receiver:
    """A UDP socket on loopback that collects what arrives (drained after every step)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self.sock.setblocking(False)
        self.got: list[bytes] = []

    def drain(self) -> None:
        while True:
            try:
                self.got.append(self.sock.recv(4096))
            except BlockingIOError:
                return


def _c_queue(clock: list[float], direct_paced: bool = True) -> DownlinkQueue:
    """A C-path queue whose slow path sends through its own wire, as ``RtpWire.send`` does."""
    queue = DownlinkQueue(
        lambda h, p: queue.fast.send(h, p), clock=lambda: clock[0], native=True, direct_paced=direct_paced
    )
    return queue


def test_the_c_send_path_sends_the_same_datagrams_as_the_python_one_paced_or_not(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Random audio and video to one receiver, its pacer switched on and off at random rates:
    the C path (slots protecting and sending on their own through ``_fastpath.Wire``, the
    pacer's bucket checked in C while the queue is empty) puts the same SRTP datagrams on the
    wire as the Python reference (every packet through ``DownlinkQueue`` and a Python send),
    in the same order; and the paced receiver's packets did leave through C."""
    if not forwarder.NATIVE_AVAILABLE:
        pytest.skip("meetings/rtc/_fastpath is not built")
    from meetings.rtc import _fastpath
    from meetings.rtc.internals import bind_fast_wire

    assert _fastpath.WIRE_OVERHEAD == forwarder.WIRE_OVERHEAD
    monkeypatch.setattr(forwarder, "abs_send_time", lambda: 0x345678)  # queued packets are restamped
    key = bytes(range(30))

    def session() -> Session:
        policy = Policy(
            key=key, ssrc_type=Policy.SSRC_ANY_OUTBOUND, srtp_profile=Policy.SRTP_PROFILE_AES128_CM_SHA1_80
        )
        return Session(policy)

    clock = [100.0]
    receivers = [_Receiver(), _Receiver()]
    senders = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(2)]
    try:
        py_session = session()
        py_address = receivers[0].sock.getsockname()

        def py_send(header: bytes | bytearray, payload: bytes) -> None:
            senders[0].sendto(py_session.protect(bytes(header) + payload), py_address)

        py_queue = DownlinkQueue(py_send, clock=lambda: clock[0], native=False)
        c_queue = _c_queue(clock)
        bind_fast_wire(c_queue.fast, session(), senders[1], receivers[1].sock.getsockname())
        queues = [py_queue, c_queue]
        cores = [forwarder.implementation(False), forwarder.implementation(True)]
        video = [cls(_target("video"), 90000, q) for (cls, _), q in zip(cores, queues, strict=True)]
        audio_target = SlotTarget(
            kind="audio", mid="5", ssrc=0x99887766, rtx_ssrc=0x99887767, payload_types={"OPUS": 111},
            rtx_payload_types={}, mid_ext_id=1, audio_level_ext_id=2, abs_send_time_ext_id=3,
        )  # fmt: skip
        audio = [cls(audio_target, 48000, q) for (cls, _), q in zip(cores, queues, strict=True)]
        for slot in (*video, *audio):
            slot.switch("publisher")
        rng = random.Random(20261206)
        vseq, aseq, paced_steps, paced_in_c = 1000, 5000, 0, 0
        for step in range(3000):
            before = c_queue.fast.fast_packets
            clock[0] += rng.choice([0.0, 0.0005, 0.002, 0.02])
            action = rng.random()
            if action < 0.02:
                rate = rng.choice([None, None, 64_000, 300_000, 1_000_000, 4_000_000])
                for q in queues:
                    q.set_rate(rate)
            elif action < 0.05:
                for q in queues:
                    q.flush()  # the pacer's timer
            elif action < 0.06:
                for slot in video:
                    slot.lost_video()
            elif action < 0.45:
                aseq = (aseq + 1) % 65536
                opus = rng.randbytes(rng.randrange(20, 160))
                level = rng.choice([None, rng.randrange(128)])
                for (_, fan), slot in zip(cores, audio, strict=True):
                    fan([slot], "OPUS", aseq, aseq * 960, 0, opus, False, level, None, clock[0], None)
            else:
                vseq = (vseq + rng.choice([1, 1, 1, 2])) % 65536
                keyframe = rng.random() < 0.05
                frame = (VP8_KEY if keyframe else VP8_DELTA) + rng.randbytes(rng.randrange(50, 1100))
                send_time = rng.choice([None, rng.randrange(1 << 24)])
                marker = rng.randrange(2)
                for (_, fan), slot in zip(cores, video, strict=True):
                    fan(
                        [slot],
                        "VP8",
                        vseq,
                        vseq * 3000,
                        marker,
                        frame,
                        keyframe,
                        None,
                        send_time,
                        clock[0],
                        None,
                    )
            if py_queue.rate_bps is not None:
                paced_steps += 1
                paced_in_c += c_queue.fast.fast_packets - before
            for r in receivers:
                r.drain()
            assert len(py_queue) == len(c_queue), step
            assert receivers[0].got == receivers[1].got, step
        assert len(receivers[0].got) > 1000
        assert paced_steps > 500
        assert py_queue.sent_packets == c_queue.sent_packets == len(receivers[1].got)
        assert py_queue.dropped_video == c_queue.dropped_video
        assert (video[0].stats, audio[0].stats) == (video[1].stats, audio[1].stats)
        # The C wire sent most of it itself, paced included (its bucket, not the queue's).
        assert c_queue.fast.fast_packets > 0.6 * len(receivers[1].got)
        assert paced_in_c > 300
        assert py_queue.fast is None
    finally:
        for s in senders:
            s.close()
        for r in receivers:
            r.sock.close()


def test_a_paced_receivers_packets_leave_through_c_when_the_pacer_has_room() -> None:
    """Paced (a rate set) with nothing queued: the slot sends from C within the bucket; once the
    bucket is empty the packet waits in the queue (Python), and the wire stops sending on its own
    until the queue is empty again. ``direct_paced=False`` is the path before: all through Python."""
    if not forwarder.NATIVE_AVAILABLE:
        pytest.skip("meetings/rtc/_fastpath is not built")
    from meetings.rtc.internals import bind_fast_wire

    key = bytes(range(30))
    policy = Policy(
        key=key, ssrc_type=Policy.SSRC_ANY_OUTBOUND, srtp_profile=Policy.SRTP_PROFILE_AES128_CM_SHA1_80
    )
    receiver, sender = _Receiver(), socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        for direct_paced in (True, False):
            clock = [0.0]
            queue = _c_queue(clock, direct_paced)
            bind_fast_wire(queue.fast, Session(policy), sender, receiver.sock.getsockname())
            slot = Impl("native").slot_class(_target("video"), 90000, queue)
            slot.switch("publisher")
            queue.set_rate(800_000)  # 100 kB/s: a 50 ms burst of 5,000 bytes
            clock[0] = 1.0  # the bucket fills up to its burst
            for seq in range(10):  # ~1,070 bytes on the wire each: four fit (the first from a full bucket)
                payload = (VP8_KEY if seq == 0 else VP8_DELTA) + bytes(1000)
                assert slot.forward("VP8", seq, seq * 3000, 0, payload, seq == 0, None, None, clock[0])
            receiver.drain()
            fast = queue.fast.fast_packets
            if direct_paced:
                assert fast == 4 and queue.fast.paced and len(queue) == 6 and not queue.fast.direct
            else:
                assert fast == 0 and not queue.fast.paced and len(queue) == 6
            for _ in range(3):  # the timer: the rest leaves through the queue, a burst at a time
                clock[0] += 0.06
                queue.flush()
            receiver.drain()
            assert len(queue) == 0 and queue.sent_packets == 10
            assert bool(queue.fast.direct) == direct_paced
            receiver.got.clear()
    finally:
        sender.close()
        receiver.sock.close()
