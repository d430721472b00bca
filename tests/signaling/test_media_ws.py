"""What receivers get, told through the real signaling WebSocket: keyframes, last-N, speakers."""

from __future__ import annotations

import asyncio
import dataclasses
import math
from array import array
from typing import Any

import pytest

from meetings.settings import Settings
from tests.conftest import World
from tests.rtc.clients import RATE, Client, ToneTrack, wait_for
from tests.signaling.conftest import Meeting
from tests.signaling.peers import Peer

pytestmark = pytest.mark.slow


@pytest.fixture
def video_last_n() -> int:
    """The server's last-N (a test parametrizes it)."""
    return 6


@pytest.fixture
def settings(settings: Settings, video_last_n: int) -> Settings:
    return dataclasses.replace(settings, video_last_n=video_last_n)


def set_loudness(client: Client, amplitude: float) -> None:
    """Change the level of a client's tone from now on (0 is silence)."""
    for transceiver in client.pc.getTransceivers():
        track = transceiver.sender.track
        if isinstance(track, ToneTrack):
            n = track._samples
            track._pcm = array(
                "h", (int(math.sin(2 * math.pi * 440 * i / RATE) * 32767 * amplitude) for i in range(n))
            ).tobytes()


def last_stream(peer: Peer, mid: str) -> dict[str, Any] | None:
    """What the server last said this peer's slot carries."""
    streams = [e for e in peer.of_type("stream") if e["mid"] == mid]
    return streams[-1] if streams else None


async def test_a_new_receiver_gets_video_within_a_second_of_connecting(
    world: World, meeting: Meeting
) -> None:
    occ = meeting.occurrence
    publisher = meeting.peer(Peer(world, Client("pub", video=True, audio_slots=0, video_slots=0)))
    await publisher.connect(occ, token=meeting.token(meeting.a), session=False)
    await publisher.negotiate()
    assert await wait_for(lambda: publisher.connected_at is not None, 15)
    await asyncio.sleep(1.0)  # the publisher's first keyframe is long gone

    viewer = meeting.peer(Peer(world, Client("viewer", audio_slots=0, video_slots=1)))
    await viewer.connect(occ, token=meeting.token(meeting.b), session=False)
    await viewer.negotiate()
    mid = viewer.client.slot_mids("video")[0]
    assert await wait_for(lambda: viewer.client.received[mid].first_keyframe_at is not None, 15)
    keyframe_at = viewer.client.received[mid].first_keyframe_at
    assert keyframe_at is not None and viewer.connected_at is not None
    assert keyframe_at - viewer.connected_at < 1.0
    assert await wait_for(lambda: viewer.client.frames("video") > 3, 5)  # and it decodes
    told = last_stream(viewer, mid)
    assert told is not None and told["participant"] == publisher.participant
    assert (told["person_id"], told["kind"], told["source"]) == (meeting.a.id, "video", "camera")


@pytest.mark.parametrize("video_last_n", [1])
async def test_last_n_follows_the_loudest_speaker(world: World, meeting: Meeting) -> None:
    await follows_the_loudest_speaker(world, meeting)


async def test_a_receiver_with_fewer_slots_than_last_n_gets_the_latest_speaker(
    world: World, meeting: Meeting
) -> None:
    await follows_the_loudest_speaker(world, meeting)


async def follows_the_loudest_speaker(world: World, meeting: Meeting) -> None:
    """A receiver with one video slot sees Y while Y speaks, then X when X does."""
    occ = meeting.occurrence
    # X joins first (so it would fill the slot by join order) but is silent; Y speaks.
    x = meeting.peer(Peer(world, Client("x", amplitude=0.0, video=True, audio_slots=0, video_slots=0)))
    await x.connect(occ, token=meeting.token(meeting.a), session=False)
    y = meeting.peer(Peer(world, Client("y", amplitude=0.5, video=True, audio_slots=0, video_slots=0)))
    await y.connect(occ, token=meeting.token(meeting.b), session=False)
    await x.negotiate()
    await y.negotiate()
    # A receiver with room for one video.
    receiver = meeting.peer(Peer(world, Client("r", audio_slots=1, video_slots=1)))
    await receiver.connect(occ, token=meeting.token(meeting.chair), session=False)
    await receiver.negotiate()
    video = receiver.client.slot_mids("video")[0]

    def carries(peer: Peer) -> bool:
        told = last_stream(receiver, video)
        return told is not None and told["participant"] == peer.participant

    assert await wait_for(lambda: carries(y), 30)
    assert last_stream(receiver, video) == {
        "type": "stream",
        "mid": video,
        "kind": "video",
        "participant": y.participant,
        "person_id": meeting.b.id,
        "source": "camera",
    }
    assert await receiver.event("speaking", lambda e: e["person_id"] == meeting.b.id, 15)
    assert await wait_for(lambda: receiver.client.frames("video") > 3, 15)

    # Y falls silent and X speaks: the slot switches to X, without renegotiation.
    set_loudness(y.client, 0.0)
    set_loudness(x.client, 0.5)
    assert await wait_for(lambda: carries(x), 20)
    told = last_stream(receiver, video)
    assert told is not None and told["person_id"] == meeting.a.id
    assert await receiver.event("speaking", lambda e: e["person_id"] == meeting.a.id, 15)
    frames = receiver.client.frames("video")
    assert await wait_for(lambda: receiver.client.frames("video") > frames + 3, 20)
    # ... and the audio slot carries X's voice now, not Y's silence.
    audio = receiver.client.slot_mids("audio")[0]
    assert await wait_for(lambda: (last_stream(receiver, audio) or {}).get("participant") == x.participant, 5)


async def test_the_chair_is_pinned_over_the_loudest_speaker(world: World, meeting: Meeting) -> None:
    """The chair's video is pinned: a receiver with one video slot keeps it while others speak."""
    occ = meeting.occurrence
    chair = meeting.peer(
        Peer(world, Client("chair", amplitude=0.0, video=True, audio_slots=0, video_slots=0))
    )
    await chair.connect(occ, token=meeting.token(meeting.chair), session=False)
    speaker = meeting.peer(
        Peer(world, Client("loud", amplitude=0.6, video=True, audio_slots=0, video_slots=0))
    )
    await speaker.connect(occ, token=meeting.token(meeting.a), session=False)
    await chair.negotiate()
    await speaker.negotiate()
    receiver = meeting.peer(Peer(world, Client("r", audio_slots=1, video_slots=1)))
    await receiver.connect(occ, token=meeting.token(meeting.b), session=False)
    await receiver.negotiate()
    video = receiver.client.slot_mids("video")[0]
    # the loud speaker is the dominant one, yet the only video slot shows the chair
    assert await receiver.event("speaking", lambda e: e["person_id"] == meeting.a.id, 10)
    assert await wait_for(
        lambda: (last_stream(receiver, video) or {}).get("person_id") == meeting.chair.id, 10
    )
    await asyncio.sleep(1.0)
    assert (last_stream(receiver, video) or {}).get("person_id") == meeting.chair.id
    assert await wait_for(lambda: receiver.client.frames("video") > 3, 15)
    # and the audio slot carries the speaker, not the silent chair
    audio = receiver.client.slot_mids("audio")[0]
    assert await wait_for(lambda: (last_stream(receiver, audio) or {}).get("person_id") == meeting.a.id, 5)
