"""The room drives its media plane: after every action, what the room says and what is forwarded agree."""

from __future__ import annotations

from dataclasses import dataclass, field

from meetings.rooms.media import Kind
from meetings.rooms.room import Placement, Room
from tests.rooms.fakes import FakeParticipant, at, person
from tests.rooms.test_room import make_room


@dataclass
class FakeMedia:
    """A media plane that keeps what it was told, and ignores connections it does not carry (as the SFU)."""

    connected: set[str] = field(default_factory=set)
    forwarding: dict[tuple[str, Kind], bool] = field(default_factory=dict)  # True: forwarded
    pinned: set[str] = field(default_factory=set)
    calls: int = 0

    def set_muted(self, participant: str, kind: Kind, muted: bool) -> None:
        self.calls += 1
        if participant in self.connected:
            self.forwarding[(participant, kind)] = not muted

    def set_pinned(self, participants: set[str]) -> None:
        self.pinned = participants & self.connected

    async def disconnect(self, participant: str) -> None:
        self.connected.discard(participant)
        self.pinned.discard(participant)
        for kind in ("audio", "video"):
            self.forwarding.pop((participant, kind), None)

    def offer(self, room: Room, participant: FakeParticipant) -> None:
        """The connection's media arrives (its SDP offer joined the SFU)."""
        self.connected.add(participant.id)
        self.forwarding[(participant.id, "audio")] = True  # a fresh peer connection forwards all
        self.forwarding[(participant.id, "video")] = True
        room.media_connected(participant)


def agree(room: Room, media: FakeMedia) -> None:
    """Every seated connection with media is forwarded exactly as the room says; nobody else is."""
    seated = {p.id: p for p in room.participants}
    assert media.connected <= set(seated), "media still carries someone the room let go"
    for pid in media.connected:
        state = room.state_of(seated[pid].person_id)
        assert state is not None
        assert media.forwarding[(pid, "audio")] is not state.audio_muted, pid
        assert media.forwarding[(pid, "video")] is not state.video_muted, pid
    chair = room.participant(room.pinned_person) if room.pinned_person is not None else None
    assert media.pinned == ({chair.id} & media.connected if chair is not None else set())


async def test_every_action_leaves_room_and_media_in_agreement() -> None:
    media = FakeMedia()
    room = make_room()
    room.attach_media(media)
    chair, a, b, c = person(1, moderator=True), person(2), person(3), person(4)
    room.pinned_person = chair.person_id
    for p in (chair, a, b):
        assert (await room.join(p, invited=True, now=at(0))).placement is Placement.SEATED
        media.offer(room, p)
        agree(room, media)  # joined muted: nothing forwarded yet
    assert media.pinned == {chair.id}
    # a participant unmutes and mutes themselves
    await room.set_media(a, audio_muted=False, video_muted=False)
    agree(room, media)
    assert media.forwarding[(a.id, "audio")] and media.forwarding[(a.id, "video")]
    await room.set_media(b, audio_muted=False)
    agree(room, media)
    # the chair mutes one, then everyone
    await room.mute(chair, a.person_id)
    agree(room, media)
    assert not media.forwarding[(a.id, "audio")]
    await room.set_media(a, audio_muted=False)
    await room.set_media(chair, audio_muted=False)
    await room.mute_all(chair)
    agree(room, media)
    assert media.forwarding[(chair.id, "audio")]  # not the chair's own microphone
    assert not media.forwarding[(a.id, "audio")] and not media.forwarding[(b.id, "audio")]
    # a hand goes up; the chair gives the floor (unmutes)
    await room.raise_hand(b, at(1))
    agree(room, media)
    await room.give_floor(chair, b.person_id)
    agree(room, media)
    assert media.forwarding[(b.id, "audio")]
    await room.lower_all_hands(chair)
    agree(room, media)
    # lock, and someone uninvited waits in the lobby, then is let in
    await room.set_locked(chair, True)
    assert (await room.join(c, invited=True, now=at(2))).placement is Placement.LOBBY
    agree(room, media)
    await room.admit(chair, c.person_id, at(3))
    media.offer(room, c)
    agree(room, media)
    # a reconnect: the new connection keeps the seat's state, the old one's media is dropped
    b2 = person(3, conn="bis")
    await room.join(b2, invited=True, now=at(4))
    assert b.id not in media.connected
    media.offer(room, b2)
    agree(room, media)
    assert media.forwarding[(b2.id, "audio")]  # still has the floor
    # a chair's reconnect moves the pin to the new connection
    chair2 = person(1, moderator=True, conn="bis")
    await room.join(chair2, invited=True, now=at(5))
    media.offer(room, chair2)
    agree(room, media)
    assert media.pinned == {chair2.id}
    # removal: the media stops with the seat
    await room.remove(chair2, a.person_id)
    assert a.id not in media.connected
    agree(room, media)
    # leaving
    await room.leave(c, at(6))
    assert c.id not in media.connected
    agree(room, media)
    # the end: nobody's media is carried any more
    await room.end(chair2, at(7))
    assert media.connected == set()
    agree(room, media)


async def test_a_mute_before_the_media_arrives_holds_when_it_does() -> None:
    media = FakeMedia()
    room = make_room()
    room.attach_media(media)
    chair, a = person(1, moderator=True), person(2)
    await room.join(chair, invited=True, now=at(0))
    await room.join(a, invited=True, now=at(0))
    await room.set_media(a, audio_muted=False, video_muted=False)
    await room.mute(chair, a.person_id)  # before A's offer reached the media plane
    media.offer(room, a)
    agree(room, media)
    assert not media.forwarding[(a.id, "audio")] and media.forwarding[(a.id, "video")]
