"""Live connection monitoring of one meeting for the support team: page, JSON and WebSocket.

The figures come from this node's connection tracker (meetings.live.monitoring); the socket
sends `state` after every sample and `alert` when a unit drops out or stays on audio only
(docs/readiness/monitor.md).
"""

from __future__ import annotations

from typing import Any

from aiohttp import WSMsgType, web

from meetings import i18n
from meetings.accounts.permissions import Permission
from meetings.db.base import utcnow
from meetings.readiness.monitor import ALERT_LABELS, AlertKind, MonitorState
from meetings.schedule import service
from meetings.schedule.models import OCCURRENCE_STATE_LABELS
from meetings.wire import CloseCode, encode
from web import keys
from web.access import needs
from web.common import origin_allowed
from web.forms import int_param
from web.render import render, script_json
from web.socket_writer import SocketWriter

routes = web.RouteTableDef()
SEND_QUEUE = 50  # messages; each `state` replaces the last, so a watcher this far behind reloads


class MonitorWatcher:
    """One monitoring page's socket (meetings.live.monitoring.Watcher)."""

    def __init__(self, ws: web.WebSocketResponse, occurrence_id: int, language: str, transport: Any) -> None:
        self.out = SocketWriter(
            ws, limit=SEND_QUEUE, language=language, name=f"monitor-ws-{occurrence_id}", transport=transport
        )

    def post(self, text: str) -> None:
        self.out.post(text)

    def close(self) -> None:
        self.out.end(CloseCode.GOING_AWAY, "")


def _strings() -> dict[str, str]:
    """The page's words for what the script writes (alerts, statuses), in the request's language."""
    minutes = "%(minutes)s"
    return {
        "dropped": i18n.gettext(ALERT_LABELS[AlertKind.DROPPED], unit="%(unit)s"),
        "audio_only": i18n.gettext(ALERT_LABELS[AlertKind.AUDIO_ONLY], unit="%(unit)s", minutes=minutes),
        "status_connected": i18n.gettext("Connected"),
        "status_dropped": i18n.gettext("Dropped out"),
        "status_waiting": i18n.gettext("Not joined yet"),
        "status_excused": i18n.gettext("Excused"),
        "status_attended": i18n.gettext("Took part"),
        "status_absent": i18n.gettext("Absent"),
        "audio_only_label": i18n.gettext("audio only"),
        "paused": i18n.gettext("video paused"),
        "below": i18n.gettext("below the quality asked for"),
        "claim_differs": i18n.gettext("the client's own figures differ"),
        "no_unit": i18n.gettext("No unit"),
        "nobody": i18n.gettext("Nobody connected."),
        "reconnects": i18n.gettext("Reconnects"),
        "loss": i18n.gettext("loss"),
        "rtt": i18n.gettext("round trip"),
        "dropouts": i18n.gettext("Drop-outs"),
        "live": i18n.gettext("Live"),
        "offline": i18n.gettext("Reconnecting…"),
    }


async def _state(request: web.Request, occurrence_id: int) -> MonitorState:
    return await request.app[keys.MONITOR].state(occurrence_id, utcnow())


@routes.get("/meetings/occurrences/{id}/monitor", name="readiness_monitor")
@needs(Permission.READINESS_READ)
async def monitor_page(request: web.Request) -> web.Response:
    """Every participant's link during one meeting, grouped per unit, with the alerts."""
    occurrence_id = int_param(request)
    async with request.app[keys.DB]() as db:
        occ = await service.get_occurrence(db, occurrence_id)
        series = await service.get_series(db, occ.series_id)
    state = await _state(request, occurrence_id)
    minutes = round(request.app[keys.SETTINGS].monitor_alert_seconds / 60, 1)
    return render(
        request,
        "readiness/monitor.html",
        {
            "occ": occ,
            "series": series,
            "states": OCCURRENCE_STATE_LABELS,
            "state": state,
            "alert_minutes": i18n.fmt_number(minutes),
            "strings_json": script_json({**_strings(), "minutes": i18n.fmt_number(minutes)}),
            "state_json": script_json(state.as_dict()),
            "socket_url": str(request.app.router["readiness_monitor_ws"].url_for(id=str(occurrence_id))),
        },
    )


@routes.get("/api/occurrences/{id}/monitor", name="api_readiness_monitor")
@needs(Permission.READINESS_READ)
async def monitor_api(request: web.Request) -> web.Response:
    """The monitoring page's figures as JSON (the socket's `state`)."""
    occurrence_id = int_param(request)
    async with request.app[keys.DB]() as db:
        await service.get_occurrence(db, occurrence_id)
    state = await _state(request, occurrence_id)
    return web.json_response(state.as_dict())


@routes.get("/meetings/occurrences/{id}/monitor/ws", name="readiness_monitor_ws")
@needs(Permission.READINESS_READ)  # the role is checked before the upgrade
async def monitor_ws(request: web.Request) -> web.StreamResponse:
    """Live updates of the monitoring page: `state` after every sample, `alert` at once."""
    ws = web.WebSocketResponse(heartbeat=30.0, max_msg_size=4096, compress=False)
    if not ws.can_prepare(request).ok:
        raise web.HTTPBadRequest(text="this address is a WebSocket")
    if not origin_allowed(request):
        raise web.HTTPForbidden(text="cross-origin WebSocket refused")
    occurrence_id = int_param(request)
    async with request.app[keys.DB]() as db:
        await service.get_occurrence(db, occurrence_id)
    tracker = request.app[keys.MONITOR]
    language = request.get(keys.LANGUAGE, i18n.DEFAULT_LANGUAGE)
    await ws.prepare(request)
    watcher = MonitorWatcher(ws, occurrence_id, language, request.transport)
    watcher.out.start()
    watcher.post(encode(await _state(request, occurrence_id)))
    tracker.watch(occurrence_id, watcher)
    try:
        async for msg in ws:  # the page only listens; anything it sends is ignored
            if msg.type in {WSMsgType.CLOSE, WSMsgType.ERROR}:
                break
    finally:
        tracker.unwatch(occurrence_id, watcher)
        watcher.out.end(CloseCode.NORMAL, "")
        await watcher.out.wait()
    return ws
