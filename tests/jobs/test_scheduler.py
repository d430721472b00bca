"""The Scheduler in one process: URLs, cron rules by weekday name, leadership moving on close."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from meetings.db import create_engine, create_sessionmaker
from meetings.db.base import utcnow
from meetings.jobs import lease
from meetings.jobs import scheduler as jobs
from meetings.jobs.scheduler import Scheduler, sync_url
from meetings.settings import Settings, load_settings
from tests.jobs.probe import write_probe


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(database_url)
    yield create_sessionmaker(engine)
    await engine.dispose()


@pytest.fixture
def job_settings(database_url: str) -> Settings:
    return load_settings(environ={}, database_url=database_url, scheduler_lease_seconds=1)


def test_sync_url() -> None:
    assert sync_url("sqlite+aiosqlite:///./var/giaoban.sqlite3") == "sqlite:///./var/giaoban.sqlite3"
    assert (
        sync_url("postgresql+asyncpg://giaoban:p%40ss@db.internal:5432/giaoban")
        == "postgresql+psycopg://giaoban:p%40ss@db.internal:5432/giaoban"
    )


RUNS: list[str] = []  # labels of record_run's runs, in order


async def record_run(label: str) -> None:
    """A job that records each of its runs here (module-level: the job store names it)."""
    RUNS.append(label)


async def until(check: Callable[[], bool], within: float = 6.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, "not reached in time"
        await asyncio.sleep(0.05)


async def test_one_leads_and_the_other_takes_over(
    db: async_sessionmaker[AsyncSession], job_settings: Settings
) -> None:
    a = Scheduler(db, job_settings, holder="node-a")
    b = Scheduler(db, job_settings, holder="node-b")
    await a.start()
    await b.start()
    try:
        await until(lambda: a.leading or b.leading)
        await asyncio.sleep(0.5)
        assert [a.leading, b.leading].count(True) == 1
        leader, standby = (a, b) if a.leading else (b, a)
        await leader.close()
        await until(lambda: standby.leading)
        assert not leader.leading
    finally:
        await a.close()
        await b.close()


async def test_jobs_have_ids_and_weekday_names(
    db: async_sessionmaker[AsyncSession], job_settings: Settings
) -> None:
    client = Scheduler(db, job_settings, lead=False)
    await client.start()
    try:
        with pytest.raises(ValueError, match="weekdays"):
            await client.schedule_cron("bad", write_probe, day_of_week="0-4", hour=7)

        async def local() -> None:
            return None

        with pytest.raises(ValueError, match="module-level"):
            await client.schedule_once("bad", local, utcnow())
        run_at = utcnow() + timedelta(days=1)
        for _ in range(2):  # the same ids replace, never add
            await client.schedule_cron(
                "t:weekdays", write_probe, args=["cron"], day_of_week="mon-fri", hour=7
            )
            await client.schedule_once("t:once", write_probe, run_at, args=["once"])
        ids = await client.job_ids()
        assert ids.count("t:weekdays") == 1 and ids.count("t:once") == 1
        assert await client.remove_job("t:once") and not await client.remove_job("t:once")
        assert await client.remove_job("t:weekdays")
    finally:
        await client.close()


async def test_reconcile_hooks_are_registered_once() -> None:
    jobs.import_job_modules()
    hooks = jobs.reconcilers()
    jobs.reconciler(hooks[0])
    assert jobs.reconcilers() == hooks
    assert any(h.__module__ == "meetings.mail.jobs" for h in hooks)


async def test_a_due_job_runs_once_while_an_app_transaction_holds_the_write_lock(
    db: async_sessionmaker[AsyncSession], job_settings: Settings
) -> None:
    """On SQLite the job table shares the app's file and its one write lock. A job falls due
    while an app transaction holds that lock across awaits: the job runs, and the scheduler's
    removal of the done job waits for the commit without stopping the event loop. (On the
    loop's thread the removal waited in SQLite's busy handler for a lock only the loop could
    release, failed after 5 s, and the job, left in the table, ran a second time.)"""
    label = uuid.uuid4().hex
    node = Scheduler(db, job_settings, holder="node-a")
    await node.start()
    try:
        await until(lambda: node.leading)
        await node.schedule_once("t:held", record_run, utcnow() + timedelta(seconds=1), args=[label])
        async with db() as session:
            assert await lease.acquire(session, "t:other", "holder", timedelta(minutes=1))  # writes
            await until(lambda: label in RUNS, within=15.0)
            await asyncio.sleep(0.5)  # the scheduler's removal of the done job waits meanwhile
            await session.commit()
        deadline = time.monotonic() + 10.0
        while "t:held" in await node.job_ids():
            assert time.monotonic() < deadline, "the done job is still in the table"
            await asyncio.sleep(0.1)
        await asyncio.sleep(2.0)  # lease renewals nudge the scheduler: a second run would show
        assert RUNS.count(label) == 1
    finally:
        await node.close()
