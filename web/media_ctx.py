"""The live meetings of a node for the app's lifetime (meetings.live), the room sweep, and the
room sockets to close on shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import AsyncIterator
from datetime import timedelta
from functools import partial
from ipaddress import ip_address
from typing import TypeVar

from aiohttp import web

from meetings.db.base import utcnow
from meetings.live.monitoring import ConnectionTracker
from meetings.live.registry import LiveMeetings
from meetings.readiness.monitor import MonitorRules
from meetings.rooms import service as rooms
from meetings.rtc.sfu import SfuConfig
from meetings.settings import media_addresses
from meetings.wire import CloseCode
from web import keys
from web.board_live import board_changed
from web.minutes_live import push_attendance

log = logging.getLogger("giaoban.media")
LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")
SWEEP_SECONDS = 30.0
T = TypeVar("T")


async def _sweep(app: web.Application, media: LiveMeetings) -> None:
    """End rooms past their grace period (their people get `ended`)."""
    while True:
        await asyncio.sleep(SWEEP_SECONDS)
        try:
            async with app[keys.DB]() as db:
                await rooms.sweep(db, media.registry, utcnow())
                await db.commit()
        except Exception:  # one failed sweep must not stop the next
            log.exception("room sweep failed")


async def attendance_changed(app: web.Application, occurrence_id: int) -> None:
    """A seat, a leave or the end: the minutes' live viewers and the readiness board are told."""
    await push_attendance(app, occurrence_id)
    board_changed(app, occurrence_id)  # reloaded by a task of its own: the room does not wait


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
    media = LiveMeetings(
        registry=rooms.create_registry(settings, app[keys.DB]),
        settings=settings,
        sessions=app[keys.DB],
        # A seat, a leave or the end changes the attendance the minutes' live viewers and the
        # readiness board see.
        attendance_changed=partial(attendance_changed, app),
        config=SfuConfig(
            ice_servers=stun,
            video_last_n=settings.video_last_n,
            media_addresses=addresses,
            announced_address=settings.media_announced_address,
        ),
    )
    # The connection tracker samples the rooms' links, hears of every seat and leave, and gives
    # /metrics the per-room series (docs/readiness/monitor.md).
    tracker = ConnectionTracker(
        media,
        app[keys.DB],
        MonitorRules.from_settings(settings),
        save_seconds=settings.monitor_save_seconds,
        grace=timedelta(minutes=settings.room_grace_minutes),
    )
    viewers_and_board = media.attendance_changed

    async def seated_or_left(occurrence_id: int) -> None:
        await viewers_and_board(occurrence_id)
        await tracker.attendance_changed(occurrence_id)

    media.attendance_changed = seated_or_left
    app[keys.METRICS].rooms.source = tracker.figures
    app[keys.MEDIA] = media
    app[keys.MONITOR] = tracker
    app[keys.ROOM_SOCKETS] = weakref.WeakSet()
    sweeper = asyncio.create_task(_sweep(app, media), name="room-sweep")
    sampler = asyncio.create_task(tracker.run(), name="connection-monitor")
    yield
    for task in (sweeper, sampler):
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    await tracker.stop()
    await media.close()


async def close_sockets(app: web.Application) -> None:
    """on_shutdown: tell every client the node is going away (they reconnect elsewhere)."""
    tracker = app.get(keys.MONITOR)
    if tracker is not None:  # first: the connections closing now are no drop-outs
        await tracker.stop()
    for ws in list(app.get(keys.ROOM_SOCKETS, ())):
        await ws.close(code=CloseCode.SHUTDOWN, message=b"server shutting down")
