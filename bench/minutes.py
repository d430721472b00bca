"""Minutes: an entry's save round trip with 3 concurrent editors and N live viewers, and exports.

``python -m bench minutes`` (N = 60 viewers; ``--quick``: 10). One run, side by side:

1. ours: each of 3 editors saves its own entry over the live WebSocket (send → ack), while
   N viewers watch the same minutes and receive every change; p50/p99 of the round trip, and
   of the push (send → the last viewer has the change).
2. baseline: the same saves over plain HTTP (PUT /api/minutes/{id}/entries/{entry}, one
   request each, as a page without the socket would), with the same viewers connected.
3. exports of a 200-entry minutes to DOCX and PDF (median of 3).

The server is the real app on 127.0.0.1, on a fresh SQLite file and, when
GIAOBAN_TEST_POSTGRES_URL is set, on a fresh PostgreSQL database beside it (its name + "_bench").
The viewers ask for per-message deflate as browsers do. The clients run in the server's process
and event loop (as the other benchmarks' do), so their reading counts in the figures. Every
phase stops after PHASE_LIMIT_S seconds and says so.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer

from bench._minutes_world import PASSWORD, SECRET, login, meeting_minutes
from bench._postgres import reset_postgres
from meetings.accounts.passwords import hash_password
from meetings.db.migrate import upgrade_sync
from meetings.db.models import import_all
from meetings.directory.models import Person, Role, Unit, UnitKind
from meetings.minutes import export, service
from meetings.settings import load_settings
from web import csrf, keys
from web.app import create_app

NAME = "minutes"
DEFAULT_SIZES = [60]
QUICK_SIZES = [10]
EDITORS = 3
SAVES_PER_EDITOR = 60
EXPORT_ENTRIES = 200
PHASE_LIMIT_S = 30.0
PG_ENV = "GIAOBAN_TEST_POSTGRES_URL"


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else float("nan")


async def _setup(server: TestServer, viewers: int) -> tuple[int, list[str], list[str]]:
    """People, a meeting in progress and its minutes: (minutes id, editor emails, viewer emails)."""
    app = server.app
    password = hash_password(PASSWORD)
    async with app[keys.DB]() as db:
        centre = Unit(code="P-BENCH", kind=UnitKind.CENTRE, name="Phường Bench", active=True, search_text="")
        db.add(centre)
        await db.flush()
        editors = [f"editor{i}@bench.example" for i in range(EDITORS)]
        watchers = [f"viewer{i}@bench.example" for i in range(viewers)]
        for i, email in enumerate(editors + watchers):
            role = (Role.CHAIR if i == 0 else Role.SECRETARY) if i < EDITORS else Role.MEMBER
            db.add(Person(email=email, name=email, role=role, unit_id=centre.id, password_hash=password))
        await db.commit()
        return await meeting_minutes(db), editors, watchers


class Watcher:
    """A viewer counting the pushes it receives, and noting when each (entry, version) came."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, arrivals: dict[tuple[int, int], float]) -> None:
        self.ws = ws
        self.received = 0
        self.arrivals = arrivals  # shared: the latest arrival of each (entry, version) at any viewer
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for msg in self.ws:
            data = json.loads(msg.data)
            if data.get("type") == "entry":
                self.received += 1
                self.arrivals[(data["entry"]["id"], data["entry"]["version"])] = time.perf_counter()


async def _ws_editor(
    ws: aiohttp.ClientWebSocketResponse,
    entry: dict[str, Any],
    deadline: float,
    sent: dict[tuple[int, int], float],
) -> list[float]:
    times: list[float] = []
    version = entry["version"]
    for i in range(SAVES_PER_EDITOR):
        if time.monotonic() > deadline:
            break
        started = time.perf_counter()
        sent[(entry["id"], version + 1)] = started
        await ws.send_str(
            json.dumps(
                {
                    "op": "save",
                    "ref": i,
                    "id": entry["id"],
                    "kind": "note",
                    "version": version,
                    "text": f"v{i}",
                }
            )
        )
        while True:
            reply = json.loads((await ws.receive(timeout=10)).data)
            if reply.get("ref") == i:
                break
        times.append(time.perf_counter() - started)
        assert reply["type"] == "ack", reply
        version = reply["result"]["entry"]["version"]
    return times


