"""A working day of meetings (morning and afternoon series) with a chair, a secretary and centres."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select

from meetings.accounts.permissions import Actor
from meetings.accounts.service import actor_of
from meetings.cli import CLI_ACTOR
from meetings.directory.models import Person, Role, UnitKind
from meetings.schedule import service
from meetings.schedule.models import Occurrence
from tests.conftest import World

# Monday 6 January 2030, 06:00 in Huế: before the first morning meeting.
NOW = datetime(2030, 1, 6, 23, 0, tzinfo=UTC)


@dataclass
class Day:
    """The people and meetings of the test day."""

    chair: Person
    secretary: Person
    member: Person
    outsider: Person
    mornings: list[Occurrence]
    afternoons: list[Occurrence]

    @property
    def chair_actor(self) -> Actor:
        return actor_of(self.chair)

    @property
    def secretary_actor(self) -> Actor:
        return actor_of(self.secretary)

    @property
    def member_actor(self) -> Actor:
        return actor_of(self.member)


async def make_day(world: World) -> Day:
    """Two centres and a telecom; a morning and an afternoon series over the week."""
    centre = await world.unit("P-PHUXUAN", UnitKind.CENTRE, "Phường Phú Xuân")
    await world.unit("P-THUANHOA", UnitKind.CENTRE, "Phường Thuận Hóa")
    await world.unit("VNPT", UnitKind.TELECOM, "VNPT Huế")
    other = await world.unit("P-OTHER", UnitKind.CENTRE, "Phường Khác")
    chair = await world.person("chair@hue.example", Role.CHAIR, None, "Nguyễn Văn Chủ Trì")
    secretary = await world.person("secretary@hue.example", Role.SECRETARY, None, "Trần Thị Thư Ký")
    member = await world.person("member@hue.example", Role.MEMBER, centre, "Lê Văn Thành Viên")
    outsider = await world.person("outsider@hue.example", Role.MEMBER, other, "Người Ngoài")
    ctx = service.Context(
        base_url="http://t",
        secret=world.settings.secret_key,
        organizer_email="org@hue.example",
        organizer_name="VP",
        horizon_days=7,
        now=NOW,
    )
    found: dict[str, list[Occurrence]] = {}
    async with world.db() as db:
        for kind, title, at in (
            ("morning", "Giao ban sáng", "07:30"),
            ("afternoon", "Giao ban chiều", "16:30"),
        ):
            series = await service.create_series(
                db,
                CLI_ACTOR,
                service.SeriesInput(
                    title=title,
                    kind=kind,
                    start_time=at,
                    start_date="2030-01-07",
                    unit_codes=["P-PHUXUAN", "P-THUANHOA", "VNPT"],
                    chair_email=chair.email,
                    secretary_email=secretary.email,
                ),
                ctx,
            )
            found[kind] = list(
                await db.scalars(
                    select(Occurrence).where(Occurrence.series_id == series.id).order_by(Occurrence.start)
                )
            )
        await db.commit()
    return Day(chair, secretary, member, outsider, found["morning"], found["afternoon"])
