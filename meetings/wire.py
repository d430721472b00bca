"""The live sockets' wire: close codes, typed server messages and the one encoder.

Each message is a frozen dataclass whose fields are its JSON members (nested dataclasses
become objects, tuples become arrays); `TYPE` is its `type`. Fields named in `OPTIONAL` are
left out when None. `encode` is deterministic (sorted keys), so golden files can hold it.
"""

from __future__ import annotations

import dataclasses
import enum
import json
from typing import Any, ClassVar


class CloseCode(enum.IntEnum):
    """Why a live socket (the room's or the minutes') is closed; 4000–4999 are the application's.

    The one list: docs/signaling.md and web/static/js/room/backoff.js are checked against it.
    """

    NORMAL = 1000  # after `leave`, or the page went away
    GOING_AWAY = 1001  # the client was too slow to follow: reload
    MESSAGE_TOO_BIG = 1009  # a frame over 1 MiB (aiohttp closes before the parser sees it)
    BAD_MESSAGE = 4000  # the protocol error: not JSON, unknown type, a binary frame, no `join` first
    UNAUTHORIZED = 4001  # not signed in, or the join link is tampered with or expired
    FORBIDDEN = 4003  # e.g. an inactive account
    NOT_FOUND = 4004  # no such meeting
    ENDED = 4100  # the meeting was ended for everyone, or its time is over
    REMOVED = 4101  # a moderator removed this person
    DENIED = 4102  # a moderator refused this person in the lobby
    REPLACED = 4103  # the same person connected again elsewhere
    SHUTDOWN = 4104  # the node is going away: reconnect
    MEDIA_LOST = 4105  # the peer connection failed or closed: reconnect
    INTERNAL = 4500  # an error on the server


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


@dataclasses.dataclass(frozen=True)
class ServerMessage:
    """One message from the server; subclasses declare `TYPE` and their fields."""

    TYPE: ClassVar[str] = ""
    OPTIONAL: ClassVar[frozenset[str]] = frozenset()

    def as_dict(self) -> dict[str, Any]:
        """The JSON object of this message, `type` included."""
        out: dict[str, Any] = {"type": self.TYPE}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is None and f.name in self.OPTIONAL:
                continue
            out[f.name] = _plain(value)
        return out


def encode(message: ServerMessage) -> str:
    """A server message as JSON with sorted keys."""
    return json.dumps(message.as_dict(), ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def fields_of(message_class: type[ServerMessage]) -> list[str]:
    """The JSON members a message class declares (for the documentation test)."""
    return ["type", *(f.name for f in dataclasses.fields(message_class))]
