"""Scheduling: series, occurrences, the working-day calendar and answers (domain functions)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from meetings import audit
from meetings.accounts.permissions import Actor, Permission, allowed
from meetings.db.base import utcnow
from meetings.directory.models import Person, Unit
from meetings.directory.service import check_email, require
from meetings.errors import N_, Conflict, FieldError, Forbidden, InvalidInput, NotFound
from meetings.schedule import invitations
from meetings.schedule.errors import ScheduleError
from meetings.schedule.links import AnswerLink
from meetings.schedule.models import (
    Answer,
    AnswerStatus,
    CalendarDay,
    DayKind,
    Occurrence,
    OccurrenceState,
    Series,
    SeriesInvitee,
    SeriesKind,
    SeriesStatus,
)
from meetings.schedule.recurrence import SeriesRule, check_move, expand, zone_of
from meetings.schedule.workdays import WEEKDAY_NAMES, WorkingCalendar
from meetings.text import normalize

MAX_DURATION = 12 * 60


@dataclass(frozen=True)
class Context:
    """What scheduling needs from the running service: links, organiser, clock, horizon."""

    base_url: str
    secret: str
    organizer_email: str
    organizer_name: str
    horizon_days: int = 60
    now: datetime = field(default_factory=utcnow)


@dataclass(frozen=True)
class SeriesInput:
    """A series as typed in a form or sent as JSON (strings, checked here)."""

    title: str
    kind: str = "morning"
    start_time: str = "07:30"
    duration_minutes: str = "45"
    weekdays: Sequence[str] = ("MO", "TU", "WE", "TH", "FR")
    start_date: str = ""
    end_date: str = ""
    timezone: str = "Asia/Ho_Chi_Minh"
    chair_email: str = ""
    secretary_email: str = ""
    reminder_minutes: str = "15"
    description: str = ""
    unit_codes: Sequence[str] = ()
    person_emails: Sequence[str] = ()


class AlwaysWorking(WorkingCalendar):
    """The calendar of an ad hoc meeting: an incident does not wait for Monday."""

    def is_working_day(self, d: date) -> bool:
        return True


# --- reading -----------------------------------------------------------------------------


async def working_calendar(db: AsyncSession) -> WorkingCalendar:
    """Vietnamese holidays plus the administrator's days off and make-up days."""
    rows = list(await db.scalars(select(CalendarDay)))
    return WorkingCalendar(
        days_off={r.day: r.name for r in rows if r.kind == DayKind.DAY_OFF},
        makeup_days={r.day: r.name for r in rows if r.kind == DayKind.MAKEUP},
    )


def calendar_for(series: Series, calendar: WorkingCalendar) -> WorkingCalendar:
    """The calendar a series follows (ad hoc meetings ignore holidays)."""
    return AlwaysWorking(weekdays=frozenset(WEEKDAY_NAMES)) if series.kind == SeriesKind.ADHOC else calendar


def rule_of(series: Series) -> SeriesRule:
    """The recurrence rule of a series."""
    return SeriesRule(
        start_date=series.start_date,
        until=series.end_date,
        start_time=series.start_time,
        duration=timedelta(minutes=series.duration_minutes),
        weekdays=series.weekday_names,
        tz=series.timezone,
    )


async def get_series(db: AsyncSession, series_id: int) -> Series:
    """The series with this id."""
    series = await db.get(Series, series_id)
    if series is None:
        raise NotFound(N_("This meeting series does not exist."))
    return series


async def get_occurrence(db: AsyncSession, occurrence_id: int) -> Occurrence:
    """The occurrence with this id."""
    occ = await db.get(Occurrence, occurrence_id)
    if occ is None:
        raise NotFound(N_("This meeting does not exist."))
    return occ


async def list_series(db: AsyncSession, *, include_cancelled: bool = False) -> list[Series]:
    """Every series, morning first."""
    stmt = select(Series).order_by(Series.kind, Series.start_time, Series.id)
    if not include_cancelled:
        stmt = stmt.where(Series.status == SeriesStatus.ACTIVE)
    return list(await db.scalars(stmt))


