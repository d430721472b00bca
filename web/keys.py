"""Every typed key of the application and of requests, in one place."""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from meetings.directory.models import Person
from meetings.jobs.scheduler import Scheduler
from meetings.live.minutes import MinutesHub
from meetings.live.monitoring import ConnectionTracker
from meetings.live.registry import LiveMeetings
from meetings.mail.sender import OutboxSender
from meetings.readiness.board import BoardHub
from meetings.readiness.checks import ProbeLimiter
from meetings.rtc.probe import ProbeServer
from meetings.settings import Settings
from web.metrics import Metrics

if TYPE_CHECKING:
    from web.form_data import Form

SETTINGS = web.AppKey("settings", Settings)
ENGINE = web.AppKey("engine", AsyncEngine)
DB = web.AppKey("db", async_sessionmaker[AsyncSession])
METRICS = web.AppKey("metrics", Metrics)
OUTBOX = web.AppKey("outbox", OutboxSender)
SCHEDULER = web.AppKey("scheduler", Scheduler)
MEDIA = web.AppKey("media", LiveMeetings)  # rooms and SFUs of this node (web/media_ctx.py)
# The room sockets open on this node, closed on shutdown (web/media_ctx.py).
ROOM_SOCKETS: web.AppKey[weakref.WeakSet[web.WebSocketResponse]] = web.AppKey("room_sockets")
MONITOR = web.AppKey("monitor", ConnectionTracker)  # live connection monitoring (web/media_ctx.py)
MINUTES_HUB = web.AppKey("minutes_hub", MinutesHub)  # live minutes viewers (web/minutes_live.py)
BOARD_HUB = web.AppKey("board_hub", BoardHub)  # readiness board watchers (web/board_live.py)
# The connection check's network probes of this node, and who started how many (web/probe_ctx.py).
PROBES = web.AppKey("probes", ProbeServer)
PROBE_LIMITER = web.AppKey("probe_limiter", ProbeLimiter)

PERSON: web.RequestKey[Person | None] = web.RequestKey("person")
SESSION_TOKEN = web.RequestKey("session_token", str)
CSRF_SEED = web.RequestKey("csrf_seed", str)
NEW_CSRF_SEED = web.RequestKey("new_csrf_seed", bool)
LANGUAGE = web.RequestKey("language", str)
FORM: web.RequestKey[Form] = web.RequestKey("form")  # the posted form, read once (web/forms.py)
