"""Invitations by email: one iMIP message per invitee, with a personal join link, via the outbox."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from babel.dates import get_day_names
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from meetings import i18n
from meetings.directory.models import Person
from meetings.mail.outbox import enqueue, idempotency_key
from meetings.schedule.emails import MailFacts, render
from meetings.schedule.ical import (
    Attendee,
    CalOverride,
    CalSeries,
    occurrence_cancel,
    series_cancel,
    series_request,
)
from meetings.schedule.imip import build_imip_message
from meetings.schedule.links import JoinLink, make_answer_token, make_join_token
from meetings.schedule.models import Occurrence, OccurrenceState, Series, SeriesKind
from meetings.schedule.recurrence import calendar_exceptions
from meetings.schedule.workdays import WEEKDAY_NAMES, WorkingCalendar

if TYPE_CHECKING:
    from meetings.schedule.service import Context

# How far ahead holidays are written as EXDATEs for a series without an end date; updates
# re-send the series, and the yearly refresh job keeps it ahead.
OPEN_SERIES_HORIZON = timedelta(days=400)


def link_expiry(series: Series, ctx: Context, occurrence: Occurrence | None = None) -> datetime:
    """When a personal link for this series (or one occurrence) stops working."""
    if occurrence is not None:
        return occurrence.end + timedelta(days=1)
    zone = ZoneInfo(series.timezone)
    if series.end_date is not None:
        return datetime.combine(series.end_date + timedelta(days=2), datetime.min.time(), tzinfo=zone)
    return ctx.now + OPEN_SERIES_HORIZON


def join_url(series: Series, person: Person, ctx: Context, occurrence: Occurrence | None = None) -> str:
    """A person's signed join link for the series, or for one occurrence of it."""
    token = make_join_token(
        ctx.secret,
        JoinLink(
            person_id=person.id,
            series_id=series.id,
            occurrence_id=occurrence.id if occurrence else None,
            expires=link_expiry(series, ctx, occurrence),
        ),
    )
    return f"{ctx.base_url}/join/{token}"


def answer_url(series: Series, person: Person, ctx: Context, answer: str) -> str:
    """A person's signed accept or decline link for the series."""
    token = make_answer_token(
        ctx.secret,
        person_id=person.id,
        series_id=series.id,
        occurrence_id=None,
        answer=answer,
        expires=link_expiry(series, ctx),
    )
    return f"{ctx.base_url}/answer/{token}"


def own_attendees(person: Person, chair: Person | None) -> tuple[Attendee, ...]:
    """The ATTENDEE lines of one invitee's copy: the invitee, and the chair.

    RFC 5546 lets an organiser send each attendee a copy that lists only them; listing all 60
    (or 6,000) invitees in every copy made the work grow with the square of the invitees and
    handed every centre everyone's address.
    """
    if chair is not None and chair.id == person.id:
        return (Attendee(person.email, person.name, "CHAIR"),)
    own = Attendee(person.email, person.name, "REQ-PARTICIPANT")
    return (own, Attendee(chair.email, chair.name, "CHAIR")) if chair is not None else (own,)


def recurrence_text(series: Series, language: str) -> str:
    """'Thứ Hai, Thứ Ba, … lúc 07:30 (GMT+7), trừ ngày nghỉ' in the recipient's language."""
    if series.kind == SeriesKind.ADHOC:
        return ""
    names = get_day_names("wide", locale=language)
    days = ", ".join(names[WEEKDAY_NAMES.index(w)] for w in series.weekday_names)
    with i18n.language(language):
        return i18n.gettext(
            "%(days)s at %(time)s (GMT+7), working days only",
            days=days,
            time=series.start_time.strftime("%H:%M"),
        )


async def cal_series(
    db: AsyncSession,
    series: Series,
    calendar: WorkingCalendar,
    ctx: Context,
    *,
    location: str,
    attendees: Sequence[Person],
    chair_id: int | None = None,
) -> CalSeries:
    """The iCalendar view of a series with every exception the database knows."""
    from meetings.schedule.service import calendar_for, rule_of

    rule = rule_of(series)
    occurrences = list(await db.scalars(select(Occurrence).where(Occurrence.series_id == series.id)))
    zone = ZoneInfo(series.timezone)
    cancelled = [o.original_start for o in occurrences if o.state == OccurrenceState.CANCELLED]
    horizon_end: date = series.end_date or (ctx.now + OPEN_SERIES_HORIZON).date()
    exceptions = calendar_exceptions(rule, calendar_for(series, calendar), horizon_end, cancelled)
    overrides = tuple(
        CalOverride(
            recurrence_id=o.original_start.astimezone(zone),
            start=o.start.astimezone(zone),
            end=o.end.astimezone(zone),
        )
        for o in occurrences
        if o.moved and o.state != OccurrenceState.CANCELLED
    )
    return CalSeries(
        uid=series.uid,
        sequence=series.sequence,
        summary=series.title,
        description=series.description,
        location=location,
        url=location,
        rule=rule,
        organizer_email=series.organizer_email,
        organizer_name=series.organizer_name,
        attendees=tuple(
            Attendee(p.email, p.name, "CHAIR" if p.id == chair_id else "REQ-PARTICIPANT") for p in attendees
        ),
        exdates=exceptions.exdates,
        rdates=exceptions.rdates,
        overrides=overrides,
    )


def _first_meeting(
    series: Series, occurrences: Sequence[Occurrence], ctx: Context
) -> tuple[datetime, datetime]:
    zone = ZoneInfo(series.timezone)
    upcoming = [o for o in occurrences if o.state != OccurrenceState.CANCELLED and o.end >= ctx.now]
    if upcoming:
        first = min(upcoming, key=lambda o: o.start)
        return first.start.astimezone(zone), first.end.astimezone(zone)
    start = datetime.combine(series.start_date, series.start_time, tzinfo=zone)
    return start, start + timedelta(minutes=series.duration_minutes)


