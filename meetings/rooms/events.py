"""What a room tells its connections: typed server messages (encoded by meetings.wire).

docs/signaling.md documents them; tests/signaling/test_declared.py checks that it does.
"""

from __future__ import annotations

from dataclasses import dataclass

from meetings.wire import ServerMessage


@dataclass(frozen=True)
class ParticipantView:
    """A seated participant as everyone sees them."""

    id: str
    person_id: int
    unit_id: int | None
    name: str
    role: str
    audio_muted: bool
    video_muted: bool
    hand_raised: bool
    screen_sharing: bool
    joined_at: str | None


@dataclass(frozen=True)
class LobbyEntry:
    """Someone waiting in the lobby, as moderators see them."""

    participant_id: str
    person_id: int
    unit_id: int | None
    name: str
    since: str | None
    reason: str


@dataclass(frozen=True)
class RoomSnapshot(ServerMessage):
    """The whole room, for a connection just seated (`lobby` for moderators only)."""

    TYPE = "room"
    OPTIONAL = frozenset({"lobby"})
    occurrence_id: int
    title: str
    you: str
    role: str
    locked: bool
    closes_at: str | None
    participants: tuple[ParticipantView, ...]
    queue: tuple[int, ...]
    lobby: tuple[LobbyEntry, ...] | None = None


@dataclass(frozen=True)
class Waiting(ServerMessage):
    """This connection waits in the lobby."""

    TYPE = "waiting"
    reason: str


@dataclass(frozen=True)
class Joined(ServerMessage):
    """Someone was seated (`replaces`: their earlier connection's id, on a reconnect)."""

    TYPE = "joined"
    OPTIONAL = frozenset({"replaces"})
    participant: ParticipantView
    replaces: str | None = None


@dataclass(frozen=True)
class Left(ServerMessage):
    """Someone left, or was removed (`by` the moderator)."""

    TYPE = "left"
    OPTIONAL = frozenset({"by"})
    participant_id: str
    person_id: int
    reason: str
    by: int | None = None


@dataclass(frozen=True)
class StateChanged(ServerMessage):
    """A participant's mute, camera, hand or screen share changed (`by` a moderator, or None)."""

    TYPE = "state"
    participant: ParticipantView
    by: int | None


@dataclass(frozen=True)
class QueueChanged(ServerMessage):
    """The speakers' queue: person ids, first raised first."""

    TYPE = "queue"
    queue: tuple[int, ...]


@dataclass(frozen=True)
class LobbyChanged(ServerMessage):
    """Who waits in the lobby (moderators only)."""

    TYPE = "lobby"
    lobby: tuple[LobbyEntry, ...]


@dataclass(frozen=True)
class Floor(ServerMessage):
    """A moderator gave someone the floor (their microphone is open)."""

    TYPE = "floor"
    person_id: int
    by: int


@dataclass(frozen=True)
class Locked(ServerMessage):
    """The room was locked or unlocked."""

    TYPE = "locked"
    locked: bool
    by: int


@dataclass(frozen=True)
class Ended(ServerMessage):
    """The meeting ended (`by` None: its time is over)."""

    TYPE = "ended"
    by: int | None


@dataclass(frozen=True)
class Chat(ServerMessage):
    """A chat message, as kept."""

    TYPE = "chat"
    participant_id: str
    person_id: int
    name: str
    text: str
    at: str | None


ROOM_MESSAGES: tuple[type[ServerMessage], ...] = (
    RoomSnapshot,
    Waiting,
    Joined,
    Left,
    StateChanged,
    QueueChanged,
    LobbyChanged,
    Floor,
    Locked,
    Ended,
    Chat,
)
