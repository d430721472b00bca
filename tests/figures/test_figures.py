"""Daily figures: form, CSV, token API, corrections and duplicates, bad input, dashboard, exports."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import openpyxl  # type: ignore[import-untyped]
import pytest
from sqlalchemy import select

from meetings.accounts.permissions import Actor
from meetings.directory.models import Role, Unit, UnitKind
from meetings.errors import Conflict, InvalidInput
from meetings.figures import service
from meetings.figures.models import DailyReport, ReportToken
from meetings.figures.service import last_working_day
from meetings.schedule.workdays import WorkingCalendar
from tests.conftest import World

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
ADMIN = Actor(id=0, email="cli", name="cli", role=Role.ADMINISTRATOR, unit_id=None)


def today() -> date:
    return datetime.now(TZ).date()


async def centres(world: World) -> tuple[Unit, Unit]:
    a = await world.unit("P-PHUXUAN", UnitKind.CENTRE, "Phường Phú Xuân")
    b = await world.unit("P-THUANHOA", UnitKind.CENTRE, "Phường Thuận Hóa")
    return a, b


async def token_for(world: World, code: str) -> str:
    async with world.db() as db:
        token, _row = await service.issue_token(db, ADMIN, code)
        await db.commit()
    return token


async def post(world: World, token: str, **body: Any) -> Any:
    return await world.client.post(
        "/api/figures", json=body, headers={"Authorization": f"Bearer {token}"}, allow_redirects=False
    )


def test_validation_reports_every_problem() -> None:
    t = date(2030, 1, 7)
    with pytest.raises(InvalidInput) as caught:
        service.clean({"day": "2030-01-08", "received": "-1", "resolved": "abc", "overdue": ""}, t)
    found = {(e.field, e.message) for e in caught.value.errors}
    assert ("day", "You cannot report figures for a future date.") in found
    assert ("received", "A count cannot be negative.") in found
    assert ("resolved", "Enter a whole number.") in found
    assert ("overdue", "Enter a number.") in found
    figures = service.clean({"day": "2030-01-07", "received": 5, "resolved": 9, "overdue": 0}, t)
    with pytest.raises(InvalidInput) as caught:
        service.check_totals(figures, backlog=3)
    assert caught.value.errors[0].field == "resolved"
    service.check_totals(figures, backlog=4)  # 9 <= 5 + 4
    with pytest.raises(InvalidInput):
        service.clean({"day": "2030-01-07", "received": True, "resolved": 0, "overdue": 0}, t)
    with pytest.raises(InvalidInput):
        service.clean({"day": "2030-01-07", "received": 10**7, "resolved": 0, "overdue": 0}, t)


async def test_duplicates_corrections_and_backlog(world: World) -> None:
    unit, _other = await centres(world)
    now = datetime.now(UTC)
    d = today()
    async with world.db() as db:
        yesterday = service.clean(
            {
                "day": (d - timedelta(days=1)).isoformat(),
                "received": 10,
                "resolved": 4,
                "overdue": 1,
                "backlog": 2,
            },
            d,
        )
        await service.submit(db, unit, yesterday, source="form", by="a", person_id=None, tz=TZ, now=now)
        figures = service.clean({"day": d.isoformat(), "received": 3, "resolved": 8, "overdue": 0}, d)
        first = await service.submit(db, unit, figures, source="form", by="a", person_id=None, tz=TZ, now=now)
        assert first.result == "created" and first.report.backlog == 8  # 2 + 10 − 4 carried
        again = await service.submit(db, unit, figures, source="api", by="b", person_id=None, tz=TZ, now=now)
        assert again.result == "unchanged" and again.report.version == 1
        fixed = service.clean({"day": d.isoformat(), "received": 4, "resolved": 8, "overdue": 0}, d)
        corrected = await service.submit(
            db, unit, fixed, source="form", by="c", person_id=None, tz=TZ, now=now
        )
        assert corrected.result == "corrected" and corrected.report.version == 2
        history = await service.revisions(db, corrected.report.id)
        assert [(r.version, r.values["received"]) for r in history] == [(1, 3), (2, 4)]
        # The next day, the report can no longer be corrected.
        later = now + timedelta(days=1)
        late = service.clean({"day": d.isoformat(), "received": 5, "resolved": 8, "overdue": 0}, d)
        with pytest.raises(Conflict):
            await service.submit(db, unit, late, source="form", by="c", person_id=None, tz=TZ, now=later)
        await db.commit()


async def test_the_centre_form(world: World) -> None:
    unit, _other = await centres(world)
    staff = await world.person("staff@hue.example", Role.MEMBER, unit)
    await world.login(staff.email)
    page = await world.client.get("/figures/report")
    assert page.status == 200 and "Phường Phú Xuân" in await page.text()
    values = {"day": today().isoformat(), "received": "12", "resolved": "7", "overdue": "1", "backlog": ""}
    saved = await world.post_form("/figures/report", values)
    assert saved.status == 303 and saved.headers["Location"].endswith("done=created")
    same = await world.post_form("/figures/report", values)
    assert same.headers["Location"].endswith("done=unchanged")
    fixed = await world.post_form("/figures/report", values | {"resolved": "9"})
    assert fixed.headers["Location"].endswith("done=corrected")
    bad = await world.post_form("/figures/report", values | {"received": "-3", "resolved": "99"})
    assert bad.status == 422
    assert 'aria-invalid="true"' in await bad.text()
    future = await world.post_form(
        "/figures/report", values | {"day": (today() + timedelta(days=1)).isoformat()}
    )
    assert future.status == 422
    async with world.db() as db:
        report = await db.scalar(select(DailyReport))
        assert report is not None and (report.received, report.resolved, report.version) == (12, 9, 2)
    html = await (await world.client.get("/figures/report")).text()
    assert 'id="report-history"' in html


async def test_people_outside_a_centre_do_not_report(world: World) -> None:
    dost = await world.unit("DOST", UnitKind.SUPPORT, "Sở KH&CN")
    engineer = await world.person("dost@hue.example", Role.MEMBER, dost)
    await world.login(engineer.email)
    assert (await world.client.get("/figures/report")).status == 403
    assert (await world.post_form("/figures/report", {"day": today().isoformat()})).status == 403


async def test_csv_upload_is_all_or_nothing_with_line_numbers(world: World) -> None:
    unit, _other = await centres(world)
    staff = await world.person("staff@hue.example", Role.MEMBER, unit)
    await world.login(staff.email)
    d = today()

    async def upload(text: str) -> Any:
        await world.ensure_csrf_cookie()
        from aiohttp import FormData

        form = FormData()
        form.add_field("csrf_token", world.csrf_token())
        form.add_field("file", text.encode("utf-8"), filename="so-lieu.csv", content_type="text/csv")
        return await world.client.post("/figures/upload", data=form, allow_redirects=False)

    y = (d - timedelta(days=1)).isoformat()
    bad = (
        "day,centre,received,resolved,overdue,procedure\n"
        f"{y},P-PHUXUAN,10,5,0,\n"
        f"{d.isoformat()},P-PHUXUAN,-4,1,0,\n"
        f"2099-01-01,P-PHUXUAN,1,1,0,\n"
        f"{y},P-PHUXUAN,1,1,0,\n"
        f"{d.isoformat()},P-PHUXUAN,2,100,0,Chứng thực\n"
    )
    response = await upload(bad)
    assert response.status == 422
    text = await response.text()
    for line in (3, 4, 5):
        assert f"Line {line}" in text or f"Dòng {line}" in text
    async with world.db() as db:
        assert await db.scalar(select(DailyReport)) is None  # nothing stored
    # Resolved over received + backlog is caught after parsing, still with its line, still nothing stored.
    over = f"day,centre,received,resolved,overdue\n{y},P-PHUXUAN,10,5,0\n{d.isoformat()},P-PHUXUAN,1,50,0\n"
    response = await upload(over)
    assert response.status == 422 and ("Line 3" in await response.text() or "Dòng 3" in await response.text())
    async with world.db() as db:
        assert await db.scalar(select(DailyReport)) is None
    other = f"day,centre,received,resolved,overdue\n{y},P-THUANHOA,1,1,0\n"
    refused = await upload(other)  # another centre's line: listed with the other errors
    assert refused.status == 422 and "P-THUANHOA" in await refused.text()
    assert (await upload("not,a,csv\n1,2\n")).status == 422
    good = (
        "\ufeffday,centre,received,resolved,overdue,backlog,procedure\n"
        f"{y},P-PHUXUAN,10,5,0,0,\n"
        f"{d.isoformat()},P-PHUXUAN,4,2,1,,Chứng thực bản sao\n"
        f"{d.isoformat()},P-PHUXUAN,3,1,0,,Đăng ký kinh doanh\n"
    )
    response = await upload(good)
    assert response.status == 303, await response.text()
    assert (await upload(good)).headers["Location"].endswith("done=unchanged")  # idempotent
    async with world.db() as db:
        rows = list(await db.scalars(select(DailyReport).order_by(DailyReport.day)))
    assert [(r.received, r.resolved, r.backlog) for r in rows] == [(10, 5, 0), (7, 3, 5)]
    assert rows[1].procedures["Chứng thực bản sao"] == {"received": 4, "resolved": 2, "overdue": 1}


async def test_token_api_reports_for_its_own_centre_only(world: World) -> None:
    unit, other = await centres(world)
    token = await token_for(world, unit.code)
    body = {"day": today().isoformat(), "received": 20, "resolved": 15, "overdue": 2}
    assert (await world.client.post("/api/figures", json=body)).status == 401
    assert (await post(world, "gbf_wrong", **body)).status == 403
    assert (await post(world, token, **body, centre=other.code)).status == 403
    created = await post(world, token, **body)
    assert created.status == 201, await created.text()
    assert (await created.json())["report"]["centre"] == unit.code
    again = await post(world, token, **body, centre=unit.code)
    assert again.status == 200 and (await again.json())["result"] == "unchanged"
    fixed = await post(world, token, **(body | {"resolved": 16}))
    assert (await fixed.json())["result"] == "corrected"
    for wrong in (
        {"received": -1},
        {"resolved": 10_000},
        {"day": (today() + timedelta(days=2)).isoformat()},
        {"day": "yesterday"},
        {"received": "1e3"},
        {"procedures": ["x"]},
    ):
        response = await post(world, token, **(body | wrong))
        assert response.status == 422, (wrong, await response.text())
    # Stored hashed; a revoked token stops working.
    async with world.db() as db:
        row = await db.scalar(select(ReportToken))
        assert row is not None and token not in row.token_hash and len(row.token_hash) == 64
        await service.revoke_token(db, ADMIN, row.id)
        await db.commit()
    assert (await post(world, token, **body)).status == 403


async def test_dashboard_ranking_missing_trend_and_exports(world: World) -> None:
    a, b = await centres(world)
    c = await world.unit("P-HUONGTRA", UnitKind.CENTRE, "Phường Hương Trà")
    del c
    # The last working day before today: on a weekend or a holiday nobody is "missing".
    d = last_working_day(WorkingCalendar(), today() - timedelta(days=1))
    async with world.db() as db:
        for unit, received, resolved in ((a, 10, 5), (b, 10, 9)):
            for back in range(0, 21, 7):
                figures = service.Figures(d - timedelta(days=back), received, resolved, 1, 0)
                await service.submit(db, unit, figures, source="api", by="t", person_id=None, tz=TZ)
        await db.commit()
    chair = await world.person("chair@hue.example", Role.CHAIR)
    await world.login(chair.email)
    board = await (await world.client.get(f"/api/figures?day={d.isoformat()}")).json()
    assert (board["received"], board["resolved"], board["overdue"]) == (20, 14, 2)
    assert board["rate"] == 0.7
    assert [r["centre"] for r in board["ranking"]] == ["P-THUANHOA", "P-PHUXUAN"]
    assert board["missing"] == ["P-HUONGTRA"]
    assert sum(w["received"] for w in board["weeks"]) == 60 and len(board["weeks"]) == 8
    page = await world.client.get(f"/figures?day={d.isoformat()}")
    html = await page.text()
    assert page.status == 200 and "<svg" in html and html.count("<rect") == 8 and "P-HUONGTRA" in html
    assert "cdn" not in html.lower()
    assert (await world.client.get("/figures?day=garbage")).status == 422

    exported = await world.client.get(f"/figures/export/csv?from={(d - timedelta(days=30)).isoformat()}")
    assert exported.status == 200
    rows = list(csv.reader(io.StringIO((await exported.read()).decode("utf-8-sig"))))
    assert rows[0][:3] == ["day", "centre", "name"] and len(rows) == 1 + 6
    assert list({r[2] for r in rows[1:] if r[1] == "P-THUANHOA"}) == ["Phường Thuận Hóa"]
    xlsx = await world.client.get("/figures/export/xlsx")
    assert xlsx.status == 200
    book = openpyxl.load_workbook(io.BytesIO(await xlsx.read()))
    sheet = book["figures"]
    assert sheet.max_row == 1 + 6 and sheet.cell(2, 4).value in (10,)
    assert (await world.client.get("/figures/export/pdf")).status == 404
    assert (await world.client.get("/figures/export/csv?from=2030-01-01&to=2020-01-01")).status == 422
    # A centre member sees only its own report page, not the others' dashboard.
    await world.logout()
    staff = await world.person("staff@hue.example", Role.MEMBER, a)
    await world.login(staff.email)
    assert (await world.client.get("/api/figures")).status == 403
    assert (await world.client.get("/figures/export/csv")).status == 403


async def test_figures_are_frozen_into_the_morning_minutes(world: World) -> None:
    from meetings.figures.service import freeze_into_minutes

    a, _b = await centres(world)
    async with world.db() as db:
        await service.submit(
            db,
            a,
            service.Figures(date(2030, 1, 4), 9, 4, 0, 0),
            source="api",
            by="t",
            person_id=None,
            tz=TZ,
            now=datetime(2030, 1, 4, 10, tzinfo=UTC),
        )
        header = await freeze_into_minutes(db, {"date": "2030-01-07", "chair": "X"})
        none = await freeze_into_minutes(db, {"date": "2030-01-20"})
    assert header["chair"] == "X" and header["figures"]["day"] == "2030-01-04"
    assert header["figures"]["received"] == 9 and header["figures"]["missing"] == ["P-THUANHOA"]
    assert "figures" not in none


async def test_approving_the_morning_minutes_freezes_the_figures(world: World) -> None:
    import json

    from tests.minutes.helpers import make_day
    from tests.minutes.test_day_smtp import minutes_of

    day = await make_day(world)
    async with world.db() as db:
        unit = await db.scalar(select(Unit).where(Unit.code == "P-PHUXUAN"))
        assert unit is not None
        figures = service.Figures(date(2030, 1, 4), 30, 20, 2, 5)
        await service.submit(
            db,
            unit,
            figures,
            source="api",
            by="t",
            person_id=None,
            tz=TZ,
            now=datetime(2030, 1, 4, 9, tzinfo=UTC),
        )
        await db.commit()
    await world.login(day.secretary.email)
    morning = await minutes_of(world, day.mornings[0].id)
    assert (await world.post_form(f"/minutes/{morning}/submit")).status == 303
    await world.logout()
    await world.login(day.chair.email)
    assert (await world.post_form(f"/minutes/{morning}/approve")).status == 303
    async with world.db() as db:
        from meetings.minutes.workflow import get_version

        version = await get_version(db, morning, 1)
        # A later correction of the figures does not change what was approved.
        report = await db.scalar(select(DailyReport))
        assert report is not None
        report.received = 99
        await db.commit()
    frozen = json.loads(version.content)["header"]["figures"]
    assert frozen["day"] == "2030-01-04" and frozen["received"] == 30 and frozen["resolved"] == 20
    assert frozen["centres"][0]["code"] == "P-PHUXUAN" and "P-THUANHOA" in frozen["missing"]
    # The afternoon minutes do not take figures.
    await world.logout()
    await world.login(day.secretary.email)
    afternoon = await minutes_of(world, day.afternoons[0].id)
    assert (await world.post_form(f"/minutes/{afternoon}/submit")).status == 303
    await world.logout()
    await world.login(day.chair.email)
    assert (await world.post_form(f"/minutes/{afternoon}/approve")).status == 303
    async with world.db() as db:
        version = await get_version(db, afternoon, 1)
    assert "figures" not in json.loads(version.content)["header"]
