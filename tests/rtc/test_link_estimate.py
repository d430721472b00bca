"""Receiver feedback from real aiortc peers reaches the downlink estimator; LinkEstimate is sent."""

from __future__ import annotations

import asyncio
import itertools
import re
import time

import pytest
from aiortc import rtp as aiortc_rtp

from meetings.rtc import internals
from meetings.rtc.allocation import PAUSED
from meetings.rtc.sfu import PACE_HOLD, LinkEstimate, Sfu, SfuEvent
from tests.rtc.clients import Client, wait_for
from tests.rtc.probes import DropEveryNth, sdp_sections


async def test_receiver_reports_and_remb_reach_the_estimator_and_link_estimates_are_sent() -> None:
    events: list[SfuEvent] = []
    sfu = Sfu(on_event=events.append)
    publisher = Client("pub", amplitude=0.3, video=True, audio_slots=0, video_slots=0)
    subscriber = Client("sub", audio_slots=1, video_slots=1)
    try:
        await publisher.connect(sfu)
        await subscriber.connect(sfu)
        answer = subscriber.pc.remoteDescription.sdp
        video = answer[answer.index("m=video") :]
        [vp8] = re.findall(r"a=rtpmap:(\d+) VP8/90000", video)
        assert f"a=rtcp-fb:{vp8} goog-remb" in video, "the answer keeps REMB for the receiver's estimate"
        assert internals.ABS_SEND_TIME_URI in video, "forwarded video carries abs-send-time for it"
        assert "transport-cc" not in answer

        estimator = sfu._participants["sub"].estimator

        def subscriber_estimate() -> LinkEstimate | None:
            found = [e for e in events if isinstance(e, LinkEstimate) and e.participant == "sub"]
            return found[-1] if found else None

        def reported() -> bool:
            last = subscriber_estimate()
            return (
                estimator.remb is not None
                and estimator.rtt is not None
                and last is not None
                and last.downlink_bps is not None
                and last.rtt_ms is not None
            )

        assert await wait_for(reported, within=15.0), (estimator.remb, estimator.rtt, subscriber_estimate())
        last = subscriber_estimate()
        assert last is not None and last.loss is not None and last.loss < 2.0, "loopback loses nothing"
        assert last.rtt_ms is not None and 0 <= last.rtt_ms < 1000
        assert estimator.loss is not None and estimator.loss < 0.02, "receiver reports counted"

        publisher_estimate = [e for e in events if isinstance(e, LinkEstimate) and e.participant == "pub"]
        assert await wait_for(
            lambda: any(
                isinstance(e, LinkEstimate) and e.participant == "pub" and e.uplink_bps for e in events
            )
        ), publisher_estimate
        # At most one LinkEstimate a second per participant.
        times = [e for e in events if isinstance(e, LinkEstimate) and e.participant == "sub"]
        assert len(times) <= 2 + 15

        allocations = sfu.allocations()
        [video_mid] = subscriber.slot_mids("video")
        choice = allocations["sub"][video_mid]
        assert not choice.paused, "a loopback link carries the camera"
        assert allocations["pub"] == {}
        wanted = sfu.wanted_layers(allocations)
        assert list(wanted) == [f"pub/{publisher._publish[1].mid}"], "one video publication"
    finally:
        await subscriber.close()
        await publisher.close()
        await sfu.close()


async def test_loss_on_either_side_shows_in_the_link_estimates_and_cuts_the_downlink_estimate() -> None:
    events: list[SfuEvent] = []
    sfu = Sfu(on_event=events.append)
    publisher = Client("pub", amplitude=0.3, audio_slots=0, video_slots=0)
    subscriber = Client("sub", audio_slots=1, video_slots=0)
    try:
        await publisher.connect(sfu)
        await subscriber.connect(sfu)
        [slot_mid] = subscriber.slot_mids("audio")
        slot = sdp_sections(subscriber.pc.remoteDescription.sdp)[slot_mid]
        [mic] = publisher._publish
        published = sdp_sections(publisher.pc.localDescription.sdp)[str(mic.mid)]
        assert slot.ssrc is not None and published.ssrc is not None
        downstream, upstream = DropEveryNth(5, {slot.ssrc}), DropEveryNth(5, {published.ssrc})
        downstream.install(subscriber.pc)
        upstream.install(sfu.peer_connection("pub"))
        estimator = sfu._participants["sub"].estimator
        assert await wait_for(lambda: subscriber.received[slot_mid].packets > 20)
        before = estimator.estimate
        downstream.enabled = upstream.enabled = True

        def lossy(participant: str) -> bool:
            return any(
                isinstance(e, LinkEstimate) and e.participant == participant and (e.loss or 0) > 10
                for e in events
            )

        # 20 % of the subscriber's audio lost: its receiver reports say so (a cut), and 20 % of
        # the publisher's: our own receive statistics say so.
        assert await wait_for(lambda: lossy("sub") and lossy("pub"), 15), events
        assert estimator.estimate < before
        assert len(downstream.dropped) >= 3 and len(upstream.dropped) >= 3
    finally:
        await subscriber.close()
        await publisher.close()
        await sfu.close()


