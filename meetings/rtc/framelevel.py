"""The frame-level alternative, kept as a benchmark baseline: encoded frames into RTCRtpSender.

A publisher's packets are reassembled by aiortc's jitter buffer (``internals.tap_receiver_frames``)
and each encoded frame is handed, as an ``av.Packet``, to an ``EncodedFrameTrack`` per
subscriber; aiortc's sender re-packetises it. No decoding, but the jitter buffer adds delay
(about 80 ms for audio), the sender creates an (idle) encoder object, payload bytes change
(new VP8 descriptors) and the SFU cannot answer NACKs from its own history of the original.
"""

from __future__ import annotations

import asyncio
import fractions
from typing import Any

from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError
from av.packet import Packet


class EncodedFrameTrack(MediaStreamTrack):
    """A track whose ``recv()`` yields encoded frames (``av.Packet``) pushed by the SFU."""

    def __init__(self, kind: str, clock_rate: int, *, limit: int = 64) -> None:
        super().__init__()
        self.kind = kind
        self._time_base = fractions.Fraction(1, clock_rate)
        self._queue: asyncio.Queue[Packet[Any] | None] = asyncio.Queue(maxsize=limit)
        self.dropped = 0

    def push(self, data: bytes, timestamp: int) -> None:
        """Queue one encoded frame; the oldest is dropped when the subscriber lags."""
        packet = Packet(data)
        packet.pts = timestamp
        packet.time_base = self._time_base
        if self._queue.full():
            self._queue.get_nowait()
            self.dropped += 1
        self._queue.put_nowait(packet)

    async def recv(self) -> Packet[Any]:
        packet = await self._queue.get()
        if packet is None or self.readyState != "live":
            raise MediaStreamError
        return packet

    def stop(self) -> None:
        super().stop()
        if not self._queue.full():
            self._queue.put_nowait(None)
