"""What each receiver gets: dominant speaker, audio top-N, video last-N. Pure functions.

Audio levels are RFC 6464 values in -dBov (0 is the loudest, 127 silence) read from the RTP
header extension; nothing is decoded. ``loudness`` turns a window of them into a score.
A publisher that does not send the extension gets a level estimated from its Opus packets
(``estimated_opus_level``), so that it is still heard.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

S = TypeVar("S")
T = TypeVar("T")

SILENCE_DBOV = 127

# Estimating a level from Opus packets when the RFC 6464 extension is absent (issue #16).
# A DTX or comfort-noise frame is a few bytes; speech takes tens to hundreds of bytes per 20 ms.
OPUS_QUIET_BYTES = 10  # at most this many bytes per 20 ms: silence
OPUS_LOUDEST_ESTIMATE = 40  # an estimate is never louder than -40 dBov (measured levels win)
OPUS_QUIETEST_ESTIMATE = 60  # nor quieter than -60 dBov, the default speech threshold


def _opus_frame_ms(config: int) -> float:
    """Frame duration of an Opus TOC configuration (RFC 6716, section 3.1)."""
    if config < 12:  # SILK-only: 10, 20, 40, 60 ms
        return (10.0, 20.0, 40.0, 60.0)[config % 4]
    if config < 16:  # hybrid: 10, 20 ms
        return (10.0, 20.0)[config % 2]
    return (2.5, 5.0, 10.0, 20.0)[config % 4]  # CELT-only


def estimated_opus_level(payload: bytes) -> int:
    """A level in -dBov guessed from one Opus packet, for publishers without RFC 6464.

    Nothing is decoded: the TOC byte gives the frame duration and count, and the size per
    20 ms gives the level. DTX and comfort noise (at most ``OPUS_QUIET_BYTES`` per 20 ms) are
    silence (127); anything larger is speech between -60 dBov (small packets) and -40 dBov
    (4 bytes more per dB), so a publisher whose client measures its level and speaks loudly
    keeps precedence over an estimated one. A constant-bitrate encoder that does not shrink
    its packets in silence therefore counts as speaking all the time: still eligible, at most
    as loud as a normal speaker.
    """
    if len(payload) <= 2:
        return SILENCE_DBOV
    toc = payload[0]
    code = toc & 0x3
    frames = 1 if code == 0 else 2 if code in (1, 2) else max(1, payload[1] & 0x3F)
    duration = frames * _opus_frame_ms(toc >> 3)
    per_20ms = (len(payload) - 1) * 20.0 / duration
    if per_20ms <= OPUS_QUIET_BYTES:
        return SILENCE_DBOV
    estimate = OPUS_QUIETEST_ESTIMATE - int((per_20ms - OPUS_QUIET_BYTES) // 4)
    return max(OPUS_LOUDEST_ESTIMATE, estimate)


@dataclass
class LevelWindow:
    """The audio levels one participant sent over the last ``seconds``."""

    seconds: float = 1.0
    samples: deque[tuple[float, int]] = field(default_factory=deque)

    def add(self, now: float, level_dbov: int) -> None:
        self.samples.append((now, level_dbov))
        self._trim(now)

    def _trim(self, now: float) -> None:
        cutoff = now - self.seconds
        while self.samples and self.samples[0][0] < cutoff:
            self.samples.popleft()


def loudness(window: LevelWindow, now: float, *, speech_dbov: int = 60) -> float:
    """Mean loudness (dB above silence) over the window; quieter than ``speech_dbov`` counts as 0."""
    cutoff = now - window.seconds
    values = [
        SILENCE_DBOV - level if level <= speech_dbov else 0 for t, level in window.samples if t >= cutoff
    ]
    return sum(values) / len(values) if values else 0.0


def dominant_speaker(
    scores: Mapping[str, float], current: str | None, *, hysteresis: float = 6.0, threshold: float = 1.0
) -> str | None:
    """The loudest participant; the current one keeps the floor unless beaten by ``hysteresis`` dB.

    When nobody speaks the current speaker stays dominant (the floor does not flap to nobody).
    """
    best = max(scores, key=lambda p: (scores[p], p), default=None)
    if best is None or scores[best] < threshold:
        return current
    if current is None or current == best:
        return best
    current_score = scores.get(current, 0.0)
    if current_score < threshold or scores[best] >= current_score + hysteresis:
        return best
    return current


def audio_top_n(
    scores: Mapping[str, float],
    *,
    receiver: str,
    muted: Iterable[str] = (),
    n: int = 3,
    threshold: float = 1.0,
) -> list[str]:
    """The ``n`` loudest unmuted speakers other than ``receiver``, loudest first."""
    excluded = set(muted) | {receiver}
    speaking = [p for p, s in scores.items() if p not in excluded and s >= threshold]
    speaking.sort(key=lambda p: (-scores[p], p))
    return speaking[:n]


def speaking_order(
    scores: Mapping[str, float], sizes: Iterable[int], *, threshold: float = 1.0
) -> tuple[frozenset[str], ...]:
    """What every receiver's ``audio_top_n`` depends on, for each n in ``sizes``: the sets of
    the n and n + 1 loudest speakers (at least ``threshold``).

    A receiver among the n + 1 loudest gets the others of them; any other receiver the n
    loudest. So while these sets stay the same, so does every receiver's choice (slots keep
    their streams, ``assign_slots``), however the scores move within them: the SFU recomputes
    its selection when this changes, not every tick.
    """
    ranked = sorted((p for p, s in scores.items() if s >= threshold), key=lambda p: (-scores[p], p))
    return tuple(frozenset(ranked[:k]) for k in sorted({k for n in sizes for k in (n, n + 1)}))


def note_speaker(recent: Sequence[str], speaker: str | None) -> list[str]:
    """The recent-speaker order (most recent first) after ``speaker`` took the floor."""
    if speaker is None:
        return list(recent)
    return [speaker, *(p for p in recent if p != speaker)]


@dataclass(frozen=True)
class VideoSource:
    """A video stream someone publishes: camera or screen share."""

    participant: str
    key: str
    screen: bool = False


def video_last_n(
    sources: Sequence[VideoSource],
    *,
    receiver: str,
    recent_speakers: Sequence[str],
    pinned: Iterable[str] = (),
    muted: Iterable[str] = (),
    n: int = 6,
) -> list[VideoSource]:
    """The streams ``receiver`` should see, most important first, at most ``n``.

    Screen shares always win, then pinned participants (the chair), then the most recent
    speakers, then other publishers in the order they started (so slots are not left empty).
    Muted (camera off) streams and the receiver's own are never chosen.
    """
    muted_set = set(muted)
    candidates = [s for s in sources if s.participant != receiver and s.key not in muted_set]
    rank_recent = {p: i for i, p in enumerate(recent_speakers)}
    pinned_set = set(pinned)

    def rank(item: tuple[int, VideoSource]) -> tuple[int, int, int]:
        order, source = item
        if source.screen:
            return (0, 0, order)
        if source.participant in pinned_set:
            return (1, 0, order)
        if source.participant in rank_recent:
            return (2, rank_recent[source.participant], order)
        return (3, 0, order)

    ranked = sorted(enumerate(candidates), key=rank)
    return [source for _, source in ranked[:n]]


def assign_slots(current: Mapping[S, T | None], wanted: Sequence[T]) -> dict[S, T | None]:
    """Put ``wanted`` streams into slots, leaving a stream where it already is (fewer switches)."""
    slots = list(current)
    result: dict[S, T | None] = {}
    wanted_set = set(wanted)
    kept = {stream for stream in current.values() if stream is not None and stream in wanted_set}
    for slot in slots:
        stream = current[slot]
        result[slot] = stream if stream in kept else None
    queue = [stream for stream in wanted if stream not in kept]
    for slot in slots:
        if result[slot] is None and queue:
            result[slot] = queue.pop(0)
    return result