async def _http_editor(
    http: aiohttp.ClientSession, token: str, url: str, entry: dict[str, Any], deadline: float
) -> list[float]:
    times: list[float] = []
    version = entry["version"]
    for i in range(SAVES_PER_EDITOR):
        if time.monotonic() > deadline:
            break
        started = time.perf_counter()
        response = await http.put(
            url, json={"kind": "note", "version": version, "text": f"h{i}"}, headers={csrf.HEADER: token}
        )
        body = await response.json()
        times.append(time.perf_counter() - started)
        assert response.status == 200, body
        version = body["entry"]["version"]
    return times


async def _saves(viewers: int, url: str, folder: Path) -> dict[str, Any]:
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
    sessions: list[aiohttp.ClientSession] = []
    try:
        minutes_id, editors, watchers = await _setup(server, viewers)
        origin = str(server.make_url("/")).rstrip("/")
        ws_url = server.make_url(f"/minutes/{minutes_id}/ws")
        logged = [await login(server, e) for e in editors]
        sessions += [h for h, _ in logged]
        entries = []
        for http, token in logged:
            response = await http.post(
                server.make_url(f"/api/minutes/{minutes_id}/entries"),
                json={"kind": "note", "text": "bench"},
                headers={csrf.HEADER: token},
            )
            entries.append((await response.json())["entry"])
        watcher_list = []
        arrivals: dict[tuple[int, int], float] = {}
        sent: dict[tuple[int, int], float] = {}
        for email in watchers:
            http, _ = await login(server, email)
            sessions.append(http)
            # compress=15: the viewers ask for per-message deflate, as browsers do.
            ws = await http.ws_connect(ws_url, headers={"Origin": origin}, compress=15)
            watcher_list.append(Watcher(ws, arrivals))
        sockets = [await h.ws_connect(ws_url, headers={"Origin": origin}) for h, _ in logged]
        for ws in sockets:
            await ws.receive(timeout=10)  # the initial state
        deadline = time.monotonic() + PHASE_LIMIT_S
        ws_times = await asyncio.gather(
            *(_ws_editor(ws, e, deadline, sent) for ws, e in zip(sockets, entries, strict=True))
        )
        await asyncio.sleep(0.5)
        pushes = [arrivals[k] - t for k, t in sent.items() if k in arrivals]
        for ws in sockets:
            await ws.close()
        refreshed = []
        async with server.app[keys.DB]() as db:
            for e in entries:
                refreshed.append(await service.entry_data(db, await service.get_entry(db, e["id"])))
        deadline = time.monotonic() + PHASE_LIMIT_S
        http_times = await asyncio.gather(
            *(
                _http_editor(
                    h, t, str(server.make_url(f"/api/minutes/{minutes_id}/entries/{e['id']}")), e, deadline
                )
                for (h, t), e in zip(logged, refreshed, strict=True)
            )
        )
        await asyncio.sleep(0.5)
        expected = sum(len(t) for t in ws_times) + sum(len(t) for t in http_times)
        delivered = min((w.received for w in watcher_list), default=0)
        for w in watcher_list:
            await w.ws.close()
            await w.task
        flat_ws = [t for ts in ws_times for t in ts]
        flat_http = [t for ts in http_times for t in ts]
        return {
            "ws_p50": _pct(flat_ws, 0.5),
            "ws_p99": _pct(flat_ws, 0.99),
            "http_p50": _pct(flat_http, 0.5),
            "http_p99": _pct(flat_http, 0.99),
            "push_p50": _pct(pushes, 0.5),
            "push_p99": _pct(pushes, 0.99),
            "saves": len(flat_ws) + len(flat_http),
            "delivered_min": delivered,
            "expected": expected,
        }
    finally:
        for http in sessions:
            await http.close()
        await server.close()


