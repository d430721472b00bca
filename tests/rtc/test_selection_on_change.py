"""The SFU's selection is recomputed when one of its inputs changes, not every tick (issue #18).

Real aiortc peers, as in test_forwarding.py. Every ``_select`` (each tick's, and those a join,
a leave, a mute or a pin make) is checked against a full recomputation from the same inputs at
the same instant: what it leaves in the slots is what recomputing everything would have left,
so each change is picked up in the very tick (or call) that sees it.
"""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

from aiortc import RTCRtpSender

from meetings.rtc import sfu as sfu_module
from meetings.rtc.sfu import DominantSpeakerChanged, Sfu, SfuConfig, SfuEvent
from tests.rtc.clients import Client, ToneTrack, wait_for
from tests.rtc.probes import prefer_codec

Snapshot = tuple[str | None, dict[str, dict[str, tuple[str, str] | None]]]


def _snapshot(sfu: Sfu) -> Snapshot:
    return sfu.dominant_speaker, {p: sfu.assignments(p) for p in sfu.participants()}


class _Checked:
    """Wraps ``sfu._select``: counts the recomputations it makes, then recomputes everything
    at the same frozen instant and records any difference."""

    def __init__(self, sfu: Sfu) -> None:
        self.sfu = sfu
        self.original = sfu._select
        self.calls = 0
        self.recomputed = 0  # by the wrapped _select itself (not by the check)
        self.differences: list[tuple[Snapshot, Snapshot]] = []
        sfu._select = self  # type: ignore[method-assign]

    def __call__(self) -> None:
        sfu = self.sfu
        self.calls += 1
        frozen = time.monotonic()
        clock = SimpleNamespace(monotonic=lambda: frozen, time=time.time)
        names = vars(sfu_module)  # the clock the SFU reads, frozen for both calls
        real: Any = names["time"]
        names["time"] = clock
        try:
            before = sfu.selections
            self.original()
            self.recomputed += sfu.selections - before
            seen = _snapshot(sfu)
            sfu._selection_stale = True  # as the tick did before issue #18: everything, every time
            self.original()
            if _snapshot(sfu) != seen:
                self.differences.append((seen, _snapshot(sfu)))
        finally:
            names["time"] = real


def _silence(client: Client) -> None:
    track = client._publish[0].sender.track
    assert isinstance(track, ToneTrack)
    track._pcm = bytes(len(track._pcm))


def _carried(sfu: Sfu, receiver: Client, kind: str) -> str | None:
    [mid] = receiver.slot_mids(kind)
    carried = sfu.assignments(receiver.name)[mid]
    return carried[0] if carried is not None else None


async def test_quiet_ticks_recompute_nothing_and_each_change_is_picked_up_within_one_tick() -> None:
    events: list[SfuEvent] = []
    sfu = Sfu(SfuConfig(audio_top_n=1, video_last_n=1, tick=0.05), on_event=events.append)
    checked = _Checked(sfu)
    loud = Client("loud", amplitude=0.5, video=True, audio_slots=1, video_slots=0)  # hears one other
    second = Client("second", amplitude=0.2, audio_slots=0, video_slots=0)
    quiet = Client("quiet", amplitude=0.05, video=True, audio_slots=0, video_slots=0)
    watcher = Client("watcher", audio_slots=1, video_slots=1)
    late = Client("late", audio_slots=1, video_slots=1)
    clients = [loud, second, quiet, watcher, late]
    try:
        for c in (quiet, second, loud, watcher):
            await c.connect(sfu)
        assert await wait_for(
            lambda: (
                _carried(sfu, watcher, "audio") == "loud"
                and _carried(sfu, watcher, "video") == "loud"
                and _carried(sfu, loud, "audio") == "second"
            ),
            10,
        )

        # Nobody's speaking order changes: ticks check, and recompute nothing.
        calls, recomputed = checked.calls, checked.recomputed
        assert await wait_for(lambda: checked.calls >= calls + 10, 10)
        assert checked.recomputed == recomputed

        # The speaking order changes under the dominant speaker: the second voice falls silent,
        # and the loud speaker (still dominant) hears the quiet one instead.
        _silence(second)
        assert await wait_for(lambda: _carried(sfu, loud, "audio") == "quiet", 10)
        assert sfu.dominant_speaker == "loud" and _carried(sfu, watcher, "audio") == "loud"
        assert checked.recomputed > recomputed

        # The dominant speaker changes: the loud speaker falls silent; the quiet one is heard
        # and seen.
        _silence(loud)
        assert await wait_for(
            lambda: _carried(sfu, watcher, "audio") == "quiet" and _carried(sfu, watcher, "video") == "quiet",
            10,
        )
        assert DominantSpeakerChanged("quiet") in events

        # A mute takes effect in the call; the unmuted voice at the next ticks that hear it.
        sfu.set_muted("quiet", "audio", True)
        assert _carried(sfu, watcher, "audio") != "quiet"
        sfu.set_muted("quiet", "audio", False)
        assert await wait_for(lambda: _carried(sfu, watcher, "audio") == "quiet", 10)

        # A pin, a join, a leave: at once.
        sfu.set_pinned({"loud"})
        assert _carried(sfu, watcher, "video") == "loud"
        await late.connect(sfu)
        assert _carried(sfu, late, "video") == "loud" and _carried(sfu, late, "audio") == "quiet"
        await sfu.leave("loud")
        assert _carried(sfu, watcher, "video") == "quiet" and _carried(sfu, late, "video") == "quiet"

        # And quiet again afterwards, once the silenced second voice's level window has run out
        # (a speaking-order change, picked up when it happens; the steps above may take less
        # than the window).
        assert await wait_for(lambda: all("second" not in voices for voices in sfu._speaking), 10)
        calls, recomputed = checked.calls, checked.recomputed
        assert await wait_for(lambda: checked.calls >= calls + 10, 10)
        assert checked.recomputed == recomputed
        assert checked.differences == []
    finally:
        for c in clients:
            await c.close()
        await sfu.close()


