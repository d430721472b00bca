"""A reminder due while the server is down is sent once after the restart, to each invitee."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, select, text, update

from meetings.cli import CLI_ACTOR
from meetings.db import create_engine, create_sessionmaker
from meetings.db.base import utcnow
from meetings.directory.models import Person, Role, Unit, UnitKind
from meetings.directory.service import person_search_text, unit_search_text
from meetings.jobs.scheduler import JOB_TABLE
from meetings.schedule import service
from meetings.schedule.models import Occurrence
from tests.conftest import SECRET
from tests.jobs.test_processes import (
    TTL,
    Servers,
    count,
    jobs_url,
    servers,
    sync_db,
    wait_for,
    wait_for_holder,
)

__all__ = ["jobs_url", "servers", "sync_db"]  # fixtures used here
pytestmark = pytest.mark.slow

LEAD = 12.0  # seconds from now to the reminder's due time


async def plan_meeting(url: str) -> int:
    """A centre with two people and an ad hoc meeting whose reminder is due in LEAD seconds."""
    engine = create_engine(url)
    async with create_sessionmaker(engine)() as db:
        unit = Unit(code="P-NHAC", kind=UnitKind.CENTRE, name="Phường Nhắc Lịch", active=True)
        unit.search_text = unit_search_text(unit)
        db.add(unit)
        await db.flush()
        for i in range(2):
            person = Person(
                name=f"Cán bộ {i}",
                email=f"n{i}@hue.example",
                unit_id=unit.id,
                role=Role.MEMBER,
                active=True,
                language="vi",
                phone="",
                title="",
            )
            person.search_text = person_search_text(person)
            db.add(person)
        await db.flush()
        now = utcnow()
        ctx = service.Context(
            base_url="http://t",
            secret=SECRET,
            organizer_email="giaoban@hue.example",
            organizer_name="VP",
            now=now,
        )
        start_local = (now + timedelta(hours=2)).astimezone(ZoneInfo("Asia/Ho_Chi_Minh"))
        series = await service.create_adhoc(
            db,
            CLI_ACTOR,
            service.SeriesInput(
                title="Sự cố",
                start_date=start_local.date().isoformat(),
                start_time=start_local.strftime("%H:%M"),
                duration_minutes="30",
                reminder_minutes="1",
                unit_codes=["P-NHAC"],
            ),
            ctx,
        )
        occ = await db.scalar(select(Occurrence).where(Occurrence.series_id == series.id))
        assert occ is not None
        # To the second: the reminder (1 minute before) falls due LEAD seconds from now.
        start = now + timedelta(seconds=60 + LEAD)
        await db.execute(
            update(Occurrence)
            .where(Occurrence.id == occ.id)
            .values(start=start, end=start + timedelta(minutes=30))
        )
        await db.commit()
        occurrence_id = occ.id
    await engine.dispose()
    return occurrence_id


def test_reminder_due_during_a_stop_is_sent_once_after_restart(
    servers: Servers, sync_db: Engine, jobs_url: str
) -> None:
    occurrence_id = asyncio.run(plan_meeting(jobs_url))
    due = time.monotonic() + LEAD
    reminders = "SELECT count(*) FROM outbox WHERE kind = 'reminder'"
    job = f"SELECT count(*) FROM {JOB_TABLE} WHERE id = :id"
    proc = servers.start("a")
    wait_for_holder(sync_db, proc.pid)
    wait_for(lambda: count(sync_db, job, id=f"reminder:{occurrence_id}"), 4 * TTL, "the reminder job")
    servers.stop(proc)
    assert time.monotonic() < due, "the machine was too slow to stop the server before the due time"
    time.sleep(max(0.0, due - time.monotonic()) + 1.0)
    assert count(sync_db, reminders) == 0  # nobody sent it while the server was down

    proc = servers.start("a")
    wait_for(lambda: count(sync_db, reminders) >= 2, 6 * TTL, "the missed reminder")
    time.sleep(TTL)
    assert count(sync_db, reminders) == 2  # once per invitee
    servers.stop(proc)
    proc = servers.start("a")  # and a second restart repeats nothing
    wait_for_holder(sync_db, proc.pid)
    time.sleep(2 * TTL)
    assert count(sync_db, reminders) == 2
    assert count(sync_db, job, id=f"reminder:{occurrence_id}") == 0  # ran, so gone
    with sync_db.connect() as c:
        ids = {row[0] for row in c.execute(text(f"SELECT id FROM {JOB_TABLE}"))}
    # what remains: this meeting's minutes-due job and the standing maintenance jobs, once each
    assert ids == {
        f"minutes-due:{occurrence_id}",
        "schedule-tick",
        "schedule-materialise",
        "mail:purge-sent",
        "readiness:follow-up",  # the connection follow-up's interval job (meetings.readiness)
    }
    servers.stop(proc)
