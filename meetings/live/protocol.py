"""The room socket's protocol, both ways: client messages parsed and validated here; server
messages are the typed classes of meetings.rooms.events (the room's) and meetings.live.messages
(the session's), encoded by meetings.wire; close codes are meetings.wire.CloseCode.

Pure functions, no I/O: the WebSocket edge feeds text in and gets typed messages out, or a
ProtocolError carrying the close code to use. docs/signaling.md is the prose version, checked
against this declaration by tests/signaling/test_declared.py.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from meetings.live.messages import SESSION_MESSAGES
from meetings.rooms.events import ROOM_MESSAGES
from meetings.wire import CloseCode as CloseCode  # re-exported: ProtocolError carries one
from meetings.wire import ServerMessage

MAX_MESSAGE_BYTES = 64 * 1024  # an SDP offer with simulcast stays well below this
MAX_SDP = 60 * 1024
MAX_CHAT = 2000
MAX_TILES = 16  # tile sizes in one message: at most one per receive slot (an offer has fewer)
MAX_TILE_SIZE = 100_000  # px; the SFU clamps further (meetings.rtc.sfu.MAX_TILE_PX)
PROTOCOL_VERSION = 1


class ProtocolError(Exception):
    """A message the server will not accept; `close` is the code when the connection must end."""

    def __init__(self, reason: str, close: CloseCode | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.close = close


MODERATOR_ACTIONS = frozenset(
    {"mute", "mute_all", "lower_hands", "give_floor", "remove", "admit", "deny", "lock", "unlock", "end"}
)
TARGETED_ACTIONS = frozenset({"mute", "give_floor", "remove", "admit", "deny"})


@dataclass(frozen=True)
class Join:
    """Enter the room of an occurrence (as the signed-in person, or with a join-link token)."""

    occurrence: int
    token: str
    audio: bool
    video: bool
    audio_only: bool
    # The first offer, prepared on the pre-join screen and sent with the join: answered once
    # seated, dropped in the lobby (the client offers again when admitted).
    offer: Sdp | None = None


@dataclass(frozen=True)
class Sdp:
    """An offer or an answer; an offer says which of its sending m-sections is which source."""

    kind: str  # "offer" | "answer"
    sdp: str
    sources: tuple[tuple[str, str], ...] = ()  # (mid, "camera" | "screen" | "microphone")
    # A new peer connection replacing the connection's current one (its media was lost, the
    # socket was not): the SFU drops the old one and joins this one afresh.
    restart: bool = False


@dataclass(frozen=True)
class Candidate:
    """A trickled ICE candidate (None: end of candidates)."""

    candidate: str | None
    sdp_mid: str | None
    sdp_mline_index: int | None


@dataclass(frozen=True)
class Mute:
    """The client's own microphone and camera state."""

    audio: bool
    video: bool


@dataclass(frozen=True)
class Hand:
    """Raise or lower one's hand."""

    raised: bool


@dataclass(frozen=True)
class Chat:
    """A chat message to everyone in the room."""

    text: str


@dataclass(frozen=True)
class AudioOnly:
    """Stop (or resume) receiving video, for a weak link."""

    enabled: bool


@dataclass(frozen=True)
class Moderate:
    """A moderator's action, on one participant or on the room."""

    action: str
    target: str | None


@dataclass(frozen=True)
class Stats:
    """The client's view of its connection, for the quality indicator and attendance."""

    rtt_ms: float
    loss_pct: float
    bitrate_kbps: float


@dataclass(frozen=True)
class Tiles:
    """The rendered size (CSS px × devicePixelRatio) of the tile showing each video slot, by mid."""

    sizes: tuple[tuple[str, int, int], ...]  # (mid, width, height); 0×0: the slot is not shown


@dataclass(frozen=True)
class Ping:
    """Keep-alive."""


@dataclass(frozen=True)
class Leave:
    """Leave the room on purpose."""


ClientMessage = (
    Join | Sdp | Candidate | Mute | Hand | Chat | AudioOnly | Moderate | Stats | Tiles | Ping | Leave
)


