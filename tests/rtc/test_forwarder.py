"""Packet rewriting, keyframe detection, the downlink queue and keyframe throttling."""

from __future__ import annotations

import struct

from aiortc.rtp import RtpPacket

from meetings.rtc.forwarder import (
    DownlinkQueue,
    KeyframeThrottle,
    SeqRewriter,
    SlotForwarder,
    SlotTarget,
    build_rtp,
    is_keyframe,
    pack_extensions,
)

VP8_KEY = bytes([0x90, 0x80, 0x12, 0x00, 0x9D, 0x01, 0x2A])  # X,S; I; pid 0x12; P=0
VP8_DELTA = bytes([0x90, 0x80, 0x13, 0x01])
VP8_CONTINUATION = bytes([0x80, 0x80, 0x12, 0x00])  # S=0


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


async def test_a_forwarded_packet_has_our_header_and_their_payload() -> None:
    sink = Sink()
    slot = SlotForwarder(_target(), 90000, DownlinkQueue(sink))
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


async def test_nack_retransmits_from_history_with_rtx() -> None:
    sink = Sink()
    slot = SlotForwarder(_target(), 90000, DownlinkQueue(sink))
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

    plain = SlotForwarder(_target(rtx=False), 90000, DownlinkQueue(sink))
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
    plain.retransmit([plain.rewriter.out_seq], None)
    plain.downlink.flush()
    assert sink.sent[-1] == sink.sent[-2]


async def test_the_downlink_queue_drops_video_before_audio_and_stays_bounded() -> None:
    sink = Sink()
    queue = DownlinkQueue(sink, limit=4, clock=lambda: 0.0)
    queue.set_rate(8)  # one byte per second: nothing gets out
    video = SlotForwarder(_target(), 90000, queue)
    video.switch("publisher")
    video.waiting_keyframe = False
    video.forward(
        codec="VP8",
        seq=1,
        timestamp=0,
        marker=0,
        payload=b"v1",
        keyframe=False,
        audio_level=None,
        send_time=None,
        now=0.0,
    )
    for i in range(6):
        queue.push(bytes([i]) * 20, b"", video=False)
    queue.flush()
    assert len(queue) == 4
    assert queue.dropped_video == 1 and queue.dropped_audio == 2
    assert video.waiting_keyframe  # the decoder needs a keyframe after a drop
    queue.set_rate(None)
    queue.flush()
    assert [d[0] for d in sink.sent] == [2, 3, 4, 5]  # the newest audio survived


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
