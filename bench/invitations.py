"""Invitations: build and queue the personalised iMIP emails of both demo series, then deliver them.

For each number of invitees N, in one run and side by side:

1. ours, build+queue: ``service.create_series`` for the morning and the afternoon series,
   inviting every unit: 2×N personal invitations built and written to the outbox, commit included.
2. baseline, build+queue: the same ``create_series``, but its fan-out replaced (in this process
   only) by the builder before issue #18 (``meetings.schedule.invitations_reference``): every
   copy built whole, one at a time, and enqueued with its own INSERT. Same bytes as ours.
3. ours, deliver: ``OutboxSender.deliver_due`` (one SMTP connection per batch) to a loopback
   SMTP sink until the outbox is empty.
4. baseline, deliver: each stored message read and sent with ``aiosmtplib.send``, a new SMTP
   connection per message (the naive way), to the same sink.

Every database is a fresh SQLite file in a temporary folder; the sink runs in a child process on
127.0.0.1; every phase stops after PHASE_LIMIT_S seconds or when its database grows past
DB_LIMIT_BYTES, and says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import cProfile
import csv
import io
import os
import platform
import pstats
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.parser import BytesHeaderParser
from email.policy import default as default_policy
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import aiosmtplib
from sqlalchemy import event, func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

import meetings
from meetings.accounts.permissions import Actor
from meetings.db import create_engine, create_sessionmaker
from meetings.db.base import utcnow
from meetings.db.migrate import upgrade_sync
from meetings.db.models import import_all
from meetings.demo import UNITS_CSV, demo_name
from meetings.directory.models import Person, Role, Unit, UnitKind
from meetings.directory.service import person_search_text, unit_search_text
from meetings.mail import outbox
from meetings.mail.models import OutboxMessage, OutboxStatus
from meetings.mail.sender import OutboxSender, SmtpConfig
from meetings.schedule import invitations, invitations_reference, service

from ._sink import HOST, Sink, start_sink

NAME = "invitations"
DEFAULT_SIZES = (60, 600, 6000)
QUICK_SIZES = (60, 600)
REPEATS_SMALL = 3  # N up to SINGLE_RUN_FROM: the median of this many runs
SINGLE_RUN_FROM = 6000  # from this N on, each measurement runs once
PHASE_LIMIT_S = 300.0
PROFILE_LIMIT_S = 60.0
DB_LIMIT_BYTES = 12 * 1024**3

DOMAIN = "hue.example"
ORGANIZER = f"giaoban@{DOMAIN}"
CHAIR = f"chutich@{DOMAIN}"
SECRETARY = f"thuky@{DOMAIN}"
BASE_URL = "https://giaoban.hue.example"
ACTOR = Actor(id=0, email="bench", name="bench", role=Role.ADMINISTRATOR, unit_id=None)

PHASES = ("ours build+queue", "baseline build+queue", "ours deliver", "baseline deliver")

T = TypeVar("T")


# --- figures ---------------------------------------------------------------------------------


@dataclass
class Measure:
    """One timed phase: how many emails, how long, how much CPU, how many bytes."""

    phase: str
    emails: int = 0
    wall: float = 0.0
    cpu: float = 0.0
    octets: int = 0
    expected: int = 0
    stopped: str = ""  # why the phase stopped before the end ("" when it finished)
    notes: list[str] = field(default_factory=list)

    @property
    def per_second(self) -> float:
        return self.emails / self.wall if self.wall > 0 else 0.0

    @property
    def ms_per_email(self) -> float:
        return 1000 * self.wall / self.emails if self.emails else float("nan")

    @property
    def kib_per_email(self) -> float:
        return self.octets / 1024 / self.emails if self.emails else float("nan")

    @property
    def complete(self) -> bool:
        return not self.stopped and self.emails == self.expected


class PhaseStopped(Exception):
    """A phase went over its time or size bound and was cancelled."""


def _files_size(paths: Sequence[Path]) -> int:
    total = 0
    for p in paths:
        for f in (p, p.with_name(p.name + "-wal"), p.with_name(p.name + "-journal")):
            with contextlib.suppress(OSError):
                total += f.stat().st_size
    return total


async def bounded(work: Awaitable[T], watch: Sequence[Path], limit: float = PHASE_LIMIT_S) -> T:
    """Await work; cancel it past `limit` seconds or when the watched databases pass DB_LIMIT_BYTES."""
    task = asyncio.ensure_future(work)
    start = time.perf_counter()
    while True:
        await asyncio.wait({task}, timeout=0.5)
        if task.done():
            return task.result()
        reason = ""
        if time.perf_counter() - start > limit:
            reason = f"stopped after {limit:.0f} s (the bound of a phase)"
        elif _files_size(watch) > DB_LIMIT_BYTES:
            reason = f"stopped: the database passed {DB_LIMIT_BYTES / 1024**3:.0f} GiB"
        if reason:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
            raise PhaseStopped(reason)


@contextlib.contextmanager
def timed(measure: Measure) -> Iterator[None]:
    """Add wall-clock and process CPU time of the block to the measure."""
    wall, cpu = time.perf_counter(), time.process_time()
    try:
        yield
    finally:
        measure.wall += time.perf_counter() - wall
        measure.cpu += time.process_time() - cpu


# --- the city ---------------------------------------------------------------------------------


def _units() -> list[tuple[str, UnitKind, str]]:
    """(code, kind, name) of the demo city: committee, departments, support, telecom, 40 centres."""
    with UNITS_CSV.open(encoding="utf-8") as f:
        return [(r["code"], UnitKind(r["kind"]), r["name"]) for r in csv.DictReader(f)]


async def populate(url: str, n: int) -> None:
    """The demo city's units and n people spread over them (chair and secretary included)."""
    engine = create_engine(url)
    now = utcnow()
    async with engine.begin() as conn:
        unit_rows = []
        for code, kind, name in _units():
            unit = Unit(code=code, kind=kind, name=name)
            unit_rows.append(
                {
                    "code": code,
                    "kind": kind,
                    "name": name,
                    "active": True,
                    "search_text": unit_search_text(unit),
                    "created_at": now,
                    "updated_at": now,
                }
            )
        await conn.execute(insert(Unit), unit_rows)
        ids = {code: uid for code, uid in await conn.execute(select(Unit.code, Unit.id))}
        codes = [code for code, _kind, _name in _units()]
        people = []
        for i in range(n):
            if i == 0:
                email, unit_code, role = CHAIR, "UBND", Role.CHAIR
            elif i == 1:
                email, unit_code, role = SECRETARY, "VP-UBND", Role.SECRETARY
            else:
                email, unit_code, role = f"nguoi{i:05d}@{DOMAIN}", codes[i % len(codes)], Role.MEMBER
            person = Person(name=demo_name(i), email=email, phone="", title="Chuyên viên")
            people.append(
                {
                    "name": person.name,
                    "email": email,
                    "phone": "",
                    "title": person.title,
                    "unit_id": ids[unit_code],
                    "role": role,
                    "active": True,
                    "password_hash": None,
                    "language": "vi",
                    "search_text": person_search_text(person),
                    "created_at": now,
                    "updated_at": now,
                }
            )
        await conn.execute(insert(Person), people)
    await engine.dispose()


