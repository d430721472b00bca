"""Timed scheduling work: reminders, "minutes are due", materialising and advancing meetings.

Job functions take ids only (APScheduler persists them) and find the database through
meetings.jobs.context. Every mail they queue has an idempotency key, so a job that runs twice
(a restart inside the misfire grace time, two attempts) sends nothing twice.
"""

from __future__ import annotations

import email.policy
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.headerregistry import Address
from email.message import EmailMessage
from zoneinfo import ZoneInfo

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from meetings.db.base import utcnow
from meetings.directory.models import Person
from meetings.jobs.context import current
from meetings.jobs.scheduler import Scheduler, reconciler
from meetings.mail.models import OutboxMessage
from meetings.mail.outbox import enqueue, idempotency_key
from meetings.minutes import reminders as minutes_reminders
from meetings.schedule.emails import MailFacts, render
from meetings.schedule.invitations import join_url
from meetings.schedule.models import Occurrence, OccurrenceState, Series, SeriesStatus
from meetings.schedule.service import Context, invitees_of, materialise, working_calendar
from meetings.settings import Settings

# Ahead of how far reminders are planned as jobs; the hourly reconcile moves the window on.
PLAN_AHEAD = timedelta(days=2)


def context_from(settings: Settings, now: datetime | None = None) -> Context:
    """The scheduling context of a job."""
    return Context(
        base_url=settings.base_url,
        secret=settings.secret_key,
        organizer_email=settings.mail_from,
        organizer_name=settings.organizer_name,
        horizon_days=settings.schedule_horizon_days,
        now=now or utcnow(),
    )


def plain_message(series: Series, person: Person, subject: str, text: str, html: str) -> EmailMessage:
    """A plain (not iMIP) message from the series' organiser to one person, text and HTML."""
    msg = EmailMessage(policy=email.policy.SMTP)
    msg["From"] = Address(display_name=series.organizer_name, addr_spec=series.organizer_email)
    msg["To"] = Address(display_name=person.name, addr_spec=person.email)
    msg["Subject"] = subject
    msg.set_content(text, subtype="plain", charset="utf-8", cte="quoted-printable")
    msg.add_alternative(html, subtype="html", charset="utf-8", cte="quoted-printable")
    return msg


async def queue_reminders(db: AsyncSession, occurrence_id: int, ctx: Context) -> int:
    """Queue the "starts soon" email to every invitee of a planned meeting (once per person)."""
    occ = await db.get(Occurrence, occurrence_id)
    if occ is None or occ.state not in {OccurrenceState.PLANNED, OccurrenceState.OPEN}:
        return 0
    series = await db.get(Series, occ.series_id)
    if series is None or series.status != SeriesStatus.ACTIVE or occ.end < ctx.now:
        return 0
    zone = ZoneInfo(series.timezone)
    queued = 0
    for person in await invitees_of(db, series):
        facts = MailFacts(
            kind="reminder",
            title=series.title,
            recipient_name=person.name,
            start=occ.start.astimezone(zone),
            end=occ.end.astimezone(zone),
            join_url=join_url(series, person, ctx),
        )
        words = render(facts, person.language)
        key = idempotency_key(series.uid, occ.original_start.isoformat(), 0, person.email, "reminder")
        message = plain_message(series, person, words.subject, words.text, words.html)
        queued += int(await enqueue(db, key=key, kind="reminder", message=message, now=ctx.now))
    return queued


async def queue_minutes_due(db: AsyncSession, occurrence_id: int, ctx: Context) -> int:
    """Queue the "minutes are due" email to the secretary (or the chair) of an ended meeting."""
    occ = await db.get(Occurrence, occurrence_id)
    if occ is None or occ.state == OccurrenceState.CANCELLED:
        return 0
    if not await minutes_reminders.needs_reminder(db, occ.id):
        return 0  # already submitted: nothing is due
    series = await db.get(Series, occ.series_id)
    if series is None:
        return 0
    person_id = series.secretary_id or series.chair_id
    person = await db.get(Person, person_id) if person_id else None
    if person is None or not person.active:
        return 0
    zone = ZoneInfo(series.timezone)
    facts = MailFacts(
        kind="minutes_due",
        title=series.title,
        recipient_name=person.name,
        start=occ.start.astimezone(zone),
        end=occ.end.astimezone(zone),
        series_url=f"{ctx.base_url}/meetings/occurrences/{occ.id}",
    )
    words = render(facts, person.language)
    key = idempotency_key(series.uid, occ.original_start.isoformat(), 0, person.email, "minutes_due")
    message = plain_message(series, person, words.subject, words.text, words.html)
    return int(await enqueue(db, key=key, kind="minutes_due", message=message, now=ctx.now))


