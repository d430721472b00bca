"""The signaling WebSocket of a meeting room: admission, SDP, mute, hand, chat, moderation.

Protocol: docs/signaling.md. Messages are parsed in meetings.rtc.signaling; room rules live in
meetings.rooms; media in meetings.rtc.sfu. This module only connects them.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from datetime import UTC, datetime
from typing import Any

from aiohttp import WSMsgType, web

from meetings import i18n
from meetings.accounts.permissions import Permission
from meetings.db.base import utcnow
from meetings.directory.models import Person
from meetings.errors import N_, Conflict, DomainError, Forbidden, InvalidInput, NotFound
from meetings.live.registry import LiveMeetings
from meetings.rooms import service as rooms
from meetings.rooms.errors import NotInRoom
from meetings.rooms.participant import CloseCode as RoomClose
from meetings.rooms.participant import ConnectionQuality, RoomRole
from meetings.rooms.room import Placement, Room
from meetings.rtc import signaling as proto
from meetings.rtc.ice import ice_servers
from meetings.rtc.sfu import ConnectionStateChanged, DominantSpeakerChanged, SfuEvent, StreamAssigned
from meetings.schedule.links import LinkError, join_link_holder
from meetings.schedule.models import Occurrence
from web import keys
from web.access import needs
from web.common import origin_allowed
from web.minutes_live import push_attendance
from web.socket_writer import SocketWriter

routes = web.RouteTableDef()
log = logging.getLogger("giaoban.signaling")

JOIN_TIMEOUT = 15.0
SEND_QUEUE = 200  # messages; a client this far behind is too slow to follow the room
# The peer connection failed or was closed under a live socket (network change, frozen tab, the
# browser closed it): the client reconnects. Belongs with proto.CloseCode once rtc/ is unfrozen.
MEDIA_LOST = int(proto.CloseCode.MEDIA_LOST)


def close_code_for(exc: BaseException) -> int:
    """The one mapping from an error to a WebSocket close code."""
    if isinstance(exc, proto.ProtocolError):
        return int(exc.close or proto.CloseCode.BAD_MESSAGE)
    if isinstance(exc, LinkError):
        return int(proto.CloseCode.UNAUTHORIZED)
    if isinstance(exc, NotFound):
        return int(proto.CloseCode.NOT_FOUND)
    if isinstance(exc, Forbidden):
        return int(proto.CloseCode.FORBIDDEN)
    if isinstance(exc, Conflict):
        return int(RoomClose.ENDED)
    return int(proto.CloseCode.INTERNAL)


class Connection:
    """One WebSocket seen as a room participant (meetings.rooms.participant.Participant)."""

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

    async def send(self, message: dict[str, Any]) -> None:
        """Queue a message (a slow client never holds up the room)."""
        self.post(
            proto.encode(
                str(message.get("type", "event")), **{k: v for k, v in message.items() if k != "type"}
            )
        )

    def post(self, text: str) -> None:
        """Queue encoded text; a client whose queue is full is closed and told to reload."""
        self.out.post(text)

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
        max_msg_size=proto.MAX_MESSAGE_BYTES,
    )
    if not ws.can_prepare(request).ok:
        raise web.HTTPBadRequest(text="this address is a WebSocket")
    if not origin_allowed(request):
        raise web.HTTPForbidden(text="cross-origin WebSocket refused")
    raw_id = request.match_info["id"]
    if not raw_id.isdigit() or len(raw_id) > 12:
        raise web.HTTPNotFound()
    occurrence_id = int(raw_id)
    media = request.app[keys.MEDIA]
    await ws.prepare(request)
    request.app[keys.ROOM_SOCKETS].add(ws)
    try:
        await _session(request, ws, media, occurrence_id)
    except Exception:
        log.exception("signaling failed", extra={"occurrence": occurrence_id})
        if not ws.closed:
            await ws.close(code=int(proto.CloseCode.INTERNAL), message=b"internal error")
    return ws


async def _first_join(ws: web.WebSocketResponse) -> proto.Join:
    msg = await ws.receive(timeout=JOIN_TIMEOUT)
    if msg.type != WSMsgType.TEXT:
        raise proto.ProtocolError("the first message must be 'join'", proto.CloseCode.BAD_MESSAGE)
    parsed = proto.parse(msg.data)
    if not isinstance(parsed, proto.Join):
        raise proto.ProtocolError("the first message must be 'join'", proto.CloseCode.BAD_MESSAGE)
    return parsed


async def _who(request: web.Request, join: proto.Join, occurrence_id: int) -> Person:
    """The person joining: from the join link's token, else the signed-in session."""
    if join.occurrence != occurrence_id:
        raise proto.ProtocolError("'occurrence' differs from the room's", proto.CloseCode.BAD_MESSAGE)
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
        raise proto.ProtocolError("sign in or use your join link", proto.CloseCode.UNAUTHORIZED)
    return person


