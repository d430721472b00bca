"""The home page: today's meetings and the next ones for the signed-in person."""

from __future__ import annotations

from datetime import datetime, timedelta

from aiohttp import web

from meetings.accounts.permissions import Permission
from meetings.schedule import service
from meetings.schedule.models import OCCURRENCE_STATE_LABELS, OccurrenceState
from web import keys
from web.access import needs
from web.render import render
from web.views.schedule import me

routes = web.RouteTableDef()


@routes.get("/", name="home")
@needs(Permission.SIGNED_IN)
async def home(request: web.Request) -> web.Response:
    """Today's meetings and the next ones the person is invited to."""
    tz = request.app[keys.SETTINGS].tz
    now = datetime.now(tz)
    start_of_day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    person = me(request)
    async with request.app[keys.DB]() as db:
        ids = await service.series_of_person(db, person)
        rows = await service.occurrences_between(
            db, start_of_day, start_of_day + timedelta(days=8), series_ids=ids
        )
    rows = [(o, s) for o, s in rows if o.state != OccurrenceState.CANCELLED]
    today = [(o, s) for o, s in rows if o.start.astimezone(tz).date() == now.date()]
    later = [(o, s) for o, s in rows if o.start.astimezone(tz).date() > now.date()][:6]
    return render(
        request,
        "home.html",
        {
            "today": now.date(),
            "meetings": today,
            "later": later,
            "states": OCCURRENCE_STATE_LABELS,
        },
    )