async def advance_states(db: AsyncSession, now: datetime, *, open_before: timedelta, grace: timedelta) -> int:
    """Planned meetings open when their room does; meetings past their end and grace have ended.

    The room itself sets "in progress" when the first person sits and "ended" when the chair
    ends it; this catches the meetings nobody joined or ended.
    """
    opened = await db.execute(
        update(Occurrence)
        .where(
            Occurrence.state == OccurrenceState.PLANNED,
            Occurrence.start <= now + open_before,
            Occurrence.end > now,
        )
        .values(state=OccurrenceState.OPEN)
        .execution_options(synchronize_session=False)
    )
    ended = await db.execute(
        update(Occurrence)
        .where(
            Occurrence.state.in_(
                [OccurrenceState.PLANNED, OccurrenceState.OPEN, OccurrenceState.IN_PROGRESS]
            ),
            Occurrence.end <= now - grace,
        )
        .values(state=OccurrenceState.ENDED)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(opened, "rowcount", 0) or 0) + int(getattr(ended, "rowcount", 0) or 0)


async def materialise_all(db: AsyncSession, ctx: Context) -> None:
    """Keep every active series materialised for the rolling window."""
    calendar = await working_calendar(db)
    for series in await db.scalars(select(Series).where(Series.status == SeriesStatus.ACTIVE)):
        await materialise(db, series, calendar, ctx)


@dataclass(frozen=True)
class PlannedJob:
    """A one-off job the scheduler should hold: id, function reference, when, arguments."""

    job_id: str
    func: str
    run_at: datetime
    args: tuple[int, ...]


async def reminder_queued(db: AsyncSession, occ: Occurrence, series: Series) -> bool:
    """Whether the reminder of this meeting is already in the outbox (for any invitee)."""
    keys = [
        idempotency_key(series.uid, occ.original_start.isoformat(), 0, person.email, "reminder")
        for person in await invitees_of(db, series)
    ]
    if not keys:
        return False
    found = await db.scalar(select(OutboxMessage.id).where(OutboxMessage.idempotency_key.in_(keys)).limit(1))
    return found is not None


async def planned_jobs(
    db: AsyncSession, now: datetime, settings: Settings, *, series_id: int | None = None
) -> list[PlannedJob]:
    """The reminder and minutes-due jobs of the meetings in the planning window (of one series).

    A reminder whose time has passed while its meeting has not started (the meeting was
    created or moved inside its reminder window, or between two reconciles) is planned for
    now, unless it is already in the outbox: it is sent late, and once.
    """
    query = (
        select(Occurrence, Series)
        .join(Series, Series.id == Occurrence.series_id)
        .where(
            Series.status == SeriesStatus.ACTIVE,
            Occurrence.state != OccurrenceState.CANCELLED,
            # Column arithmetic differs between databases: bound the window here, refine below.
            Occurrence.end >= now - timedelta(minutes=settings.minutes_due_minutes),
            Occurrence.start <= now + PLAN_AHEAD,
        )
    )
    if series_id is not None:
        query = query.where(Series.id == series_id)
    jobs: list[PlannedJob] = []
    for occ, series in (await db.execute(query)).all():
        remind_at = occ.start - timedelta(minutes=series.reminder_minutes)
        if series.reminder_minutes and occ.start > now:
            if remind_at < now:
                remind_at = now if not await reminder_queued(db, occ, series) else remind_at
            if remind_at >= now:
                jobs.append(
                    PlannedJob(f"reminder:{occ.id}", f"{__name__}:reminder_job", remind_at, (occ.id,))
                )
        due_at = occ.end + timedelta(minutes=settings.minutes_due_minutes)
        jobs.append(PlannedJob(f"minutes-due:{occ.id}", f"{__name__}:minutes_due_job", due_at, (occ.id,)))
    return jobs