def _content(n: int) -> dict[str, Any]:
    entry = {
        "kind": "issue",
        "text": "Trung tâm phục vụ hành chính công phường mất đồng bộ dữ liệu hồ sơ với hệ thống của tỉnh",
        "unit": {"code": "P-PHUXUAN", "name": "Phường Phú Xuân"},
        "category": "data_sync",
        "severity": "high",
        "owner_unit": None,
        "owner_person": None,
        "due_date": None,
        "status": "open",
        "raised_on": "2030-01-07",
        "raised_by": "Thư ký",
    }
    entries = [{**entry, "id": i, "text": f"{entry['text']} ({i})"} for i in range(n)]
    return {
        "minutes_id": 1,
        "version": 1,
        "title": "Giao ban chiều",
        "template": "afternoon",
        "header": {
            "date": "2030-01-07",
            "start": "16:30",
            "end": "17:15",
            "chair": "C",
            "secretary": "S",
            "attendance": [],
        },
        "sections": [
            {"key": "difficulties", "title": "Khó khăn, vướng mắc", "entries": entries[: n // 2]},
            {"key": "lessons", "title": "Bài học kinh nghiệm", "entries": entries[n // 2 :]},
        ],
        "carried": [],
    }


def _time_export(fn: Any, data: dict[str, Any]) -> tuple[float, int]:
    runs = []
    size = 0
    for _ in range(3):
        started = time.perf_counter()
        size = len(fn(data, None))
        runs.append(time.perf_counter() - started)
    return statistics.median(runs), size


def _on(database: str, viewers: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        if database == "sqlite":
            url = f"sqlite+aiosqlite:///{Path(tmp) / 'bench.sqlite3'}"
            upgrade_sync(url)
        else:
            url = asyncio.run(reset_postgres(os.environ[PG_ENV]))
        return asyncio.run(_saves(viewers, url, Path(tmp)))


def run(sizes: Sequence[int]) -> int:
    """Run the benchmark for each number of viewers on each database; print figures and ratios."""
    import_all()
    status = 0
    databases = ["sqlite"] + (["postgresql"] if os.environ.get(PG_ENV) else [])
    load = os.getloadavg()
    print(f"minutes benchmark: {os.cpu_count()} CPUs, load average {load[0]:.2f} at the start")
    for viewers in sizes:
        for database in databases:
            started = time.monotonic()
            r = _on(database, viewers)
            took = time.monotonic() - started
            print(
                f"minutes save round trip, {database}, {EDITORS} concurrent editors, {viewers} live viewers"
                f" ({took:.1f} s):"
            )
            print(f"  WebSocket  p50 {r['ws_p50'] * 1000:7.2f} ms   p99 {r['ws_p99'] * 1000:7.2f} ms")
            http_p50, http_p99 = r["http_p50"], r["http_p99"]
            print(f"  HTTP PUT   p50 {http_p50 * 1000:7.2f} ms   p99 {http_p99 * 1000:7.2f} ms  (baseline)")
            print(
                f"  ratio HTTP/WebSocket p50 {http_p50 / r['ws_p50']:.2f}x, p99 {http_p99 / r['ws_p99']:.2f}x"
            )
            print(
                f"  push to the last viewer (WebSocket saves) p50 {r['push_p50'] * 1000:7.2f} ms"
                f"   p99 {r['push_p99'] * 1000:7.2f} ms"
            )
            got = f"each viewer got at least {r['delivered_min']} of {r['expected']} pushes"
            print(f"  {r['saves']} saves; {got}")
            if r["delivered_min"] < r["expected"]:
                status = 1
    data = _content(EXPORT_ENTRIES)
    docx_s, docx_bytes = _time_export(export.to_docx, data)
    pdf_s, pdf_bytes = _time_export(export.to_pdf, data)
    md_s, _md = _time_export(lambda d, a: export.to_markdown(d, a).encode(), data)
    print(f"export of a {EXPORT_ENTRIES}-entry minutes (median of 3):")
    print(f"  DOCX {docx_s * 1000:8.1f} ms  {docx_bytes / 1024:7.1f} KiB")
    print(f"  PDF  {pdf_s * 1000:8.1f} ms  {pdf_bytes / 1024:7.1f} KiB")
    print(f"  Markdown {md_s * 1000:4.1f} ms (baseline)")
    print(f"  PDF/Markdown {pdf_s / md_s:.0f}x, DOCX/Markdown {docx_s / md_s:.0f}x")
    return status
