"""Manual search over N articles and the figures dashboard over a year of 40 centres' reports.

``python -m bench manual_figures`` (N = 5,000 articles; ``--quick``: 1,000). For each database,
SQLite (a temporary file) and PostgreSQL when GIAOBAN_TEST_POSTGRES_URL is set (in a separate
database named after it with ``_bench`` appended, created if missing and emptied first, so the
test database is never touched), one run, side by side:

1. manual search: 300 queries of one to three words, half typed with diacritics, half
   without, through ``meetings.manual.service.search`` (FTS5 bm25 / PostgreSQL ts_rank on the
   folded column); p50 and p99. Baseline: the same queries as a ``LIKE '%word%'`` scan per word
   over the folded column returning every match (ranking needs them all), as a system without a
   full-text index would do. Articles are made of the domain's words and made-up syllables with
   tones, drawn with Zipf-like frequencies, so common words match many articles, rare ones few.
2. dashboard: 365 days × 40 centres of reports; ``/figures?day=…`` rendered by the real app for
   a signed-in chair (HTTP, 40 requests, p50/p99), and the domain part alone
   (``figures.service.dashboard``: one day's ranking plus 8 weekly sums). Baseline: the same
   numbers computed by loading the whole year of reports into Python and summing there.

Every phase stops after PHASE_LIMIT_S seconds and says so; the whole run stays within 3 minutes.
"""

from __future__ import annotations

import asyncio
import os
import random
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer
from sqlalchemy import insert, select, text

from bench._postgres import reset_postgres
from meetings.accounts.passwords import hash_password
from meetings.accounts.permissions import Actor
from meetings.db import create_engine, create_sessionmaker
from meetings.db.migrate import upgrade_sync
from meetings.db.models import import_all
from meetings.directory.models import Person, Role, Unit, UnitKind
from meetings.figures import service as figures
from meetings.figures.models import DailyReport
from meetings.manual import service as manual
from meetings.manual.models import TOPICS, Article, ArticleStatus
from meetings.settings import load_settings
from meetings.text import fold
from web import csrf
from web.app import create_app

NAME = "manual_figures"
DEFAULT_SIZES = [5000]
QUICK_SIZES = [1000]
QUERIES = 300
DASHBOARD_REQUESTS = 40
CENTRES = 40
DAYS = 365
PHASE_LIMIT_S = 25.0
PASSWORD = "bench password"
SECRET = "bench-secret"
PG_ENV = "GIAOBAN_TEST_POSTGRES_URL"

WORDS = str.split(
    "chứng thực bản sao điện tử hộ kinh doanh đăng ký khai tử giấy chứng nhận quyền sử dụng đất "
    "xây dựng nhà ở riêng lẻ tài khoản mật khẩu chữ ký số chứng thư plugin lệ phí thanh toán trực "
    "tuyến cổng dịch vụ công hồ sơ một cửa liên thông thường trú mai táng phí đối chiếu bản chính "
    "kết quả thời hạn ngày làm việc ủy ban nhân dân phường xã cán bộ tiếp nhận trả kết quả đồng bộ "
    "dữ liệu hộ tịch quốc gia định danh điện tử máy trạm trình duyệt gia hạn nhà cung cấp"
)


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else float("nan")


_ONSETS = str.split("b c ch d đ g gi h k kh l m n ng nh ph qu r s t th tr v x")
_RHYMES = str.split(
    "a ai am an ang anh ao at au ay e em en eo et i ia im in inh it o oa oai oan oc oi om on ong ot "
    "u ua uc ui um un ung uy uyên ươ ương ưu"
)
_TONES = ["", "\u0301", "\u0300", "\u0309", "\u0303", "\u0323"]  # sắc, huyền, hỏi, ngã, nặng


def vocabulary(rng: random.Random, size: int = 4000) -> list[str]:
    """The domain words first, then made-up syllables with tones: a Zipf-like vocabulary."""
    import unicodedata

    made = {
        unicodedata.normalize("NFC", rng.choice(_ONSETS) + rng.choice(_RHYMES) + rng.choice(_TONES))
        for _ in range(size * 2)
    }
    return list(dict.fromkeys(WORDS)) + sorted(made - set(WORDS))[:size]


def _sentence(rng: random.Random, n: int, vocab: list[str], weights: list[float]) -> str:
    return " ".join(rng.choices(vocab, weights=weights, k=n))


