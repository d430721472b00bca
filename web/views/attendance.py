"""Attendance of one meeting per unit: on time, late, absent; as a page and as JSON."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import web

from meetings.accounts.permissions import Permission
from meetings.db.base import utcnow
from meetings.rooms import attendance
from meetings.rooms.attendance import Presence, UnitAttendance
from meetings.schedule import service
from meetings.schedule.models import OCCURRENCE_STATE_LABELS, Occurrence, Series
from web import keys
from web.access import needs
from web.common import me
from web.forms import int_param
from web.render import jsonable, render

routes = web.RouteTableDef()


async def _load(request: web.Request) -> tuple[Occurrence, Series, list[UnitAttendance]]:
    """The occurrence and its attendance by unit, for its invitees and for organisers."""
    person = me(request)
    async with request.app[keys.DB]() as db:
        occ = await service.get_occurrence(db, int_param(request))
        series = await service.get_series(db, occ.series_id)
        await service.check_read(db, person, series)
        units = await attendance.by_unit(db, occ.id)
    return occ, series, units


def _presence(p: Presence, now: datetime) -> dict[str, Any]:
    a = p.attendance
    seconds = a.total_seconds
    if a.connected:  # still in the meeting: count the current connection so far
        seconds += max(0, int((now - a.last_joined_at).total_seconds()))
    return {
        "person_id": p.person.id,
        "name": p.person.name,
        "joined_at": a.first_joined_at,
        "last_joined_at": a.last_joined_at,
        "last_left_at": a.last_left_at,
        "connected": a.connected,
        "seconds_present": seconds,
        "connections": a.connections,
        "rtt_ms": a.rtt_ms,
        "loss_pct": a.loss_pct,
        "bitrate_kbps": a.bitrate_kbps,
    }


def attendance_data(
    occ: Occurrence, series: Series, units: list[UnitAttendance], now: datetime
) -> dict[str, Any]:
    """What the page shows and the API returns (datetimes as objects; `jsonable` turns them to text)."""
    groups: list[dict[str, Any]] = [
        {
            "unit": (
                {"id": g.unit.id, "code": g.unit.code, "name": g.unit.name, "kind": g.unit.kind.value}
                if g.unit is not None
                else None
            ),
            "present": [_presence(p, now) for p in g.present],
            "late": [_presence(p, now) for p in g.late],
            "absent": [{"person_id": p.id, "name": p.name} for p in g.absent],
        }
        for g in units
    ]
    return {
        "occurrence": {
            "id": occ.id,
            "series_id": series.id,
            "title": series.title,
            "start": occ.start,
            "end": occ.end,
            "state": occ.state.value,
        },
        "units": groups,
        "totals": {kind: sum(len(g[kind]) for g in groups) for kind in ("present", "late", "absent")},
    }


@routes.get("/meetings/occurrences/{id}/attendance", name="attendance")
@needs(Permission.MEETINGS_READ)
async def attendance_page(request: web.Request) -> web.Response:
    """Who came to one meeting, unit by unit."""
    occ, series, units = await _load(request)
    return render(
        request,
        "schedule/attendance.html",
        {
            "occ": occ,
            "series": series,
            "data": attendance_data(occ, series, units, utcnow()),
            "states": OCCURRENCE_STATE_LABELS,
        },
    )


@routes.get("/api/occurrences/{id}/attendance", name="api_attendance")
@needs(Permission.MEETINGS_READ)
async def attendance_api(request: web.Request) -> web.Response:
    """The attendance page's data as JSON."""
    occ, series, units = await _load(request)
    return web.json_response(jsonable(attendance_data(occ, series, units, utcnow())))
