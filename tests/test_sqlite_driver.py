"""The SQLite driver makes one trip to the connection's thread per statement, none for a COMMIT or
ROLLBACK with nothing open, and answers as sqlite3 does (rows, rowcount, lastrowid, errors)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import aiosqlite
import pytest
from sqlalchemy import CursorResult, text
from sqlalchemy.exc import IntegrityError

from meetings.db import create_engine, create_sessionmaker


@pytest.fixture
def trips(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The name of each function aiosqlite runs on a connection's thread, in order."""
    seen: list[str] = []
    original: Any = aiosqlite.Connection._execute  # untyped in aiosqlite

    async def counted(self: aiosqlite.Connection, fn: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(getattr(fn, "__name__", repr(fn)))
        return await original(self, fn, *args, **kwargs)

    monkeypatch.setattr(aiosqlite.Connection, "_execute", counted)
    yield seen


async def test_one_trip_per_statement_and_none_for_an_empty_commit(tmp_path: Path, trips: list[str]) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'd.sqlite3'}")
    sessions = create_sessionmaker(engine)
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, n INTEGER NOT NULL UNIQUE)"))
    async with sessions() as db:
        await db.execute(text("SELECT 1"))  # the connection is checked out and ready
        trips.clear()
        rows = (await db.execute(text("SELECT :a AS a, :b AS b"), {"a": 1, "b": "x"})).all()
        assert [tuple(r) for r in rows] == [(1, "x")]
        assert len(trips) == 1, trips
        inserted = cast(CursorResult[Any], await db.execute(text("INSERT INTO t (n) VALUES (7)")))
        assert inserted.lastrowid == 1
        changed = cast(CursorResult[Any], await db.execute(text("UPDATE t SET n = n + 1 WHERE n IN (7, 9)")))
        assert changed.rowcount == 1
        await db.execute(text("INSERT INTO t (n) VALUES (:n)"), [{"n": 20}, {"n": 21}, {"n": 22}])
        assert len(trips) == 4, trips  # one each: the select, two inserts (one executemany), the update
        await db.commit()  # the write queue's COMMIT; SQLAlchemy's own then finds nothing open
        assert trips[4:] == ["commit"], trips
        trips.clear()
        many = await db.execute(text("SELECT n FROM t ORDER BY n"))
        assert many.fetchmany(2) == [(8,), (20,)]
        assert many.fetchall() == [(21,), (22,)]
        await db.commit()  # a read only: nothing to commit, no trip
        assert len(trips) == 1, trips
    assert len(trips) == 1, trips  # the pool's reset: nothing to roll back, no trip
    async with sessions() as db:
        await db.execute(text("INSERT INTO t (n) VALUES (100)"))
        with pytest.raises(IntegrityError):
            await db.execute(text("INSERT INTO t (n) VALUES (100)"))
        await db.rollback()
    async with sessions() as db:
        assert (await db.execute(text("SELECT count(*) FROM t WHERE n = 100"))).scalar() == 0
    await engine.dispose()