async def occurrences_between(
    db: AsyncSession, start: datetime, end: datetime, *, series_ids: Sequence[int] | None = None
) -> list[tuple[Occurrence, Series]]:
    """Occurrences starting in [start, end), with their series, by start time."""
    stmt = (
        select(Occurrence, Series)
        .join(Series, Occurrence.series_id == Series.id)
        .where(Occurrence.start >= start, Occurrence.start < end)
        .order_by(Occurrence.start, Occurrence.id)
    )
    if series_ids is not None:
        stmt = stmt.where(Occurrence.series_id.in_(series_ids))
    return [(o, s) for o, s in (await db.execute(stmt)).all()]


async def check_read(db: AsyncSession, person: Person, series: Series) -> None:
    """Who may see a series and its meetings: organisers all of them, everyone else the series
    they are invited to (the minutes' read rule, `meetings.minutes.service.check_read`, builds on it)."""
    if allowed(person.role, Permission.SCHEDULE_MANAGE):
        return
    if series.id not in await series_of_person(db, person):
        raise Forbidden(N_("You may not open this page."))


async def series_of_person(db: AsyncSession, person: Person) -> list[int]:
    """Ids of the active series a person is invited to (directly, through the unit, or as chair)."""
    rows = await db.execute(
        select(
            Series.id, SeriesInvitee.unit_id, SeriesInvitee.person_id, Series.chair_id, Series.secretary_id
        )
        .join(SeriesInvitee, SeriesInvitee.series_id == Series.id, isouter=True)
        .where(Series.status == SeriesStatus.ACTIVE)
    )
    ids: set[int] = set()
    for sid, unit_id, person_id, chair_id, secretary_id in rows:
        if person.id in {person_id, chair_id, secretary_id} or (unit_id and unit_id == person.unit_id):
            ids.add(sid)
    return sorted(ids)


async def invitees_of(db: AsyncSession, series: Series) -> list[Person]:
    """The active people a series invites: its units' people, its people, chair and secretary."""
    targets = list(await db.scalars(select(SeriesInvitee).where(SeriesInvitee.series_id == series.id)))
    unit_ids = [t.unit_id for t in targets if t.unit_id]
    person_ids = {t.person_id for t in targets if t.person_id}
    person_ids |= {pid for pid in (series.chair_id, series.secretary_id) if pid}
    people: dict[int, Person] = {}
    if unit_ids:
        for p in await db.scalars(
            select(Person).where(Person.unit_id.in_(unit_ids), Person.active.is_(True))
        ):
            people[p.id] = p
    if person_ids:
        for p in await db.scalars(select(Person).where(Person.id.in_(person_ids), Person.active.is_(True))):
            people[p.id] = p
    organizer = series.organizer_email.casefold()
    return sorted(
        (p for p in people.values() if p.email.casefold() != organizer),
        key=lambda p: (p.unit_id or 0, p.name),
    )


async def invited_units(db: AsyncSession, series: Series) -> list[Unit]:
    """The units a series invites."""
    return list(
        await db.scalars(
            select(Unit)
            .join(SeriesInvitee, SeriesInvitee.unit_id == Unit.id)
            .where(SeriesInvitee.series_id == series.id)
            .order_by(Unit.code)
        )
    )


# --- validation --------------------------------------------------------------------------


def _parse_date(raw: str, name: str, errors: list[FieldError], required: bool) -> date | None:
    text = raw.strip()
    if not text:
        if required:
            errors.append(FieldError(name, N_("This field is required.")))
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        errors.append(FieldError(name, N_("Write the date as YYYY-MM-DD.")))
        return None


def _parse_int(raw: str, name: str, errors: list[FieldError], low: int, high: int) -> int:
    try:
        value = int(str(raw).strip())
    except ValueError:
        errors.append(FieldError(name, N_("Write a whole number.")))
        return low
    if not low <= value <= high:
        errors.append(
            FieldError(name, N_("Use a number from %(low)s to %(high)s."), {"low": low, "high": high})
        )
    return value


def _parse_time(raw: str, name: str, errors: list[FieldError]) -> time:
    try:
        parsed = time.fromisoformat(raw.strip())
    except ValueError:
        errors.append(FieldError(name, N_("Write the time as HH:MM.")))
        return time(0, 0)
    return parsed.replace(second=0, microsecond=0, tzinfo=None)


def _schedule_error(exc: ScheduleError, name: str) -> FieldError:
    return FieldError(name, exc.message_id, dict(exc.params))


