"""The home page by role: the chair, a centre, a support team."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from meetings.directory.models import Role, UnitKind
from meetings.figures import service as figures
from tests.conftest import World

TZ = ZoneInfo("Asia/Ho_Chi_Minh")


async def test_each_role_sees_its_panels(world: World) -> None:
    centre = await world.unit("P-PHUXUAN", UnitKind.CENTRE, "Phường Phú Xuân")
    await world.unit("P-THUANHOA", UnitKind.CENTRE, "Phường Thuận Hóa")
    dost = await world.unit("DOST", UnitKind.SUPPORT, "Sở KH&CN")
    chair = await world.person("chair@hue.example", Role.CHAIR)
    staff = await world.person("staff@hue.example", Role.MEMBER, centre)
    engineer = await world.person("dost@hue.example", Role.MEMBER, dost)
    yesterday = datetime.now(TZ).date() - timedelta(days=1)
    async with world.db() as db:
        await figures.submit(
            db, centre, figures.Figures(yesterday, 40, 30, 2, 0), source="api", by="t", person_id=None, tz=TZ
        )
        await db.commit()

    await world.login(staff.email)
    reported = await world.call(
        "POST", "/api/issues", json={"text": "Máy quét hỏng", "category": "equipment"}
    )
    issue_id = (await reported.json())["issue"]["id"]
    html = await (await world.client.get("/")).text()
    assert 'id="home-report"' in html and 'id="home-manual"' in html and f"/issues/{issue_id}" in html
    assert (
        'id="home-figures"' not in html and 'id="home-issues"' not in html and 'id="home-owned"' not in html
    )
    await world.logout()

    await world.login(engineer.email)
    html = await (await world.client.get("/")).text()
    assert 'id="home-owned"' in html and f"/issues/{issue_id}" not in html  # not theirs yet
    assert 'id="home-report"' not in html
    await world.logout()

    await world.login(chair.email)
    assigned = await world.call("POST", f"/api/issues/{issue_id}/assign", json={"owner": "DOST"})
    assert assigned.status == 200
    html = await (await world.client.get("/")).text()
    assert 'id="home-issues"' in html and 'id="home-figures"' in html and f"/issues/{issue_id}" in html
    assert "P-THUANHOA" in html.split('id="home-figures"')[1]  # has not reported
    assert 'href="/meetings"' in html  # today's meetings are still there
    await world.logout()

    await world.login(engineer.email)
    html = await (await world.client.get("/")).text()
    assert f"/issues/{issue_id}" in html.split('id="home-owned"')[1]
