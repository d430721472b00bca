"""Weak links on the room socket (#16): the page's tile sizes in, the SFU's layers and estimates out.

The SFU's events (LayerChanged, LayersWanted, LinkEstimate) are driven by hand here: each must
reach the sockets it concerns (the subscriber, the publisher, the participant and the
moderators) and no other.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import pytest

from meetings.live import protocol as proto
from meetings.live.session import MeetingSession
from meetings.rooms.room import Placement, RoomRegistry
from meetings.rtc.sfu import LayerChanged, LayersWanted, LinkEstimate, Sfu, StreamAssigned
from meetings.wire import ServerMessage
from tests.conftest import World
from tests.rooms.fakes import FakeParticipant, at, person
from tests.rooms.test_room import make_room
from tests.rtc.clients import Client as RtcClient
from tests.signaling.conftest import Meeting
from tests.signaling.peers import Peer

# --- the `tiles` message ---------------------------------------------------------------------


def tiles(value: Any) -> str:
    return json.dumps({"type": "tiles", "tiles": value})


def test_tiles_parse_to_sorted_sizes() -> None:
    assert proto.parse(tiles({"5": [640, 360], "4": [0, 0], "6": [100_000, 100_000]})) == proto.Tiles(
        (("4", 0, 0), ("5", 640, 360), ("6", 100_000, 100_000))
    )
    assert proto.parse(tiles({})) == proto.Tiles(())


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (None, "at most 16"),
        ([[640, 360]], "at most 16"),
        ({str(i): [1, 1] for i in range(17)}, "at most 16"),
        ({"4": [640]}, "[width, height]"),
        ({"4": {"w": 640, "h": 360}}, "[width, height]"),
        ({"4": "640x360"}, "[width, height]"),
        ({"4": [640.5, 360]}, "whole numbers"),
        ({"4": ["640", 360]}, "whole numbers"),
        ({"4": [True, 360]}, "whole numbers"),
        ({"4": [640, None]}, "whole numbers"),
        ({"4": [-1, 360]}, "whole numbers"),
        ({"4": [100_001, 360]}, "whole numbers"),
        ({"4": [640, 10**30]}, "whole numbers"),
        ({"": [640, 360]}, "mids"),
        ({"x" * 17: [640, 360]}, "mids"),
    ],
)
def test_bad_tiles_are_refused_with_a_reason(value: Any, reason: str) -> None:
    with pytest.raises(proto.ProtocolError) as refused:
        proto.parse(tiles(value))
    assert reason in refused.value.reason
    assert refused.value.close is None  # an `error` on the socket, which stays open


# --- the session's side ----------------------------------------------------------------------


@dataclass(eq=False)
class FakeClient(FakeParticipant):
    """A room socket: what the session posts is kept as the room's sends are."""

    ended: tuple[int, str] | None = None

    def post(self, message: ServerMessage) -> None:
        self.messages.append(message.as_dict())

    def end(self, code: int, reason: str) -> None:
        self.ended = self.ended or (code, reason)


@dataclass
class FakeSfu:
    """The media plane as the session uses it; keeps the tile sizes it is given."""

    slots: dict[str, dict[str, tuple[str, str] | None]] = field(default_factory=dict)
    tiles: dict[str, dict[str, tuple[int, int]]] = field(default_factory=dict)
    dominant_speaker: str | None = None

    def participants(self) -> list[str]:
        return list(self.slots)

    async def join(self, participant: str, offer: str, sources: dict[str, Any]) -> str:
        raise NotImplementedError

    async def renegotiate(self, participant: str, offer: str, sources: dict[str, Any]) -> str:
        raise NotImplementedError

    async def add_ice_candidate(
        self, participant: str, candidate: str, sdp_mid: str | None, sdp_mline_index: int | None
    ) -> None:
        raise NotImplementedError

    async def leave(self, participant: str) -> None:
        self.slots.pop(participant, None)

    def assignments(self, participant: str) -> dict[str, tuple[str, str] | None]:
        return self.slots[participant]

    def set_tile_sizes(self, participant: str, sizes: dict[str, tuple[int, int]]) -> None:
        self.tiles[participant] = dict(sizes)


