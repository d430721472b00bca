"""The weak-link harness: its arithmetic, its namespace names, the bench's single-layer baseline."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

import shapedlink
from bench.weaklink import SINGLE_LAYER
from tests.netlink.harness import Figures, meeting, window

pytestmark = pytest.mark.netlink


def _reading(t: float, concealed: int, samples: int, frames: int, freezes: int, width: int) -> Figures:
    return Figures(
        t,
        (
            {"type": "inbound-rtp", "kind": "audio", "mid": "0", "concealedSamples": concealed,
             "totalSamplesReceived": samples, "jitterBufferDelay": samples * 0.05,
             "jitterBufferEmittedCount": samples, "bytesReceived": samples // 10},
            {"type": "inbound-rtp", "kind": "video", "mid": "3", "framesDecoded": frames,
             "freezeCount": freezes, "frameWidth": width, "bytesReceived": frames * 1000},
            {"type": "outbound-rtp", "kind": "video", "rid": "q", "frameWidth": 160},
        ),
    )  # fmt: skip


def test_a_window_is_the_difference_of_two_readings() -> None:
    before = _reading(1000.0, 480, 48_000, 20, 1, 640)
    after = _reading(11_000.0, 480 + 4_800, 48_000 + 480_000, 220, 3, 160)
    got = window(before, after)
    assert got.seconds == 10.0
    assert got.concealed_pct == pytest.approx(1.0)  # 4,800 of 480,000 samples
    assert got.fps == 20.0
    assert got.freezes_per_min == 12.0
    assert got.jitter_buffer_ms == pytest.approx(50.0)
    assert got.widths == [160]
    assert after.sent_widths() == {"q": 160}
    # Only the audio slot: no video in it.
    assert window(before, after, ["0"]).fps == 0.0 and window(before, after, ["0"]).widths == []
    # Nothing received yet: no concealment to speak of, rather than a division by zero.
    assert window(Figures(0.0, ()), Figures(500.0, ())).concealed_pct is None


def test_namespace_prefixes_are_short_letters() -> None:
    for bad in ("", "netlink", "n1", "n-"):
        with pytest.raises(ValueError, match="prefix"), shapedlink.shaped_link(0, prefix=bad):
            pass


@pytest.fixture
async def pw() -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as instance:
        yield instance


@pytest.mark.browser
async def test_the_test_page_offers_simulcast_and_the_bench_baseline_strips_it_to_one_layer(pw: Any) -> None:
    async with meeting() as m:
        browser = await m.browser(pw)
        try:
            await m.join(browser, "layers", microphone=True, camera=True, simulcast=True, wait_media=False)
            await m.join(
                browser,
                "one",
                microphone=True,
                camera=True,
                simulcast=True,
                init_script=SINGLE_LAYER,
                wait_media=False,
            )
        finally:
            await browser.close()
    assert "a=simulcast:send q;h;f" in m.offers["layers"]
    assert all(f"a=rid:{rid} send" in m.offers["layers"] for rid in "qhf")
    assert "a=simulcast" not in m.offers["one"] and "a=rid:" not in m.offers["one"]
