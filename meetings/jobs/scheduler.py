"""The scheduler: APScheduler 3 on the shared database, running on exactly one node.

How exactly one node runs the jobs
    Every node runs a `Scheduler`. It renews a lease (`meetings/jobs/lease.py`) every third
    of `scheduler_lease_seconds`; the node holding the lease starts an APScheduler
    (`LoopScheduler`: `AsyncIOScheduler` with its job store kept off the event loop's
    thread, see `meetings/jobs/loop_scheduler.py`) whose jobs live in the `apscheduler_jobs`
    table of the same database.
    When the holder dies its lease expires and a standby takes it, starts its own
    APScheduler on the same job table and runs what is due (missed runs within
    `misfire_grace_time`, coalesced into one). A node that fails to renew shuts its
    APScheduler down at once (without waiting for running jobs), so two nodes never run
    jobs together for longer than one renewal interval.

How any node asks for a job
    Domain changes are written to the database first; the jobs follow from them. Packages
    register *reconcile hooks* with `@reconciler` (in a module listed in `JOB_MODULES`); the
    leader calls every hook when it takes over and then every `RECONCILE_SECONDS`, and a hook
    (re)creates the jobs its data needs with `schedule_once`/`schedule_cron`, which use
    explicit ids and replace_existing, so running a hook twice changes nothing. A node that
    does not lead may still call `schedule_once`/`schedule_cron`: it keeps a paused
    APScheduler whose only use is to write the job table, and the leader looks at that
    table at every renewal, so such a job runs within one renewal interval of its time even
    before the next reconcile. Job functions are module-level async functions taking ids;
    they find the database through `meetings.jobs.context.current()` and should be
    idempotent (a run may repeat after a failover; outbox keys make mail idempotent).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar

from apscheduler.jobstores.base import JobLookupError
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from sqlalchemy import Engine, event
from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from meetings.jobs import lease
from meetings.jobs.loop_scheduler import LoopScheduler
from meetings.settings import Settings

log = logging.getLogger("giaoban.scheduler")

LEASE_NAME = "scheduler"
RECONCILE_SECONDS = 60.0
JOB_TABLE = "apscheduler_jobs"
CLOSE_WAIT_SECONDS = 10.0  # a node closing waits this long for its job store to close
JOB_DEFAULTS = {"misfire_grace_time": 3600, "coalesce": True}

# Modules whose import registers reconcile hooks (like MODEL_MODULES for tables).
JOB_MODULES: tuple[str, ...] = (
    "meetings.mail.jobs",
    "meetings.schedule.jobs",
    "meetings.readiness.history_jobs",
)

Reconciler = Callable[["Scheduler"], Awaitable[None]]
R = TypeVar("R", bound=Reconciler)
_reconcilers: list[Reconciler] = []


def reconciler(hook: R) -> R:
    """Register a hook the leader calls at takeover and every minute to (re)create jobs."""
    if hook not in _reconcilers:
        _reconcilers.append(hook)
    return hook


def reconcilers() -> list[Reconciler]:
    """The registered reconcile hooks, in registration order."""
    return list(_reconcilers)


def import_job_modules() -> None:
    """Import the modules that register reconcile hooks."""
    for name in JOB_MODULES:
        importlib.import_module(name)


_SYNC_DRIVERS = {"sqlite+aiosqlite": "sqlite", "postgresql+asyncpg": "postgresql+psycopg"}


def sync_url(url: str) -> str:
    """The synchronous twin of the app's async database URL, for APScheduler's job store."""
    parsed = make_url(url)
    driver = _SYNC_DRIVERS.get(parsed.drivername, parsed.drivername)
    return parsed.set(drivername=driver).render_as_string(hide_password=False)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA busy_timeout=5000")  # the app writes the same file
    cursor.close()


def job_engine(url: str) -> Engine:
    """A synchronous engine on the app's database for the job store."""
    engine = create_sync_engine(sync_url(url), pool_pre_ping=True)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _discard(aps: LoopScheduler, engine: Engine | None) -> None:
    """Stop an APScheduler without waiting for its jobs, and close its job store's connections."""
    if aps.running:
        aps.shutdown(wait=False)  # shuts the job store down, which disposes its engine
    elif engine is not None:
        engine.dispose()


