"""Invitations by email: one iMIP message per invitee, with a personal join link, via the outbox."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from babel.dates import get_day_names
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from meetings import i18n
from meetings.directory.models import Person
from meetings.mail.outbox import Prepared, enqueue_many, idempotency_key
from meetings.schedule.bulk import AttendeeLines, IcsTemplate, MessageTemplate, WordsTemplate
from meetings.schedule.emails import MailFacts
from meetings.schedule.ical import (
    Attendee,
    CalOverride,
    CalSeries,
    occurrence_cancel,
    series_cancel,
    series_request,
)
from meetings.schedule.links import JoinLink, make_answer_token, make_join_token
from meetings.schedule.models import Occurrence, OccurrenceState, Series, SeriesKind
from meetings.schedule.recurrence import calendar_exceptions
from meetings.schedule.workdays import WEEKDAY_NAMES, WorkingCalendar

if TYPE_CHECKING:
    from meetings.schedule.service import Context

# Copies built before they are written to the outbox (about 7 KiB each).
QUEUE_BATCH = 1000

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


@dataclass
class _Fanout:
    """One send: the shared calendar, and per language the words and the message around them."""

    series: Series
    ics: IcsTemplate
    method: str
    kind: str
    recurrence_id: str
    facts: Callable[[str], MailFacts]
    chair: Attendee | None = None
    attendees: AttendeeLines = field(default_factory=AttendeeLines)
    languages: dict[str, tuple[WordsTemplate, MessageTemplate]] = field(default_factory=dict)
    prepared: list[Prepared] = field(default_factory=list)

    def add(
        self, person: Person, chair: Person | None, link: str, accept: str = "", decline: str = ""
    ) -> None:
        """Build one invitee's copy (only its personal parts) and keep it for the bulk insert."""
        language = person.language
        if language not in self.languages:
            words = WordsTemplate.build(self.facts(language), language)
            message = MessageTemplate(
                sender_email=self.series.organizer_email,
                sender_name=self.series.organizer_name,
                words=words.words,
                ics_sample=self.ics.fill("", b""),
                method=self.method,
                message_id_domain=self.series.organizer_email.rpartition("@")[2] or "giaoban",
            )
            self.languages[language] = (words, message)
        words, message = self.languages[language]
        shared = frozenset({self.chair}) if self.chair is not None else frozenset()
        ics = self.ics.fill(link, self.attendees.lines(own_attendees(person, chair), shared))
        text, html = words.fill(person.name, link, accept, decline)
        built = message.build(to_email=person.email, to_name=person.name, text=text, html=html, ics=ics)
        key = idempotency_key(
            self.series.uid, self.recurrence_id, self.series.sequence, person.email, self.kind
        )
        self.prepared.append(Prepared(key, self.kind, built.recipient, built.subject, built.wire))

    async def queue(self, db: AsyncSession, *, unless_fewer: int = 0) -> int:
        """Write the copies built so far to the outbox in bulk, in the caller's transaction.

        With unless_fewer, wait until that many are ready (memory stays bounded at any N).
        """
        if not self.prepared or len(self.prepared) < unless_fewer:
            return 0
        added = await enqueue_many(db, self.prepared)
        self.prepared = []
        return added


def _chair_attendee(chair: Person | None) -> Attendee | None:
    return Attendee(chair.email, chair.name, "CHAIR") if chair is not None else None


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

    def facts(language: str) -> MailFacts:
        return MailFacts(
            kind=kind,
            title=series.title,
            recipient_name="",
            start=start,
            end=end,
            recurrence=recurrence_text(series, language) if occurrence is None else "",
            join_url="-",
            accept_url="-",
            decline_url="-",
            series_url=f"{ctx.base_url}/meetings/series/{series.id}",
            chair=chair,
            moved_from=moved_from.astimezone(zone) if moved_from else None,
        )

    fanout = _Fanout(
        series=series,
        ics=IcsTemplate.build(lambda cal: series_request(cal, ctx.now), shared, personal_link=True),
        method="REQUEST",
        kind=kind,
        recurrence_id=recurrence_id,
        facts=facts,
        chair=_chair_attendee(chair_person),
    )
    queued = 0
    for person in targets:
        link = join_url(series, person, ctx, occurrence if series.kind == SeriesKind.ADHOC else None)
        accept = answer_url(series, person, ctx, "accepted")
        decline = answer_url(series, person, ctx, "declined")
        fanout.add(person, chair_person, link, accept, decline)
        queued += await fanout.queue(db, unless_fewer=QUEUE_BATCH)
    return queued + await fanout.queue(db)


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

    def facts(_language: str) -> MailFacts:
        return MailFacts(
            kind="occurrence_cancel",
            title=series.title,
            recipient_name="",
            start=occurrence.start.astimezone(zone),
            end=occurrence.end.astimezone(zone),
            series_url=f"{ctx.base_url}/meetings/series/{series.id}",
        )

    fanout = _Fanout(
        series=series,
        ics=IcsTemplate.build(
            lambda cal: occurrence_cancel(cal, original, ctx.now), shared, personal_link=True
        ),
        method="CANCEL",
        kind="occurrence_cancel",
        recurrence_id=original.isoformat(),
        facts=facts,
        chair=_chair_attendee(chair_person),
    )
    queued = 0
    for person in people:
        fanout.add(person, chair_person, join_url(series, person, ctx))
        queued += await fanout.queue(db, unless_fewer=QUEUE_BATCH)
    return queued + await fanout.queue(db)


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

    def facts(_language: str) -> MailFacts:
        return MailFacts(kind="series_cancel", title=series.title, recipient_name="", start=start, end=end)

    fanout = _Fanout(
        series=series,
        ics=IcsTemplate.build(lambda cal: series_cancel(cal, ctx.now), shared, personal_link=False),
        method="CANCEL",
        kind="series_cancel",
        recurrence_id="",
        facts=facts,
    )
    queued = 0
    for person in targets:
        fanout.add(person, None, "")
        queued += await fanout.queue(db, unless_fewer=QUEUE_BATCH)
    return queued + await fanout.queue(db)
