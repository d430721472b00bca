"""What the tracker reads from the SFU beyond its events, with real aiortc peers: whether a
receiver's link keeps a tile below the layer it asks for, and each connection's counters."""

from __future__ import annotations

import time

from meetings.rtc.allocation import PAUSED
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

        entry.estimator.estimate = 50_000_000  # room for everything: the best layer
        sfu._adapt(time.monotonic() + 10)
        assert not sfu.below_wanted("sub")
        entry.estimator.estimate = 20_000  # below the camera's cost: its tile pauses
        sfu._adapt(time.monotonic() + 20)
        assert entry.allocator.choices[video_mid].paused
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