async def _session(
    request: web.Request, ws: web.WebSocketResponse, media: LiveMeetings, occurrence_id: int
) -> None:
    settings = request.app[keys.SETTINGS]
    language = request.get(keys.LANGUAGE, i18n.DEFAULT_LANGUAGE)
    conn: Connection | None = None
    try:
        join = await _first_join(ws)
        person = await _who(request, join, occurrence_id)
        async with request.app[keys.DB]() as db:
            admission = await rooms.admit(db, media.registry, occurrence_id, person, utcnow())
            conn = Connection(ws, person, admission.role, language)
            conn.out.start()
            conn.post(
                proto.encode(
                    "welcome",
                    participant=conn.id,
                    protocol=proto.PROTOCOL_VERSION,
                    iceServers=ice_servers(
                        stun_urls=settings.stun_urls,
                        turn_urls=settings.turn_urls,
                        turn_secret=settings.turn_secret,
                        user=str(person.id),
                        now=datetime.now(UTC),
                        ttl_seconds=settings.turn_ttl_seconds,
                    ),
                )
            )
            # The room answers with "room" (seated) or "waiting" (lobby).
            result = await rooms.join(db, admission, conn, utcnow())
            await db.commit()
        if result.placement is Placement.SEATED:
            await push_attendance(request.app, admission.occurrence_id)
        if result.placement is Placement.SEATED and not result.reconnect:
            # A reconnect keeps the room's mute state; a first join takes the client's choice.
            await admission.room.set_media(conn, audio_muted=not join.audio, video_muted=not join.video)
        if result.placement is Placement.SEATED:
            await _tell_qualities(admission.room, conn)
    except (TimeoutError, proto.ProtocolError, DomainError) as exc:
        if conn is not None:
            conn.out.cancel()
        await _refuse(ws, exc, language)
        return
    room = admission.room

    def on_media(event: SfuEvent) -> None:
        if isinstance(event, StreamAssigned) and event.subscriber == conn.id:
            owner = _person_of(room, event.publisher)
            conn.post(
                proto.encode(
                    "stream",
                    mid=event.mid,
                    kind=event.kind,
                    participant=event.publisher,
                    person_id=owner,
                    source=event.source,
                )
            )
        elif isinstance(event, DominantSpeakerChanged):
            conn.post(
                proto.encode(
                    "speaking", participant=event.participant, person_id=_person_of(room, event.participant)
                )
            )
        elif (
            isinstance(event, ConnectionStateChanged)
            and event.participant == conn.id
            and event.state in {"failed", "closed"}
        ):
            # ICE consent lost or DTLS closed: end the session now rather than at the socket's
            # heartbeat, so the others see `left` and the SFU lets go within seconds.
            conn.end(MEDIA_LOST, N_("The connection to the meeting was lost. Reconnecting…"))

    sfu = media.acquire(room, on_media)  # the room drives it from now on
    if sfu.dominant_speaker is not None:
        # Speaking events come on changes only: a newcomer is told who is speaking now.
        on_media(DominantSpeakerChanged(sfu.dominant_speaker))
    quality = ConnectionQuality()
    try:
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                if msg.type == WSMsgType.BINARY:
                    raise proto.ProtocolError(
                        "binary frames are not part of the protocol", proto.CloseCode.BAD_MESSAGE
                    )
                continue
            try:
                message = proto.parse(msg.data)
                if isinstance(message, proto.Leave):
                    break
                if isinstance(message, proto.Stats):
                    quality = ConnectionQuality(message.rtt_ms, message.loss_pct, message.bitrate_kbps)
                await _handle(request, room, sfu, conn, message)
            except (proto.ProtocolError, InvalidInput, Forbidden, NotFound, Conflict) as exc:
                if isinstance(exc, proto.ProtocolError) and exc.close is not None:
                    raise
                conn.post(proto.error(_code(exc), _message(exc, language)))
    except proto.ProtocolError as exc:
        await conn.close(close_code_for(exc), exc.reason)
    finally:
        # 1000 unless a reason was given already (removed, replaced, ended, media lost): the SFU
        # closing this peer connection below must not read as a lost connection.
        conn.end(1000, "")

        async def clean_up() -> None:
            try:
                with contextlib.suppress(Exception):
                    await sfu.leave(conn.id)
                async with request.app[keys.DB]() as db:
                    await rooms.leave(db, media.registry, room, conn, utcnow(), quality)
                    await db.commit()
                await push_attendance(request.app, occurrence_id)
            finally:
                await media.release(occurrence_id, on_media)

        try:
            # To the end: a shutdown that cancels this handler must not leave a half-closed peer
            # connection (its UDP sockets) or an attendance record still marked connected.
            await media.finish(clean_up())
        finally:
            await conn.out.wait()