def context() -> service.Context:
    """The scheduling context, as the server would build it from its settings."""
    return service.Context(
        base_url=BASE_URL,
        secret="bench-secret-key-not-for-production",
        organizer_email=ORGANIZER,
        organizer_name="Văn phòng UBND thành phố Huế",
    )


def demo_series(ctx: service.Context) -> list[service.SeriesInput]:
    """The two demo series (morning and afternoon), inviting every unit."""
    start = ctx.now.astimezone(ZoneInfo("Asia/Ho_Chi_Minh")).date().isoformat()
    codes = [code for code, _kind, _name in _units()]
    return [
        service.SeriesInput(
            title=title,
            kind=kind,
            start_time=at,
            duration_minutes="45",
            start_date=start,
            chair_email=CHAIR,
            secretary_email=SECRETARY,
            description=about,
            unit_codes=codes,
        )
        for kind, title, at, about in (
            ("morning", "Họp giao ban sáng", "07:30", "Nắm tình hình, chỉ đạo công việc trong ngày."),
            (
                "afternoon",
                "Họp giao ban chiều",
                "16:30",
                "Tổng hợp khó khăn, rút kinh nghiệm, điều chỉnh phương án vận hành.",
            ),
        )
    ]


# --- the baseline fan-out ---------------------------------------------------------------------

