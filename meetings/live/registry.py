"""The open meetings of this node: each one's room (meetings.rooms) and forwarding unit (rtc)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

from meetings.live.media import SfuMedia
from meetings.rooms.room import Room, RoomRegistry
from meetings.rtc.sfu import Sfu, SfuConfig, SfuEvent

T = TypeVar("T")


@dataclass
class LiveMeetings:
    """Rooms and their SFUs on this node, and the work that must finish before it stops."""

    registry: RoomRegistry
    config: SfuConfig
    sfus: dict[int, Sfu] = field(default_factory=dict)
    listeners: dict[int, set[Callable[[SfuEvent], None]]] = field(default_factory=dict)
    pending: set[asyncio.Task[Any]] = field(default_factory=set)

    async def finish(self, work: Coroutine[Any, Any, T]) -> T:
        """Run `work` to its end even if the caller is cancelled (its socket closed, a shutdown).

        For changes the room has already announced: ending a meeting closes the moderator's own
        socket, and what everyone was told must still be committed.
        """
        task = asyncio.ensure_future(work)
        self.pending.add(task)
        task.add_done_callback(self.pending.discard)
        return await asyncio.shield(task)

    def acquire(self, room: Room, listener: Callable[[SfuEvent], None]) -> Sfu:
        """The forwarding unit of a room (created on first use), held for one connection; the
        room drives it from then on (mute, floor, removal, the end: meetings.rooms.media).

        Every connection of the room holds it, seated or waiting, offered yet or not, so the
        last publisher leaving never closes the SFU under someone about to send an offer.
        """
        occurrence_id = room.occurrence_id
        sfu = self.sfus.get(occurrence_id)
        if sfu is None:
            self.listeners[occurrence_id] = set()

            def dispatch(event: SfuEvent, occurrence_id: int = occurrence_id) -> None:
                for listener in list(self.listeners.get(occurrence_id, ())):
                    listener(event)

            sfu = Sfu(self.config, on_event=dispatch)
            self.sfus[occurrence_id] = sfu
            room.attach_media(SfuMedia(sfu))
        self.listeners[occurrence_id].add(listener)
        return sfu

    async def release(self, occurrence_id: int, listener: Callable[[SfuEvent], None]) -> None:
        """Let go of a room's SFU; the last connection to let go closes it."""
        holders = self.listeners.get(occurrence_id)
        if holders is None:
            return
        holders.discard(listener)
        sfu = self.sfus.get(occurrence_id)
        if not holders and sfu is not None:
            del self.sfus[occurrence_id]
            del self.listeners[occurrence_id]
            await sfu.close()

    async def close(self) -> None:
        """Finish pending work, close every SFU and every room's connections (the node stops)."""
        await asyncio.gather(*self.pending, return_exceptions=True)
        for sfu in list(self.sfus.values()):
            await sfu.close()
        self.sfus.clear()
        await self.registry.close()
