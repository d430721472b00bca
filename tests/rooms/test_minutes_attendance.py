"""The minutes' attendance is the room's: live until the end, final at the end, corrected with reasons.

Issue #13, item 3: people seated seconds after the chair were "absent" in the approved minutes
(a snapshot taken when the room opened). Here the real room service seats them, the chair ends
the meeting, and the approved minutes are read back as DOCX.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import docx
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection

from meetings.accounts.service import actor_of
from meetings.db.base import Base
from meetings.minutes import attendance as minutes_attendance
from meetings.minutes import service as minutes_service
from meetings.minutes import workflow
from meetings.minutes.models import MinutesStatus
from meetings.rooms import service
from meetings.rooms.room import Placement
from tests.conftest import World
from tests.rooms.fakes import at, person
from tests.rooms.test_attendance import City, make_city, registry


@dataclass
class Held:
    """A meeting held through the room service, ended by the chair; its minutes."""

    city: City
    minutes_id: int


async def hold_meeting(world: World) -> Held:
    """The chair opens the room; An joins seconds later, Bình 12 minutes late; Em leaves early;
    Cường (the other centre) never comes; the chair ends the meeting after 40 minutes."""
    city = await make_city(world)
    rooms = registry()
    occ = city.occurrence.id
    conns = {
        p.id: person(p.id, moderator=p is city.chair, unit_id=p.unit_id)
        for p in (city.chair, city.on_time, city.late, city.dept_member)
    }
    async with world.db() as db:
        first = await service.admit(db, rooms, occ, city.chair, at(-2))
        assert (await service.join(db, first, conns[city.chair.id], at(-2))).placement is Placement.SEATED
        await db.commit()
    # The room opened the minutes with the chair alone.
    async with world.db() as db:
        found = await minutes_service.minutes_of(db, occ)
        assert found is not None
        minutes_id = found.id
    for who, when in ((city.on_time, -2 + 10 / 60), (city.dept_member, 1), (city.late, 12)):
        async with world.db() as db:
            admission = await service.admit(db, rooms, occ, who, at(when))
            assert (await service.join(db, admission, conns[who.id], at(when))).placement is Placement.SEATED
            await db.commit()
    room = first.room
    async with world.db() as db:
        # Live: the minutes follow the room before the end.
        live = await unit_of(world, minutes_id, "P-PHONGDIEN")
        assert (live["present"], live["late"]) == ([city.on_time.name], [city.late.name])
        await service.leave(db, rooms, room, conns[city.dept_member.id], at(20))
        await service.end(db, rooms, room, conns[city.chair.id], at(40))
        await db.commit()
    return Held(city, minutes_id)


async def content_of(world: World, minutes_id: int) -> dict[str, Any]:
    async with world.db() as db:
        return await workflow.content(db, await minutes_service.get_minutes(db, minutes_id))


async def unit_of(world: World, minutes_id: int, code: str) -> dict[str, Any]:
    data = await content_of(world, minutes_id)
    return next(u for u in data["header"]["attendance"] if u["unit_code"] == code)


async def docx_text(world: World, minutes_id: int, version: int) -> str:
    response = await world.client.get(f"/minutes/{minutes_id}/export/docx?version={version}")
    assert response.status == 200, await response.text()
    document = docx.Document(io.BytesIO(await response.read()))
    return "\n".join(p.text for p in document.paragraphs)


async def test_people_seated_after_the_chair_are_present_in_the_approved_docx(world: World) -> None:
    held = await hold_meeting(world)
    city, minutes_id = held.city, held.minutes_id
    centre = await unit_of(world, minutes_id, "P-PHONGDIEN")
    assert (centre["present"], centre["late"], centre["absent"]) == (
        [city.on_time.name],
        [city.late.name],
        [],
    )
    dept = await unit_of(world, minutes_id, "SKHCN")
    assert (dept["present"], dept["left_early"], dept["absent"]) == (
        [city.chair.name],
        [city.dept_member.name],
        [],
    )
    other = await unit_of(world, minutes_id, "P-KIMLONG")
    assert (other["present"], other["absent"]) == ([], [city.absent.name])
    data = await content_of(world, minutes_id)
    assert data["header"]["attendance_final_at"] == at(40).isoformat()  # final at the end

    await world.login(city.chair.email)
    for action in ("submit", "approve"):
        response = await world.post_form(f"/minutes/{minutes_id}/{action}")
        assert response.status == 303, await response.text()  # the room agrees: no warning
    text = await docx_text(world, minutes_id, 1)
    assert "Phường Phong Điền: có mặt 1, đến muộn 1 (Có mặt: Nguyễn Văn An; Đến muộn: Trần Thị Bình)" in text
    assert "Sở Khoa học và Công nghệ: có mặt 1, về sớm 1 (Có mặt: Phan Chủ Trì; Về sớm: Hoàng Văn Em)" in text
    assert "Phường Kim Long: vắng 1 (Vắng: Lê Văn Cường)" in text
    printed = printed_states(text)
    assert printed == {
        city.on_time.name: "Có mặt",
        city.late.name: "Đến muộn",
        city.chair.name: "Có mặt",
        city.dept_member.name: "Về sớm",
        city.absent.name: "Vắng",
    }


def printed_states(text: str) -> dict[str, str]:
    """Each name of the DOCX's attendance lines with the state it is printed under."""
    found: dict[str, str] = {}
    start = text.index("Thành phần tham dự:")
    for line in text[start:].splitlines()[1:]:
        if not line.startswith("- "):
            break
        detail = line.split(" (", 1)[1].rsplit(")", 1)[0] if " (" in line else ""
        for part in detail.split("; "):
            state, _, names = part.partition(": ")
            for name in names.split(", "):
                found[name.split(" (")[0]] = state
    return found


