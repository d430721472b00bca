"""The connection check's network probe: round trip, loss and throughput over WebRTC to this node.

A browser opens a peer connection with four data channels to the media plane (the same
aiortc stack, addresses and ICE servers as the meetings' SFU), and the probe runs a short,
bounded timeline over them (docs/readiness/check.md, "The probe"):

1. ``ping`` (unordered, no retransmission): for ``ping_seconds`` both sides send pings every
   ``ping_interval`` and echo the other's. The server measures the round trip (median) and the
   loss (its pings left unanswered: both directions together) with its own clock; the client
   does the same for its own display.
2. Downlink, on ``bulk`` (reliable, ordered: the server's SCTP congestion control fills the
   link): the server sends ``chunk``-byte messages as fast as the link takes them (its queue
   kept below ``buffer``) for ``down_seconds`` or ``max_bytes``, then ``down-end`` on
   ``control`` (after the data: one SCTP queue). The client answers ``down-got`` with the
   bytes it counted after the first ``warmup`` seconds and over how long; the server keeps
   that within what it really sent.
3. Uplink, on ``up`` (unordered, no retransmission: what arrives is what the link carried,
   and a lost chunk costs no retransmission timeout): the server says ``up``; the client sends
   the same way for ``up_seconds`` (or ``max_bytes``), then ``up-end``. The server counts what
   arrives after the warm-up, with its own clock.
4. ``result`` on ``control``: the figures and, from ``seal``, a signed token of them that the
   client hands to the web edge, so a figure cannot be forged on its way to the database.

Throughputs are IP-level rates (``WIRE_OVERHEAD`` per message added to the payload).
At most ``max_probes`` run at once on a node (``ProbeBusy`` past that); each is closed after
``limit_seconds`` whatever happens.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from aiortc import RTCConfiguration, RTCDataChannel, RTCIceServer, RTCPeerConnection, RTCSessionDescription

from meetings.rtc import internals
from meetings.rtc.sfu import announce_address

log = logging.getLogger("giaoban.probe")

CHANNELS = ("control", "ping", "bulk", "up")
# The protocol's JSON messages by their "t", each way (docs/readiness/check.md; check/probe.js).
SERVER_MESSAGES = ("ping", "pong", "down", "down-end", "up", "result")
CLIENT_MESSAGES = ("ping", "pong", "down-got", "up-end")
MAX_MESSAGE = 4096  # the largest text message a client may send on control or ping
# What one data-channel message costs on the wire beyond its payload: IPv4 20, UDP 8, DTLS
# record 13 and AEAD 24 (AES-GCM's nonce and tag), SCTP common header 12 and DATA chunk 16. The
# throughputs are given at the IP level, as a link's rate is (a "300 kbit/s" link carries
# 300 kbit/s of IP packets); the payload alone would read 7 % less with 1100-byte chunks.
WIRE_OVERHEAD = 93


class ProbeBusy(Exception):
    """As many probes as the node allows are running."""


class ProbeRefused(ValueError):
    """The offer is not a probe's (no data channel, unreadable SDP)."""


@dataclass(frozen=True)
class ProbeConfig:
    """Bounds of one probe and of the node's probes (the web edge fills them from settings)."""

    max_probes: int = 4
    ping_seconds: float = 3.0
    ping_interval: float = 0.05
    down_seconds: float = 4.0
    up_seconds: float = 4.0
    max_bytes: int = 8_000_000  # per direction
    chunk: int = 1100  # bytes per bulk message: one SCTP chunk, one UDP datagram
    # Left out at the start of each throughput phase: the congestion window's slow start.
    warmup: float = 0.5
    buffer: int = 16_384  # the most the server queues on the bulk channel at once
    connect_seconds: float = 10.0
    limit_seconds: float = 30.0  # the whole probe, connection included
    ice_servers: tuple[str, ...] = ()
    media_addresses: tuple[str, ...] | None = ("127.0.0.1",)
    announced_address: str = ""


@dataclass(frozen=True)
class ProbeFigures:
    """What one probe measured; None where it could not."""

    probe: str
    rtt_ms: float | None = None
    loss_pct: float | None = None
    down_kbps: float | None = None
    up_kbps: float | None = None
    pings_sent: int = 0
    pings_answered: int = 0
    down_sent: int = 0  # bytes the server sent on the downlink
    down_counted: int = 0  # bytes the client said it received (at most down_sent)
    up_received: int = 0
    complete: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


Seal = Callable[[ProbeFigures], str]


