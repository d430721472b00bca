"""Minutes over HTTP and the real WebSocket: pages, API errors, exports, two live editors."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import docx
import pytest
from sqlalchemy import select, update

from meetings.minutes import service as minutes_service
from meetings.minutes.models import Entry
from meetings.schedule.models import Occurrence, OccurrenceState
from tests.conftest import PASSWORD, World
from tests.minutes.helpers import Day, make_day
from web import csrf


async def open_minutes(world: World, day: Day) -> int:
    """The afternoon minutes, opened by the secretary through the meeting's minutes link."""
    await world.login(day.secretary.email)
    response = await world.client.get(
        f"/meetings/occurrences/{day.afternoons[0].id}/minutes", allow_redirects=False
    )
    assert response.status == 303, await response.text()
    return int(response.headers["Location"].rsplit("/", 1)[1])


async def add(world: World, minutes_id: int, **data: Any) -> Any:
    return await world.call("POST", f"/api/minutes/{minutes_id}/entries", json=data)


async def test_api_saves_with_versions_and_refuses_bad_input_clearly(world: World) -> None:
    day = await make_day(world)
    minutes_id = await open_minutes(world, day)
    created = await add(
        world, minutes_id, kind="issue", text="Mất kết nối", unit="P-PHUXUAN", category="connectivity"
    )
    assert created.status == 201, await created.text()
    entry = (await created.json())["entry"]
    path = f"/api/minutes/{minutes_id}/entries/{entry['id']}"
    ok = await world.call(
        "PUT", path, json={**entry, "unit": "P-PHUXUAN", "text": "Mất kết nối VNPT", "version": 1}
    )
    assert ok.status == 200 and (await ok.json())["entry"]["version"] == 2
    stale = await world.call(
        "PUT", path, json={"kind": "issue", "unit": "P-PHUXUAN", "text": "cũ", "version": 1}
    )
    assert stale.status == 409
    body = await stale.json()
    assert body["error"]["current"]["text"] == "Mất kết nối VNPT" and body["error"]["message"]

    cases: list[tuple[dict[str, Any], int, str]] = [
        ({"kind": "note", "text": ""}, 422, "text"),
        ({"kind": "issue", "text": "x", "unit": "NOPE"}, 422, "unit"),
        ({"kind": "action", "text": "x", "owner_unit": "VNPT", "due_date": "2020-01-01"}, 422, "due_date"),
        ({"kind": "note", "text": "x" * 5000}, 422, "text"),
        ({"kind": "note", "text": 5}, 422, "text"),
        ({"kind": "note", "text": "x", "link_id": "1"}, 422, "link_id"),
    ]
    for data, status, field in cases:
        response = await add(world, minutes_id, **data)
        assert response.status == status, (data, await response.text())
        fields = [f["field"] for f in (await response.json())["error"]["fields"]]
        assert field in fields, (data, fields)
    not_json = await world.call("POST", f"/api/minutes/{minutes_id}/entries", data="nope")
    assert not_json.status == 422


async def test_html_is_stored_as_text_and_escaped_everywhere(world: World) -> None:
    day = await make_day(world)
    minutes_id = await open_minutes(world, day)
    evil = "<script>alert('x')</script><img src=x onerror=alert(1)>"
    assert (await add(world, minutes_id, kind="note", text=evil)).status == 201
    for path in (f"/minutes/{minutes_id}", f"/minutes/{minutes_id}/edit"):
        page = await world.client.get(path)
        html = await page.text()
        assert page.status == 200
        assert "<script>alert" not in html and "<img src=x" not in html
    exported = await world.client.get(f"/minutes/{minutes_id}/export/docx")
    document = docx.Document(io.BytesIO(await exported.read()))
    assert any(evil in p.text for p in document.paragraphs)
    md = await (await world.client.get(f"/minutes/{minutes_id}/export/md")).text()
    assert "<script>" not in md and "&lt;script&gt;" in md


