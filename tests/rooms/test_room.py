"""Room logic with fake participants: admission, lobby, lock, capacity, hands, moderation, chat."""

from __future__ import annotations

from datetime import timedelta

import pytest

from meetings.errors import InvalidInput
from meetings.rooms.errors import NoSuchParticipant, NotInRoom, NotModerator, RoomClosed, RoomFull
from meetings.rooms.participant import CloseCode, ConnectionQuality
from meetings.rooms.room import ChatLine, Placement, Room, RoomRegistry, RoomRules
from tests.rooms.fakes import END, START, FakeParticipant, at, person


def make_room(**rules: int) -> Room:
    return Room(7, start=START, end=END, title="Giao ban sáng", rules=RoomRules(**rules))


async def seated_room(*people: FakeParticipant, **rules: int) -> Room:
    room = make_room(**rules)
    for p in people:
        result = await room.join(p, invited=True, now=at(0))
        assert result.placement is Placement.SEATED
    return room


# --- admission window ---------------------------------------------------------------------


async def test_the_room_opens_15_minutes_before_the_start() -> None:
    room = make_room()
    with pytest.raises(RoomClosed) as refused:
        await room.join(person(1), invited=True, now=at(-15) - timedelta(seconds=1))
    assert refused.value.params == {"time": "07:15", "date": "04/01/2027"}
    assert "07:15" in str(refused.value)
    assert (await room.join(person(1), invited=True, now=at(-15))).placement is Placement.SEATED


async def test_the_room_closes_after_the_grace_period() -> None:
    room = make_room()
    late = END + timedelta(minutes=30)
    assert room.is_open(late - timedelta(seconds=1))
    await room.join(person(1), invited=True, now=late - timedelta(seconds=1))
    with pytest.raises(RoomClosed, match="ended"):
        await room.join(person(2), invited=True, now=late)


async def test_the_window_follows_the_settings() -> None:
    room = make_room(open_minutes=60, grace_minutes=0)
    await room.join(person(1), invited=True, now=at(-60))
    with pytest.raises(RoomClosed):
        await room.join(person(2), invited=True, now=END)


# --- lobby, lock, capacity ------------------------------------------------------------------


async def test_someone_not_invited_waits_until_a_moderator_admits_them() -> None:
    chair = person(1, moderator=True)
    member = person(2)
    room = await seated_room(chair, member)
    guest = person(3)
    result = await room.join(guest, invited=False, now=at(1))
    assert result.placement is Placement.LOBBY
    assert guest.messages == [{"type": "waiting", "reason": "not_invited"}]
    assert [w.person_id for w in room.waiting] == [3]
    assert [e["person_id"] for e in chair.last("lobby")["lobby"]] == [3]
    assert "lobby" not in member.types()  # only moderators see the lobby

    with pytest.raises(NotModerator):
        await room.admit(member, 3, at(2))
    await room.admit(chair, 3, at(2))
    assert guest.last("room")["you"] == guest.id
    assert member.last("joined")["participant"]["person_id"] == 3
    assert chair.last("lobby")["lobby"] == []
    assert room.participant(3) is guest and room.waiting == []


async def test_a_moderator_can_deny_someone_in_the_lobby() -> None:
    chair = person(1, moderator=True)
    room = await seated_room(chair)
    guest = person(3)
    await room.join(guest, invited=False, now=at(1))
    await room.deny(chair, 3)
    assert guest.closed is not None and guest.closed[0] == CloseCode.DENIED
    assert room.waiting == []
    with pytest.raises(NoSuchParticipant):
        await room.deny(chair, 3)


async def test_a_locked_room_sends_newcomers_to_the_lobby_but_not_moderators() -> None:
    chair = person(1, moderator=True)
    early = person(2)
    room = await seated_room(chair, early)
    await room.set_locked(chair, True)
    assert early.last("locked") == {"type": "locked", "locked": True, "by": 1}

    newcomer = person(3)
    assert (await room.join(newcomer, invited=True, now=at(5))).placement is Placement.LOBBY
    assert newcomer.last("waiting")["reason"] == "locked"
    secretary = person(4, moderator=True)
    assert (await room.join(secretary, invited=True, now=at(5))).placement is Placement.SEATED
    # Someone already admitted who drops out gets back in.
    await room.leave(early, at(6))
    early_again = person(2, conn="b")
    assert (await room.join(early_again, invited=True, now=at(7))).placement is Placement.SEATED

    await room.set_locked(chair, False)
    assert (await room.join(person(5), invited=True, now=at(8))).placement is Placement.SEATED
    with pytest.raises(NotModerator):
        await room.set_locked(early_again, True)
    with pytest.raises(NotInRoom):  # the old connection no longer counts
        await room.set_locked(early, True)


