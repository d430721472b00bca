"""Dominant speaker, audio top-N, video last-N: pure functions."""

from __future__ import annotations

from meetings.rtc.selection import (
    LevelWindow,
    VideoSource,
    assign_slots,
    audio_top_n,
    dominant_speaker,
    loudness,
    note_speaker,
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