FANOUT = ("send_series", "send_occurrence_cancel", "send_series_cancel")


@contextlib.contextmanager
def reference_invitations() -> Iterator[None]:
    """Within the block, create_series fans out with the builder before issue #18 (this process only).

    `invitations_reference` builds every copy whole, one at a time (icalendar, Jinja, the email
    package), and enqueues each with its own INSERT: today's builder before the bulk one, whose
    output it must equal byte for byte (tests/schedule/test_bulk.py).
    """
    originals = {name: getattr(invitations, name) for name in FANOUT}
    for name in FANOUT:
        setattr(invitations, name, getattr(invitations_reference, name))
    try:
        yield
    finally:
        for name, function in originals.items():
            setattr(invitations, name, function)


# --- the four phases --------------------------------------------------------------------------


def _count_outbox_inserts(engine: AsyncEngine) -> list[int]:
    """[rows, bytes] inserted into the outbox, so that a stopped phase can say how far it got."""
    counter = [0, 0]

    def after(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO OUTBOX"):
            counter[0] += 1
            values = parameters.values() if isinstance(parameters, dict) else parameters
            counter[1] += sum(len(v) for v in values if isinstance(v, bytes | memoryview))

    event.listen(engine.sync_engine, "after_cursor_execute", after)
    return counter


async def _outbox_size(engine: AsyncEngine) -> tuple[int, int]:
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                select(func.count(), func.coalesce(func.sum(func.length(OutboxMessage.message)), 0))
            )
        ).one()
    return int(row[0]), int(row[1])


async def build(path: Path, n: int, *, baseline: bool, profile: cProfile.Profile | None = None) -> Measure:
    """Create both series (ours or the baseline fan-out) in one transaction and commit."""
    measure = Measure(PHASES[1] if baseline else PHASES[0], expected=2 * n)
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    counter = _count_outbox_inserts(engine)
    maker = create_sessionmaker(engine)
    ctx = context()
    inputs = demo_series(ctx)
    async with engine.connect() as conn:  # open the pooled connection before the clock starts
        await conn.execute(text("SELECT 1"))

    async def work() -> None:
        async with maker() as db:
            for data in inputs:
                await service.create_series(db, ACTOR, data, ctx)
            await db.commit()

    limit = PROFILE_LIMIT_S if profile is not None else PHASE_LIMIT_S
    patch = reference_invitations() if baseline else contextlib.nullcontext()
    try:
        with patch, timed(measure):
            if profile is not None:
                profile.enable()
            try:
                await bounded(work(), [path], limit)
            finally:
                if profile is not None:
                    profile.disable()
    except PhaseStopped as exc:
        measure.stopped = str(exc)
    if measure.stopped:
        measure.emails, measure.octets = counter  # built and inserted, then rolled back
        measure.notes.append(f"{counter[0]} of {2 * n} emails were built when it stopped (rolled back)")
    else:
        measure.emails, measure.octets = await _outbox_size(engine)
    await engine.dispose()
    return measure


async def _statuses(engine: AsyncEngine) -> dict[str, int]:
    async with engine.connect() as conn:
        rows = await conn.execute(select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status))
        return {str(getattr(s, "value", s)): int(c) for s, c in rows}


async def deliver_ours(path: Path, sink: Sink, expected: int) -> Measure:
    """OutboxSender.deliver_due, batch after batch, until nothing is due."""
    measure = Measure(PHASES[2], expected=expected)
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    sender = OutboxSender(
        create_sessionmaker(engine), SmtpConfig(host=HOST, port=sink.port, security="none", timeout=60)
    )
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))
    sink.reset()

    async def work() -> None:
        while await sender.deliver_due() > 0:
            pass

    try:
        with timed(measure):
            await bounded(work(), [path])
    except PhaseStopped as exc:
        measure.stopped = str(exc)
    measure.emails, measure.octets = sink.messages, sink.octets
    statuses = await _statuses(engine)
    if statuses.get(OutboxStatus.SENT.value, 0) != expected or len(statuses) != 1:
        measure.notes.append(f"outbox after delivery: {statuses}")
    await engine.dispose()
    return measure