async def test_a_video_whose_codec_turns_out_undecodable_is_replaced_within_one_tick() -> None:
    """A publisher that negotiated VP8 and H.264 but sends H.264: a VP8-only viewer may get it
    before its first packet (decodable as far as anyone knew), and must get a VP8 stream in the
    tick that sees the H.264 packets (no join, leave or speaker change to trigger it)."""
    sfu = Sfu(SfuConfig(video_last_n=1, tick=0.05))
    checked = _Checked(sfu)
    viewer = Client("viewer", audio_slots=0, video_slots=1)
    prefer_codec(viewer.slots[0], "video/VP8")
    dual = Client("dual", video=True, audio_slots=0, video_slots=0)
    capabilities = RTCRtpSender.getCapabilities("video").codecs
    dual._publish[0].setCodecPreferences(
        [c for c in capabilities if c.mimeType == "video/H264"]
        + [c for c in capabilities if c.mimeType in ("video/VP8", "video/rtx")]
    )
    vp8 = Client("vp8pub", video=True, audio_slots=0, video_slots=0)
    prefer_codec(vp8._publish[0], "video/VP8")
    try:
        for client in (viewer, dual, vp8):
            await client.connect(sfu)
        assert await wait_for(lambda: _carried(sfu, viewer, "video") == "vp8pub", 10)
        assert await wait_for(lambda: viewer.frames("video") > 3, 10)
        assert checked.differences == []
    finally:
        for client in (viewer, dual, vp8):
            await client.close()
        await sfu.close()


async def test_a_tick_while_a_leaving_connection_closes_finds_the_emptied_slots_filled() -> None:
    """A leave empties the slots that carried the leaver and then closes its connection, which
    awaits; a tick in that await (under load in CI) saw no change and left them empty."""
    sfu = Sfu(SfuConfig(video_last_n=1, tick=60.0))  # ticks only where the test makes them
    checked = _Checked(sfu)
    first = Client("first", amplitude=0.5, video=True, audio_slots=0, video_slots=0)
    other = Client("other", amplitude=0.2, video=True, audio_slots=0, video_slots=0)
    watcher = Client("watcher", audio_slots=0, video_slots=1)
    clients = [first, other, watcher]
    try:
        for c in clients:
            await c.connect(sfu)
        sfu.set_pinned({"first"})
        assert _carried(sfu, watcher, "video") == "first"
        leaving = sfu._get("first").pc
        close = leaving.close

        async def close_with_a_tick() -> None:
            checked()  # the tick that comes while the connection closes
            await close()

        leaving.close = close_with_a_tick  # type: ignore[method-assign]
        await sfu.leave("first")
        assert checked.differences == []
        assert _carried(sfu, watcher, "video") == "other"
    finally:
        for c in clients:
            await c.close()
        await sfu.close()