def _bool(data: dict[str, Any], name: str, default: bool | None = None) -> bool:
    value = data.get(name, default)
    if not isinstance(value, bool):
        raise ProtocolError(f"'{name}' must be true or false")
    return value


def _str(data: dict[str, Any], name: str, limit: int, *, optional: bool = False) -> str | None:
    value = data.get(name)
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise ProtocolError(f"'{name}' must be a string")
    if len(value) > limit:
        raise ProtocolError(f"'{name}' is longer than {limit} characters")
    return value


def _number(data: dict[str, Any], name: str, low: float, high: float) -> float:
    value = data.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise ProtocolError(f"'{name}' must be a number from {low} to {high}")
    return float(value)


def parse(text: str | bytes) -> ClientMessage:
    """Parse one client message; ProtocolError (close 4000) for anything malformed."""
    if isinstance(text, bytes):
        raise ProtocolError("binary frames are not part of the protocol", CloseCode.BAD_MESSAGE)
    if len(text.encode("utf-8", "surrogatepass")) > MAX_MESSAGE_BYTES:
        raise ProtocolError("message too large", CloseCode.BAD_MESSAGE)
    try:
        data = json.loads(text)
    except RecursionError as exc:
        raise ProtocolError("JSON nested too deeply", CloseCode.BAD_MESSAGE) from exc
    except ValueError as exc:  # JSONDecodeError, integers of more than 4,300 digits
        raise ProtocolError("not JSON", CloseCode.BAD_MESSAGE) from exc
    if not isinstance(data, dict) or not isinstance(data.get("type"), str):
        raise ProtocolError("a message is a JSON object with a 'type'", CloseCode.BAD_MESSAGE)
    kind = data["type"]
    try:
        return _PARSERS[kind](data)
    except KeyError as exc:
        raise ProtocolError(f"unknown message type '{kind[:40]}'", CloseCode.BAD_MESSAGE) from exc


def _join(d: dict[str, Any]) -> Join:
    occurrence = d.get("occurrence")
    if isinstance(occurrence, bool) or not isinstance(occurrence, int) or occurrence <= 0:
        raise ProtocolError("'occurrence' must be a positive integer")
    return Join(
        occurrence=occurrence,
        token=_str(d, "token", 1000, optional=True) or "",
        audio=_bool(d, "audio", False),
        video=_bool(d, "video", False),
        audio_only=_bool(d, "audioOnly", False),
        offer=_join_offer(d.get("offer")),
    )


def _join_offer(raw: Any) -> Sdp | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise ProtocolError("'offer' must be an object with 'sdp' and 'sources'")
    return _sdp({**raw, "type": "offer", "restart": False})


SOURCES = frozenset({"microphone", "camera", "screen"})


def _sdp(d: dict[str, Any]) -> Sdp:
    sdp = _str(d, "sdp", MAX_SDP)
    assert sdp is not None
    if not sdp.startswith("v=0"):
        raise ProtocolError("'sdp' is not a session description")
    raw = d.get("sources", {})
    if not isinstance(raw, dict) or len(raw) > 16:
        raise ProtocolError("'sources' must map at most 16 mids to a source")
    sources = []
    for mid, source in raw.items():
        if len(mid) > 16 or not isinstance(source, str) or source not in SOURCES:
            raise ProtocolError("'sources' values are microphone, camera or screen")
        sources.append((mid, source))
    restart = _bool(d, "restart", False)
    return Sdp(kind=d["type"], sdp=sdp, sources=tuple(sorted(sources)), restart=restart)


def _candidate(d: dict[str, Any]) -> Candidate:
    index = d.get("sdpMLineIndex")
    if index is not None and (isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < 64):
        raise ProtocolError("'sdpMLineIndex' must be a small integer")
    return Candidate(
        candidate=_str(d, "candidate", 2000, optional=True),
        sdp_mid=_str(d, "sdpMid", 64, optional=True),
        sdp_mline_index=index,
    )


