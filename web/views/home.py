"""The home page by role: today's meetings for everyone; the register, the figures, the manual by role.

The chair and the secretary (and observers, administrators: whoever reads the whole register)
see open issues by age and the centres' figures; a centre sees its own issues, its report for
today and the manual; a support team sees the issues it owns.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from aiohttp import web

from meetings.accounts.permissions import Actor, Permission
from meetings.accounts.service import actor_of
from meetings.directory.models import Unit, UnitKind
from meetings.figures import service as figures
from meetings.issues import service as issues
from meetings.issues.models import ISSUE_STATUS_LABELS
from meetings.readiness import board as readiness_board
from meetings.readiness.board import BoardRules
from meetings.schedule import service
from meetings.schedule.models import OCCURRENCE_STATE_LABELS, OccurrenceState
from web import keys
from web.access import needs
from web.common import me
from web.render import render

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
        by_role = await role_panels(db, actor_of(person), now.date())
        boards = (
            await readiness_board.open_boards(db, BoardRules.from_settings(request.app[keys.SETTINGS]), now)
            if actor_of(person).can(Permission.READINESS_READ)
            else []
        )
        await db.commit()  # register rows given to new minutes entries
    rows = [(o, s) for o, s in rows if o.state != OccurrenceState.CANCELLED]
    today = [(o, s) for o, s in rows if o.start.astimezone(tz).date() == now.date()]
    later = [(o, s) for o, s in rows if o.start.astimezone(tz).date() > now.date()][:6]
    # Rooms open now (the same window as meetings.rooms.room.Room.is_open): a button to go in.
    settings = request.app[keys.SETTINGS]
    opens = timedelta(minutes=settings.room_open_minutes)
    grace = timedelta(minutes=settings.room_grace_minutes)
    open_rooms = [
        (o, s) for o, s in rows if o.state != OccurrenceState.ENDED and o.start - opens <= now < o.end + grace
    ]
    return render(
        request,
        "home.html",
        {
            "today": now.date(),
            "meetings": today,
            "later": later,
            "open_rooms": open_rooms,
            "states": OCCURRENCE_STATE_LABELS,
            "issue_statuses": ISSUE_STATUS_LABELS,
            "readiness_boards": boards,
            **by_role,
        },
    )


async def role_panels(db: Any, who: Actor, today: date) -> dict[str, Any]:
    """What the person's role adds to the home page (empty panels are left out by the template)."""
    panels: dict[str, Any] = {
        "glance": None,
        "board": None,
        "unit_issues": [],
        "owned_issues": [],
        "centre": None,
        "report": None,
        "owner_unit": None,
    }
    unit = await db.get(Unit, who.unit_id) if who.unit_id else None
    if who.can(Permission.ISSUES_READ_ALL):
        panels["glance"] = await issues.at_a_glance(db, who)
    if who.can(Permission.FIGURES_READ):
        panels["board"] = await figures.dashboard_for(db, today, weeks=1)
    if unit is not None and unit.kind == UnitKind.CENTRE:
        panels["centre"] = unit
        panels["unit_issues"] = await issues.list_issues(
            db, who, issues.Filters(unit=unit.code, status="live")
        )
        panels["report"] = await figures.report_for(db, unit.id, today)
    elif unit is not None:
        panels["owner_unit"] = unit
        panels["owned_issues"] = await issues.list_issues(
            db, who, issues.Filters(owner=unit.code, status="live")
        )
    return panels
