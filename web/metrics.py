"""Prometheus metrics of one application (its own registry, so tests can build many apps)."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from ipaddress import IPv6Address, ip_address

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from meetings.readiness.monitor import RoomFigures
from meetings.settings import Settings, networks

# How often the event loop's lag is sampled, in seconds.
LAG_INTERVAL = 0.5
PROXY_HEADERS = ("Forwarded", "X-Forwarded-For")


def _no_rooms() -> list[RoomFigures]:
    return []


class RoomCollector(Collector):
    """Per-room series, labelled by the occurrence id, read at each scrape from the open rooms:
    a room that closed has no series any more, so the labels stay as many as the open rooms."""

    def __init__(self) -> None:
        self.source: Callable[[], list[RoomFigures]] = _no_rooms

    def collect(self) -> Iterator[Metric]:
        rooms = self.source()
        participants = GaugeMetricFamily(
            "giaoban_room_participants", "People seated in the room now.", labels=["room"]
        )
        forwarded = CounterMetricFamily(
            "giaoban_room_forwarded_packets",
            "Packets the media server forwarded to the room's receivers.",
            labels=["room"],
        )
        sent = CounterMetricFamily(
            "giaoban_room_sent_bytes", "Bytes the media server sent to the room's receivers.", labels=["room"]
        )
        received = CounterMetricFamily(
            "giaoban_room_received_packets",
            "Media packets the room's publishers sent to the server.",
            labels=["room"],
        )
        received_bytes = CounterMetricFamily(
            "giaoban_room_received_bytes",
            "Media payload bytes the room's publishers sent to the server.",
            labels=["room"],
        )
        loss = GaugeMetricFamily(
            "giaoban_room_loss_percent",
            "The worst packet loss of a participant of the room now, in percent (server-measured).",
            labels=["room"],
        )
        for room in rooms:
            label = [str(room.occurrence_id)]
            participants.add_metric(label, room.participants)
            forwarded.add_metric(label, room.forwarded_packets)
            sent.add_metric(label, room.sent_bytes)
            received.add_metric(label, room.received_packets)
            received_bytes.add_metric(label, room.received_bytes)
            if room.loss_pct is not None:
                loss.add_metric(label, room.loss_pct)
        yield from (participants, forwarded, sent, received, received_bytes, loss)


@dataclass
class Metrics:
    """Requests by route, and the process's own figures (memory, open files, tasks, loop lag)."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        self.requests = Counter(
            "giaoban_http_requests",
            "HTTP requests served, by route, method and status.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "giaoban_http_request_duration_seconds",
            "Time to serve HTTP requests, by route and method.",
            ["route", "method"],
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
        )
        # process_resident_memory_bytes, process_open_fds, process_cpu_seconds_total... (Linux /proc)
        ProcessCollector(registry=self.registry)
        self.tasks = Gauge(
            "giaoban_asyncio_tasks",
            "asyncio tasks alive in the event loop (a number that only grows is a leak).",
            registry=self.registry,
        )
        self.loop_lag = Gauge(
            "giaoban_event_loop_lag_seconds",
            f"How late the event loop ran a timer at the last sample (every {LAG_INTERVAL} s).",
            registry=self.registry,
        )
        self.loop_lags = Histogram(
            "giaoban_event_loop_lag_observed_seconds",
            "Event-loop lag samples: how late a timer ran (a long tail means blocking work in the loop).",
            registry=self.registry,
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
        )

        # Wired by the media context to the connection tracker's figures (web/media_ctx.py).
        self.rooms = RoomCollector()
        self.registry.register(self.rooms)

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        """Count one request and its duration."""
        self.requests.labels(route, method, str(status)).inc()
        self.latency.labels(route, method).observe(seconds)

    def observe_lag(self, seconds: float) -> None:
        """Record one event-loop lag sample."""
        self.loop_lag.set(seconds)
        self.loop_lags.observe(seconds)

    def exposition(self) -> bytes:
        """The text format for a Prometheus scrape (call it in the event loop: it counts its tasks)."""
        self.tasks.set(len(asyncio.all_tasks()))
        return generate_latest(self.registry)


async def sample_loop_lag(metrics: Metrics, interval: float = LAG_INTERVAL) -> None:
    """Forever: sleep `interval` and record how much later than asked the loop woke us."""
    loop = asyncio.get_running_loop()
    while True:
        started = loop.time()
        await asyncio.sleep(interval)
        metrics.observe_lag(max(0.0, loop.time() - started - interval))


@contextlib.asynccontextmanager
async def lag_sampler(metrics: Metrics, interval: float = LAG_INTERVAL) -> AsyncIterator[None]:
    """Sample the event loop's lag while the block runs."""
    task = asyncio.create_task(sample_loop_lag(metrics, interval), name="giaoban-loop-lag")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def may_scrape(settings: Settings, remote: str | None, headers: Mapping[str, str]) -> bool:
    """True when a request carries the metrics token or comes straight from an allowed network."""
    token = settings.metrics_token
    if token:
        given = headers.get("Authorization", "")
        if hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            return True
    if any(h in headers for h in PROXY_HEADERS):
        return False  # the proxy's address says nothing about the client's
    try:
        address = ip_address((remote or "").split("%")[0])
    except ValueError:
        return False
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in networks(settings.metrics_allow, "metrics_allow"))
