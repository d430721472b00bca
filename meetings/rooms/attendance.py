"""Attendance: every join, leave and reconnect, merged into one record per person and meeting."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from meetings.directory.models import Person, Unit, UnitKind
from meetings.rooms.models import Attendance, AttendanceEvent, AttendanceEventKind
from meetings.rooms.participant import ConnectionQuality
from meetings.schedule.service import get_occurrence, get_series, invitees_of

LATE_AFTER = timedelta(minutes=5)
# Leaving more than this before the meeting ended (and not coming back) is leaving early.
LEFT_EARLY_BEFORE = timedelta(minutes=5)
MERGE_SECONDS = 120


@dataclass(frozen=True)
class Presence:
    """Someone who attended, with their merged record."""

    person: Person
    attendance: Attendance


class UnitAttendance(NamedTuple):
    """One unit's people at one meeting: on time, late (more than 5 minutes), absent."""

    unit: Unit | None
    present: list[Presence]
    late: list[Presence]
    absent: list[Person]


def is_late(record: Attendance, start: datetime) -> bool:
    """Whether the person first arrived more than 5 minutes after the start."""
    return record.first_joined_at > start + LATE_AFTER


def left_early(record: Attendance, ended_at: datetime | None) -> bool:
    """Whether the person left and did not come back: before the end (more than 5 minutes
    before it), or, while the meeting goes on, is not in it now."""
    if record.connected or record.last_left_at is None:
        return False
    return ended_at is None or record.last_left_at < ended_at - LEFT_EARLY_BEFORE


async def _locked_row(db: AsyncSession, occurrence_id: int, person_id: int) -> Attendance | None:
    # FOR UPDATE serialises two connections of one person on PostgreSQL (SQLite locks the file).
    return await db.scalar(
        select(Attendance)
        .where(Attendance.occurrence_id == occurrence_id, Attendance.person_id == person_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )


async def _ensure_row(
    db: AsyncSession, occurrence_id: int, person_id: int, unit_id: int | None, now: datetime
) -> Attendance:
    """The person's record, created if needed; two joins racing create one (ON CONFLICT)."""
    values: dict[str, Any] = {
        "occurrence_id": occurrence_id,
        "person_id": person_id,
        "unit_id": unit_id,
        "first_joined_at": now,
        "last_joined_at": now,
        "connected": False,
        "total_seconds": 0,
        "connections": 0,
    }
    dialect = db.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    await db.execute(
        insert(Attendance)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["occurrence_id", "person_id"])
    )
    row = await _locked_row(db, occurrence_id, person_id)
    assert row is not None
    return row


async def record_join(
    db: AsyncSession,
    occurrence_id: int,
    person_id: int,
    unit_id: int | None,
    now: datetime,
    *,
    merge_seconds: int = MERGE_SECONDS,
) -> Attendance:
    """Record that a person is seated; a reconnect (still connected, or back soon) is merged."""
    row = await _ensure_row(db, occurrence_id, person_id, unit_id, now)
    if row.connections == 0:
        kind = AttendanceEventKind.JOIN
        row.first_joined_at = row.last_joined_at = now
    elif row.connected:
        # A new connection replaced one still open: presence goes on without a break.
        kind = AttendanceEventKind.RECONNECT
    elif row.last_left_at is not None and now - row.last_left_at <= timedelta(seconds=merge_seconds):
        kind = AttendanceEventKind.RECONNECT
        row.last_joined_at = now
    else:
        kind = AttendanceEventKind.JOIN
        row.last_joined_at = now
    row.connected = True
    row.connections += 1
    row.unit_id = unit_id
    db.add(AttendanceEvent(occurrence_id=occurrence_id, person_id=person_id, kind=kind, at=now, summary={}))
    await db.flush()
    return row


