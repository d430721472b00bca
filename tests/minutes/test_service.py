"""Minutes on a real database: template, entries, versions and history, carry-over, workflow."""

from __future__ import annotations

import email
import email.policy
import json
from datetime import timedelta

import pytest
from sqlalchemy import select

from meetings.errors import Conflict, Forbidden, InvalidInput
from meetings.mail.models import OutboxMessage
from meetings.minutes import reminders, service, workflow
from meetings.minutes.models import EntryStatus, MinutesStatus
from meetings.minutes.service import EntryInput
from meetings.rooms import attendance
from meetings.schedule import jobs
from meetings.schedule.service import get_occurrence
from tests.conftest import World
from tests.minutes.helpers import NOW, make_day

ISSUE = EntryInput(
    kind="issue", text="Mất đồng bộ dữ liệu hồ sơ", unit="P-PHUXUAN", category="data_sync", severity="high"
)


async def minutes_for(world: World, occ_id: int) -> int:
    async with world.db() as db:
        occ = await get_occurrence(db, occ_id)
        minutes = await service.ensure_minutes(db, occ)
        await db.commit()
        return minutes.id


async def test_minutes_from_the_template_with_attendance_in_the_header(world: World) -> None:
    day = await make_day(world)
    morning = day.mornings[0]
    async with world.db() as db:
        await attendance.record_join(db, morning.id, day.member.id, day.member.unit_id, morning.start)
        await db.commit()
    minutes_id = await minutes_for(world, morning.id)
    assert minutes_id == await minutes_for(world, morning.id)  # created once
    async with world.db() as db:
        minutes = await service.get_minutes(db, minutes_id)
        data = await workflow.content(db, minutes)
    assert minutes.template == "morning"
    assert [s["key"] for s in data["sections"]] == ["situation", "figures", "directions"]
    header = data["header"]
    assert header["date"] == "2030-01-07" and header["start"] == "07:30"
    assert header["chair"] == "Nguyễn Văn Chủ Trì" and header["secretary"] == "Trần Thị Thư Ký"
    phu_xuan = next(u for u in header["attendance"] if u["unit_code"] == "P-PHUXUAN")
    assert phu_xuan["present"] == ["Lê Văn Thành Viên"]
    vnpt = next(u for u in header["attendance"] if u["unit_code"] == "VNPT")
    assert vnpt["present"] == [] and vnpt["absent"] == []


async def test_header_is_editable_with_its_version(world: World) -> None:
    day = await make_day(world)
    minutes_id = await minutes_for(world, day.mornings[0].id)
    async with world.db() as db:
        m = await service.update_header(
            db, day.secretary_actor, minutes_id, 1, {"chair": "Phó Chủ tịch Hoàng", "attendance": {}}
        )
        assert m.header["chair"] == "Phó Chủ tịch Hoàng" and m.header_version == 2
        with pytest.raises(Conflict):
            await service.update_header(db, day.secretary_actor, minutes_id, 1, {"chair": "x"})
        with pytest.raises(InvalidInput):
            await service.update_header(db, day.secretary_actor, minutes_id, 2, {"attendance": {"NOPE": {}}})


async def test_entries_versions_conflict_and_history(world: World) -> None:
    day = await make_day(world)
    minutes_id = await minutes_for(world, day.afternoons[0].id)
    async with world.db() as db:
        entry = await service.add_entry(db, day.secretary_actor, minutes_id, ISSUE, now=NOW)
        assert entry.section == "difficulties" and entry.version == 1
        changed = EntryInput(**{**ISSUE.__dict__, "text": "Mất đồng bộ dữ liệu, đã báo VNPT"})
        await service.update_entry(db, day.chair_actor, minutes_id, entry.id, 1, changed, now=NOW)
        assert entry.version == 2
        stale = EntryInput(**{**ISSUE.__dict__, "text": "bản cũ"})
        with pytest.raises(service.EntryConflict) as caught:
            await service.update_entry(db, day.secretary_actor, minutes_id, entry.id, 1, stale, now=NOW)
        assert caught.value.current["text"] == "Mất đồng bộ dữ liệu, đã báo VNPT"
        assert caught.value.current["version"] == 2
        changes = await service.history(db, entry.id)
        await db.commit()
    assert [c.action for c in changes] == ["create", "update"]
    assert changes[1].person_name == "Nguyễn Văn Chủ Trì"
    assert changes[1].before == {"text": "Mất đồng bộ dữ liệu hồ sơ"}
    assert changes[1].after == {"text": "Mất đồng bộ dữ liệu, đã báo VNPT"}


