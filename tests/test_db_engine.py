"""SQLite writers take turns on the engine's queue: many at once all commit, and a turn always
passes on (after a commit, a rollback, an error, or a session closed without either)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from meetings.db import create_engine, create_sessionmaker
from web.render import database_clash


async def _table(path: Path) -> tuple[AsyncEngine, async_sessionmaker[AsyncSession]]:
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, n INTEGER NOT NULL UNIQUE)"))
    return engine, create_sessionmaker(engine)


async def test_many_writers_at_once_all_commit_in_turn(tmp_path: Path) -> None:
    engine, sessions = await _table(tmp_path / "w.sqlite3")

    async def writer(n: int) -> None:
        async with sessions() as db:
            await db.execute(text("SELECT count(*) FROM t"))  # a read first: no transaction yet
            await db.execute(text("INSERT INTO t (n) VALUES (:n)"), {"n": n})
            await asyncio.sleep(0)  # hold the turn across the event loop, as a handler does
            await db.execute(text("UPDATE t SET n = n WHERE n = :n"), {"n": n})
            await db.commit()

    await asyncio.gather(*(writer(n) for n in range(40)))
    async with sessions() as db:
        assert (await db.execute(text("SELECT count(*) FROM t"))).scalar() == 40
    await engine.dispose()


async def test_a_turn_passes_on_after_rollback_error_or_an_abandoned_session(tmp_path: Path) -> None:
    engine, sessions = await _table(tmp_path / "r.sqlite3")
    async with sessions() as db:
        await db.execute(text("INSERT INTO t (n) VALUES (1)"))
        await db.rollback()
    async with sessions() as db:
        await db.execute(text("INSERT INTO t (n) VALUES (2)"))
        await db.commit()
        with pytest.raises(Exception, match="UNIQUE"):
            await db.execute(text("INSERT INTO t (n) VALUES (2)"))
        await db.rollback()
    async with sessions() as db:
        await db.execute(text("INSERT INTO t (n) VALUES (3)"))  # closed without commit or rollback
    # Were any turn still held, this writer would wait 30 s and fail with "database is locked".
    async with sessions() as db:
        await db.execute(text("INSERT INTO t (n) VALUES (4)"))
        await db.commit()
        rows = (await db.execute(text("SELECT n FROM t ORDER BY n"))).scalars().all()
    assert rows == [2, 4]
    await engine.dispose()


def test_database_clashes_are_409_or_503_never_500() -> None:
    def status(error: BaseException) -> int | None:
        clash = database_clash(error)
        return clash[0] if clash else None

    class Raced(Exception):
        sqlstate = "40001"

    assert status(IntegrityError("INSERT", {}, Exception("UNIQUE constraint failed"))) == 409
    assert status(OperationalError("UPDATE", {}, Exception("database is locked"))) == 503
    assert status(OperationalError("UPDATE", {}, Raced("could not serialize access"))) == 409
    assert status(OperationalError("SELECT", {}, Exception("no such table"))) is None
    assert status(ValueError("x")) is None