async def test_a_full_room_refuses_clearly_except_moderators() -> None:
    room = await seated_room(person(1), person(2), capacity=2)
    with pytest.raises(RoomFull) as refused:
        await room.join(person(3), invited=True, now=at(1))
    assert refused.value.params == {"capacity": 2}
    assert (await room.join(person(9, moderator=True), invited=True, now=at(1))).placement is Placement.SEATED
    # The lobby is bounded too, and admitting into a full room is refused.
    await room.join(person(4), invited=False, now=at(1))
    await room.join(person(5), invited=False, now=at(1))
    with pytest.raises(RoomFull):
        await room.join(person(6), invited=False, now=at(1))
    with pytest.raises(RoomFull):
        await room.admit(room.participants[-1], 4, at(2))


# --- reconnects -----------------------------------------------------------------------------


async def test_joining_again_replaces_the_old_connection_and_keeps_mute_and_hand() -> None:
    chair = person(1, moderator=True)
    first = person(2)
    room = await seated_room(chair, first, person(3))
    await room.set_media(first, audio_muted=False, video_muted=False)
    await room.raise_hand(room.participants[2], at(1))
    await room.raise_hand(first, at(2))
    chair.clear()

    second = person(2, conn="b")
    result = await room.join(second, invited=True, now=at(3))
    assert result.placement is Placement.SEATED and result.reconnect and result.replaced is first
    assert first.closed is not None and first.closed[0] == CloseCode.REPLACED
    assert room.participant(2) is second
    state = room.state_of(2)
    assert state is not None and not state.audio_muted and not state.video_muted and state.hand_raised
    assert room.queue == [3, 2]  # the place in the queue is kept
    snapshot = second.last("room")
    assert snapshot["you"] == "c2b" and snapshot["queue"] == [3, 2]
    assert chair.last("joined") == {
        "type": "joined",
        "participant": {
            "id": "c2b",
            "person_id": 2,
            "unit_id": 1,
            "name": "Người 2",
            "role": "participant",
            "audio_muted": False,
            "video_muted": False,
            "hand_raised": True,
            "screen_sharing": False,
            "joined_at": at(0).isoformat(),
        },
        "replaces": "c2",
    }
    # The old connection's late goodbye changes nothing.
    assert await room.leave(first, at(4)) is None
    assert room.participant(2) is second


async def test_coming_back_soon_after_dropping_keeps_state_later_does_not() -> None:
    member = person(2)
    room = await seated_room(person(1, moderator=True), member, reconnect_seconds=120)
    await room.set_media(member, audio_muted=False)
    await room.raise_hand(member, at(1))
    assert await room.leave(member, at(2)) is Placement.SEATED
    assert room.queue == []

    back = person(2, conn="b")
    result = await room.join(back, invited=True, now=at(2) + timedelta(seconds=120))
    assert result.reconnect and result.replaced is None
    assert room.queue == [2]
    state = room.state_of(2)
    assert state is not None and not state.audio_muted

    await room.leave(back, at(5))
    again = person(2, conn="c")
    result = await room.join(again, invited=True, now=at(8))
    assert not result.reconnect
    state = room.state_of(2)
    assert state is not None and state.audio_muted and not state.hand_raised and state.joined_at == at(8)


async def test_joining_again_from_the_lobby_replaces_the_waiting_connection() -> None:
    room = await seated_room(person(1, moderator=True))
    first = person(3)
    await room.join(first, invited=False, now=at(1))
    second = person(3, conn="b")
    result = await room.join(second, invited=False, now=at(2))
    assert result.placement is Placement.LOBBY and result.replaced is first
    assert first.closed is not None and first.closed[0] == CloseCode.REPLACED
    assert room.waiting == [second]


# --- hands and the floor ------------------------------------------------------------------


