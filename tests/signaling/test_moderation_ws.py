"""Lock, remove and end, through the real signaling WebSocket, with aiortc peers."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from meetings.rooms.models import Attendance
from meetings.schedule.models import Occurrence, OccurrenceState
from tests.conftest import World
from tests.rtc.clients import Client, wait_for
from tests.signaling.conftest import Meeting
from tests.signaling.peers import Peer, eventually
from web import keys

pytestmark = pytest.mark.slow


async def chair_in(world: World, meeting: Meeting) -> Peer:
    chair = meeting.peer(Peer(world, name="chair"))
    joined = await chair.connect(meeting.occurrence, token=meeting.token(meeting.chair), session=False)
    assert joined["placement"] == "seated" and joined["placed"]["role"] == "moderator"
    return chair


async def test_a_locked_room_holds_invitees_in_the_lobby_until_it_is_unlocked(
    world: World, meeting: Meeting
) -> None:
    occ = meeting.occurrence
    chair = await chair_in(world, meeting)
    await chair.send(type="moderate", action="lock")
    assert await chair.event("locked", lambda e: e["locked"] and e["by"] == meeting.chair.id, 5)

    a = meeting.peer(Peer(world, name="a"))
    held = await a.connect(occ, token=meeting.token(meeting.a), session=False)  # invited, but locked
    assert held["placement"] == "lobby" and held["placed"]["reason"] == "locked"
    assert await chair.event("lobby", lambda e: [w["person_id"] for w in e["lobby"]] == [meeting.a.id], 5)
    # From the lobby: no media, no chat.
    await a.send(type="offer", sdp="v=0\r\n")
    assert await a.event("error", lambda e: e["code"] == "not_in_room", 5)
    assert occ not in world.app[keys.MEDIA].sfus or not world.app[keys.MEDIA].sfus[occ].participants()

    await chair.send(type="moderate", action="unlock")
    assert await chair.event("locked", lambda e: not e["locked"], 5)
    b = meeting.peer(Peer(world, Client("b", amplitude=0.3, audio_slots=1, video_slots=0)))
    assert (await b.connect(occ, token=meeting.token(meeting.b), session=False))["placement"] == "seated"
    await b.negotiate()
    assert await wait_for(lambda: b.client.pc.connectionState == "connected", 15)
    # A, still waiting, is admitted by the chair.
    await chair.send(type="moderate", action="admit", target=str(meeting.a.id))
    assert await a.event("room", within=5)
    assert await chair.event("lobby", lambda e: e["lobby"] == [], 5)


async def test_a_removed_participant_is_closed_with_4101_and_waits_in_the_lobby_next_time(
    world: World, meeting: Meeting
) -> None:
    occ = meeting.occurrence
    chair = await chair_in(world, meeting)
    b = meeting.peer(Peer(world, Client("b", amplitude=0.3, audio_slots=1, video_slots=0)))
    await b.connect(occ, token=meeting.token(meeting.b), session=False)
    await b.negotiate()
    sfu = world.app[keys.MEDIA].sfus[occ]
    assert await wait_for(lambda: b.participant in sfu.participants(), 5)

    await chair.send(type="moderate", action="remove", target=str(meeting.b.id))
    assert await b.closed() == 4101
    assert await chair.event(
        "left",
        lambda e: e["person_id"] == meeting.b.id and e["reason"] == "removed" and e["by"] == meeting.chair.id,
        5,
    )
    assert await wait_for(lambda: b.participant not in sfu.participants(), 5)  # the SFU lets go too

    again = meeting.peer(Peer(world, name="b-again"))
    back = await again.connect(occ, token=meeting.token(meeting.b), session=False)
    assert back["placement"] == "lobby" and back["placed"]["reason"] == "removed"
    assert await chair.event(
        "lobby",
        lambda e: [(w["person_id"], w["reason"]) for w in e["lobby"]] == [(meeting.b.id, "removed")],
        5,
    )
    async with world.db() as db:
        row = await db.scalar(select(Attendance).where(Attendance.person_id == meeting.b.id))
    assert row is not None and not row.connected and row.connections == 1  # the lobby does not count


async def test_ending_the_meeting_closes_everyone_with_4100_and_refuses_newcomers(
    world: World, meeting: Meeting
) -> None:
    occ = meeting.occurrence
    chair = await chair_in(world, meeting)
    a = meeting.peer(Peer(world, Client("a", amplitude=0.4, audio_slots=1, video_slots=0)))
    await a.connect(occ, token=meeting.token(meeting.a), session=False)
    await a.negotiate()
    guest = meeting.peer(Peer(world, name="guest"))
    assert (await guest.connect(occ, token=meeting.token(meeting.outsider), session=False))["placement"] == (
        "lobby"
    )
    # Not for participants.
    await a.send(type="moderate", action="end")
    assert await a.event("error", lambda e: e["code"] == "not_moderator", 5)

    await chair.send(type="moderate", action="end")
    for peer in (chair, a, guest):
        assert await peer.closed() == 4100
        assert peer.of_type("ended") == [{"type": "ended", "by": meeting.chair.id}]
    assert await wait_for(lambda: occ not in world.app[keys.MEDIA].sfus, 5)

    b = meeting.peer(Peer(world, name="late"))
    code, close = await b.refused(occ, token=meeting.token(meeting.b), session=False)
    assert (code, close) == ("room_closed", 4100)

    async def recorded() -> bool:
        # The chair's transaction commits just after everyone was told.
        async with world.db() as db:
            occurrence = await db.get(Occurrence, occ)
            rows = list(await db.scalars(select(Attendance).where(Attendance.occurrence_id == occ)))
        return (
            occurrence is not None
            and occurrence.state is OccurrenceState.ENDED
            and sorted(r.person_id for r in rows) == sorted([meeting.chair.id, meeting.a.id])
            and not any(r.connected for r in rows)
        )

    assert await eventually(recorded, 5)
