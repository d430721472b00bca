"""Writes under contention: N concurrent editors on one minutes, with 60 participants watching.

``python -m bench contention`` (N = 8 and 16 clients; ``--quick``: 8; ``--sizes 4,8,16``). For each
database (SQLite in a temporary folder; PostgreSQL too when GIAOBAN_TEST_POSTGRES_URL is set, in a
database named after it with ``_bench`` appended) and each N, one run side by side:

- **baseline**: the engine as it was before issue 14 (SQLite: WAL, foreign keys, busy_timeout
  5000 ms, the driver's own deferred BEGIN at the first write; a copy kept in this file and put in
  place of ``meetings.db.create_engine`` for that run only);
- **immediate** (SQLite only): our engine with ``sqlite_writers="immediate"``: ``BEGIN
  IMMEDIATE`` at the first write, but the writers wait in SQLite's busy handler (no queue);
- **ours**: ``meetings.db.create_engine`` as it is (writers take turns on a FIFO queue, then
  ``BEGIN IMMEDIATE``).

The rest of the app is the same code in both. Each run: a fresh database, the real app on
127.0.0.1 (in this process), a meeting in progress and its minutes, 60 participants signed in and
watching the minutes over the live WebSocket, and N editors (one chair, N-1 secretaries) signed in.
Each editor then does ROUNDS rounds, all editors at once: add an entry (POST, with an idempotency
key), save it (PUT with its version), read the minutes (GET /api/minutes/{id}). Every request's
latency and status are kept; p50/p99/max are over the writes (add and save) and the reads apart.
After the run the minutes must hold every acknowledged add exactly once: a missing or doubled
entry prints MISMATCH and makes the exit status 1 (5xx answers are counted and printed, and also
make it 1 for ours). Each run is bounded to RUN_LIMIT_S seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer
from sqlalchemy import event, func, select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

import web.app
from bench._minutes_world import PASSWORD, SECRET, login, meeting_minutes
from bench._postgres import reset_postgres
from meetings.accounts.passwords import hash_password
from meetings.db import create_engine
from meetings.db.migrate import upgrade_sync
from meetings.db.models import import_all
from meetings.directory.models import Person, Role, Unit, UnitKind
from meetings.minutes.models import Entry
from meetings.settings import load_settings
from web import csrf, keys
from web.app import create_app

NAME = "contention"
DEFAULT_SIZES = [8, 16]
QUICK_SIZES = [8]
ROUNDS = 20
PARTICIPANTS = 60
RUN_LIMIT_S = 240.0
PG_ENV = "GIAOBAN_TEST_POSTGRES_URL"


# --- the baseline: the engine before issue 14, kept here to measure against ------------------


def _baseline_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def baseline_engine(url: str) -> AsyncEngine:
    """The engine as it was: WAL, foreign keys, busy_timeout 5 s, the driver's deferred BEGIN."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = create_async_engine(url)
        event.listen(engine.sync_engine, "connect", _baseline_pragmas)
        return engine
    return create_async_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10)


@contextlib.contextmanager
def _engine_of(variant: str) -> Iterator[None]:
    """Run the app with the baseline engine (only inside this block) or with ours."""
    if variant == "ours":
        yield
        return
    original = web.app.create_engine
    if variant == "immediate":
        web.app.create_engine = lambda url: create_engine(url, sqlite_writers="immediate")
    else:
        web.app.create_engine = baseline_engine
    try:
        yield
    finally:
        web.app.create_engine = original


# --- one run -----------------------------------------------------------------------------------


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else float("nan")