@dataclass
class _Clean:
    title: str
    kind: SeriesKind
    start_time: time
    duration: int
    weekdays: tuple[str, ...]
    start_date: date
    end_date: date | None
    timezone: str
    chair: Person | None
    secretary: Person | None
    reminder: int
    description: str
    units: list[Unit]
    people: list[Person]


async def _validate(db: AsyncSession, data: SeriesInput, ctx: Context, *, adhoc: bool = False) -> _Clean:
    errors: list[FieldError] = []
    title = normalize(data.title)
    if not title:
        errors.append(FieldError("title", N_("This field is required.")))
    elif len(title) > 200:
        errors.append(FieldError("title", N_("Use at most %(n)s characters."), {"n": 200}))
    kind_raw = "adhoc" if adhoc else data.kind.strip()
    if kind_raw not in {k.value for k in SeriesKind}:
        errors.append(FieldError("kind", N_("Choose morning, afternoon or ad hoc.")))
        kind_raw = "morning"
    start_time = _parse_time(data.start_time, "start_time", errors)
    duration = _parse_int(data.duration_minutes, "duration_minutes", errors, 5, MAX_DURATION)
    reminder = _parse_int(data.reminder_minutes or "15", "reminder_minutes", errors, 0, 24 * 60)
    weekdays = tuple(w for w in WEEKDAY_NAMES if w in {x.strip().upper() for x in data.weekdays})
    unknown = {x.strip().upper() for x in data.weekdays} - set(WEEKDAY_NAMES)
    if unknown:
        errors.append(
            FieldError("weekdays", N_("Unknown weekday: %(names)s."), {"names": ", ".join(sorted(unknown))})
        )
    start_date = _parse_date(data.start_date, "start_date", errors, required=True)
    end_date = _parse_date(data.end_date, "end_date", errors, required=False)
    if adhoc and start_date is not None:
        end_date = start_date
        weekdays = (WEEKDAY_NAMES[start_date.weekday()],)
    elif not weekdays:
        errors.append(FieldError("weekdays", N_("Choose at least one weekday for the series.")))
    tz_name = data.timezone.strip() or "Asia/Ho_Chi_Minh"
    try:
        zone_of(tz_name)
    except ScheduleError as exc:
        errors.append(_schedule_error(exc, "timezone"))
    if start_date and end_date and end_date < start_date:
        errors.append(FieldError("end_date", N_("The series cannot end before it starts.")))
    chair = await _person_by_email(db, data.chair_email, "chair_email", errors)
    secretary = await _person_by_email(db, data.secretary_email, "secretary_email", errors)
    codes = sorted({c.strip().upper() for c in data.unit_codes if c.strip()})
    units = list(await db.scalars(select(Unit).where(Unit.code.in_(codes)))) if codes else []
    missing = set(codes) - {u.code for u in units}
    if missing:
        errors.append(
            FieldError("unit_codes", N_("Unknown unit %(code)s."), {"code": ", ".join(sorted(missing))})
        )
    people: list[Person] = []
    for raw in data.person_emails:
        person = await _person_by_email(db, raw, "person_emails", errors)
        if person is not None:
            people.append(person)
    if not units and not people and not errors:
        errors.append(FieldError("unit_codes", N_("Invite at least one unit or person.")))
    description = data.description.strip()
    if len(description) > 5000:
        errors.append(FieldError("description", N_("Use at most %(n)s characters."), {"n": 5000}))
    if not errors and start_date is not None:
        zone = zone_of(tz_name)
        first_start = datetime.combine(start_date, start_time, tzinfo=zone)
        if adhoc and first_start + timedelta(minutes=1) < ctx.now:
            errors.append(FieldError("start_time", N_("An ad hoc meeting cannot start in the past.")))
        if not adhoc and end_date is not None and end_date < ctx.now.astimezone(zone).date():
            errors.append(FieldError("end_date", N_("The series would have ended already.")))
    if errors:
        raise InvalidInput(errors)
    assert start_date is not None
    return _Clean(
        title=title,
        kind=SeriesKind(kind_raw),
        start_time=start_time,
        duration=duration,
        weekdays=weekdays,
        start_date=start_date,
        end_date=end_date,
        timezone=tz_name,
        chair=chair,
        secretary=secretary,
        reminder=reminder,
        description=description,
        units=units,
        people=people,
    )


