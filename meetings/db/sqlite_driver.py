"""aiosqlite under SQLAlchemy with one trip to the connection's thread per statement.

aiosqlite runs each call on the connection's own thread and hands the answer back through the
event loop. SQLAlchemy's adapter makes three or four such trips for one statement (open a
cursor, execute, fetch the rows, close the cursor), and on a busy node each trip waits for
the loop to come round: a minutes save measured 17 trips for four statements, most of its
time. Here a statement is one trip (cursor, execute, rows, close run together on the
thread), and COMMIT or ROLLBACK without an open transaction makes none (sqlite3 would do
nothing with them: the write queue has committed already; the pool's reset after a commit
finds nothing to roll back).

It relies on aiosqlite's `Connection._execute` (run a function on the connection's thread),
present since aiosqlite 0.1; every SQLite test runs through it.
"""

from __future__ import annotations

import collections
import sqlite3
from collections.abc import Sequence
from typing import Any

from sqlalchemy.connectors.asyncio import AsyncAdapt_dbapi_connection
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
)
from sqlalchemy.util import EMPTY_DICT

_Outcome = tuple[Any, list[Any], int, int | None]  # description, rows, rowcount, lastrowid


def _run(conn: sqlite3.Connection, operation: str, parameters: Any, many: bool) -> _Outcome:
    """On the connection's thread: one statement from cursor to close."""
    cursor = conn.cursor()
    try:
        if many:
            cursor.executemany(operation, parameters)
        elif parameters is None:
            cursor.execute(operation)
        else:
            cursor.execute(operation, parameters)
        description = cursor.description
        rows = cursor.fetchall() if description else []
        return description, rows, cursor.rowcount, cursor.lastrowid
    finally:
        cursor.close()


class OneTripCursor(AsyncAdapt_aiosqlite_cursor):
    """A cursor whose statement, rows and close are one trip to the connection's thread."""

    __slots__ = ("_arraysize", "_description", "_lastrowid", "_rowcount")

    def __init__(self, adapt_connection: AsyncAdapt_dbapi_connection) -> None:
        # No trip here: the sqlite3 cursor lives only inside the statement's trip.
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection
        self._soft_closed_memoized = EMPTY_DICT
        self._rows = collections.deque()
        self._description: Any = None
        self._rowcount = -1
        self._lastrowid: int | None = None
        self._arraysize = 1

    @property
    def description(self) -> Any:
        """The columns of the last statement's rows (None when it returned none)."""
        return self._description

    @property
    def rowcount(self) -> int:
        """Rows the last statement changed."""
        return self._rowcount

    @property
    def lastrowid(self) -> int:
        """The rowid of the last inserted row."""
        return self._lastrowid  # type: ignore[return-value]  # as sqlite3's: None before any insert

    @property
    def arraysize(self) -> int:
        """Rows fetchmany returns by default."""
        return self._arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._arraysize = value

    async def _async_soft_close(self) -> None:
        return  # nothing is open between trips

    def close(self) -> None:
        """Forget the rows (the sqlite3 cursor closed at the end of its trip)."""
        self._rows.clear()

    async def _trip(self, operation: Any, parameters: Any, many: bool) -> None:
        async with self._adapt_connection._execute_mutex:
            conn = self._connection._conn
            outcome: _Outcome = await self._connection._execute(_run, conn, operation, parameters, many)
        self._description, rows, self._rowcount, self._lastrowid = outcome
        self._rows = collections.deque(rows)

    async def _execute_async(self, operation: Any, parameters: Any) -> Any:
        await self._trip(operation, parameters, False)

    async def _executemany_async(self, operation: Any, seq_of_parameters: Sequence[Any]) -> Any:
        await self._trip(operation, seq_of_parameters, True)

    def nextset(self) -> None:
        """SQLite has one result set per statement."""
        self._rows.clear()

    def setinputsizes(self, *inputsizes: Any) -> None:
        """Nothing to do for SQLite."""


class OneTripConnection(AsyncAdapt_aiosqlite_connection):
    """An aiosqlite connection with one-trip cursors; COMMIT and ROLLBACK only in a transaction."""

    __slots__ = ()
    _cursor_cls = OneTripCursor

    def _open(self) -> bool:
        conn = self._connection._connection  # None once closed: the base methods say so
        return conn is None or bool(conn.in_transaction)

    def commit(self) -> None:
        """Commit, if a transaction is open."""
        if self._open():
            super().commit()

    def rollback(self) -> None:
        """Roll back, if a transaction is open."""
        if self._open():
            super().rollback()


class OneTripDbapi(AsyncAdapt_aiosqlite_dbapi):
    """The DB-API module SQLAlchemy's aiosqlite dialect uses, handing out one-trip connections."""

    def connect(self, *arg: Any, **kw: Any) -> AsyncAdapt_aiosqlite_connection:
        """A new connection (its thread started by aiosqlite)."""
        adapted = super().connect(*arg, **kw)
        return OneTripConnection(self, adapted._connection)


def dbapi() -> OneTripDbapi:
    """The module to give create_async_engine(module=…) for a sqlite+aiosqlite URL."""
    import aiosqlite

    return OneTripDbapi(aiosqlite, sqlite3)
