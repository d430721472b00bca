"""The readiness board of a meeting: the page (HTML, or JSON when asked), its actions (forms or
JSON) and its live socket. The domain is meetings.readiness.board; the push, web/board_live.py."""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import WSMsgType, web

from meetings import i18n
from meetings.accounts.permissions import Permission
from meetings.db.base import utcnow
from meetings.errors import N_, FieldError, InvalidInput
from meetings.readiness import board as readiness
from meetings.readiness.board import STATUS_LABELS, BoardRules, UnitStatus, board_json
from meetings.readiness.models import CHECK_VERDICT_LABELS
from meetings.wire import CloseCode
from web import keys
from web.access import needs
from web.board_live import Watcher, live_connected, refresh_board
from web.common import actor, origin_allowed, schedule_context
from web.forms import form_fields, int_param, json_object, whole_number
from web.render import render, script_json

routes = web.RouteTableDef()
log = logging.getLogger("giaoban.readiness")

MAX_WS_MESSAGE = 4096  # the board's socket only listens; a client sends nothing but pings

# Every text the board's JavaScript shows, by key; rendered translated into the page.
PAGE_TEXTS = {
    "connected": N_("In the meeting"),
    "call": N_("Call"),
    "no_phone": N_("No phone in the directory"),
    "operator": N_("Connected by"),
    "check_at": N_("Checked at %(time)s by %(person)s"),
    "no_check": N_("No connection check in the last %(hours)s hours"),
    "rtt": N_("round trip"),
    "loss": N_("loss"),
    "up": N_("up"),
    "down": N_("down"),
    "excused_by": N_("Excused by %(person)s: %(reason)s"),
    "helped_by": N_("%(person)s is helping"),
    "live": N_("Live"),
    "offline": N_("Connection lost, reconnecting…"),
    "failed": N_("The action failed."),
}


def _rules(request: web.Request) -> BoardRules:
    return BoardRules.from_settings(request.app[keys.SETTINGS])


def _wants_json(request: web.Request) -> bool:
    accept = request.headers.get("Accept", "")
    return request.content_type == "application/json" or (
        "application/json" in accept and "text/html" not in accept
    )


async def _fields(request: web.Request, *names: str) -> dict[str, str]:
    """Named fields of a posted form or JSON object ('' when absent; a number is taken as text)."""
    if request.content_type != "application/json":
        return await form_fields(request, *names)
    data = await json_object(request)
    values: dict[str, str] = {}
    for name in names:
        value = data.get(name)
        if isinstance(value, bool) or not isinstance(value, str | int | None):
            raise InvalidInput([FieldError(name, N_("This field must be text."))])
        values[name] = "" if value is None else str(value)
    return values


@routes.get("/meetings/occurrences/{id}/readiness", name="readiness_board")
@needs(Permission.READINESS_READ)
async def board_page(request: web.Request) -> web.Response:
    """The board: counts, then one row per invited unit, problems first (JSON when asked)."""
    occurrence_id = int_param(request)
    async with request.app[keys.DB]() as db:
        board = await readiness.load_board(
            db,
            actor(request),
            occurrence_id,
            rules=_rules(request),
            now=utcnow(),
            connected=live_connected(request.app, occurrence_id),
        )
        helpers = await readiness.helpers(db) if actor(request).can(Permission.READINESS_MANAGE) else []
    if _wants_json(request):
        return web.json_response(board_json(board))
    check_hours = _rules(request).check_hours
    texts = {k: i18n.gettext(v) for k, v in PAGE_TEXTS.items()}
    page = {
        "texts": {**texts, "no_check": i18n.gettext(PAGE_TEXTS["no_check"], hours=check_hours)},
        "statuses": {s.value: i18n.gettext(label) for s, label in STATUS_LABELS.items()},
        "verdicts": {v.value: i18n.gettext(label) for v, label in CHECK_VERDICT_LABELS.items()},
        "language": request.get(keys.LANGUAGE, i18n.DEFAULT_LANGUAGE),
        "timezone": request.app[keys.SETTINGS].timezone,
    }
    return render(
        request,
        "readiness/board.html",
        {
            "board": board,
            "statuses": STATUS_LABELS,
            "status_order": list(UnitStatus),
            "verdicts": CHECK_VERDICT_LABELS,
            "helpers": helpers,
            "texts": texts,
            "texts_json": script_json(page),
            "check_hours": check_hours,
            "done": request.query.get("done", ""),
        },
    )


async def _answer(request: web.Request, occurrence_id: int, done: str, **extra: Any) -> web.StreamResponse:
    """After an action (committed): the board's watchers are told, then the actor gets the board
    (JSON) or is sent back to it (a form)."""
    await refresh_board(request.app, occurrence_id)
    if _wants_json(request):
        async with request.app[keys.DB]() as db:
            board = await readiness.load_board(
                db,
                actor(request),
                occurrence_id,
                rules=_rules(request),
                now=utcnow(),
                connected=live_connected(request.app, occurrence_id),
            )
        return web.json_response({"done": done, **extra, "board": board_json(board)})
    url = request.app.router["readiness_board"].url_for(id=str(occurrence_id))
    raise web.HTTPSeeOther(url.with_query(done=done))