async def _person_by_email(db: AsyncSession, raw: str, name: str, errors: list[FieldError]) -> Person | None:
    if not raw.strip():
        return None
    email, problems = check_email(raw, name)
    if problems:
        errors.extend(problems)
        return None
    person = await db.scalar(select(Person).where(Person.email == email))
    if person is None or not person.active:
        errors.append(FieldError(name, N_("Nobody active has the email %(email)s."), {"email": email}))
        return None
    return person


def _apply(series: Series, clean: _Clean) -> None:
    series.title = clean.title
    series.kind = clean.kind
    series.start_time = clean.start_time
    series.duration_minutes = clean.duration
    series.weekdays = ",".join(clean.weekdays)
    series.start_date = clean.start_date
    series.end_date = clean.end_date
    series.timezone = clean.timezone
    series.chair_id = clean.chair.id if clean.chair else None
    series.secretary_id = clean.secretary.id if clean.secretary else None
    series.reminder_minutes = clean.reminder
    series.description = clean.description


async def _set_invitees(db: AsyncSession, series: Series, clean: _Clean) -> None:
    await db.execute(delete(SeriesInvitee).where(SeriesInvitee.series_id == series.id))
    for unit in clean.units:
        db.add(SeriesInvitee(series_id=series.id, unit_id=unit.id))
    for person in clean.people:
        db.add(SeriesInvitee(series_id=series.id, person_id=person.id))
    await db.flush()


# --- occurrences ---------------------------------------------------------------------------


async def materialise(
    db: AsyncSession, series: Series, calendar: WorkingCalendar, ctx: Context
) -> list[Occurrence]:
    """Create the occurrences of the next horizon_days that do not exist yet; return all in window.

    Future occurrences that the rule no longer produces (a new day off, a changed weekday set)
    are cancelled, never deleted, so that links and records that point at them stay valid.
    """
    if series.status != SeriesStatus.ACTIVE:
        return []
    zone = ZoneInfo(series.timezone)
    today = ctx.now.astimezone(zone).date()
    window_end = today + timedelta(days=ctx.horizon_days)
    rule = rule_of(series)
    cal = calendar_for(series, calendar)
    existing = {
        o.original_start: o
        for o in await db.scalars(select(Occurrence).where(Occurrence.series_id == series.id))
    }
    moved = {o.original_start: o.start for o in existing.values() if o.moved}
    cancelled = [o.original_start for o in existing.values() if o.state == OccurrenceState.CANCELLED]
    expected = expand(rule, cal, today, window_end, moved, cancelled)
    result: list[Occurrence] = []
    for item in expected:
        key = item.original_start.astimezone(ZoneInfo("UTC"))
        occ = existing.get(key)
        if occ is None:
            occ = Occurrence(
                series_id=series.id,
                original_start=item.original_start,
                start=item.start,
                end=item.end,
                state=OccurrenceState.PLANNED,
                moved=False,
            )
            db.add(occ)
        elif not occ.moved and occ.state == OccurrenceState.PLANNED:
            occ.start, occ.end = item.start, item.end
        result.append(occ)
    wanted = {i.original_start for i in expected}
    for original, occ in existing.items():
        if occ.start >= ctx.now and occ.state == OccurrenceState.PLANNED and original not in wanted:
            local_day = original.astimezone(zone).date()
            if today <= local_day <= window_end:
                occ.state = OccurrenceState.CANCELLED
    await db.flush()
    return result


async def _rekey_future(db: AsyncSession, series: Series, old_time: time, ctx: Context) -> None:
    """After a time change, move future exceptions to the new planned start of their day."""
    zone = ZoneInfo(series.timezone)
    future = list(
        await db.scalars(
            select(Occurrence).where(Occurrence.series_id == series.id, Occurrence.original_start >= ctx.now)
        )
    )
    for occ in future:
        day = occ.original_start.astimezone(zone).date()
        new_original = datetime.combine(day, series.start_time, tzinfo=zone)
        if occ.moved or occ.state == OccurrenceState.CANCELLED:
            occ.original_start = new_original
        else:
            await db.delete(occ)
    await db.flush()
    del old_time


