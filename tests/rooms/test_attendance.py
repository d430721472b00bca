"""Attendance, the per-unit view and admission on the real databases (SQLite and PostgreSQL)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, time, timedelta
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import select
from sqlalchemy.engine import Connection

from meetings.db.base import Base
from meetings.directory.models import Person, Role, Unit, UnitKind
from meetings.rooms import attendance, service
from meetings.rooms.errors import RoomClosed
from meetings.rooms.models import Attendance, AttendanceEventKind
from meetings.rooms.participant import ConnectionQuality, RoomRole
from meetings.rooms.room import ChatLine, Placement, RoomRegistry, RoomRules
from meetings.schedule.models import (
    Occurrence,
    OccurrenceState,
    Series,
    SeriesInvitee,
    SeriesKind,
    SeriesStatus,
)
from tests.conftest import World
from tests.rooms.fakes import END, START, at, person
from web import keys

ROOM_TABLES = frozenset({"attendance", "attendance_events", "chat_messages"})


@dataclass
class City:
    """A morning meeting for two centres and a department, with its people."""

    occurrence: Occurrence
    series: Series
    centre: Unit
    other_centre: Unit
    department: Unit
    on_time: Person
    late: Person
    absent: Person
    dept_member: Person
    chair: Person
    outsider: Person
    admin: Person


async def make_city(world: World) -> City:
    centre = await world.unit("P-PHONGDIEN", UnitKind.CENTRE, "Phường Phong Điền")
    other_centre = await world.unit("P-KIMLONG", UnitKind.CENTRE, "Phường Kim Long")
    department = await world.unit("SKHCN", UnitKind.DEPARTMENT, "Sở Khoa học và Công nghệ")
    outside = await world.unit("P-OTHER", UnitKind.CENTRE, "Phường Khác")
    on_time = await world.person("a1@hue.example", unit=centre, name="Nguyễn Văn An")
    late = await world.person("a2@hue.example", unit=centre, name="Trần Thị Bình")
    absent = await world.person("b1@hue.example", unit=other_centre, name="Lê Văn Cường")
    dept_member = await world.person("d1@hue.example", unit=department, name="Hoàng Văn Em")
    chair = await world.person("chair@hue.example", Role.CHAIR, department, name="Phan Chủ Trì")
    outsider = await world.person("x@hue.example", unit=outside, name="Người Ngoài")
    admin = await world.person("admin@hue.example", Role.ADMINISTRATOR, name="Quản Trị")
    async with world.db() as db:
        series = Series(
            uid="rooms-test@giaoban",
            title="Họp giao ban sáng",
            description="",
            kind=SeriesKind.MORNING,
            status=SeriesStatus.ACTIVE,
            start_time=time(7, 30),
            duration_minutes=45,
            weekdays="MO,TU,WE,TH,FR",
            start_date=date(2027, 1, 4),
            end_date=None,
            timezone="Asia/Ho_Chi_Minh",
            chair_id=chair.id,
            secretary_id=None,
            organizer_email="giaoban@hue.example",
            organizer_name="Văn phòng UBND",
            reminder_minutes=15,
            sequence=0,
        )
        db.add(series)
        await db.flush()
        for unit in (centre, other_centre, department):
            db.add(SeriesInvitee(series_id=series.id, unit_id=unit.id))
        occurrence = Occurrence(
            series_id=series.id,
            original_start=START,
            start=START,
            end=END,
            state=OccurrenceState.PLANNED,
            moved=False,
            note="",
        )
        db.add(occurrence)
        await db.commit()
    return City(
        occurrence, series, centre, other_centre, department, on_time, late, absent, dept_member, chair,
        outsider, admin,
    )  # fmt: skip


def registry() -> RoomRegistry:
    return RoomRegistry(rules=RoomRules(reconnect_seconds=120))


# --- the migration matches the models ---------------------------------------------------------


async def test_migration_0004_matches_the_models(world: World) -> None:
    def include(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
        if type_ == "table":
            return name in ROOM_TABLES
        table = getattr(obj, "table", None)
        return table is None or table.name in ROOM_TABLES

    def diff(conn: Connection) -> list[Any]:
        context = MigrationContext.configure(conn, opts={"include_object": include, "compare_type": True})
        return list(compare_metadata(context, Base.metadata))

    async with world.db() as db:
        conn = await db.connection()
        assert await conn.run_sync(diff) == []


# --- merging --------------------------------------------------------------------------------


async def test_a_quick_rejoin_merges_into_one_attendance(world: World) -> None:
    city = await make_city(world)
    occ, who = city.occurrence.id, city.on_time
    weak = ConnectionQuality(rtt_ms=310.0, loss_pct=7.5, bitrate_kbps=180.0)
    async with world.db() as db:
        await attendance.record_join(db, occ, who.id, who.unit_id, at(0))
        await attendance.record_leave(db, occ, who.id, at(10), weak)  # dropped
        await attendance.record_join(db, occ, who.id, who.unit_id, at(11))  # back within 120 s
        await attendance.record_leave(db, occ, who.id, at(20))
        await db.commit()
    async with world.db() as db:
        rows = await attendance.records(db, occ)
        assert len(rows) == 1
        row = rows[0]
        assert row.connections == 2 and not row.connected
        assert row.total_seconds == 10 * 60 + 9 * 60
        assert (row.first_joined_at, row.last_left_at) == (at(0), at(20))
        assert (row.rtt_ms, row.loss_pct, row.bitrate_kbps) == (310.0, 7.5, 180.0)
        events = await attendance.events(db, occ, who.id)
        assert [e.kind for e in events] == [
            AttendanceEventKind.JOIN,
            AttendanceEventKind.LEAVE,
            AttendanceEventKind.RECONNECT,
            AttendanceEventKind.LEAVE,
        ]
        assert events[1].summary == {"rtt_ms": 310.0, "loss_pct": 7.5, "bitrate_kbps": 180.0}
        assert events[3].summary == {}


async def test_a_late_rejoin_is_still_one_record_with_two_joins(world: World) -> None:
    city = await make_city(world)
    occ, who = city.occurrence.id, city.on_time
    async with world.db() as db:
        await attendance.record_join(db, occ, who.id, who.unit_id, at(0))
        await attendance.record_leave(db, occ, who.id, at(5))
        await attendance.record_join(db, occ, who.id, who.unit_id, at(35))
        await attendance.record_leave(db, occ, who.id, at(40))
        await attendance.record_leave(db, occ, who.id, at(41))  # a second goodbye changes nothing
        await db.commit()
    async with world.db() as db:
        rows = await attendance.records(db, occ)
        assert [(r.person_id, r.connections, r.total_seconds) for r in rows] == [(who.id, 2, 600)]
        kinds = [e.kind for e in await attendance.events(db, occ)]
        assert kinds == [
            AttendanceEventKind.JOIN,
            AttendanceEventKind.LEAVE,
            AttendanceEventKind.JOIN,
            AttendanceEventKind.LEAVE,
        ]


async def test_a_join_while_still_connected_is_a_reconnect_without_a_gap(world: World) -> None:
    city = await make_city(world)
    occ, who = city.occurrence.id, city.on_time
    async with world.db() as db:
        await attendance.record_join(db, occ, who.id, who.unit_id, at(0))
        await attendance.record_join(db, occ, who.id, who.unit_id, at(7))  # new tab, old one gone
        await attendance.record_leave(db, occ, who.id, at(30))
        await db.commit()
        row = (await attendance.records(db, occ))[0]
        assert (row.connections, row.total_seconds) == (2, 30 * 60)
        kinds = [e.kind for e in await attendance.events(db, occ)]
        assert kinds == [AttendanceEventKind.JOIN, AttendanceEventKind.RECONNECT, AttendanceEventKind.LEAVE]


# --- the per-unit view ------------------------------------------------------------------------


async def test_attendance_by_unit_shows_present_late_and_absent(world: World) -> None:
    city = await make_city(world)
    occ = city.occurrence.id
    async with world.db() as db:
        for who, minutes in ((city.on_time, 4), (city.late, 6), (city.chair, -10), (city.outsider, 1)):
            await attendance.record_join(db, occ, who.id, who.unit_id, at(minutes))
        await db.commit()
    async with world.db() as db:
        view = await attendance.by_unit(db, occ)
    summary = [
        (
            g.unit.code if g.unit else None,
            [p.person.email for p in g.present],
            [p.person.email for p in g.late],
            [p.email for p in g.absent],
        )
        for g in view
    ]
    assert summary == [
        ("SKHCN", ["chair@hue.example"], [], ["d1@hue.example"]),
        ("P-OTHER", ["x@hue.example"], [], []),  # let in from the lobby: counted where they belong
        ("P-KIMLONG", [], [], ["b1@hue.example"]),
        ("P-PHONGDIEN", ["a1@hue.example"], ["a2@hue.example"], []),
    ]
    unit, present, late, absent = view[0]  # a plain tuple for templates
    assert unit is not None and unit.kind is UnitKind.DEPARTMENT and late == [] and len(absent) == 1
    assert present[0].attendance.first_joined_at == at(-10)


# --- admission --------------------------------------------------------------------------------


async def test_admit_seats_an_invitee_and_sends_an_outsider_to_the_lobby(world: World) -> None:
    city = await make_city(world)
    rooms = registry()
    occ = city.occurrence.id
    async with world.db() as db:
        chair = await service.admit(db, rooms, occ, city.chair, at(-5))
        member = await service.admit(db, rooms, occ, city.on_time, at(-5))
        outsider = await service.admit(db, rooms, occ, city.outsider, at(-5))
        admin = await service.admit(db, rooms, occ, city.admin, at(-5))
    assert chair.room is member.room is outsider.room and rooms.get(occ) is chair.room
    assert (chair.role, chair.invited) == (RoomRole.MODERATOR, True)
    assert (member.role, member.invited) == (RoomRole.PARTICIPANT, True)
    assert (outsider.role, outsider.invited) == (RoomRole.PARTICIPANT, False)
    assert (admin.role, admin.invited) == (RoomRole.MODERATOR, True)

    chair_conn = person(city.chair.id, moderator=True, unit_id=city.chair.unit_id)
    member_conn = person(city.on_time.id, unit_id=city.on_time.unit_id)
    outsider_conn = person(city.outsider.id, unit_id=city.outsider.unit_id)
    async with world.db() as db:
        assert (await service.join(db, chair, chair_conn, at(-5))).placement is Placement.SEATED
        assert (await service.join(db, member, member_conn, at(-4))).placement is Placement.SEATED
        assert (await service.join(db, outsider, outsider_conn, at(-4))).placement is Placement.LOBBY
        await db.commit()
    async with world.db() as db:
        assert {r.person_id for r in await attendance.records(db, occ)} == {city.chair.id, city.on_time.id}
        state = await db.scalar(select(Occurrence.state).where(Occurrence.id == occ))
        assert state is OccurrenceState.IN_PROGRESS
        # Admitted from the lobby: attendance starts then.
        await service.admit_waiting(db, chair.room, chair_conn, city.outsider.id, at(2))
        await db.commit()
        row = await db.scalar(select(Attendance).where(Attendance.person_id == city.outsider.id))
        assert row is not None and row.first_joined_at == at(2)


async def test_admit_refuses_outside_the_window_and_cancelled_meetings(world: World) -> None:
    city = await make_city(world)
    rooms = registry()
    occ = city.occurrence.id
    async with world.db() as db:
        with pytest.raises(RoomClosed, match="opens at 07:15"):
            await service.admit(db, rooms, occ, city.on_time, at(-16))
        assert len(rooms) == 0  # nothing kept for a refused early visit
        with pytest.raises(RoomClosed):
            await service.admit(db, rooms, occ, city.on_time, END + timedelta(minutes=30))
        occurrence = await db.get(Occurrence, occ)
        assert occurrence is not None
        occurrence.state = OccurrenceState.CANCELLED
        await db.commit()
        with pytest.raises(RoomClosed, match="cancelled"):
            await service.admit(db, rooms, occ, city.on_time, at(0))


async def test_leave_remove_and_end_write_attendance(world: World) -> None:
    city = await make_city(world)
    rooms = registry()
    occ = city.occurrence.id
    conns = {
        p.id: person(p.id, moderator=p is city.chair, unit_id=p.unit_id)
        for p in (city.chair, city.on_time, city.late, city.dept_member)
    }
    async with world.db() as db:
        for p in (city.chair, city.on_time, city.late, city.dept_member):
            admission = await service.admit(db, rooms, occ, p, at(0))
            await service.join(db, admission, conns[p.id], at(0))
        room = admission.room
        room.report_quality(
            conns[city.on_time.id], ConnectionQuality(rtt_ms=40, loss_pct=0, bitrate_kbps=900)
        )
        assert await service.leave(db, rooms, room, conns[city.on_time.id], at(10)) is Placement.SEATED
        # The signaling layer calls leave for every connection: a stale one is ignored.
        assert await service.leave(db, rooms, room, conns[city.on_time.id], at(11)) is None
        await service.remove(db, room, conns[city.chair.id], city.late.id, at(12))
        await service.end(db, rooms, room, conns[city.chair.id], at(40))
        await db.commit()
    # Kept, ended, until its closing time: a join racing the commit above is refused too.
    assert rooms.get(occ) is room and room.ended_at == at(40)
    async with world.db() as db:
        rows = {r.person_id: r for r in await attendance.records(db, occ)}
        assert {pid: r.total_seconds for pid, r in rows.items()} == {
            city.chair.id: 40 * 60,
            city.on_time.id: 10 * 60,
            city.late.id: 12 * 60,
            city.dept_member.id: 40 * 60,
        }
        assert not any(r.connected for r in rows.values())
        assert rows[city.on_time.id].rtt_ms == 40
        state = await db.scalar(select(Occurrence.state).where(Occurrence.id == occ))
        assert state is OccurrenceState.ENDED
    # Ended by the chair before its planned end: a fresh node (empty registry) refuses too.
    async with world.db() as db:
        with pytest.raises(RoomClosed, match="ended"):
            await service.admit(db, registry(), occ, city.on_time, at(41))


async def test_chat_is_kept_with_the_occurrence(world: World) -> None:
    city = await make_city(world)
    rooms = service.create_registry(world.settings, world.app[keys.DB])
    occ = city.occurrence.id
    conn = person(city.on_time.id, unit_id=city.on_time.unit_id)
    async with world.db() as db:
        admission = await service.admit(db, rooms, occ, city.on_time, at(0))
        await service.join(db, admission, conn, at(0))
        await db.commit()
    line = await admission.room.chat(conn, "Hệ thống một cửa không kết nối được", at(3))
    assert line == ChatLine(occ, city.on_time.id, f"Người {city.on_time.id}", line.text, at(3))
    async with world.db() as db:
        kept = await service.chat_history(db, occ)
    assert [(m.person_id, m.text, m.at) for m in kept] == [(city.on_time.id, line.text, at(3))]
