"""The minutes socket's protocol both ways (docs/minutes.md, "Live socket"), and who watches which
minutes on this node with the push to them.

Client edits are typed by `parse_edit`, the one parser for the socket and the HTTP API (which sets
the op from its route); server messages are typed classes encoded by meetings.wire.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from meetings.errors import N_, FieldError, InvalidInput
from meetings.minutes.service import EntryInput
from meetings.wire import ServerMessage, encode

MAX_FIELD_TEXT = (
    100_000  # characters of one text field (as web.forms.MAX_JSON_TEXT; the domain limits further)
)
MAX_REF = 100  # characters of a ref
ENTRY_FIELDS = (
    "kind",
    "text",
    "section",
    "unit",
    "category",
    "severity",
    "owner_unit",
    "owner_person",
    "due_date",
)
HEADER_FIELDS = ("chair", "secretary", "attendance", "reason")

Ref = str | int | None  # the editor's tag, echoed in the answer


# --- client → server: the edits ----------------------------------------------------------------


@dataclass(frozen=True)
class Edit:
    """What an editor sends: {"op": …, "ref": n, …}."""

    OP: ClassVar[str] = ""
    ref: Ref


@dataclass(frozen=True)
class AddEntry(Edit):
    """Add an entry; the same idempotency `key` again adds nothing and answers with the first."""

    OP = "add"
    entry: EntryInput
    key: str | None = None


@dataclass(frozen=True)
class SaveEntry(Edit):
    """Save an entry over the version the editor saw."""

    OP = "save"
    id: int
    version: int
    entry: EntryInput


@dataclass(frozen=True)
class SetStatus(Edit):
    """Close or reopen an issue or an action."""

    OP = "status"
    id: int
    version: int
    status: str


@dataclass(frozen=True)
class MoveEntry(Edit):
    """Put an entry at another place."""

    OP = "move"
    id: int
    version: int
    position: int


@dataclass(frozen=True)
class DeleteEntry(Edit):
    """Remove an entry (its history stays)."""

    OP = "delete"
    id: int
    version: int


@dataclass(frozen=True)
class EditHeader(Edit):
    """Change the header; `changes` holds the fields sent (chair, secretary, attendance, reason),
    validated by meetings.minutes.service.update_header."""

    OP = "header"
    header_version: int
    changes: Mapping[str, object]


@dataclass(frozen=True)
class RefreshAttendance(Edit):
    """Write the attendance as the room's records and the corrections give it."""

    OP = "attendance"
    header_version: int


@dataclass(frozen=True)
class CorrectAttendance(Edit):
    """Correct one person's attendance (an empty state follows the room again)."""

    OP = "correct"
    header_version: int
    person_id: int
    state: str
    reason: str


MinutesEdit = (
    AddEntry
    | SaveEntry
    | SetStatus
    | MoveEntry
    | DeleteEntry
    | EditHeader
    | RefreshAttendance
    | CorrectAttendance
)
MINUTES_EDITS: tuple[type[Edit], ...] = (
    AddEntry,
    SaveEntry,
    SetStatus,
    MoveEntry,
    DeleteEntry,
    EditHeader,
    RefreshAttendance,
    CorrectAttendance,
)
MINUTES_OPS = tuple(e.OP for e in MINUTES_EDITS)


def _refuse(name: str, message: str, params: dict[str, Any] | None = None) -> InvalidInput:
    return InvalidInput([FieldError(name, message, params or {})])


def _whole(value: object) -> int | None:
    """A JSON integer (not a boolean), else None."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _text(data: Mapping[str, object], name: str) -> str:
    """A text field; absent or null is empty, anything but a string is refused, so is an over-long one."""
    value = data.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _refuse(name, N_("This field must be text."))
    if len(value) > MAX_FIELD_TEXT:
        raise _refuse(name, N_("Use at most %(n)s characters."), {"n": MAX_FIELD_TEXT})
    return value


def parse_ref(data: Mapping[str, object]) -> Ref:
    """The editor's ref: a string or a number of at most 100 characters, or absent."""
    ref = data.get("ref")
    if ref is None:
        return None
    if isinstance(ref, bool) or not isinstance(ref, str | int) or len(str(ref)) > MAX_REF:
        raise _refuse("ref", N_("This field is not valid."))
    return ref


def _entry(data: Mapping[str, object]) -> EntryInput:
    values = {name: _text(data, name) for name in ENTRY_FIELDS}  # each at most 100 000: no work beyond
    link = data.get("link_id")
    if link is not None and _whole(link) is None:
        raise _refuse("link_id", N_("Link to an entry of these minutes."))
    return EntryInput(**values, link_id=_whole(link))


def _version(data: Mapping[str, object]) -> int:
    value = _whole(data.get("version"))
    if value is None or value < 1:
        raise _refuse("version", N_("Send the version of the entry you edited."))
    return value


def _header_version(data: Mapping[str, object]) -> int:
    value = _whole(data.get("header_version"))
    if value is None:
        raise _refuse("header_version", N_("Send the version of the header you edited."))
    return value


def parse_edit(data: Mapping[str, object], *, op: str | None = None) -> MinutesEdit:
    """The one parser of an edit: each field's type and bounds checked, the first fault refused
    (InvalidInput). `op` given (the HTTP API, from its route) overrides the body's and there is no ref."""
    if op is None:
        ref = parse_ref(data)
        sent = data.get("op")
        op = sent if isinstance(sent, str) else ""
    else:
        ref = None
    if op not in MINUTES_OPS:
        raise _refuse("op", N_("Unknown action."))
    entry_id = 0
    if op in {"save", "status", "move", "delete"}:
        found = _whole(data.get("id"))
        if found is None:
            raise _refuse("id", N_("Say which entry."))
        entry_id = found
    match op:
        case "add":
            key = data.get("key")
            if key is not None and not isinstance(key, str):
                raise _refuse("key", N_("This field must be text."))
            return AddEntry(ref, _entry(data), key)
        case "save":
            version = _version(data)
            return SaveEntry(ref, entry_id, version, _entry(data))
        case "status":
            version = _version(data)
            return SetStatus(ref, entry_id, version, _text(data, "status"))
        case "move":
            position = _whole(data.get("position"))
            if position is None:
                raise _refuse("position", N_("Give the new place as a number."))
            return MoveEntry(ref, entry_id, _version(data), position)
        case "delete":
            return DeleteEntry(ref, entry_id, _version(data))
        case "header":
            changes = {k: v for k, v in data.items() if k in HEADER_FIELDS}
            return EditHeader(ref, _header_version(data), changes)
        case "correct":
            expected = _header_version(data)
            person_id = _whole(data.get("person_id"))
            if person_id is None:
                raise _refuse("person", N_("Say whose attendance to correct."))
            state = _text(data, "state")
            return CorrectAttendance(ref, expected, person_id, state, _text(data, "reason"))
        case _:
            return RefreshAttendance(ref, _header_version(data))


# --- server → client ---------------------------------------------------------------------------


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