def wire_kbps(payload: int, messages: int, seconds: float) -> float | None:
    """The IP-level rate of ``messages`` data-channel messages of ``payload`` bytes in all."""
    if payload <= 0 or seconds <= 0.05:
        return None
    return round((payload + messages * WIRE_OVERHEAD) * 8 / seconds / 1000, 1)


@dataclass
class Window:
    """Bytes arriving during a phase, after its first ``warmup`` seconds (the slow start)."""

    warmup: float
    total: int = 0
    messages: int = 0
    first: float | None = None
    start: float | None = None  # when the warm-up ended
    start_total: int = 0
    start_messages: int = 0
    last: float = 0.0

    def add(self, size: int, now: float) -> None:
        if self.first is None:
            self.first = now
        self.total += size
        self.messages += 1
        self.last = now
        if self.start is None and now - self.first >= self.warmup:
            self.start, self.start_total, self.start_messages = now, self.total, self.messages

    def kbps(self) -> float | None:
        """The IP-level rate after the warm-up (over the whole phase if it was shorter)."""
        if self.first is None:
            return None
        if self.start is None or self.last - self.start < 0.25:
            # A phase too short to leave its start out: from the first message, which opens it.
            return wire_kbps(
                self.total - self.total // self.messages, self.messages - 1, self.last - self.first
            )
        return wire_kbps(
            self.total - self.start_total, self.messages - self.start_messages, self.last - self.start
        )


@dataclass
class _Counts:
    """What the server saw while the probe ran."""

    ping_sent: dict[int, float] = field(default_factory=dict)
    rtts: list[float] = field(default_factory=list)
    answered: set[int] = field(default_factory=set)
    down_sent: int = 0
    down_counted: int = 0
    down_ms: float = 0.0
    down_send_seconds: float = 0.0  # how long the server took to hand its bytes to the transport
    up: Window = field(default_factory=lambda: Window(0.5))
    up_open: bool = False