async def _setup(server: TestServer, editors: int) -> tuple[int, list[str], list[str]]:
    """People, a meeting in progress and its minutes: (minutes id, editor emails, participant emails)."""
    password = hash_password(PASSWORD)
    async with server.app[keys.DB]() as db:
        centre = Unit(code="P-BENCH", kind=UnitKind.CENTRE, name="Phường Bench", active=True, search_text="")
        db.add(centre)
        await db.flush()
        writers = [f"editor{i}@bench.example" for i in range(editors)]
        watchers = [f"participant{i}@bench.example" for i in range(PARTICIPANTS)]
        for i, email in enumerate(writers):
            role = Role.CHAIR if i == 0 else Role.SECRETARY
            db.add(Person(email=email, name=email, role=role, unit_id=centre.id, password_hash=password))
        for email in watchers:
            db.add(
                Person(email=email, name=email, role=Role.MEMBER, unit_id=centre.id, password_hash=password)
            )
        await db.commit()
        return await meeting_minutes(db), writers, watchers


class Tally:
    """Latencies and statuses of one run."""

    def __init__(self) -> None:
        self.writes: list[float] = []
        self.reads: list[float] = []
        self.statuses: Counter[int] = Counter()
        self.acked: list[str] = []  # the idempotency keys of adds answered 201/200
        self.stopped = False

    async def timed(self, kind: str, call: Any) -> tuple[int, Any]:
        started = time.perf_counter()
        async with call as response:
            body = await response.read()
        took = time.perf_counter() - started
        (self.writes if kind == "write" else self.reads).append(took)
        self.statuses[response.status] += 1
        data = json.loads(body) if response.content_type == "application/json" else None
        return response.status, data


async def _editor(
    server: TestServer,
    http: aiohttp.ClientSession,
    token: str,
    minutes_id: int,
    n: int,
    tally: Tally,
    deadline: float,
) -> None:
    entries = server.make_url(f"/api/minutes/{minutes_id}/entries")
    headers = {csrf.HEADER: token}
    for i in range(ROUNDS):
        if time.monotonic() > deadline:
            tally.stopped = True
            return
        key = str(uuid.uuid4())
        status, body = await tally.timed(
            "write",
            http.post(
                entries, json={"kind": "note", "text": f"editor {n} entry {i}", "key": key}, headers=headers
            ),
        )
        if status in (200, 201):
            tally.acked.append(key)
            entry = body["entry"]
            await tally.timed(
                "write",
                http.put(
                    f"{entries}/{entry['id']}",
                    json={
                        "kind": "note",
                        "text": f"editor {n} entry {i}, saved",
                        "version": entry["version"],
                    },
                    headers=headers,
                ),
            )
        await tally.timed("read", http.get(server.make_url(f"/api/minutes/{minutes_id}")))


async def _watch(ws: aiohttp.ClientWebSocketResponse) -> int:
    pushes = 0
    async for msg in ws:
        if msg.type == aiohttp.WSMsgType.TEXT and json.loads(msg.data).get("type") == "entry":
            pushes += 1
    return pushes


async def _one_run(url: str, editors: int, var_dir: Path) -> dict[str, Any]:
    settings = load_settings(
        environ={},
        database_url=url,
        secret_key=SECRET,
        var_dir=str(var_dir),
        log_format="text",
        log_level="CRITICAL",
        mail_catcher_port=0,
        scheduler_enabled=False,
    )
    server = TestServer(create_app(settings), host="127.0.0.1")
    await server.start_server()
    sessions: list[aiohttp.ClientSession] = []
    tally = Tally()
    logging.disable(logging.CRITICAL)  # the baseline's 500s log tracebacks; they are counted instead
    try:
        minutes_id, writers, watchers = await _setup(server, editors)
        origin = str(server.make_url("/")).rstrip("/")
        ws_url = server.make_url(f"/minutes/{minutes_id}/ws")
        watching = []
        for email in watchers:
            http, _ = await login(server, email)
            sessions.append(http)
            ws = await http.ws_connect(ws_url, headers={"Origin": origin})
            watching.append(asyncio.create_task(_watch(ws)))
        logged = [await login(server, email) for email in writers]
        sessions += [h for h, _ in logged]
        deadline = time.monotonic() + RUN_LIMIT_S
        started = time.perf_counter()
        await asyncio.gather(
            *(_editor(server, h, t, minutes_id, n, tally, deadline) for n, (h, t) in enumerate(logged))
        )
        took = time.perf_counter() - started
        async with server.app[keys.DB]() as db:
            stored = await db.scalar(
                select(func.count()).select_from(Entry).where(Entry.minutes_id == minutes_id)
            )
            keys_found = set(await db.scalars(select(Entry.add_key).where(Entry.minutes_id == minutes_id)))
        for http in sessions:
            await http.close()
        sessions.clear()
        for task in watching:
            task.cancel()
        await asyncio.gather(*watching, return_exceptions=True)
    finally:
        logging.disable(logging.NOTSET)
        for http in sessions:
            await http.close()
        await server.close()
    return {
        "tally": tally,
        "seconds": took,
        "stored": int(stored or 0),
        "missing": len(set(tally.acked) - keys_found) if keys_found else 0,
    }


