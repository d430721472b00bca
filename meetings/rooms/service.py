"""What the signaling layer calls: admission against the schedule, and room changes that write
attendance. Functions flush; the caller commits (a short transaction per message)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from meetings import audit
from meetings.audit import AuditEntry
from meetings.directory.models import Person, Role
from meetings.errors import N_, Forbidden
from meetings.minutes import attendance as minutes_attendance
from meetings.minutes import service as minutes
from meetings.rooms import attendance
from meetings.rooms.errors import RoomClosed
from meetings.rooms.models import ChatMessage
from meetings.rooms.participant import ConnectionQuality, Participant, ParticipantState, RoomRole
from meetings.rooms.room import ChatLine, ChatStore, JoinResult, Placement, Room, RoomRegistry, RoomRules
from meetings.schedule.models import Occurrence, OccurrenceState, Series, SeriesStatus
from meetings.schedule.service import get_occurrence, get_series, series_of_person
from meetings.settings import Settings

END_ACTION = "room.end"
log = logging.getLogger("giaoban.rooms")


@dataclass(frozen=True)
class Admission:
    """A person allowed to try the room of an occurrence, and how the room will treat them."""

    room: Room
    occurrence_id: int
    person_id: int
    unit_id: int | None
    name: str
    role: RoomRole
    invited: bool  # invitees are seated; others wait in the lobby


def is_moderator(series: Series, person: Person) -> bool:
    """The series' chair or secretary, or an administrator."""
    return person.role is Role.ADMINISTRATOR or person.id in {series.chair_id, series.secretary_id}


def create_registry(settings: Settings, sessions: async_sessionmaker[AsyncSession]) -> RoomRegistry:
    """The process's room registry, with chat kept in the database."""
    return RoomRegistry(rules=RoomRules.from_settings(settings), chat_store=chat_store(sessions))


def chat_store(sessions: async_sessionmaker[AsyncSession]) -> ChatStore:
    """A chat store that writes each message in its own transaction."""

    async def store(line: ChatLine) -> None:
        async with sessions.begin() as db:
            db.add(
                ChatMessage(
                    occurrence_id=line.occurrence_id,
                    person_id=line.person_id,
                    name=line.name,
                    text=line.text,
                    at=line.at,
                )
            )

    return store


async def chat_history(db: AsyncSession, occurrence_id: int) -> list[ChatMessage]:
    """The chat of a meeting, in order."""
    return list(
        await db.scalars(
            select(ChatMessage)
            .where(ChatMessage.occurrence_id == occurrence_id)
            .order_by(ChatMessage.at, ChatMessage.id)
        )
    )


async def _ended_at(db: AsyncSession, occurrence: Occurrence, now: datetime) -> datetime | None:
    """When the chair ended this meeting, if they did (the room may have lived on another run)."""
    if occurrence.state is not OccurrenceState.ENDED:
        return None
    at = await db.scalar(
        select(AuditEntry.at)
        .where(
            AuditEntry.action == END_ACTION,
            AuditEntry.target_type == "occurrence",
            AuditEntry.target_id == str(occurrence.id),
        )
        .order_by(AuditEntry.at.desc())
        .limit(1)
    )
    if at is not None:
        return at
    # Marked ended before its planned end by someone other than the room: treat it as ended.
    return occurrence.updated_at if now < occurrence.end else None


async def admit(
    db: AsyncSession, registry: RoomRegistry, occurrence_id: int, person: Person, now: datetime
) -> Admission:
    """Check that a person may come to a meeting now; the room of the occurrence is opened."""
    occurrence = await get_occurrence(db, occurrence_id)
    series = await get_series(db, occurrence.series_id)
    if not person.active:
        raise Forbidden(N_("This account is not active."))
    if occurrence.state is OccurrenceState.CANCELLED or series.status is SeriesStatus.CANCELLED:
        raise RoomClosed(N_("This meeting was cancelled."))
    moderator = is_moderator(series, person)
    invited = moderator or series.id in await series_of_person(db, person)
    ended_at = await _ended_at(db, occurrence, now) if registry.get(occurrence.id) is None else None
    room = registry.open(
        occurrence.id,
        start=occurrence.start,
        end=occurrence.end,
        title=series.title,
        timezone=series.timezone,
        ended_at=ended_at,
        pinned_person=series.chair_id,
    )
    try:
        room.check_open(now)
    except RoomClosed:
        registry.release(room, now)
        raise
    return Admission(
        room=room,
        occurrence_id=occurrence.id,
        person_id=person.id,
        unit_id=person.unit_id,
        name=person.name,
        role=RoomRole.MODERATOR if moderator else RoomRole.PARTICIPANT,
        invited=invited,
    )


