"""What a room needs from a connection, and what it keeps about each participant."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from meetings.wire import CloseCode as CloseCode  # re-exported: the room closes with these
from meetings.wire import ServerMessage


class RoomRole(enum.StrEnum):
    """A participant's role in one room."""

    MODERATOR = "moderator"  # the series' chair or secretary, or an administrator
    PARTICIPANT = "participant"


class Participant(Protocol):
    """One connection to a room, as the room sees it (the media side implements it).

    `send` must not block for long (queue the message); `close` must be safe to call twice.
    """

    @property
    def id(self) -> str:
        """This connection's id, unique in the process (a reconnect gets a new one)."""
        ...

    @property
    def person_id(self) -> int:
        """The person behind the connection."""
        ...

    @property
    def unit_id(self) -> int | None:
        """The person's unit."""
        ...

    @property
    def name(self) -> str:
        """The display name."""
        ...

    @property
    def role(self) -> RoomRole:
        """Moderator or participant, decided at admission."""
        ...

    async def send(self, message: ServerMessage) -> None:
        """Deliver a server message to this connection."""
        ...

    async def close(self, code: int, reason: str) -> None:
        """End this connection; `reason` is a msgid (see meetings.errors.N_)."""
        ...


@dataclass(frozen=True)
class ConnectionQuality:
    """A connection's last measured quality."""

    rtt_ms: float | None = None
    loss_pct: float | None = None
    bitrate_kbps: float | None = None

    def as_dict(self) -> dict[str, float | None]:
        """JSON-ready form."""
        return {"rtt_ms": self.rtt_ms, "loss_pct": self.loss_pct, "bitrate_kbps": self.bitrate_kbps}


@dataclass
class ParticipantState:
    """What the room knows about one person in it; survives that person's reconnects."""

    joined_at: datetime
    audio_muted: bool = True
    video_muted: bool = True
    hand_raised_at: datetime | None = None
    screen_sharing: bool = False
    quality: ConnectionQuality = field(default_factory=ConnectionQuality)

    @property
    def hand_raised(self) -> bool:
        """Whether the hand is up."""
        return self.hand_raised_at is not None