async def test_the_speakers_queue_keeps_the_order_hands_went_up() -> None:
    chair, a, b, c = person(1, moderator=True), person(2), person(3), person(4)
    room = await seated_room(chair, a, b, c)
    await room.raise_hand(b, at(1))
    await room.raise_hand(c, at(1))  # same instant: the order of arrival decides
    await room.raise_hand(a, at(2))
    await room.raise_hand(b, at(3))  # raising again changes nothing
    assert room.queue == [3, 4, 2]
    await room.lower_hand(c)
    assert room.queue == [3, 2]
    assert a.last("queue") == {"type": "queue", "queue": [3, 2]}
    await room.lower_all_hands(chair)
    assert room.queue == []
    with pytest.raises(NotModerator):
        await room.lower_all_hands(a)


async def test_giving_the_floor_unmutes_and_takes_off_the_queue() -> None:
    chair, a, b = person(1, moderator=True), person(2), person(3)
    room = await seated_room(chair, a, b)
    await room.raise_hand(a, at(1))
    await room.raise_hand(b, at(1))
    await room.give_floor(chair, 2)
    state = room.state_of(2)
    assert state is not None and not state.audio_muted and not state.hand_raised
    assert room.queue == [3]
    assert {"type": "floor", "person_id": 2, "by": 1} in b.messages
    assert b.last("state")["participant"]["audio_muted"] is False
    with pytest.raises(NotModerator):
        await room.give_floor(a, 3)
    with pytest.raises(NoSuchParticipant):
        await room.give_floor(chair, 99)


# --- muting ---------------------------------------------------------------------------------


async def test_mute_one_and_mute_all() -> None:
    chair, a, b, c = person(1, moderator=True), person(2), person(3), person(4)
    room = await seated_room(chair, a, b, c)
    for p in (chair, a, b):
        await room.set_media(p, audio_muted=False)
    await room.mute(chair, 2)
    assert c.last("state") == {"type": "state", "participant": c.last("state")["participant"], "by": 1}
    assert c.last("state")["participant"]["person_id"] == 2
    muted = await room.mute_all(chair)
    assert muted == [3]  # a is already muted, c never spoke, the chair keeps the floor
    states = {pid: room.state_of(pid) for pid in (1, 2, 3, 4)}
    assert [s.audio_muted for s in states.values() if s] == [False, True, True, True]
    with pytest.raises(NotModerator):
        await room.mute(a, 1)
    with pytest.raises(NotModerator):
        await room.mute_all(a)


async def test_own_media_state_is_announced_only_when_it_changes() -> None:
    a, b = person(1), person(2)
    room = await seated_room(a, b)
    b.clear()
    await room.set_media(a, audio_muted=False, screen_sharing=True)
    await room.set_media(a, audio_muted=False)
    assert b.types() == ["state"]
    assert b.last("state")["participant"]["screen_sharing"] is True
    room.report_quality(a, ConnectionQuality(rtt_ms=80, loss_pct=1.5, bitrate_kbps=420))
    assert b.types() == ["state"]
    outsider = person(5)
    with pytest.raises(NotInRoom):
        await room.set_media(outsider, audio_muted=False)


# --- remove and end -------------------------------------------------------------------------


async def test_remove_closes_that_participant_and_they_wait_if_they_return() -> None:
    chair, a, b = person(1, moderator=True), person(2), person(3)
    room = await seated_room(chair, a, b)
    await room.raise_hand(a, at(1))
    removed, _state = await room.remove(chair, 2)
    assert removed is a
    assert a.closed is not None and a.closed[0] == CloseCode.REMOVED
    assert b.closed is None
    assert b.last("left") == {
        "type": "left",
        "participant_id": "c2",
        "person_id": 2,
        "reason": "removed",
        "by": 1,
    }
    assert room.queue == [] and room.participant(2) is None
    back = person(2, conn="b")
    assert (await room.join(back, invited=True, now=at(2))).placement is Placement.LOBBY
    assert back.last("waiting")["reason"] == "removed"
    with pytest.raises(NotModerator):
        await room.remove(b, 1)
    with pytest.raises(NoSuchParticipant):
        await room.remove(chair, 1)


async def test_end_closes_everyone_and_nobody_gets_back_in() -> None:
    chair, a, b = person(1, moderator=True), person(2), person(3)
    room = await seated_room(chair, a, b)
    waiting = person(4)
    await room.join(waiting, invited=False, now=at(1))
    with pytest.raises(NotModerator):
        await room.end(a, at(2))
    seated = await room.end(chair, at(30))
    assert [p for p, _ in seated] == [chair, a, b]
    for p in (chair, a, b, waiting):
        assert p.closed is not None and p.closed[0] == CloseCode.ENDED
        assert p.last("ended") == {"type": "ended", "by": 1}
    assert room.is_empty and room.ended_at == at(30)
    with pytest.raises(RoomClosed, match="ended"):
        await room.join(person(2, conn="b"), invited=True, now=at(31))
    assert await room.end(chair, at(32)) == []  # twice is harmless