# --- commands ------------------------------------------------------------------------------


async def create_series(db: AsyncSession, actor: Actor, data: SeriesInput, ctx: Context) -> Series:
    """Create a series, materialise its occurrences and queue one invitation per invitee."""
    require(actor, Permission.SCHEDULE_MANAGE)
    clean = await _validate(db, data, ctx, adhoc=data.kind == "adhoc")
    series = Series(
        uid=f"{uuid.uuid4()}@giaoban",
        organizer_email=ctx.organizer_email,
        organizer_name=ctx.organizer_name,
        sequence=0,
        status=SeriesStatus.ACTIVE,
    )
    _apply(series, clean)
    db.add(series)
    await db.flush()
    await _set_invitees(db, series, clean)
    calendar = await working_calendar(db)
    await materialise(db, series, calendar, ctx)
    await invitations.send_series(db, series, calendar, ctx, kind="invitation")
    await audit.record(
        db,
        actor_id=actor.id,
        actor_email=actor.email,
        action="series.create",
        target_type="series",
        target_id=series.id,
        details={"title": series.title, "kind": series.kind.value},
    )
    return series


async def create_adhoc(db: AsyncSession, actor: Actor, data: SeriesInput, ctx: Context) -> Series:
    """An ad hoc meeting, now or later: one occurrence, invitations sent at once."""
    return await create_series(db, actor, SeriesInput(**{**data.__dict__, "kind": "adhoc"}), ctx)


async def update_series(
    db: AsyncSession, actor: Actor, series_id: int, data: SeriesInput, ctx: Context
) -> Series:
    """Change a series (time, days, invitees…); SEQUENCE grows and everyone gets the update."""
    require(actor, Permission.SCHEDULE_MANAGE)
    series = await get_series(db, series_id)
    if series.status != SeriesStatus.ACTIVE:
        raise Conflict(N_("This series is cancelled and can no longer be changed."))
    before_people = {p.id: p for p in await invitees_of(db, series)}
    old_time = series.start_time
    clean = await _validate(
        db,
        SeriesInput(**{**data.__dict__, "kind": series.kind.value}),
        ctx,
        adhoc=series.kind == SeriesKind.ADHOC,
    )
    _apply(series, clean)
    series.sequence += 1
    await _set_invitees(db, series, clean)
    if series.start_time != old_time or series.kind == SeriesKind.ADHOC:
        await _rekey_future(db, series, old_time, ctx)
    calendar = await working_calendar(db)
    await materialise(db, series, calendar, ctx)
    after = {p.id for p in await invitees_of(db, series)}
    removed = [p for pid, p in before_people.items() if pid not in after]
    await invitations.send_series(db, series, calendar, ctx, kind="update")
    if removed:
        await invitations.send_series_cancel(db, series, calendar, ctx, recipients=removed)
    await audit.record(
        db,
        actor_id=actor.id,
        actor_email=actor.email,
        action="series.update",
        target_type="series",
        target_id=series.id,
        details={"sequence": series.sequence},
    )
    return series


async def cancel_series(db: AsyncSession, actor: Actor, series_id: int, ctx: Context) -> Series:
    """Cancel the rest of a series: future meetings cancelled, a CANCEL of the UID to everyone."""
    require(actor, Permission.SCHEDULE_MANAGE)
    series = await get_series(db, series_id)
    if series.status == SeriesStatus.CANCELLED:
        raise Conflict(N_("This series is already cancelled."))
    series.status = SeriesStatus.CANCELLED
    series.sequence += 1
    for occ in await db.scalars(
        select(Occurrence).where(
            Occurrence.series_id == series.id,
            Occurrence.start >= ctx.now,
            Occurrence.state == OccurrenceState.PLANNED,
        )
    ):
        occ.state = OccurrenceState.CANCELLED
    calendar = await working_calendar(db)
    await invitations.send_series_cancel(db, series, calendar, ctx)
    await audit.record(
        db,
        actor_id=actor.id,
        actor_email=actor.email,
        action="series.cancel",
        target_type="series",
        target_id=series.id,
        details={"sequence": series.sequence},
    )
    return series


