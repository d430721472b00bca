"""The live readiness boards of a node: who watches which board, and the reload that pushes it.

A board is reloaded and pushed (only if it changed) when the room of its meeting on this node
seats or lets go of someone (`web/media_ctx.py` wires the room's attendance hook here), after
every action taken on the board, and every `readiness_board_refresh_seconds` while someone
watches it: connection checks and the rooms of other nodes reach it that way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from meetings.db.base import utcnow
from meetings.readiness.board import (
    BoardHub,
    BoardRules,
    BoardState,
    board_json,
    build_board,
    connected_in_room,
)
from meetings.schedule.models import Occurrence, Series
from meetings.wire import CloseCode, encode
from web import keys
from web.socket_writer import SocketWriter

log = logging.getLogger("giaoban.readiness")
SEND_QUEUE = 100  # boards; a watcher this far behind is closed and reloads


class Watcher:
    """One WebSocket watching one meeting's board, with its own send queue."""

    def __init__(
        self,
        ws: web.WebSocketResponse,
        occurrence_id: int,
        language: str,
        transport: asyncio.WriteTransport | None = None,
    ) -> None:
        self.occurrence_id = occurrence_id
        self.out = SocketWriter(
            ws, limit=SEND_QUEUE, language=language, name=f"board-ws-{occurrence_id}", transport=transport
        )

    def post(self, text: str) -> None:
        """Queue a message; a watcher whose queue is full is closed and reloads."""
        self.out.post(text)

    def close(self) -> None:
        """Close the socket after what is queued (going away: the page reconnects)."""
        self.out.end(CloseCode.GOING_AWAY, "")


def live_connected(app: web.Application, occurrence_id: int) -> dict[int, list[str]] | None:
    """Who is in the meeting now by unit, from this node's room; None when this node has no room
    for it (the board then reads the attendance records every node writes)."""
    media = app.get(keys.MEDIA)
    room = media.registry.get(occurrence_id) if media is not None else None
    return connected_in_room(room.participants) if room is not None else None


async def encoded_board(app: web.Application, occurrence_id: int) -> str | None:
    """The board of a meeting as the socket sends it, or None if the meeting is gone."""
    rules = BoardRules.from_settings(app[keys.SETTINGS])
    async with app[keys.DB]() as db:
        occurrence = await db.get(Occurrence, occurrence_id)
        series = await db.get(Series, occurrence.series_id) if occurrence is not None else None
        if occurrence is None or series is None:
            return None
        board = await build_board(
            db, occurrence, series, rules=rules, now=utcnow(), connected=live_connected(app, occurrence_id)
        )
    return encode(BoardState(board_json(board)))


async def refresh_board(app: web.Application, occurrence_id: int, newcomer: Watcher | None = None) -> None:
    """Reload a meeting's board and push it to its watchers on this node if it changed (and to a
    newcomer in any case); never raises (the room and the actions go on whatever happens to the
    board). One reload at a time per meeting: a watcher never gets an older board after a newer."""
    hub = app.get(keys.BOARD_HUB)
    if hub is None or occurrence_id not in hub.watchers:  # nobody watches: no query
        return
    async with hub.lock(occurrence_id):
        await _reload(app, hub, occurrence_id, newcomer)


async def _reload(app: web.Application, hub: BoardHub, occurrence_id: int, newcomer: Watcher | None) -> None:
    try:
        text = await encoded_board(app, occurrence_id)
    except Exception:
        log.exception("readiness board not reloaded", extra={"occurrence": occurrence_id})
        return
    if text is not None:
        hub.push(occurrence_id, text, newcomer)


def board_changed(app: web.Application, occurrence_id: int) -> None:
    """A meeting's board changed (someone sat down in its room or left): reload it soon, without
    making the caller wait; changes that come before that reload starts make no other reload."""
    hub = app.get(keys.BOARD_HUB)
    if hub is None or not hub.ask(occurrence_id):
        return

    async def reload() -> None:
        async with hub.lock(occurrence_id):
            hub.queued.discard(occurrence_id)  # from here on a change needs another reload
            if occurrence_id in hub.watchers:
                await _reload(app, hub, occurrence_id, None)

    task = asyncio.create_task(reload(), name=f"readiness-board-{occurrence_id}")
    hub.tasks.add(task)
    task.add_done_callback(hub.tasks.discard)


async def refresh_all(app: web.Application) -> None:
    """Reload every board watched on this node (pushed where it changed): for a change that is
    not one meeting's, such as a connection check just stored; never raises."""
    hub = app.get(keys.BOARD_HUB)
    if hub is None:
        return
    for occurrence_id in hub.watched():
        await refresh_board(app, occurrence_id)


async def _refresher(app: web.Application) -> None:
    seconds = app[keys.SETTINGS].readiness_board_refresh_seconds
    while True:
        await asyncio.sleep(seconds)
        await refresh_all(app)


async def board_ctx(app: web.Application) -> AsyncIterator[None]:
    """The hub and its periodic reload for the app's lifetime."""
    hub = BoardHub()
    app[keys.BOARD_HUB] = hub
    task = asyncio.create_task(_refresher(app), name="readiness-board-refresh")
    yield
    for running in (task, *hub.tasks):
        running.cancel()
    for running in (task, *hub.tasks):
        with contextlib.suppress(asyncio.CancelledError):
            await running


async def close_board_sockets(app: web.Application) -> None:
    """on_shutdown: close every board watcher."""
    hub = app.get(keys.BOARD_HUB)
    if hub is not None:
        hub.close_all()