def holder_name() -> str:
    """This process in the leases table: host, pid and a random part."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"[:200]


class Scheduler:
    """APScheduler run by the lease holder; any node may ask for jobs."""

    def __init__(
        self,
        db: async_sessionmaker[AsyncSession],
        settings: Settings,
        *,
        lead: bool = True,
        holder: str = "",
        lease_name: str = LEASE_NAME,
        reconcile_seconds: float = RECONCILE_SECONDS,
    ) -> None:
        self.db = db
        self.settings = settings
        self.lead = lead  # False: never runs jobs, only asks for them (a command-line tool)
        self.holder = holder or holder_name()
        self.lease_name = lease_name
        self.ttl = timedelta(seconds=settings.scheduler_lease_seconds)
        self.reconcile_seconds = reconcile_seconds
        self.leading = False
        self._aps: LoopScheduler | None = None
        self._lease_task: asyncio.Task[None] | None = None
        self._reconcile_task: asyncio.Task[None] | None = None
        self._closed = False

    # -- lifetime ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the job store (paused) and, when leading is allowed, start competing for the lease."""
        import_job_modules()
        if not self.lead:
            self._aps = await self._new_aps(paused=True)
            return
        try:
            self._aps = await self._new_aps(paused=True)
        except Exception:
            # The database may be down at start; the lease loop opens the job store later.
            log.warning("job store unavailable at start; retrying", exc_info=True)
        self._lease_task = asyncio.create_task(self._lease_loop(), name="scheduler-lease")

    async def close(self) -> None:
        """Stop running jobs and give the lease up; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        if self._lease_task is not None:
            self._lease_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._lease_task
        await self._stop_reconciling()
        stopped = self._shutdown_aps()
        if stopped is not None:
            # The job store closes in a worker thread; a store stuck on a lock is not waited for.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(stopped), CLOSE_WAIT_SECONDS)
        if self.leading and self.lead:
            self.leading = False
            try:
                async with self.db() as db:
                    await lease.release(db, self.lease_name, self.holder)
                    await db.commit()
            except Exception:  # the database may be gone already; the lease then expires
                log.warning("could not release the scheduler lease", exc_info=True)

    async def _new_aps(self, *, paused: bool) -> LoopScheduler:
        engine = job_engine(self.settings.database_url)
        aps = LoopScheduler(
            jobstores={"default": SQLAlchemyJobStore(engine=engine, tablename=JOB_TABLE)},
            job_defaults=JOB_DEFAULTS,
            timezone=self.settings.tz,
            event_loop=asyncio.get_running_loop(),
        )
        for attempt in range(3):
            # Starting reads (and the first time creates) the job table: not in the loop. The
            # thread is shielded: cancelled here (the node closing), it still finishes, and what
            # it started is shut down then, so no connection of the job store is left open.
            starting = asyncio.ensure_future(asyncio.to_thread(aps.start, paused))
            try:
                await asyncio.shield(starting)
                return aps
            except asyncio.CancelledError:
                starting.add_done_callback(lambda _: _discard(aps, engine))
                raise
            except Exception:
                # Two nodes creating the table at the same moment: one of them retries.
                if attempt == 2:
                    _discard(aps, engine)
                    raise
                log.warning("job store not ready, retrying", exc_info=True)
                await asyncio.sleep(0.2 * (attempt + 1))
        raise AssertionError("unreachable")

    def _shutdown_aps(self) -> asyncio.Future[None] | None:
        """Stop the APScheduler at once; the returned future is done when its store is closed."""
        aps, self._aps = self._aps, None
        if aps is None:
            return None
        _discard(aps, None)
        return aps.stopped

    # -- the lease --------------------------------------------------------------------------

    async def _lease_loop(self) -> None:
        interval = self.ttl.total_seconds() / 3
        while True:
            try:
                async with self.db() as db:
                    held = await lease.acquire(db, self.lease_name, self.holder, self.ttl)
                    await db.commit()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("could not renew the scheduler lease", exc_info=True)
                held = False
            try:
                if held and not self.leading:
                    await self._take_over()
                elif not held and self.leading:
                    await self._step_down()
                elif self._aps is None:
                    self._aps = await self._new_aps(paused=not self.leading)
                if self.leading and self._aps is not None:
                    self._aps.wakeup()  # jobs other nodes wrote to the table since the last look
            except asyncio.CancelledError:
                raise
            except (SQLAlchemyError, OSError) as exc:
                log.warning("scheduler job store unavailable: %s", exc)
            except Exception:
                log.exception("scheduler change of role failed")
            await asyncio.sleep(interval)

    async def _take_over(self) -> None:
        self._shutdown_aps()
        self._aps = await self._new_aps(paused=False)
        self.leading = True
        log.info("this node runs the scheduler", extra={"holder": self.holder})
        self._reconcile_task = asyncio.create_task(self._reconcile_loop(), name="scheduler-reconcile")

    async def _step_down(self) -> None:
        self.leading = False
        log.warning("scheduler lease lost; standing by", extra={"holder": self.holder})
        await self._stop_reconciling()
        self._shutdown_aps()
        self._aps = await self._new_aps(paused=True)

    async def _stop_reconciling(self) -> None:
        task, self._reconcile_task = self._reconcile_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _reconcile_loop(self) -> None:
        while True:
            started = time.monotonic()
            await self.reconcile()
            await asyncio.sleep(max(0.0, self.reconcile_seconds - (time.monotonic() - started)))

    async def reconcile(self) -> None:
        """Call every reconcile hook; one failing does not stop the others."""
        for hook in reconcilers():
            try:
                await hook(self)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("reconcile hook failed", extra={"hook": getattr(hook, "__qualname__", "?")})

    # -- asking for jobs --------------------------------------------------------------------

    async def schedule_once(
        self,
        job_id: str,
        func: Callable[..., Awaitable[None]],
        run_at: datetime,
        args: Sequence[str | int] = (),
    ) -> None:
        """Run func(*args) once at run_at (aware); replaces the job with this id."""
        if run_at.tzinfo is None:
            raise ValueError("run_at must be an aware datetime")
        await self._add(job_id, func, DateTrigger(run_date=run_at, timezone=self.settings.tz), args)

    async def schedule_cron(
        self,
        job_id: str,
        func: Callable[..., Awaitable[None]],
        *,
        args: Sequence[str | int] = (),
        **cron: Any,
    ) -> None:
        """Run func(*args) on a cron rule in the configured zone; weekdays by name (mon-fri)."""
        day_of_week = str(cron.get("day_of_week", ""))
        if any(ch.isdigit() for ch in day_of_week):
            raise ValueError("name weekdays (mon-fri), never number them: APScheduler counts from Monday")
        await self._add(job_id, func, CronTrigger(timezone=self.settings.tz, **cron), args)

    async def _add(
        self, job_id: str, func: Callable[..., Awaitable[None]], trigger: Any, args: Sequence[str | int]
    ) -> None:
        aps = self._aps
        if aps is None:
            # The scheduler is off (tests) or stopping; the reconcile hooks recreate the job later.
            log.debug("scheduler not running; job %s not scheduled", job_id)
            return
        if "<" in getattr(func, "__qualname__", "<"):
            raise ValueError("a persisted job must be a module-level function")
        await asyncio.to_thread(
            aps.add_job,
            func,
            trigger,
            args=list(args),
            id=job_id,
            name=job_id,
            replace_existing=True,
        )

    async def remove_job(self, job_id: str) -> bool:
        """Remove a job; False when there was none."""
        aps = self._aps
        if aps is None:
            return False
        try:
            await asyncio.to_thread(aps.remove_job, job_id)
        except JobLookupError:
            return False
        return True

    async def job_ids(self) -> list[str]:
        """The ids of the stored jobs."""
        aps = self._aps
        if aps is None:
            return []
        jobs = await asyncio.to_thread(aps.get_jobs)
        return [job.id for job in jobs]
