"""Reminder and minutes-due mail: who gets it, once, and the jobs planned for a window."""

from __future__ import annotations

import asyncio
import dataclasses
import email
import email.policy
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import select

from meetings.cli import CLI_ACTOR
from meetings.directory.models import Role, UnitKind
from meetings.mail.models import OutboxMessage
from meetings.schedule import jobs, service
from meetings.schedule.models import Occurrence, OccurrenceState
from meetings.settings import Settings
from tests.conftest import World
from tests.mail.smtp import SmtpServer
from web import keys
from web.app import create_app


async def setup(world: World) -> tuple[service.Context, int, list[int]]:
    centre = await world.unit("P-A", UnitKind.CENTRE, "Phường A")
    await world.person("a@hue.example", Role.MEMBER, centre)
    await world.person("b@hue.example", Role.MEMBER, centre)
    await world.person("sec@hue.example", Role.SECRETARY, None)
    now = datetime(2030, 1, 6, 23, 0, tzinfo=UTC)  # Monday 06:00 in Huế
    ctx = service.Context(
        base_url="http://t",
        secret="s",
        organizer_email="org@hue.example",
        organizer_name="VP",
        horizon_days=7,
        now=now,
    )
    async with world.db() as db:
        series = await service.create_series(
            db,
            CLI_ACTOR,
            service.SeriesInput(
                title="Họp sáng",
                start_date="2030-01-07",
                unit_codes=["P-A"],
                secretary_email="sec@hue.example",
            ),
            ctx,
        )
        occ_ids = list(
            await db.scalars(
                select(Occurrence.id).where(Occurrence.series_id == series.id).order_by(Occurrence.start)
            )
        )
        await db.commit()
    return ctx, series.id, occ_ids


async def kinds(world: World, kind: str) -> list[str]:
    async with world.db() as db:
        return sorted(
            r.recipient for r in await db.scalars(select(OutboxMessage).where(OutboxMessage.kind == kind))
        )


async def test_reminders_go_to_every_invitee_once(world: World) -> None:
    ctx, _series_id, occ_ids = await setup(world)
    for _ in range(2):  # a job that runs twice sends nothing twice
        async with world.db() as db:
            await jobs.queue_reminders(db, occ_ids[0], ctx)
            await db.commit()
    assert await kinds(world, "reminder") == ["a@hue.example", "b@hue.example", "sec@hue.example"]


async def test_minutes_due_goes_to_the_secretary_once_and_not_for_cancelled(world: World) -> None:
    ctx, _series_id, occ_ids = await setup(world)
    later = service.Context(**{**ctx.__dict__, "now": ctx.now + timedelta(hours=3)})
    async with world.db() as db:
        await service.cancel_occurrence(db, CLI_ACTOR, occ_ids[1], ctx)
        for occ_id in (occ_ids[0], occ_ids[0], occ_ids[1]):
            await jobs.queue_minutes_due(db, occ_id, later)
        await db.commit()
    assert await kinds(world, "minutes_due") == ["sec@hue.example"]


async def test_planned_jobs_and_states(world: World) -> None:
    ctx, _series_id, occ_ids = await setup(world)
    async with world.db() as db:
        planned = await jobs.planned_jobs(db, ctx.now, world.settings)
        first = await db.get(Occurrence, occ_ids[0])
        assert first is not None
        ids = {j.job_id for j in planned}
        assert f"reminder:{first.id}" in ids and f"minutes-due:{first.id}" in ids
        reminder = next(j for j in planned if j.job_id == f"reminder:{first.id}")
        assert reminder.run_at == first.start - timedelta(minutes=15)
        # 07:20: the room is open; it ends 30 minutes (the grace) after 08:15
        rules = {"open_before": timedelta(minutes=15), "grace": timedelta(minutes=30)}
        assert await jobs.advance_states(db, first.start - timedelta(minutes=10), **rules) >= 1
        await db.refresh(first)
        assert first.state == OccurrenceState.OPEN
        await jobs.advance_states(db, first.end + timedelta(minutes=5), **rules)
        await db.refresh(first)
        assert first.state == OccurrenceState.OPEN  # the room's grace period
        await jobs.advance_states(db, first.end + timedelta(minutes=31), **rules)
        await db.refresh(first)
        assert first.state == OccurrenceState.ENDED


async def test_a_late_reminder_is_planned_for_now_once_and_a_stale_job_does_nothing(world: World) -> None:
    ctx, _series_id, occ_ids = await setup(world)
    async with world.db() as db:
        first = await db.get(Occurrence, occ_ids[0])
        assert first is not None
        late = first.start - timedelta(minutes=5)  # its reminder time passed 10 minutes ago
        planned = {j.job_id: j for j in await jobs.planned_jobs(db, late, world.settings)}
        assert planned[f"reminder:{first.id}"].run_at == late
        await jobs.queue_reminders(db, first.id, service.Context(**{**ctx.__dict__, "now": late}))
        await db.commit()
        planned = {j.job_id: j for j in await jobs.planned_jobs(db, late, world.settings)}
        assert f"reminder:{first.id}" not in planned  # already in the outbox: not again
        assert f"minutes-due:{first.id}" in planned
    # A job left at an old time (the meeting, in 2030, moved out of its window) sends nothing.
    await jobs.reminder_job(occ_ids[1])
    assert await kinds(world, "reminder") == ["a@hue.example", "b@hue.example", "sec@hue.example"]


