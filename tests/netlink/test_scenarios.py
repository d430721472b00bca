"""Issue #16's weak-link scenarios: real Chromium publishers and receivers, a real SFU, shaped links.

Each scenario is one test (``harness``: the SFU in this process, the test page, the relay).
Publishers send VP8 simulcast (rids q/h/f at 1/4, 1/2 and full size) as the room page does;
receivers are shown their tiles at 640×360 (``Meeting.show_tiles``), so bandwidth, not tile
size, decides their layer. Figures come from ``getStats()`` on the page and are printed (run
with ``-s`` to see them); the waits are generous and the only bounds are on what the issue
promises: the lowest layer and continuous audio for a weak receiver, the top layer for a
strong one, audio through loss and through a weak uplink. The seconds to adapt are recorded,
not asserted (``python -m bench weaklink`` tabulates them).
"""

from __future__ import annotations

import asyncio
import itertools
import statistics
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

import shapedlink
from shapedlink import Impairment
from tests.netlink.harness import PREFIX, Client, Figures, Meeting, meeting, until, window

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.netlink, pytest.mark.usefixtures("netns")]

LAYER_WAIT_S = (
    30.0  # the longest a receiver may take to reach a layer (generous: the target is 2 s down, 15 up)
)
UP_WAIT_S = 60.0  # the longest a receiver may take back to the top layer on both tiles
MEASURE_S = 8.0  # the window the figures are measured over, once the layers have settled
SETTLE_S = 6.0  # from a receiver's join to its jitter buffer's steady state at 150 ms RTT (measured)
AUDIO_PCT = 2.0  # the target: a weak receiver's audio concealment stays below 2 %
DROP_AUDIO_PCT = 5.0  # from adapted down at 250 kbit/s to back at the top (see the test)


@pytest.fixture
async def pw() -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as instance:
        yield instance


async def _publishers(m: Meeting, browser: Any, count: int = 2) -> list[Client]:
    return [
        await m.join(browser, f"pub{i}", microphone=True, camera=True, wait_media=False) for i in range(count)
    ]


async def _top_width(publishers: list[Client]) -> int:
    """The full-size layer's width (what the cameras capture)."""
    return max([await p.capture_width() for p in publishers])


def _lowest_or_paused(m: Meeting, client: Client, top: int) -> Callable[[Figures], bool]:
    """Every video ``client`` is shown at the lowest layer, or paused by the SFU, and one at
    least shown. A paused tile keeps its last frame, so its width says nothing: on 300 kbit/s
    with three voices the allocation keeps one 160×90 tile and pauses the other (issue #16:
    below the lowest layer's cost, video pauses by itself)."""

    def check(figures: Figures) -> bool:
        layers = m.layers(client.name)
        shown = [mid for mid in client.mids("video") if mid in layers and not layers[mid].paused]
        widths = figures.widths(shown)
        return bool(widths) and max(widths) <= top // 4

    return check


def _top(top: int, streams: int) -> Callable[[Figures], bool]:
    """``streams`` video streams, each at the top layer (the capture's width)."""

    def check(figures: Figures) -> bool:
        widths = figures.widths()
        return len(widths) == streams and min(widths) >= top

    return check


async def _settle(client: Client, check: Any, what: str, seconds: float = LAYER_WAIT_S) -> float:
    """Seconds until ``check(figures)`` holds for ``client`` (fails after ``seconds``)."""
    began, first = time.monotonic(), await client.figures()

    async def holds() -> bool:
        return bool(check(await client.figures()))

    try:
        await until(holds, seconds, what)
    except AssertionError as exc:  # say what the receiver got meanwhile
        raise AssertionError(
            f"{exc}; {client.name} got {window(first, await client.figures()).line()}"
        ) from None
    return time.monotonic() - began


async def _stepped_down(m: Meeting, client: Client, what: str) -> float:
    """Seconds until the SFU forwards ``client`` each video at its lowest layer or pauses it
    (a paused tile keeps showing its last frame, so its width says nothing)."""
    began, mids = time.monotonic(), client.mids("video")

    async def low() -> bool:
        layers = m.layers(client.name)
        return all(mid in layers and (layers[mid].paused or layers[mid].spatial == 0) for mid in mids)

    await until(low, LAYER_WAIT_S, what, step=0.1)
    return time.monotonic() - began


