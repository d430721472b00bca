"""The pages of the issue register, the figures dashboard, the manual and the minutes fit a phone.

Each page is opened at 375 px and must not scroll sideways (wide tables scroll inside their
own box); screenshots at phone and desk widths are kept in test-artifacts/.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from meetings.accounts.permissions import Actor
from meetings.directory.models import Role, Unit
from meetings.figures import service as figures
from meetings.issues import service as issues
from meetings.manual import service as manual
from meetings.minutes import service as minutes_service
from tests.browser.conftest import artifact
from tests.browser.test_figures_manual_browser import sign_in
from tests.conftest import World
from tests.minutes.helpers import make_day

pytestmark = pytest.mark.browser
TZ = ZoneInfo("Asia/Ho_Chi_Minh")
EDITOR = Actor(id=0, email="cli", name="cli", role=Role.SECRETARY, unit_id=None)
WIDE = "document.documentElement.scrollWidth > window.innerWidth"


async def fill_data(world: World) -> int:
    """Figures for three weeks, an issue, a manual article, minutes with an entry: the minutes id."""
    day = await make_day(world)
    today = datetime.now(TZ).date()
    async with world.db() as db:
        units = {u.code: u for u in await db.scalars(select(Unit))}
        for back in range(1, 22):
            when: date = today - timedelta(days=back)
            for n, code in enumerate(("P-PHUXUAN", "P-THUANHOA")):
                values = {"day": when.isoformat(), "received": 10 + back + n, "resolved": 8 + n, "overdue": n}
                if back == 21:
                    values["backlog"] = 5
                await figures.submit(
                    db,
                    units[code],
                    figures.clean(values, today),
                    source="form",
                    by="t",
                    person_id=None,
                    tz=TZ,
                )
        await issues.report(
            db,
            day.member_actor,
            issues.ReportInput(
                text="Mất đồng bộ dữ liệu hồ sơ giữa Cổng dịch vụ công và phần mềm một cửa từ sáng nay",
                category="data_sync",
                severity="high",
            ),
        )
        article = await manual.create(
            db,
            EDITOR,
            manual.ArticleInput(
                "certified_copies",
                "Chứng thực bản sao điện tử từ bản chính?",
                "Đối chiếu bản chính, ký số bản sao và trả kết quả trên Cổng dịch vụ công quốc gia.",
            ),
        )
        await manual.publish(db, EDITOR, article.id)
        minutes = await minutes_service.ensure_minutes(db, day.afternoons[0])
        await minutes_service.add_entry(
            db,
            day.secretary_actor,
            minutes.id,
            minutes_service.EntryInput(
                kind="issue",
                unit="P-PHUXUAN",
                category="connectivity",
                text="Đường truyền chập chờn cả buổi sáng",
            ),
        )
        await db.commit()
    return minutes.id


async def test_the_new_pages_fit_a_phone(world: World, live_url: str, browser: Any) -> None:
    minutes_id = await fill_data(world)
    context = await browser.new_context(viewport={"width": 1100, "height": 800}, locale="vi-VN")
    page = await context.new_page()
    try:
        await sign_in(page, live_url, "chair@hue.example")
        pages = {
            "figures": "/figures",
            "issues": "/issues",
            "manual": "/manual",
            "minutes-view": f"/minutes/{minutes_id}",
            "minutes-edit": f"/minutes/{minutes_id}/edit",
        }
        too_wide = []
        for name, path in pages.items():
            await page.set_viewport_size({"width": 1100, "height": 800})
            await page.goto(f"{live_url}{path}")
            await page.wait_for_load_state("networkidle")
            await page.screenshot(path=artifact(f"layout-{name}.png"), full_page=True)
            await page.set_viewport_size({"width": 375, "height": 740})
            await page.wait_for_timeout(100)  # one layout pass after the resize
            if await page.evaluate(WIDE):
                too_wide.append(name)
            await page.screenshot(path=artifact(f"layout-{name}-phone.png"), full_page=True)
        assert too_wide == []
        # The chart scales down with the screen instead of overflowing it.
        await page.goto(f"{live_url}/figures")
        width = await page.evaluate("document.getElementById('trend').getBoundingClientRect().width")
        assert 0 < width <= 375
    finally:
        await context.close()