async def _chair(db: AsyncSession, series: Series) -> Person | None:
    if not series.chair_id:
        return None
    chair = await db.get(Person, series.chair_id)
    return chair if chair is not None and chair.active else None


async def send_series(
    db: AsyncSession,
    series: Series,
    calendar: WorkingCalendar,
    ctx: Context,
    *,
    kind: str,
    occurrence: Occurrence | None = None,
    moved_from: datetime | None = None,
    recipients: Sequence[Person] | None = None,
) -> int:
    """Queue a METHOD:REQUEST of the whole series (with its exceptions) to each invitee."""
    from meetings.schedule.service import invitees_of

    people = await invitees_of(db, series)
    targets = list(recipients) if recipients is not None else people
    occurrences = list(await db.scalars(select(Occurrence).where(Occurrence.series_id == series.id)))
    zone = ZoneInfo(series.timezone)
    if occurrence is not None:
        start, end = occurrence.start.astimezone(zone), occurrence.end.astimezone(zone)
    else:
        start, end = _first_meeting(series, occurrences, ctx)
    chair_person = await _chair(db, series)
    chair = chair_person.name if chair_person else ""
    recurrence_id = occurrence.original_start.astimezone(zone).isoformat() if occurrence else ""
    # The calendar differs between invitees only by the personal link: compute it once.
    shared = await cal_series(db, series, calendar, ctx, location="", attendees=())
    queued = 0
    for person in targets:
        link = join_url(series, person, ctx, occurrence if series.kind == SeriesKind.ADHOC else None)
        ics = series_request(
            replace(shared, location=link, url=link, attendees=own_attendees(person, chair_person)), ctx.now
        )
        facts = MailFacts(
            kind=kind,
            title=series.title,
            recipient_name=person.name,
            start=start,
            end=end,
            recurrence=recurrence_text(series, person.language) if occurrence is None else "",
            join_url=link,
            accept_url=answer_url(series, person, ctx, "accepted"),
            decline_url=answer_url(series, person, ctx, "declined"),
            series_url=f"{ctx.base_url}/meetings/series/{series.id}",
            chair=chair,
            moved_from=moved_from.astimezone(zone) if moved_from else None,
        )
        queued += await _queue(db, series, person, facts, ics, "REQUEST", kind, recurrence_id)
    return queued


async def send_occurrence_cancel(
    db: AsyncSession, series: Series, occurrence: Occurrence, calendar: WorkingCalendar, ctx: Context
) -> int:
    """Queue a METHOD:CANCEL with RECURRENCE-ID for one occurrence to each invitee."""
    from meetings.schedule.service import invitees_of

    people = await invitees_of(db, series)
    zone = ZoneInfo(series.timezone)
    original = occurrence.original_start.astimezone(zone)
    chair_person = await _chair(db, series)
    shared = await cal_series(db, series, calendar, ctx, location="", attendees=())
    queued = 0
    for person in people:
        link = join_url(series, person, ctx)
        ics = occurrence_cancel(
            replace(shared, location=link, url=link, attendees=own_attendees(person, chair_person)),
            original,
            ctx.now,
        )
        facts = MailFacts(
            kind="occurrence_cancel",
            title=series.title,
            recipient_name=person.name,
            start=occurrence.start.astimezone(zone),
            end=occurrence.end.astimezone(zone),
            series_url=f"{ctx.base_url}/meetings/series/{series.id}",
        )
        queued += await _queue(
            db, series, person, facts, ics, "CANCEL", "occurrence_cancel", original.isoformat()
        )
    return queued


async def send_series_cancel(
    db: AsyncSession,
    series: Series,
    calendar: WorkingCalendar,
    ctx: Context,
    *,
    recipients: Sequence[Person] | None = None,
) -> int:
    """Queue a METHOD:CANCEL of the whole UID (to everyone, or to people no longer invited)."""
    from meetings.schedule.service import invitees_of

    people = await invitees_of(db, series)
    targets = list(recipients) if recipients is not None else people
    occurrences = list(await db.scalars(select(Occurrence).where(Occurrence.series_id == series.id)))
    start, end = _first_meeting(series, occurrences, ctx)
    shared = await cal_series(
        db, series, calendar, ctx, location=f"{ctx.base_url}/meetings/series/{series.id}", attendees=[]
    )
    queued = 0
    for person in targets:
        ics = series_cancel(replace(shared, attendees=own_attendees(person, None)), ctx.now)
        facts = MailFacts(
            kind="series_cancel",
            title=series.title,
            recipient_name=person.name,
            start=start,
            end=end,
        )
        queued += await _queue(db, series, person, facts, ics, "CANCEL", "series_cancel", "")
    return queued


async def _queue(
    db: AsyncSession,
    series: Series,
    person: Person,
    facts: MailFacts,
    ics: bytes,
    method: str,
    kind: str,
    recurrence_id: str,
) -> int:
    text = render(facts, person.language)
    message = build_imip_message(
        sender_email=series.organizer_email,
        sender_name=series.organizer_name,
        to_email=person.email,
        to_name=person.name,
        subject=text.subject,
        text=text.text,
        html=text.html,
        ics=ics,
        method=method,
        message_id_domain=series.organizer_email.rpartition("@")[2] or "giaoban",
    )
    key = idempotency_key(series.uid, recurrence_id, series.sequence, person.email, kind)
    return 1 if await enqueue(db, key=key, kind=kind, message=message) else 0
