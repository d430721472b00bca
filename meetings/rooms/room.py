"""The live state of one meeting's room: admission, lobby, hands, moderation, chat, events.

A room lives in the memory of the media node it is pinned to; what must outlive it
(attendance, chat) goes to the database through `meetings.rooms.service` and the chat store.
Every method takes the time it runs at, so the logic is deterministic and tested without clocks.
State is changed completely before any event is sent, so a task switch during a send never
sees a half-done change.
"""

from __future__ import annotations

import enum
import itertools
import logging
import unicodedata
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from meetings.errors import N_, FieldError, InvalidInput
from meetings.rooms.errors import NoSuchParticipant, NotInRoom, NotModerator, RoomClosed, RoomFull
from meetings.rooms.events import (
    Chat,
    Ended,
    Floor,
    Joined,
    Left,
    LobbyChanged,
    LobbyEntry,
    Locked,
    ParticipantView,
    QueueChanged,
    RoomSnapshot,
    StateChanged,
    Waiting,
)
from meetings.rooms.media import MediaControl, NoMedia
from meetings.rooms.participant import (
    CloseCode,
    ConnectionQuality,
    Participant,
    ParticipantState,
    RoomRole,
)
from meetings.settings import Settings
from meetings.wire import ServerMessage

log = logging.getLogger(__name__)

CHAT_MAX_LENGTH = 2000


@dataclass(frozen=True)
class RoomRules:
    """Admission limits, from settings."""

    open_minutes: int = 15
    grace_minutes: int = 30
    capacity: int = 100
    reconnect_seconds: int = 120
    chat_max_length: int = CHAT_MAX_LENGTH

    @classmethod
    def from_settings(cls, settings: Settings) -> RoomRules:
        """The rules the service is configured with."""
        return cls(
            open_minutes=settings.room_open_minutes,
            grace_minutes=settings.room_grace_minutes,
            capacity=settings.room_capacity,
            reconnect_seconds=settings.reconnect_merge_seconds,
        )


@dataclass(frozen=True)
class ChatLine:
    """One chat message, as kept with the occurrence."""

    occurrence_id: int
    person_id: int
    name: str
    text: str
    at: datetime


ChatStore = Callable[[ChatLine], Awaitable[None]]


class Placement(enum.StrEnum):
    """Where a joining connection ends up."""

    SEATED = "seated"
    LOBBY = "lobby"


class LobbyReason(enum.StrEnum):
    """Why someone waits in the lobby."""

    NOT_INVITED = "not_invited"
    LOCKED = "locked"
    REMOVED = "removed"  # removed earlier: only a moderator lets them back in


@dataclass(frozen=True)
class JoinResult:
    """The outcome of a join."""

    placement: Placement
    # The same person's earlier connection, now closed with CloseCode.REPLACED.
    replaced: Participant | None = None
    # The person's mute state and hand were carried over from an earlier connection.
    reconnect: bool = False


@dataclass
class _Seat:
    participant: Participant
    state: ParticipantState
    order: int  # join order, for stable listings


@dataclass
class _Waiting:
    participant: Participant
    since: datetime
    reason: LobbyReason


@dataclass
class _Departed:
    state: ParticipantState
    left_at: datetime


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at is not None else None


def clean_chat_text(text: str, max_length: int = CHAT_MAX_LENGTH) -> str:
    """A chat message as it is kept: NFC, no control characters but newlines, trimmed."""
    normal = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n")
    kept = "".join(ch for ch in normal if ch == "\n" or unicodedata.category(ch) != "Cc").strip()
    if not kept:
        raise InvalidInput([FieldError("text", N_("Write a message."))])
    if len(kept) > max_length:
        raise InvalidInput([FieldError("text", N_("Use at most %(n)s characters."), {"n": max_length})])
    return kept


