"""NACK and retransmission end to end, with real aiortc peers and deterministic packet loss.

Every 10th video RTP packet is dropped, before SRTP is removed, either where it arrives at the
subscriber (downstream loss: the SFU must retransmit from its own history) or where the
publisher's packets arrive at the SFU (upstream loss: the SFU must NACK the publisher and
forward its retransmissions). In both cases the subscriber's video must keep decoding: aiortc's
video jitter buffer stalls at a hole until the packet arrives, so a gap that is never repaired
shows as frames that stop.
"""

from __future__ import annotations

import asyncio

from meetings.rtc.sfu import Sfu
from tests.rtc.clients import Client, wait_for
from tests.rtc.probes import (
    DropEveryNth,
    StreamLog,
    sdp_sections,
    tap_received,
    tap_sender_feedback,
    tap_sent,
    tap_sent_nacks,
)

LOSSY_SECONDS = 4.0
EVERY = 10


async def _connect(sfu: Sfu) -> tuple[Client, Client, StreamLog]:
    publisher = Client("pub", video=True, audio_slots=0, video_slots=0)
    subscriber = Client("sub", audio_slots=0, video_slots=1)
    received = tap_received(subscriber.slots[0])
    await publisher.connect(sfu)
    await subscriber.connect(sfu)
    return publisher, subscriber, received


async def _run_lossy(link: DropEveryNth, publisher_frames: StreamLog, subscriber: Client) -> tuple[int, int]:
    """Drop for a while; (frames the publisher sent, frames the subscriber decoded) meanwhile."""
    sent_before, decoded_before = publisher_frames.frames(), subscriber.frames("video")
    link.enabled = True
    await asyncio.sleep(LOSSY_SECONDS)
    link.enabled = False
    return publisher_frames.frames() - sent_before, subscriber.frames("video") - decoded_before


async def test_downstream_loss_is_repaired_from_the_sfus_history() -> None:
    sfu = Sfu()
    publisher, subscriber, received = await _connect(sfu)
    try:
        [pub_mid] = [t.mid for t in publisher._publish]
        pub_video = sdp_sections(publisher.pc.localDescription.sdp)[str(pub_mid)]
        assert pub_video.ssrc is not None and pub_video.rtx_ssrc is not None
        sent = tap_sent(publisher.pc, {pub_video.ssrc, pub_video.rtx_ssrc})
        [slot_mid] = subscriber.slot_mids("video")
        slot = sdp_sections(subscriber.pc.remoteDescription.sdp)[slot_mid]
        assert slot.ssrc is not None and slot.rtx_ssrc is not None, "the SFU announces RTX on video slots"
        assert "rtx" in slot.codecs.values()
        nacks = tap_sent_nacks(subscriber.pc)
        link = DropEveryNth(EVERY, {slot.ssrc})
        link.install(subscriber.pc)
        assert await wait_for(lambda: subscriber.frames("video") > 5 and sent.frames() > 5, 20)
        retransmitted_before = sfu.stats()["retransmitted"]

        sent_frames, decoded_frames = await _run_lossy(link, sent, subscriber)

        dropped = set(link.dropped)
        assert len(dropped) >= 3, f"too little video to test loss: {link.seen} packets"

        def repaired() -> bool:
            return dropped <= {seq for seq, _ in received.rtx}

        # Every dropped packet comes back as RTX (the subscriber negotiated it), from the SFU.
        assert await wait_for(repaired, 10), sorted(dropped - {seq for seq, _ in received.rtx})
        assert received.rtx_ssrcs == {slot.rtx_ssrc}
        nacked = {seq for media_ssrc, lost in nacks if media_ssrc == slot.ssrc for seq in lost}
        assert dropped <= nacked, "the subscriber NACKs every packet it lost"
        assert {ssrc for ssrc, _ in nacks} == {slot.ssrc}
        assert sfu.stats()["retransmitted"] - retransmitted_before >= len(dropped)
        # The retransmitted bytes are the publisher's bytes, and no hole is left.
        published = set(sent.payloads())
        assert all(payload in published for _, payload in received.rtx)
        assert not received.missing()
        # Decoding never stalled on a hole: about as many frames decoded as were sent meanwhile.
        assert sent_frames > 10
        assert decoded_frames >= 0.75 * sent_frames, (decoded_frames, sent_frames)
        assert await wait_for(lambda: subscriber.frames("video") > decoded_frames + 5, 10)
    finally:
        await publisher.close()
        await subscriber.close()
        await sfu.close()


async def test_upstream_loss_is_nacked_by_the_sfu_and_repaired_by_the_publisher() -> None:
    sfu = Sfu()
    publisher, subscriber, received = await _connect(sfu)
    try:
        [transceiver] = publisher._publish
        pub_video = sdp_sections(publisher.pc.localDescription.sdp)[str(transceiver.mid)]
        assert pub_video.ssrc is not None and pub_video.rtx_ssrc is not None
        sent = tap_sent(publisher.pc, {pub_video.ssrc, pub_video.rtx_ssrc})
        publisher_feedback = tap_sender_feedback(transceiver.sender)
        link = DropEveryNth(EVERY, {pub_video.ssrc})
        link.install(sfu.peer_connection("pub"))
        assert await wait_for(lambda: subscriber.frames("video") > 5 and sent.frames() > 5, 20)

        sent_frames, decoded_frames = await _run_lossy(link, sent, subscriber)

        dropped = set(link.dropped)
        assert len(dropped) >= 3, f"too little video to test loss: {link.seen} packets"
        payload_of = {seq: payload for seq, _, payload in sent.media}
        lost_payloads = {payload_of[seq] for seq in dropped}

        def forwarded() -> set[bytes]:
            return {payload for _, _, payload in received.media}

        # The SFU asked the publisher for every lost packet, the publisher resent it as RTX, and
        # the SFU forwarded it as the original packet (its own rewritten sequence number) ...
        assert await wait_for(lambda: lost_payloads <= forwarded(), 10), len(lost_payloads - forwarded())
        assert dropped <= {seq for lost in publisher_feedback.nacks for seq in lost}
        assert dropped <= {seq for seq, _ in sent.rtx}
        # ... so the subscriber has no hole left in its sequence numbers.
        assert not received.missing()
        assert sent_frames > 10
        assert decoded_frames >= 0.75 * sent_frames, (decoded_frames, sent_frames)
        assert await wait_for(lambda: subscriber.frames("video") > decoded_frames + 5, 10)
    finally:
        await publisher.close()
        await subscriber.close()
        await sfu.close()