async def cancelled_in_window(db: AsyncSession, now: datetime, *, series_id: int | None = None) -> list[int]:
    """Cancelled meetings near now whose jobs must go (of one series, or of all)."""
    query = select(Occurrence.id).where(
        Occurrence.state == OccurrenceState.CANCELLED,
        Occurrence.start >= now - timedelta(days=1),
        Occurrence.start <= now + PLAN_AHEAD,
    )
    if series_id is not None:
        query = query.where(Occurrence.series_id == series_id)
    return list(await db.scalars(query))


async def apply_plan(
    scheduler: Scheduler, jobs: list[PlannedJob], cancelled: list[int], now: datetime
) -> None:
    """Hold the planned jobs (replacing those with the same ids) and drop those of cancelled meetings."""
    functions = {f"{__name__}:reminder_job": reminder_job, f"{__name__}:minutes_due_job": minutes_due_job}
    for job in jobs:
        # Past-due jobs already stored run by the misfire grace; re-adding them would repeat them.
        if job.run_at >= now:
            await scheduler.schedule_once(job.job_id, functions[job.func], job.run_at, job.args)
    for occurrence_id in cancelled:
        await scheduler.remove_job(f"reminder:{occurrence_id}")
        await scheduler.remove_job(f"minutes-due:{occurrence_id}")


async def plan_series(
    scheduler: Scheduler,
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    series_id: int | None = None,
    now: datetime | None = None,
) -> None:
    """Plan the jobs of a series (or of all) at once, after a change, not at the next reconcile."""
    now = now or utcnow()
    async with sessions() as db:
        jobs = await planned_jobs(db, now, settings, series_id=series_id)
        cancelled = await cancelled_in_window(db, now, series_id=series_id)
    await apply_plan(scheduler, jobs, cancelled, now)


# --- job functions (referenced by name in the job store) -----------------------------------


async def reminder_job(occurrence_id: int) -> None:
    """Job: remind every invitee that a meeting starts soon."""
    jc = current()
    ctx = context_from(jc.settings)
    async with jc.db() as db:
        if not await _reminder_time(db, occurrence_id, ctx.now):
            return
        count = await queue_reminders(db, occurrence_id, ctx)
        await db.commit()
    if count:
        jc.wake_outbox()


# A job runs at its time or later, never earlier; this slack only absorbs clock steps.
_EARLY = timedelta(seconds=60)


async def _reminder_time(db: AsyncSession, occurrence_id: int, now: datetime) -> bool:
    """False for a stale job: its meeting moved later than its reminder window (replanned then)."""
    occ = await db.get(Occurrence, occurrence_id)
    series = await db.get(Series, occ.series_id) if occ is not None else None
    if occ is None or series is None:
        return False
    return occ.start - timedelta(minutes=series.reminder_minutes) <= now + _EARLY


async def minutes_due_job(occurrence_id: int) -> None:
    """Job: tell the secretary that the minutes of an ended meeting are due."""
    jc = current()
    async with jc.db() as db:
        count = await queue_minutes_due(db, occurrence_id, context_from(jc.settings))
        await db.commit()
    if count:
        jc.wake_outbox()


async def tick_job() -> None:
    """Job (every minute): open and end meetings as time passes."""
    jc = current()
    async with jc.db() as db:
        await advance_states(
            db,
            utcnow(),
            open_before=timedelta(minutes=jc.settings.room_open_minutes),
            grace=timedelta(minutes=jc.settings.room_grace_minutes),
        )
        await db.commit()


async def materialise_job() -> None:
    """Job (daily): extend every series' meetings to the rolling window."""
    jc = current()
    async with jc.db() as db:
        await materialise_all(db, context_from(jc.settings))
        await db.commit()


@reconciler
async def reconcile_schedule(scheduler: Scheduler) -> None:
    """Hold a reminder and a minutes-due job for each meeting in the planning window."""
    await plan_series(scheduler, current().db, current().settings)
    await scheduler.schedule_cron("schedule-tick", tick_job, minute="*")
    await scheduler.schedule_cron("schedule-materialise", materialise_job, hour=0, minute=5)
