"""A probe client in Python (aiortc), as the browser's check.js runs it: for in-process tests."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from aiortc import RTCPeerConnection, RTCSessionDescription


async def run_probe(answer_for: Any, *, stop_after: str = "", forge: bool = False) -> dict[str, Any]:
    """Run a probe against ``answer_for(offer) -> answer`` (an awaitable); the server's result.

    ``stop_after``: "ping" closes the connection after the ping phase (a client that leaves).
    ``forge``: claim ten times the bytes the server sent, received in a tenth of a second.
    """
    pc = RTCPeerConnection()
    control = pc.createDataChannel("control")
    ping = pc.createDataChannel("ping", ordered=False, maxRetransmits=0)
    bulk = pc.createDataChannel("bulk")
    up = pc.createDataChannel("up", ordered=False, maxRetransmits=0)
    result: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
    down = {"bytes": 0, "first": 0.0, "first_size": 0, "last": 0.0}
    tasks: set[asyncio.Future[Any]] = set()

    @ping.on("message")
    def on_ping(message: str) -> None:
        data = json.loads(message)
        if data["t"] == "ping":
            ping.send(json.dumps({"t": "pong", "n": data["n"]}))

    @bulk.on("message")
    def on_bulk(message: bytes) -> None:
        now = time.monotonic()
        if not down["bytes"]:
            down["first"], down["first_size"] = now, len(message)
        down["bytes"] += len(message)
        down["last"] = now

    async def upload(seconds: float, limit: int) -> None:
        payload = b"\0" * 1100
        start, sent = time.monotonic(), 0
        while time.monotonic() - start < seconds and sent < limit:
            if up.bufferedAmount > 16384:
                await asyncio.sleep(0.005)
                continue
            up.send(payload)
            sent += len(payload)
        control.send(json.dumps({"t": "up-end", "bytes": sent}))

    async def pings(seconds: float, interval: float) -> None:
        for n in range(int(seconds / interval)):
            if ping.readyState != "open":
                return
            ping.send(json.dumps({"t": "ping", "n": n}))
            await asyncio.sleep(interval)

    @control.on("message")
    def on_control(message: str) -> None:
        data = json.loads(message)
        if data["t"] == "ping":
            tasks.add(asyncio.ensure_future(pings(data["seconds"], data["interval"])))
        elif data["t"] == "down" and stop_after == "ping":
            tasks.add(asyncio.ensure_future(pc.close()))
        elif data["t"] == "down-end":
            ms = (down["last"] - down["first"]) * 1000
            got = {"t": "down-got", "bytes": down["bytes"] - down["first_size"], "ms": ms}
            if forge:
                got = {"t": "down-got", "bytes": data["bytes"] * 10, "ms": 1}
            control.send(json.dumps(got))
        elif data["t"] == "up":
            tasks.add(asyncio.ensure_future(upload(data["seconds"], data["max"])))
        elif data["t"] == "result" and not result.done():
            result.set_result(data)

    await pc.setLocalDescription(await pc.createOffer())
    answer = await answer_for(pc.localDescription.sdp)
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
    try:
        if stop_after == "ping":
            await asyncio.sleep(8)
            return {}
        return await asyncio.wait_for(result, 40)
    finally:
        await pc.close()
