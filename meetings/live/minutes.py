"""The minutes socket's protocol (docs/minutes.md, "Live socket"), and who watches which minutes
on this node with the push to them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from meetings.wire import ServerMessage, encode

# What an editor may send: {"op": …, "ref": n, …}.
MINUTES_OPS = ("add", "save", "status", "move", "delete", "header", "attendance", "correct")


@dataclass(frozen=True)
class MinutesState(ServerMessage):
    """The first message: the minutes as this viewer may read them."""

    TYPE = "state"
    state: dict[str, Any]


@dataclass(frozen=True)
class EntryChanged(ServerMessage):
    """An entry was added or changed."""

    TYPE = "entry"
    entry: dict[str, Any]


@dataclass(frozen=True)
class Order(ServerMessage):
    """The entries after a move, in their new order."""

    TYPE = "order"
    entries: tuple[dict[str, Any], ...]


@dataclass(frozen=True)
class Deleted(ServerMessage):
    """An entry was deleted (its last version)."""

    TYPE = "deleted"
    id: int
    version: int


@dataclass(frozen=True)
class Header(ServerMessage):
    """The header changed (the attendance with it)."""

    TYPE = "header"
    header: dict[str, Any]
    header_version: int


@dataclass(frozen=True)
class Status(ServerMessage):
    """The minutes moved through their workflow (submitted, approved, published…)."""

    TYPE = "status"
    status: str


@dataclass(frozen=True)
class Ack(ServerMessage):
    """An editor's message was applied; `result` is what was pushed to everyone."""

    TYPE = "ack"
    ref: Any
    result: dict[str, Any]


@dataclass(frozen=True)
class Conflict(ServerMessage):
    """An edit of an out-of-date version; `current` is the version to edit again."""

    TYPE = "conflict"
    ref: Any
    message: str
    current: Any


@dataclass(frozen=True)
class Error(ServerMessage):
    """An edit refused (`fields`: which field and why; `retry`: a database clash, try again)."""

    TYPE = "error"
    OPTIONAL = frozenset({"fields", "retry"})
    ref: Any
    message: str
    fields: tuple[dict[str, Any], ...] | None = None
    retry: bool | None = None


MinutesPush = EntryChanged | Order | Deleted | Header | Status
MINUTES_MESSAGES: tuple[type[ServerMessage], ...] = (
    MinutesState,
    EntryChanged,
    Order,
    Deleted,
    Header,
    Status,
    Ack,
    Conflict,
    Error,
)


class Viewer(Protocol):
    """One open minutes socket, as the hub sees it (web/minutes_live.Viewer)."""

    @property
    def minutes_id(self) -> int:
        """The minutes watched."""
        ...

    def post(self, text: str) -> None:
        """Queue encoded text (never blocks; a viewer too slow to follow is closed)."""
        ...

    def close(self) -> None:
        """Close after what is queued."""
        ...


@dataclass
class MinutesHub:
    """The viewers of every minutes on this node."""

    viewers: dict[int, set[Viewer]] = field(default_factory=dict)

    def add(self, viewer: Viewer) -> None:
        """Start pushing to a viewer."""
        self.viewers.setdefault(viewer.minutes_id, set()).add(viewer)

    def remove(self, viewer: Viewer) -> None:
        """Stop pushing to a viewer."""
        group = self.viewers.get(viewer.minutes_id)
        if group is not None:
            group.discard(viewer)
            if not group:
                del self.viewers[viewer.minutes_id]

    def count(self, minutes_id: int) -> int:
        """How many viewers a minutes has on this node."""
        return len(self.viewers.get(minutes_id, ()))

    def push(self, minutes_id: int, message: MinutesPush) -> None:
        """Send a message to every viewer of a minutes (encoded once)."""
        group = self.viewers.get(minutes_id)
        if not group:
            return
        text = encode(message)
        for viewer in list(group):
            viewer.post(text)

    def close_all(self) -> None:
        """Close every viewer (shutdown)."""
        for group in list(self.viewers.values()):
            for viewer in list(group):
                viewer.close()
