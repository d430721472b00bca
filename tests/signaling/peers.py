"""Test participants: an aiortc client plus its signaling WebSocket, driven through the real server."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from aiortc import RTCSessionDescription

from tests.conftest import World
from tests.rtc.clients import Client, wait_for


class Peer:
    """A participant: an aiortc client plus its signaling socket."""

    def __init__(self, world: World, client: Client | None = None, name: str = "peer") -> None:
        self.world = world
        self.client = client or Client(name, audio_slots=0, video_slots=0)
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.events: list[dict[str, Any]] = []
        self.participant = ""  # this connection's id, from `welcome`
        self.close_code: int | None = None
        self.connected_at: float | None = None  # when the peer connection reached "connected"
        self._reader: asyncio.Task[None] | None = None
        self._answers: asyncio.Queue[str] = asyncio.Queue()
        self._own_session: aiohttp.ClientSession | None = None

        @self.client.pc.on("connectionstatechange")
        def on_state() -> None:
            if self.client.pc.connectionState == "connected" and self.connected_at is None:
                self.connected_at = time.monotonic()

    async def open(self, occurrence_id: int, token: str = "", session: bool = True, **join: Any) -> None:
        """Open the socket and send `join` (the answer is read by `connect` or `refused`)."""
        origin = str(self.world.client.make_url("/")).rstrip("/")
        if session:
            http = self.world.client.session
        else:
            http = self._own_session = aiohttp.ClientSession()
        self.ws = await http.ws_connect(
            self.world.client.make_url(f"/rooms/{occurrence_id}/ws"), headers={"Origin": origin}
        )
        message = {"type": "join", "occurrence": occurrence_id, "token": token, "audio": True, "video": True}
        await self.ws.send_str(json.dumps({**message, **join}))

    async def connect(
        self, occurrence_id: int, token: str = "", session: bool = True, **join: Any
    ) -> dict[str, Any]:
        """Join; returns `welcome` with `placement` ("seated" or "lobby")."""
        await self.open(occurrence_id, token, session, **join)
        assert self.ws is not None
        welcome = json.loads((await self.ws.receive(timeout=10)).data)
        assert welcome["type"] == "welcome" and welcome["participant"], welcome
        self.participant = welcome["participant"]
        placed = json.loads((await self.ws.receive(timeout=10)).data)  # "room" or "waiting"
        self.events.append(placed)
        self._reader = asyncio.create_task(self._read())
        return {**welcome, "placement": "seated" if placed["type"] == "room" else "lobby", "placed": placed}

    async def refused(self, occurrence_id: int, token: str = "", session: bool = True) -> tuple[str, int]:
        """Join expecting a refusal: returns the error code and the close code."""
        await self.open(occurrence_id, token, session)
        assert self.ws is not None
        error = json.loads((await self.ws.receive(timeout=10)).data)
        assert error["type"] == "error", error
        while not self.ws.closed:
            await self.ws.receive(timeout=10)
        assert self.ws.close_code is not None
        return str(error["code"]), self.ws.close_code

    async def _read(self) -> None:
        assert self.ws is not None
        async for msg in self.ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                break
            data = json.loads(msg.data)
            self.events.append(data)
            if data["type"] == "answer":
                self._answers.put_nowait(data["sdp"])
        self.close_code = self.ws.close_code

    async def send(self, **message: Any) -> None:
        assert self.ws is not None
        await self.ws.send_str(json.dumps(message))

    async def negotiate(self) -> None:
        """Offer, apply the answer, start reading the slots."""
        pc = self.client.pc
        await self.client.offer()
        await self.send(type="offer", sdp=pc.localDescription.sdp, sources=self.client.sources_by_mid())
        sdp = await asyncio.wait_for(self._answers.get(), 15)
        await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))
        for t in self.client.slots:
            self.client._tasks.append(asyncio.create_task(self.client._consume(t)))

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] == kind]

    async def event(
        self, kind: str, where: Callable[[dict[str, Any]], bool] = bool, within: float = 10
    ) -> bool:
        """Wait until an event of this type (matching `where`) has arrived."""
        return await wait_for(lambda: any(where(e) for e in self.of_type(kind)), within)

    async def closed(self, within: float = 10) -> int | None:
        """Wait for the server to close the socket; its close code."""
        assert self.ws is not None and self._reader is not None
        await asyncio.wait_for(asyncio.shield(self._reader), within)
        return self.close_code

    def kill_media(self) -> None:
        """Close the peer connection's UDP sockets, no DTLS close: to the server it just goes quiet."""
        for transceiver in self.client.pc.getTransceivers():
            dtls = transceiver.sender.transport
            if dtls is None:
                continue
            for protocol in dtls.transport._connection._protocols:
                protocol.transport.close()

    def freeze(self) -> None:
        """Stop reading the socket, so pings go unanswered (a frozen tab, a dead link); no close."""
        if self._reader is not None:
            self._reader.cancel()

    async def drop(self) -> None:
        """Drop abruptly: the TCP connection reset (no close frame), the media sockets gone."""
        assert self.ws is not None
        self.kill_media()
        connection = self.ws._conn
        assert connection is not None and connection.transport is not None
        connection.transport.abort()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)
        await self.client.close()

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
        if self.ws is not None and not self.ws.closed:
            await self.ws.close()
        await self.client.close()
        if self._own_session is not None:
            await self._own_session.close()


async def eventually(check: Callable[[], Awaitable[bool]], within: float = 10.0, step: float = 0.05) -> bool:
    """Poll an async ``check()`` (a database query) until true or ``within`` seconds pass."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if await check():
            return True
        await asyncio.sleep(step)
    return await check()