async def _fill(url: str, articles: int) -> None:
    """N published articles, 40 centres with a year of reports, and a chair who signs in."""
    rng = random.Random(7)
    vocab = vocabulary(random.Random(3))
    weights = [1 / (rank + 1) for rank in range(len(vocab))]
    engine = create_engine(url)
    sessions = create_sessionmaker(engine)
    now = datetime.now(UTC)
    topics = list(TOPICS)
    async with sessions() as db:
        rows = []
        for i in range(articles):
            question = _sentence(rng, rng.randint(6, 14), vocab, weights).capitalize() + "?"
            answer = _sentence(rng, rng.randint(25, 70), vocab, weights).capitalize() + "."
            rows.append(
                {
                    "topic": topics[i % len(topics)],
                    "question": question,
                    "answer": answer,
                    "status": ArticleStatus.PUBLISHED,
                    "revision": 1,
                    "search_text": fold(f"{question} {answer}"),
                    "created_at": now,
                    "updated_at": now,
                    "published_at": now,
                }
            )
        for start in range(0, len(rows), 1000):
            await db.execute(insert(Article), rows[start : start + 1000])
        units = [
            Unit(code=f"P-{i:02d}", kind=UnitKind.CENTRE, name=f"Phường {i}", active=True, search_text="")
            for i in range(CENTRES)
        ]
        db.add_all(units)
        db.add(
            Person(
                email="chair@bench.example",
                name="Chủ trì",
                role=Role.CHAIR,
                password_hash=hash_password(PASSWORD),
                active=True,
                language="vi",
                phone="",
                title="",
                search_text="",
            )
        )
        await db.flush()
        today = date.today()
        reports = []
        for back in range(DAYS):
            day = today - timedelta(days=back + 1)
            for unit in units:
                received = rng.randint(5, 60)
                reports.append(
                    {
                        "unit_id": unit.id,
                        "day": day,
                        "received": received,
                        "resolved": rng.randint(0, received),
                        "overdue": rng.randint(0, 3),
                        "backlog": rng.randint(0, 20),
                        "procedures": {},
                        "version": 1,
                        "source": "api",
                        "created_at": now,
                        "updated_at": now,
                    }
                )
        for start in range(0, len(reports), 2000):
            await db.execute(insert(DailyReport), reports[start : start + 2000])
        await db.commit()
        await db.execute(text("ANALYZE"))  # planner statistics, as after any bulk load
        await db.commit()
    await engine.dispose()


async def _timed(calls: list[Callable[[], Awaitable[Any]]]) -> tuple[list[float], bool]:
    """Run calls one after the other; (seconds each, whether the phase hit its time limit)."""
    times: list[float] = []
    deadline = time.monotonic() + PHASE_LIMIT_S
    for call in calls:
        if time.monotonic() > deadline:
            return times, True
        started = time.perf_counter()
        await call()
        times.append(time.perf_counter() - started)
    return times, False


async def _naive_dashboard(db: Any, day: date) -> tuple[int, int]:
    """The baseline: every report of the year into Python, then the day's totals and 8 weeks' sums."""
    rows = (await db.execute(select(DailyReport))).scalars().all()
    first = day - timedelta(days=day.weekday()) - timedelta(weeks=7)
    today = [r for r in rows if r.day == day]
    weeks: dict[date, int] = {}
    for r in rows:
        if first <= r.day <= day:
            monday = r.day - timedelta(days=r.day.weekday())
            weeks[monday] = weeks.get(monday, 0) + r.received
    return sum(r.received for r in today), sum(weeks.values())


