"""A fake participant that records what the room tells it, and a fixed clock."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from meetings.rooms.participant import RoomRole
from meetings.wire import ServerMessage

# The morning meeting of Monday 4 January 2027: 07:30–08:15 in Huế (UTC+7).
START = datetime(2027, 1, 4, 0, 30, tzinfo=UTC)
END = START + timedelta(minutes=45)


def at(minutes: float) -> datetime:
    """A time relative to the start of the meeting."""
    return START + timedelta(minutes=minutes)


@dataclass(eq=False)
class FakeParticipant:
    """A connection that keeps every message and its close."""

    id: str
    person_id: int
    unit_id: int | None = None
    name: str = ""
    role: RoomRole = RoomRole.PARTICIPANT
    broken: bool = False  # sending fails, as on a dead socket
    messages: list[dict[str, Any]] = field(default_factory=list)
    closed: tuple[int, str] | None = None

    async def send(self, message: ServerMessage) -> None:
        if self.broken:
            raise ConnectionResetError("socket gone")
        self.messages.append(message.as_dict())  # what goes on the wire, so tests read it as JSON

    async def close(self, code: int, reason: str) -> None:
        if self.closed is None:
            self.closed = (code, reason)

    def types(self) -> list[str]:
        """The types of the messages received, in order."""
        return [m["type"] for m in self.messages]

    def last(self, kind: str) -> dict[str, Any]:
        """The last message of a type."""
        return next(m for m in reversed(self.messages) if m["type"] == kind)

    def clear(self) -> None:
        """Forget the messages received so far."""
        self.messages.clear()


def person(
    person_id: int, *, moderator: bool = False, conn: str = "", unit_id: int | None = 1
) -> FakeParticipant:
    """A fake connection of a person (conn distinguishes a second connection)."""
    return FakeParticipant(
        id=f"c{person_id}{conn}",
        person_id=person_id,
        unit_id=unit_id,
        name=f"Người {person_id}",
        role=RoomRole.MODERATOR if moderator else RoomRole.PARTICIPANT,
    )
