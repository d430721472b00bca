"""The attendance of minutes, derived from the room's records (one source of truth).

Until the meeting ends the minutes follow the room's records live (present, late, left early,
absent per person, grouped by unit). When the room ends the meeting, the records are frozen
into the minutes (`freeze`). The secretary then corrects single people (an excused absence,
someone who followed by phone): each correction is a row with its reason, kept as history,
and the latest one of a person overrides the room's record in these minutes. `differences`
tells where the minutes disagree with the room's records; submitting and approving warn on it.

Every function takes a session and plain values and raises domain errors; the caller commits.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from meetings.accounts.permissions import Actor
from meetings.db.base import utcnow
from meetings.errors import N_, Conflict, FieldError, InvalidInput
from meetings.minutes.models import AttendanceCorrection, Minutes
from meetings.rooms import attendance
from meetings.schedule.models import Occurrence, OccurrenceState, Series
from meetings.schedule.service import get_occurrence, get_series, invited_units
from meetings.text import normalize

# The states of a person in minutes, in the order they are shown.
STATES = ("present", "late", "left_early", "absent", "excused")
STATE_LABELS = {
    "present": N_("On time"),
    "late": N_("Late"),
    "left_early": N_("Left early"),
    "absent": N_("Absent"),
    "excused": N_("Excused"),
}
MAX_REASON = 500
# Header keys kept for the minutes' own use, not part of their content.
ROOM_KEY = "attendance_room"
FINAL_KEY = "attendance_final_at"


@dataclass(frozen=True)
class PersonState:
    """One person's attendance as the room recorded it (or as corrected)."""

    person_id: int
    name: str
    unit_code: str
    unit_name: str
    state: str
    reason: str = ""


@dataclass(frozen=True)
class Difference:
    """Where the minutes disagree with the room's records."""

    person_id: int
    name: str
    unit_code: str
    unit_name: str
    minutes: str  # the state the minutes say
    room: str  # the state the room recorded
    reason: str


class AttendanceDisagrees(Conflict):
    """Submitting or approving minutes whose attendance differs from the room's records."""

    def __init__(self, differences: list[Difference]) -> None:
        super().__init__(N_("The attendance in the minutes differs from the room's records."))
        self.differences = differences


def ended_at(minutes: Minutes, occurrence: Occurrence) -> datetime | None:
    """When the meeting ended for the attendance (frozen by the room), None while it goes on."""
    final = minutes.header.get(FINAL_KEY)
    if isinstance(final, str) and final:
        return datetime.fromisoformat(final)
    if occurrence.state is OccurrenceState.ENDED:
        return occurrence.end
    return None


async def room_states(db: AsyncSession, occurrence: Occurrence, end: datetime | None) -> list[PersonState]:
    """Every invitee and attendee with the state the room's records give them, by unit."""
    found: list[PersonState] = []
    for group in await attendance.by_unit(db, occurrence.id):
        code, name = (group.unit.code, group.unit.name) if group.unit else ("", "")
        for p in group.present:
            state = "left_early" if attendance.left_early(p.attendance, end) else "present"
            found.append(PersonState(p.person.id, p.person.name, code, name, state))
        for p in group.late:
            found.append(PersonState(p.person.id, p.person.name, code, name, "late"))
        for person in group.absent:
            found.append(PersonState(person.id, person.name, code, name, "absent"))
    return found


async def _base(db: AsyncSession, minutes: Minutes, occurrence: Occurrence) -> list[PersonState]:
    """What the room says for these minutes: frozen at the end, live before."""
    frozen = minutes.header.get(ROOM_KEY)
    if isinstance(frozen, list):
        return [PersonState(**row) for row in frozen]
    return await room_states(db, occurrence, ended_at(minutes, occurrence))


async def corrections(db: AsyncSession, minutes_id: int) -> list[AttendanceCorrection]:
    """Every correction of these minutes' attendance, oldest first (the history)."""
    return list(
        await db.scalars(
            select(AttendanceCorrection)
            .where(AttendanceCorrection.minutes_id == minutes_id)
            .order_by(AttendanceCorrection.id)
        )
    )


def _apply(base: list[PersonState], fixes: list[AttendanceCorrection]) -> list[PersonState]:
    latest = {c.person_id: c for c in fixes}  # oldest first: the last one wins
    out = []
    for p in base:
        fix = latest.get(p.person_id)
        if fix is not None and fix.state:
            p = PersonState(p.person_id, p.name, p.unit_code, p.unit_name, fix.state, fix.reason)
        out.append(p)
    return out


async def people(db: AsyncSession, minutes: Minutes) -> list[PersonState]:
    """Each person as the minutes say: the room's record, or the secretary's correction."""
    occurrence = await get_occurrence(db, minutes.occurrence_id)
    return _apply(await _base(db, minutes, occurrence), await corrections(db, minutes.id))


async def unit_rows(db: AsyncSession, states: list[PersonState], series: Series) -> list[dict[str, Any]]:
    """The header's attendance: one row per unit with the names in each state (and reasons)."""
    rows: dict[str, dict[str, Any]] = {}
    for p in states:
        row = rows.setdefault(
            p.unit_code,
            {"unit_code": p.unit_code, "unit_name": p.unit_name, **{s: [] for s in STATES}, "reasons": {}},
        )
        row[p.state].append(p.name)
        if p.reason:
            row["reasons"][p.name] = p.reason
    # An invited unit with nobody on the list still has a line: the whole unit was missing.
    for unit in await invited_units(db, series):
        if unit.code not in rows:
            rows[unit.code] = {
                "unit_code": unit.code,
                "unit_name": unit.name,
                **{s: [] for s in STATES},
                "reasons": {},
            }
    return list(rows.values())


