"""The site icon at the address browsers ask for by themselves (/favicon.ico)."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from meetings.accounts.permissions import Permission
from web.access import needs

routes = web.RouteTableDef()
ICON = Path(__file__).parent.parent / "static" / "favicon.ico"


@routes.get("/favicon.ico", name="favicon")
@needs(Permission.PUBLIC)
async def favicon(request: web.Request) -> web.StreamResponse:
    """The icon (16, 32 and 48 pixels in one ICO file), cached for a day."""
    return web.FileResponse(
        ICON, headers={"Content-Type": "image/x-icon", "Cache-Control": "public, max-age=86400"}
    )
