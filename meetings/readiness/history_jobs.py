"""The connection follow-up as a timed job: every five minutes, on the scheduler's one node.

The job is persisted in the shared job table with an explicit id and recreated by the reconcile
hook whenever a node takes the scheduler lease, so it survives restarts and failovers; a run
repeated after a failover opens nothing twice (see meetings.readiness.followup).
"""

from __future__ import annotations

from meetings.jobs.context import current
from meetings.jobs.scheduler import Scheduler, reconciler
from meetings.readiness.followup import Mailing, follow_up_all
from meetings.readiness.history import Thresholds
from meetings.settings import Settings

FOLLOW_UP_JOB_ID = "readiness:follow-up"


def thresholds_of(settings: Settings) -> Thresholds:
    """The follow-up thresholds from the settings."""
    return Thresholds(
        bad=settings.readiness_followup_bad_meetings, window=settings.readiness_followup_window_meetings
    )


def mailing_of(settings: Settings) -> Mailing:
    """How the follow-up mails the operators, from the settings."""
    return Mailing(settings.base_url, settings.mail_from, settings.organizer_name)


async def follow_up_job() -> None:
    """Job: open the follow-up issues the recorded meetings call for."""
    jc = current()
    done = await follow_up_all(jc.db, thresholds_of(jc.settings), mailing_of(jc.settings), tz=jc.settings.tz)
    if any(o.mailed for o in done):
        jc.wake_outbox()


@reconciler
async def readiness_history_jobs(scheduler: Scheduler) -> None:
    """Every five minutes, follow the units' connections up."""
    await scheduler.schedule_cron(FOLLOW_UP_JOB_ID, follow_up_job, minute="*/5")