# --- databases ---------------------------------------------------------------------------------


def _run_on(database: str, editors: int, variant: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp, _engine_of(variant):
        if database == "sqlite":
            url = f"sqlite+aiosqlite:///{Path(tmp) / 'bench.sqlite3'}"
            upgrade_sync(url)
        else:
            url = asyncio.run(reset_postgres(os.environ[PG_ENV]))
        return asyncio.run(_one_run(url, editors, Path(tmp) / "var"))


def _line(label: str, r: dict[str, Any]) -> str:
    t: Tally = r["tally"]
    five = sum(n for s, n in t.statuses.items() if s >= 500)
    other = {s: n for s, n in sorted(t.statuses.items()) if s not in (200, 201) and s < 500}
    ms = [_pct(t.writes, q) * 1000 for q in (0.5, 0.99)] + [max(t.writes, default=0) * 1000]
    rd = [_pct(t.reads, q) * 1000 for q in (0.5, 0.99)]
    return (
        f"  {label:<9}{len(t.writes):>7}{ms[0]:>9.1f}{ms[1]:>9.1f}{ms[2]:>9.1f}{rd[0]:>9.1f}{rd[1]:>9.1f}"
        f"{five:>6}{len(t.acked):>7}{r['stored']:>7}{r['seconds']:>7.1f}"
        + (f"  other: {other}" if other else "")
        + ("  (stopped at the bound)" if t.stopped else "")
    )


def run(sizes: Sequence[int]) -> int:
    """For each database and each N: baseline and ours side by side, p50/p99 and 5xx counts."""
    import_all()
    databases = ["sqlite"] + (["postgresql"] if os.environ.get(PG_ENV) else [])
    status = 0
    load = os.getloadavg()
    print(
        f"Contention benchmark — {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} CPUs, "
        f"load average {load[0]:.2f}; {ROUNDS} rounds of add+save+read per editor, {PARTICIPANTS} watching"
    )
    for database in databases:
        for editors in sizes:
            variants = ("baseline", "immediate", "ours") if database == "sqlite" else ("baseline", "ours")
            results = {v: _run_on(database, editors, v) for v in variants}
            print(f"{database}, {editors} concurrent editors:")
            print(
                f"  {'engine':<9}{'writes':>7}{'w p50':>9}{'w p99':>9}{'w max':>9}{'r p50':>9}{'r p99':>9}"
                f"{'5xx':>6}{'acked':>7}{'stored':>7}{'s':>7}   (ms)"
            )
            for variant, r in results.items():
                print(_line(variant, r))
            b, o = results["baseline"]["tally"], results["ours"]["tally"]
            b99, o99 = _pct(b.writes, 0.99), _pct(o.writes, 0.99)
            b50, o50 = _pct(b.writes, 0.5), _pct(o.writes, 0.5)
            print(f"  ratio ours/baseline, writes: p50 ×{o50 / b50:.2f}, p99 ×{o99 / b99:.2f}")
            for variant, r in results.items():
                t = r["tally"]
                if r["stored"] != len(t.acked) or r["missing"]:
                    print(
                        f"  MISMATCH ({variant}): {len(t.acked)} adds acknowledged, {r['stored']} entries "
                        f"stored, {r['missing']} acknowledged keys missing"
                    )
                    status = 1
                if variant == "ours" and any(s >= 500 for s in t.statuses):
                    status = 1
    return status
