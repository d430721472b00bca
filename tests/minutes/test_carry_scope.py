"""Carried items stay in the series they belong to (issue #13, item 4).

An ad hoc meeting about a network outage began with the open issues of other centres listed
as raised in it. Its minutes must hold only what is raised in it; a daily meeting carries the
open issues of the daily rhythm in its carried section, marked as carried, printed so.
"""

from __future__ import annotations

import io
from typing import Any

import docx
from sqlalchemy import select

from meetings.cli import CLI_ACTOR
from meetings.issues import service as issues
from meetings.minutes import export, service, workflow
from meetings.minutes.models import CarriedEntry
from meetings.minutes.service import EntryInput
from meetings.schedule import service as schedule
from meetings.schedule.models import Occurrence
from meetings.schedule.service import get_occurrence
from tests.conftest import World
from tests.minutes.helpers import NOW, make_day

ISSUE = EntryInput(
    kind="issue", text="Mất đồng bộ dữ liệu hồ sơ", unit="P-PHUXUAN", category="data_sync", severity="high"
)


async def minutes_for(world: World, occ_id: int) -> int:
    async with world.db() as db:
        minutes = await service.ensure_minutes(db, await get_occurrence(db, occ_id))
        await db.commit()
        return minutes.id


def docx_of(data: dict[str, Any]) -> str:
    document = docx.Document(io.BytesIO(export.to_docx(data)))
    return "\n".join(p.text for p in document.paragraphs)


def part(text: str, heading: str, until: str) -> str:
    return text[text.index(heading) : text.index(until, text.index(heading))]


async def test_ad_hoc_minutes_hold_no_other_items_and_the_series_carries_its_own(world: World) -> None:
    day = await make_day(world)
    morning, afternoon = day.mornings[0], day.afternoons[0]
    m1 = await minutes_for(world, morning.id)
    async with world.db() as db:
        raised = await service.add_entry(db, day.secretary_actor, m1, ISSUE, now=NOW)
        # Five issues reported by centres between meetings, two of them by a centre of the daily
        # meetings, three by a centre the daily meetings do not invite.
        for i, unit in enumerate(("P-THUANHOA", "P-THUANHOA", "P-OTHER", "P-OTHER", "P-OTHER")):
            text = f"Báo cáo {i + 1} của {unit}"
            await issues.report(db, day.secretary_actor, issues.ReportInput(text=text, unit=unit), now=NOW)
        ctx = schedule.Context(
            base_url="http://t",
            secret=world.settings.secret_key,
            organizer_email="org@hue.example",
            organizer_name="VP",
            now=NOW,
        )
        adhoc = await schedule.create_adhoc(
            db,
            CLI_ACTOR,
            schedule.SeriesInput(
                title="Sự cố mất kết nối mạng",
                start_date="2030-01-07",
                start_time="10:00",
                duration_minutes="30",
                unit_codes=["VNPT"],
                chair_email=day.chair.email,
                secretary_email=day.secretary.email,
            ),
            ctx,
        )
        outage = await db.scalar(select(Occurrence).where(Occurrence.series_id == adhoc.id))
        assert outage is not None
        await db.commit()

    m_adhoc = await minutes_for(world, outage.id)
    async with world.db() as db:
        minutes = await service.get_minutes(db, m_adhoc)
        data = await workflow.content(db, minutes)
        assert [e for s in data["sections"] for e in s["entries"]] == []
        assert data["carried"] == []
        # Its own issue is raised here.
        outage_issue = await service.add_entry(
            db,
            day.secretary_actor,
            m_adhoc,
            EntryInput(kind="issue", text="Mất kết nối mạng diện rộng", unit="VNPT", category="connectivity"),
            now=NOW,
        )
        # A carried row of another series (as the old carry-over made them) is dropped on sync.
        db.add(CarriedEntry(minutes_id=m_adhoc, entry_id=raised.id))
        await db.flush()
        await service.sync_carried(db, minutes)
        assert await service.carried_entries(db, m_adhoc) == []
        await db.commit()
        text = docx_of(await workflow.content(db, minutes))
    assert "Báo cáo" not in text and ISSUE.text not in text
    assert part(text, "III. CÁC VẤN ĐỀ", "Cuộc họp kết thúc").count("- Không có.") == 1

    # The afternoon meeting carries the morning's open issue, marked as carried; it takes the
    # reports of its own centres, not those of a centre it does not invite nor the outage's issue.
    m2 = await minutes_for(world, afternoon.id)
    async with world.db() as db:
        minutes = await service.get_minutes(db, m2)
        data = await workflow.content(db, minutes)
        assert [e["id"] for e in data["carried"]] == [raised.id]
        own = [e["text"] for s in data["sections"] for e in s["entries"]]
        assert own == ["Báo cáo 1 của P-THUANHOA", "Báo cáo 2 của P-THUANHOA"]
        assert outage_issue.id not in {e["id"] for e in data["carried"]}
        text = docx_of(data)
    body = part(text, "II. NỘI DUNG", "III. CÁC VẤN ĐỀ")
    carried = part(text, "III. CÁC VẤN ĐỀ", "Cuộc họp kết thúc")
    assert ISSUE.text not in body and "Mất kết nối mạng" not in text
    assert "- [Chuyển tiếp] [Vấn đề phát sinh] (Phường Phú Xuân) Mất đồng bộ dữ liệu hồ sơ" in carried
    assert "(nêu ngày 07/01/2030, ghi bởi Trần Thị Thư Ký)" in carried

    # The read view marks it as carried too.
    await world.login(day.secretary.email)
    page = await (await world.client.get(f"/minutes/{m2}")).text()
    assert page.count('class="badge carried"') == 1
    adhoc_page = await (await world.client.get(f"/minutes/{m_adhoc}")).text()
    assert 'class="badge carried"' not in adhoc_page and "Báo cáo" not in adhoc_page