async def test_workflow_pages_and_members_read_only_published(world: World) -> None:
    day = await make_day(world)
    minutes_id = await open_minutes(world, day)
    assert (await add(world, minutes_id, kind="note", text="Tình hình ổn định")).status == 201
    assert (await world.post_form(f"/minutes/{minutes_id}/submit")).status == 303
    # The secretary may not approve; the chair may.
    assert (await world.post_form(f"/minutes/{minutes_id}/approve")).status == 403
    await world.logout()
    await world.login(day.member.email)
    assert (await world.client.get(f"/minutes/{minutes_id}")).status == 403
    assert (await add(world, minutes_id, kind="note", text="x")).status == 403
    await world.logout()
    await world.login(day.chair.email)
    assert (await world.post_form(f"/minutes/{minutes_id}/approve")).status == 303
    edit = await add(world, minutes_id, kind="note", text="sau phê duyệt")
    assert edit.status == 409 and (await edit.json())["error"]["message"]  # approved minutes are locked
    assert (await world.post_form(f"/minutes/{minutes_id}/publish")).status == 303
    await world.logout()
    await world.login(day.member.email)
    page = await world.client.get(f"/minutes/{minutes_id}")
    assert page.status == 200 and "Tình hình ổn định" in await page.text()
    found = await world.client.get("/api/search/minutes", params={"q": "tinh hinh on dinh"})
    assert [r["entry"]["text"] for r in (await found.json())["results"]] == ["Tình hình ổn định"]
    version = await world.client.get(f"/minutes/{minutes_id}/versions/1")
    assert version.status == 200
    pdf = await world.client.get(f"/minutes/{minutes_id}/export/pdf", params={"version": "1"})
    assert pdf.status == 200 and (await pdf.read()).startswith(b"%PDF")
    await world.logout()
    await world.login(day.outsider.email)
    assert (await world.client.get(f"/minutes/{minutes_id}")).status == 403


@asynccontextmanager
async def signed_in(world: World, email: str) -> AsyncIterator[aiohttp.ClientSession]:
    """A second browser: its own cookies, signed in through the login form."""
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        await http.get(world.client.make_url("/login"))
        seed = next(c.value for c in http.cookie_jar if c.key == csrf.COOKIE)
        form = {
            "email": email,
            "password": PASSWORD,
            "next": "/",
            "csrf_token": csrf.token_for(world.settings.secret_key, seed),
        }
        response = await http.post(world.client.make_url("/login"), data=form, allow_redirects=False)
        assert response.status == 303
        yield http


