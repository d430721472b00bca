"""Dropping out and coming back through the real signaling WebSocket, with aiortc peers."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select

from meetings.rooms import attendance
from meetings.rooms.models import Attendance, AttendanceEventKind
from tests.conftest import World
from tests.rtc.clients import Client, wait_for
from tests.signaling.conftest import Meeting
from tests.signaling.peers import Peer, eventually
from web import keys

pytestmark = pytest.mark.slow


async def reconnected(world: World, occurrence_id: int, person_id: int) -> bool:
    """One attendance record for the person, two connections, still connected."""
    async with world.db() as db:
        rows = list(
            await db.scalars(
                select(Attendance).where(
                    Attendance.occurrence_id == occurrence_id, Attendance.person_id == person_id
                )
            )
        )
    return len(rows) == 1 and rows[0].connections == 2 and rows[0].connected


def audio_packets(peer: Peer) -> int:
    return sum(peer.client.received[m].packets for m in peer.client.slot_mids("audio"))


async def test_a_client_that_drops_and_comes_back_gets_its_media_and_its_state_back(
    world: World, meeting: Meeting
) -> None:
    occ = meeting.occurrence
    a = meeting.peer(Peer(world, Client("a", amplitude=0.5, video=True)))
    await a.connect(occ, token=meeting.token(meeting.a), session=False)
    b = meeting.peer(Peer(world, Client("b", amplitude=0.3, video=True)))
    await b.connect(occ, token=meeting.token(meeting.b), session=False)
    await a.negotiate()
    await b.negotiate()
    assert await wait_for(lambda: a.client.frames("video") > 3 and b.client.frames("video") > 3, 25)
    # A turns the microphone off (camera stays on) and raises a hand.
    await a.send(type="mute", audio=True, video=False)
    await a.send(type="hand", raised=True)
    assert await b.event("queue", lambda e: e["queue"] == [meeting.a.id], 5)

    await a.drop()  # socket reset, media sockets gone: no `leave`, no close frame
    assert await b.event("left", lambda e: e["person_id"] == meeting.a.id, 10)
    sfu = world.app[keys.MEDIA].sfus[occ]
    assert await wait_for(lambda: a.participant not in sfu.participants(), 5)
    b_video = b.client.frames("video")

    # Back within the merge window, from a new connection asking for microphone and camera:
    # the room keeps what it knew (microphone off, hand up, its place in the queue).
    again = meeting.peer(Peer(world, Client("a-again", amplitude=0.5, video=True)))
    welcome = await again.connect(occ, token=meeting.token(meeting.a), session=False)
    assert welcome["placement"] == "seated"
    room = welcome["placed"]
    me = next(p for p in room["participants"] if p["person_id"] == meeting.a.id)
    assert me["id"] == again.participant != a.participant
    assert (me["audio_muted"], me["video_muted"], me["hand_raised"]) == (True, False, True)
    assert room["queue"] == [meeting.a.id]
    assert await b.event("joined", lambda e: e["participant"]["id"] == again.participant, 5)
    await again.negotiate()

    # Media flows again both ways: A's camera reaches B, B's camera and microphone reach A.
    assert await wait_for(
        lambda: b.client.frames("video") > b_video + 5 and again.client.frames("video") > 5, 25
    )
    assert await wait_for(lambda: again.client.frames("audio") > 10, 10)
    assert await b.event("stream", lambda e: e["participant"] == again.participant, 5)
    # ... but not A's microphone, still muted for the SFU too.
    await asyncio.sleep(0.5)
    before = audio_packets(b)
    await asyncio.sleep(1.0)
    assert audio_packets(b) - before < 5

    assert await eventually(lambda: reconnected(world, occ, meeting.a.id), 5)
    async with world.db() as db:
        kinds = [e.kind for e in await attendance.events(db, occ, meeting.a.id)]
    assert kinds == [AttendanceEventKind.JOIN, AttendanceEventKind.LEAVE, AttendanceEventKind.RECONNECT]


async def test_a_second_connection_takes_over_the_seat_of_one_still_open(
    world: World, meeting: Meeting
) -> None:
    occ = meeting.occurrence
    b = meeting.peer(Peer(world, name="b"))
    await b.connect(occ, token=meeting.token(meeting.b), session=False)
    first = meeting.peer(Peer(world, Client("a1", amplitude=0.4, audio_slots=1, video_slots=0)))
    await first.connect(occ, token=meeting.token(meeting.a), session=False)
    await first.negotiate()
    sfu = world.app[keys.MEDIA].sfus[occ]
    assert first.participant in sfu.participants()
    await first.send(type="hand", raised=True)
    assert await b.event("queue", lambda e: e["queue"] == [meeting.a.id], 5)

    # A network change seen by the client before the server: a new socket while the old is open.
    second = meeting.peer(Peer(world, name="a2"))
    welcome = await second.connect(occ, token=meeting.token(meeting.a), session=False)
    assert welcome["placement"] == "seated"
    assert await first.closed() == 4103
    assert await wait_for(lambda: bool([e for e in b.of_type("joined") if e.get("replaces")]), 5)
    joined = [e for e in b.of_type("joined") if e.get("replaces")]
    assert joined[0]["participant"]["id"] == second.participant
    assert joined[0]["participant"]["hand_raised"]
    # The old connection's peer connection is let go; nobody was told the person left.
    assert await wait_for(lambda: first.participant not in sfu.participants(), 5)
    assert not b.of_type("left")
    # `room` reaches the client just before its join is committed: poll.
    assert await eventually(lambda: reconnected(world, occ, meeting.a.id), 5)
    async with world.db() as db:
        kinds = [e.kind for e in await attendance.events(db, occ, meeting.a.id)]
    assert kinds == [AttendanceEventKind.JOIN, AttendanceEventKind.RECONNECT]


async def test_an_offer_after_the_last_publisher_left_is_still_answered(
    world: World, meeting: Meeting
) -> None:
    """The room's SFU lives while any connection holds it, not only while someone publishes."""
    occ = meeting.occurrence
    a = meeting.peer(Peer(world, Client("a", amplitude=0.5, audio_slots=1, video_slots=0)))
    await a.connect(occ, token=meeting.token(meeting.a), session=False)  # seated, no offer yet
    b = meeting.peer(Peer(world, Client("b", amplitude=0.3, audio_slots=1, video_slots=0)))
    await b.connect(occ, token=meeting.token(meeting.b), session=False)
    await b.negotiate()
    sfu = world.app[keys.MEDIA].sfus[occ]
    await b.send(type="leave")
    assert await b.closed() == 1000
    assert await wait_for(lambda: not sfu.participants(), 5)

    async def b_left() -> bool:
        async with world.db() as db:
            row = await db.scalar(select(Attendance).where(Attendance.person_id == meeting.b.id))
            return row is not None and not row.connected

    assert await eventually(b_left, 5)
    await asyncio.sleep(0.3)  # B's handler lets go of the SFU just after that commit
    assert world.app[keys.MEDIA].sfus.get(occ) is sfu
    await a.negotiate()  # before the fix: the SFU was closed under A: no answer, closed with 4500
    assert a.participant in world.app[keys.MEDIA].sfus[occ].participants()
    assert await wait_for(lambda: a.client.pc.connectionState == "connected", 15)
    assert not a.of_type("error") and a.ws is not None and not a.ws.closed
