"""The home page: today's meetings (an empty state until scheduling exists)."""

from __future__ import annotations

from datetime import datetime

from aiohttp import web

from meetings.accounts.permissions import Permission
from web import keys
from web.access import needs
from web.render import render

routes = web.RouteTableDef()


@routes.get("/", name="home")
@needs(Permission.SIGNED_IN)
async def home(request: web.Request) -> web.Response:
    """Today's meetings for the signed-in person."""
    today = datetime.now(request.app[keys.SETTINGS].tz).date()
    return render(request, "home.html", {"today": today, "meetings": []})
