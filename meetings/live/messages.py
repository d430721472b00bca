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
    Pong,
    Error,
)
