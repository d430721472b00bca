"""The sending side of a server WebSocket: a bounded queue, one writer task, close after drain.

Both live sockets (the room's and the minutes') send through this class, so a slow client is
treated the same on both: once its queue is full it is closed with 1001 and told to reload
(docs/signaling.md, docs/minutes.md), and nobody else waits for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiohttp import web

from meetings import i18n
from meetings.errors import N_
from meetings.wire import CloseCode

log = logging.getLogger("giaoban.sockets")

TOO_SLOW = N_("The connection is too slow to follow the meeting. Reload the page.")
CLOSE_WAIT_SECONDS = 5.0


class SocketWriter:
    """Queue text for one WebSocket; a writer task sends it in order; `end` closes after the queue."""

    def __init__(
        self,
        ws: web.WebSocketResponse,
        *,
        limit: int,
        language: str,
        name: str,
        transport: asyncio.WriteTransport | None = None,
    ) -> None:
        self.ws = ws
        self._transport = transport  # the request's: `send` looks at its buffer
        self.language = language
        self.name = name
        self.closed = False  # no more messages are queued; the socket closes after what is
        self._queue: asyncio.Queue[str | None] = asyncio.Queue(limit)
        self._close_args: tuple[int, bytes] = (int(CloseCode.NORMAL), b"")
        self._task: asyncio.Task[None] | None = None
        self._sending = 0  # sends in progress (the writer's and `send`'s)

    def start(self) -> None:
        """Start the writer task (once)."""
        if self._task is None:
            self._task = asyncio.create_task(self._write(), name=self.name)

    def post(self, text: str) -> None:
        """Queue encoded text; a client whose queue is full is closed and told to reload."""
        if self.closed:
            return
        try:
            self._queue.put_nowait(text)
        except asyncio.QueueFull:
            log.warning("client too slow, closing", extra={"socket": self.name})
            # What is queued is stale by now: the client reloads, so drop it and close at once.
            while not self._queue.empty():
                self._queue.get_nowait()
            self.end(int(CloseCode.GOING_AWAY), TOO_SLOW)

    async def send(self, text: str) -> None:
        """Send at once when that cannot wait: nothing queued or being sent, and room in the
        socket's buffer (an answer does not wait for the writer's turn on a busy event loop);
        else queue behind what is. Either way the order is kept."""
        if not self._sendable_now(text):
            self.post(text)
            return
        self._sending += 1
        try:
            # Uncompressed and below the buffer's high-water mark, aiohttp writes the frame and
            # returns without waiting: nothing can come in between.
            with contextlib.suppress(ConnectionError):
                await self.ws.send_str(text)
        finally:
            self._sending -= 1

    def _sendable_now(self, text: str) -> bool:
        transport = self._transport
        if transport is None or transport.is_closing() or self.ws.closed or self.ws.compress:
            return False
        if self.closed or self._task is None or self._sending or not self._queue.empty():
            return False
        _low, high = transport.get_write_buffer_limits()
        return transport.get_write_buffer_size() + 4 * len(text) + 16 < high  # 4: UTF-8's widest

    def end(self, code: int, reason: str) -> None:
        """Close once what is queued is sent; `reason` is a msgid; the first code given wins."""
        if self.closed:
            return
        self.closed = True
        with i18n.language(self.language):
            text = i18n.gettext(reason) if reason else ""
        self._close_args = (code, text.encode("utf-8")[:120])
        try:
            self._queue.put_nowait(None)
        except asyncio.QueueFull:
            # Make room for the close (the newest message is the one lost): a full queue must
            # never leave a socket open that was asked to close.
            pending = [self._queue.get_nowait() for _ in range(self._queue.qsize())]
            for item in pending[:-1]:
                self._queue.put_nowait(item)
            self._queue.put_nowait(None)

    async def wait(self) -> None:
        """Wait for the writer to finish (it closes the socket); give up after a few seconds."""
        if self._task is None:
            return
        with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(self._task, CLOSE_WAIT_SECONDS)

    def cancel(self) -> None:
        """Stop the writer without closing (the caller closes the socket itself)."""
        if self._task is not None:
            self._task.cancel()

    async def _write(self) -> None:
        # A client gone without a close (no pong, reset) ends the writer quietly.
        with contextlib.suppress(ConnectionError):
            while True:
                item = await self._queue.get()
                if item is None:
                    if not self.ws.closed:
                        code, message = self._close_args
                        await self.ws.close(code=code, message=message)
                    return
                if self.ws.closed:
                    return
                self._sending += 1
                try:
                    await self.ws.send_str(item)
                finally:
                    self._sending -= 1
