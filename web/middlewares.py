"""Middlewares: errors, metrics, language, sign-in, access control and CSRF."""

from __future__ import annotations

import logging
import time
from datetime import timedelta

from aiohttp import web
from aiohttp.typedefs import Handler

from meetings import i18n
from meetings.accounts import service as accounts
from meetings.accounts.permissions import allowed
from meetings.errors import Conflict, DomainError, Forbidden, InvalidInput, NotFound, RateLimited
from meetings.i18n import gettext as _
from web import csrf, keys
from web.access import is_token_authenticated, permission_of
from web.forms import FORM_TYPES, check_address, read_form
from web.render import database_clash, error_response, wants_json

log = logging.getLogger("giaoban.http")

UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}
SESSION_COOKIE = "gb_session"
LANGUAGE_COOKIE = "gb_lang"

DOMAIN_STATUS: list[tuple[type[DomainError], int]] = [
    (NotFound, 404),
    (Forbidden, 403),
    (Conflict, 409),
    (RateLimited, 429),
    (InvalidInput, 422),
]


def route_name(request: web.Request) -> str:
    """A low-cardinality label for the matched route."""
    resource = request.match_info.route.resource
    if resource is None or request.match_info.http_exception is not None:
        return "unmatched"
    return resource.canonical


@web.middleware
async def metrics_and_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Render every error as a clear page or JSON (never a bare 500) and count the request."""
    started = time.perf_counter()
    status = 500
    try:
        try:
            check_address(request)
            response = await handler(request)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            generic = not exc.text or exc.text.startswith(f"{exc.status}:")
            response = error_response(request, exc.status, "" if generic else (exc.text or ""))
        except DomainError as exc:
            code = next((s for cls, s in DOMAIN_STATUS if isinstance(exc, cls)), 400)
            with i18n.language(request.get(keys.LANGUAGE, i18n.DEFAULT_LANGUAGE)):
                message = _(exc.message, **exc.params)
            response = error_response(request, code, message, exc=exc)
        except Exception as exc:
            clash = database_clash(exc)
            if clash is None:
                log.exception("unhandled error", extra={"path": request.path, "method": request.method})
                response = error_response(request, 500)
            else:
                log.warning("database clash: %s", exc.__class__.__name__, extra={"path": request.path})
                with i18n.language(request.get(keys.LANGUAGE, i18n.DEFAULT_LANGUAGE)):
                    response = error_response(request, clash[0], _(clash[1]))
                if clash[0] == 503:
                    response.headers["Retry-After"] = "1"
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        request.app[keys.METRICS].observe(
            route_name(request), request.method, status, time.perf_counter() - started
        )


@web.middleware
async def language(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Pick the language: the person's choice (cookie, then the account), else the default.

    Not Accept-Language: a browser set up in English would otherwise show the city's staff an
    English login page; Vietnamese comes first and the language switch is one click away.
    """
    settings = request.app[keys.SETTINGS]
    chosen = request.cookies.get(LANGUAGE_COOKIE, "")
    lang = chosen if chosen in i18n.LANGUAGES else settings.default_language
    request[keys.LANGUAGE] = lang
    token = i18n.set_language(lang)
    try:
        return await handler(request)
    finally:
        i18n._current.reset(token)


@web.middleware
async def sign_in(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Load the signed-in person from the session cookie, and their language if none chosen."""
    request[keys.PERSON] = None
    token = request.cookies.get(SESSION_COOKIE, "")
    request[keys.SESSION_TOKEN] = token
    if token and not request.path.startswith("/static/"):
        settings = request.app[keys.SETTINGS]
        async with request.app[keys.DB]() as db:
            person = await accounts.person_for_session(
                db, token, lifetime=timedelta(hours=settings.session_hours)
            )
            await db.commit()
        request[keys.PERSON] = person
        if person is not None and LANGUAGE_COOKIE not in request.cookies:
            request[keys.LANGUAGE] = person.language
            i18n.set_language(person.language)
    return await handler(request)


@web.middleware
async def access(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Enforce the permission each route declares."""
    match = request.match_info
    if match.http_exception is not None:
        return await handler(request)
    permission = permission_of(match.handler)
    if permission is None:
        if isinstance(match.route.resource, web.StaticResource):
            return await handler(request)
        raise web.HTTPForbidden(text=_("You may not open this page."))
    person = request[keys.PERSON]
    if allowed(person.role if person else None, permission):
        return await handler(request)
    if person is None:
        if wants_json(request):
            raise web.HTTPUnauthorized(text=_("Please sign in."))
        login = request.app.router["login"].url_for().with_query(next=request.path_qs)
        raise web.HTTPSeeOther(login)
    raise web.HTTPForbidden(text=_("You may not open this page."))


@web.middleware
async def csrf_protect(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse state-changing requests without the browser's CSRF token; keep the seed cookie set."""
    seed = request.cookies.get(csrf.COOKIE, "")
    request[keys.NEW_CSRF_SEED] = not seed
    request[keys.CSRF_SEED] = seed or csrf.new_seed()
    handler_of = request.match_info.handler
    if (
        request.method in UNSAFE
        and permission_of(handler_of) is not None
        and not is_token_authenticated(handler_of)  # no cookie is trusted: nothing to forge
    ):
        secret = request.app[keys.SETTINGS].secret_key
        token = request.headers.get(csrf.HEADER, "")
        if not token and request.content_type in FORM_TYPES:
            token = (await read_form(request)).fields.get(csrf.FIELD, "")
        if not csrf.valid(secret, seed, token):
            raise web.HTTPForbidden(
                text=_("The form has expired or did not come from this site. Reload the page and try again.")
            )
    response = await handler(request)
    if request[keys.NEW_CSRF_SEED] and not response.prepared:
        settings = request.app[keys.SETTINGS]
        response.set_cookie(
            csrf.COOKIE,
            request[keys.CSRF_SEED],
            httponly=True,
            samesite="Lax",
            secure=settings.cookie_secure,
            path="/",
        )
    return response


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Headers that keep pages from being framed or sniffed, and scripts to our own origin."""
    response = await handler(request)
    if not response.prepared:
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
            "connect-src 'self' ws: wss:; media-src 'self' blob:; frame-ancestors 'none'",
        )
    return response