async def deliver_naive(path: Path, sink: Sink, expected: int) -> Measure:
    """Each stored message read, sent on a new SMTP connection, marked sent, committed."""
    measure = Measure(PHASES[3], expected=expected)
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    maker = create_sessionmaker(engine)
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))
    sink.reset()
    parser = BytesHeaderParser(policy=default_policy)

    async def work() -> None:
        async with maker() as db:
            ids = list(
                await db.scalars(
                    select(OutboxMessage.id)
                    .where(OutboxMessage.status == OutboxStatus.QUEUED)
                    .order_by(OutboxMessage.id)
                )
            )
        for message_id in ids:
            async with maker() as db:
                data = await db.scalar(select(OutboxMessage.message).where(OutboxMessage.id == message_id))
                assert data is not None
                sender, recipients = outbox.envelope_of(parser.parsebytes(data))
                await aiosmtplib.send(
                    data,
                    sender=sender,
                    recipients=recipients,
                    hostname=HOST,
                    port=sink.port,
                    start_tls=False,
                    timeout=60,
                )
                await outbox.mark_sent(db, message_id, datetime.now(UTC))
                await db.commit()

    try:
        with timed(measure):
            await bounded(work(), [path])
    except PhaseStopped as exc:
        measure.stopped = str(exc)
    measure.emails, measure.octets = sink.messages, sink.octets
    statuses = await _statuses(engine)
    if statuses.get(OutboxStatus.SENT.value, 0) != expected or len(statuses) != 1:
        measure.notes.append(f"outbox after delivery: {statuses}")
    await engine.dispose()
    return measure


# --- one size ---------------------------------------------------------------------------------


@dataclass
class SizeResult:
    """The median figures of the four phases at one N."""

    n: int
    repeats: int
    phases: dict[str, Measure]
    problems: list[str]  # counts that do not match: the benchmark fails
    notes: list[str]  # phases stopped at their bound and the like: said, not failed