async def test_a_300_kbit_receiver_gets_the_lowest_layer_and_continuous_audio_an_unlimited_one_the_top(
    pw: Any,
) -> None:
    with shapedlink.shaped_link(0, prefix=PREFIX, down_kbit=300, up_kbit=300) as link:
        async with meeting([link]) as m:
            here, there = await m.browser(pw), await m.browser(pw, link)
            try:
                publishers = await _publishers(m, here)
                strong = await m.join(here, "strong", audio=3, video=2)
                weak = await m.join(there, "weak", link=link, audio=3, video=2)
                for receiver in (strong, weak):
                    m.show_tiles(receiver)
                top = await _top_width(publishers)
                low = _lowest_or_paused(m, weak, top)
                down_s = await _settle(weak, low, "the weak receiver's lowest layer (or a pause)")
                up_s = await _settle(strong, _top(top, 2), "the strong receiver's top layer")
                before = [await weak.fresh(), await strong.fresh()]
                # The weak receiver's frame widths every second: a probe may try the next layer
                # for a moment (that is how a link that grew is found), the link keeps it low.
                began, lowest = time.monotonic(), []
                while time.monotonic() - began < MEASURE_S:
                    await asyncio.sleep(1.0)
                    lowest.append(low(await weak.figures()))
                after = [await weak.fresh(), await strong.fresh()]
                weak_w, strong_w = (window(b, a) for b, a in zip(before, after, strict=True))
                print(f"\n300 kbit/s receiver (lowest layer after {down_s:.1f} s): {weak_w.line()}")
                print(f"  on the lowest layer in {sum(lowest)} of {len(lowest)} readings")
                print(f"unlimited receiver (top layer after {up_s:.1f} s): {strong_w.line()}")
                assert sum(lowest) >= 0.75 * len(lowest), (lowest, weak_w, top)
                assert weak_w.concealed_pct is not None and weak_w.concealed_pct < AUDIO_PCT, weak_w
                assert weak_w.fps > 0, weak_w  # video goes on, at the lowest layer
                assert min(strong_w.widths) >= top, (strong_w, top)
                assert strong_w.concealed_pct is not None and strong_w.concealed_pct < AUDIO_PCT, strong_w
            finally:
                await there.close()
                await here.close()


async def test_a_receiver_whose_link_falls_to_250_kbit_adapts_down_keeps_audio_and_comes_back(
    pw: Any,
) -> None:
    with shapedlink.shaped_link(0, prefix=PREFIX, down_kbit=2000, up_kbit=2000) as link:
        async with meeting([link]) as m:
            here, there = await m.browser(pw), await m.browser(pw, link)
            try:
                publishers = await _publishers(m, here)
                receiver = await m.join(there, "receiver", link=link, audio=3, video=2)
                m.show_tiles(receiver)
                top = await _top_width(publishers)
                first_s = await _settle(receiver, _top(top, 2), "the top layer at 2 Mbit/s")
                start = await receiver.fresh()
                link.shape(250, 250)
                down_s = await _stepped_down(m, receiver, "the lowest layer or a pause at 250 kbit/s")
                adapted = await receiver.fresh()
                await asyncio.sleep(MEASURE_S)
                low = await receiver.fresh()
                link.shape(2000, 2000)
                # Back up takes probes, one layer step at a time for each tile (measured 9-26 s);
                # the wait is a bound, not the target (the bench reports the seconds).
                up_s = await _settle(receiver, _top(top, 2), "the top layer again at 2 Mbit/s", UP_WAIT_S)
                end = await receiver.fresh()
                fall_w, low_w, after = window(start, adapted), window(adapted, low), window(adapted, end)
                print(f"\n2 Mbit/s: top layer after {first_s:.1f} s")
                print(f"→ 250 kbit/s: down in {down_s:.1f} s ({fall_w.line()}); then {low_w.line()}")
                print(f"→ 2 Mbit/s: up in {up_s:.1f} s; from adapted down to back up {after.line()}")
                print("layer changes:", *m.layer_changes("receiver"), sep="\n  ")
                # Audio throughout, once adapted (the issue allows 2 s for that; until then the
                # link's queue is full of video sent for 2 Mbit/s): through the low period and the
                # way back up (before #16, over the whole drop: 9.8 %).
                assert after.concealed_pct is not None and after.concealed_pct < DROP_AUDIO_PCT, after
                assert low_w.fps > 0, low_w
            finally:
                await there.close()
                await here.close()


