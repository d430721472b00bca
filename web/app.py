"""The application factory: create_app(settings) builds the whole service."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp_jinja2
import jinja2
from aiohttp import web

from meetings import i18n
from meetings.db import create_engine, create_sessionmaker
from meetings.settings import Settings, ensure_secret_key
from web import keys, labels, middlewares
from web.access import check_every_route_declares
from web.board_live import board_ctx, close_board_sockets
from web.mail_ctx import mail_ctx
from web.media_ctx import close_sockets, media_ctx
from web.metrics import Metrics, lag_sampler
from web.minutes_live import close_minutes_sockets, minutes_ctx
from web.probe_ctx import probe_ctx
from web.scheduler_ctx import scheduler_ctx
from web.views import (
    admin,
    api,
    attendance,
    auth,
    directory,
    figures,
    home,
    icons,
    issues,
    links,
    mail,
    manual,
    minutes,
    ops,
    readiness_board,
    readiness_check,
    readiness_history,
    readiness_monitor,
    room,
    room_ws,
    schedule,
)

HERE = Path(__file__).parent
log = logging.getLogger("giaoban")


async def database_ctx(app: web.Application) -> AsyncIterator[None]:
    """Open the database engine for the app's lifetime."""
    engine = create_engine(app[keys.SETTINGS].database_url)
    app[keys.ENGINE] = engine
    app[keys.DB] = create_sessionmaker(engine)
    yield
    await engine.dispose()


async def metrics_ctx(app: web.Application) -> AsyncIterator[None]:
    """Sample the event loop's lag for the metrics while the app runs."""
    async with lag_sampler(app[keys.METRICS]):
        yield


def setup_templates(app: web.Application) -> None:
    """Jinja2 with autoescape, gettext from our catalogs and Vietnamese formatting filters."""
    env = aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=jinja2.select_autoescape(default=True),
        extensions=["jinja2.ext.i18n"],
        undefined=jinja2.StrictUndefined,
    )
    env.install_gettext_callables(  # type: ignore[attr-defined]
        lambda s, **kw: i18n.gettext(s, **kw),
        lambda s, p, n, **kw: i18n.ngettext(s, p, n, **kw),
        newstyle=True,
    )
    tz = app[keys.SETTINGS].tz
    env.filters["number"] = i18n.fmt_number
    env.filters["percent"] = i18n.fmt_percent
    env.filters["date"] = labels.date_text
    env.filters["datetime"] = lambda v, style="short": labels.datetime_text(v, tz, style)
    env.filters["time"] = lambda v: i18n.fmt_time(v, tz)
    env.globals.update(labels.template_globals())
    env.filters["weekday_label"] = labels.weekday_label


def create_app(settings: Settings) -> web.Application:
    """Build the application for these settings; tests call this too."""
    settings = ensure_secret_key(settings)
    app = web.Application(
        client_max_size=settings.max_body_bytes,
        middlewares=[
            middlewares.metrics_and_errors,
            middlewares.security_headers,
            middlewares.language,
            middlewares.sign_in,
            middlewares.access,
            middlewares.csrf_protect,
        ],
    )
    app[keys.SETTINGS] = settings
    app[keys.METRICS] = Metrics()
    app.cleanup_ctx.append(metrics_ctx)
    app.cleanup_ctx.append(database_ctx)
    app.cleanup_ctx.append(mail_ctx)
    app.cleanup_ctx.append(scheduler_ctx)
    app.cleanup_ctx.append(media_ctx)
    app.cleanup_ctx.append(minutes_ctx)
    app.cleanup_ctx.append(board_ctx)
    app.cleanup_ctx.append(probe_ctx)
    app.on_shutdown.append(close_sockets)
    app.on_shutdown.append(close_minutes_sockets)
    app.on_shutdown.append(close_board_sockets)
    setup_templates(app)
    for module in (
        ops,
        icons,
        auth,
        home,
        directory,
        admin,
        api,
        schedule,
        attendance,
        links,
        mail,
        room,
        room_ws,
        minutes,
        issues,
        figures,
        manual,
        readiness_history,
        readiness_board,
        readiness_monitor,
        readiness_check,
    ):
        app.router.add_routes(module.routes)
    static = app.router.add_static("/static/", HERE / "static", name="static", append_version=True)
    aiohttp_jinja2.get_env(app).globals["static"] = lambda path: str(static.url_for(filename=path))
    check_every_route_declares(app)
    return app
