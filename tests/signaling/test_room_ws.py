"""aiortc clients join a meeting room through the real server and the real signaling WebSocket."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest
from sqlalchemy import select

from meetings.rooms.models import Attendance, ChatMessage
from meetings.schedule.models import Series
from tests.conftest import World
from tests.rtc.clients import Client, wait_for
from tests.signaling.conftest import Meeting
from tests.signaling.peers import Peer

pytestmark = pytest.mark.slow


async def test_two_clients_see_and_hear_each_other_through_the_room(world: World, meeting: Meeting) -> None:
    occ = meeting.occurrence
    # A joins with the personal link from the invitation (no login), B with a login session.
    a = Peer(world, Client("a", amplitude=0.5, video=True))
    meeting.peers.append(a)
    welcome = await a.connect(occ, token=meeting.token_a, session=False)
    assert welcome["placement"] == "seated"
    await world.login("b@hue.example")
    b = Peer(world, Client("b", amplitude=0.3, video=True))
    meeting.peers.append(b)
    assert (await b.connect(occ))["placement"] == "seated"
    await a.negotiate()
    await b.negotiate()
    assert await wait_for(lambda: a.client.frames("video") > 5 and b.client.frames("video") > 5, 25)
    assert await wait_for(lambda: a.client.frames("audio") > 10 and b.client.frames("audio") > 10, 10)
    # who is on which stream
    assert await wait_for(lambda: bool(b.of_type("stream")), 5)
    assert any(e["person_id"] == meeting.a.id for e in b.of_type("stream"))
    # A mutes: B is told, and A's audio stops reaching B
    await a.send(type="mute", audio=True, video=False)
    assert await wait_for(
        lambda: any(
            e["participant"]["person_id"] == meeting.a.id and e["participant"]["audio_muted"]
            for e in b.of_type("state")
        ),
        5,
    )
    await asyncio.sleep(0.5)
    before = sum(b.client.received[m].packets for m in b.client.slot_mids("audio"))
    await asyncio.sleep(1.0)
    after = sum(b.client.received[m].packets for m in b.client.slot_mids("audio"))
    assert after - before < 5  # nothing (or a packet in flight) after the mute
    # chat reaches everyone and is stored
    await b.send(type="chat", text="Xin chào")
    assert await wait_for(lambda: any(e["text"] == "Xin chào" for e in a.of_type("chat")), 5)
    async with world.db() as db:
        assert [m.text for m in await db.scalars(select(ChatMessage))] == ["Xin chào"]
        records = list(await db.scalars(select(Attendance)))
        assert sorted(r.person_id for r in records) == sorted([meeting.a.id, meeting.b.id])


async def test_the_lobby_and_moderation(world: World, meeting: Meeting) -> None:
    occ = meeting.occurrence
    await world.login("chair@hue.example")
    chair = Peer(world, Client("chair"))
    meeting.peers.append(chair)
    assert (await chair.connect(occ))["placement"] == "seated"
    await world.logout()
    await world.login("x@hue.example")  # not invited: the lobby
    guest = Peer(world, Client("x"))
    meeting.peers.append(guest)
    assert (await guest.connect(occ))["placement"] == "lobby"
    assert await wait_for(lambda: any(e["lobby"] for e in chair.of_type("lobby")), 5)
    # in the lobby, no media
    await guest.send(type="offer", sdp="v=0\r\n")
    assert await wait_for(lambda: bool(guest.of_type("error")), 5)
    await chair.send(type="moderate", action="admit", target=str(meeting.outsider.id))
    assert await wait_for(lambda: bool(guest.of_type("room")), 5)
    # a non-moderator cannot remove anyone
    await guest.send(type="moderate", action="remove", target=str(meeting.chair.id))
    assert await wait_for(lambda: any(e["code"] == "not_moderator" for e in guest.of_type("error")), 5)
    # the chair removes the guest: its socket closes with REMOVED
    await chair.send(type="moderate", action="remove", target=str(meeting.outsider.id))
    assert guest.ws is not None
    assert await wait_for(lambda: guest.ws is not None and guest.ws.closed, 5)
    assert guest.ws.close_code == 4101


async def test_bad_origin_bad_messages_and_strangers_are_refused(world: World, meeting: Meeting) -> None:
    occ = meeting.occurrence
    url = world.client.make_url(f"/rooms/{occ}/ws")
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(url, headers={"Origin": "https://evil.example"})
        assert refused.value.status == 403
        origin = str(world.client.make_url("/")).rstrip("/")
        # no session and no token
        ws = await http.ws_connect(url, headers={"Origin": origin})
        await ws.send_str(json.dumps({"type": "join", "occurrence": occ}))
        msg = await ws.receive(timeout=5)
        assert json.loads(msg.data)["type"] == "error"
        await ws.receive(timeout=5)
        assert ws.close_code == 4001
        # a tampered token
        ws = await http.ws_connect(url, headers={"Origin": origin})
        await ws.send_str(json.dumps({"type": "join", "occurrence": occ, "token": meeting.token_a + "x"}))
        await ws.receive(timeout=5)
        await ws.receive(timeout=5)
        assert ws.close_code == 4001
        # garbage first message
        ws = await http.ws_connect(url, headers={"Origin": origin})
        await ws.send_str("{not json")
        await ws.receive(timeout=5)
        await ws.receive(timeout=5)
        assert ws.close_code == 4000
        # a good join, then a malformed message: an error, the socket stays open; binary closes it
        ws = await http.ws_connect(url, headers={"Origin": origin})
        await ws.send_str(json.dumps({"type": "join", "occurrence": occ, "token": meeting.token_a}))
        assert json.loads((await ws.receive(timeout=5)).data)["type"] == "welcome"
        assert json.loads((await ws.receive(timeout=5)).data)["type"] == "room"
        await ws.send_str(json.dumps({"type": "hand", "raised": "yes"}))
        errors: list[dict[str, Any]] = []
        while not errors:
            data = json.loads((await ws.receive(timeout=5)).data)
            if data["type"] == "error":
                errors.append(data)
        assert errors[0]["code"] == "bad_message"
        await ws.send_bytes(b"\x00")
        while not ws.closed:
            await ws.receive(timeout=5)
        assert ws.close_code == 4000
    async with world.db() as db:
        assert await db.scalar(select(Series.id)) is not None
