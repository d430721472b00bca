"""APScheduler 3 on the event loop, with its job store kept off the loop's thread.

Why
    APScheduler's `AsyncIOScheduler` looks for due jobs, updates and removes them, and shuts
    its job store down on the event loop's thread, through a synchronous SQLAlchemy engine.
    On SQLite the job table shares the app's file and its one write lock. When an app
    transaction holds that lock across an `await` (every write transaction does, between its
    first statement and its commit), a job-store write on the loop's thread waits in SQLite's
    busy handler for a lock that only the loop can release: the whole node froze for the busy
    timeout (5 s), the write then failed with "database is locked", the finished job stayed
    in the table and ran again, and the exception escaped the scheduler's timer callback, so
    nothing was due again until the lease loop's next nudge. Seen on CI as a restarted
    server that did not send its missed mail for seconds, or did not stop within 30 s.

What this changes
    `LoopScheduler.wakeup` runs `_process_jobs` in a worker thread (one at a time; a wakeup
    during a run runs again after it), and `shutdown` runs in a worker thread too, so a busy
    job store waits there while the loop goes on and the app's transaction commits. The timer
    stays on the loop. `LoopExecutor` hands a job to the loop with `call_soon_threadsafe`
    (`AsyncIOExecutor` would call `create_task` from the worker thread). A failing job store is
    logged and looked at again after `RETRY_SECONDS`, never left without a timer.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import Any

from apscheduler.events import EVENT_SCHEDULER_SHUTDOWN, SchedulerEvent
from apscheduler.executors.asyncio import AsyncIOExecutor
from apscheduler.job import Job
from apscheduler.schedulers import SchedulerNotRunningError
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.schedulers.base import STATE_STOPPED

log = logging.getLogger("giaoban.scheduler")

RETRY_SECONDS = 2.0  # after a job store error, the next look at the table


class LoopExecutor(AsyncIOExecutor):  # type: ignore[misc]
    """Runs coroutine jobs on the scheduler's loop; may be handed jobs from any thread."""

    _closed = False

    def shutdown(self, wait: bool = True) -> None:
        self._closed = True
        loop = self._eventloop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(super().shutdown, wait)

    def _do_submit_job(self, job: Job, run_times: list[datetime]) -> None:
        loop = self._eventloop
        if loop is None or loop.is_closed():
            return
        loop.call_soon_threadsafe(self._submit_on_loop, job, run_times)

    def _submit_on_loop(self, job: Job, run_times: list[datetime]) -> None:
        if self._closed:  # shut down between the hand-over and now: the run is not started
            self._run_job_success(job.id, [])  # counts the instance as ended; no events
            return
        super()._do_submit_job(job, run_times)


class LoopScheduler(AsyncIOScheduler):  # type: ignore[misc]
    """An `AsyncIOScheduler` whose job-store calls never run on the event loop's thread."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._processing = False
        self._again = False
        self.stopped: asyncio.Future[None] | None = None  # set by shutdown(); done once stopped

    def _create_default_executor(self) -> LoopExecutor:
        return LoopExecutor()

    def wakeup(self) -> None:
        """Look for due jobs soon; callable from any thread."""
        loop = self._eventloop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._wake)

    def _wake(self) -> None:
        self._stop_timer()
        if self.state == STATE_STOPPED or self._eventloop is None:
            return
        if self._processing:
            self._again = True
            return
        self._processing = True
        future = self._eventloop.run_in_executor(None, self._process_jobs)
        future.add_done_callback(self._processed)

    def _processed(self, future: asyncio.Future[Any]) -> None:
        self._processing = False
        if self.state == STATE_STOPPED or self._eventloop is None:
            return
        wait_seconds: float | None
        try:
            wait_seconds = future.result()
        except Exception:
            log.warning("the job store failed; looking again in %.0f s", RETRY_SECONDS, exc_info=True)
            wait_seconds = RETRY_SECONDS
        if self._again:
            self._again = False
            self._wake()
            return
        self._start_timer(wait_seconds)

    def shutdown(self, wait: bool = True) -> None:
        """Stop at once, from the loop's thread; the job store closes in a worker thread and
        `stopped` is done when it has."""
        if not self.running:
            raise SchedulerNotRunningError
        self.state = STATE_STOPPED  # no new look at the table from now on
        self._stop_timer()
        loop = self._eventloop
        if loop is None or loop.is_closed():
            self._close(wait)
            return
        self.stopped = loop.run_in_executor(None, self._close, wait)

    def _close(self, wait: bool) -> None:
        # BaseScheduler.shutdown after its state change: executors, then job stores, under the
        # locks a running look at the table holds.
        with self._executors_lock, self._jobstores_lock:
            for executor in self._executors.values():
                executor.shutdown(wait)
            for jobstore in self._jobstores.values():
                jobstore.shutdown()
        self._logger.info("Scheduler has been shut down")
        self._dispatch_event(SchedulerEvent(EVENT_SCHEDULER_SHUTDOWN))
