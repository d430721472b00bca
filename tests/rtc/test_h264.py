"""H.264 through the SFU, with real aiortc peers (aiortc encodes with PyAV's libx264).

The SFU must forward H.264 as it does VP8: no decoder or encoder of its own, the publisher's
payload bytes unchanged, keyframes (IDR) on request for a new subscriber, and the payload type
the subscriber negotiated for H.264 in the same packetization mode. libx264 also sends IDRs of
its own accord (scene cuts: the test pattern's moving line wraps every few seconds), so the
keyframe test proves the request by the PLI that reaches the publisher, not by timing.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any

import pytest
from aiortc import RTCRtpTransceiver
from aiortc.mediastreams import MediaStreamError
from av import VideoFrame

from meetings.rtc import internals
from meetings.rtc.sfu import Sfu, SfuConfig
from tests.rtc.clients import Client, SmallVideoTrack, wait_for
from tests.rtc.probes import (
    StreamLog,
    add_h264_mode0,
    h264_nal_types,
    prefer_codec,
    recording_codecs,
    sdp_sections,
    tap_received,
    tap_sender_feedback,
)

SIZE = (160, 120)  # tests.rtc.clients.SmallVideoTrack
SPS, IDR = 7, 5


class SizedClient(Client):
    """A client that also records the size of every video frame it decodes."""

    def __init__(self, name: str, **kw: Any) -> None:
        super().__init__(name, **kw)
        self.sizes: list[tuple[int, int]] = []

    async def _consume(self, transceiver: RTCRtpTransceiver) -> None:
        track = transceiver.receiver.track
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                self.received[transceiver.mid or "?"].frames += 1
                if isinstance(frame, VideoFrame):
                    self.sizes.append((frame.width, frame.height))


def h264_publisher(name: str = "pub", profile: str = "42e01f") -> Client:
    client = Client(name, video=True, audio_slots=0, video_slots=0)
    prefer_codec(client._publish[0], "video/H264", profile=profile)
    return client


def starts_with_keyframe(log: StreamLog) -> bool:
    """The first packet a subscriber got opens an IDR picture (SPS/PPS first, or the IDR slice)."""
    return bool(log.media) and bool({SPS, IDR} & set(h264_nal_types(log.media[0][2])))


def has_idr(log: StreamLog) -> bool:
    return any(IDR in h264_nal_types(payload) for payload in log.payloads())


def payload_types(sdp: str, mid: str, name: str) -> dict[int, str]:
    """Payload type -> fmtp of codec ``name`` in the m-section ``mid`` of an SDP."""
    section = sdp_sections(sdp)[mid]
    return {pt: section.fmtp.get(pt, "") for pt, codec in section.codecs.items() if codec == name}


@pytest.fixture
def codec_instances(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, list[Any]]]:
    with recording_codecs(monkeypatch) as made:
        yield made


async def test_h264_is_forwarded_byte_for_byte_without_a_codec_in_the_sfu(
    codec_instances: dict[str, list[Any]],
) -> None:
    sfu = Sfu()
    publisher = h264_publisher()
    subscriber = SizedClient("sub", audio_slots=0, video_slots=1)
    prefer_codec(subscriber.slots[0], "video/H264", profile="42e01f")
    received = tap_received(subscriber.slots[0])
    try:
        await publisher.connect(sfu)
        await subscriber.connect(sfu)
        [slot_mid] = subscriber.slot_mids("video")
        pub_mid = str(publisher._publish[0].mid)
        # Both sides negotiated H.264 only (plus RTX), packetization-mode 1.
        assert set(sdp_sections(publisher.pc.remoteDescription.sdp)[pub_mid].codecs.values()) == {
            "H264",
            "rtx",
        }
        [(h264_pt, fmtp)] = payload_types(subscriber.pc.remoteDescription.sdp, slot_mid, "H264").items()
        assert "packetization-mode=1" in fmtp
        assert set(sdp_sections(subscriber.pc.remoteDescription.sdp)[slot_mid].codecs.values()) == {
            "H264",
            "rtx",
        }

        assert await wait_for(lambda: subscriber.frames("video") > 10, 20)
        decoded = subscriber.frames("video")
        assert await wait_for(lambda: subscriber.frames("video") > decoded + 5, 10)  # and keeps coming
        assert set(subscriber.sizes) == {SIZE}

        # The SFU's receivers have no decoder thread, its senders no encoder; the only decoder in
        # the process is the subscriber's H.264 one, the only encoder the publisher's.
        sfu_pcs = [sfu.peer_connection("pub"), sfu.peer_connection("sub")]
        assert all(
            internals.decoder_thread(t.receiver) is None for pc in sfu_pcs for t in pc.getTransceivers()
        )
        sfu_senders = [t.sender for pc in sfu_pcs for t in pc.getTransceivers()]
        assert not any(internals.sender_has_encoder(s) for s in sfu_senders)
        assert codec_instances["decoder_codecs"] == ["video/H264"]
        assert [t.name for t in codec_instances["decoder_threads"]] == ["video-decoder"]
        assert set(map(id, codec_instances["encoder_senders"])) == {id(publisher._publish[0].sender)}

        # Bytes in = bytes out: the subscriber's packets are the publisher's, in order, none
        # changed, none added, starting at an IDR picture; all under the negotiated type.
        got = [payload for _, _, payload in received.media]
        assert len(got) > 12 and not received.rtx
        sent = publisher.sent_payloads
        starts = [i for i, payload in enumerate(sent) if payload == got[0]]  # SPS/PPS repeat
        assert any(sent[i : i + len(got)] == got for i in starts)
        assert starts_with_keyframe(received) and has_idr(received)
        assert set(received.payload_types) == {h264_pt}
    finally:
        await publisher.close()
        await subscriber.close()
        await sfu.close()


async def test_a_late_subscriber_offering_vp8_and_h264_gets_an_h264_idr_on_request() -> None:
    sfu = Sfu(SfuConfig(keyframe_interval=0.5))
    publisher = h264_publisher(profile="42001f")
    feedback = tap_sender_feedback(publisher._publish[0].sender)
    first = SizedClient("first", audio_slots=0, video_slots=1)
    prefer_codec(first.slots[0], "video/H264")
    late = SizedClient("late", audio_slots=0, video_slots=1)  # aiortc's default offer: VP8 first
    late_received = tap_received(late.slots[0])
    try:
        await publisher.connect(sfu)
        await first.connect(sfu)
        assert await wait_for(lambda: first.frames("video") > 5, 20)
        await asyncio.sleep(1.0)  # the IDR the first subscriber asked for is long gone
        requests_before, plis_before = sfu.keyframe_requests, feedback.keyframe_requests

        await late.connect(sfu)
        [slot_mid] = late.slot_mids("video")
        answer = sdp_sections(late.pc.remoteDescription.sdp)[slot_mid]
        assert {"VP8", "H264", "rtx"} <= set(answer.codecs.values())
        h264_pts = payload_types(late.pc.remoteDescription.sdp, slot_mid, "H264")

        # An IDR arrives, and the SFU asked the publisher for one.
        assert await wait_for(lambda: has_idr(late_received), 10)
        assert sfu.keyframe_requests > requests_before
        assert feedback.keyframe_requests > plis_before
        # Nothing before the IDR picture was forwarded, and it came as H.264 in mode 1.
        assert starts_with_keyframe(late_received)
        assert set(late_received.payload_types) <= h264_pts.keys()
        assert all("packetization-mode=1" in h264_pts[pt] for pt in late_received.payload_types)
        assert await wait_for(lambda: late.frames("video") > 5, 10)
        assert set(late.sizes) == {SIZE}
        assert all(p in set(publisher.sent_payloads) for p in late_received.payloads())
    finally:
        for client in (publisher, first, late):
            await client.close()
        await sfu.close()


async def test_a_vp8_only_subscriber_gets_nothing_garbled_from_an_h264_publisher(
    codec_instances: dict[str, list[Any]],
) -> None:
    sfu = Sfu()
    publisher = h264_publisher()
    vp8_only = SizedClient("vp8", audio_slots=0, video_slots=1)
    prefer_codec(vp8_only.slots[0], "video/VP8")
    received = tap_received(vp8_only.slots[0])
    both = SizedClient("both", audio_slots=0, video_slots=1)  # the control: it gets the video
    try:
        await publisher.connect(sfu)
        await vp8_only.connect(sfu)
        await both.connect(sfu)
        [slot_mid] = vp8_only.slot_mids("video")
        assert set(sdp_sections(vp8_only.pc.remoteDescription.sdp)[slot_mid].codecs.values()) == {
            "VP8",
            "rtx",
        }
        assert await wait_for(lambda: both.frames("video") > 10, 20)
        # The H.264 stream is not assigned to a VP8-only slot (the client is not told "this is
        # pub" for a tile that would stay black), and not a single packet goes out on it.
        assert sfu.assignments("vp8")[slot_mid] is None
        assert received.media == [] and received.rtx == []
        assert vp8_only.frames("video") == 0
        assert "video/VP8" not in codec_instances["decoder_codecs"]
    finally:
        for client in (publisher, vp8_only, both):
            await client.close()
        await sfu.close()


async def test_a_vp8_only_slot_is_filled_with_a_vp8_stream_rather_than_h264() -> None:
    sfu = Sfu(SfuConfig(video_last_n=1))
    h264 = h264_publisher("h264")
    vp8 = Client("vp8pub", video=True, audio_slots=0, video_slots=0)
    prefer_codec(vp8._publish[0], "video/VP8")
    viewer = Client("viewer", audio_slots=0, video_slots=1)
    prefer_codec(viewer.slots[0], "video/VP8")
    try:
        for client in (h264, vp8, viewer):
            await client.connect(sfu)
        [slot_mid] = viewer.slot_mids("video")
        wanted = ("vp8pub", str(vp8._publish[0].mid))
        assert await wait_for(lambda: sfu.assignments("viewer")[slot_mid] == wanted, 5), sfu.assignments(
            "viewer"
        )
        assert await wait_for(lambda: viewer.frames("video") > 5, 10)
    finally:
        for client in (h264, vp8, viewer):
            await client.close()
        await sfu.close()


async def test_h264_is_forwarded_only_in_the_packetization_mode_the_subscriber_negotiated(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    add_h264_mode0(monkeypatch)  # aiortc itself knows only packetization-mode 1
    sfu = Sfu()
    publishers = {mode: Client(f"pub{mode}", video=True, audio_slots=0, video_slots=0) for mode in (0, 1)}
    subscribers = {mode: SizedClient(f"sub{mode}", audio_slots=0, video_slots=2) for mode in (0, 1)}
    logs: dict[tuple[int, int], StreamLog] = {}
    publishers[1]._publish[0].sender.replaceTrack(SmallVideoTrack(shade=200))  # no identical bytes
    for mode in (0, 1):
        prefer_codec(publishers[mode]._publish[0], "video/H264", profile="42e01f", mode=mode)
        for i, slot in enumerate(subscribers[mode].slots):
            prefer_codec(slot, "video/H264", profile="42e01f", mode=mode)
            logs[mode, i] = tap_received(slot)
    try:
        for client in (*publishers.values(), *subscribers.values()):
            await client.connect(sfu)
        for mode, subscriber in subscribers.items():
            pts = payload_types(subscriber.pc.remoteDescription.sdp, subscriber.slot_mids("video")[0], "H264")
            assert [f"packetization-mode={mode}" in fmtp for fmtp in pts.values()] == [True]
        assert await wait_for(lambda: all(s.frames("video") > 5 for s in subscribers.values()), 20)
        await asyncio.sleep(0.5)
        for mode, subscriber in subscribers.items():
            # Each subscriber is given only the publisher in its own mode (the other slot stays
            # empty rather than carrying a stream it could not decode): byte for byte the
            # publisher's, decoded at full size.
            carried = {mid: a[0] for mid, a in sfu.assignments(subscriber.name).items() if a}
            assert sorted(carried.values()) == [f"pub{mode}"]
            for i, mid in enumerate(subscriber.slot_mids("video")):
                log = logs[mode, i]
                if carried.get(mid) == f"pub{mode}":
                    assert len(log.media) > 5
                    assert all(p in set(publishers[mode].sent_payloads) for p in log.payloads())
                else:
                    assert log.media == [] and log.rtx == []
            assert set(subscriber.sizes) == {SIZE}
    finally:
        for client in (*publishers.values(), *subscribers.values()):
            await client.close()
        await sfu.close()