async def test_one_broken_connection_does_not_disturb_the_others() -> None:
    a, b, c = person(1), person(2), person(3)
    room = await seated_room(a, b, c)
    b.broken = True
    c.clear()
    await room.set_media(a, audio_muted=False)
    assert c.types() == ["state"]


# --- chat -----------------------------------------------------------------------------------


async def test_chat_is_checked_stored_then_shown() -> None:
    stored: list[ChatLine] = []

    async def store(line: ChatLine) -> None:
        stored.append(line)

    room = Room(7, start=START, end=END, rules=RoomRules(chat_max_length=20), chat_store=store)
    a, b = person(1), person(2)
    for p in (a, b):
        await room.join(p, invited=True, now=at(0))
    line = await room.chat(a, "  Xin chào\r\nmọi người\x07  ", at(1))
    assert line == ChatLine(7, 1, "Người 1", "Xin chào\nmọi người", at(1))
    assert stored == [line]
    assert b.last("chat") == {
        "type": "chat",
        "participant_id": "c1",
        "person_id": 1,
        "name": "Người 1",
        "text": "Xin chào\nmọi người",
        "at": at(1).isoformat(),
    }
    with pytest.raises(InvalidInput) as empty:
        await room.chat(a, " \n\t ", at(2))
    assert empty.value.errors[0].field == "text"
    with pytest.raises(InvalidInput) as long:
        await room.chat(a, "x" * 21, at(2))
    assert long.value.errors[0].params == {"n": 20}
    waiting = person(3)
    await room.join(waiting, invited=False, now=at(2))
    with pytest.raises(NotInRoom):
        await room.chat(waiting, "cho tôi vào", at(2))
    assert len(stored) == 1


async def test_a_chat_that_cannot_be_stored_is_not_shown() -> None:
    async def failing(line: ChatLine) -> None:
        raise RuntimeError("database down")

    room = Room(7, start=START, end=END, chat_store=failing)
    a, b = person(1), person(2)
    for p in (a, b):
        await room.join(p, invited=True, now=at(0))
    with pytest.raises(RuntimeError):
        await room.chat(a, "hello", at(1))
    assert "chat" not in b.types()


# --- registry -------------------------------------------------------------------------------


async def test_the_registry_keeps_one_room_per_occurrence_and_forgets_finished_ones() -> None:
    registry = RoomRegistry(rules=RoomRules(grace_minutes=10))
    room = registry.open(7, start=START, end=END, title="Sáng")
    assert registry.open(7, start=START, end=END, title="Sáng") is room
    assert registry.get(7) is room and len(registry) == 1
    a = person(1)
    await room.join(a, invited=True, now=at(0))
    assert not registry.release(room, at(1))  # someone is in it
    ended = await registry.sweep(END + timedelta(minutes=10))
    assert [(r, [p for p, _ in seated]) for r, seated in ended] == [(room, [a])]
    assert a.closed is not None and a.closed[0] == CloseCode.ENDED
    assert registry.get(7) is None and len(registry) == 0

    # A room tried too early is not kept; a moved meeting moves its window.
    early = registry.open(8, start=START, end=END)
    assert registry.release(early, at(-60)) and registry.get(8) is None
    moved = registry.open(9, start=START, end=END)
    registry.open(9, start=START + timedelta(hours=1), end=END + timedelta(hours=1))
    assert moved.opens_at == START + timedelta(minutes=45)


async def test_closing_the_registry_closes_every_connection() -> None:
    registry = RoomRegistry()
    a, b = person(1), person(2)
    await registry.open(1, start=START, end=END).join(a, invited=True, now=at(0))
    await registry.open(2, start=START, end=END).join(b, invited=False, now=at(0))
    await registry.close()
    await registry.close()
    assert a.closed is not None and a.closed[0] == CloseCode.SHUTDOWN
    assert b.closed is not None and b.closed[0] == CloseCode.SHUTDOWN
    assert len(registry) == 0