def _moderate(d: dict[str, Any]) -> Moderate:
    action = _str(d, "action", 32)
    if action not in MODERATOR_ACTIONS:
        raise ProtocolError(f"unknown moderator action '{str(action)[:32]}'")
    target = _str(d, "target", 64, optional=True)
    if action in TARGETED_ACTIONS and not target:
        raise ProtocolError(f"'{action}' needs a 'target' participant")
    return Moderate(action=action, target=target)


def _chat(d: dict[str, Any]) -> Chat:
    text = (_str(d, "text", MAX_CHAT) or "").strip()
    if not text:
        raise ProtocolError("an empty chat message")
    return Chat(text=text)


def _size(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_TILE_SIZE:
        raise ProtocolError(
            f"a tile's width and height are whole numbers of pixels from 0 to {MAX_TILE_SIZE}"
        )
    return value


def _tiles(d: dict[str, Any]) -> Tiles:
    raw = d.get("tiles")
    if not isinstance(raw, dict) or len(raw) > MAX_TILES:
        raise ProtocolError(f"'tiles' must map at most {MAX_TILES} mids to [width, height]")
    sizes = []
    for mid, size in raw.items():
        if not mid or len(mid) > 16:
            raise ProtocolError("'tiles' keys are the mids of video slots")
        if not isinstance(size, list) or len(size) != 2:
            raise ProtocolError("'tiles' values are [width, height]")
        sizes.append((mid, _size(size[0]), _size(size[1])))
    return Tiles(tuple(sorted(sizes)))


_PARSERS: dict[str, Callable[[dict[str, Any]], ClientMessage]] = {
    "join": _join,
    "offer": _sdp,
    "answer": _sdp,
    "candidate": _candidate,
    "mute": lambda d: Mute(audio=_bool(d, "audio"), video=_bool(d, "video")),
    "hand": lambda d: Hand(raised=_bool(d, "raised")),
    "chat": _chat,
    "audio_only": lambda d: AudioOnly(enabled=_bool(d, "enabled")),
    "moderate": _moderate,
    "stats": lambda d: Stats(
        rtt_ms=_number(d, "rttMs", 0, 60_000),
        loss_pct=_number(d, "lossPct", 0, 100),
        bitrate_kbps=_number(d, "bitrateKbps", 0, 1_000_000),
    ),
    "tiles": _tiles,
    "ping": lambda d: Ping(),
    "leave": lambda d: Leave(),
}


# Connection-quality levels from round-trip time and packet loss (docs/signaling.md): the server
# decides, so every page shows the same level for the same person.
QUALITY_FAIR = (250.0, 2.0)  # rtt ms, loss % from which a connection is no longer "good"
QUALITY_POOR = (600.0, 8.0)  # ... from which it is "poor"


def quality_level(rtt_ms: float | None, loss_pct: float | None) -> str | None:
    """The level ("good", "fair" or "poor") of a measured connection; None before any measure."""
    if rtt_ms is None or loss_pct is None:
        return None
    if rtt_ms >= QUALITY_POOR[0] or loss_pct >= QUALITY_POOR[1]:
        return "poor"
    if rtt_ms >= QUALITY_FAIR[0] or loss_pct >= QUALITY_FAIR[1]:
        return "fair"
    return "good"


# After these the browser does not reconnect by itself: coming back cannot help (refused, ended,
# removed, denied, replaced) or the person left. Any other close is followed by a fresh join.
FINAL_CLOSE_CODES = frozenset(
    {
        CloseCode.NORMAL,
        CloseCode.BAD_MESSAGE,
        CloseCode.UNAUTHORIZED,
        CloseCode.FORBIDDEN,
        CloseCode.NOT_FOUND,
        CloseCode.ENDED,
        CloseCode.REMOVED,
        CloseCode.DENIED,
        CloseCode.REPLACED,
    }
)

# Every message the server sends on the room socket.
SERVER_MESSAGES: tuple[type[ServerMessage], ...] = ROOM_MESSAGES + SESSION_MESSAGES
CLIENT_MESSAGE_TYPES = frozenset(_PARSERS)