def _person_of(room: Room, participant_id: str | None) -> int | None:
    if participant_id is None:
        return None
    for p in room.participants:
        if p.id == participant_id:
            return p.person_id
    return None


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
        exc = proto.ProtocolError("no 'join' message in time", proto.CloseCode.BAD_MESSAGE)
    text = _message(exc, language) if isinstance(exc, Exception) else ""
    code = close_code_for(exc)
    with contextlib.suppress(ConnectionError, RuntimeError):
        await ws.send_str(proto.error(_code(exc) if isinstance(exc, Exception) else "error", text))
    await ws.close(code=code, message=text.encode("utf-8")[:120])


def _seated(room: Room, conn: Connection) -> None:
    if room.participant(conn.person_id) is not conn:
        raise NotInRoom(N_("You are waiting in the lobby."))


async def _handle(
    request: web.Request, room: Room, sfu: Any, conn: Connection, message: proto.ClientMessage
) -> None:
    now = utcnow()
    if isinstance(message, proto.Ping):
        conn.post(proto.encode("pong"))
    elif isinstance(message, proto.Sdp):
        _seated(room, conn)
        if message.kind != "offer":
            raise proto.ProtocolError("the server only answers offers")
        sources = dict(message.sources)
        if conn.id in sfu.participants():
            answer = await sfu.renegotiate(conn.id, message.sdp, sources)
        else:
            answer = await sfu.join(conn.id, message.sdp, sources)
            room.media_connected(conn)  # the room tells the SFU what to forward and pin
        conn.post(proto.encode("answer", sdp=answer))
        # The client lists the m-sections it sends on: a "screen" one is a screen share.
        await room.set_media(conn, screen_sharing="screen" in sources.values())
    elif isinstance(message, proto.Candidate):
        if conn.id in sfu.participants() and message.candidate:
            await sfu.add_ice_candidate(conn.id, message.candidate, message.sdp_mid, message.sdp_mline_index)
    elif isinstance(message, proto.Mute):
        _seated(room, conn)
        await room.set_media(conn, audio_muted=message.audio, video_muted=message.video)
    elif isinstance(message, proto.Hand):
        if message.raised:
            await room.raise_hand(conn, now)
        else:
            await room.lower_hand(conn)
    elif isinstance(message, proto.Chat):
        await room.chat(conn, message.text, now)
    elif isinstance(message, proto.Stats):
        _seated(room, conn)
        previous = room.state_of(conn.person_id)
        before = _level(previous.quality) if previous else None
        quality = ConnectionQuality(message.rtt_ms, message.loss_pct, message.bitrate_kbps)
        room.report_quality(conn, quality)
        level = _level(quality)
        if level != before:
            # Levels change rarely; raw figures change every report and stay on the server.
            for other in room.participants:
                await other.send(_quality_event(conn.id, conn.person_id, level))
    elif isinstance(message, proto.AudioOnly):
        conn.post(proto.encode("audio_only", enabled=message.enabled))  # the client drops its video slots
    elif isinstance(message, proto.Moderate):
        await _moderate(request, room, conn, message, now)


def _level(quality: ConnectionQuality) -> str | None:
    return proto.quality_level(quality.rtt_ms, quality.loss_pct)


def _quality_event(participant_id: str, person_id: int, level: str | None) -> dict[str, Any]:
    return {"type": "quality", "participant": participant_id, "person_id": person_id, "level": level}


async def _tell_qualities(room: Room, conn: Connection) -> None:
    """A newcomer learns the connection quality known so far (afterwards only changes are sent)."""
    for other in room.participants:
        state = room.state_of(other.person_id)
        level = _level(state.quality) if state else None
        if level is not None:  # one's own too: a reconnect keeps the last measure
            await conn.send(_quality_event(other.id, other.person_id, level))


def _target(message: proto.Moderate) -> int:
    if message.target is None or not message.target.isdigit():
        raise proto.ProtocolError("'target' must be a person id")
    return int(message.target)


async def _moderate(
    request: web.Request, room: Room, conn: Connection, message: proto.Moderate, now: datetime
) -> None:
    action = message.action
    if action == "mute":
        await room.mute(conn, _target(message))
    elif action == "mute_all":
        await room.mute_all(conn)
    elif action == "lower_hands":
        await room.lower_all_hands(conn)
    elif action == "give_floor":
        await room.give_floor(conn, _target(message))
    elif action in {"lock", "unlock"}:
        await room.set_locked(conn, action == "lock")
    elif action == "deny":
        await room.deny(conn, _target(message))
    else:
        media = request.app[keys.MEDIA]

        async def transaction() -> None:
            async with request.app[keys.DB]() as db:
                if action == "admit":
                    await rooms.admit_waiting(db, room, conn, _target(message), now)
                elif action == "remove":
                    await rooms.remove(db, room, conn, _target(message), now)
                elif action == "end":
                    await rooms.end(db, media.registry, room, conn, now)
                await db.commit()
            await push_attendance(request.app, room.occurrence_id)

        # `end` closes the moderator's own socket too, which may cancel this handler; the room has
        # told everyone by then, so the attendance and the ended meeting must still be committed.
        await media.finish(transaction())