def _median(runs: list[Measure]) -> Measure:
    """The run with the median wall time (a stopped run counts as the slowest)."""
    ordered = sorted(runs, key=lambda m: (bool(m.stopped), m.wall))
    return ordered[(len(ordered) - 1) // 2]


async def _one_repeat(folder: Path, template: Path, n: int, k: int, sink: Sink) -> list[Measure]:
    ours_db, base_db = folder / f"ours-{k}.sqlite3", folder / f"baseline-{k}.sqlite3"
    shutil.copyfile(template, ours_db)
    shutil.copyfile(template, base_db)
    expected = 2 * n
    results: dict[str, Measure] = {}

    async def ours_build() -> Measure:
        return await build(ours_db, n, baseline=False)

    async def base_build() -> Measure:
        return await build(base_db, n, baseline=True)

    # Alternate which side goes first, so that a drift of the machine does not favour one side.
    pair: list[Callable[[], Awaitable[Measure]]] = [ours_build, base_build]
    for step in pair if k % 2 == 0 else reversed(pair):
        m = await step()
        results[m.phase] = m

    skipped = "not run: its build+queue did not finish"

    async def ours_deliver() -> Measure:
        if not results[PHASES[0]].complete:
            return Measure(PHASES[2], expected=expected, stopped=skipped)
        return await deliver_ours(ours_db, sink, expected)

    async def base_deliver() -> Measure:
        if not results[PHASES[1]].complete:
            return Measure(PHASES[3], expected=expected, stopped=skipped)
        return await deliver_naive(base_db, sink, expected)

    sends: list[Callable[[], Awaitable[Measure]]] = [ours_deliver, base_deliver]
    for step in sends if k % 2 == 0 else reversed(sends):
        m = await step()
        results[m.phase] = m
    for p in (ours_db, base_db):
        for f in (p, p.with_name(p.name + "-wal"), p.with_name(p.name + "-shm")):
            f.unlink(missing_ok=True)
    return [results[name] for name in PHASES]


def run_size(n: int, sink: Sink) -> SizeResult:
    """All repeats of the four phases at one N, in a temporary folder removed afterwards."""
    repeats = 1 if n >= SINGLE_RUN_FROM else REPEATS_SMALL
    with tempfile.TemporaryDirectory(prefix=f"bench-invitations-{n}-") as tmp:
        folder = Path(tmp)
        template = folder / "template.sqlite3"
        url = f"sqlite+aiosqlite:///{template}"
        upgrade_sync(url)
        asyncio.run(populate(url, n))
        runs: dict[str, list[Measure]] = {name: [] for name in PHASES}
        for k in range(repeats):
            for m in asyncio.run(_one_repeat(folder, template, n, k, sink)):
                runs[m.phase].append(m)
                if m.stopped:
                    print(f"  N={n} run {k + 1}: {m.phase} {m.stopped}", flush=True)
            print(f"  N={n}: run {k + 1} of {repeats} done", flush=True)
    phases = {name: _median(ms) for name, ms in runs.items()}
    problems: list[str] = []
    notes: list[str] = []
    for name, ms in runs.items():
        for k, m in enumerate(ms, 1):
            if not m.stopped and m.emails != m.expected:
                problems.append(f"MISMATCH N={n} run {k} {name}: {m.emails} emails, {m.expected} expected")
            if m.stopped:
                notes.extend(f"N={n} run {k} {name}: {note}" for note in m.notes)
            else:
                problems.extend(f"N={n} run {k} {name}: {note}" for note in m.notes)
    return SizeResult(n=n, repeats=repeats, phases=phases, problems=problems, notes=notes)


# --- where the time goes ----------------------------------------------------------------------


def print_profile(n: int) -> None:
    """cProfile of our build+queue at this N (its own run, bounded by PROFILE_LIMIT_S)."""
    profiler = cProfile.Profile()
    with tempfile.TemporaryDirectory(prefix=f"bench-invitations-profile-{n}-") as tmp:
        path = Path(tmp) / "profile.sqlite3"
        upgrade_sync(f"sqlite+aiosqlite:///{path}")
        asyncio.run(populate(f"sqlite+aiosqlite:///{path}", n))
        measure = asyncio.run(build(path, n, baseline=False, profile=profiler))
    state = measure.stopped or "complete"
    print(
        f"\nWhere the time goes: our build+queue at N={n} under cProfile "
        f"({measure.emails} of {2 * n} emails in {measure.wall:.1f} s; {state}; profiling slows it down)"
    )
    stats = pstats.Stats(profiler, stream=io.StringIO())
    package = str(Path(meetings.__file__).parent)
    entries: list[tuple[float, float, int, str]] = []
    own: list[tuple[float, float, int, str]] = []
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    for (filename, line, name), (_cc, calls, tottime, cumtime, _callers) in raw.items():
        where = _short(filename)
        row = (cumtime, tottime, calls, f"{where}:{line} {name}")
        entries.append(row)
        if filename.startswith(package):
            own.append(row)
    print("  top 10 of the meetings package by cumulative time:")
    _print_rows(sorted(own, reverse=True)[:10])
    print("  top 10 of everything by own time (tottime):")
    _print_rows(sorted(entries, key=lambda r: r[1], reverse=True)[:10])


def _short(filename: str) -> str:
    for marker in ("site-packages/", "/lib/python3"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    root = str(Path(meetings.__file__).parent.parent) + os.sep
    return filename.removeprefix(root)


def _print_rows(rows: list[tuple[float, float, int, str]]) -> None:
    print(f"    {'cumulative s':>12} {'own s':>8} {'calls':>9}  function")
    for cumtime, tottime, calls, where in rows:
        print(f"    {cumtime:12.2f} {tottime:8.2f} {calls:9d}  {where}")


# --- printing ---------------------------------------------------------------------------------


def _fmt(value: float, digits: int = 2) -> str:
    return "—" if value != value else f"{value:.{digits}f}"  # NaN as a dash


def print_size(result: SizeResult) -> None:
    """The table of one N: the four phases, then the ratios ours/baseline."""
    runs = "1 run" if result.repeats == 1 else f"median of {result.repeats} runs"
    print(f"\nN = {result.n} invitees, 2 series → {2 * result.n} emails ({runs})")
    header = (
        f"  {'phase':<22} {'emails':>7} {'seconds':>9} {'emails/s':>9} {'ms/email':>9} "
        f"{'CPU s':>8} {'KiB/email':>9}"
    )
    print(header)
    print("  " + "-" * (len(header) - 2))
    for name in PHASES:
        m = result.phases[name]
        print(
            f"  {name:<22} {m.emails:>7} {m.wall:>9.2f} {m.per_second:>9.1f} {_fmt(m.ms_per_email):>9} "
            f"{m.cpu:>8.2f} {_fmt(m.kib_per_email, 1):>9}" + (f"  ← {m.stopped}" if m.stopped else "")
        )
    for label, ours, base in (
        ("build+queue", PHASES[0], PHASES[1]),
        ("deliver", PHASES[2], PHASES[3]),
    ):
        a, b = result.phases[ours], result.phases[base]
        if a.emails and b.emails and not (a.stopped or b.stopped):
            print(
                f"  ratio ours/baseline, {label:<11}: time ×{a.wall / b.wall:.2f}, "
                f"CPU ×{a.cpu / b.cpu:.2f}, per email ×{a.ms_per_email / b.ms_per_email:.2f}"
            )
        elif a.emails and b.emails:
            print(
                f"  ratio ours/baseline, {label:<11}: per email ×{a.ms_per_email / b.ms_per_email:.2f} "
                "(one side stopped early: per-email time over the emails it did)"
            )
        else:
            print(f"  ratio ours/baseline, {label:<11}: not measured (a side did not run)")
    for note in result.notes:
        print(f"  note: {note}")
    for problem in result.problems:
        print(f"  !!! {problem}")


def print_growth(results: list[SizeResult]) -> None:
    """Time per email at each N, and how many times the smallest N's (1.0 = linear total time)."""
    if len(results) < 2:
        return
    first = results[0]
    print("\nGrowth: ms per email (× the value at N=" + f"{first.n}; ×1 means total time grows linearly)")
    cols = "".join(f"{'N=' + str(r.n):>20}" for r in results)
    print(f"  {'phase':<22}{cols}")
    for name in PHASES:
        base = first.phases[name].ms_per_email
        cells = []
        for r in results:
            m = r.phases[name]
            if not m.emails:
                cells.append(f"{'not run':>20}")
                continue
            mark = "*" if m.stopped else ""
            cell = f"{m.ms_per_email:.2f}{mark} (×{m.ms_per_email / base:.1f})"
            cells.append(f"{cell:>20}")
        print(f"  {name:<22}{''.join(cells)}")
    print(
        "  KiB per stored email: "
        + ", ".join(f"N={r.n}: {r.phases[PHASES[0]].kib_per_email:.1f}" for r in results)
    )
    if any(m.stopped for r in results for m in r.phases.values()):
        print("  * stopped at its bound: ms per email over the emails done before it stopped")


def run(sizes: Sequence[int] = DEFAULT_SIZES) -> int:
    """Run the benchmark for each N; 0 when every count matched, 1 otherwise."""
    import_all()
    sizes = sorted(set(sizes))
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"Invitations benchmark — {datetime.now().astimezone():%Y-%m-%d %H:%M %Z}, "
        f"{platform.python_implementation()} {platform.python_version()}, {os.cpu_count()} CPUs, "
        f"load average {load}"
    )
    print(
        f"N = {', '.join(map(str, sizes))}; N < {SINGLE_RUN_FROM}: median of {REPEATS_SMALL} runs, "
        f"N ≥ {SINGLE_RUN_FROM}: 1 run; each phase bounded to {PHASE_LIMIT_S:.0f} s; "
        "SQLite in a temp folder; SMTP sink in a child process on 127.0.0.1"
    )
    sink = start_sink()
    results: list[SizeResult] = []
    try:
        for n in sizes:
            print(f"N={n}: preparing (load average {os.getloadavg()[0]:.2f})", flush=True)
            result = run_size(n, sink)
            results.append(result)
            print_size(result)
    finally:
        sink.close()
    print_growth(results)
    print_profile(sizes[-1])
    return 1 if any(r.problems for r in results) else 0
