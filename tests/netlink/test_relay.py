"""The user-space impairment relay of ``shapedlink``: delay, jitter and seeded loss, on loopback."""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

from shapedlink import Impairment, Relay
from tests.rtc.clients import wait_for

FRONT, BACK, CLIENT = "127.0.0.2", "127.0.0.1", "127.0.0.3"  # all loopback, all this machine


class Log(asyncio.DatagramProtocol):
    """Records (arrival time, sequence number) of each datagram; echoes when told."""

    def __init__(self, echo: bool = False) -> None:
        self.arrivals: list[tuple[float, int]] = []
        self.echo = echo
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.arrivals.append((time.monotonic(), int.from_bytes(data[:4], "big")))
        if self.echo:
            self.transport.sendto(data, addr)


async def _endpoints(relay: Relay, echo: bool) -> tuple[Log, Log, Any, int]:
    loop = asyncio.get_running_loop()
    server = Log(echo)
    await loop.create_datagram_endpoint(lambda: server, local_addr=(BACK, 0))
    port = server.transport.get_extra_info("sockname")[1]
    assert await relay.front_port(port) == port
    client = Log()
    await loop.create_datagram_endpoint(lambda: client, local_addr=(CLIENT, 0))
    return server, client, client.transport, port


async def test_relay_delays_keeps_order_and_forwards_both_ways() -> None:
    relay = Relay(FRONT, BACK)
    relay.impair(f"{CLIENT}/32", Impairment(delay_ms=60))
    server, client, sender, port = await _endpoints(relay, echo=True)
    try:
        sent: dict[int, float] = {}
        for seq in range(50):
            sent[seq] = time.monotonic()
            sender.sendto(seq.to_bytes(4, "big") + bytes(100), (FRONT, port))
            await asyncio.sleep(0.002)
        assert await wait_for(lambda: len(client.arrivals) == 50, 10)
        assert [seq for _, seq in server.arrivals] == list(range(50))  # order kept
        assert [seq for _, seq in client.arrivals] == list(range(50))
        # Delayed on the way in, and again on the way back.
        assert all(at - sent[seq] >= 0.059 for at, seq in server.arrivals)
        assert all(at - sent[seq] >= 0.119 for at, seq in client.arrivals)
        assert relay.counts.dropped == 0
    finally:
        relay.close()
        server.transport.close()
        sender.close()


async def test_relay_loss_follows_the_seed_and_jitter_only_reorders() -> None:
    loss, jitter, count = 0.05, 20.0, 400
    relay = Relay(FRONT, BACK, seed=7)
    relay.impair(f"{CLIENT}/32", Impairment(delay_ms=30, jitter_ms=jitter, loss=loss))
    server, _client, sender, port = await _endpoints(relay, echo=False)
    # The relay draws, per datagram in arrival order: loss, then (if kept) jitter.
    expected = random.Random(7)
    kept = []
    for seq in range(count):
        if expected.random() >= loss:
            expected.uniform(-jitter, jitter)
            kept.append(seq)
    try:
        for seq in range(count):
            sender.sendto(seq.to_bytes(4, "big") + bytes(100), (FRONT, port))
            if seq % 20 == 0:
                await asyncio.sleep(0.005)
        assert await wait_for(lambda: len(server.arrivals) == len(kept), 10)
        await asyncio.sleep(0.2)  # nothing more arrives
        assert sorted(seq for _, seq in server.arrivals) == kept
        assert relay.counts.dropped == count - len(kept)
        assert 0.02 * count <= relay.counts.dropped <= 0.09 * count  # about 5 %
    finally:
        relay.close()
        server.transport.close()
        sender.close()


async def test_relay_passes_other_clients_untouched() -> None:
    relay = Relay(FRONT, BACK)
    relay.impair("10.213.0.0/30", Impairment(loss=1.0))  # not the client's network
    server, client, sender, port = await _endpoints(relay, echo=True)
    try:
        for seq in range(20):
            sender.sendto(seq.to_bytes(4, "big"), (FRONT, port))
        assert await wait_for(lambda: len(client.arrivals) == 20, 10)
        assert relay.counts.impaired == 0
    finally:
        relay.close()
        server.transport.close()
        sender.close()