async def header_rows(db: AsyncSession, minutes: Minutes) -> list[dict[str, Any]]:
    """The attendance the minutes show now."""
    occurrence = await get_occurrence(db, minutes.occurrence_id)
    series = await get_series(db, occurrence.series_id)
    return await unit_rows(db, await people(db, minutes), series)


async def materialise(db: AsyncSession, minutes: Minutes) -> None:
    """Write the attendance the minutes show into their stored header."""
    minutes.header = {**minutes.header, "attendance": await header_rows(db, minutes)}
    await db.flush()


async def freeze(db: AsyncSession, minutes: Minutes, now: datetime) -> None:
    """The meeting ended: the room's records become the minutes' final attendance."""
    if minutes.header.get(ROOM_KEY) is not None:
        return
    occurrence = await get_occurrence(db, minutes.occurrence_id)
    final = await room_states(db, occurrence, now)
    minutes.header = {**minutes.header, ROOM_KEY: [asdict(p) for p in final], FINAL_KEY: now.isoformat()}
    await materialise(db, minutes)


async def differences(db: AsyncSession, minutes: Minutes) -> list[Difference]:
    """Where the minutes' attendance differs from the room's records (an excused absence is an absence)."""
    occurrence = await get_occurrence(db, minutes.occurrence_id)
    room = {p.person_id: p for p in await room_states(db, occurrence, ended_at(minutes, occurrence))}
    shown = await people(db, minutes)
    found = []

    def same(a: str, b: str) -> bool:
        return {a, b} <= {"absent", "excused"} or a == b

    for p in shown:
        recorded = room.pop(p.person_id, None)
        room_state = recorded.state if recorded is not None else "absent"
        if not same(p.state, room_state):
            found.append(
                Difference(p.person_id, p.name, p.unit_code, p.unit_name, p.state, room_state, p.reason)
            )
    for p in room.values():  # seated after the minutes were frozen
        found.append(Difference(p.person_id, p.name, p.unit_code, p.unit_name, "absent", p.state, ""))
    return found


async def correct(
    db: AsyncSession,
    actor: Actor,
    minutes: Minutes,
    person_id: int,
    state: str,
    reason: str,
    *,
    require_reason: bool = True,
    now: datetime | None = None,
) -> AttendanceCorrection | None:
    """Record the secretary's correction of one person ("" = as the room recorded); None if unchanged.

    The caller has checked that the actor may edit these minutes.
    """
    errors: list[FieldError] = []
    if state not in STATES and state != "":
        errors.append(FieldError("state", N_("Choose a state of attendance from the list.")))
    reason = normalize(reason or "")
    if len(reason) > MAX_REASON:
        errors.append(FieldError("reason", N_("Use at most %(n)s characters."), {"n": MAX_REASON}))
    elif require_reason and state and not reason:
        errors.append(FieldError("reason", N_("Give the reason for the correction.")))
    shown = {p.person_id: p for p in await people(db, minutes)}
    current = shown.get(person_id)
    if current is None:
        errors.append(FieldError("person", N_("This person is not on the attendance of this meeting.")))
    if errors:
        raise InvalidInput(errors)
    assert current is not None
    fixes = [c for c in await corrections(db, minutes.id) if c.person_id == person_id]
    overridden = bool(fixes and fixes[-1].state)
    if (state == "" and not overridden) or (state and state == current.state and reason == current.reason):
        return None
    row = AttendanceCorrection(
        minutes_id=minutes.id,
        person_id=person_id,
        person_name=current.name,
        unit_code=current.unit_code,
        before=current.state,
        state=state,
        reason=reason,
        version_no=minutes.version_no,
        actor_id=actor.id or None,
        actor_name=actor.name,
        at=now or utcnow(),
    )
    db.add(row)
    await db.flush()
    await materialise(db, minutes)
    return row


async def correct_by_names(
    db: AsyncSession, actor: Actor, minutes: Minutes, rows: dict[str, dict[str, list[str]]], reason: str
) -> int:
    """The header table: names moved between states of a unit become corrections; returns how many."""
    shown = await people(db, minutes)
    errors: list[FieldError] = []
    changes: dict[int, str] = {}
    for code, states in rows.items():
        in_unit = {normalize(p.name).casefold(): p for p in shown if p.unit_code == code}
        for state, names in states.items():
            for name in names:
                person = in_unit.get(normalize(name).casefold())
                if person is None:
                    errors.append(
                        FieldError(
                            "attendance",
                            N_("Nobody named %(name)s is on the attendance of %(code)s."),
                            {"name": name[:200], "code": code},
                        )
                    )
                elif person.state != state:
                    changes[person.person_id] = state
    if errors:
        raise InvalidInput(errors)
    done = 0
    for person_id, state in changes.items():
        done += int(
            await correct(db, actor, minutes, person_id, state, reason, require_reason=False) is not None
        )
    return done


def difference_data(d: Difference) -> dict[str, Any]:
    """A difference as plain data."""
    return asdict(d)


def correction_data(c: AttendanceCorrection) -> dict[str, Any]:
    """One correction (a history line) as plain data."""
    return {
        "id": c.id,
        "person_id": c.person_id,
        "name": c.person_name,
        "unit_code": c.unit_code,
        "before": c.before,
        "state": c.state,
        "reason": c.reason,
        "version": c.version_no,
        "by": c.actor_name,
        "at": c.at.isoformat(),
    }
