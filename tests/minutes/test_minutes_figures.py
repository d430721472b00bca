"""The dossier figures frozen into approved morning minutes, on the read view and in the exports."""

from __future__ import annotations

import io
from datetime import date
from zoneinfo import ZoneInfo

import docx

from meetings.directory.models import Unit
from meetings.figures import service as figures
from meetings.minutes import export, service, workflow
from tests.conftest import World
from tests.minutes.helpers import make_day

TZ = ZoneInfo("Asia/Ho_Chi_Minh")


async def approved_morning(world: World) -> int:
    """Morning minutes of 7 January 2030, approved after P-PHUXUAN reported Friday the 4th."""
    day = await make_day(world)
    async with world.db() as db:
        unit = await world_unit(db, "P-PHUXUAN")
        reported = figures.clean(
            {"day": "2030-01-04", "received": 12, "resolved": 9, "overdue": 1, "backlog": 3},
            date(2030, 1, 7),
        )
        await figures.submit(db, unit, reported, source="form", by="t", person_id=None, tz=TZ)
        minutes = await service.ensure_minutes(db, day.mornings[0])
        await workflow.submit(db, day.secretary_actor, minutes.id)
        await workflow.approve(db, day.chair_actor, minutes.id)
        await db.commit()
    await world.login(day.chair.email)
    return minutes.id


async def world_unit(db: object, code: str) -> Unit:
    from sqlalchemy import select
    from sqlalchemy.ext.asyncio import AsyncSession

    assert isinstance(db, AsyncSession)
    found = await db.scalar(select(Unit).where(Unit.code == code))
    assert found is not None
    return found


async def test_the_read_view_shows_the_frozen_figures(world: World) -> None:
    minutes_id = await approved_morning(world)
    for path in (f"/minutes/{minutes_id}", f"/minutes/{minutes_id}/versions/1"):
        response = await world.client.get(path)
        assert response.status == 200, path
        page = await response.text()
        assert 'id="minutes-figures"' in page and "Số liệu hồ sơ" in page, path
        block = page.split('id="minutes-figures"', 1)[1].split("</section>", 1)[0]
        assert "04/01/2030" in block and "2030-01-04" not in block
        # Centres by name (the code only as a tooltip), and those that did not report are named.
        assert '<td title="P-PHUXUAN">Phường Phú Xuân</td><td>12</td><td>9</td><td>1</td>' in block
        assert "Phường Thuận Hóa" in block


async def test_minutes_without_figures_show_no_figures_block(world: World) -> None:
    day = await make_day(world)
    await world.login(day.secretary.email)
    response = await world.client.get(f"/meetings/occurrences/{day.afternoons[0].id}/minutes")
    assert response.status == 200
    assert 'id="minutes-figures"' not in await response.text()


async def test_the_exports_carry_the_figures(world: World) -> None:
    minutes_id = await approved_morning(world)
    md = await world.client.get(f"/minutes/{minutes_id}/export/md?version=1")
    assert md.status == 200
    text = await md.text()
    assert "SỐ LIỆU HỒ SƠ NGÀY 04/01/2030" in text
    assert "Phường Phú Xuân: tiếp nhận 12, đã giải quyết 9, quá hạn 1." in text
    assert "Chưa báo cáo: " in text and "Phường Thuận Hóa" in text and "P-THUANHOA" not in text
    assert "tỷ lệ giải quyết 60,0%" in text  # 9 ÷ (12 + 3)
    body = await (await world.client.get(f"/minutes/{minutes_id}/export/docx?version=1")).read()
    paragraphs = [p.text for p in docx.Document(io.BytesIO(body)).paragraphs]
    assert "SỐ LIỆU HỒ SƠ NGÀY 04/01/2030" in paragraphs


def test_figures_part_lists_totals_centres_and_who_did_not_report() -> None:
    heading, lines = export.figures_part(
        {
            "day": "2030-01-06",
            "received": 20,
            "resolved": 10,
            "overdue": 2,
            "backlog": 5,
            "rate": 0.4,
            "centres": [
                {"code": "A", "name": "Phường A", "received": 20, "resolved": 10, "overdue": 2},
                {"code": "Z", "received": 1, "resolved": 1, "overdue": 0},  # approved before names were kept
            ],
            "missing": ["B", "C"],
            "missing_names": ["Phường B", "Phường C"],
        }
    )
    assert heading == "SỐ LIỆU HỒ SƠ NGÀY 06/01/2030"
    assert lines == [
        "Tổng: tiếp nhận 20, đã giải quyết 10, quá hạn 2, tồn 5; tỷ lệ giải quyết 40,0%.",
        "- Phường A: tiếp nhận 20, đã giải quyết 10, quá hạn 2.",
        "- Z: tiếp nhận 1, đã giải quyết 1, quá hạn 0.",
        "Chưa báo cáo: Phường B, Phường C.",
    ]