# --- reminders planned when a meeting is created or moved, through the running app ----------


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def scheduling_world(
    settings: Settings, smtp: SmtpServer, aiohttp_client: Callable[..., Awaitable[TestClient[Any, Any]]]
) -> World:
    configured = dataclasses.replace(
        settings,
        smtp_host="127.0.0.1",
        smtp_port=smtp.port,
        smtp_security="none",
        mail_poll_seconds=0.2,
        scheduler_enabled=True,
        scheduler_lease_seconds=3,
    )
    client = await aiohttp_client(create_app(configured))
    return World(client=client, settings=configured)


def reminders_by_title(smtp: SmtpServer) -> Counter[tuple[str, str]]:
    """(title, recipient) of every reminder the SMTP server received."""
    got: Counter[tuple[str, str]] = Counter()
    for r in smtp.received:
        subject = str(email.message_from_bytes(r.data, policy=email.policy.default)["Subject"])
        if "Nhắc lịch: " in subject:
            title = subject.split("Nhắc lịch: ", 1)[1].split(" lúc ", 1)[0]
            got[(title, r.rcpt_tos[0])] += 1
    return got


async def test_reminders_planned_when_created_or_moved_are_sent_once(
    scheduling_world: World, smtp: SmtpServer
) -> None:
    """Created 30 s before its reminder time, moved into it, or created after it: one reminder each.

    The minutely reconcile alone skipped all three (it plans only what is not yet due).
    """
    world = scheduling_world
    scheduler = world.app[keys.SCHEDULER]
    tz = ZoneInfo("Asia/Ho_Chi_Minh")
    centre = await world.unit("P-NHAC", UnitKind.CENTRE, "Phường Nhắc Lịch")
    for i in range(2):
        await world.person(f"n{i}@hue.example", Role.MEMBER, centre, name=f"Cán bộ {i}")
    admin = await world.person("admin@hue.example", Role.ADMINISTRATOR)
    await world.login(admin.email)
    deadline = time.monotonic() + 20
    while not scheduler.leading:
        assert time.monotonic() < deadline, "the app never took the scheduler lease"
        await asyncio.sleep(0.1)
    # The form takes minutes: wait for second 25-35 of a minute, then a start 16 minutes after
    # this minute puts the reminder (15 minutes before) 25-35 s ahead, inside the reconcile period.
    second = datetime.now(tz).second + datetime.now(tz).microsecond / 1e6
    if not 25 <= second <= 34:
        await asyncio.sleep((85 - second) % 60)
    now = datetime.now(tz)
    soon = now.replace(second=0, microsecond=0) + timedelta(minutes=16)
    remind_at = soon - timedelta(minutes=15)
    lead = (remind_at - datetime.now(tz)).total_seconds()

    async def create(title: str, start: datetime) -> int:
        form = {
            "title": title,
            "kind": "adhoc",
            "start_time": start.strftime("%H:%M"),
            "duration_minutes": "30",
            "start_date": start.date().isoformat(),
            "end_date": "",
            "timezone": "Asia/Ho_Chi_Minh",
            "chair_email": "",
            "secretary_email": "",
            "reminder_minutes": "15",
            "description": "",
            "unit_codes": ["P-NHAC"],
            "person_emails": "",
        }
        r = await world.post_form("/meetings/adhoc/new", form)
        assert r.status == 303, await r.text()
        series_id = int(r.headers["Location"].split("/meetings/series/", 1)[1].split("?", 1)[0])
        async with world.db() as db:
            occ_id = await db.scalar(select(Occurrence.id).where(Occurrence.series_id == series_id))
        assert occ_id is not None
        return int(occ_id)

    await create("Họp A", soon)  # its reminder is due in about 30 s
    moved = await create("Họp B", soon + timedelta(hours=3))
    r = await world.post_form(
        f"/meetings/occurrences/{moved}/move",
        {"date": soon.date().isoformat(), "time": soon.strftime("%H:%M")},
    )
    assert r.status == 303, await r.text()
    await create("Họp C", now + timedelta(minutes=10))  # its reminder time passed 5 minutes ago

    invitees = {"n0@hue.example", "n1@hue.example"}
    expected = Counter({(title, to): 1 for title in ("Họp A", "Họp B", "Họp C") for to in invitees})
    deadline = time.monotonic() + lead + 30
    while time.monotonic() < deadline:
        if reminders_by_title(smtp) == expected:
            break
        await asyncio.sleep(0.2)
    assert reminders_by_title(smtp) == expected
    # Later reconciles, and the minute passing, send nothing again.
    await scheduler.reconcile()
    await scheduler.reconcile()
    await asyncio.sleep(1.5)
    assert reminders_by_title(smtp) == expected
    assert not [j for j in await scheduler.job_ids() if j.startswith("reminder:")]
    print(f"\nreminder due {lead:.0f} s after the meeting was created")
