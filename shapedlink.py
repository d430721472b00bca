"""Shaped links for the weak-link tests and benchmark: a network namespace, a veth pair, ``tbf``.

Shared by ``tests/netlink/`` and ``bench/weaklink.py`` (top level, like ``chromium.py``, so the
benchmark never imports the tests). Needs root and ``ip`` / ``tc`` (iproute2).

- ``shaped_link(index)`` creates a network namespace and a veth pair between it and this one,
  with the two addresses of a private /30 in 10.213.0.0/16 that exists only on this machine
  (nothing routes it anywhere else: the namespace's only route is the veth). The host side
  gets the first address, the namespace the second. ``Link.shape(down_kbit, up_kbit)`` puts a
  ``tbf`` on the egress of each end: the host side's egress is the namespace's downlink, the
  namespace side's egress its uplink; call it again to change the rate mid-run. Leaving the
  ``with`` block (or a crash inside it) deletes the namespace and the host side of the pair.
- ``Link.command(...)`` runs a program inside the namespace (``ip netns exec``), and
  ``Link.wrapper(executable)`` writes a script that does so, for Playwright's ``executable_path``.
- ``Relay`` is a user-space UDP relay adding delay, jitter and random loss (seeded), because
  this kernel has ``tbf`` and ``htb`` but no ``netem``. It *fronts* a UDP server: for each port
  P it is told about, it listens on ``front:P`` and forwards to ``back:P``, and back again. With
  the media server gathering on 127.0.0.1 (``media_addresses``) and announcing the front
  address (``media_announced_address``), every participant's media goes through it; only
  the clients whose address falls in a network given to ``Relay.impair`` are delayed, jittered
  and dropped, in both directions. ``follow_sfu_ports`` tells the relay about each port the
  media server gathers, in the process that runs it.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import ipaddress
import os
import random
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BLOCK = ipaddress.ip_network("10.213.0.0/16")  # the /30s come from here (private, never routed out)
TBF_LATENCY_MS = 200  # how long a packet may wait in the tbf queue before it is dropped


def unavailable() -> str | None:
    """Why shaped links cannot be made here (not root, no ``ip``/``tc``, no namespaces), or None."""
    if os.geteuid() != 0:
        return "shaped links need root (ip netns, tc)"
    for tool in ("ip", "tc"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (apt-get install iproute2)"
    probe = f"gbprobe{os.getpid() % 100000}"
    done = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True, timeout=10)
    if done.returncode != 0:
        return f"ip netns is unavailable: {done.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True, timeout=10)
    return None


def _run(*argv: str) -> None:
    done = subprocess.run(list(argv), capture_output=True, text=True, timeout=10)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {done.stderr.strip()}")


def _subnet(index: int) -> ipaddress.IPv4Network:
    """A /30 of BLOCK for this process and index (concurrent runs get different ones)."""
    count = BLOCK.num_addresses // 4
    n = (os.getpid() * 16 + index) % count
    network = ipaddress.ip_network(f"{BLOCK.network_address + 4 * n}/30")
    assert isinstance(network, ipaddress.IPv4Network)
    return network


@dataclass
class Link:
    """One namespace and its veth pair; ``host_address`` is this side, ``address`` the namespace's."""

    namespace: str
    host_device: str
    device: str
    network: ipaddress.IPv4Network
    down_kbit: int | None = None
    up_kbit: int | None = None
    _scripts: list[Path] = field(default_factory=list)

    @property
    def host_address(self) -> str:
        return str(self.network.network_address + 1)

    @property
    def address(self) -> str:
        return str(self.network.network_address + 2)

    def command(self, *argv: str) -> list[str]:
        """``argv`` run inside the namespace."""
        return ["ip", "netns", "exec", self.namespace, *argv]

    def wrapper(self, executable: str) -> str:
        """A script that runs ``executable`` (with its arguments) inside the namespace."""
        fd, name = tempfile.mkstemp(prefix=f"{self.namespace}-", suffix=".sh")
        with os.fdopen(fd, "w") as script:
            script.write(f'#!/bin/sh\nexec ip netns exec {self.namespace} {executable} "$@"\n')
        path = Path(name)
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
        self._scripts.append(path)
        return name

    def shape(self, down_kbit: int | None, up_kbit: int | None) -> None:
        """Limit the namespace's downlink and uplink (kbit/s; None: unlimited). Callable mid-run."""
        _shape([], self.host_device, down_kbit)
        _shape(["ip", "netns", "exec", self.namespace], self.device, up_kbit)
        self.down_kbit, self.up_kbit = down_kbit, up_kbit

    def close(self) -> None:
        for path in self._scripts:
            path.unlink(missing_ok=True)
        subprocess.run(["ip", "netns", "del", self.namespace], capture_output=True, timeout=10)
        # The pair dies with the namespace, but not always before this returns: delete our end.
        subprocess.run(["ip", "link", "del", self.host_device], capture_output=True, timeout=10)


