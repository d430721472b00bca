"""Where a minutes save's time goes on the server: ``python -m bench._minutes_phases [VIEWERS]``.

Runs the WebSocket phase of ``bench minutes`` on SQLite (PostgreSQL too when
GIAOBAN_TEST_POSTGRES_URL is set) and splits each save (web.views.minutes.run_edit) into the
reads before its write turn with the wait for the turn (the engine's queue waits before any
listener added here runs), the turn up to COMMIT, the COMMIT and what follows; it also lists
one save's statements and, on SQLite, its trips to the connection's thread. A diagnostic, not
a benchmark: it wraps the server's functions to time them.
"""

from __future__ import annotations

import contextvars
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import aiosqlite
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

import bench.minutes as bench_minutes
import web.app
from meetings.db import engine as db_engine
from web.views import minutes as views

_marks: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar("marks", default=None)


@contextmanager
def _instrumented(saves: list[dict[str, Any]]) -> Iterator[None]:
    run_edit, commit, trip, make = (
        views.run_edit,
        AsyncSession.commit,
        aiosqlite.Connection._execute,
        web.app.create_engine,
    )

    ws_editor = bench_minutes._ws_editor
    editing = [0]  # WebSocket editors at work: only their saves are timed

    async def counted_editor(*args: Any, **kwargs: Any) -> Any:
        editing[0] += 1
        try:
            return await ws_editor(*args, **kwargs)
        finally:
            editing[0] -= 1

    async def timed_run_edit(*args: Any, **kwargs: Any) -> Any:
        if not editing[0]:
            return await run_edit(*args, **kwargs)
        marks: dict[str, Any] = {"start": time.perf_counter(), "sql": [], "trips": []}
        _marks.set(marks)
        try:
            return await run_edit(*args, **kwargs)
        finally:
            marks["end"] = time.perf_counter()
            saves.append(marks)

    async def timed_commit(self: AsyncSession) -> None:
        marks = _marks.get()
        if marks is not None:
            marks["commit"] = time.perf_counter()
        try:
            await commit(self)
        finally:
            if marks is not None:
                marks["committed"] = time.perf_counter()

    async def counted_trip(self: aiosqlite.Connection, fn: Any, *args: Any, **kwargs: Any) -> Any:
        marks = _marks.get()
        if marks is not None:
            marks["trips"].append(getattr(fn, "__name__", repr(fn)))
        return await trip(self, fn, *args, **kwargs)

    def engine(url: str, **kwargs: Any) -> AsyncEngine:
        made = db_engine.create_engine(url, **kwargs)

        def before(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
            marks = _marks.get()
            if marks is not None:
                marks["sql"].append(" ".join(statement.split())[:100])
                if "write" not in marks and statement.lstrip()[:6].upper() in {"UPDATE", "INSERT", "DELETE"}:
                    marks["write"] = time.perf_counter()

        event.listen(made.sync_engine, "before_cursor_execute", before)
        return made

    bench_minutes._ws_editor = counted_editor  # type: ignore[assignment]
    views.run_edit = timed_run_edit  # type: ignore[assignment]
    AsyncSession.commit = timed_commit  # type: ignore[method-assign]
    aiosqlite.Connection._execute = counted_trip  # type: ignore[method-assign]
    web.app.create_engine = engine  # type: ignore[assignment]
    try:
        yield
    finally:
        views.run_edit = run_edit
        bench_minutes._ws_editor = ws_editor
        AsyncSession.commit = commit  # type: ignore[method-assign]
        aiosqlite.Connection._execute = trip  # type: ignore[method-assign]
        web.app.create_engine = make


def _line(name: str, values: list[float]) -> str:
    p50, p99 = (bench_minutes._pct(values, q) * 1000 for q in (0.5, 0.99))
    return f"  {name:<26} p50 {p50:6.1f} ms   p99 {p99:6.1f} ms"


def main(viewers: int) -> None:
    """Run and print the phases of every WebSocket save."""
    from meetings.db.models import import_all

    import_all()
    databases = ["sqlite"] + (["postgresql"] if bench_minutes.os.environ.get(bench_minutes.PG_ENV) else [])
    for database in databases:
        saves: list[dict[str, Any]] = []
        with _instrumented(saves):
            r = bench_minutes._on(database, viewers)
        ws = [s for s in saves if "write" in s and "committed" in s]
        p50, p99 = r["ws_p50"] * 1000, r["ws_p99"] * 1000
        print(f"{database}, {viewers} viewers: WebSocket p50 {p50:.1f} ms, p99 {p99:.1f} ms")
        print(f"  one save: {len(ws[0]['sql'])} statements, {len(ws[0]['trips'])} trips to SQLite's thread")
        for statement in ws[0]["sql"]:
            print(f"    {statement}")
        print(_line("reads, wait for the turn", [s["write"] - s["start"] for s in ws]))
        print(_line("turn, up to COMMIT", [s["commit"] - s["write"] for s in ws]))
        print(_line("COMMIT", [s["committed"] - s["commit"] for s in ws]))
        print(_line("after the commit", [s["end"] - s["committed"] for s in ws]))
        print(_line("server, whole save", [s["end"] - s["start"] for s in ws]))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 60)
