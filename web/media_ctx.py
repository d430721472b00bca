"""The media resource of a node: its rooms, one forwarding unit per live room, open WebSockets."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from aiohttp import web
from aiortc import RTCIceServer

from meetings.db.base import utcnow
from meetings.rooms import service as rooms
from meetings.rooms.participant import CloseCode
from meetings.rooms.room import RoomRegistry
from meetings.rtc.sfu import Sfu, SfuConfig, SfuEvent
from web import keys

log = logging.getLogger("giaoban.media")
SWEEP_SECONDS = 30.0


@dataclass
class Media:
    """Rooms and their SFUs on this node, and the WebSockets to close on shutdown."""

    registry: RoomRegistry
    config: SfuConfig
    sfus: dict[int, Sfu] = field(default_factory=dict)
    listeners: dict[int, set[Callable[[SfuEvent], None]]] = field(default_factory=dict)
    sockets: weakref.WeakSet[web.WebSocketResponse] = field(default_factory=weakref.WeakSet)

    def sfu(self, occurrence_id: int) -> Sfu:
        """The forwarding unit of a room, created on first use."""
        sfu = self.sfus.get(occurrence_id)
        if sfu is None:
            self.listeners[occurrence_id] = set()

            def dispatch(event: SfuEvent, occurrence_id: int = occurrence_id) -> None:
                for listener in list(self.listeners.get(occurrence_id, ())):
                    listener(event)

            sfu = Sfu(self.config, on_event=dispatch)
            self.sfus[occurrence_id] = sfu
        return sfu

    async def release(self, occurrence_id: int) -> None:
        """Close a room's SFU once nobody is connected to it."""
        sfu = self.sfus.get(occurrence_id)
        if sfu is not None and not sfu.participants():
            del self.sfus[occurrence_id]
            self.listeners.pop(occurrence_id, None)
            await sfu.close()


async def _sweep(app: web.Application, media: Media) -> None:
    """End rooms past their grace period (their people get `ended`)."""
    while True:
        await asyncio.sleep(SWEEP_SECONDS)
        try:
            async with app[keys.DB]() as db:
                await rooms.sweep(db, media.registry, utcnow())
                await db.commit()
        except Exception:  # one failed sweep must not stop the next
            log.exception("room sweep failed")


async def media_ctx(app: web.Application) -> AsyncIterator[None]:
    """Create the node's rooms and SFUs; on shutdown close every socket, SFU and room."""
    settings = app[keys.SETTINGS]
    # The SFU gathers host candidates; STUN helps when the media node itself is behind NAT.
    stun = tuple(RTCIceServer(urls=u.strip()) for u in settings.stun_urls.split(",") if u.strip())
    media = Media(
        registry=rooms.create_registry(settings, app[keys.DB]),
        config=SfuConfig(ice_servers=stun),
    )
    app[keys.MEDIA] = media
    sweeper = asyncio.create_task(_sweep(app, media), name="room-sweep")
    yield
    sweeper.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await sweeper
    for sfu in list(media.sfus.values()):
        await sfu.close()
    media.sfus.clear()
    await media.registry.close()


async def close_sockets(app: web.Application) -> None:
    """on_shutdown: tell every client the node is going away (they reconnect elsewhere)."""
    media = app.get(keys.MEDIA)
    if media is None:
        return
    for ws in list(media.sockets):
        await ws.close(code=CloseCode.SHUTDOWN, message=b"server shutting down")
