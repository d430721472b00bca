"""The room opens the meeting's minutes when the first person is seated (and never fails a seat)."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from meetings.minutes import service as minutes_service
from meetings.minutes.models import Minutes, MinutesStatus
from meetings.rooms import attendance, service
from meetings.rooms.room import Placement
from tests.conftest import World
from tests.rooms.fakes import at, person
from tests.rooms.test_attendance import make_city, registry


async def test_the_first_seat_creates_the_minutes_with_that_person_present(world: World) -> None:
    city = await make_city(world)
    rooms = registry()
    occ = city.occurrence.id
    async with world.db() as db:
        assert await minutes_service.minutes_of(db, occ) is None
        chair = await service.admit(db, rooms, occ, city.chair, at(-5))
        member = await service.admit(db, rooms, occ, city.on_time, at(-5))
        chair_conn = person(city.chair.id, moderator=True, unit_id=city.chair.unit_id)
        member_conn = person(city.on_time.id, unit_id=city.on_time.unit_id)
        assert (await service.join(db, chair, chair_conn, at(-5))).placement is Placement.SEATED
        await db.commit()
    async with world.db() as db:
        found = await minutes_service.minutes_of(db, occ)
        assert found is not None
        assert (found.status, found.template) == (MinutesStatus.DRAFT, "morning")
        units = {u["unit_code"]: u for u in found.header["attendance"]}
        assert units["SKHCN"]["present"] == ["Phan Chủ Trì"]
        # A second seat neither creates another nor fails.
        assert (await service.join(db, member, member_conn, at(-4))).placement is Placement.SEATED
        await db.commit()
        assert await db.scalar(select(func.count()).select_from(Minutes)) == 1


async def test_a_failing_minutes_creation_keeps_the_seat_and_its_attendance(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    city = await make_city(world)
    rooms = registry()
    occ = city.occurrence.id

    async def broken(db: AsyncSession, occurrence: object) -> Minutes:
        # A statement fails inside the transaction (a row without its required columns).
        db.add(Minutes(occurrence_id=city.occurrence.id))
        await db.flush()
        raise AssertionError("the flush should have failed")

    monkeypatch.setattr(minutes_service, "ensure_minutes", broken)
    async with world.db() as db:
        member = await service.admit(db, rooms, occ, city.on_time, at(-5))
        conn = person(city.on_time.id, unit_id=city.on_time.unit_id)
        assert (await service.join(db, member, conn, at(-5))).placement is Placement.SEATED
        await db.commit()
    async with world.db() as db:
        assert [r.person_id for r in await attendance.records(db, occ)] == [city.on_time.id]
        assert await minutes_service.minutes_of(db, occ) is None
