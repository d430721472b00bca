"""Reminder and minutes-due mail: who gets it, once, and the jobs planned for a window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from meetings.cli import CLI_ACTOR
from meetings.directory.models import Role, UnitKind
from meetings.mail.models import OutboxMessage
from meetings.schedule import jobs, service
from meetings.schedule.models import Occurrence, OccurrenceState
from tests.conftest import World


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
