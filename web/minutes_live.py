"""The live feed of minutes on this node: who is watching which minutes, and the push to them.

Changes are committed to the database first, then pushed to every open WebSocket of those
minutes on this node. Several web nodes would relay through the database (PostgreSQL
LISTEN/NOTIFY); docs/minutes.md says so. One cleanup context owns the hub's sockets.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from meetings.live.minutes import Header, MinutesHub
from meetings.minutes import attendance as minutes_attendance
from meetings.minutes import service as minutes_service
from meetings.wire import CloseCode
from web import keys
from web.socket_writer import SocketWriter

log = logging.getLogger("giaoban.minutes")
SEND_QUEUE = 500  # messages; a viewer this far behind is closed and reloads


class Viewer:
    """One WebSocket watching one minutes, with its own send queue (a slow viewer holds nobody up)."""

    def __init__(
        self,
        ws: web.WebSocketResponse,
        minutes_id: int,
        person_id: int,
        language: str,
        transport: asyncio.WriteTransport | None = None,
    ) -> None:
        self.minutes_id = minutes_id
        self.person_id = person_id
        self.out = SocketWriter(
            ws, limit=SEND_QUEUE, language=language, name=f"minutes-ws-{minutes_id}", transport=transport
        )

    def post(self, text: str) -> None:
        """Queue a message; a viewer whose queue is full is closed and reloads."""
        self.out.post(text)

    def close(self) -> None:
        """Close the socket after what is queued (going away: the page reconnects or reloads)."""
        self.out.end(CloseCode.GOING_AWAY, "")


async def push_attendance(app: web.Application, occurrence_id: int) -> None:
    """The room's attendance changed (a seat, a leave, the end): the viewers of the meeting's
    minutes on this node get the header with the attendance as the minutes now show it."""
    hub = app.get(keys.MINUTES_HUB)
    if hub is None or not hub.viewers:  # nobody watches any minutes: no query
        return
    try:
        async with app[keys.DB]() as db:
            minutes = await minutes_service.minutes_of(db, occurrence_id)
            if minutes is None or not hub.count(minutes.id) or minutes.status not in minutes_service.EDITABLE:
                return
            rows = await minutes_attendance.header_rows(db, minutes)
    except Exception:  # the room goes on whatever happens to the minutes' viewers
        log.exception("attendance not pushed to the minutes", extra={"occurrence": occurrence_id})
        return
    header = {k: v for k, v in minutes.header.items() if k != minutes_attendance.ROOM_KEY}
    header["attendance"] = rows
    hub.push(minutes.id, Header(header, minutes.header_version))


async def minutes_ctx(app: web.Application) -> AsyncIterator[None]:
    """The hub for the app's lifetime."""
    app[keys.MINUTES_HUB] = MinutesHub()
    yield


async def close_minutes_sockets(app: web.Application) -> None:
    """on_shutdown: close every minutes viewer."""
    hub = app.get(keys.MINUTES_HUB)
    if hub is not None:
        hub.close_all()
