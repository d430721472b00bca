"""The figures' default day is the last working day reported: a weekend report does not take over."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from meetings.directory.models import Role, Unit, UnitKind
from meetings.figures import service
from meetings.schedule.models import CalendarDay, DayKind
from meetings.schedule.service import working_calendar
from meetings.schedule.workdays import WorkingCalendar
from tests.conftest import World

TZ = ZoneInfo("Asia/Ho_Chi_Minh")


async def report(world: World, unit: Unit, day: date, received: int, resolved: int) -> None:
    async with world.db() as db:
        figures = service.Figures(day, received, resolved, 0, 0)
        await service.submit(db, unit, figures, source="api", by="t", person_id=None, tz=TZ)
        await db.commit()


async def test_a_saturday_report_does_not_replace_fridays_figures(world: World) -> None:
    a = await world.unit("P-PHUXUAN", UnitKind.CENTRE, "Phường Phú Xuân")
    b = await world.unit("P-THUANHOA", UnitKind.CENTRE, "Phường Thuận Hóa")
    c = await world.unit("P-HUONGTRA", UnitKind.CENTRE, "Phường Hương Trà")
    today = datetime.now(TZ).date()
    # The latest Saturday before today, and the last working day before it (a Friday, unless a
    # holiday moved it): what the morning meeting must see whatever today is.
    saturday = today - timedelta(days=1)
    while saturday.weekday() != 5:
        saturday -= timedelta(days=1)
    calendar = WorkingCalendar()
    friday = saturday - timedelta(days=1)
    while not calendar.is_working_day(friday):
        friday -= timedelta(days=1)
    for unit, received, resolved in ((a, 10, 5), (b, 20, 10), (c, 30, 15)):
        await report(world, unit, friday, received, resolved)
    await report(world, a, saturday, 3, 1)  # one centre works on Saturday

    chair = await world.person("chair@hue.example", Role.CHAIR)
    await world.login(chair.email)
    board = await (await world.client.get("/api/figures")).json()
    assert board["day"] == friday.isoformat() and board["working_day"] is True
    assert (board["received"], board["resolved"], board["missing"]) == (60, 30, [])
    assert {"day": saturday.isoformat(), "centres": 1} in board["off_days_reported"]

    html = await (await world.client.get("/figures")).text()
    assert 'id="missing"' not in html and 'id="day-off"' not in html
    assert f'href="/figures?day={saturday.isoformat()}"' in html.split('id="off-days"')[1]
    # The Saturday is reachable, and says what it is; nobody is "missing" on a day off.
    html = await (await world.client.get(f"/figures?day={saturday.isoformat()}")).text()
    assert 'id="day-off"' in html and 'id="missing"' not in html
    saturday_board = await (await world.client.get(f"/api/figures?day={saturday.isoformat()}")).json()
    assert saturday_board["working_day"] is False and saturday_board["received"] == 3
    assert saturday_board["missing"] == []

    # The home page shows the same day.
    home = (await (await world.client.get("/")).text()).split('id="home-figures"')[1]
    assert "<strong>60</strong>" in home and "<strong>30</strong>" in home
    assert "have not reported" not in home and "chưa báo cáo" not in home
    assert f'href="/figures?day={saturday.isoformat()}"' in home


async def test_the_default_day_follows_the_administrators_calendar(world: World) -> None:
    a = await world.unit("P-PHUXUAN", UnitKind.CENTRE, "Phường Phú Xuân")
    friday, saturday, sunday = date(2030, 1, 4), date(2030, 1, 5), date(2030, 1, 6)
    await report(world, a, date(2029, 12, 31), 7, 7)  # Monday
    await report(world, a, date(2030, 1, 1), 1, 1)  # New Year's Day, a public holiday
    await report(world, a, friday, 10, 5)
    await report(world, a, saturday, 3, 1)
    async with world.db() as db:
        calendar = await working_calendar(db)
        assert await service.default_day(db, calendar, sunday) == friday
        assert await service.default_day(db, calendar, date(2030, 1, 2)) == date(2029, 12, 31)
        # Nothing reported in the look-back: the last working day (everybody missing).
        assert await service.default_day(db, calendar, date(2030, 6, 9)) == date(2030, 6, 7)
        # An official make-up Saturday stored by the administrator is a working day.
        db.add(CalendarDay(day=saturday, kind=DayKind.MAKEUP, name="Làm bù"))
        await db.commit()
    async with world.db() as db:
        calendar = await working_calendar(db)
        assert await service.default_day(db, calendar, sunday) == saturday
        # And the figures frozen into Monday's morning minutes are that day's.
        header = await service.freeze_into_minutes(db, {"date": "2030-01-07"})
    assert header["figures"]["day"] == saturday.isoformat()