def _shape(prefix: list[str], device: str, kbit: int | None) -> None:
    if kbit is None:
        subprocess.run(
            [*prefix, "tc", "qdisc", "del", "dev", device, "root"], capture_output=True, timeout=10
        )
        return
    # A burst of at least 4 KB (a few full packets) and ~20 ms at the rate: tbf's usual advice.
    burst = max(4096, kbit * 1000 // 8 // 50)
    _run(
        *prefix,
        *("tc", "qdisc", "replace", "dev", device, "root", "tbf"),
        *("rate", f"{kbit}kbit", "burst", str(burst), "latency", f"{TBF_LATENCY_MS}ms"),
    )


@contextlib.contextmanager
def shaped_link(
    index: int = 0, *, down_kbit: int | None = None, up_kbit: int | None = None, prefix: str = "gb"
) -> Iterator[Link]:
    """A namespace joined to this one by a veth pair on a private /30, shaped; removed on exit.

    The namespace routes everything to the host side (its default route), so it reaches the
    host's addresses on other links too, and nothing beyond this machine (no forwarding here).
    Its name is ``prefix``, this process's id and ``index`` (interface names allow 15 bytes:
    keep ``prefix`` to 4 letters), so concurrent runs and suites never share one.
    """
    if not (prefix.isalpha() and len(prefix) <= 4):
        raise ValueError(f"a namespace prefix is 1 to 4 letters: {prefix!r}")
    tag = f"{prefix}{os.getpid() % 100000}x{index}"
    link = Link(namespace=tag, host_device=f"{tag}h", device=f"{tag}n", network=_subnet(index))
    try:
        _run("ip", "netns", "add", link.namespace)
        _run("ip", "link", "add", link.host_device, "type", "veth", "peer", "name", link.device)
        _run("ip", "link", "set", link.device, "netns", link.namespace)
        _run("ip", "addr", "add", f"{link.host_address}/30", "dev", link.host_device)
        _run("ip", "link", "set", link.host_device, "up")
        inside = ["ip", "-n", link.namespace]
        _run(*inside, "addr", "add", f"{link.address}/30", "dev", link.device)
        _run(*inside, "link", "set", link.device, "up")
        _run(*inside, "link", "set", "lo", "up")
        _run(*inside, "route", "add", "default", "via", link.host_address)
        link.shape(down_kbit, up_kbit)
        yield link
    finally:
        link.close()


# --- the impairment relay -------------------------------------------------------------------


@dataclass(frozen=True)
class Impairment:
    """One direction's delay (ms), jitter (ms, uniform ±) and loss (0..1)."""

    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    loss: float = 0.0


class _Delayer:
    """Sends datagrams later, in order of their due time, with one timer (no task per packet)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._queue: list[tuple[float, int, Callable[[], None]]] = []
        self._count = 0
        self._timer: asyncio.TimerHandle | None = None

    def later(self, due: float, send: Callable[[], None]) -> None:
        self._count += 1
        heapq.heappush(self._queue, (due, self._count, send))
        if self._queue[0][1] == self._count:
            self._arm()

    def _arm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._loop.call_at(self._queue[0][0], self._fire) if self._queue else None

    def _fire(self) -> None:
        now = self._loop.time()
        while self._queue and self._queue[0][0] <= now:
            _, _, send = heapq.heappop(self._queue)
            with contextlib.suppress(OSError):
                send()
        self._timer = None
        self._arm()

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._queue.clear()


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self, received: Callable[[bytes, Any], None]) -> None:
        self.received = received
        self.transport: asyncio.DatagramTransport | None = None
        self.pending: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # a datagram endpoint's

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.received(data, addr)


@dataclass
class RelayCounts:
    """Datagrams seen and dropped by the relay, for impaired clients only."""

    impaired: int = 0
    dropped: int = 0
    forwarded: int = 0


class Relay:
    """Fronts UDP ports of ``back`` on ``front``; impairs the clients of the ``impair`` networks."""

    def __init__(self, front: str, back: str = "127.0.0.1", *, seed: int = 16) -> None:
        self.front, self.back = front, back
        self.random = random.Random(seed)
        self.counts = RelayCounts()
        self._networks: list[tuple[ipaddress.IPv4Network, Impairment]] = []
        self._fronts: dict[int, _Datagrams] = {}
        self._upstreams: dict[tuple[int, Any], _Datagrams] = {}
        self._delayer: _Delayer | None = None
        self._opening: set[asyncio.Task[None]] = set()

    def impair(self, network: str | ipaddress.IPv4Network, impairment: Impairment) -> None:
        """Clients in ``network``: ``impairment`` on what they send and on what they receive."""
        net = ipaddress.ip_network(network)
        assert isinstance(net, ipaddress.IPv4Network)
        self._networks = [(n, i) for n, i in self._networks if n != net] + [(net, impairment)]

    def _impairment(self, addr: Any) -> Impairment | None:
        host = ipaddress.ip_address(addr[0])
        for network, impairment in self._networks:
            if host in network:
                return impairment
        return None

    async def front_port(self, port: int) -> int:
        """Listen on ``front:port`` (0: any free port) for ``back:port``; returns the port."""
        if port in self._fronts:
            return port
        loop = asyncio.get_running_loop()
        if self._delayer is None:
            self._delayer = _Delayer(loop)
        protocol: _Datagrams = _Datagrams(lambda data, addr: None)
        await loop.create_datagram_endpoint(lambda: protocol, local_addr=(self.front, port))
        assert protocol.transport is not None
        bound = int(protocol.transport.get_extra_info("sockname")[1])
        self._fronts[bound] = protocol  # the same port on both sides: the SDP keeps it
        protocol.received = lambda data, addr: self._from_client(bound, data, addr)
        return bound

    def _pass(self, impairment: Impairment | None, send: Callable[[], None]) -> None:
        if impairment is None:
            with contextlib.suppress(OSError):
                send()
            return
        self.counts.impaired += 1
        if impairment.loss and self.random.random() < impairment.loss:
            self.counts.dropped += 1
            return
        self.counts.forwarded += 1
        delay = impairment.delay_ms + self.random.uniform(-impairment.jitter_ms, impairment.jitter_ms)
        assert self._delayer is not None
        if delay <= 0:
            with contextlib.suppress(OSError):
                send()
            return
        self._delayer.later(asyncio.get_running_loop().time() + delay / 1000, send)

    def _from_client(self, port: int, data: bytes, addr: Any) -> None:
        impairment = self._impairment(addr)
        upstream = self._upstreams.get((port, addr))
        if upstream is None:
            upstream = self._upstreams[(port, addr)] = _Datagrams(lambda d, a: None)
            front = self._fronts[port]

            def back_to_client(reply: bytes, _from: Any) -> None:
                transport = front.transport
                if transport is not None:
                    self._pass(impairment, lambda: transport.sendto(reply, addr))

            upstream.received = back_to_client
            task = asyncio.get_running_loop().create_task(self._open(upstream, port, impairment))
            self._opening.add(task)
            task.add_done_callback(self._opening.discard)
        if upstream.transport is None:
            upstream.pending.append(data)  # until its socket is open
            return
        self._to_server(upstream, impairment, data)

    async def _open(self, upstream: _Datagrams, port: int, impairment: Impairment | None) -> None:
        loop = asyncio.get_running_loop()
        await loop.create_datagram_endpoint(
            lambda: upstream, local_addr=(self.back, 0), remote_addr=(self.back, port)
        )
        for early in upstream.pending:
            self._to_server(upstream, impairment, early)
        upstream.pending.clear()

    def _to_server(self, upstream: _Datagrams, impairment: Impairment | None, data: bytes) -> None:
        transport = upstream.transport
        if transport is not None:
            self._pass(impairment, lambda: transport.sendto(data))

    def close(self) -> None:
        for task in self._opening:
            task.cancel()
        if self._delayer is not None:
            self._delayer.close()
        for protocol in [*self._fronts.values(), *self._upstreams.values()]:
            if protocol.transport is not None:
                protocol.transport.close()
        self._fronts.clear()
        self._upstreams.clear()


@contextlib.contextmanager
def follow_sfu_ports(relay: Relay) -> Iterator[None]:
    """While open, every port the media server (this process) gathers on is fronted by ``relay``.

    Wraps ``meetings.rtc.internals.gather_host_candidates_on`` (what the SFU calls before
    gathering): once a connection has gathered, ``relay.front_port`` runs for each candidate.
    """
    from meetings.rtc import internals

    original = internals.gather_host_candidates_on

    def gather_and_front(pc: Any, addresses: Any) -> None:
        original(pc, addresses)
        for transport in pc._RTCPeerConnection__iceTransports:
            connection = transport.iceGatherer._connection
            inner = connection.gather_candidates

            async def gather(connection: Any = connection, inner: Any = inner) -> None:
                await inner()
                for candidate in connection._local_candidates:
                    await relay.front_port(candidate.port)

            connection.gather_candidates = gather

    internals.gather_host_candidates_on = gather_and_front
    try:
        yield
    finally:
        internals.gather_host_candidates_on = original
