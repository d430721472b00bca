"""The room socket's edge: upgrade, Origin, who is joining, framing and close codes.

Protocol: docs/signaling.md, declared in meetings.live.protocol. What each message does is the
live session's business (meetings.live.session); the room decides (meetings.rooms).
"""

from __future__ import annotations

import contextlib
import logging
import uuid

from aiohttp import WSMsgType, web

from meetings import i18n
from meetings.accounts.permissions import Permission
from meetings.directory.models import Person
from meetings.errors import Conflict, DomainError, Forbidden, InvalidInput, NotFound
from meetings.live import protocol as proto
from meetings.live.messages import Error
from meetings.live.registry import LiveMeetings
from meetings.rooms.participant import RoomRole
from meetings.schedule.links import LinkError, join_link_holder
from meetings.schedule.models import Occurrence
from meetings.wire import CloseCode, ServerMessage, encode
from web import keys
from web.access import needs
from web.common import origin_allowed
from web.forms import int_param
from web.socket_writer import SocketWriter

routes = web.RouteTableDef()
log = logging.getLogger("giaoban.signaling")

JOIN_TIMEOUT = 15.0
WS_FRAME_LIMIT = 1024 * 1024
SEND_QUEUE = 200  # messages; a client this far behind is too slow to follow the room


def close_code_for(exc: BaseException) -> int:
    """The one mapping from an error to a WebSocket close code."""
    if isinstance(exc, proto.ProtocolError):
        return int(exc.close or CloseCode.BAD_MESSAGE)
    if isinstance(exc, LinkError):
        return int(CloseCode.UNAUTHORIZED)
    if isinstance(exc, NotFound):
        return int(CloseCode.NOT_FOUND)
    if isinstance(exc, Forbidden):
        return int(CloseCode.FORBIDDEN)
    if isinstance(exc, Conflict):
        return int(CloseCode.ENDED)
    return int(CloseCode.INTERNAL)


class Connection:
    """One room socket: a room participant and a live-session client (meetings.live.session.Client)."""

    def __init__(self, ws: web.WebSocketResponse, person: Person, role: RoomRole, language: str) -> None:
        self.ws = ws
        self._id = uuid.uuid4().hex[:12]
        self._person = person
        self._role = role
        self.language = language
        self.out = SocketWriter(ws, limit=SEND_QUEUE, language=language, name=f"ws-writer-{self._id}")

    @property
    def id(self) -> str:
        return self._id

    @property
    def person_id(self) -> int:
        return self._person.id

    @property
    def unit_id(self) -> int | None:
        return self._person.unit_id

    @property
    def name(self) -> str:
        return self._person.name

    @property
    def role(self) -> RoomRole:
        return self._role

    @property
    def closed(self) -> bool:
        return self.out.closed

    def post(self, message: ServerMessage) -> None:
        """Queue a message; a client whose queue is full is closed and told to reload."""
        self.out.post(encode(message))

    async def send(self, message: ServerMessage) -> None:
        """`post` for the room, which awaits its sends."""
        self.post(message)

    async def close(self, code: int, reason: str) -> None:
        """Close the socket once, after what is queued (safe to call twice)."""
        self.end(code, reason)

    def end(self, code: int, reason: str) -> None:
        """`close` for callers that cannot await (SFU events); the first code given wins."""
        self.out.end(code, reason)


@routes.get("/rooms/{id}/ws", name="room_ws")
@needs(Permission.PUBLIC)  # who may join is decided by the join message: a session or a join link
async def room_ws(request: web.Request) -> web.StreamResponse:
    """Upgrade to the signaling WebSocket of one occurrence's room."""
    ws = web.WebSocketResponse(
        # A client that stops answering pings is gone: heartbeat, then half of it for the pong.
        heartbeat=request.app[keys.SETTINGS].signaling_heartbeat_seconds,
        # Frames up to 1 MiB reach the parser, which refuses those over 64 KiB with the protocol
        # error (4000); only larger ones get aiohttp's own "message too big" (1009).
        max_msg_size=WS_FRAME_LIMIT,
    )
    if not ws.can_prepare(request).ok:
        raise web.HTTPBadRequest(text="this address is a WebSocket")
    if not origin_allowed(request):
        raise web.HTTPForbidden(text="cross-origin WebSocket refused")
    occurrence_id = int_param(request)
    await ws.prepare(request)
    request.app[keys.ROOM_SOCKETS].add(ws)
    try:
        await _serve(request, ws, request.app[keys.MEDIA], occurrence_id)
    except Exception:
        log.exception("signaling failed", extra={"occurrence": occurrence_id})
        if not ws.closed:
            await ws.close(code=int(CloseCode.INTERNAL), message=b"internal error")
    return ws


