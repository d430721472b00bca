"""Health, metrics, error pages: clear answers and never a 500."""

from __future__ import annotations

import io
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp.test_utils import TestClient

from meetings.directory.models import Role
from meetings.settings import load_settings
from tests.conftest import SECRET, World
from web.app import create_app


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
