"""The node's connection-check probes (meetings.rtc.probe) for the app's lifetime."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from meetings.readiness.checks import ProbeLimiter
from meetings.rtc.probe import ProbeConfig, ProbeServer
from meetings.settings import media_addresses
from web import keys


async def probe_ctx(app: web.Application) -> AsyncIterator[None]:
    """Probes on the media server's addresses and ICE servers; all closed on shutdown."""
    settings = app[keys.SETTINGS]
    stun = tuple(u.strip() for u in settings.stun_urls.split(",") if u.strip())
    probes = ProbeServer(
        ProbeConfig(
            max_probes=settings.check_max_probes,
            max_bytes=settings.check_probe_max_bytes,
            ice_servers=stun,
            media_addresses=media_addresses(settings),
            announced_address=settings.media_announced_address,
        )
    )
    app[keys.PROBES] = probes
    app[keys.PROBE_LIMITER] = ProbeLimiter(settings.check_probes_per_minute)
    yield
    await probes.close()