@pytest.mark.parametrize(("loss", "bound_pct"), [(0.05, 2.5), (0.15, 7.5)], ids=["5%", "15%"])
async def test_audio_stays_continuous_and_video_recovers_under_random_loss_at_150_ms(
    pw: Any, loss: float, bound_pct: float
) -> None:
    # Generous bounds, half the loss: with RED (or Opus in-band FEC) a packet is lost for good
    # only when its copy is lost too (about loss², 0.25 % and 2.25 %). Without them about the
    # loss itself is concealed (measured before #16: 4.2 % at 5 %, 13.2 % at 15 %).
    # The windows start once the receiver's jitter buffer has settled: at 150 ms RTT it starts
    # near 100 ms and conceals about 1-1.7 % of its first seconds even with no loss at all
    # (measured), and on these 2 shared cores a joining browser sometimes stretches that start
    # over several seconds (6.7 % in one window, 0.2 % two windows later). The bound is on the
    # median window: one stalled window is this machine; RED lost would put every window near
    # the loss itself.
    with shapedlink.shaped_link(0, prefix=PREFIX) as link:
        async with meeting([link], relay=True) as m:
            assert m.relay is not None
            m.relay.impair(link.network, Impairment(delay_ms=75, jitter_ms=5, loss=loss))  # 150 ms RTT
            here, there = await m.browser(pw), await m.browser(pw, link)
            try:
                await _publishers(m, here, count=1)
                receiver = await m.join(there, "receiver", link=link, audio=3, video=1)
                m.show_tiles(receiver)
                await asyncio.sleep(SETTLE_S)  # past the first keyframe and the jitter buffer's start
                readings = [await receiver.fresh()]
                for _ in range(4):  # video keeps being decoded: NACK and keyframes repair it
                    await asyncio.sleep(MEASURE_S / 2)
                    readings.append(await receiver.fresh())
                whole = window(readings[0], readings[-1])
                windows = [window(before, after) for before, after in itertools.pairwise(readings)]
                counts = m.relay.counts
                dropped = f"relay dropped {counts.dropped}/{counts.impaired}"
                print(f"\n{loss:.0%} loss each way, 150 ms RTT ({dropped}): {whole.line()}")
                print(*(w.line() for w in windows), sep="\n  ")
                concealed = sorted(w.concealed_pct for w in windows if w.concealed_pct is not None)
                assert len(concealed) == len(windows), windows
                assert statistics.median(concealed) < bound_pct, windows
                assert whole.concealed_pct is not None and whole.concealed_pct < 100 * loss, whole
                # Video recovers: decoded in at least 3 of the 4 windows and in the last. Under
                # 15 % loss Chromium's REMB sometimes falls below what RED audio and the lowest
                # layer need, and the tile pauses by itself until a probe brings the estimate
                # back (measured: a 4.5 s window without a frame in two runs of ten).
                decoding = [
                    after.frames() > before.frames() for before, after in itertools.pairwise(readings)
                ]
                assert sum(decoding) >= 3 and decoding[-1], [r.frames() for r in readings]
            finally:
                await there.close()
                await here.close()


async def test_a_publisher_with_a_300_kbit_uplink_is_heard_by_everyone_and_seen_at_its_lowest_layer(
    pw: Any,
) -> None:
    with shapedlink.shaped_link(0, prefix=PREFIX, up_kbit=300) as link:
        async with meeting([link]) as m:
            here, there = await m.browser(pw), await m.browser(pw, link)
            try:
                await m.join(there, "weakpub", link=link, microphone=True, camera=True, wait_media=False)
                other = await m.join(here, "pub", microphone=True, camera=True, video=1, audio=3)
                receivers = [other] + [await m.join(here, f"r{i}", audio=3, video=2) for i in range(2)]
                for receiver in receivers:
                    m.show_tiles(receiver)
                await asyncio.sleep(5)  # the publisher's own estimate settles on its uplink
                slots = {}
                for receiver in receivers:
                    audio, video = receiver.slot_of("weakpub", "audio"), receiver.slot_of("weakpub", "video")
                    assert audio is not None and video is not None, f"{receiver.name} is not given weakpub"
                    slots[receiver.name] = (audio, video)
                before = [await r.fresh() for r in receivers]
                await asyncio.sleep(MEASURE_S)
                after = [await r.fresh() for r in receivers]
                for receiver, b, a in zip(receivers, before, after, strict=True):
                    audio, video = slots[receiver.name]
                    heard, seen = window(b, a, [audio]), window(b, a, [video])
                    print(f"\n{receiver.name} hears the 300 kbit/s publisher: {heard.line()}")
                    print(f"{receiver.name} sees it: {seen.line()}")
                    assert heard.concealed_pct is not None and heard.concealed_pct < AUDIO_PCT, heard
                    # Its uplink carries audio and the lowest layer (what its own estimator leaves on).
                    assert seen.fps > 0, seen
            finally:
                await there.close()
                await here.close()