class Probe:
    """One browser's probe: its peer connection, channels and timeline."""

    def __init__(self, server: ProbeServer, probe_id: str, seal: Seal) -> None:
        self.id = probe_id
        self._server = server
        self._config = server.config
        self._seal = seal
        self._pc = RTCPeerConnection(
            RTCConfiguration(iceServers=[RTCIceServer(urls=url) for url in self._config.ice_servers])
        )
        self._channels: dict[str, RTCDataChannel] = {}
        self._all_open = asyncio.Event()
        self._client_pinging = asyncio.Event()
        self._inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=16)
        self._counts = _Counts(up=Window(self._config.warmup))
        self._task: asyncio.Task[ProbeFigures] | None = None
        self._closed = False
        self.figures: ProbeFigures = ProbeFigures(probe=probe_id)

        @self._pc.on("datachannel")
        def on_channel(channel: RTCDataChannel) -> None:
            if channel.label not in CHANNELS or channel.label in self._channels:
                return
            self._channels[channel.label] = channel
            channel.on("message", self._handler(channel.label))
            if len(self._channels) == len(CHANNELS):
                self._all_open.set()

    async def answer(self, offer: str) -> str:
        """Take the browser's offer; the answer carries every candidate (no trickle)."""
        try:
            await self._pc.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
        except Exception as exc:  # aiortc's parser raises many kinds on a malformed offer
            raise ProbeRefused(str(exc)) from exc
        if self._pc.sctp is None:
            raise ProbeRefused("no data channel offered")
        if self._config.media_addresses is not None:
            internals.gather_host_candidates_on(self._pc, self._config.media_addresses)
        await self._pc.setLocalDescription(await self._pc.createAnswer())
        sdp = self._pc.localDescription.sdp
        if self._config.announced_address:
            sdp = announce_address(sdp, self._config.announced_address)
        return sdp

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"probe-{self.id}")

    async def done(self) -> ProbeFigures:
        """The figures once the probe has ended (whatever ended it)."""
        assert self._task is not None
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(self._task)
        return self.figures

    # --- messages ----------------------------------------------------------------------------

    def _handler(self, label: str) -> Callable[[str | bytes], None]:
        def on_message(message: str | bytes) -> None:
            now = time.monotonic()
            if label in ("bulk", "up"):
                if label == "up" and isinstance(message, bytes) and self._counts.up_open:
                    self._count_up(len(message), now)
                return
            if not isinstance(message, str) or len(message) > MAX_MESSAGE:
                return
            try:
                data = json.loads(message)
            except ValueError:
                return
            if not isinstance(data, dict):
                return
            if label == "ping":
                self._on_ping(data, now)
            elif not self._inbox.full():
                self._inbox.put_nowait(data)

        return on_message

    def _on_ping(self, data: dict[str, Any], now: float) -> None:
        kind, seq = data.get("t"), data.get("n")
        if not isinstance(seq, int) or isinstance(seq, bool):
            return
        if kind == "ping":  # the client's: echoed as it came
            self._client_pinging.set()
            self._send("ping", {"t": "pong", "n": seq, "c": data.get("c")})
        elif kind == "pong":  # ours, back
            sent = self._counts.ping_sent.get(seq)
            if sent is not None and seq not in self._counts.answered:
                self._counts.answered.add(seq)
                self._counts.rtts.append((now - sent) * 1000)

    def _count_up(self, size: int, now: float) -> None:
        if self._counts.up.total + size <= self._config.max_bytes:
            self._counts.up.add(size, now)

    def _send(self, label: str, data: dict[str, Any] | bytes) -> None:
        channel = self._channels.get(label)
        if channel is None or channel.readyState != "open":
            return
        channel.send(data if isinstance(data, bytes) else json.dumps(data, separators=(",", ":")))

    async def _expect(self, kind: str, seconds: float) -> dict[str, Any] | None:
        """The client's next control message of this kind, or None after the time allowed."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0 and not self._gone():
            try:
                data = await asyncio.wait_for(self._inbox.get(), min(left, 0.25))
            except TimeoutError:
                continue
            if data.get("t") == kind:
                return data
        return None

    def _gone(self) -> bool:
        """The client left (closed its connection or its control channel)."""
        control = self._channels.get("control")
        closed = control is not None and control.readyState in ("closing", "closed")
        return closed or self._pc.connectionState in ("failed", "closed")

    # --- the timeline -------------------------------------------------------------------------

    async def _run(self) -> ProbeFigures:
        try:
            async with asyncio.timeout(self._config.limit_seconds):
                await self._timeline()
        except TimeoutError:
            log.info("probe %s: cut at its time limit", self.id)
        except Exception:  # a probe that breaks must not take the node with it
            log.exception("probe %s failed", self.id)
        finally:
            if self._send_result():
                await asyncio.sleep(0.5)  # let the result leave before the connection goes
            await self.close()
        return self.figures

    async def _timeline(self) -> None:
        config = self._config
        await asyncio.wait_for(self._all_open.wait(), config.connect_seconds)
        await self._ping_phase()
        self.figures = self._figures(complete=False)
        if not await self._down_phase():
            return
        self.figures = self._figures(complete=False)
        complete = await self._up_phase()
        self.figures = self._figures(complete=complete)

    async def _ping_phase(self) -> None:
        config, counts = self._config, self._counts
        self._send("control", {"t": "ping", "seconds": config.ping_seconds, "interval": config.ping_interval})
        # Our pings start once the client's ping channel is open at its end (its first ping
        # came): an unordered ping may overtake the channel's opening and be counted as lost.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._client_pinging.wait(), 1.0)
        start = time.monotonic()
        seq = 0
        while time.monotonic() - start < config.ping_seconds:
            counts.ping_sent[seq] = time.monotonic()
            self._send("ping", {"t": "ping", "n": seq})
            seq += 1
            await asyncio.sleep(config.ping_interval)
        await asyncio.sleep(min(1.0, max(0.5, 2 * self._median_rtt_s())))  # the last answers

    def _median_rtt_s(self) -> float:
        return statistics.median(self._counts.rtts) / 1000 if self._counts.rtts else 0.5

    async def _down_phase(self) -> bool:
        config, counts = self._config, self._counts
        channel = self._channels["bulk"]
        self._send(
            "control",
            {"t": "down", "seconds": config.down_seconds, "max": config.max_bytes, "warmup": config.warmup},
        )
        room = asyncio.Event()
        channel.bufferedAmountLowThreshold = config.buffer // 2
        channel.on("bufferedamountlow", room.set)
        payload = secrets.token_bytes(config.chunk)
        start = time.monotonic()
        while time.monotonic() - start < config.down_seconds and counts.down_sent < config.max_bytes:
            if channel.readyState != "open":
                return False
            if channel.bufferedAmount >= config.buffer:
                room.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(room.wait(), 0.1)
                continue
            channel.send(payload)
            counts.down_sent += len(payload)
            if counts.down_sent % (8 * config.chunk) == 0:
                await asyncio.sleep(0)  # let the transport run
        channel.remove_listener("bufferedamountlow", room.set)
        counts.down_send_seconds = time.monotonic() - start
        # After the bulk data still queued (one SCTP queue for every stream): it marks the end.
        self._send("control", {"t": "down-end", "bytes": counts.down_sent})
        got = await self._expect("down-got", config.down_seconds + 5)
        if got is None:
            return False
        count, ms = got.get("bytes"), got.get("ms")
        if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (count, ms)):
            return False
        assert isinstance(count, int | float) and isinstance(ms, int | float)
        # What the client says it got after the warm-up, within what was sent, over at least a
        # tenth of a second; every message is one chunk, so their number follows.
        counts.down_counted = int(min(max(count, 0), counts.down_sent))
        counts.down_ms = max(float(ms), 100.0)
        return True

    async def _up_phase(self) -> bool:
        config, counts = self._config, self._counts
        counts.up_open = True
        self._send(
            "control",
            {"t": "up", "seconds": config.up_seconds, "max": config.max_bytes, "chunk": config.chunk},
        )
        ended = await self._expect("up-end", config.up_seconds + 5)
        await asyncio.sleep(0.2)  # the last chunks (sent before up-end, but on another stream)
        counts.up_open = False
        return ended is not None

    def _figures(self, *, complete: bool) -> ProbeFigures:
        counts = self._counts
        sent = len(counts.ping_sent)
        answered = len(counts.answered)
        down = counts.down_counted
        return ProbeFigures(
            probe=self.id,
            rtt_ms=round(statistics.median(counts.rtts), 1) if counts.rtts else None,
            loss_pct=round(100 * (sent - answered) / sent, 1) if sent else None,
            down_kbps=self._down_kbps(),
            up_kbps=counts.up.kbps(),
            pings_sent=sent,
            pings_answered=answered,
            down_sent=counts.down_sent,
            down_counted=down,
            up_received=counts.up.total,
            complete=complete,
        )

    def _down_kbps(self) -> float | None:
        """The browser's download figure, no faster than a quarter above the server's own pace.

        The server hands the transport no more than ``buffer`` bytes ahead of what the link
        took, so its sending pace is itself close to the link's rate (within ``buffer`` over
        the phase): a browser cannot report a download much faster than it was sent.
        """
        counts, chunk = self._counts, self._config.chunk
        said = wire_kbps(counts.down_counted, counts.down_counted // chunk, counts.down_ms / 1000)
        pace = wire_kbps(counts.down_sent, counts.down_sent // chunk, counts.down_send_seconds)
        if said is None or pace is None:  # no pace when every byte was handed over at once
            return said
        return min(said, round(pace * 1.25, 1))

    def _send_result(self) -> bool:
        """Send the figures and their seal; False when there is no one to send them to."""
        control = self._channels.get("control")
        if control is None or control.readyState != "open":
            return False
        try:
            self._send("control", {"t": "result", **self.figures.as_dict(), "seal": self._seal(self.figures)})
        except Exception:  # a seal that fails must not leave the connection open
            log.exception("probe %s: the result could not be sent", self.id)
            return False
        return True

    async def close(self) -> None:
        """Close the connection; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self._server._release(self)
        with contextlib.suppress(Exception):
            await self._pc.close()


class ProbeServer:
    """The node's probes: at most ``config.max_probes`` at once."""

    def __init__(self, config: ProbeConfig | None = None) -> None:
        self.config = config or ProbeConfig()
        self._running: dict[str, Probe] = {}

    @property
    def running(self) -> int:
        return len(self._running)

    async def open(self, offer: str, seal: Seal) -> tuple[Probe, str]:
        """Start a probe from a browser's offer; returns it and the SDP answer."""
        if "m=application" not in offer:
            raise ProbeRefused("no data channel offered")
        if len(self._running) >= self.config.max_probes:
            raise ProbeBusy()
        probe = Probe(self, secrets.token_urlsafe(12), seal)
        self._running[probe.id] = probe
        try:
            answer = await probe.answer(offer)
        except BaseException:
            await probe.close()
            raise
        probe.start()
        return probe, answer

    def _release(self, probe: Probe) -> None:
        self._running.pop(probe.id, None)

    async def close(self) -> None:
        """Close every probe (the node is stopping), waiting for each to end."""
        probes = list(self._running.values())
        tasks = [probe._task for probe in probes if probe._task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for probe in probes:
            await probe.close()
