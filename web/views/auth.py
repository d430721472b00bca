"""Signing in and out, the profile page, password change and language choice."""

from __future__ import annotations

from datetime import timedelta

from aiohttp import web
from yarl import URL

from meetings import i18n
from meetings.accounts import service as accounts
from meetings.accounts.permissions import Permission
from meetings.directory.models import Person
from meetings.directory.service import get_person
from meetings.errors import InvalidInput, RateLimited
from meetings.i18n import gettext as _
from meetings.schedule import feed
from meetings.settings import Settings
from web import keys
from web.access import needs
from web.forms import form_fields
from web.middlewares import LANGUAGE_COOKIE, SESSION_COOKIE
from web.render import field_errors, render

routes = web.RouteTableDef()


def safe_next(target: str) -> str:
    """Only a local path may follow a login (no open redirect)."""
    url = URL(target)
    if not target.startswith("/") or target.startswith("//") or url.host or url.scheme:
        return "/"
    return target


def set_session_cookie(response: web.StreamResponse, token: str, settings: Settings) -> None:
    """The login session cookie: HttpOnly, SameSite=Lax, Secure behind HTTPS."""
    response.set_cookie(
        SESSION_COOKIE,
        token,
        httponly=True,
        samesite="Lax",
        secure=settings.cookie_secure,
        path="/",
        max_age=settings.session_hours * 3600,
    )


def signed_in(request: web.Request) -> Person:
    """The signed-in person (routes that need a permission always have one)."""
    person = request[keys.PERSON]
    if person is None:
        raise web.HTTPUnauthorized(text=_("Please sign in."))
    return person


@routes.get("/login", name="login")
@needs(Permission.PUBLIC)
async def login_form(request: web.Request) -> web.Response:
    """The sign-in form."""
    return render(
        request,
        "login.html",
        {"email": "", "errors": {}, "next": safe_next(request.query.get("next", "/"))},
    )


@routes.post("/login", name="login_submit")
@needs(Permission.PUBLIC)
async def login(request: web.Request) -> web.StreamResponse:
    """Check email and password, open a session, go on to the page asked for."""
    settings = request.app[keys.SETTINGS]
    fields = await form_fields(request, "email", "password", "next")
    target = safe_next(fields["next"] or "/")
    client = request.remote or "unknown"
    async with request.app[keys.DB]() as db:
        try:
            person = await accounts.authenticate(
                db,
                email=fields["email"],
                password=fields["password"],
                client=client,
                max_failures=settings.login_max_failures,
                window=timedelta(minutes=settings.login_window_minutes),
            )
        except (InvalidInput, RateLimited) as exc:
            status = 429 if isinstance(exc, RateLimited) else 401
            message = _(exc.message, **exc.params)
            return render(
                request,
                "login.html",
                {"email": fields["email"], "errors": {"password": [message]}, "next": target},
                status=status,
            )
        token = await accounts.open_session(
            db,
            person,
            lifetime=timedelta(hours=settings.session_hours),
            user_agent=request.headers.get("User-Agent", ""),
        )
        await db.commit()
    response = web.HTTPSeeOther(target)
    set_session_cookie(response, token, settings)
    raise response


@routes.post("/logout", name="logout")
@needs(Permission.PUBLIC)
async def logout(request: web.Request) -> web.StreamResponse:
    """End the session."""
    token = request[keys.SESSION_TOKEN]
    if token:
        async with request.app[keys.DB]() as db:
            await accounts.close_session(db, token)
            await db.commit()
    response = web.HTTPSeeOther(request.app.router["login"].url_for())
    response.del_cookie(SESSION_COOKIE, path="/")
    raise response


@routes.get("/profile", name="profile")
@needs(Permission.SIGNED_IN)
async def profile(request: web.Request) -> web.Response:
    """The signed-in person's details and the password form."""
    return await _profile(request, {}, request.query.get("done", ""))


async def _profile(
    request: web.Request, errors: dict[str, list[str]], done: str, status: int = 200
) -> web.Response:
    settings = request.app[keys.SETTINGS]
    async with request.app[keys.DB]() as db:
        person = await get_person(db, signed_in(request).id)
        token = await feed.current_token(db, settings.secret_key, person.id)
    feed_url = f"{settings.base_url}/calendar/{token}.ics" if token else ""
    return render(
        request,
        "profile.html",
        {"me": person, "errors": errors, "done": done, "feed_url": feed_url},
        status=status,
    )


@routes.post("/profile/password", name="password_change")
@needs(Permission.SIGNED_IN)
async def password_change(request: web.Request) -> web.StreamResponse:
    """Change one's own password; other sessions end, this one is renewed."""
    settings = request.app[keys.SETTINGS]
    fields = await form_fields(request, "current", "new", "confirm")
    me = signed_in(request)
    async with request.app[keys.DB]() as db:
        try:
            await accounts.change_password(
                db, me.id, current=fields["current"], new=fields["new"], confirm=fields["confirm"]
            )
        except InvalidInput as exc:
            await db.rollback()
            return await _profile(request, field_errors(exc.errors), "", 422)
        person = await get_person(db, me.id)
        token = await accounts.open_session(db, person, lifetime=timedelta(hours=settings.session_hours))
        await db.commit()
    response = web.HTTPSeeOther(request.app.router["profile"].url_for().with_query(done="password"))
    set_session_cookie(response, token, settings)
    raise response


@routes.post("/language", name="language")
@needs(Permission.PUBLIC)
async def choose_language(request: web.Request) -> web.StreamResponse:
    """Remember the chosen language in a cookie and, when signed in, on the account."""
    fields = await form_fields(request, "language", "next")
    lang = fields["language"] if fields["language"] in i18n.LANGUAGES else i18n.DEFAULT_LANGUAGE
    me = request[keys.PERSON]
    if me is not None:
        async with request.app[keys.DB]() as db:
            person = await db.get(Person, me.id)
            if person is not None:
                person.language = lang
                await db.commit()
    response = web.HTTPSeeOther(safe_next(fields["next"] or "/"))
    response.set_cookie(
        LANGUAGE_COOKIE,
        lang,
        max_age=365 * 24 * 3600,
        samesite="Lax",
        path="/",
        secure=request.app[keys.SETTINGS].cookie_secure,
    )
    raise response
