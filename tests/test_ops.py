"""Health, metrics, error pages: clear answers and never a 500."""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from meetings.directory.models import Role
from meetings.settings import Settings, SettingsError, load_settings
from tests.conftest import SECRET, World
from web.app import create_app
from web.metrics import Metrics, lag_sampler


async def test_healthz_and_metrics(world: World) -> None:
    r = await world.client.get("/healthz")
    assert r.status == 200 and (await r.json()) == {"status": "ok", "database": "ok"}
    await world.client.get("/login")
    await world.client.get("/no/such/page")
    metrics = await (await world.client.get("/metrics")).text()
    assert 'giaoban_http_requests_total{method="GET",route="/healthz",status="200"} 1.0' in metrics
    assert 'route="unmatched",status="404"' in metrics
    assert "giaoban_http_request_duration_seconds_bucket" in metrics


async def test_healthz_reports_an_unreachable_database(
    aiohttp_client: Callable[..., Awaitable[TestClient[Any, Any]]], tmp_path: Any
) -> None:
    settings = load_settings(
        environ={},
        secret_key=SECRET,
        var_dir=str(tmp_path),
        database_url="postgresql+asyncpg://nobody:nothing@127.0.0.1:9/none",
    )
    client = await aiohttp_client(create_app(settings))
    r = await client.get("/healthz")
    assert r.status == 503 and (await r.json())["database"] == "unreachable"


async def test_unknown_and_malformed_ids_are_404(world: World) -> None:
    await world.person("member@hue.example")
    await world.login("member@hue.example")
    for path in ("/directory/units/999999", "/directory/units/abc", "/directory/people/0"):
        r = await world.client.get(path)
        assert r.status == 404, path
    r = await world.client.get("/api/people/999999")
    assert r.status == 404
    assert (await r.json())["error"]["status"] == 404


async def test_oversized_body_is_refused_clearly(world: World) -> None:
    await world.person("admin@hue.example", Role.ADMINISTRATOR)
    await world.login("admin@hue.example")
    big = b"code,kind,name\n" + b"X" * (world.settings.max_body_bytes + 10)
    r = await world.call(
        "POST", "/api/import/units", data=io.BytesIO(big), headers={"Content-Type": "text/csv"}
    )
    assert r.status == 413
    assert "message" in (await r.json())["error"]


async def test_pages_have_security_headers(world: World) -> None:
    r = await world.client.get("/login")
    assert r.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in r.headers["Content-Security-Policy"]
    assert r.headers["X-Content-Type-Options"] == "nosniff"


async def test_metrics_are_for_allowed_networks_or_the_token(
    settings: Settings, aiohttp_client: Callable[..., Awaitable[TestClient[Any, Any]]]
) -> None:
    """The test client connects from 127.0.0.1: in the default loopback network, but not in 10.0.0.0/8."""
    client = await aiohttp_client(create_app(replace(settings, metrics_allow="10.0.0.0/8")))
    r = await client.get("/metrics")
    assert r.status == 403 and "giaoban_http" not in await r.text()
    client = await aiohttp_client(
        create_app(replace(settings, metrics_allow="", metrics_token="s3cret-token"))
    )
    assert (await client.get("/metrics")).status == 403
    wrong = await client.get("/metrics", headers={"Authorization": "Bearer not-it"})
    assert wrong.status == 403
    ok = await client.get("/metrics", headers={"Authorization": "Bearer s3cret-token"})
    assert ok.status == 200 and "giaoban_http_requests_total" in await ok.text()
    # loopback by default, unless the request came through a proxy (its address is the proxy's)
    client = await aiohttp_client(create_app(settings))
    assert (await client.get("/metrics")).status == 200
    for header in ("X-Forwarded-For", "Forwarded"):
        assert (await client.get("/metrics", headers={header: "203.0.113.9"})).status == 403


def test_metrics_networks_are_checked_at_start() -> None:
    with pytest.raises(SettingsError, match="metrics_allow"):
        load_settings(environ={}, metrics_allow="10.0.0.0/8,not-a-network")
    assert load_settings(environ={}, metrics_allow="").metrics_allow == ""


async def test_metrics_show_the_process_figures(world: World) -> None:
    text = await (await world.client.get("/metrics")).text()
    for name in (
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_cpu_seconds_total",
        "giaoban_asyncio_tasks",
        "giaoban_event_loop_lag_seconds",
        "giaoban_event_loop_lag_observed_seconds_count",
    ):
        assert f"\n{name}" in text, name
    tasks = next(line for line in text.splitlines() if line.startswith("giaoban_asyncio_tasks "))
    assert float(tasks.split()[1]) >= 2  # the request's own task and the lag sampler at least


class SampledMetrics(Metrics):
    """Metrics that say when a lag sample arrives."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.samples: list[float] = []
        self.sampled = asyncio.Event()

    def observe_lag(self, seconds: float) -> None:
        super().observe_lag(seconds)
        self.samples.append(seconds)
        self.sampled.set()


async def test_the_lag_sampler_sees_a_blocked_loop() -> None:
    metrics = SampledMetrics()
    async with lag_sampler(metrics, interval=0.01):
        await asyncio.sleep(0)  # the sampler starts its first sleep
        asyncio.get_running_loop().call_soon(time.sleep, 0.05)  # block the loop for 50 ms
        await metrics.sampled.wait()
    assert metrics.samples[0] >= 0.03  # its 10 ms timer ran at least 40 ms late
    assert next(iter(metrics.loop_lag.collect())).samples[0].value == metrics.samples[-1]
    assert not [t for t in asyncio.all_tasks() if t.get_name() == "giaoban-loop-lag"]