@routes.post("/meetings/occurrences/{id}/readiness/units/{unit}/resend", name="readiness_resend")
@needs(Permission.READINESS_MANAGE)
async def resend(request: web.Request) -> web.StreamResponse:
    """Send the unit's invitees their personal link to this meeting again (by the outbox)."""
    occurrence_id, unit_id = int_param(request), int_param(request, "unit")
    await _fields(request)  # the CSRF check has read it; nothing else is asked
    async with request.app[keys.DB]() as db:
        queued = await readiness.resend_link(
            db, actor(request), occurrence_id, unit_id, schedule_context(request), rules=_rules(request)
        )
        await db.commit()
    outbox = request.app.get(keys.OUTBOX)
    if outbox is not None and queued:
        outbox.wake()
    return await _answer(request, occurrence_id, "resent", queued=queued)


@routes.post("/meetings/occurrences/{id}/readiness/units/{unit}/excuse", name="readiness_excuse")
@needs(Permission.READINESS_MANAGE)
async def excuse(request: web.Request) -> web.StreamResponse:
    """Mark the unit absent with a reason."""
    occurrence_id, unit_id = int_param(request), int_param(request, "unit")
    fields = await _fields(request, "reason")
    async with request.app[keys.DB]() as db:
        await readiness.excuse(
            db, actor(request), occurrence_id, unit_id, fields["reason"], rules=_rules(request), now=utcnow()
        )
        await db.commit()
    return await _answer(request, occurrence_id, "excused")


@routes.post("/meetings/occurrences/{id}/readiness/units/{unit}/unexcuse", name="readiness_unexcuse")
@needs(Permission.READINESS_MANAGE)
async def unexcuse(request: web.Request) -> web.StreamResponse:
    """Take the unit's excuse back."""
    occurrence_id, unit_id = int_param(request), int_param(request, "unit")
    await _fields(request)
    async with request.app[keys.DB]() as db:
        await readiness.unexcuse(
            db, actor(request), occurrence_id, unit_id, rules=_rules(request), now=utcnow()
        )
        await db.commit()
    return await _answer(request, occurrence_id, "unexcused")


@routes.post("/meetings/occurrences/{id}/readiness/units/{unit}/help", name="readiness_help")
@needs(Permission.READINESS_MANAGE)
async def help_unit(request: web.Request) -> web.StreamResponse:
    """Note "đang hỗ trợ": who helps the unit (the acting person when none is chosen) and a note."""
    occurrence_id, unit_id = int_param(request), int_param(request, "unit")
    fields = await _fields(request, "helper_id", "note")
    helper_id: int | None = None
    if fields["helper_id"].strip():
        helper_id = whole_number(fields["helper_id"].strip())
        if helper_id is None:
            raise InvalidInput.one(FieldError("helper_id", N_("This person does not exist.")))
    async with request.app[keys.DB]() as db:
        await readiness.start_helping(
            db,
            actor(request),
            occurrence_id,
            unit_id,
            fields["note"],
            helper_id=helper_id,
            rules=_rules(request),
            now=utcnow(),
        )
        await db.commit()
    return await _answer(request, occurrence_id, "helping")


@routes.post("/meetings/occurrences/{id}/readiness/units/{unit}/unhelp", name="readiness_unhelp")
@needs(Permission.READINESS_MANAGE)
async def unhelp(request: web.Request) -> web.StreamResponse:
    """The unit no longer needs help."""
    occurrence_id, unit_id = int_param(request), int_param(request, "unit")
    await _fields(request)
    async with request.app[keys.DB]() as db:
        await readiness.stop_helping(
            db, actor(request), occurrence_id, unit_id, rules=_rules(request), now=utcnow()
        )
        await db.commit()
    return await _answer(request, occurrence_id, "unhelped")


@routes.get("/meetings/occurrences/{id}/readiness/ws", name="readiness_board_ws")
@needs(Permission.READINESS_READ)  # checked before the upgrade: a member gets 403, never a socket
async def board_ws(request: web.Request) -> web.StreamResponse:
    """The live board: the whole board first, then again whenever it changes (docs/readiness/board.md)."""
    ws = web.WebSocketResponse(heartbeat=30.0, max_msg_size=MAX_WS_MESSAGE, compress=False)
    if not ws.can_prepare(request).ok:
        raise web.HTTPBadRequest(text="this address is a WebSocket")
    if not origin_allowed(request):
        raise web.HTTPForbidden(text="cross-origin WebSocket refused")
    occurrence_id = int_param(request)
    async with request.app[keys.DB]() as db:
        # Not found, not allowed, closed: a clear 4xx before the upgrade.
        await readiness.load_board(db, actor(request), occurrence_id, rules=_rules(request), now=utcnow())
    language = request.get(keys.LANGUAGE, i18n.DEFAULT_LANGUAGE)
    await ws.prepare(request)
    watcher = Watcher(ws, occurrence_id, language, request.transport)
    hub = request.app[keys.BOARD_HUB]
    watcher.out.start()
    hub.add(watcher)
    await refresh_board(request.app, occurrence_id, newcomer=watcher)  # its first board
    try:
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                watcher.out.end(CloseCode.BAD_MESSAGE, N_("This socket only sends the board."))
                break
            # Text (a keep-alive from the page) needs no answer: the board comes when it changes.
    finally:
        hub.remove(watcher)
        watcher.close()
        await watcher.out.wait()
    return ws
