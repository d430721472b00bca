"""The scheduler resource: the job context, the lease and APScheduler on the lease holder."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from meetings.jobs.context import JobContext, set_context
from meetings.jobs.scheduler import Scheduler
from web import keys


async def scheduler_ctx(app: web.Application) -> AsyncIterator[None]:
    """Compete for the scheduler lease (unless scheduler_enabled is off); stop on shutdown."""
    settings = app[keys.SETTINGS]
    set_context(JobContext(db=app[keys.DB], settings=settings, wake_outbox=app[keys.OUTBOX].wake))
    scheduler = Scheduler(app[keys.DB], settings)
    app[keys.SCHEDULER] = scheduler
    if settings.scheduler_enabled:
        await scheduler.start()
    try:
        yield
    finally:
        await scheduler.close()
        set_context(None)
