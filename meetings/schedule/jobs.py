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
from sqlalchemy.ext.asyncio import AsyncSession

from meetings.db.base import utcnow
from meetings.directory.models import Person
from meetings.jobs.context import current
from meetings.jobs.scheduler import Scheduler, reconciler
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


def _plain_message(series: Series, person: Person, subject: str, text: str, html: str) -> EmailMessage:
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
        message = _plain_message(series, person, words.subject, words.text, words.html)
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
    message = _plain_message(series, person, words.subject, words.text, words.html)
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


async def planned_jobs(db: AsyncSession, now: datetime, settings: Settings) -> list[PlannedJob]:
    """The reminder and minutes-due jobs of the meetings in the planning window."""
    rows = await db.execute(
        select(Occurrence, Series.reminder_minutes)
        .join(Series, Series.id == Occurrence.series_id)
        .where(
            Series.status == SeriesStatus.ACTIVE,
            Occurrence.state != OccurrenceState.CANCELLED,
            # Column arithmetic differs between databases: bound the window here, refine below.
            Occurrence.end >= now - timedelta(minutes=settings.minutes_due_minutes),
            Occurrence.start <= now + PLAN_AHEAD,
        )
    )
    jobs: list[PlannedJob] = []
    for occ, reminder_minutes in rows.all():
        remind_at = occ.start - timedelta(minutes=reminder_minutes)
        if reminder_minutes and occ.start > now:
            jobs.append(PlannedJob(f"reminder:{occ.id}", f"{__name__}:reminder_job", remind_at, (occ.id,)))
        due_at = occ.end + timedelta(minutes=settings.minutes_due_minutes)
        jobs.append(PlannedJob(f"minutes-due:{occ.id}", f"{__name__}:minutes_due_job", due_at, (occ.id,)))
    return jobs


# --- job functions (referenced by name in the job store) -----------------------------------


async def reminder_job(occurrence_id: int) -> None:
    """Job: remind every invitee that a meeting starts soon."""
    jc = current()
    async with jc.db() as db:
        count = await queue_reminders(db, occurrence_id, context_from(jc.settings))
        await db.commit()
    if count:
        jc.wake_outbox()


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
    jc = current()
    now = utcnow()
    async with jc.db() as db:
        jobs = await planned_jobs(db, now, jc.settings)
        cancelled = list(
            await db.scalars(
                select(Occurrence.id).where(
                    Occurrence.state == OccurrenceState.CANCELLED,
                    Occurrence.start >= now - timedelta(days=1),
                    Occurrence.start <= now + PLAN_AHEAD,
                )
            )
        )
    functions = {f"{__name__}:reminder_job": reminder_job, f"{__name__}:minutes_due_job": minutes_due_job}
    for job in jobs:
        # Past-due jobs already stored run by the misfire grace; re-adding them would repeat them.
        if job.run_at >= now:
            await scheduler.schedule_once(job.job_id, functions[job.func], job.run_at, job.args)
    for occurrence_id in cancelled:
        await scheduler.remove_job(f"reminder:{occurrence_id}")
        await scheduler.remove_job(f"minutes-due:{occurrence_id}")
    await scheduler.schedule_cron("schedule-tick", tick_job, minute="*")
    await scheduler.schedule_cron("schedule-materialise", materialise_job, hour=0, minute=5)
