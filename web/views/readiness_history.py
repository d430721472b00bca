"""Connection history: each unit's record across meetings, and the city's units ranked by trouble."""

from __future__ import annotations

from aiohttp import web

from meetings.accounts.permissions import Permission
from meetings.issues.models import ISSUE_STATUS_LABELS
from meetings.issues.service import code_of
from meetings.readiness import history
from meetings.readiness.models import CHECK_VERDICT_LABELS, CONNECTION_OUTCOME_LABELS
from web import keys
from web.access import needs
from web.common import actor
from web.forms import int_param
from web.render import render

routes = web.RouteTableDef()


def _thresholds(request: web.Request) -> history.Thresholds:
    settings = request.app[keys.SETTINGS]
    return history.Thresholds(
        bad=settings.readiness_followup_bad_meetings, window=settings.readiness_followup_window_meetings
    )


@routes.get("/readiness/history", name="readiness_history")
@needs(Permission.READINESS_READ)
async def overview(request: web.Request) -> web.Response:
    """Every centre and unit with records, most trouble in its last meetings first; searchable."""
    q = history.clean_query(request.query.get("q", ""))
    async with request.app[keys.DB]() as db:
        rows = await history.overview(db, q=q, thresholds=_thresholds(request))
    return render(
        request,
        "readiness/history_overview.html",
        {
            "rows": rows,
            "q": q,
            "thresholds": _thresholds(request),
            "outcomes": CONNECTION_OUTCOME_LABELS,
            "statuses": ISSUE_STATUS_LABELS,
        },
    )


@routes.get("/readiness/history/units/{id}", name="readiness_unit_history")
@needs(Permission.SIGNED_IN)
async def unit_history(request: web.Request) -> web.Response:
    """One unit's connection record: the chart, every meeting's figures, its checks, its follow-ups."""
    unit_id = int_param(request)
    settings = request.app[keys.SETTINGS]
    meetings = history.parse_meetings(request.query.get("meetings", ""), settings.readiness_history_meetings)
    async with request.app[keys.DB]() as db:
        found = await history.unit_history(
            db, actor(request), unit_id, meetings=meetings, thresholds=_thresholds(request), tz=settings.tz
        )
    return render(
        request,
        "readiness/history_unit.html",
        {
            "h": found,
            "meetings": meetings,
            "outcomes": CONNECTION_OUTCOME_LABELS,
            "verdicts": CHECK_VERDICT_LABELS,
            "short": history.SHORT_OUTCOME_LABELS,
            "code_of": code_of,
            "statuses": ISSUE_STATUS_LABELS,
        },
    )
