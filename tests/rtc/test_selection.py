"""Dominant speaker, audio top-N, video last-N: pure functions."""

from __future__ import annotations

import random

from meetings.rtc.selection import (
    OPUS_LOUDEST_ESTIMATE,
    OPUS_QUIETEST_ESTIMATE,
    SILENCE_DBOV,
    LevelWindow,
    VideoSource,
    assign_slots,
    audio_top_n,
    dominant_speaker,
    estimated_opus_level,
    loudness,
    note_speaker,
    speaking_order,
    video_last_n,
)


def test_loudness_averages_the_window_and_ignores_old_and_quiet_samples() -> None:
    w = LevelWindow(seconds=1.0)
    w.add(0.0, 10)  # will fall out of the window
    for i in range(10):
        w.add(1.0 + i / 10, 30)
    w.add(1.95, 90)  # below speech: counts as silence
    assert loudness(w, 2.0) == (97 * 10) / 11
    assert loudness(LevelWindow(), 0.0) == 0.0


def test_dominant_speaker_has_hysteresis() -> None:
    assert dominant_speaker({"a": 50, "b": 40}, None) == "a"
    assert dominant_speaker({"a": 50, "b": 54}, "a") == "a"  # not loud enough to take over
    assert dominant_speaker({"a": 50, "b": 57}, "a") == "b"
    assert dominant_speaker({"a": 0, "b": 5}, "a") == "b"  # the speaker went quiet
    assert dominant_speaker({"a": 0, "b": 0}, "a") == "a"  # nobody speaks: keep the floor
    assert dominant_speaker({}, None) is None


def test_audio_top_n_takes_the_loudest_others_and_skips_muted() -> None:
    scores = {"a": 90, "b": 80, "c": 70, "d": 60, "e": 50, "f": 0}
    assert audio_top_n(scores, receiver="x") == ["a", "b", "c"]
    assert audio_top_n(scores, receiver="a") == ["b", "c", "d"]
    assert audio_top_n(scores, receiver="x", muted={"b"}, n=2) == ["a", "c"]
    assert audio_top_n(scores, receiver="x", n=10) == ["a", "b", "c", "d", "e"]  # silence is not sent


def test_speaking_order_changes_whenever_some_receivers_audio_top_n_does() -> None:
    """Issue #18: the SFU recomputes its selection when ``speaking_order`` changes, so equal
    orders must mean equal ``audio_top_n`` for every receiver (speaker or not) and size."""
    rng = random.Random(18)
    people = ["a", "b", "c", "d", "e"]
    sizes = (1, 3)
    for _ in range(2000):
        before = {p: rng.choice([0.0, 0.5, 20.0, 40.0, 60.0, 61.0]) for p in people}
        after = {p: rng.choice([0.0, 0.5, 20.0, 40.0, 60.0, 61.0]) for p in people}
        if speaking_order(before, sizes) != speaking_order(after, sizes):
            continue
        for receiver in [*people, "listener"]:
            for n in sizes:
                top = audio_top_n(before, receiver=receiver, n=n)
                assert set(top) == set(audio_top_n(after, receiver=receiver, n=n))
    # The order within the sets may move (the slots keep their streams); a set may not.
    assert speaking_order({"a": 50, "b": 40, "c": 30}, [1]) == (frozenset("a"), frozenset("ab"))
    assert speaking_order({"a": 40, "b": 50, "c": 30}, [3]) == speaking_order(
        {"c": 50, "b": 40, "a": 30}, [3]
    )
    assert speaking_order({"a": 50, "b": 40, "c": 30}, [1]) != speaking_order(
        {"a": 50, "b": 0.5, "c": 30}, [1]
    )


def test_video_last_n_order() -> None:
    sources = [VideoSource(p, f"{p}/1") for p in "abcdefgh"] + [VideoSource("h", "h/2", screen=True)]
    recent = note_speaker(note_speaker(note_speaker([], "c"), "e"), "c")
    assert recent == ["c", "e"]
    chosen = video_last_n(sources, receiver="a", recent_speakers=recent, pinned={"g"}, n=4)
    assert [s.key for s in chosen] == ["h/2", "g/1", "c/1", "e/1"]
    chosen = video_last_n(sources, receiver="c", recent_speakers=recent, muted={"b/1"}, n=4)
    assert [s.key for s in chosen] == ["h/2", "e/1", "a/1", "d/1"]


def test_assign_slots_keeps_streams_in_place() -> None:
    current = {"s1": "a", "s2": "b", "s3": None}
    assert assign_slots(current, ["b", "c"]) == {"s1": "c", "s2": "b", "s3": None}
    assert assign_slots(current, ["d", "e", "f", "g"]) == {"s1": "d", "s2": "e", "s3": "f"}


def test_estimated_opus_level_from_packet_size_and_toc() -> None:
    """Issue #16: without RFC 6464, DTX and comfort noise are silence, bigger packets speech."""
    celt_20ms = 31 << 3  # CELT-only, 20 ms, one frame
    silk_20ms = 1 << 3  # SILK-only, 20 ms
    silk_60ms = 3 << 3  # SILK-only, 60 ms
    assert estimated_opus_level(bytes([celt_20ms])) == SILENCE_DBOV  # DTX: the TOC alone
    assert estimated_opus_level(bytes([silk_20ms]) + bytes(8)) == SILENCE_DBOV  # comfort noise
    assert estimated_opus_level(bytes([silk_20ms]) + bytes(12)) == OPUS_QUIETEST_ESTIMATE
    assert estimated_opus_level(bytes([celt_20ms]) + bytes(160)) == OPUS_LOUDEST_ESTIMATE
    # The same 30 bytes are a loud 20 ms frame but a quiet 60 ms one.
    assert estimated_opus_level(bytes([silk_60ms]) + bytes(30)) == SILENCE_DBOV
    assert estimated_opus_level(bytes([silk_20ms]) + bytes(30)) == 55
    # Code 3: the frame count is in the second byte (here 3 × 20 ms).
    assert estimated_opus_level(bytes([celt_20ms | 3, 3]) + bytes(28)) == SILENCE_DBOV
    # An estimate scores as speech, but never above a loudly speaking measured publisher.
    window = LevelWindow()
    window.add(0.0, estimated_opus_level(bytes([celt_20ms]) + bytes(400)))
    measured = LevelWindow()
    measured.add(0.0, 20)
    assert 0 < loudness(window, 0.0) < loudness(measured, 0.0)