async def test_bad_input_is_refused_with_every_reason(world: World) -> None:
    day = await make_day(world)
    minutes_id = await minutes_for(world, day.afternoons[0].id)
    async with world.db() as db:
        bad = EntryInput(kind="action", text="  ", owner_unit="NOPE", due_date="2030-01-01")
        with pytest.raises(InvalidInput) as caught:
            await service.add_entry(db, day.secretary_actor, minutes_id, bad, now=NOW)
        fields = {e.field for e in caught.value.errors}
        assert fields == {"text", "owner_unit", "due_date"}
        with pytest.raises(InvalidInput):
            await service.add_entry(db, day.secretary_actor, minutes_id, EntryInput(text="x" * 4001), now=NOW)
        with pytest.raises(InvalidInput):
            await service.add_entry(db, day.secretary_actor, minutes_id, EntryInput(kind="bogus", text="x"))
        with pytest.raises(Forbidden):
            await service.add_entry(db, day.member_actor, minutes_id, EntryInput(text="x"), now=NOW)
        html = EntryInput(text="<script>alert(1)</script> & <b>đậm</b>")
        entry = await service.add_entry(db, day.secretary_actor, minutes_id, html, now=NOW)
        assert entry.text == "<script>alert(1)</script> & <b>đậm</b>"  # stored as text


async def test_reorder_and_link_an_action_to_its_issue(world: World) -> None:
    day = await make_day(world)
    minutes_id = await minutes_for(world, day.afternoons[0].id)
    async with world.db() as db:
        a = await service.add_entry(db, day.secretary_actor, minutes_id, ISSUE, now=NOW)
        b = await service.add_entry(db, day.secretary_actor, minutes_id, EntryInput(kind="lesson", text="B"))
        action = EntryInput(
            kind="action",
            text="VNPT kiểm tra đường truyền",
            owner_unit="VNPT",
            due_date="2030-01-08",
            link_id=a.id,
        )
        c = await service.add_entry(db, day.secretary_actor, minutes_id, action, now=NOW)
        assert c.link_id == a.id
        ordered = await service.move_entry(db, day.secretary_actor, minutes_id, c.id, c.version, 1)
        assert [e.id for e in ordered] == [c.id, a.id, b.id]
        with pytest.raises(InvalidInput):
            bad_link = EntryInput(**{**action.__dict__, "link_id": 99999})
            await service.add_entry(db, day.secretary_actor, minutes_id, bad_link, now=NOW)


async def test_a_whole_day_carried_over_approved_and_published(world: World) -> None:
    day = await make_day(world)
    morning, afternoon, next_morning = day.mornings[0], day.afternoons[0], day.mornings[1]
    m1 = await minutes_for(world, morning.id)
    async with world.db() as db:
        issue = await service.add_entry(db, day.secretary_actor, m1, ISSUE, now=NOW)
        direction = EntryInput(kind="decision", text="Sở KH&CN phối hợp xử lý trong ngày")
        await service.add_entry(db, day.chair_actor, m1, direction, now=NOW)
        await db.commit()
    # The afternoon minutes carry the open issue: the same entry, not a copy.
    m2 = await minutes_for(world, afternoon.id)
    async with world.db() as db:
        carried = await service.carried_entries(db, m2)
        assert [e.id for e in carried] == [issue.id]
        action = EntryInput(
            kind="action", text="VNPT đồng bộ lại", owner_unit="VNPT", due_date="2030-01-08", link_id=issue.id
        )
        await service.add_entry(db, day.secretary_actor, m2, action, now=NOW)
        # Its text is changed where it was raised; here it can be closed.
        with pytest.raises(Conflict):
            await service.update_entry(db, day.secretary_actor, m2, issue.id, issue.version, ISSUE, now=NOW)
        data = await workflow.content(db, await service.get_minutes(db, m2))
        assert data["carried"][0]["raised_on"] == "2030-01-07"
        assert data["carried"][0]["raised_by"] == "Trần Thị Thư Ký"
        assert data["carried"][0]["since"][0]["text"] == "VNPT đồng bộ lại"
        await db.commit()
    # Next morning: the issue and the undone action come back; the issue is closed there.
    m3 = await minutes_for(world, next_morning.id)
    async with world.db() as db:
        carried = await service.carried_entries(db, m3)
        assert {e.kind.value for e in carried} == {"issue", "action"}
        closed = await service.set_status(db, day.secretary_actor, m3, issue.id, issue.version, "closed")
        assert closed.status == EntryStatus.CLOSED and closed.closed_in_id == m3
        history = await service.history(db, issue.id)
        assert [h.action for h in history] == ["create", "close"] and history[1].minutes_id == m3
        await db.commit()
    m4 = await minutes_for(world, day.afternoons[1].id)
    async with world.db() as db:
        assert [e.kind.value for e in await service.carried_entries(db, m4)] == ["action"]

    # Workflow of the morning minutes.
    async with world.db() as db:
        with pytest.raises(Conflict):
            await workflow.approve(db, day.chair_actor, m1)  # not submitted
        await workflow.submit(db, day.secretary_actor, m1)
        with pytest.raises(Forbidden):
            await workflow.approve(db, day.secretary_actor, m1)
        version = await workflow.approve(db, day.chair_actor, m1)
        assert version.sha256 == workflow.digest(version.content)
        assert json.loads(version.content)["sections"][0]["entries"][0]["text"] == ISSUE.text
        with pytest.raises(Conflict):
            await service.add_entry(db, day.secretary_actor, m1, EntryInput(text="late"), now=NOW)
        queued = await workflow.publish(
            db, day.secretary_actor, m1, base_url="http://t", sender_email="vp@hue.example", sender_name="VP"
        )
        again = await workflow.publish(
            db, day.secretary_actor, m1, base_url="http://t", sender_email="vp@hue.example", sender_name="VP"
        )
        await db.commit()
    assert queued == 3 and again == 0  # chair, secretary and the one member of an invited unit
    async with world.db() as db:
        rows = list(await db.scalars(select(OutboxMessage).where(OutboxMessage.kind == "minutes")))
    msg = email.message_from_bytes(rows[0].message, policy=email.policy.default)
    names = sorted(str(part.get_filename()) for part in msg.iter_attachments())
    assert names == [f"bien-ban-2030-01-07-{m1}-v1.docx", f"bien-ban-2030-01-07-{m1}-v1.pdf"]
    assert f"http://t/minutes/{m1}/versions/1" in msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]

    # A correction makes version 2; version 1 stays readable and unchanged.
    async with world.db() as db:
        minutes = await workflow.correct(db, day.chair_actor, m1)
        assert minutes.status == MinutesStatus.DRAFT and minutes.version_no == 2
        await service.add_entry(db, day.secretary_actor, m1, EntryInput(text="Bổ sung"), now=NOW)
        await workflow.submit(db, day.secretary_actor, m1)
        v2 = await workflow.approve(db, day.chair_actor, m1)
        v1 = await workflow.get_version(db, m1, 1)
        assert v1.sha256 != v2.sha256
        assert "Bổ sung" not in v1.content and "Bổ sung" in v2.content


