"""Personal links from the invitation: join a meeting, answer, subscribe to the calendar."""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

from aiohttp import web
from sqlalchemy import select

from meetings.accounts.permissions import Permission
from meetings.db.base import utcnow
from meetings.directory.models import Person, Unit
from meetings.errors import Conflict
from meetings.schedule import feed, service
from meetings.schedule.links import join_link_holder, read_answer_token
from meetings.schedule.models import OCCURRENCE_STATE_LABELS, Occurrence, OccurrenceState
from web import keys
from web.access import needs
from web.common import me, schedule_context
from web.render import render

routes = web.RouteTableDef()


@routes.get("/join/{token}", name="join")
@needs(Permission.PUBLIC)
async def join(request: web.Request) -> web.Response:
    """The meeting a personal join link leads to: the current or next one of its series."""
    secret = request.app[keys.SETTINGS].secret_key
    now = utcnow()
    async with request.app[keys.DB]() as db:
        link, person = await join_link_holder(db, secret, request.match_info["token"])
        series = await service.get_series(db, link.series_id)
        unit = await db.get(Unit, person.unit_id) if person.unit_id else None
        if link.occurrence_id is not None:
            occ = await db.get(Occurrence, link.occurrence_id)
        else:
            occ = await db.scalar(
                select(Occurrence)
                .where(
                    Occurrence.series_id == series.id,
                    Occurrence.end >= now - timedelta(minutes=30),
                    Occurrence.state != OccurrenceState.CANCELLED,
                )
                .order_by(Occurrence.start)
                .limit(1)
            )
    room_url = ""
    if occ is not None and occ.state not in {OccurrenceState.CANCELLED, OccurrenceState.ENDED}:
        room = request.app.router["room"].url_for(id=str(occ.id))
        room_url = str(room.with_query(token=request.match_info["token"]))
    return render(
        request,
        "schedule/join.html",
        {
            "room_url": room_url,
            "series": series,
            "guest": person,
            "unit": unit,
            "occ": occ,
            "zone": ZoneInfo(series.timezone),
            "states": OCCURRENCE_STATE_LABELS,
            "now": now,
        },
    )


@routes.get("/answer/{token}", name="answer")
@needs(Permission.PUBLIC)
async def answer_confirm(request: web.Request) -> web.Response:
    """Ask to confirm an answer: a mail scanner that follows the link must not answer for you."""
    secret = request.app[keys.SETTINGS].secret_key
    link = read_answer_token(secret, request.match_info["token"])
    async with request.app[keys.DB]() as db:
        series = await service.get_series(db, link.series_id)
        person = await db.get(Person, link.person_id)
    return render(
        request,
        "schedule/answer.html",
        {
            "series": series,
            "guest": person,
            "answer": link.answer,
            "token": request.match_info["token"],
            "recorded": False,
        },
    )


@routes.post("/answer/{token}", name="answer_submit")
@needs(Permission.PUBLIC)
async def answer_submit(request: web.Request) -> web.Response:
    """Record the answer; the same link used twice is refused with a clear message."""
    secret = request.app[keys.SETTINGS].secret_key
    link = read_answer_token(secret, request.match_info["token"])
    async with request.app[keys.DB]() as db:
        try:
            await service.record_answer(db, link)
            await db.commit()
        except Conflict:
            await db.rollback()
            raise
        series = await service.get_series(db, link.series_id)
        person = await db.get(Person, link.person_id)
    return render(
        request,
        "schedule/answer.html",
        {
            "series": series,
            "guest": person,
            "answer": link.answer,
            "token": "",
            "recorded": True,
        },
    )


@routes.get("/calendar/{token}.ics", name="feed")
@needs(Permission.PUBLIC)
async def calendar_feed(request: web.Request) -> web.Response:
    """A person's secret calendar feed (no METHOD, no attendee list)."""
    secret = request.app[keys.SETTINGS].secret_key
    async with request.app[keys.DB]() as db:
        person = await feed.person_for_token(db, secret, request.match_info["token"])
        body = await feed.feed_for(db, person, schedule_context(request))
    return web.Response(
        body=body,
        headers={
            "Content-Type": "text/calendar; charset=utf-8",
            "Content-Disposition": 'inline; filename="giaoban.ics"',
            "Cache-Control": "private, max-age=300",
        },
    )


@routes.post("/profile/feed", name="feed_renew")
@needs(Permission.SIGNED_IN)
async def feed_renew(request: web.Request) -> web.StreamResponse:
    """Make a new calendar feed address; the old one stops working."""
    secret = request.app[keys.SETTINGS].secret_key
    async with request.app[keys.DB]() as db:
        await feed.renew_token(db, secret, me(request).id)
        await db.commit()
    raise web.HTTPSeeOther(request.app.router["profile"].url_for().with_query(done="feed"))


@routes.post("/profile/feed/revoke", name="feed_revoke")
@needs(Permission.SIGNED_IN)
async def feed_revoke(request: web.Request) -> web.StreamResponse:
    """Stop the calendar feed address from working."""
    async with request.app[keys.DB]() as db:
        await feed.revoke_token(db, me(request).id)
        await db.commit()
    raise web.HTTPSeeOther(request.app.router["profile"].url_for().with_query(done="feed_revoked"))
