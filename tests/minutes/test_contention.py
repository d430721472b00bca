"""Many editors at once on the real app: no 5xx, every acknowledged add stored exactly once,
one approval of two simultaneous ones, and adds made idempotent by their key (issue 14)."""

from __future__ import annotations

import asyncio
import uuid
from contextlib import AsyncExitStack
from typing import Any

import aiohttp
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, func, select

from meetings.db.base import Base
from meetings.directory.models import Role
from meetings.minutes.models import Entry, MinutesVersion
from tests.conftest import World
from tests.minutes.helpers import make_day
from tests.minutes.test_web import Socket, open_minutes, signed_in
from web import csrf

EDITORS = 12
ROUNDS = 5


async def _editor(
    world: World,
    http: aiohttp.ClientSession,
    minutes_id: int,
    n: int,
    statuses: list[int],
    acked: list[str],
    texts: dict[str, str],
) -> None:
    seed = next(c.value for c in http.cookie_jar if c.key == csrf.COOKIE)
    headers = {csrf.HEADER: csrf.token_for(world.settings.secret_key, seed)}
    url = world.client.make_url(f"/api/minutes/{minutes_id}/entries")
    for i in range(ROUNDS):
        key = str(uuid.uuid4())
        body = {"kind": "note", "text": f"biên tập {n}, mục {i}", "key": key}
        async with http.post(url, json=body, headers=headers) as response:
            statuses.append(response.status)
            data = await response.json()
        if response.status not in (200, 201):
            continue
        acked.append(key)
        entry = data["entry"]
        if i % 2:  # every other add is sent again, as a page resending after a reconnect
            async with http.post(url, json=body, headers=headers) as again:
                statuses.append(again.status)
                assert again.status == 200 and (await again.json())["entry"]["id"] == entry["id"]
        save = {"kind": "note", "text": f"biên tập {n}, mục {i}, sửa", "version": entry["version"]}
        async with http.put(f"{url}/{entry['id']}", json=save, headers=headers) as saved:
            statuses.append(saved.status)
            if saved.status == 200:
                texts[key] = save["text"]
        async with http.get(world.client.make_url(f"/api/minutes/{minutes_id}")) as read:
            statuses.append(read.status)


async def test_concurrent_editors_get_no_5xx_and_every_acknowledged_add_is_stored_once(world: World) -> None:
    day = await make_day(world)
    minutes_id = await open_minutes(world, day)
    emails = [day.chair.email, day.secretary.email]
    for n in range(EDITORS - 2):
        emails.append(
            (await world.person(f"thuky{n}@hue.example", Role.SECRETARY, None, f"Thư ký {n}")).email
        )
    statuses: list[int] = []
    acked: list[str] = []
    texts: dict[str, str] = {}  # the text of each acknowledged save, by its entry's key
    async with AsyncExitStack() as stack:
        sessions = [await stack.enter_async_context(signed_in(world, email)) for email in emails]
        await asyncio.gather(
            *(_editor(world, http, minutes_id, n, statuses, acked, texts) for n, http in enumerate(sessions))
        )
    assert [s for s in statuses if s >= 500] == []
    assert set(statuses) <= {200, 201}, sorted(set(statuses))
    assert len(acked) == EDITORS * ROUNDS
    async with world.db() as db:
        rows = (
            await db.execute(select(Entry.add_key, Entry.text).where(Entry.minutes_id == minutes_id))
        ).all()
    stored = [key for key, _text in rows]
    assert sorted(k for k in stored if k) == sorted(acked)  # each acknowledged add once, nothing else
    assert len(stored) == len(acked)
    assert len(texts) == len(acked) and {key: text for key, text in rows if key} == texts  # every save