class Socket:
    """One live minutes socket: sends edits, collects what the server says."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.answers: dict[int, dict[str, Any]] = {}
        self.pushes: list[dict[str, Any]] = []
        self.state: dict[str, Any] = {}
        self.reader = asyncio.create_task(self.read())

    async def read(self) -> None:
        async for msg in self.ws:
            data = json.loads(msg.data)
            if data["type"] == "state":
                self.state = data["state"]
            elif "ref" in data and data["ref"] is not None:
                self.answers[data["ref"]] = data
            else:
                self.pushes.append(data)

    async def ask(self, ref: int, **message: Any) -> dict[str, Any]:
        await self.ws.send_str(json.dumps({"ref": ref, **message}))
        for _ in range(500):
            if ref in self.answers:
                return self.answers.pop(ref)
            await asyncio.sleep(0.01)
        raise AssertionError(f"no answer to {ref}")

    async def close(self) -> None:
        await self.ws.close()
        await self.reader


async def test_two_editors_over_the_websocket_lose_no_update(world: World) -> None:
    day = await make_day(world)
    minutes_id = await open_minutes(world, day)
    created = await add(world, minutes_id, kind="note", text="Bản đầu")
    entry = (await created.json())["entry"]
    url = world.client.make_url(f"/minutes/{minutes_id}/ws")
    origin = str(world.client.make_url("/")).rstrip("/")
    async with (
        signed_in(world, day.chair.email) as chair_http,
        signed_in(world, day.member.email) as member_http,
    ):
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await chair_http.ws_connect(url, headers={"Origin": "https://evil.example"})
        assert refused.value.status == 403
        secretary = Socket(await world.client.session.ws_connect(url, headers={"Origin": origin}))
        chair = Socket(await chair_http.ws_connect(url, headers={"Origin": origin}))
        # A member may watch the live minutes while the meeting is open, never write.
        viewer_ws = None
        try:
            viewer_ws = await member_http.ws_connect(url, headers={"Origin": origin})
        except aiohttp.WSServerHandshakeError as exc:
            assert exc.status == 403  # the meeting is not open in this test's calendar
        try:
            version = entry["version"]
            texts = []
            for round_no in range(1, 11):
                base = {"op": "save", "id": entry["id"], "kind": "note", "version": version}
                a, b = await asyncio.gather(
                    secretary.ask(round_no * 2, **base, text=f"thư ký {round_no}"),
                    chair.ask(round_no * 2 + 1, **base, text=f"chủ trì {round_no}"),
                )
                kinds = sorted([a["type"], b["type"]])
                assert kinds == ["ack", "conflict"], (a, b)
                winner, loser = (a, b) if a["type"] == "ack" else (b, a)
                current = loser["current"]
                assert current["text"] == winner["result"]["entry"]["text"]
                # The loser sees the current text and saves over it knowingly: nothing is lost.
                merged = f"{current['text']} + sửa lại {round_no}"
                who = secretary if loser is a else chair
                again = await who.ask(1000 + round_no, **{**base, "version": current["version"]}, text=merged)
                assert again["type"] == "ack", again
                version = again["result"]["entry"]["version"]
                texts.append(merged)
            for _ in range(200):
                if len(chair.pushes) >= 20 and len(secretary.pushes) >= 20:
                    break
                await asyncio.sleep(0.01)
            assert [p["entry"]["text"] for p in secretary.pushes if p["type"] == "entry"][-1] == texts[-1]
            assert [p["entry"]["text"] for p in chair.pushes if p["type"] == "entry"][-1] == texts[-1]
        finally:
            await secretary.close()
            await chair.close()
            if viewer_ws is not None:
                await viewer_ws.close()
    async with world.db() as db:
        stored = await db.scalar(select(Entry).where(Entry.id == entry["id"]))
        changes = await minutes_service.history(db, entry["id"])
    assert stored is not None and stored.text == texts[-1] and stored.version == 21
    assert [c.action for c in changes].count("update") == 20


async def test_socket_ops_errors_and_a_member_watching_live(world: World) -> None:
    day = await make_day(world)
    minutes_id = await open_minutes(world, day)
    async with world.db() as db:
        await db.execute(
            update(Occurrence)
            .where(Occurrence.id == day.afternoons[0].id)
            .values(state=OccurrenceState.IN_PROGRESS)
        )
        await db.commit()
    url = world.client.make_url(f"/minutes/{minutes_id}/ws")
    origin = str(world.client.make_url("/")).rstrip("/")
    async with signed_in(world, day.member.email) as member_http:
        secretary = Socket(await world.client.session.ws_connect(url, headers={"Origin": origin}))
        member = Socket(await member_http.ws_connect(url, headers={"Origin": origin}))
        try:
            a = await secretary.ask(1, op="add", kind="note", text="Một")
            b = await secretary.ask(2, op="add", kind="lesson", text="Hai")
            assert a["type"] == b["type"] == "ack"
            first, second = a["result"]["entry"], b["result"]["entry"]
            moved = await secretary.ask(3, op="move", id=second["id"], version=second["version"], position=1)
            assert [e["id"] for e in moved["result"]["entries"]] == [second["id"], first["id"]]
            gone = await secretary.ask(4, op="delete", id=first["id"], version=first["version"])
            assert gone["result"] == {"type": "deleted", "id": first["id"], "version": 2}
            header = await secretary.ask(5, op="header", header_version=1, chair="Phó Chủ tịch")
            assert header["result"]["header"]["chair"] == "Phó Chủ tịch"
            stale = await secretary.ask(6, op="header", header_version=1, chair="x")
            assert stale["type"] == "error" and stale["message"]
            refreshed = await secretary.ask(7, op="attendance", header_version=2)
            assert refreshed["result"]["header_version"] == 3
            for bad, field in (({"op": "save", "id": "x"}, "id"), ({"op": "nope"}, "op")):
                answer = await secretary.ask(8, **bad)
                assert answer["type"] == "error" and field in [f["field"] for f in answer["fields"]]
            await secretary.ws.send_str("not json")
            # The member reads live and may not write.
            refused = await member.ask(9, op="add", kind="note", text="x")
            assert refused["type"] == "error" and refused["fields"] == []
            assert member.state["sections"] and member.state["status"] == "draft"
            for _ in range(200):
                if len(member.pushes) >= 6:
                    break
                await asyncio.sleep(0.01)
            assert [p["type"] for p in member.pushes] == [
                "entry",
                "entry",
                "order",
                "deleted",
                "header",
                "header",
            ]
        finally:
            await secretary.close()
            await member.close()