class Room:
    """The room of one occurrence."""

    def __init__(
        self,
        occurrence_id: int,
        *,
        start: datetime,
        end: datetime,
        title: str = "",
        timezone: str = "Asia/Ho_Chi_Minh",
        rules: RoomRules | None = None,
        chat_store: ChatStore | None = None,
        ended_at: datetime | None = None,
        media: MediaControl | None = None,
        pinned_person: int | None = None,
    ) -> None:
        self.occurrence_id = occurrence_id
        # The media plane follows the room: every change of a seat's state reaches it here.
        self.media: MediaControl = media or NoMedia()
        self.pinned_person = pinned_person  # the chair: every receiver gets their video first
        self.title = title
        self.timezone = timezone
        self.rules = rules or RoomRules()
        self.starts_at = start
        self.ends_at = end
        self.ended_at = ended_at
        self.locked = False
        self._chat_store = chat_store
        self._seats: dict[int, _Seat] = {}  # by person id
        self._lobby: dict[int, _Waiting] = {}  # by person id, in arrival order
        self._departed: dict[int, _Departed] = {}  # kept for reconnects, by person id
        self._admitted: set[int] = set()  # people seated here at least once
        self._removed: set[int] = set()
        self._counter = itertools.count(1)
        self._hand_order: dict[int, int] = {}

    # --- reading -------------------------------------------------------------------------

    @property
    def opens_at(self) -> datetime:
        """When people may start to come in."""
        return self.starts_at - timedelta(minutes=self.rules.open_minutes)

    @property
    def closes_at(self) -> datetime:
        """When the room closes by itself (unless the chair ends it earlier)."""
        return self.ends_at + timedelta(minutes=self.rules.grace_minutes)

    def is_open(self, now: datetime) -> bool:
        """Whether people may join now."""
        return self.ended_at is None and self.opens_at <= now < self.closes_at

    def finished(self, now: datetime) -> bool:
        """Whether the room is over for good (ended, or past its closing time)."""
        return self.ended_at is not None or now >= self.closes_at

    def check_open(self, now: datetime) -> None:
        """Raise RoomClosed unless people may join now."""
        if self.ended_at is not None:
            raise RoomClosed(N_("This meeting has ended."))
        if now < self.opens_at:
            local = self.opens_at.astimezone(ZoneInfo(self.timezone))
            raise RoomClosed(
                N_("The meeting room opens at %(time)s on %(date)s."),
                time=local.strftime("%H:%M"),
                date=local.strftime("%d/%m/%Y"),
            )
        if now >= self.closes_at:
            raise RoomClosed(N_("This meeting has ended."))

    @property
    def is_empty(self) -> bool:
        """Nobody seated and nobody waiting."""
        return not self._seats and not self._lobby

    @property
    def participants(self) -> list[Participant]:
        """Seated connections, in join order."""
        return [s.participant for s in self._seats.values()]

    @property
    def waiting(self) -> list[Participant]:
        """Connections in the lobby, in arrival order."""
        return [w.participant for w in self._lobby.values()]

    @property
    def queue(self) -> list[int]:
        """Person ids of the raised hands, first raised first."""
        raised = [pid for pid, s in self._seats.items() if s.state.hand_raised_at is not None]
        return sorted(raised, key=lambda pid: self._hand_order.get(pid, 0))

    def participant(self, person_id: int) -> Participant | None:
        """The seated connection of a person."""
        seat = self._seats.get(person_id)
        return seat.participant if seat else None

    def state_of(self, person_id: int) -> ParticipantState | None:
        """A seated person's state."""
        seat = self._seats.get(person_id)
        return seat.state if seat else None

    def snapshot(self, viewer: Participant) -> RoomSnapshot:
        """The whole room as one message for a connection that has just been seated."""
        return RoomSnapshot(
            occurrence_id=self.occurrence_id,
            title=self.title,
            you=viewer.id,
            role=viewer.role.value,
            locked=self.locked,
            closes_at=_iso(self.closes_at),
            participants=tuple(self._view(s) for s in self._seats.values()),
            queue=tuple(self.queue),
            lobby=self._lobby_view() if viewer.role is RoomRole.MODERATOR else None,
        )

    # --- media ---------------------------------------------------------------------------

    def attach_media(self, media: MediaControl) -> None:
        """The media plane this room drives from now on (the live session attaches its SFU)."""
        self.media = media

    def media_connected(self, participant: Participant) -> None:
        """A seated connection's media has arrived: the media plane learns the room's state for it."""
        self._apply_media(self._seat_of(participant))
        self._apply_pins()

    def _apply_media(self, seat: _Seat) -> None:
        self.media.set_muted(seat.participant.id, "audio", seat.state.audio_muted)
        self.media.set_muted(seat.participant.id, "video", seat.state.video_muted)

    def _apply_pins(self) -> None:
        seat = self._seats.get(self.pinned_person) if self.pinned_person is not None else None
        self.media.set_pinned({seat.participant.id} if seat is not None else set())

    # --- joining and leaving -------------------------------------------------------------

    async def join(self, participant: Participant, *, invited: bool, now: datetime) -> JoinResult:
        """Seat a connection or put it in the lobby; refuse with a domain error when it cannot."""
        self.check_open(now)
        self._forget_departed(now)
        pid = participant.person_id
        seat = self._seats.get(pid)
        if seat is not None:
            return await self._replace(seat, participant)
        waiting = self._lobby.pop(pid, None)
        old_waiting = waiting.participant if waiting else None
        try:
            placement, reason = self._placement(participant, invited=invited)
            if placement is Placement.SEATED and participant.role is not RoomRole.MODERATOR:
                self._check_capacity()
            if placement is Placement.LOBBY and len(self._lobby) >= self.rules.capacity:
                raise RoomFull(N_("Too many people are waiting to be let in; try again shortly."))
        except Exception:
            if waiting is not None:
                self._lobby[pid] = waiting
            raise
        if placement is Placement.LOBBY:
            self._lobby[pid] = _Waiting(participant, waiting.since if waiting else now, reason)
            if old_waiting is not None:
                await old_waiting.close(CloseCode.REPLACED, N_("You joined again from another window."))
            await self._safe_send(participant, Waiting(reason.value))
            await self._lobby_changed()
            return JoinResult(Placement.LOBBY, replaced=old_waiting)
        reconnect = await self._seat(participant, now)
        if old_waiting is not None:
            await old_waiting.close(CloseCode.REPLACED, N_("You joined again from another window."))
            await self._lobby_changed()
        return JoinResult(Placement.SEATED, replaced=old_waiting, reconnect=reconnect)

    def _placement(self, participant: Participant, *, invited: bool) -> tuple[Placement, LobbyReason]:
        pid = participant.person_id
        if participant.role is RoomRole.MODERATOR:
            return Placement.SEATED, LobbyReason.NOT_INVITED
        if pid in self._removed:
            return Placement.LOBBY, LobbyReason.REMOVED
        if pid in self._admitted:
            return Placement.SEATED, LobbyReason.NOT_INVITED
        if self.locked:
            return Placement.LOBBY, LobbyReason.LOCKED
        if not invited:
            return Placement.LOBBY, LobbyReason.NOT_INVITED
        return Placement.SEATED, LobbyReason.NOT_INVITED

    def _check_capacity(self) -> None:
        if len(self._seats) >= self.rules.capacity:
            raise RoomFull(
                N_("The meeting room is full (%(capacity)s participants)."), capacity=self.rules.capacity
            )

    async def _replace(self, seat: _Seat, participant: Participant) -> JoinResult:
        """The same person connected again: the new connection takes the seat and its state."""
        old = seat.participant
        seat.participant = participant
        seat.state.screen_sharing = False  # the new connection has no screen track yet
        await old.close(CloseCode.REPLACED, N_("You joined again from another window."))
        await self._safe_disconnect(old)
        await self._safe_send(participant, self.snapshot(participant))
        await self._broadcast(Joined(self._view(seat), replaces=old.id), exclude=participant)
        return JoinResult(Placement.SEATED, replaced=old, reconnect=True)

    async def _seat(self, participant: Participant, now: datetime) -> bool:
        pid = participant.person_id
        departed = self._departed.pop(pid, None)
        state = departed.state if departed else ParticipantState(joined_at=now)
        state.screen_sharing = False  # a new connection has no screen track yet
        self._seats[pid] = seat = _Seat(participant, state, next(self._counter))
        self._admitted.add(pid)
        await self._safe_send(participant, self.snapshot(participant))
        await self._broadcast(Joined(self._view(seat)), exclude=participant)
        if state.hand_raised_at is not None:
            await self._queue_changed()
        return departed is not None

    async def leave(self, participant: Participant, now: datetime) -> Placement | None:
        """A connection went away; returns where it was, or None if it was no longer current."""
        pid = participant.person_id
        seat = self._seats.get(pid)
        if seat is not None and seat.participant.id == participant.id:
            del self._seats[pid]
            self._departed[pid] = _Departed(seat.state, now)
            await self._safe_disconnect(participant)
            await self._broadcast(Left(participant.id, pid, "left"))
            if seat.state.hand_raised_at is not None:
                await self._queue_changed()
            return Placement.SEATED
        waiting = self._lobby.get(pid)
        if waiting is not None and waiting.participant.id == participant.id:
            del self._lobby[pid]
            await self._lobby_changed()
            return Placement.LOBBY
        return None

    def _forget_departed(self, now: datetime) -> None:
        horizon = now - timedelta(seconds=self.rules.reconnect_seconds)
        for pid in [pid for pid, d in self._departed.items() if d.left_at < horizon]:
            del self._departed[pid]
            self._hand_order.pop(pid, None)

    # --- a participant's own state -------------------------------------------------------

    async def set_media(
        self,
        participant: Participant,
        *,
        audio_muted: bool | None = None,
        video_muted: bool | None = None,
        screen_sharing: bool | None = None,
    ) -> ParticipantState:
        """Mute or unmute oneself, turn the camera or the screen share on or off."""
        seat = self._seat_of(participant)
        state = seat.state
        before = (state.audio_muted, state.video_muted, state.screen_sharing)
        if audio_muted is not None:
            state.audio_muted = audio_muted
        if video_muted is not None:
            state.video_muted = video_muted
        if screen_sharing is not None:
            state.screen_sharing = screen_sharing
        if before != (state.audio_muted, state.video_muted, state.screen_sharing):
            await self._state_changed(seat, by=None)
        return state

    def report_quality(self, participant: Participant, quality: ConnectionQuality) -> None:
        """Keep the latest measured connection quality (no event: it changes all the time)."""
        self._seat_of(participant).state.quality = quality

    async def raise_hand(self, participant: Participant, now: datetime) -> list[int]:
        """Ask for the floor; the queue keeps the order hands went up. Returns the queue."""
        seat = self._seat_of(participant)
        if seat.state.hand_raised_at is None:
            seat.state.hand_raised_at = now
            self._hand_order[participant.person_id] = next(self._counter)
            await self._state_changed(seat, by=None)
            await self._queue_changed()
        return self.queue

    async def lower_hand(self, participant: Participant) -> list[int]:
        """Lower one's own hand. Returns the queue."""
        seat = self._seat_of(participant)
        if seat.state.hand_raised_at is not None:
            self._lower(seat)
            await self._state_changed(seat, by=None)
            await self._queue_changed()
        return self.queue

    def _lower(self, seat: _Seat) -> None:
        seat.state.hand_raised_at = None
        self._hand_order.pop(seat.participant.person_id, None)

    async def chat(self, sender: Participant, text: str, now: datetime) -> ChatLine:
        """Check a chat message, keep it with the occurrence, then show it to everyone seated."""
        self._seat_of(sender)
        line = ChatLine(
            occurrence_id=self.occurrence_id,
            person_id=sender.person_id,
            name=sender.name,
            text=clean_chat_text(text, self.rules.chat_max_length),
            at=now,
        )
        if self._chat_store is not None:
            await self._chat_store(line)
        await self._broadcast(Chat(sender.id, line.person_id, line.name, line.text, _iso(line.at)))
        return line

    # --- moderation ----------------------------------------------------------------------

    async def mute(self, actor: Participant, person_id: int) -> None:
        """Mute one person's microphone."""
        self._moderator(actor)
        seat = self._target(person_id)
        if not seat.state.audio_muted:
            seat.state.audio_muted = True
            await self._state_changed(seat, by=actor)

    async def mute_all(self, actor: Participant) -> list[int]:
        """Mute every microphone but the actor's; returns who was muted."""
        self._moderator(actor)
        muted = [s for pid, s in self._seats.items() if pid != actor.person_id and not s.state.audio_muted]
        for seat in muted:
            seat.state.audio_muted = True
        for seat in muted:
            await self._state_changed(seat, by=actor)
        return [s.participant.person_id for s in muted]

    async def lower_all_hands(self, actor: Participant) -> None:
        """Empty the speakers' queue."""
        self._moderator(actor)
        raised = [s for s in self._seats.values() if s.state.hand_raised_at is not None]
        for seat in raised:
            self._lower(seat)
        for seat in raised:
            await self._state_changed(seat, by=actor)
        if raised:
            await self._queue_changed()

    async def give_floor(self, actor: Participant, person_id: int) -> None:
        """Let one person speak: unmute their microphone and take them off the queue."""
        self._moderator(actor)
        seat = self._target(person_id)
        had_hand = seat.state.hand_raised_at is not None
        seat.state.audio_muted = False
        self._lower(seat)
        await self._broadcast(Floor(person_id, by=actor.person_id))
        await self._state_changed(seat, by=actor)
        if had_hand:
            await self._queue_changed()

    async def remove(self, actor: Participant, person_id: int) -> tuple[Participant, ParticipantState]:
        """Send a seated person out; they wait in the lobby if they try again."""
        self._moderator(actor)
        if person_id == actor.person_id:
            raise NoSuchParticipant(N_("Leave the meeting instead of removing yourself."))
        seat = self._target(person_id)
        del self._seats[person_id]
        self._hand_order.pop(person_id, None)
        self._removed.add(person_id)
        self._admitted.discard(person_id)
        await seat.participant.close(CloseCode.REMOVED, N_("A moderator removed you from the meeting."))
        await self._safe_disconnect(seat.participant)  # after the close, which gives the reason
        await self._broadcast(Left(seat.participant.id, person_id, "removed", by=actor.person_id))
        if seat.state.hand_raised_at is not None:
            await self._queue_changed()
        return seat.participant, seat.state

    async def admit(self, actor: Participant, person_id: int, now: datetime) -> Participant:
        """Let someone in from the lobby."""
        self._moderator(actor)
        self.check_open(now)
        waiting = self._lobby.get(person_id)
        if waiting is None:
            raise NoSuchParticipant(N_("This person is not waiting to join."))
        self._check_capacity()
        del self._lobby[person_id]
        self._removed.discard(person_id)
        await self._seat(waiting.participant, now)
        await self._lobby_changed()
        return waiting.participant

    async def deny(self, actor: Participant, person_id: int) -> Participant:
        """Refuse someone waiting in the lobby."""
        self._moderator(actor)
        waiting = self._lobby.pop(person_id, None)
        if waiting is None:
            raise NoSuchParticipant(N_("This person is not waiting to join."))
        await waiting.participant.close(CloseCode.DENIED, N_("A moderator did not let you in."))
        await self._lobby_changed()
        return waiting.participant

    async def set_locked(self, actor: Participant, locked: bool) -> None:
        """Lock the room (newcomers wait in the lobby) or unlock it."""
        self._moderator(actor)
        if self.locked != locked:
            self.locked = locked
            await self._broadcast(Locked(locked, by=actor.person_id))

    async def end(
        self, actor: Participant | None, now: datetime
    ) -> list[tuple[Participant, ParticipantState]]:
        """End the meeting for everyone (actor None: its time is over). Returns who was seated."""
        if self.ended_at is not None:
            return []  # ending twice (two moderators at once, a late sweep) is harmless
        if actor is not None:
            self._moderator(actor)
        self.ended_at = now
        seated = [(s.participant, s.state) for s in self._seats.values()]
        waiting = [w.participant for w in self._lobby.values()]
        self._seats.clear()
        self._lobby.clear()
        self._departed.clear()
        self._hand_order.clear()
        message = Ended(by=actor.person_id if actor else None)
        reason = N_("This meeting has ended.")
        for participant in [p for p, _ in seated] + waiting:
            await self._safe_send(participant, message)
            await self._safe_close(participant, CloseCode.ENDED, reason)
        for participant, _ in seated:  # after the close: a dropped peer connection is no lost link
            await self._safe_disconnect(participant)
        return seated

    async def shutdown(self) -> None:
        """Close every connection without ending the meeting (the node is going away)."""
        connections = self.participants + self.waiting
        self._seats.clear()
        self._lobby.clear()
        for participant in connections:
            await self._safe_close(participant, CloseCode.SHUTDOWN, N_("The server is restarting."))

    # --- helpers -------------------------------------------------------------------------

    def _seat_of(self, participant: Participant) -> _Seat:
        seat = self._seats.get(participant.person_id)
        if seat is None or seat.participant.id != participant.id:
            raise NotInRoom(N_("You are not in this meeting."))
        return seat

    def _moderator(self, actor: Participant) -> _Seat:
        seat = self._seat_of(actor)
        if actor.role is not RoomRole.MODERATOR:
            raise NotModerator(N_("Only the chair, the secretary or an administrator may do this."))
        return seat

    def _target(self, person_id: int) -> _Seat:
        seat = self._seats.get(person_id)
        if seat is None:
            raise NoSuchParticipant(N_("This person is not in the meeting."))
        return seat

    def _view(self, seat: _Seat) -> ParticipantView:
        p, s = seat.participant, seat.state
        return ParticipantView(
            id=p.id,
            person_id=p.person_id,
            unit_id=p.unit_id,
            name=p.name,
            role=p.role.value,
            audio_muted=s.audio_muted,
            video_muted=s.video_muted,
            hand_raised=s.hand_raised,
            screen_sharing=s.screen_sharing,
            joined_at=_iso(s.joined_at),
        )

    def _lobby_view(self) -> tuple[LobbyEntry, ...]:
        return tuple(
            LobbyEntry(
                participant_id=w.participant.id,
                person_id=pid,
                unit_id=w.participant.unit_id,
                name=w.participant.name,
                since=_iso(w.since),
                reason=w.reason.value,
            )
            for pid, w in self._lobby.items()
        )

    def _moderators(self) -> Iterator[Participant]:
        return (s.participant for s in self._seats.values() if s.participant.role is RoomRole.MODERATOR)

    async def _state_changed(self, seat: _Seat, *, by: Participant | None) -> None:
        self._apply_media(seat)  # the media plane first: what is announced is already true
        await self._broadcast(StateChanged(self._view(seat), by=by.person_id if by else None))

    async def _queue_changed(self) -> None:
        await self._broadcast(QueueChanged(tuple(self.queue)))

    async def _lobby_changed(self) -> None:
        message = LobbyChanged(self._lobby_view())
        for participant in list(self._moderators()):
            await self._safe_send(participant, message)

    async def _broadcast(self, message: ServerMessage, *, exclude: Participant | None = None) -> None:
        targets: Iterable[Participant] = [s.participant for s in self._seats.values()]
        for participant in targets:
            if exclude is None or participant.id != exclude.id:
                await self._safe_send(participant, message)

    async def _safe_send(self, participant: Participant, message: ServerMessage) -> None:
        # One participant's broken connection must not disturb the others.
        try:
            await participant.send(message)
        except Exception:
            log.warning(
                "room event not delivered",
                exc_info=True,
                extra={"occurrence_id": self.occurrence_id, "participant": participant.id},
            )

    async def _safe_disconnect(self, participant: Participant) -> None:
        try:
            await self.media.disconnect(participant.id)
        except Exception:
            log.warning(
                "media not released",
                exc_info=True,
                extra={"occurrence_id": self.occurrence_id, "participant": participant.id},
            )

    async def _safe_close(self, participant: Participant, code: int, reason: str) -> None:
        try:
            await participant.close(code, reason)
        except Exception:
            log.warning(
                "connection did not close cleanly",
                exc_info=True,
                extra={"occurrence_id": self.occurrence_id, "participant": participant.id},
            )