def client(person_id: int, *, moderator: bool = False) -> FakeClient:
    p = person(person_id, moderator=moderator)
    return FakeClient(id=p.id, person_id=p.person_id, unit_id=p.unit_id, name=p.name, role=p.role)


async def nothing(occurrence_id: int) -> None:
    pass


async def live(*clients: FakeClient) -> tuple[MeetingSession, FakeSfu]:
    """A session whose room seats these clients, each with a peer connection of 3+6 slots."""
    room = make_room()
    sfu = FakeSfu()
    session = MeetingSession(
        room=room,
        sfu=sfu,
        registry=RoomRegistry(),
        sessions=cast(Any, None),  # nothing here touches the database
        attendance_changed=nothing,
        finish=cast(Any, None),
    )
    for c in clients:
        assert (await room.join(c, invited=True, now=at(0))).placement is Placement.SEATED
        session.clients[c.id] = c
        sfu.slots[c.id] = {str(mid): None for mid in range(3, 12)}
        c.clear()
    return session, sfu


def of(c: FakeClient, kind: str) -> list[dict[str, Any]]:
    return [m for m in c.messages if m["type"] == kind]


async def test_layer_changes_reach_only_the_subscriber() -> None:
    chair, a, b = client(1, moderator=True), client(2), client(3)
    session, _ = await live(chair, a, b)
    session.on_media(LayerChanged(a.id, "6", 1, 2, 320, 180, False))
    assert of(a, "layer") == [
        {
            "type": "layer",
            "mid": "6",
            "spatial": 1,
            "temporal": 2,
            "width": 320,
            "height": 180,
            "paused": False,
        }
    ]
    assert of(b, "layer") == of(chair, "layer") == []
    session.on_media(LayerChanged(a.id, "6", None, None, None, None, True))
    assert of(a, "layer")[-1]["paused"] is True
    session.on_media(LayerChanged("gone", "6", 0, None, 160, 90, False))  # a connection that left
    assert of(b, "layer") == of(chair, "layer") == []


async def test_layers_wanted_reach_only_the_publisher() -> None:
    chair, a, b = client(1, moderator=True), client(2), client(3)
    session, _ = await live(chair, a, b)
    session.on_media(LayersWanted(b.id, "1", ("q",)))
    assert of(b, "layers_wanted") == [{"type": "layers_wanted", "mid": "1", "rids": ["q"]}]
    assert of(a, "layers_wanted") == of(chair, "layers_wanted") == []


async def test_link_estimates_reach_the_participant_and_the_moderators_only() -> None:
    chair, secretary, a, b = client(1, moderator=True), client(4, moderator=True), client(2), client(3)
    session, _ = await live(chair, secretary, a, b)
    session.on_media(LinkEstimate(a.id, 250_000, 90_000, 6.5, 180))
    expected = {
        "type": "link",
        "participant": a.id,
        "person_id": 2,
        "downlink_bps": 250_000,
        "uplink_bps": 90_000,
        "loss": 6.5,
        "rtt_ms": 180,
        "width": None,
        "height": None,
        "paused": False,
        "audio_only": False,
    }
    assert of(a, "link") == of(chair, "link") == of(secretary, "link") == [expected]
    assert of(b, "link") == []
    # The same again: nothing new to say.
    session.on_media(LinkEstimate(a.id, 250_000, 90_000, 6.5, 180))
    assert len(of(chair, "link")) == 1
    # What a receives is part of what the moderators see: its largest layer, then paused.
    session.on_media(LayerChanged(a.id, "6", 0, None, 160, 90, False))
    session.on_media(LayerChanged(a.id, "7", 2, None, 640, 360, False))
    assert (of(chair, "link")[-1]["width"], of(chair, "link")[-1]["height"]) == (640, 360)
    session.on_media(LayerChanged(a.id, "6", None, None, None, None, True))
    session.on_media(LayerChanged(a.id, "7", None, None, None, None, True))
    assert of(chair, "link")[-1]["paused"] is True
    assert of(chair, "link")[-1]["width"] is None
    assert of(b, "link") == []