async def _measure(url: str, folder: Path) -> dict[str, Any]:
    rng = random.Random(11)
    vocab = vocabulary(random.Random(3))
    queries = []
    for i in range(QUERIES):
        # Words people look up: the domain's, and rarer ones further down the vocabulary.
        q = " ".join(rng.choice(vocab[: 20 + 20 * (i % 50)]) for _ in range(rng.randint(1, 3)))
        queries.append(q if i % 2 else fold(q))
    reader = Actor(id=1, email="m", name="m", role=Role.MEMBER, unit_id=None)
    engine = create_engine(url)
    sessions = create_sessionmaker(engine)
    out: dict[str, Any] = {}
    async with sessions() as db:
        hits = 0

        def fts(q: str) -> Callable[[], Awaitable[Any]]:
            async def call() -> None:
                nonlocal hits
                hits += len(await manual.search(db, reader, q))

            return call

        def like(q: str) -> Callable[[], Awaitable[Any]]:
            return lambda: manual.search_like(db, q, limit=None)

        for q in queries[:10]:  # warm caches the same way for both
            await manual.search(db, reader, q)
            await manual.search_like(db, q)
        out["fts"], out["fts_cut"] = await _timed([fts(q) for q in queries])
        out["like"], out["like_cut"] = await _timed([like(q) for q in queries])
        out["hits"] = hits
        day = date.today() - timedelta(days=1)
        out["dash"], out["dash_cut"] = await _timed([lambda: figures.dashboard(db, day)] * 20)
        out["naive"], out["naive_cut"] = await _timed([lambda: _naive_dashboard(db, day)] * 20)
        board = await figures.dashboard(db, day)
        naive_day, _weeks = await _naive_dashboard(db, day)
        out["same"] = board.received == naive_day
    await engine.dispose()
    settings = load_settings(
        environ={},
        database_url=url,
        secret_key=SECRET,
        var_dir=str(folder / "var"),
        log_format="text",
        log_level="WARNING",
        mail_catcher_port=0,
        scheduler_enabled=False,
    )
    server = TestServer(create_app(settings), host="127.0.0.1")
    await server.start_server()
    http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    try:
        await http.get(server.make_url("/login"))
        seed = next(c.value for c in http.cookie_jar if c.key == csrf.COOKIE)
        form = {
            "email": "chair@bench.example",
            "password": PASSWORD,
            "next": "/",
            "csrf_token": csrf.token_for(SECRET, seed),
        }
        response = await http.post(server.make_url("/login"), data=form, allow_redirects=False)
        assert response.status == 303, await response.text()
        days = [date.today() - timedelta(days=1 + i * 9) for i in range(DASHBOARD_REQUESTS)]

        def page(d: date) -> Callable[[], Awaitable[Any]]:
            async def call() -> None:
                got = await http.get(server.make_url(f"/figures?day={d.isoformat()}"))
                body = await got.text()
                assert got.status == 200 and "<svg" in body

            return call

        out["page"], out["page_cut"] = await _timed([page(d) for d in days])
    finally:
        await http.close()
        await server.close()
    return out


def _report(label: str, articles: int, r: dict[str, Any], took: float) -> int:
    print(f"{label}: {articles} articles, {CENTRES} centres × {DAYS} days of reports ({took:.1f} s)")
    fts50, fts99 = _pct(r["fts"], 0.5), _pct(r["fts"], 0.99)
    like50, like99 = _pct(r["like"], 0.5), _pct(r["like"], 0.99)
    print(
        f"  manual search, full-text  p50 {fts50 * 1000:7.2f} ms  p99 {fts99 * 1000:7.2f} ms"
        f"  ({len(r['fts'])} queries)"
    )
    print(f"  manual search, LIKE scan  p50 {like50 * 1000:7.2f} ms  p99 {like99 * 1000:7.2f} ms  (baseline)")
    print(f"  ratio LIKE/full-text p50 {like50 / fts50:.1f}x, p99 {like99 / fts99:.1f}x; {r['hits']} hits")
    d50, n50 = _pct(r["dash"], 0.5), _pct(r["naive"], 0.5)
    print(f"  dashboard data            p50 {d50 * 1000:7.2f} ms")
    print(f"  dashboard, year in Python p50 {n50 * 1000:7.2f} ms  (baseline); ratio {n50 / d50:.1f}x")
    p50, p99 = _pct(r["page"], 0.5), _pct(r["page"], 0.99)
    print(
        f"  /figures page (HTTP)      p50 {p50 * 1000:7.2f} ms  p99 {p99 * 1000:7.2f} ms"
        f"  ({len(r['page'])} requests)"
    )
    for key in ("fts_cut", "like_cut", "dash_cut", "naive_cut", "page_cut"):
        if r[key]:
            print(f"  note: {key.removesuffix('_cut')} stopped at its {PHASE_LIMIT_S:.0f} s limit")
    if not r["same"]:
        print("  MISMATCH: the dashboard and the baseline disagree")
        return 1
    return 0


def run(sizes: Sequence[int]) -> int:
    """Run the benchmark for each number of articles, on SQLite and (if configured) PostgreSQL."""
    import_all()
    status = 0
    for articles in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            started = time.monotonic()
            url = f"sqlite+aiosqlite:///{folder / 'bench.sqlite3'}"
            upgrade_sync(url)
            asyncio.run(_fill(url, articles))
            r = asyncio.run(_measure(url, folder))
            status = max(status, _report("SQLite (FTS5)", articles, r, time.monotonic() - started))
            pg = os.environ.get(PG_ENV)
            if not pg:
                print(f"PostgreSQL: skipped ({PG_ENV} unset)")
                continue
            started = time.monotonic()
            bench_url = asyncio.run(reset_postgres(pg))
            asyncio.run(_fill(bench_url, articles))
            r = asyncio.run(_measure(bench_url, folder))
            status = max(
                status, _report("PostgreSQL (tsvector, GIN)", articles, r, time.monotonic() - started)
            )
    return status