async def move_occurrence(
    db: AsyncSession, actor: Actor, occurrence_id: int, new_start_local: datetime, ctx: Context
) -> Occurrence:
    """Move one meeting; the series SEQUENCE grows and invitees get a REQUEST with RECURRENCE-ID."""
    require(actor, Permission.SCHEDULE_MANAGE)
    occ = await get_occurrence(db, occurrence_id)
    series = await get_series(db, occ.series_id)
    if occ.state == OccurrenceState.CANCELLED or series.status == SeriesStatus.CANCELLED:
        raise Conflict(N_("A cancelled meeting cannot be changed."))
    if occ.state != OccurrenceState.PLANNED:
        raise Conflict(N_("This meeting has already started and cannot be moved."))
    zone = ZoneInfo(series.timezone)
    new_start = new_start_local.replace(tzinfo=zone) if new_start_local.tzinfo is None else new_start_local
    calendar = await working_calendar(db)
    try:
        check_move(rule_of(series), calendar_for(series, calendar), occ.original_start, new_start, ctx.now)
    except ScheduleError as exc:
        raise InvalidInput([_schedule_error(exc, "start")]) from exc
    clash = await db.scalar(
        select(Occurrence.id).where(
            Occurrence.series_id == series.id,
            Occurrence.id != occ.id,
            Occurrence.state != OccurrenceState.CANCELLED,
            Occurrence.start < new_start + (occ.end - occ.start),
            Occurrence.end > new_start,
        )
    )
    if clash:
        raise InvalidInput([FieldError("start", N_("Another meeting of this series is at that time."))])
    previous = occ.start
    duration = occ.end - occ.start
    occ.start = new_start
    occ.end = new_start + duration
    occ.moved = new_start != occ.original_start
    series.sequence += 1
    await db.flush()
    await invitations.send_series(
        db, series, calendar, ctx, kind="moved", occurrence=occ, moved_from=previous
    )
    await audit.record(
        db,
        actor_id=actor.id,
        actor_email=actor.email,
        action="occurrence.move",
        target_type="occurrence",
        target_id=occ.id,
        details={"from": previous.isoformat(), "to": new_start.isoformat()},
    )
    return occ


async def cancel_occurrence(db: AsyncSession, actor: Actor, occurrence_id: int, ctx: Context) -> Occurrence:
    """Cancel one meeting: a CANCEL with RECURRENCE-ID; later updates carry it as an EXDATE."""
    require(actor, Permission.SCHEDULE_MANAGE)
    occ = await get_occurrence(db, occurrence_id)
    series = await get_series(db, occ.series_id)
    if occ.state == OccurrenceState.CANCELLED:
        raise Conflict(N_("A cancelled meeting cannot be changed."))
    if occ.state in {OccurrenceState.IN_PROGRESS, OccurrenceState.ENDED}:
        raise Conflict(N_("This meeting has already started and cannot be cancelled."))
    occ.state = OccurrenceState.CANCELLED
    series.sequence += 1
    await db.flush()
    calendar = await working_calendar(db)
    await invitations.send_occurrence_cancel(db, series, occ, calendar, ctx)
    await audit.record(
        db,
        actor_id=actor.id,
        actor_email=actor.email,
        action="occurrence.cancel",
        target_type="occurrence",
        target_id=occ.id,
        details={"start": occ.start.isoformat()},
    )
    return occ


async def add_calendar_day(
    db: AsyncSession, actor: Actor, day: str, kind: str, name: str, ctx: Context
) -> CalendarDay:
    """Add a day off or a make-up working day; series it changes are updated and re-sent."""
    require(actor, Permission.CALENDAR_MANAGE)
    errors: list[FieldError] = []
    parsed = _parse_date(day, "day", errors, required=True)
    if kind not in {k.value for k in DayKind}:
        errors.append(FieldError("kind", N_("Choose a day off or a make-up working day.")))
    name = normalize(name)
    if not name:
        errors.append(FieldError("name", N_("This field is required.")))
    elif len(name) > 200:
        errors.append(FieldError("name", N_("Use at most %(n)s characters."), {"n": 200}))
    if parsed and await db.scalar(select(CalendarDay.id).where(CalendarDay.day == parsed)):
        errors.append(FieldError("day", N_("This day is already in the calendar.")))
    if parsed and parsed < ctx.now.date():
        errors.append(FieldError("day", N_("Choose a day that has not passed.")))
    if errors or parsed is None:
        raise InvalidInput(errors)
    row = CalendarDay(day=parsed, kind=DayKind(kind), name=name)
    db.add(row)
    await db.flush()
    await _calendar_changed(db, parsed, ctx)
    await audit.record(
        db,
        actor_id=actor.id,
        actor_email=actor.email,
        action="calendar.add",
        target_type="calendar_day",
        target_id=row.id,
        details={"day": parsed.isoformat(), "kind": kind, "name": name},
    )
    return row


