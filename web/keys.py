"""Every typed key of the application and of requests, in one place."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from meetings.directory.models import Person
from meetings.jobs.scheduler import Scheduler
from meetings.mail.sender import OutboxSender
from meetings.settings import Settings
from web.metrics import Metrics

if TYPE_CHECKING:
    from web.forms import Form
    from web.media_ctx import Media
    from web.minutes_live import MinutesHub

SETTINGS = web.AppKey("settings", Settings)
ENGINE = web.AppKey("engine", AsyncEngine)
DB = web.AppKey("db", async_sessionmaker[AsyncSession])
METRICS = web.AppKey("metrics", Metrics)
OUTBOX = web.AppKey("outbox", OutboxSender)
SCHEDULER = web.AppKey("scheduler", Scheduler)
MEDIA: web.AppKey[Media] = web.AppKey("media")  # rooms and SFUs of this node (web/media_ctx.py)
MINUTES_HUB: web.AppKey[MinutesHub] = web.AppKey("minutes_hub")  # live minutes viewers (web/minutes_live.py)

PERSON: web.RequestKey[Person | None] = web.RequestKey("person")
SESSION_TOKEN = web.RequestKey("session_token", str)
CSRF_SEED = web.RequestKey("csrf_seed", str)
NEW_CSRF_SEED = web.RequestKey("new_csrf_seed", bool)
LANGUAGE = web.RequestKey("language", str)
FORM: web.RequestKey[Form] = web.RequestKey("form")  # the posted form, read once (web/forms.py)
