"""The media resource of a node: its rooms, one forwarding unit per live room, open WebSockets."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from ipaddress import ip_address
from typing import Any, TypeVar

from aiohttp import web

from meetings.db.base import utcnow
from meetings.rooms import service as rooms
from meetings.rooms.participant import CloseCode
from meetings.rooms.room import RoomRegistry
from meetings.rtc.sfu import Sfu, SfuConfig, SfuEvent
from meetings.settings import media_addresses
from web import keys

log = logging.getLogger("giaoban.media")
LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")
SWEEP_SECONDS = 30.0
T = TypeVar("T")


@dataclass
class Media:
    """Rooms and their SFUs on this node, and the WebSockets to close on shutdown."""

    registry: RoomRegistry
    config: SfuConfig
    sfus: dict[int, Sfu] = field(default_factory=dict)
    listeners: dict[int, set[Callable[[SfuEvent], None]]] = field(default_factory=dict)
    sockets: weakref.WeakSet[web.WebSocketResponse] = field(default_factory=weakref.WeakSet)
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

    def acquire(self, occurrence_id: int, listener: Callable[[SfuEvent], None]) -> Sfu:
        """The forwarding unit of a room (created on first use), held for one connection.

        Every connection of the room holds it, seated or waiting, offered yet or not, so the
        last publisher leaving never closes the SFU under someone about to send an offer.
        """
        sfu = self.sfus.get(occurrence_id)
        if sfu is None:
            self.listeners[occurrence_id] = set()

            def dispatch(event: SfuEvent, occurrence_id: int = occurrence_id) -> None:
                for listener in list(self.listeners.get(occurrence_id, ())):
                    listener(event)

            sfu = Sfu(self.config, on_event=dispatch)
            self.sfus[occurrence_id] = sfu
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
    stun = tuple(u.strip() for u in settings.stun_urls.split(",") if u.strip())
    addresses = media_addresses(settings)
    only_loopback = addresses is not None and all(ip_address(a).is_loopback for a in addresses)
    if only_loopback and settings.host not in LOOPBACK_HOSTS:  # pages served further than media
        log.warning(
            "media_addresses is %s: only browsers on this machine can send media; "
            "set GIAOBAN_MEDIA_ADDRESSES (docs/deployment.md)",
            settings.media_addresses,
        )
    media = Media(
        registry=rooms.create_registry(settings, app[keys.DB]),
        config=SfuConfig(
            ice_servers=stun,
            video_last_n=settings.video_last_n,
            media_addresses=addresses,
            announced_address=settings.media_announced_address,
        ),
    )
    app[keys.MEDIA] = media
    sweeper = asyncio.create_task(_sweep(app, media), name="room-sweep")
    yield
    sweeper.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await sweeper
    await asyncio.gather(*media.pending, return_exceptions=True)
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
