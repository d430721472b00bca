"""A room participant too slow to follow is closed (1001, told to reload); the others go on."""

from __future__ import annotations

import pytest

from meetings.live.messages import Pong
from meetings.wire import CloseCode
from tests.conftest import World
from tests.signaling.conftest import Meeting
from tests.signaling.peers import Peer
from web import keys
from web.views.room_ws import SEND_QUEUE, Connection

pytestmark = pytest.mark.slow


async def test_a_slow_participant_is_closed_and_the_others_keep_receiving(
    world: World, meeting: Meeting
) -> None:
    a = meeting.peer(Peer(world, name="a"))
    await a.connect(meeting.occurrence, token=meeting.token_a, session=False)
    b = meeting.peer(Peer(world, name="b"))
    await b.connect(meeting.occurrence, token=meeting.token(meeting.b), session=False)
    await b.send(type="ping")  # answered once B's join is complete (its attendance written)
    assert await b.event("pong")
    room = world.app[keys.MEDIA].registry.get(meeting.occurrence)
    assert room is not None
    slow = room.participant(meeting.a.id)
    assert isinstance(slow, Connection)
    # More than the queue holds, without giving the writer a turn: A's client cannot keep up.
    for _ in range(SEND_QUEUE + 1):
        slow.post(Pong())
    await b.send(type="chat", text="Còn ai nghe không?")
    assert await b.event("chat", lambda e: e["text"] == "Còn ai nghe không?")
    assert await a.closed() == CloseCode.GOING_AWAY
    assert await b.event("left", lambda e: e["person_id"] == meeting.a.id)
    assert room.participant(meeting.a.id) is None
    assert len([e for e in a.events if e["type"] == "pong"]) < SEND_QUEUE  # stale ones dropped
