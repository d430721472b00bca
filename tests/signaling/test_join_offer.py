"""The first offer sent with `join` (a page prepares it on its pre-join screen), and a new peer
connection on the same socket after the media was lost (`offer` with `restart`)."""

from __future__ import annotations

import asyncio

import pytest
from aiortc import RTCSessionDescription

from tests.conftest import World
from tests.rtc.clients import Client, wait_for
from tests.signaling.conftest import Meeting
from tests.signaling.peers import Peer
from tests.signaling.test_malformed_sdp import MALFORMED
from web import keys

pytestmark = pytest.mark.slow


def publishing() -> Client:
    """A participant sending a tone and a picture, receiving nothing."""
    return Client("pub", amplitude=0.3, video=True, audio_slots=0, video_slots=0)


async def prepared(client: Client) -> dict[str, object]:
    """The client's offer, gathered, as `join` carries it."""
    await client.offer()
    return {"sdp": client.pc.localDescription.sdp, "sources": client.sources_by_mid()}


async def answer_from(peer: Peer) -> None:
    """Apply the answer that comes without an `offer` message of ours, and read the slots."""
    sdp = await asyncio.wait_for(peer._answers.get(), 15)
    await peer.client.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))
    for t in peer.client.slots:
        peer.client._tasks.append(asyncio.create_task(peer.client._consume(t)))


async def test_an_offer_sent_with_join_is_answered_once_seated(world: World, meeting: Meeting) -> None:
    occ = meeting.occurrence
    publisher = meeting.peer(Peer(world, publishing()))
    await publisher.connect(occ, token=meeting.token(meeting.b), session=False)
    await publisher.negotiate()
    assert await wait_for(lambda: publisher.client.pc.connectionState == "connected", 15)

    a = meeting.peer(Peer(world, Client("a", audio_slots=1, video_slots=1)))
    offer = await prepared(a.client)
    joined = await a.connect(occ, token=meeting.token(meeting.a), session=False, offer=offer)
    assert joined["placement"] == "seated"
    await answer_from(a)  # no `offer` message: the one in `join` was answered
    sfu = world.app[keys.MEDIA].sfus[occ]
    assert a.participant in sfu.participants()
    assert await wait_for(lambda: a.client.pc.connectionState == "connected", 15)
    assert await wait_for(lambda: a.client.frames("video") > 0 and a.client.frames("audio") > 0, 15)
    assert a.of_type("error") == []


async def test_an_offer_sent_with_join_from_the_lobby_leaves_nothing_behind(
    world: World, meeting: Meeting
) -> None:
    occ = meeting.occurrence
    chair = meeting.peer(Peer(world, name="chair"))
    await chair.connect(occ, token=meeting.token(meeting.chair), session=False)
    await chair.send(type="moderate", action="lock")
    assert await chair.event("locked", lambda e: e["locked"], 5)

    a = meeting.peer(Peer(world, Client("a", audio_slots=1, video_slots=0)))
    held = await a.connect(occ, token=meeting.token(meeting.a), session=False, offer=await prepared(a.client))
    assert held["placement"] == "lobby"
    await asyncio.sleep(0.5)
    # Dropped, silently: no answer, no error, no peer connection on the server.
    assert a.of_type("answer") == [] and a.of_type("error") == []
    media = world.app[keys.MEDIA]
    assert occ not in media.sfus or a.participant not in media.sfus[occ].participants()
    # Admitted, the page offers again (the same offer) and gets its answer.
    await chair.send(type="moderate", action="admit", target=str(meeting.a.id))
    assert await a.event("room", within=5)
    await a.negotiate()
    assert await wait_for(lambda: a.client.pc.connectionState == "connected", 15)


async def test_a_bad_offer_sent_with_join_is_an_error_and_the_seat_stays(
    world: World, meeting: Meeting
) -> None:
    a = meeting.peer(Peer(world, Client("a", audio_slots=1, video_slots=0)))
    bad = {"sdp": MALFORMED[1], "sources": {}}
    joined = await a.connect(meeting.occurrence, token=meeting.token(meeting.a), session=False, offer=bad)
    assert joined["placement"] == "seated"
    assert await a.event("error", lambda e: e["code"] == "bad_sdp", 5)
    await a.negotiate()  # the socket stays open; a good offer is a first join
    assert await wait_for(lambda: a.client.pc.connectionState == "connected", 15)


async def test_a_new_peer_connection_replaces_the_lost_one_on_the_same_socket(
    world: World, meeting: Meeting
) -> None:
    occ = meeting.occurrence
    publisher = meeting.peer(Peer(world, publishing()))
    await publisher.connect(occ, token=meeting.token(meeting.b), session=False)
    await publisher.negotiate()
    a = meeting.peer(Peer(world, Client("a", audio_slots=1, video_slots=1)))
    await a.connect(occ, token=meeting.token(meeting.a), session=False)
    await a.negotiate()
    assert await wait_for(lambda: a.client.frames("video") > 0, 15)
    sfu = world.app[keys.MEDIA].sfus[occ]
    old_pc = sfu.peer_connection(a.participant)

    # A's media goes quiet (its network dropped); its page brings a new peer connection.
    a.kill_media()
    first = a.client
    a.client = Client("a2", audio_slots=1, video_slots=1)
    await a.client.offer()
    await a.send(
        type="offer", sdp=a.client.pc.localDescription.sdp, sources=a.client.sources_by_mid(), restart=True
    )
    await answer_from(a)
    assert await wait_for(lambda: a.client.frames("video") > 0 and a.client.frames("audio") > 0, 15)
    assert sfu.peer_connection(a.participant) is not old_pc
    assert a.participant in sfu.participants()
    # The same connection throughout: seated, never closed, the others saw no `left`.
    assert a.close_code is None and a.of_type("error") == []
    assert not any(e["participant_id"] == a.participant for e in publisher.of_type("left"))
    await first.close()
