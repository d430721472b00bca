"""Room refusals: the usual domain error kinds, each with a stable code for the protocol."""

from __future__ import annotations

from typing import ClassVar

from meetings.errors import Conflict, Forbidden, NotFound


class RoomClosed(Conflict):
    """The room is not open: too early, over, ended by the chair, or the meeting is cancelled."""

    code: ClassVar[str] = "room_closed"


class RoomFull(Conflict):
    """The room (or its lobby) has reached its capacity."""

    code: ClassVar[str] = "room_full"


class NotModerator(Forbidden):
    """Only the chair, the secretary or an administrator may do this."""

    code: ClassVar[str] = "not_moderator"


class NotInRoom(Forbidden):
    """The connection acting is not (or no longer) seated in the room."""

    code: ClassVar[str] = "not_in_room"


class NoSuchParticipant(NotFound):
    """The person a moderator acts on is not in the room (or not in its lobby)."""

    code: ClassVar[str] = "no_such_participant"
