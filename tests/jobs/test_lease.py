"""The lease: one holder at a time, renewals, takeover after expiry, on both databases."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from meetings.db import create_engine, create_sessionmaker
from meetings.db.base import utcnow
from meetings.jobs import lease

TTL = timedelta(seconds=2)


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(database_url)
    yield create_sessionmaker(engine)
    await engine.dispose()


async def acquire(db: async_sessionmaker[AsyncSession], holder: str, at: datetime | None = None) -> bool:
    async with db() as s:
        ok = await lease.acquire(s, "scheduler", holder, TTL, now=at)
        await s.commit()
        return ok


async def test_one_holder_then_takeover_after_the_ttl(db: async_sessionmaker[AsyncSession]) -> None:
    t0 = utcnow()
    assert await acquire(db, "node-a", t0)
    assert not await acquire(db, "node-b", t0)
    assert await acquire(db, "node-a", t0 + timedelta(seconds=1))  # renewed: now valid until t0+3s
    assert not await acquire(db, "node-b", t0 + timedelta(seconds=2.5))
    # node-a stops renewing; once its lease has expired node-b takes it, and node-a cannot come back.
    assert await acquire(db, "node-b", t0 + timedelta(seconds=3.5))
    assert not await acquire(db, "node-a", t0 + timedelta(seconds=3.6))
    async with db() as s:
        assert await lease.holder_of(s, "scheduler", t0 + timedelta(seconds=4)) == "node-b"


async def test_release_hands_over_at_once(db: async_sessionmaker[AsyncSession]) -> None:
    assert await acquire(db, "node-a")
    async with db() as s:
        assert not await lease.release(s, "scheduler", "node-b")  # not its lease
        assert await lease.release(s, "scheduler", "node-a")
        await s.commit()
    assert await acquire(db, "node-b")


async def test_simultaneous_first_acquires_have_one_winner(db: async_sessionmaker[AsyncSession]) -> None:
    results = await asyncio.gather(*(acquire(db, f"node-{i}") for i in range(4)))
    assert sorted(results) == [False, False, False, True]