async def test_a_receiver_whose_link_limits_it_is_paced_audio_first_and_one_with_room_is_not() -> None:
    sfu = Sfu()
    publisher = Client("pub", amplitude=0.3, video=True, audio_slots=0, video_slots=0)
    subscriber = Client("sub", audio_slots=1, video_slots=1)
    try:
        await publisher.connect(sfu)
        await subscriber.connect(sfu)
        entry = sfu._participants["sub"]
        [video_mid] = subscriber.slot_mids("video")
        assert await wait_for(lambda: not sfu.allocations().get("sub", {}).get(video_mid, PAUSED).paused)
        assert entry.downlink.rate_bps is None, "a loopback link: sent as it comes (the C path)"

        entry.estimator.estimate = 20_000  # below the camera's cost: its tile pauses, audio goes on
        sfu._adapt(time.monotonic() + 10)
        assert entry.allocator.choices[video_mid].paused
        factor = sfu.config.pace_factor
        assert entry.downlink.rate_bps == pytest.approx(entry.estimator.estimate * factor)

        entry.estimator.estimate = 50_000_000  # room again: paced a little longer (the keyframe
        now = time.monotonic() + 12  # of the step up comes after it), then unpaced
        sfu._adapt(now)
        assert not entry.allocator.choices[video_mid].paused
        assert entry.downlink.rate_bps == pytest.approx(entry.estimator.estimate * factor)
        # Video still waiting when the hold runs out leaves at the paced rate, not all at once.
        entry.downlink.set_rate(8_000)  # 1 KB/s: three 1,000-byte packets wait
        header = bytes([0x80, 96, 0, 1, 0, 0, 0, 1, 0, 0, 0, 7])
        for _ in range(3):
            entry.downlink.push(header, bytes(1000), True)
        assert len(entry.downlink) >= 2
        sfu._adapt(now + PACE_HOLD)
        assert entry.downlink.rate_bps == pytest.approx(entry.estimator.estimate * factor), "draining"
        await asyncio.sleep(0.05)
        entry.downlink.flush()
        assert len(entry.downlink) == 0

        later = [now + PACE_HOLD]

        def unpaced() -> bool:  # once nothing waits (the camera's own packets may, a moment)
            later[0] += 1.0
            sfu._adapt(later[0])
            return entry.downlink.rate_bps is None

        assert await wait_for(unpaced)

        # Room for the camera on its top layer, but a narrow link: paced all the same, at what
        # the link says it carries (its REMB) if that is more than the estimate.
        assert await wait_for(lambda: entry.estimator.known), "the receiver's first feedback"
        entry.estimator.estimate = 2_000_000
        entry.estimator.remb = 2_400_000
        sfu._adapt(later[0] + 1)
        assert not entry.allocator.choices[video_mid].paused
        assert entry.downlink.rate_bps == pytest.approx(2_400_000 * factor)
        entry.estimator.remb = 1_500_000
        sfu._adapt(later[0] + 2)
        assert entry.estimator.estimate >= 2_000_000
        assert entry.downlink.rate_bps == pytest.approx(entry.estimator.estimate * factor)
    finally:
        await subscriber.close()
        await publisher.close()
        await sfu.close()


async def test_rembs_to_a_publisher_fall_at_once_and_rise_at_most_every_200_ms() -> None:
    """aiortc's receive-side estimator yields an estimate on every packet it reads as overuse;
    the REMBs the publisher is sent are throttled as libwebrtc's receiver throttles them. The
    publisher's camera stops after the join; the tapped receiver is then fed packets whose
    arrival falls 2 ms further behind their abs-send-time each (a queue building up)."""
    sfu = Sfu()
    publisher = Client("pub", amplitude=0.3, video=True, audio_slots=0, video_slots=0)
    sent: list[tuple[int, int]] = []  # (arrival ms of the packet that caused it, bitrate)
    try:
        await publisher.connect(sfu)
        mid = publisher._publish[1].mid or "?"
        pub = sfu._participants["pub"].publications[mid]
        receiver = pub.transceiver.receiver
        assert await wait_for(lambda: pub.received > 0, within=10.0)
        publisher._publish[1].sender.replaceTrack(None)
        await asyncio.sleep(0.3)
        clock = [0]

        async def record(packet: aiortc_rtp.AnyRtcpPacket) -> None:
            assert isinstance(packet, aiortc_rtp.RtcpPsfbPacket) and packet.fmt == aiortc_rtp.RTCP_PSFB_APP
            sent.append((clock[0], aiortc_rtp.unpack_remb_fci(packet.fci)[0]))

        receiver._send_rtcp = record  # type: ignore[method-assign]
        handle = getattr(receiver, internals._SYNC_HANDLER)
        [vp8] = [c.payloadType or 0 for c in internals.transceiver_codecs(pub.transceiver) if c.name == "VP8"]
        start = internals.now_ms() + 1_000
        for i in range(600):  # 3 s of packets every 5 ms, each arriving 2 ms later than the last
            packet = aiortc_rtp.RtpPacket(payload_type=vp8, sequence_number=40_000 + i, timestamp=i * 450)
            packet.ssrc = 0x5EED
            packet.payload = b"\x10\x00" + bytes(1000)
            packet.extensions.abs_send_time = ((start + 5 * i) * (1 << 18) // 1000) & 0xFFFFFF
            clock[0] = start + 7 * i
            handle(packet, clock[0])
            await asyncio.sleep(0)
        await asyncio.sleep(0.1)
        throttle = internals.remb_throttle(receiver)
        assert throttle is not None and throttle.held > 10, "the estimator yielded more often than sent"
        assert len(sent) >= 3, sent
        for (before, last), (at, bitrate) in itertools.pairwise(sent):
            assert at - before >= 200 or bitrate * 1.03 <= last, (before, last, at, bitrate)
    finally:
        await publisher.close()
        await sfu.close()