async def test_the_secretary_marks_an_excused_absence_kept_in_history_and_export(world: World) -> None:
    held = await hold_meeting(world)
    city, minutes_id = held.city, held.minutes_id
    await world.login(city.chair.email)
    data = await content_of(world, minutes_id)
    header_version = await header_version_of(world, minutes_id)
    # A reason is required; the person must be on the attendance.
    missing = await world.call(
        "POST",
        f"/api/minutes/{minutes_id}/attendance",
        json={
            "person_id": city.absent.id,
            "state": "excused",
            "reason": "",
            "header_version": header_version,
        },
    )
    assert missing.status == 422
    [problem] = (await missing.json())["error"]["fields"]
    assert problem["field"] == "reason" and "lý do" in problem["message"]
    stranger = await world.call(
        "POST",
        f"/api/minutes/{minutes_id}/attendance",
        json={
            "person_id": city.admin.id,
            "state": "excused",
            "reason": "x",
            "header_version": header_version,
        },
    )
    assert stranger.status == 422
    response = await world.call(
        "POST",
        f"/api/minutes/{minutes_id}/attendance",
        json={
            "person_id": city.absent.id,
            "state": "excused",
            "reason": "Đi công tác, đã báo trước",
            "header_version": header_version,
        },
    )
    assert response.status == 200, await response.text()
    other = await unit_of(world, minutes_id, "P-KIMLONG")
    assert (other["absent"], other["excused"]) == ([], [city.absent.name])
    data = await content_of(world, minutes_id)
    [change] = data["attendance_changes"]
    assert (change["name"], change["before"], change["state"], change["reason"], change["by"]) == (
        city.absent.name,
        "absent",
        "excused",
        "Đi công tác, đã báo trước",
        city.chair.name,
    )
    page = await (await world.client.get(f"/minutes/{minutes_id}")).text()
    assert 'id="attendance-history"' in page and "Đi công tác, đã báo trước" in page
    # An excused absence is still an absence for the room: no warning.
    for action in ("submit", "approve"):
        assert (await world.post_form(f"/minutes/{minutes_id}/{action}")).status == 303
    text = await docx_text(world, minutes_id, 1)
    assert (
        "Phường Kim Long: vắng có lý do 1 (Vắng có lý do: Lê Văn Cường (Đi công tác, đã báo trước))" in text
    )
    # The approved version keeps the history too.
    async with world.db() as db:
        version = workflow.version_content(await workflow.get_version(db, minutes_id, 1))
    assert [c["state"] for c in version["attendance_changes"]] == ["excused"]


