"""Engine and session factory for SQLite (aiosqlite) and PostgreSQL (asyncpg).

SQLite has one writer at a time. Left to itself, every waiting writer polls the file lock in
its own thread (busy_timeout: sleeps of up to 100 ms, first come not first served), so under
a meeting's load some writers wait past the timeout and fail with "database is locked". Here
the writers of one engine queue instead: the first write statement of a transaction waits its
turn on an asyncio lock (first in, first out, no polling), then the transaction opens with
`BEGIN IMMEDIATE` (the driver's own, `isolation_level="IMMEDIATE"`, in the same call as the
statement; ours before a SAVEPOINT or DDL), and the lock passes on at COMMIT or ROLLBACK.
Reads before the first write run outside any transaction, as with the driver's deferred
BEGIN before, so page views never queue and a transaction never has to upgrade a read
snapshot to a write (the classic cause of "database is locked" despite busy_timeout).
busy_timeout still covers other processes on the same file (the command line, a second
server).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from pathlib import Path
from typing import Any

from sqlalchemy import event, exc
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.util import await_only

from meetings.db import sqlite_driver

log = logging.getLogger("giaoban.db")

BUSY_TIMEOUT_MS = 5000
# How long a writer waits for its turn in this process before giving up ("database is locked").
WRITE_QUEUE_TIMEOUT_S = 30.0
SQLITE_POOL, SQLITE_OVERFLOW = 10, 40
# Statements that write (or, for SAVEPOINT, open a transaction that will): they start a write
# transaction. Everything else (SELECT, PRAGMA reads) runs in autocommit until then.
_WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE", "CREATE", "DROP", "ALTER", "SAVEPOINT")
_OPENS_ITSELF = ("INSERT", "UPDATE", "DELETE", "REPLACE")  # the driver's implicit BEGIN IMMEDIATE
_HOLDS = "giaoban_write_turn"


def is_sqlite(url: str) -> bool:
    """True when the URL names a SQLite database."""
    return make_url(url).get_backend_name() == "sqlite"


def is_locked(error: BaseException) -> bool:
    """Whether an error is SQLite's "database is locked" (another writer held the file too long)."""
    return isinstance(error, exc.OperationalError) and "database is locked" in str(error.orig)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    # WAL lets readers run beside the single writer; foreign keys are off by default in SQLite.
    cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


class _WriteQueue:
    """One writer at a time for an engine's connections, in arrival order (see the module doc)."""

    def __init__(self, *, queue: bool = True) -> None:
        self.lock: asyncio.Lock | None = None
        self.queue = queue  # False: BEGIN IMMEDIATE only, waiting in SQLite's busy handler

    def _lock(self) -> asyncio.Lock:
        if self.lock is None:
            self.lock = asyncio.Lock()
        return self.lock

    def connect(self, dbapi_conn: Any, _record: Any) -> None:
        # The driver opens the transaction with BEGIN IMMEDIATE before the first INSERT, UPDATE
        # or DELETE, in the same call as the statement (no extra round trip in the turn).
        dbapi_conn.isolation_level = "IMMEDIATE"

    def before_execute(
        self, conn: Connection, cursor: Any, statement: str, _params: Any, _context: Any, _many: bool
    ) -> None:
        if conn.info.get(_HOLDS) or not statement.lstrip()[:9].upper().startswith(_WRITES):
            return
        if self.queue:
            try:
                await_only(asyncio.wait_for(self._lock().acquire(), WRITE_QUEUE_TIMEOUT_S))
            except TimeoutError as error:
                raise sqlite3.OperationalError("database is locked") from error
        conn.info[_HOLDS] = True
        if statement.lstrip()[:9].upper().startswith(_OPENS_ITSELF):
            return
        # The driver opens no transaction before a SAVEPOINT or DDL: open it here, so that a
        # savepoint nests in it and a migration's statements commit together.
        try:
            cursor.execute("BEGIN IMMEDIATE")
        except BaseException:
            self._release(conn.info)
            raise

    def _release(self, info: dict[Any, Any]) -> None:
        if info.pop(_HOLDS, False) and self.lock is not None and self.lock.locked():
            self.lock.release()

    def commit(self, conn: Connection) -> None:
        """Commit the write transaction here (SQLAlchemy's own commit after it finds none open),
        then pass the turn on."""
        if conn.info.get(_HOLDS):
            conn.connection.dbapi_connection.commit()  # type: ignore[union-attr]
            self._release(conn.info)  # not reached if COMMIT failed: the rollback ends the turn

    def rollback(self, conn: Connection) -> None:
        """Roll the write transaction back here, then pass the turn on.

        A writer cancelled inside a statement leaves its Connection invalid (its own `info`
        then raises PendingRollbackError): the pool's connection still holds SQLite's write
        lock and the turn, so both are reached through it and released all the same."""
        fairy = conn._dbapi_connection  # the pool's connection, reachable while Connection is invalid
        if fairy is None:
            return
        info = fairy.info
        if info.get(_HOLDS):
            try:
                fairy.dbapi_connection.rollback()  # type: ignore[union-attr]
            finally:
                self._release(info)

    def checkin(self, _dbapi_conn: Any, record: Any) -> None:
        # A connection back in the pool with the turn still held (closed without commit or
        # rollback): the pool's reset has rolled it back; pass the turn on.
        if record is not None:
            self._release(record.info)


def _serialise_writers(engine: AsyncEngine, *, queue: bool) -> None:
    queue_ = _WriteQueue(queue=queue)
    sync = engine.sync_engine
    event.listen(sync, "connect", queue_.connect)
    event.listen(sync, "before_cursor_execute", queue_.before_execute)
    event.listen(sync, "commit", queue_.commit)
    event.listen(sync, "rollback", queue_.rollback)
    event.listen(sync.pool, "checkin", queue_.checkin)


def create_engine(url: str, *, sqlite_writers: str = "queue") -> AsyncEngine:
    """An async engine; SQLite gets WAL, foreign keys, a busy timeout and writers in turn.

    `sqlite_writers` is for the contention benchmark, which measures each: "queue" (the
    default: FIFO turn, then BEGIN IMMEDIATE), "immediate" (BEGIN IMMEDIATE at the first write,
    waiting in SQLite's busy handler) or "driver" (the driver's own deferred BEGIN).
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        # Connections are cheap (a thread each) and a writer waiting its turn holds one: room
        # enough that readers never wait behind queued writers for a connection.
        # One trip to the connection's thread per statement (meetings/db/sqlite_driver.py).
        driver = {"module": sqlite_driver.dbapi()} if parsed.get_driver_name() == "aiosqlite" else {}
        engine = create_async_engine(url, pool_size=SQLITE_POOL, max_overflow=SQLITE_OVERFLOW, **driver)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        if sqlite_writers != "driver":
            _serialise_writers(engine, queue=sqlite_writers == "queue")
        return engine
    return create_async_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10)


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """A session factory whose objects stay readable after commit."""
    return async_sessionmaker(engine, expire_on_commit=False)