async def _serve(
    request: web.Request, ws: web.WebSocketResponse, live: LiveMeetings, occurrence_id: int
) -> None:
    language = request.get(keys.LANGUAGE, i18n.DEFAULT_LANGUAGE)
    conn: Connection | None = None
    try:
        join = await _first_join(ws)
        person = await _who(request, join, occurrence_id)
        admission = await live.admit(occurrence_id, person)
        conn = Connection(ws, person, admission.role, language)
        conn.out.start()
        conn.post(live.welcome(conn))
        session = await live.enter(admission, conn, join)  # "room" (seated) or "waiting" (lobby)
    except (TimeoutError, proto.ProtocolError, DomainError) as exc:
        if conn is not None:
            conn.out.cancel()
        await _refuse(ws, exc, language)
        return
    try:
        if join.offer is not None:
            try:
                await session.first_offer(conn, join)
            except ANSWERED as exc:
                _answer_error(conn, exc, language)
        async for msg in ws:
            if msg.type == WSMsgType.BINARY:
                raise proto.ProtocolError("binary frames are not part of the protocol", CloseCode.BAD_MESSAGE)
            if msg.type != WSMsgType.TEXT:
                continue
            try:
                message = proto.parse(msg.data)
                if isinstance(message, proto.Leave):
                    break
                await session.handle(conn, message)
            except ANSWERED as exc:
                _answer_error(conn, exc, language)
    except proto.ProtocolError as exc:
        await conn.close(close_code_for(exc), exc.reason)
    finally:
        # 1000 unless a reason was given already (removed, replaced, ended, media lost): the SFU
        # closing this peer connection next must not read as a lost connection.
        conn.end(CloseCode.NORMAL, "")
        try:
            await live.leave(session, conn)
        finally:
            await conn.out.wait()


# Errors a message may cause that the client is told about (`error`), the socket staying open,
# unless it is a protocol error that closes.
ANSWERED = (proto.ProtocolError, InvalidInput, Forbidden, NotFound, Conflict)


def _answer_error(conn: Connection, exc: Exception, language: str) -> None:
    if isinstance(exc, proto.ProtocolError) and exc.close is not None:
        raise exc
    conn.post(Error(_code(exc), _message(exc, language)))


async def _first_join(ws: web.WebSocketResponse) -> proto.Join:
    msg = await ws.receive(timeout=JOIN_TIMEOUT)
    if msg.type != WSMsgType.TEXT:
        raise proto.ProtocolError("the first message must be 'join'", CloseCode.BAD_MESSAGE)
    parsed = proto.parse(msg.data)
    if not isinstance(parsed, proto.Join):
        raise proto.ProtocolError("the first message must be 'join'", CloseCode.BAD_MESSAGE)
    return parsed


async def _who(request: web.Request, join: proto.Join, occurrence_id: int) -> Person:
    """The person joining: from the join link's token, else the signed-in session."""
    if join.occurrence != occurrence_id:
        raise proto.ProtocolError("'occurrence' differs from the room's", CloseCode.BAD_MESSAGE)
    if join.token:
        async with request.app[keys.DB]() as db:
            occurrence = await db.get(Occurrence, occurrence_id)
            if occurrence is None:
                raise NotFound("This meeting does not exist.")
            secret = request.app[keys.SETTINGS].secret_key
            _, holder = await join_link_holder(db, secret, join.token, occurrence)
        return holder
    person = request[keys.PERSON]
    if person is None:
        raise proto.ProtocolError("sign in or use your join link", CloseCode.UNAUTHORIZED)
    return person


def _code(exc: Exception) -> str:
    if isinstance(exc, proto.ProtocolError):
        return "bad_message"
    return str(getattr(exc, "code", type(exc).__name__.lower()))


def _message(exc: Exception, language: str) -> str:
    with i18n.language(language):
        if isinstance(exc, DomainError):
            return i18n.gettext(exc.message, **exc.params)
        return str(exc)


async def _refuse(ws: web.WebSocketResponse, exc: BaseException, language: str) -> None:
    """Tell the client why it cannot join, then close with the matching code."""
    if isinstance(exc, TimeoutError):
        exc = proto.ProtocolError("no 'join' message in time", CloseCode.BAD_MESSAGE)
    text = _message(exc, language) if isinstance(exc, Exception) else ""
    code = close_code_for(exc)
    with contextlib.suppress(ConnectionError, RuntimeError):
        await ws.send_str(encode(Error(_code(exc) if isinstance(exc, Exception) else "error", text)))
    await ws.close(code=code, message=text.encode("utf-8")[:120])