async def _seated(db: AsyncSession, room: Room, participant: Participant, now: datetime) -> None:
    await attendance.record_join(
        db,
        room.occurrence_id,
        participant.person_id,
        participant.unit_id,
        now,
        merge_seconds=room.rules.reconnect_seconds,
    )
    occurrence = await db.get(Occurrence, room.occurrence_id)
    if occurrence is not None and occurrence.state in {OccurrenceState.PLANNED, OccurrenceState.OPEN}:
        occurrence.state = OccurrenceState.IN_PROGRESS
        await db.flush()
    if occurrence is not None:
        await _open_minutes(db, occurrence)


async def _open_minutes(db: AsyncSession, occurrence: Occurrence) -> None:
    """The room opens the meeting's minutes (first seat); a failure is logged, never refuses the seat.

    A SAVEPOINT keeps the attendance just flushed when the minutes cannot be created. The seat
    has flushed a row already, so the outer transaction has begun (SQLite too).
    """
    try:
        if await minutes.minutes_of(db, occurrence.id) is not None:
            return
        async with db.begin_nested():
            await minutes.ensure_minutes(db, occurrence)
    except Exception:
        log.exception("minutes not created on seating", extra={"occurrence": occurrence.id})


async def _close_minutes(db: AsyncSession, occurrence_id: int, now: datetime) -> None:
    """The meeting ended: its minutes' attendance becomes final (a failure is logged, never
    stops the end; a SAVEPOINT keeps the attendance just closed)."""
    try:
        found = await minutes.minutes_of(db, occurrence_id)
        if found is None or found.status not in minutes.EDITABLE:
            return
        async with db.begin_nested():
            await minutes_attendance.freeze(db, found, now)
    except Exception:
        log.exception("minutes attendance not frozen at the end", extra={"occurrence": occurrence_id})


async def join(db: AsyncSession, admission: Admission, participant: Participant, now: datetime) -> JoinResult:
    """Seat the admitted person's connection (or put it in the lobby); a seat counts as attendance."""
    result = await admission.room.join(participant, invited=admission.invited, now=now)
    if result.placement is Placement.SEATED:
        await _seated(db, admission.room, participant, now)
    return result


async def leave(
    db: AsyncSession,
    registry: RoomRegistry,
    room: Room,
    participant: Participant,
    now: datetime,
    summary: ConnectionQuality | None = None,
) -> Placement | None:
    """A connection ended (call it for every connection, whatever the cause; stale ones are ignored)."""
    if summary is None and room.participant(participant.person_id) is participant:
        state = room.state_of(participant.person_id)
        summary = state.quality if state is not None else None
    where = await room.leave(participant, now)
    if where is Placement.SEATED:
        await attendance.record_leave(db, room.occurrence_id, participant.person_id, now, summary)
    registry.release(room, now)
    return where


async def admit_waiting(
    db: AsyncSession, room: Room, actor: Participant, person_id: int, now: datetime
) -> Participant:
    """A moderator lets someone in from the lobby; their attendance starts."""
    participant = await room.admit(actor, person_id, now)
    await _seated(db, room, participant, now)
    return participant


async def remove(
    db: AsyncSession, room: Room, actor: Participant, person_id: int, now: datetime
) -> Participant:
    """A moderator removes someone; their attendance stops."""
    participant, state = await room.remove(actor, person_id)
    await attendance.record_leave(db, room.occurrence_id, person_id, now, state.quality)
    return participant


async def _record_ended(
    db: AsyncSession,
    room: Room,
    seated: list[tuple[Participant, ParticipantState]],
    now: datetime,
    *,
    by_chair: bool,
) -> None:
    for participant, state in seated:
        await attendance.record_leave(db, room.occurrence_id, participant.person_id, now, state.quality)
    await attendance.close_open(db, room.occurrence_id, now)
    occurrence = await db.get(Occurrence, room.occurrence_id)
    if occurrence is not None and occurrence.state is not OccurrenceState.CANCELLED:
        occurrence.state = OccurrenceState.ENDED
    await db.flush()
    # Ended by the sweep, the meeting ended at its planned end (the sweep runs a little later).
    ended = now if by_chair or occurrence is None else min(now, occurrence.end)
    await _close_minutes(db, room.occurrence_id, ended)


async def end(
    db: AsyncSession, registry: RoomRegistry, room: Room, actor: Participant, now: datetime
) -> None:
    """A moderator ends the meeting for everyone: attendance closed, the occurrence ended."""
    seated = await room.end(actor, now)
    await _record_ended(db, room, seated, now, by_chair=True)
    person = await db.get(Person, actor.person_id)
    await audit.record(
        db,
        actor_id=actor.person_id,
        actor_email=person.email if person is not None else "",
        action=END_ACTION,
        target_type="occurrence",
        target_id=room.occurrence_id,
        details={"seated": len(seated)},
    )
    # The audit entry tells admit() the chair ended it, should this node restart.
    registry.release(room, now)


async def sweep(db: AsyncSession, registry: RoomRegistry, now: datetime) -> int:
    """End rooms whose time is over (closing attendance) and forget empty ones; returns rooms ended."""
    ended = await registry.sweep(now)
    for room, seated in ended:
        await _record_ended(db, room, seated, now, by_chair=False)
    return len(ended)
