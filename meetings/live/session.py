"""One open meeting: its room, its SFU, and every typed client message turned into room and media
actions. The WebSocket edge (web/views/room_ws.py) only frames, parses and closes.

The room decides and drives the media itself (meetings.rooms.media); this module connects the
SDP to the SFU and fans the SFU's events out to the room's connections.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Protocol

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from meetings.db.base import utcnow
from meetings.errors import N_, FieldError, InvalidInput
from meetings.live import protocol as proto
from meetings.live.messages import (
    Answer,
    AudioOnly,
    Layer,
    LayersWanted,
    Link,
    Pong,
    Quality,
    Speaking,
    Stream,
)
from meetings.rooms import service as rooms
from meetings.rooms.errors import NotInRoom
from meetings.rooms.participant import ConnectionQuality, Participant, RoomRole
from meetings.rooms.room import JoinResult, Placement, Room, RoomRegistry
from meetings.rtc import sfu as rtc
from meetings.rtc.sfu import ConnectionStateChanged, DominantSpeakerChanged, SfuEvent, StreamAssigned
from meetings.wire import CloseCode, ServerMessage

log = logging.getLogger("giaoban.live")


MAX_PERSON_ID = 2**31 - 1


class BadOffer(InvalidInput):
    """An offer or a candidate that the media server could not use (the socket stays open)."""

    code: ClassVar[str] = "bad_sdp"

    def __init__(self, message: str) -> None:
        super().__init__([FieldError("sdp", message)], message)


class Client(Participant, Protocol):
    """A room connection as the live session drives it (the edge's socket implements it)."""

    def post(self, message: ServerMessage) -> None:
        """Queue a message without waiting (a slow client is closed, never waited for)."""
        ...

    def end(self, code: int, reason: str) -> None:
        """Close after what is queued; the first code given wins; `reason` is a msgid."""
        ...


class MediaRoom(Protocol):
    """The SFU as a session uses it (meetings.rtc.sfu.Sfu)."""

    @property
    def dominant_speaker(self) -> str | None:
        """Who speaks now."""
        ...

    def participants(self) -> list[str]:
        """Connections with a peer connection."""
        ...

    async def join(self, participant: str, offer: str, sources: dict[str, Any]) -> str:
        """A first offer: returns the answer."""
        ...

    async def renegotiate(self, participant: str, offer: str, sources: dict[str, Any]) -> str:
        """A later offer: returns the answer."""
        ...

    async def add_ice_candidate(
        self, participant: str, candidate: str, sdp_mid: str | None, sdp_mline_index: int | None
    ) -> None:
        """A trickled candidate."""
        ...

    async def leave(self, participant: str) -> None:
        """Drop a connection's peer connection (safe if it has none)."""
        ...

    def assignments(self, participant: str) -> dict[str, tuple[str, str] | None]:
        """A connection's receive slots (by mid) and what each carries."""
        ...

    def set_tile_sizes(self, participant: str, sizes: dict[str, tuple[int, int]]) -> None:
        """How large the connection's page shows each video slot (unknown mids are ignored)."""
        ...


Transaction = Callable[[Callable[[AsyncSession], Awaitable[Any]]], Coroutine[Any, Any, None]]
AttendanceChanged = Callable[[int], Awaitable[None]]


@dataclass(eq=False)
class MeetingSession:
    """The live session of one open meeting on this node."""

    room: Room
    sfu: MediaRoom
    registry: RoomRegistry
    sessions: async_sessionmaker[AsyncSession]
    # The room's attendance changed (a seat, a leave, the end): the minutes' viewers are told.
    attendance_changed: AttendanceChanged
    # Runs work to its end even if the caller is cancelled (LiveMeetings.finish).
    finish: Callable[[Coroutine[Any, Any, None]], Awaitable[None]]
    clients: dict[str, Client] = field(default_factory=dict)  # every connection holding the session
    quality: dict[str, ConnectionQuality] = field(default_factory=dict)
    # The media plane's view of each connection, for its own page and the moderators' (`link`).
    layers: dict[str, dict[str, rtc.LayerChanged]] = field(default_factory=dict)  # by mid
    estimates: dict[str, rtc.LinkEstimate] = field(default_factory=dict)
    audio_only: set[str] = field(default_factory=set)
    links: dict[str, Link] = field(default_factory=dict)  # the last `link` sent about each
    claims: dict[str, proto.Stats] = field(default_factory=dict)  # each one's last own `stats`

    # --- entering and leaving ------------------------------------------------------------

    async def enter(self, admission: rooms.Admission, client: Client, join: proto.Join) -> JoinResult:
        """Seat the admitted connection (or put it in the lobby) and bring it up to date."""
        self.clients[client.id] = client
        if join.audio_only:
            self.audio_only.add(client.id)
        async with self.sessions() as db:
            result = await rooms.join(db, admission, client, utcnow())  # "room" or "waiting"
            await db.commit()
        if result.placement is Placement.SEATED:
            await self.attendance_changed(self.room.occurrence_id)
            if not result.reconnect:
                # A reconnect keeps the room's mute state; a first join takes the client's choice.
                await self.room.set_media(client, audio_muted=not join.audio, video_muted=not join.video)
            self._tell_qualities(client)
            if client.role is RoomRole.MODERATOR:
                for link in self.links.values():  # then only changes
                    client.post(link)
        if self.sfu.dominant_speaker is not None:
            # Speaking events come on changes only: a newcomer is told who is speaking now.
            client.post(self._speaking(self.sfu.dominant_speaker))
        return result

    async def leave(self, client: Client) -> None:
        """The connection ended, whatever the cause: media, room and attendance let go of it."""
        self.clients.pop(client.id, None)
        # This connection's own measure (the seat's may come from an earlier connection).
        quality = self.quality.pop(client.id, ConnectionQuality())
        self.layers.pop(client.id, None)
        self.estimates.pop(client.id, None)
        self.links.pop(client.id, None)
        self.claims.pop(client.id, None)
        self.audio_only.discard(client.id)
        try:
            await self.sfu.leave(client.id)
        except Exception:  # the seat and the attendance must be let go of whatever the media did
            log.warning("media not released", exc_info=True, extra={"participant": client.id})
        finally:
            async with self.sessions() as db:
                await rooms.leave(db, self.registry, self.room, client, utcnow(), quality)
                await db.commit()
            await self.attendance_changed(self.room.occurrence_id)

    # --- client messages -----------------------------------------------------------------

    async def handle(self, client: Client, message: proto.ClientMessage) -> None:
        """One parsed client message (not `join`, not `leave`); domain errors and ProtocolError
        go back to the edge, which answers `error` or closes."""
        now = utcnow()
        room = self.room
        if isinstance(message, proto.Ping):
            client.post(Pong())
        elif isinstance(message, proto.Sdp):
            await self._offer(client, message)
        elif isinstance(message, proto.Candidate):
            if client.id in self.sfu.participants() and message.candidate:
                try:
                    await self.sfu.add_ice_candidate(
                        client.id, message.candidate, message.sdp_mid, message.sdp_mline_index
                    )
                except Exception:  # as for offers: aiortc's parser raises what it raises
                    log.warning("candidate refused", exc_info=True, extra={"participant": client.id})
                    raise BadOffer(N_("This ICE candidate is not valid.")) from None
        elif isinstance(message, proto.Mute):
            self._seated(client)
            await room.set_media(client, audio_muted=message.audio, video_muted=message.video)
        elif isinstance(message, proto.Hand):
            if message.raised:
                await room.raise_hand(client, now)
            else:
                await room.lower_hand(client)
        elif isinstance(message, proto.Chat):
            await room.chat(client, message.text, now)
        elif isinstance(message, proto.Stats):
            await self._stats(client, message)
        elif isinstance(message, proto.AudioOnly):
            client.post(AudioOnly(message.enabled))  # the client drops its video slots
            if message.enabled:
                self.audio_only.add(client.id)
            else:
                self.audio_only.discard(client.id)
            self._tell_link(client.id)
        elif isinstance(message, proto.Tiles):
            self._tiles(client, message)
        elif isinstance(message, proto.Moderate):
            await self._moderate(client, message, now)

    async def first_offer(self, client: Client, join: proto.Join) -> None:
        """The offer that came with `join`: answered if the connection is seated, dropped in the
        lobby (the page offers again once admitted). Errors as for `offer`."""
        if join.offer is not None and self.room.participant(client.person_id) is client:
            await self._offer(client, join.offer)

    async def _offer(self, client: Client, message: proto.Sdp) -> None:
        self._seated(client)
        if message.kind != "offer":
            raise proto.ProtocolError("the server only answers offers")
        sources = dict(message.sources)
        if message.restart and client.id in self.sfu.participants():
            # The page lost its media, not its socket, and brings a new peer connection: the old
            # one goes (aiortc cannot restart ICE) and this offer is a first one again.
            self.layers.pop(client.id, None)
            self.estimates.pop(client.id, None)
            await self.sfu.leave(client.id)
        renegotiating = client.id in self.sfu.participants()
        try:
            if renegotiating:
                answer = await self.sfu.renegotiate(client.id, message.sdp, sources)
            else:
                answer = await self.sfu.join(client.id, message.sdp, sources)
        except Exception:
            # aiortc refuses a malformed SDP with whatever its parser raises (ValueError,
            # IndexError, KeyError, OperationError…): the client gets an `error` and may offer
            # again. A first offer that failed leaves nothing behind, so the next is a fresh join.
            log.warning("offer refused", exc_info=True, extra={"participant": client.id})
            if not renegotiating:
                await self.sfu.leave(client.id)
            raise BadOffer(N_("The offer could not be used: its session description is not valid.")) from None
        if not renegotiating:
            self.room.media_connected(client)  # the room tells the SFU what to forward and pin
        client.post(Answer(answer))
        # The client lists the m-sections it sends on: a "screen" one is a screen share.
        await self.room.set_media(client, screen_sharing="screen" in sources.values())

    async def _stats(self, client: Client, message: proto.Stats) -> None:
        self._seated(client)
        previous = self.room.state_of(client.person_id)
        before = _level(previous.quality) if previous else None
        self.claims[client.id] = message  # the monitoring shows it beside the server's figures
        # The media server's own round trip and loss where it knows them: a client's report
        # (forged, or from a broken browser) never overrides what the server measures.
        estimate = self.estimates.get(client.id)
        rtt = (
            float(estimate.rtt_ms) if estimate is not None and estimate.rtt_ms is not None else message.rtt_ms
        )
        loss = estimate.loss if estimate is not None and estimate.loss is not None else message.loss_pct
        quality = ConnectionQuality(rtt, loss, message.bitrate_kbps)
        self.quality[client.id] = quality
        self.room.report_quality(client, quality)
        level = _level(quality)
        if level != before:
            # Levels change rarely; raw figures change every report and stay on the server.
            for other in self.room.participants:
                await other.send(Quality(client.id, client.person_id, level))

    def _tiles(self, client: Client, message: proto.Tiles) -> None:
        self._seated(client)
        if client.id not in self.sfu.participants():
            return  # before the first offer: the page sends its sizes again once it has slots
        slots = self.sfu.assignments(client.id)
        if len(message.sizes) > len(slots):
            raise proto.ProtocolError(
                f"'tiles' lists {len(message.sizes)} slots, the connection has {len(slots)}"
            )
        self.sfu.set_tile_sizes(client.id, {mid: (width, height) for mid, width, height in message.sizes})

    async def _moderate(self, client: Client, message: proto.Moderate, now: datetime) -> None:
        room, action = self.room, message.action
        if action == "mute":
            await room.mute(client, _target(message))
        elif action == "mute_all":
            await room.mute_all(client)
        elif action == "lower_hands":
            await room.lower_all_hands(client)
        elif action == "give_floor":
            await room.give_floor(client, _target(message))
        elif action in {"lock", "unlock"}:
            await room.set_locked(client, action == "lock")
        elif action == "deny":
            await room.deny(client, _target(message))
        else:
            target = _target(message) if action != "end" else 0

            async def transaction() -> None:
                async with self.sessions() as db:
                    if action == "admit":
                        await rooms.admit_waiting(db, room, client, target, now)
                    elif action == "remove":
                        await rooms.remove(db, room, client, target, now)
                    elif action == "end":
                        await rooms.end(db, self.registry, room, client, now)
                    await db.commit()
                await self.attendance_changed(room.occurrence_id)

            # `end` closes the moderator's own socket too, which may cancel this handler; the room
            # has told everyone by then, so the attendance and the ended meeting must be committed.
            await self.finish(transaction())

    # --- media events --------------------------------------------------------------------

    def on_media(self, event: SfuEvent) -> None:
        """Fan one SFU event out to the connections it concerns."""
        if isinstance(event, StreamAssigned):
            client = self.clients.get(event.subscriber)
            if client is not None:
                held = self.layers.get(event.subscriber)
                if event.publisher is None and held and held.pop(event.mid, None) is not None:
                    self._tell_link(event.subscriber)  # an empty slot receives no layer
                client.post(
                    Stream(
                        mid=event.mid,
                        kind=event.kind,
                        participant=event.publisher,
                        person_id=self._person_of(event.publisher),
                        source=event.source,
                    )
                )
        elif isinstance(event, DominantSpeakerChanged):
            message = self._speaking(event.participant)
            for client in list(self.clients.values()):
                client.post(message)
        elif isinstance(event, rtc.LayerChanged):
            client = self.clients.get(event.subscriber)
            if client is not None:
                self.layers.setdefault(event.subscriber, {})[event.mid] = event
                client.post(
                    Layer(event.mid, event.spatial, event.temporal, event.width, event.height, event.paused)
                )
                self._tell_link(event.subscriber)
        elif isinstance(event, rtc.LayersWanted):
            client = self.clients.get(event.participant)
            if client is not None:
                client.post(LayersWanted(event.mid, event.rids))
        elif isinstance(event, rtc.LinkEstimate):
            if event.participant in self.clients:
                self.estimates[event.participant] = event
                self._tell_link(event.participant)
        elif isinstance(event, ConnectionStateChanged) and event.state in {"failed", "closed"}:
            client = self.clients.get(event.participant)
            # Not the server letting go (a refused first offer): only a peer connection still held.
            if client is not None and event.participant in self.sfu.participants():
                # ICE consent lost or DTLS closed: end the session now rather than at the socket's
                # heartbeat, so the others see `left` and the SFU lets go within seconds.
                client.end(CloseCode.MEDIA_LOST, N_("The connection to the meeting was lost. Reconnecting…"))

    # --- helpers -------------------------------------------------------------------------

    def _seated(self, client: Client) -> None:
        if self.room.participant(client.person_id) is not client:
            raise NotInRoom(N_("You are waiting in the lobby."))

    def _person_of(self, participant_id: str | None) -> int | None:
        if participant_id is None:
            return None
        for p in self.room.participants:
            if p.id == participant_id:
                return p.person_id
        return None

    def _speaking(self, participant_id: str | None) -> Speaking:
        return Speaking(participant_id, self._person_of(participant_id))

    def _tell_link(self, participant_id: str) -> None:
        """`link` about one connection to itself and to the moderators, when it changed."""
        client = self.clients.get(participant_id)
        if client is None:
            return
        estimate = self.estimates.get(participant_id)
        shown = [layer for layer in self.layers.get(participant_id, {}).values() if not layer.paused]
        largest = max(shown, key=lambda layer: (layer.width or 0) * (layer.height or 0), default=None)
        link = Link(
            participant=participant_id,
            person_id=client.person_id,
            downlink_bps=estimate.downlink_bps if estimate else None,
            uplink_bps=estimate.uplink_bps if estimate else None,
            loss=estimate.loss if estimate else None,
            rtt_ms=estimate.rtt_ms if estimate else None,
            width=largest.width if largest else None,
            height=largest.height if largest else None,
            paused=bool(self.layers.get(participant_id)) and not shown,
            audio_only=participant_id in self.audio_only,
        )
        if self.links.get(participant_id) == link:
            return
        self.links[participant_id] = link
        client.post(link)
        for other in self.room.participants:
            target = self.clients.get(other.id)
            if target is not None and target is not client and other.role is RoomRole.MODERATOR:
                target.post(link)

    def _tell_qualities(self, client: Client) -> None:
        """A newcomer learns the connection quality known so far (afterwards only changes)."""
        for other in self.room.participants:
            state = self.room.state_of(other.person_id)
            level = _level(state.quality) if state else None
            if level is not None:  # one's own too: a reconnect keeps the last measure
                client.post(Quality(other.id, other.person_id, level))


def _level(quality: ConnectionQuality) -> str | None:
    return proto.quality_level(quality.rtt_ms, quality.loss_pct)


def _target(message: proto.Moderate) -> int:
    target = message.target or ""
    # ASCII digits, within a database integer (str.isdigit alone takes "²" and "١٢").
    if not target.isascii() or not target.isdigit() or len(target) > 10 or int(target) > MAX_PERSON_ID:
        raise proto.ProtocolError("'target' must be a person id")
    return int(target)
