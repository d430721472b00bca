"""The minutes socket's push: the editor's ack never waits for a viewer, every viewer gets every
edit in order, and what was acknowledged is committed (a crash after the ack loses nothing)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
from sqlalchemy import select, update

from meetings.db import create_engine
from meetings.minutes.models import Entry
from meetings.schedule.models import Occurrence, OccurrenceState
from tests.conftest import World
from tests.minutes.helpers import make_day
from tests.minutes.test_web import add, open_minutes, signed_in
from tests.rtc.clients import wait_for
from web import keys

SAVES = 6


class Stream:
    """A minutes socket's messages in the order they came."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.messages: list[dict[str, Any]] = []
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for msg in self.ws:
            self.messages.append(json.loads(msg.data))

    def entries(self) -> list[int]:
        """The versions of the entry pushes, in arrival order."""
        return [m["entry"]["version"] for m in self.messages if m["type"] == "entry"]

    async def answer(self, ref: int) -> dict[str, Any]:
        assert await wait_for(lambda: any(m.get("ref") == ref for m in self.messages), 10), ref
        return next(m for m in self.messages if m.get("ref") == ref)

    async def close(self) -> None:
        await self.ws.close()
        await self.reader


async def _stored_version(world: World, entry_id: int) -> int | None:
    """The entry's version as a fresh connection (another process, a restarted server) reads it."""
    engine = create_engine(world.settings.database_url)
    try:
        async with engine.connect() as conn:
            return await conn.scalar(select(Entry.version).where(Entry.id == entry_id))
    finally:
        await engine.dispose()


async def test_the_ack_goes_first_and_a_stalled_viewer_holds_nobody_up(world: World) -> None:
    day = await make_day(world)
    minutes_id = await open_minutes(world, day)
    async with world.db() as db:
        await db.execute(
            update(Occurrence)
            .where(Occurrence.id == day.afternoons[0].id)
            .values(state=OccurrenceState.IN_PROGRESS)
        )
        await db.commit()
    entry = (await (await add(world, minutes_id, kind="note", text="Bản đầu")).json())["entry"]
    url = world.client.make_url(f"/minutes/{minutes_id}/ws")
    origin = str(world.client.make_url("/")).rstrip("/")
    hub = world.app[keys.MINUTES_HUB]
    release = asyncio.Event()
    async with (
        signed_in(world, day.chair.email) as chair_http,
        signed_in(world, day.member.email) as member_http,
    ):
        editor = Stream(await world.client.session.ws_connect(url, headers={"Origin": origin}))
        assert await wait_for(lambda: hub.count(minutes_id) == 1, 5)
        stalled = Stream(await chair_http.ws_connect(url, headers={"Origin": origin}))
        assert await wait_for(lambda: hub.count(minutes_id) == 2, 5)
        member = Stream(await member_http.ws_connect(url, headers={"Origin": origin}))
        assert await wait_for(lambda: hub.count(minutes_id) == 3, 5)
        try:
            # The chair's socket stops taking data (a frozen tab, a dead link): its writer blocks
            # in its first send, as it would waiting for the socket to drain.
            slow = next(v for v in hub.viewers[minutes_id] if v.person_id == day.chair.id)
            assert await wait_for(lambda: bool(stalled.messages), 5)  # the state came before
            send_str = slow.out.ws.send_str

            async def blocked(data: str, compress: int | None = None) -> None:
                await release.wait()
                await send_str(data, compress)

            slow.out.ws.send_str = blocked
            version = entry["version"]
            for ref in range(1, SAVES + 1):
                await editor.ws.send_str(
                    json.dumps(
                        {"op": "save", "ref": ref, "id": entry["id"], "kind": "note", "version": version}
                        | {"text": f"lần {ref}"}
                    )
                )
                ack = await editor.answer(ref)
                assert ack["type"] == "ack", ack
                version = ack["result"]["entry"]["version"]
                # Acknowledged while the stalled viewer still holds every push of this save and
                # the ones before (one inside its blocked send, the others queued)...
                assert stalled.entries() == []
                assert slow.out._queue.qsize() == ref - 1
                # ...and committed: a fresh connection reads the version the ack gave.
                assert await _stored_version(world, entry["id"]) == version
            # On the editor's own socket each ack comes before the push of the same save.
            assert await wait_for(lambda: len(editor.entries()) == SAVES, 5)
            order = [
                ("ack", m["ref"]) if m["type"] == "ack" else ("entry", m["entry"]["version"] - 1)
                for m in editor.messages
                if m["type"] in {"ack", "entry"}
            ]
            assert order == [(kind, n) for n in range(1, SAVES + 1) for kind in ("ack", "entry")]
            # The other viewer got every save, in order, while the chair's socket was stuck.
            expected = list(range(entry["version"] + 1, entry["version"] + SAVES + 1))
            assert await wait_for(lambda: len(member.entries()) == SAVES, 5)
            assert member.entries() == expected
            # The link comes back: the stalled viewer gets all of them, in order, none lost.
            release.set()
            assert await wait_for(lambda: len(stalled.entries()) == SAVES, 5)
            assert stalled.entries() == expected
            assert [m["entry"]["text"] for m in stalled.messages if m["type"] == "entry"] == [
                f"lần {n}" for n in range(1, SAVES + 1)
            ]
        finally:
            release.set()
            await editor.close()
            await stalled.close()
            await member.close()
