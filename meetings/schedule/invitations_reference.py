"""The invitation builder as it was before issue #18: every copy built whole, one at a time.

Kept as the reference the bulk builder (`meetings.schedule.invitations`) must match byte for
byte (tests/schedule/test_bulk.py), and as the baseline of `bench/invitations.py`. Not used by
the service.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from meetings.directory.models import Person
from meetings.mail.outbox import enqueue, idempotency_key
from meetings.schedule.emails import MailFacts, render
from meetings.schedule.ical import occurrence_cancel, series_cancel, series_request
from meetings.schedule.imip import build_imip_message
from meetings.schedule.invitations import (
    _chair,
    _first_meeting,
    answer_url,
    cal_series,
    join_url,
    own_attendees,
    recurrence_text,
)
from meetings.schedule.models import Occurrence, Series, SeriesKind
from meetings.schedule.workdays import WorkingCalendar

if TYPE_CHECKING:
    from meetings.schedule.service import Context


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
