"""Timed upkeep of the outbox: sent mail is kept for a while, then deleted."""

from __future__ import annotations

import logging
from datetime import timedelta

from meetings.db.base import utcnow
from meetings.jobs.context import current
from meetings.jobs.scheduler import Scheduler, reconciler
from meetings.mail import outbox

log = logging.getLogger("giaoban.mail")

KEEP_SENT = timedelta(days=90)
PURGE_JOB_ID = "mail:purge-sent"


async def purge_sent() -> None:
    """Delete outbox messages sent more than KEEP_SENT ago (failed ones stay for the admin)."""
    context = current()
    async with context.db() as db:
        deleted = await outbox.purge_sent(db, utcnow() - KEEP_SENT)
        await db.commit()
    if deleted:
        log.info("old sent mail deleted", extra={"count": deleted})


@reconciler
async def mail_jobs(scheduler: Scheduler) -> None:
    """Every night at 03:30 local time, purge old sent mail."""
    await scheduler.schedule_cron(PURGE_JOB_ID, purge_sent, hour=3, minute=30)
