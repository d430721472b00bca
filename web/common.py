"""What views share: who is asking, redirects to named routes, the scheduling context, the
WebSocket Origin check. Views import from here, never from each other."""

from __future__ import annotations

from urllib.parse import urlsplit

from aiohttp import web

from meetings.accounts import service as accounts
from meetings.accounts.permissions import Actor
from meetings.db.base import utcnow
from meetings.directory.models import Person
from meetings.schedule import service as schedule
from web import keys


def me(request: web.Request) -> Person:
    """The signed-in person."""
    person = request[keys.PERSON]
    if person is None:
        raise web.HTTPUnauthorized()
    return person


def actor(request: web.Request) -> Actor:
    """The signed-in person as the domain sees them."""
    return accounts.actor_of(me(request))


def see_other(request: web.Request, name: str, done: str = "", **parts: str) -> web.HTTPSeeOther:
    """A redirect to a named route, with a ?done= note for the confirmation message."""
    url = request.app.router[name].url_for(**parts)
    return web.HTTPSeeOther(url.with_query(done=done) if done else url)


def schedule_context(request: web.Request) -> schedule.Context:
    """The scheduling context of the running service."""
    s = request.app[keys.SETTINGS]
    return schedule.Context(
        base_url=s.base_url,
        secret=s.secret_key,
        organizer_email=s.mail_from,
        organizer_name=s.organizer_name,
        horizon_days=s.schedule_horizon_days,
        now=utcnow(),
    )


def origin_allowed(request: web.Request) -> bool:
    """Same origin as the request, or the configured public URL (refuses cross-site sockets)."""
    origin = request.headers.get("Origin", "")
    if not origin:
        return False
    parsed = urlsplit(origin)
    same = f"{parsed.scheme}://{parsed.netloc}"
    public = urlsplit(request.app[keys.SETTINGS].base_url)
    return same in {f"{request.scheme}://{request.host}", f"{public.scheme}://{public.netloc}"}
