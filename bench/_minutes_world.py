"""What the minutes benchmarks share: a meeting in progress with its minutes, and signing in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import aiohttp
from aiohttp.test_utils import TestServer
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from meetings.accounts.permissions import Actor
from meetings.directory.models import Role
from meetings.minutes import service
from meetings.schedule import service as schedule
from meetings.schedule.models import Occurrence, OccurrenceState
from web import csrf

PASSWORD = "bench password"
SECRET = "bench-secret"


async def meeting_minutes(db: AsyncSession) -> int:
    """An ad hoc meeting of the unit P-BENCH, in progress, and the id of its minutes."""
    now = datetime.now(UTC)
    ctx = schedule.Context(
        base_url="http://b", secret=SECRET, organizer_email="o@bench.example", organizer_name="O", now=now
    )
    start = now + timedelta(minutes=5)
    series = await schedule.create_adhoc(
        db,
        Actor(id=0, email="cli", name="cli", role=Role.ADMINISTRATOR, unit_id=None),
        schedule.SeriesInput(
            title="Bench",
            start_date=start.date().isoformat(),
            start_time=start.strftime("%H:%M"),
            timezone="UTC",
            duration_minutes="60",
            unit_codes=["P-BENCH"],
        ),
        ctx,
    )
    await db.execute(
        update(Occurrence).where(Occurrence.series_id == series.id).values(state=OccurrenceState.IN_PROGRESS)
    )
    occurrence = await db.scalar(select(Occurrence).where(Occurrence.series_id == series.id))
    assert occurrence is not None
    minutes = await service.ensure_minutes(db, occurrence)
    await db.commit()
    return minutes.id


async def login(server: TestServer, email: str) -> tuple[aiohttp.ClientSession, str]:
    """A signed-in HTTP session and its CSRF token."""
    http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    await http.get(server.make_url("/login"))
    seed = next(c.value for c in http.cookie_jar if c.key == csrf.COOKIE)
    token = csrf.token_for(SECRET, seed)
    form = {"email": email, "password": PASSWORD, "next": "/", "csrf_token": token}
    response = await http.post(server.make_url("/login"), data=form, allow_redirects=False)
    assert response.status == 303, await response.text()
    return http, token
