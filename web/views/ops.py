"""Operations: health check and Prometheus metrics."""

from __future__ import annotations

import logging

from aiohttp import web
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from meetings.accounts.permissions import Permission
from meetings.i18n import gettext as _
from web import keys
from web.access import needs
from web.metrics import may_scrape

routes = web.RouteTableDef()
log = logging.getLogger("giaoban.health")


@routes.get("/healthz", name="healthz")
@needs(Permission.PUBLIC)
async def healthz(request: web.Request) -> web.Response:
    """200 when the database answers, 503 otherwise."""
    try:
        async with request.app[keys.DB]() as db:
            await db.execute(text("SELECT 1"))
    except (SQLAlchemyError, OSError) as exc:
        log.warning("health check failed: %s", exc)
        return web.json_response({"status": "unavailable", "database": "unreachable"}, status=503)
    return web.json_response({"status": "ok", "database": "ok"})


@routes.get("/metrics", name="metrics")
@needs(Permission.PUBLIC)
async def metrics(request: web.Request) -> web.Response:
    """Request counts, latencies and process figures in the Prometheus text format, for allowed scrapers."""
    if not may_scrape(request.app[keys.SETTINGS], request.remote, request.headers):
        raise web.HTTPForbidden(
            text=_("Metrics are only shown to an allowed network or with the metrics token.")
        )
    body = request.app[keys.METRICS].exposition()
    return web.Response(body=body, headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})