@dataclass
class RoomRegistry:
    """Every live room of this process, by occurrence id; the app creates one."""

    rules: RoomRules = field(default_factory=RoomRules)
    chat_store: ChatStore | None = None
    _rooms: dict[int, Room] = field(default_factory=dict, init=False, repr=False)

    def get(self, occurrence_id: int) -> Room | None:
        """The live room of an occurrence, if any."""
        return self._rooms.get(occurrence_id)

    def open(
        self,
        occurrence_id: int,
        *,
        start: datetime,
        end: datetime,
        title: str = "",
        timezone: str = "Asia/Ho_Chi_Minh",
        ended_at: datetime | None = None,
        pinned_person: int | None = None,
    ) -> Room:
        """The room of an occurrence, created on first use; a moved meeting moves its window."""
        room = self._rooms.get(occurrence_id)
        if room is None:
            room = Room(
                occurrence_id,
                start=start,
                end=end,
                title=title,
                timezone=timezone,
                rules=self.rules,
                chat_store=self.chat_store,
                ended_at=ended_at,
                pinned_person=pinned_person,
            )
            self._rooms[occurrence_id] = room
        else:
            room.starts_at, room.ends_at, room.title = start, end, title
            room.pinned_person = pinned_person
        return room

    def release(self, room: Room, now: datetime) -> bool:
        """Forget a room nobody is in once its time is over or not yet open; True if forgotten.

        A room the chair ended is kept until its closing time: until the caller commits the end,
        the database still says "in progress", and a room opened afresh would let people back in.
        """
        over = now >= room.closes_at
        if room.is_empty and (over or (room.ended_at is None and now < room.opens_at)):
            if self._rooms.get(room.occurrence_id) is room:
                del self._rooms[room.occurrence_id]
            return True
        return False

    async def sweep(self, now: datetime) -> list[tuple[Room, list[tuple[Participant, ParticipantState]]]]:
        """End rooms whose time is over and forget empty finished ones; returns who was sent out."""
        ended: list[tuple[Room, list[tuple[Participant, ParticipantState]]]] = []
        for room in list(self._rooms.values()):
            if room.ended_at is None and now >= room.closes_at:
                ended.append((room, await room.end(None, now)))
            self.release(room, now)
        return ended

    async def close(self) -> None:
        """Close every connection of every room (the process is stopping); safe to call twice."""
        rooms = list(self._rooms.values())
        self._rooms.clear()
        for room in rooms:
            await room.shutdown()

    def __len__(self) -> int:
        return len(self._rooms)

    def __iter__(self) -> Iterator[Room]:
        return iter(list(self._rooms.values()))
