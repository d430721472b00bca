"""The live session's own server messages on the room socket (the room's are meetings.rooms.events).

docs/signaling.md documents them; tests/signaling/test_declared.py checks that it does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from meetings.wire import ServerMessage


@dataclass(frozen=True)
class Welcome(ServerMessage):
    """The first answer to `join`: this connection's id, the protocol version, ICE servers."""

    TYPE = "welcome"
    participant: str
    protocol: int
    iceServers: tuple[dict[str, Any], ...]


@dataclass(frozen=True)
class Answer(ServerMessage):
    """The SFU's SDP answer to the client's offer."""

    TYPE = "answer"
    sdp: str


@dataclass(frozen=True)
class Stream(ServerMessage):
    """What one of the client's receive slots now carries (`participant` None: nothing)."""

    TYPE = "stream"
    mid: str
    kind: str
    participant: str | None
    person_id: int | None
    source: str | None


@dataclass(frozen=True)
class Speaking(ServerMessage):
    """The dominant speaker changed (None: nobody)."""

    TYPE = "speaking"
    participant: str | None
    person_id: int | None


@dataclass(frozen=True)
class Quality(ServerMessage):
    """A participant's connection quality level changed (`good`, `fair`, `poor`, or None)."""

    TYPE = "quality"
    participant: str
    person_id: int
    level: str | None


@dataclass(frozen=True)
class AudioOnly(ServerMessage):
    """Audio-only mode acknowledged (the client drops its video slots)."""

    TYPE = "audio_only"
    enabled: bool


@dataclass(frozen=True)
class Layer(ServerMessage):
    """What one of the client's video slots now receives: the simulcast layer (`spatial` from 0,
    lowest), the highest temporal layer (None: all), its size, or `paused` for bandwidth."""

    TYPE = "layer"
    mid: str
    spatial: int | None
    temporal: int | None
    width: int | None
    height: int | None
    paused: bool


@dataclass(frozen=True)
class LayersWanted(ServerMessage):
    """The simulcast layers (rids) of the client's publication `mid` that someone receives: the
    client encodes only those (dynacast)."""

    TYPE = "layers_wanted"
    mid: str
    rids: tuple[str, ...]


@dataclass(frozen=True)
class Link(ServerMessage):
    """A participant's connection as the SFU sees it, to the participant itself and to the
    moderators: estimate both ways (bit/s), loss (%), round trip (ms), and the largest video
    it receives now (`width`×`height`; `paused`: all its video paused for bandwidth;
    `audio_only`: it asked for no video). None: not known yet."""

    TYPE = "link"
    participant: str
    person_id: int
    downlink_bps: int | None
    uplink_bps: int | None
    loss: float | None
    rtt_ms: int | None
    width: int | None
    height: int | None
    paused: bool
    audio_only: bool


@dataclass(frozen=True)
class Pong(ServerMessage):
    """The answer to `ping`."""

    TYPE = "pong"


@dataclass(frozen=True)
class Error(ServerMessage):
    """A refused message; the connection stays open unless a close follows."""

    TYPE = "error"
    code: str
    message: str


SESSION_MESSAGES: tuple[type[ServerMessage], ...] = (
    Welcome,
    Answer,
    Stream,
    Speaking,
    Quality,
    AudioOnly,
    Layer,
    LayersWanted,
    Link,
    Pong,
    Error,
)