async def record_leave(
    db: AsyncSession,
    occurrence_id: int,
    person_id: int,
    now: datetime,
    summary: ConnectionQuality | None = None,
) -> Attendance | None:
    """Record that a person's connection ended; their time in the meeting grows by its length."""
    row = await _locked_row(db, occurrence_id, person_id)
    if row is None or not row.connected:
        return row
    row.total_seconds += max(0, int((now - row.last_joined_at).total_seconds()))
    row.connected = False
    row.last_left_at = now
    if summary is not None:
        row.rtt_ms, row.loss_pct, row.bitrate_kbps = summary.rtt_ms, summary.loss_pct, summary.bitrate_kbps
    db.add(
        AttendanceEvent(
            occurrence_id=occurrence_id,
            person_id=person_id,
            kind=AttendanceEventKind.LEAVE,
            at=now,
            summary=summary.as_dict() if summary is not None else {},
        )
    )
    await db.flush()
    return row


async def close_open(db: AsyncSession, occurrence_id: int, now: datetime) -> int:
    """Record a leave for everyone still marked connected (the meeting ended); returns how many."""
    person_ids = list(
        await db.scalars(
            select(Attendance.person_id).where(
                Attendance.occurrence_id == occurrence_id, Attendance.connected.is_(True)
            )
        )
    )
    for person_id in person_ids:
        await record_leave(db, occurrence_id, person_id, now)
    return len(person_ids)


async def records(db: AsyncSession, occurrence_id: int) -> list[Attendance]:
    """The attendance records of a meeting, first arrived first."""
    return list(
        await db.scalars(
            select(Attendance)
            .where(Attendance.occurrence_id == occurrence_id)
            .order_by(Attendance.first_joined_at, Attendance.id)
        )
    )


async def events(db: AsyncSession, occurrence_id: int, person_id: int | None = None) -> list[AttendanceEvent]:
    """The joins, leaves and reconnects of a meeting (or of one person in it), in order."""
    stmt = select(AttendanceEvent).where(AttendanceEvent.occurrence_id == occurrence_id)
    if person_id is not None:
        stmt = stmt.where(AttendanceEvent.person_id == person_id)
    return list(await db.scalars(stmt.order_by(AttendanceEvent.at, AttendanceEvent.id)))


_KIND_ORDER = {kind: i for i, kind in enumerate(UnitKind)}


async def by_unit(db: AsyncSession, occurrence_id: int) -> list[UnitAttendance]:
    """Each invited unit (and each unit of an uninvited attendee) with who came, late, or not."""
    occurrence = await get_occurrence(db, occurrence_id)
    series = await get_series(db, occurrence.series_id)
    invitees = {p.id: p for p in await invitees_of(db, series)}
    attended = {a.person_id: a for a in await records(db, occurrence_id)}
    others = set(attended) - set(invitees)
    people = dict(invitees)
    if others:
        people.update({p.id: p for p in await db.scalars(select(Person).where(Person.id.in_(others)))})
    groups: dict[int | None, UnitAttendance] = {}
    for person in sorted(people.values(), key=lambda p: (p.name, p.id)):
        record = attended.get(person.id)
        # An attendee counts for the unit they were in at the meeting.
        unit_id = record.unit_id if record is not None else person.unit_id
        group = groups.setdefault(unit_id, UnitAttendance(None, [], [], []))
        if record is None:
            group.absent.append(person)
        elif is_late(record, occurrence.start):
            group.late.append(Presence(person, record))
        else:
            group.present.append(Presence(person, record))
    unit_ids = [uid for uid in groups if uid is not None]
    units = {u.id: u for u in await db.scalars(select(Unit).where(Unit.id.in_(unit_ids)))} if unit_ids else {}
    result = [
        group._replace(unit=units.get(uid) if uid is not None else None) for uid, group in groups.items()
    ]
    return sorted(
        result,
        key=lambda g: (0, _KIND_ORDER[g.unit.kind], g.unit.name) if g.unit is not None else (1, 0, ""),
    )
