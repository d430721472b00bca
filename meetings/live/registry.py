"""The open meetings of this node: one live session per meeting (its room and its SFU)."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from meetings.db.base import utcnow
from meetings.directory.models import Person
from meetings.live import protocol as proto
from meetings.live.media import SfuMedia
from meetings.live.messages import Welcome
from meetings.live.session import AttendanceChanged, Client, MeetingSession
from meetings.rooms import service as rooms
from meetings.rooms.room import RoomRegistry
from meetings.rtc.ice import ice_servers
from meetings.rtc.sfu import Sfu, SfuConfig, SfuEvent
from meetings.settings import Settings

T = TypeVar("T")


async def _nobody_watches(occurrence_id: int) -> None:
    """The default reaction to an attendance change: none."""


@dataclass
class LiveMeetings:
    """The live sessions of this node, their rooms and SFUs, and work that must finish first."""

    registry: RoomRegistry
    config: SfuConfig
    settings: Settings
    sessions: async_sessionmaker[AsyncSession]
    # Wired by the app: the minutes' live viewers hear of every attendance change.
    attendance_changed: AttendanceChanged = _nobody_watches
    meetings: dict[int, MeetingSession] = field(default_factory=dict)
    pending: set[asyncio.Task[Any]] = field(default_factory=set)
    _sfus: dict[int, Sfu] = field(default_factory=dict)

    @property
    def sfus(self) -> dict[int, Sfu]:
        """The SFU of each open meeting, by occurrence id."""
        return dict(self._sfus)

    async def finish(self, work: Coroutine[Any, Any, T]) -> T:
        """Run `work` to its end even if the caller is cancelled (its socket closed, a shutdown).

        For changes the room has already announced: ending a meeting closes the moderator's own
        socket, and what everyone was told must still be committed.
        """
        task = asyncio.ensure_future(work)
        self.pending.add(task)
        task.add_done_callback(self.pending.discard)
        return await asyncio.shield(task)

    async def admit(self, occurrence_id: int, person: Person) -> rooms.Admission:
        """May this person come in now (the room of the occurrence is opened)? Domain errors if not."""
        async with self.sessions() as db:
            admission = await rooms.admit(db, self.registry, occurrence_id, person, utcnow())
            await db.commit()
        return admission

    def ice_servers(self, person_id: int) -> list[dict[str, Any]]:
        """STUN, and TURN with credentials valid from now: for `welcome`, and for the room page,
        whose pre-join screen starts its peer connection before it joins."""
        s = self.settings
        return ice_servers(
            stun_urls=s.stun_urls,
            turn_urls=s.turn_urls,
            turn_secret=s.turn_secret,
            user=str(person_id),
            now=datetime.now(UTC),
            ttl_seconds=s.turn_ttl_seconds,
        )

    def welcome(self, client: Client) -> Welcome:
        """The first message of a connection: its id, the protocol version, STUN and TURN."""
        return Welcome(client.id, proto.PROTOCOL_VERSION, tuple(self.ice_servers(client.person_id)))

    async def enter(self, admission: rooms.Admission, client: Client, join: proto.Join) -> MeetingSession:
        """Seat (or queue) a connection in its meeting's session, which it holds until `leave`.

        Every connection holds the session, seated or waiting, offered yet or not, so the last
        publisher leaving never closes the SFU under someone about to send an offer.
        """
        session = self._session(admission)
        session.clients[client.id] = client
        try:
            await session.enter(admission, client, join)
        except BaseException:
            session.clients.pop(client.id, None)
            await self._release(session)
            raise
        return session

    async def leave(self, session: MeetingSession, client: Client) -> None:
        """A connection ended: its media, seat and attendance are let go of, to the end even if
        the caller is cancelled (a shutdown must not leave a peer connection's UDP sockets open
        or an attendance record marked connected)."""

        async def clean_up() -> None:
            try:
                await session.leave(client)
            finally:
                await self._release(session)

        await self.finish(clean_up())

    def _session(self, admission: rooms.Admission) -> MeetingSession:
        room = admission.room
        session = self.meetings.get(room.occurrence_id)
        if session is not None and session.room is not room:
            # The room was forgotten and opened afresh while connections still held the session.
            session.room = room
            room.attach_media(SfuMedia(self._sfus[room.occurrence_id]))
        if session is None:
            holder: list[MeetingSession] = []

            def dispatch(event: SfuEvent) -> None:
                if holder:
                    holder[0].on_media(event)

            sfu = Sfu(self.config, on_event=dispatch)
            session = MeetingSession(
                room=room,
                sfu=sfu,
                registry=self.registry,
                sessions=self.sessions,
                attendance_changed=self.attendance_changed,
                finish=self.finish,
            )
            holder.append(session)
            room.attach_media(SfuMedia(sfu))  # the room drives its media from now on
            self.meetings[room.occurrence_id] = session
            self._sfus[room.occurrence_id] = sfu
        return session

    async def _release(self, session: MeetingSession) -> None:
        """The last connection gone: the session's SFU closes."""
        if session.clients:
            return
        occurrence_id = session.room.occurrence_id
        if self.meetings.get(occurrence_id) is session:
            del self.meetings[occurrence_id]
            sfu = self._sfus.pop(occurrence_id)
            await sfu.close()

    async def close(self) -> None:
        """Finish pending work, close every SFU and every room's connections (the node stops)."""
        await asyncio.gather(*self.pending, return_exceptions=True)
        for sfu in list(self._sfus.values()):
            await sfu.close()
        self._sfus.clear()
        self.meetings.clear()
        await self.registry.close()