async def test_reading_rules(world: World) -> None:
    day = await make_day(world)
    m1 = await minutes_for(world, day.mornings[0].id)
    async with world.db() as db:
        minutes = await service.get_minutes(db, m1)
        await service.check_read(db, day.secretary_actor, minutes)
        with pytest.raises(Forbidden):
            await service.check_read(db, day.member_actor, minutes)  # not published yet
        await workflow.submit(db, day.secretary_actor, m1)
        await workflow.approve(db, day.chair_actor, m1)
        await workflow.publish(
            db, day.secretary_actor, m1, base_url="http://t", sender_email="vp@hue.example", sender_name="VP"
        )
        await service.check_read(db, day.member_actor, minutes)
        from meetings.accounts.service import actor_of

        with pytest.raises(Forbidden):
            await service.check_read(db, actor_of(day.outsider), minutes)  # not invited


async def test_search_with_and_without_diacritics(world: World) -> None:
    day = await make_day(world)
    m1 = await minutes_for(world, day.mornings[0].id)
    async with world.db() as db:
        await service.add_entry(db, day.secretary_actor, m1, ISSUE, now=NOW)
        await service.add_entry(
            db, day.secretary_actor, m1, EntryInput(text="Thu phí trực tuyến lỗi"), now=NOW
        )
        await db.commit()
        for query in ("dong bo du lieu", "ĐỒNG BỘ dữ liệu", "p-phuxuan dong bo"):
            hits = await service.search(db, day.secretary_actor, query)
            assert [h.entry.text for h in hits] == [ISSUE.text], query
        assert await service.search(db, day.secretary_actor, "100%") == []
        assert await service.search(db, day.member_actor, "dong bo") == []  # not published


async def test_the_secretary_is_reminded_only_while_not_submitted(world: World) -> None:
    day = await make_day(world)
    occ = day.mornings[0]
    ctx = jobs.context_from(world.settings, occ.end + timedelta(minutes=31))
    async with world.db() as db:
        assert await reminders.needs_reminder(db, occ.id)
        m = await service.ensure_minutes(db, occ)
        await workflow.submit(db, day.secretary_actor, m.id)
        assert not await reminders.needs_reminder(db, occ.id)
        assert await jobs.queue_minutes_due(db, occ.id, ctx) == 0
        other = day.afternoons[0]
        assert await jobs.queue_minutes_due(db, other.id, jobs.context_from(world.settings, other.end)) == 1
