"""Mail administration: the outbox with its retry button, and the demo's caught mail."""

from __future__ import annotations

import asyncio

from aiohttp import web

from meetings.accounts.permissions import Permission
from meetings.errors import N_, NotFound
from meetings.mail import catcher, outbox
from meetings.mail.models import OUTBOX_KIND_LABELS, OUTBOX_STATUS_LABELS, OutboxStatus
from web import keys
from web.access import needs
from web.common import actor, see_other
from web.forms import int_param, whole_number
from web.render import render

routes = web.RouteTableDef()
PAGE = 100


@routes.get("/admin/mail", name="mail_outbox")
@needs(Permission.MAIL_ADMIN)
async def mail_outbox(request: web.Request) -> web.Response:
    """The outbox, newest first, optionally one status; counts by status."""
    raw = request.query.get("status", "")
    status = OutboxStatus(raw) if raw in set(OutboxStatus) else None
    raw_page = request.query.get("page", "1")
    page = max(1, whole_number(raw_page, 999_999) or 1)
    async with request.app[keys.DB]() as db:
        found = await outbox.list_messages(db, status, limit=PAGE, offset=(page - 1) * PAGE)
    return render(
        request,
        "admin/mail.html",
        {
            "messages": found.messages,
            "counts": found.counts,
            "total": found.total,
            "status": status.value if status else "",
            "statuses": OUTBOX_STATUS_LABELS,
            "kinds": OUTBOX_KIND_LABELS,
            "page": page,
            "pages": max(1, (found.total + PAGE - 1) // PAGE),
            "done": request.query.get("done", ""),
            "catcher": not request.app[keys.SETTINGS].smtp_host,
        },
    )


@routes.post("/admin/mail/{id}/retry", name="mail_retry")
@needs(Permission.MAIL_ADMIN)
async def mail_retry(request: web.Request) -> web.StreamResponse:
    """Send a failed message again now."""
    message_id = int_param(request)
    async with request.app[keys.DB]() as db:
        await outbox.retry(db, actor(request), message_id)
        await db.commit()
    request.app[keys.OUTBOX].wake()
    raise see_other(request, "mail_outbox", "retried")


@routes.get("/admin/mail/caught", name="mail_caught")
@needs(Permission.MAIL_ADMIN)
async def mail_caught(request: web.Request) -> web.Response:
    """The mail the demo's catcher received, newest first."""
    path = catcher.maildir_path(request.app[keys.SETTINGS].var_dir)
    messages = await asyncio.to_thread(catcher.list_caught, path)
    return render(
        request,
        "admin/mail_caught.html",
        {"messages": messages, "catcher": not request.app[keys.SETTINGS].smtp_host},
    )


@routes.get("/admin/mail/caught/{key}", name="mail_caught_message")
@needs(Permission.MAIL_ADMIN)
async def mail_caught_message(request: web.Request) -> web.Response:
    """One caught message: headers, text, HTML as source, every part."""
    key = request.match_info.get("key", "")
    if not catcher.KEY_RE.match(key):
        raise NotFound(N_("This message does not exist."))
    path = catcher.maildir_path(request.app[keys.SETTINGS].var_dir)
    message = await asyncio.to_thread(catcher.read_caught, path, key)
    return render(request, "admin/mail_message.html", {"m": message})
