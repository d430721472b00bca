"""Participants that vanish, and many joins and leaves, through the real server and WebSocket."""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import time
import tracemalloc

import aioice.ice
import pytest
from aiortc import RTCPeerConnection
from sqlalchemy import select

from meetings.rooms.models import Attendance
from meetings.settings import Settings
from tests.conftest import World
from tests.rtc.clients import Client, wait_for
from tests.signaling.conftest import Meeting
from tests.signaling.peers import Peer, eventually
from web import keys

pytestmark = pytest.mark.slow

HEARTBEAT = 1.0


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """A short signaling heartbeat, so that a silent client is found out within the test."""
    return dataclasses.replace(settings, signaling_heartbeat_seconds=HEARTBEAT)


async def seated_with_audio(world: World, meeting: Meeting) -> tuple[Peer, Peer]:
    """A and B seated, each sending a tone and receiving the other's."""
    a = meeting.peer(Peer(world, Client("a", amplitude=0.5, audio_slots=1, video_slots=0)))
    await a.connect(meeting.occurrence, token=meeting.token(meeting.a), session=False)
    b = meeting.peer(Peer(world, Client("b", amplitude=0.3, audio_slots=1, video_slots=0)))
    await b.connect(meeting.occurrence, token=meeting.token(meeting.b), session=False)
    await a.negotiate()
    await b.negotiate()
    assert await wait_for(lambda: a.client.frames("audio") > 5 and b.client.frames("audio") > 5, 20)
    return a, b


async def left_the_room(world: World, meeting: Meeting, gone: Peer) -> None:
    """The SFU let go of `gone`, and its attendance is closed."""
    sfu = world.app[keys.MEDIA].sfus[meeting.occurrence]
    assert await wait_for(lambda: gone.participant not in sfu.participants(), 5)

    async def closed() -> bool:
        async with world.db() as db:
            row = await db.scalar(select(Attendance).where(Attendance.person_id == meeting.a.id))
            return row is not None and not row.connected

    assert await eventually(closed, 5)


async def test_a_client_that_stops_answering_pings_is_gone_within_seconds(
    world: World, meeting: Meeting
) -> None:
    a, b = await seated_with_audio(world, meeting)
    started = time.monotonic()
    a.freeze()  # no more reads, so no pongs; the TCP connection stays up, nothing is closed
    a.kill_media()
    assert await b.event("left", lambda e: e["person_id"] == meeting.a.id, 10)
    # a ping after at most one heartbeat of silence, then half a heartbeat for the pong
    assert time.monotonic() - started < HEARTBEAT * 1.5 + 2.0
    await left_the_room(world, meeting, a)
    assert b.ws is not None and not b.ws.closed  # the others are not disturbed


async def test_a_client_whose_peer_connection_dies_is_sent_out_within_seconds(
    world: World, meeting: Meeting, monkeypatch: pytest.MonkeyPatch
) -> None:
    # ICE consent checks every ~0.2 s here (5 s in production, where the heartbeat is faster).
    monkeypatch.setattr(aioice.ice, "CONSENT_INTERVAL", 0.2)
    a, b = await seated_with_audio(world, meeting)
    started = time.monotonic()
    a.kill_media()  # the socket stays up and answers pings: only ICE can tell
    assert await a.closed(within=15) == 4105
    # 6 unanswered consent checks of 0.5 s each, about 0.2 s apart
    assert time.monotonic() - started < 10
    assert await b.event("left", lambda e: e["person_id"] == meeting.a.id, 5)
    await left_the_room(world, meeting, a)
    assert await wait_for(lambda: b.client.pc.connectionState == "connected", 1)


async def test_a_client_that_closes_its_peer_connection_is_sent_out_at_once(
    world: World, meeting: Meeting
) -> None:
    a, b = await seated_with_audio(world, meeting)
    started = time.monotonic()
    await a.client.pc.close()  # DTLS close_notify: the SFU's side closes too
    assert await a.closed(within=5) == 4105
    assert time.monotonic() - started < 3
    assert await b.event("left", lambda e: e["person_id"] == meeting.a.id, 5)
    await left_the_room(world, meeting, a)


CYCLES = 200
MEDIA_EVERY = 25  # every 25th cycle also brings up a tiny audio-only peer connection


async def test_join_leave_cycles_leave_nothing_behind(world: World, meeting: Meeting) -> None:
    media = world.app[keys.MEDIA]
    occ = meeting.occurrence
    tokens = [meeting.token(p) for p in (meeting.a, meeting.b, meeting.chair)]

    async def cycle(i: int) -> None:
        with_media = i % MEDIA_EVERY == 0
        client = Client(f"c{i}", amplitude=0.2, audio_slots=1, video_slots=0) if with_media else None
        peer = Peer(world, client, name=f"c{i}")
        try:
            welcome = await peer.connect(occ, token=tokens[i % len(tokens)], session=False)
            assert welcome["placement"] == "seated"
            if with_media:
                await peer.negotiate()
                assert await wait_for(lambda: peer.client.pc.connectionState == "connected", 15)
            await peer.send(type="leave")
            assert await peer.closed() == 1000
        finally:
            await peer.close()

    def settled() -> bool:
        return not media.sfus and not media.meetings and all(r.is_empty for r in media.registry)

    def peer_connections() -> int:
        gc.collect()
        return sum(isinstance(o, RTCPeerConnection) for o in gc.get_objects())

    for i in range(MEDIA_EVERY + 1):  # warm up: caches, codecs, the room itself
        await cycle(i)
    assert await wait_for(settled, 10)
    gc.collect()
    tasks_before = len(asyncio.all_tasks())
    rooms_before = len(media.registry)
    pcs_before = peer_connections()
    tracemalloc.start()
    try:
        memory_before = tracemalloc.get_traced_memory()[0]
        started = time.monotonic()
        for i in range(CYCLES):
            await cycle(i)
        elapsed = time.monotonic() - started
        assert await wait_for(settled, 10)
        assert await wait_for(lambda: len(asyncio.all_tasks()) <= tasks_before, 10), [
            t.get_name() for t in asyncio.all_tasks()
        ]
        gc.collect()
        memory_after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert len(media.registry) == rooms_before
    assert peer_connections() == pcs_before
    # What a cycle leaves is bounded by what a few connections hold, not by the number of cycles.
    growth = memory_after - memory_before
    # Measured on 2026-12-06 (tracemalloc): 825 kB after 200 cycles at 1ecf328, 950 kB now, and
    # 1,053 kB after 400 cycles (not twice: what is left are aiohttp request and WebSocket
    # objects of the latest ~76 connections still being torn down, web_protocol/web_ws). The
    # bound is a quarter above that; a per-cycle leak of a connection's media state (kilobytes
    # each) would exceed it within the 200 cycles.
    assert growth < 1_250_000, f"{growth} bytes more after {CYCLES} cycles"
    print(f"{CYCLES} cycles in {elapsed:.1f} s, traced memory {growth:+d} bytes")
    async with world.db() as db:
        rows = list(await db.scalars(select(Attendance).where(Attendance.occurrence_id == occ)))
    assert len(rows) == 3 and not any(r.connected for r in rows)