async def test_audio_only_shows_in_the_link() -> None:
    chair, a = client(1, moderator=True), client(2)
    session, _ = await live(chair, a)
    await session.handle(a, proto.AudioOnly(True))
    assert of(chair, "link")[-1]["audio_only"] is True
    await session.handle(a, proto.AudioOnly(False))
    assert of(chair, "link")[-1]["audio_only"] is False


async def test_an_emptied_slot_no_longer_counts_as_received() -> None:
    chair, a = client(1, moderator=True), client(2)
    session, _ = await live(chair, a)
    session.on_media(LayerChanged(a.id, "6", 2, None, 640, 360, False))
    assert of(chair, "link")[-1]["width"] == 640
    session.on_media(StreamAssigned(a.id, "6", "video", None, None, None))
    assert of(chair, "link")[-1]["width"] is None


async def test_tile_sizes_reach_the_sfu() -> None:
    a = client(2)
    session, sfu = await live(a)
    await session.handle(a, proto.Tiles((("6", 640, 360), ("7", 0, 0))))
    assert sfu.tiles[a.id] == {"6": (640, 360), "7": (0, 0)}


async def test_more_tiles_than_slots_are_refused() -> None:
    a = client(2)
    session, sfu = await live(a)
    sfu.slots[a.id] = {"4": None, "5": None}
    with pytest.raises(proto.ProtocolError) as refused:
        await session.handle(a, proto.Tiles((("4", 1, 1), ("5", 1, 1), ("6", 1, 1))))
    assert "has 2" in refused.value.reason
    assert a.id not in sfu.tiles


async def test_tiles_before_the_first_offer_are_dropped() -> None:
    a = client(2)
    session, sfu = await live(a)
    del sfu.slots[a.id]
    await session.handle(a, proto.Tiles((("6", 640, 360),)))
    assert sfu.tiles == {}


# --- on the real socket ----------------------------------------------------------------------


@pytest.mark.slow
async def test_tiles_on_the_socket_reach_the_sfu_and_bad_ones_get_an_error(
    world: World, meeting: Meeting, monkeypatch: pytest.MonkeyPatch
) -> None:
    given: list[dict[str, tuple[int, int]]] = []
    set_tile_sizes = Sfu.set_tile_sizes

    def recording(self: Sfu, participant: str, sizes: Mapping[str, tuple[int, int]]) -> None:
        given.append(dict(sizes))
        set_tile_sizes(self, participant, sizes)

    monkeypatch.setattr(Sfu, "set_tile_sizes", recording)
    peer = meeting.peer(Peer(world, RtcClient("a", video=True, audio_slots=1, video_slots=2)))
    assert (await peer.connect(meeting.occurrence, token=meeting.token_a, session=False))[
        "placement"
    ] == "seated"
    await peer.send(type="tiles", tiles={"9": [320, 180]})  # before any offer: dropped, no error
    await peer.negotiate()
    video = peer.client.slot_mids("video")
    await peer.send(type="tiles", tiles={video[0]: [640, 360], video[1]: [0, 0], "99": [320, 180]})
    await peer.send(type="ping")
    assert await peer.event("pong")
    assert given == [{video[0]: (640, 360), video[1]: (0, 0), "99": (320, 180)}]  # the SFU ignores "99"
    # Refused with a reason; the socket stays open and the sizes stay as they were.
    for bad in (
        {video[0]: [100_001, 1]},
        {video[0]: ["640", 360]},
        [[640, 360]],
        {str(i): [1, 1] for i in range(17)},
    ):
        await peer.send(type="tiles", tiles=bad)
    await peer.send(type="tiles", tiles={str(i): [1, 1] for i in range(4)})  # more than its 3 slots
    assert await peer.event("error", lambda e: "has 3" in e["message"]), peer.of_type("error")
    assert [e["code"] for e in peer.of_type("error")] == ["bad_message"] * 5
    await peer.send(type="tiles", tiles={video[0]: [100_000, 100_000]})  # the limit: the SFU clamps
    await peer.send(type="ping")
    assert await peer.event("pong", lambda e: len(peer.of_type("pong")) >= 2)
    assert given[1:] == [{video[0]: (100_000, 100_000)}]
    assert peer.ws is not None and not peer.ws.closed