async def remove_calendar_day(db: AsyncSession, actor: Actor, day_id: int, ctx: Context) -> None:
    """Remove an administrator's calendar day; series it changes are updated and re-sent."""
    require(actor, Permission.CALENDAR_MANAGE)
    row = await db.get(CalendarDay, day_id)
    if row is None:
        raise NotFound(N_("This day is not in the calendar."))
    day = row.day
    await db.delete(row)
    await db.flush()
    await _calendar_changed(db, day, ctx)
    await audit.record(
        db,
        actor_id=actor.id,
        actor_email=actor.email,
        action="calendar.remove",
        target_type="calendar_day",
        target_id=day_id,
        details={"day": day.isoformat()},
    )


async def _calendar_changed(db: AsyncSession, day: date, ctx: Context) -> None:
    """Bring every recurring series whose meetings change on that day up to date."""
    calendar = await working_calendar(db)
    for series in await list_series(db):
        if series.kind == SeriesKind.ADHOC:
            continue
        if series.start_date > day or (series.end_date and series.end_date < day):
            continue
        before = {
            o.original_start
            for o in await db.scalars(
                select(Occurrence).where(
                    Occurrence.series_id == series.id, Occurrence.state != OccurrenceState.CANCELLED
                )
            )
        }
        after = {
            o.original_start
            for o in await materialise(db, series, calendar, ctx)
            if o.state != OccurrenceState.CANCELLED
        }
        # The EXDATE/RDATE sets change whenever the day is one of the rule's; re-send then.
        if before != after or WEEKDAY_NAMES[day.weekday()] in series.weekday_names:
            series.sequence += 1
            await invitations.send_series(db, series, calendar, ctx, kind="update")


async def record_answer(db: AsyncSession, link: AnswerLink) -> Answer:
    """Record an invitee's accept or decline; the same link used twice is refused."""
    series = await get_series(db, link.series_id)
    person = await db.get(Person, link.person_id)
    if person is None or not person.active:
        raise NotFound(N_("This person does not exist."))
    key = link.occurrence_id or 0
    existing = await db.scalar(
        select(Answer).where(
            Answer.series_id == series.id, Answer.occurrence_key == key, Answer.person_id == person.id
        )
    )
    if existing is not None and existing.link_nonce == link.nonce:
        raise Conflict(N_("This link has already been used; your answer was recorded."))
    if existing is None:
        existing = Answer(series_id=series.id, occurrence_key=key, person_id=person.id)
        db.add(existing)
    existing.status = AnswerStatus(link.answer)
    existing.link_nonce = link.nonce
    existing.answered_at = utcnow()
    await db.flush()
    return existing


async def answers_by_unit(
    db: AsyncSession, series: Series
) -> list[tuple[Unit | None, list[tuple[Person, AnswerStatus | None]]]]:
    """Each invited unit with its people and their answer to the series (None: no answer yet)."""
    people = await invitees_of(db, series)
    answers = {
        a.person_id: a.status
        for a in await db.scalars(
            select(Answer).where(Answer.series_id == series.id, Answer.occurrence_key == 0)
        )
    }
    unit_ids = {p.unit_id for p in people if p.unit_id}
    units = {u.id: u for u in await db.scalars(select(Unit).where(Unit.id.in_(unit_ids)))} if unit_ids else {}
    grouped: dict[int | None, list[tuple[Person, AnswerStatus | None]]] = {}
    for p in people:
        grouped.setdefault(p.unit_id, []).append((p, answers.get(p.id)))
    return sorted(
        ((units.get(uid) if uid else None, rows) for uid, rows in grouped.items()),
        key=lambda item: (item[0].kind.value if item[0] else "~", item[0].name if item[0] else ""),
    )