async def header_version_of(world: World, minutes_id: int) -> int:
    async with world.db() as db:
        return (await minutes_service.get_minutes(db, minutes_id)).header_version


async def test_submit_and_approve_warn_when_the_minutes_disagree_with_the_room(world: World) -> None:
    held = await hold_meeting(world)
    city, minutes_id = held.city, held.minutes_id
    chair = actor_of(city.chair)
    async with world.db() as db:
        # Cường followed the meeting by phone: present in the minutes, absent in the room.
        await minutes_service.correct_attendance(
            db, chair, minutes_id, 1, city.absent.id, "present", "Theo dõi qua điện thoại"
        )
        await db.commit()
    async with world.db() as db:
        minutes = await minutes_service.get_minutes(db, minutes_id)
        with pytest.raises(minutes_attendance.AttendanceDisagrees) as caught:
            await workflow.submit(db, chair, minutes_id)
        [difference] = caught.value.differences
        assert (difference.name, difference.unit_code, difference.minutes, difference.room) == (
            city.absent.name,
            "P-KIMLONG",
            "present",
            "absent",
        )
        assert minutes.status is MinutesStatus.DRAFT
    await world.login(city.chair.email)
    for action, status in (("submit", "submitted"), ("approve", "approved")):
        warned = await world.post_form(f"/minutes/{minutes_id}/{action}")
        assert warned.status == 409
        page = await warned.text()
        assert 'id="attendance-warning"' in page and city.absent.name in page
        assert "Theo dõi qua điện thoại" in page and "Vắng mặt" in page and "Đúng giờ" in page
        assert 'name="confirm_attendance" value="1"' in page
        async with world.db() as db:
            assert (await minutes_service.get_minutes(db, minutes_id)).status is not MinutesStatus(status)
        confirmed = await world.post_form(f"/minutes/{minutes_id}/{action}", {"confirm_attendance": "1"})
        assert confirmed.status == 303, await confirmed.text()
        async with world.db() as db:
            assert (await minutes_service.get_minutes(db, minutes_id)).status is MinutesStatus(status)
    text = await docx_text(world, minutes_id, 1)
    assert "Phường Kim Long: có mặt 1 (Có mặt: Lê Văn Cường (Theo dõi qua điện thoại))" in text


async def test_the_header_table_turns_a_moved_name_into_a_correction(world: World) -> None:
    held = await hold_meeting(world)
    city, minutes_id = held.city, held.minutes_id
    chair = actor_of(city.chair)
    async with world.db() as db:
        minutes = await minutes_service.update_header(
            db,
            chair,
            minutes_id,
            1,
            {"attendance": {"P-KIMLONG": {"excused": [city.absent.name]}}, "reason": "Nghỉ phép"},
        )
        unit = next(u for u in minutes.header["attendance"] if u["unit_code"] == "P-KIMLONG")
        assert unit["excused"] == [city.absent.name] and unit["reasons"] == {city.absent.name: "Nghỉ phép"}
        from meetings.errors import InvalidInput

        with pytest.raises(InvalidInput):
            await minutes_service.update_header(
                db, chair, minutes_id, 2, {"attendance": {"P-KIMLONG": {"present": ["Không Ai"]}}}
            )
        await db.commit()


async def test_migration_0007_matches_the_model(world: World) -> None:
    table = "minutes_attendance_corrections"

    def include(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
        if type_ == "table":
            return name == table
        owner = getattr(obj, "table", None)
        return owner is None or owner.name == table

    def diff(conn: Connection) -> list[Any]:
        context = MigrationContext.configure(conn, opts={"include_object": include, "compare_type": True})
        return list(compare_metadata(context, Base.metadata))

    async with world.db() as db:
        conn = await db.connection()
        assert await conn.run_sync(diff) == []
