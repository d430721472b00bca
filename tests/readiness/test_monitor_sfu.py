"""What the tracker reads from the SFU beyond its events, with real aiortc peers: whether a
receiver's link keeps a tile below the layer it asks for, and each connection's counters."""

from __future__ import annotations

from meetings.rtc.allocation import PAUSED, LayerChoice, ladder
from meetings.rtc.sfu import Sfu
from tests.rtc.clients import Client, wait_for


async def test_below_wanted_and_the_counters() -> None:
    sfu = Sfu()
    publisher = Client("pub", amplitude=0.3, video=True, audio_slots=0, video_slots=0)
    subscriber = Client("sub", audio_slots=1, video_slots=1)
    try:
        await publisher.connect(sfu)
        await subscriber.connect(sfu)
        entry = sfu._participants["sub"]
        [video_mid] = subscriber.slot_mids("video")
        assert await wait_for(lambda: not sfu.allocations().get("sub", {}).get(video_mid, PAUSED).paused)

        tops: list[LayerChoice] = []

        def best_known() -> bool:
            """The best choice the subscriber's tile asks for, as the allocation sees it now."""
            sfu.allocations()
            rungs = ladder(sfu._demands["sub"][0]) if sfu._demands.get("sub") else ()
            tops.extend(rungs[-1:])
            return bool(rungs)

        assert await wait_for(best_known)  # no await from here on: the SFU's tick cannot reallocate
        top = tops[-1]
        assert not top.paused
        entry.allocator.choices[video_mid] = top  # what the allocation gives when the link has room
        assert not sfu.below_wanted("sub")
        entry.allocator.choices[video_mid] = PAUSED  # its link cannot carry even the lowest layer
        assert sfu.below_wanted("sub")
        assert not sfu.below_wanted("pub")  # it receives no video
        assert not sfu.below_wanted("nobody")

        assert await wait_for(lambda: sfu.counters()["sub"].forwarded > 10)
        counters = sfu.counters()
        assert counters["sub"].sent_bytes > 0
        assert counters["pub"].received > 10 and counters["pub"].received_bytes > 0
        assert counters["pub"].forwarded == 0 and counters["sub"].received == 0
    finally:
        await subscriber.close()
        await publisher.close()
        await sfu.close()
    assert sfu.counters() == {}