async def test_two_simultaneous_approvals_give_one_success_and_one_409(world: World) -> None:
    day = await make_day(world)
    minutes_id = await open_minutes(world, day)
    assert (
        await world.call("POST", f"/api/minutes/{minutes_id}/entries", json={"text": "Ổn định"})
    ).status == 201
    approve = world.client.make_url(f"/minutes/{minutes_id}/approve")
    async with signed_in(world, day.chair.email) as first, signed_in(world, day.chair.email) as second:

        async def post(http: aiohttp.ClientSession) -> int:
            seed = next(c.value for c in http.cookie_jar if c.key == csrf.COOKIE)
            form = {"csrf_token": csrf.token_for(world.settings.secret_key, seed)}
            async with http.post(approve, data=form, allow_redirects=False) as response:
                return response.status

        for round_no in range(1, 4):
            assert (await world.post_form(f"/minutes/{minutes_id}/submit")).status == 303
            statuses = await asyncio.gather(post(first), post(second))
            assert sorted(statuses) == [303, 409], (round_no, statuses)
            # A correction opens the next version, to race again over it.
            assert (await world.post_form(f"/minutes/{minutes_id}/correct")).status == 303
    async with world.db() as db:
        numbers = list(
            await db.scalars(select(MinutesVersion.number).where(MinutesVersion.minutes_id == minutes_id))
        )
    assert sorted(numbers) == [1, 2, 3]


async def test_an_add_sent_twice_makes_one_entry_over_http_and_the_socket(world: World) -> None:
    day = await make_day(world)
    minutes_id = await open_minutes(world, day)
    path = f"/api/minutes/{minutes_id}/entries"
    first = await world.call("POST", path, json={"text": "Mất mạng", "key": "k-1"})
    assert first.status == 201
    entry = (await first.json())["entry"]
    again = await world.call("POST", path, json={"text": "Mất mạng", "key": "k-1"})
    assert again.status == 200 and (await again.json())["entry"]["id"] == entry["id"]
    by_header = await world.call(
        "POST", path, json={"text": "Qua tiêu đề"}, headers={"Idempotency-Key": "k-2"}
    )
    by_header_again = await world.call(
        "POST", path, json={"text": "Qua tiêu đề"}, headers={"Idempotency-Key": "k-2"}
    )
    assert (by_header.status, by_header_again.status) == (201, 200)
    both = await asyncio.gather(
        *(world.call("POST", path, json={"text": "Cùng lúc", "key": "k-3"}) for _ in "ab")
    )
    assert sorted(r.status for r in both) == [200, 201]
    for bad in ("có dấu", "x" * 65, "a b"):
        refused = await world.call("POST", path, json={"text": "x", "key": bad})
        assert refused.status == 422 and "key" in [
            f["field"] for f in (await refused.json())["error"]["fields"]
        ]
    assert (await world.call("POST", path, json={"text": "x", "key": 5})).status == 422

    url = world.client.make_url(f"/minutes/{minutes_id}/ws")
    origin = str(world.client.make_url("/")).rstrip("/")
    socket = Socket(await world.client.session.ws_connect(url, headers={"Origin": origin}))
    try:
        add = {"op": "add", "kind": "note", "text": "Qua socket", "key": "ws-1"}
        one = await socket.ask(1, **add)
        # The link dropped before the ack: the page sends the same add, same key, on a new socket.
        await socket.close()
        socket = Socket(await world.client.session.ws_connect(url, headers={"Origin": origin}))
        two = await socket.ask(2, **add)
        assert one["type"] == two["type"] == "ack", (one, two)
        assert one["result"]["entry"]["id"] == two["result"]["entry"]["id"]
    finally:
        await socket.close()
    async with world.db() as db:
        texts = list(await db.scalars(select(Entry.text).where(Entry.minutes_id == minutes_id)))
        keyed = await db.scalar(select(func.count()).select_from(Entry).where(Entry.add_key.is_not(None)))
    assert sorted(texts) == sorted(["Mất mạng", "Qua tiêu đề", "Cùng lúc", "Qua socket"])
    assert keyed == 4


async def test_migration_0008_matches_the_entry_model(world: World) -> None:
    def include(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
        if type_ == "table":
            return name == "minutes_entries"
        table = getattr(obj, "table", None)
        return table is None or table.name == "minutes_entries"

    def diff(conn: Connection) -> list[Any]:
        context = MigrationContext.configure(conn, opts={"include_object": include, "compare_type": True})
        return list(compare_metadata(context, Base.metadata))

    async with world.db() as db:
        conn = await db.connection()
        assert await conn.run_sync(diff) == []
