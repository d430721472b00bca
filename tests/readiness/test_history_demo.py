"""The demo city's morning: some centres checked, one failing, one follow-up issue assigned to VNPT."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from meetings.demo import load_demo
from meetings.directory.csv_import import import_units
from meetings.directory.models import Unit
from meetings.issues.models import Issue, IssueStatus
from meetings.mail.models import OutboxMessage
from meetings.readiness.history import FOLLOW_UP_SOURCE, Thresholds, overview
from meetings.readiness.models import CheckVerdict, ConnectionCheck, ConnectionRecord
from meetings.schedule.models import Occurrence, Series, SeriesKind
from meetings.schedule.service import Context, working_calendar
from tests.conftest import World

HUE = ZoneInfo("Asia/Ho_Chi_Minh")
# Tuesday 8 December 2026, 07:10 in Huế: twenty minutes before the morning meeting.
NOW = datetime(2026, 12, 8, 7, 10, tzinfo=HUE).astimezone(UTC)
DEMO = Context(
    base_url="http://demo.test",
    secret="demo-secret",
    organizer_email="giaoban@hue.example",
    organizer_name="VP",
    horizon_days=14,
    now=NOW,
)


async def counts(world: World) -> tuple[int, int, int]:
    async with world.db() as db:
        return (
            int(await db.scalar(select(func.count()).select_from(ConnectionRecord)) or 0),
            int(await db.scalar(select(func.count()).select_from(ConnectionCheck)) or 0),
            int(await db.scalar(select(func.count()).where(Issue.source == FOLLOW_UP_SOURCE)) or 0),
        )


async def test_the_demo_city_has_a_realistic_morning(world: World) -> None:
    async with world.db() as db:
        await load_demo(db, DEMO)
        await db.commit()
    async with world.db() as db:
        units = {u.code: u for u in await db.scalars(select(Unit))}
        morning = await db.scalar(select(Series).where(Series.kind == SeriesKind.MORNING))
        assert morning is not None
        today = await db.scalar(
            select(Occurrence)
            .where(Occurrence.series_id == morning.id, Occurrence.start >= NOW.replace(hour=0))
            .order_by(Occurrence.start)
            .limit(1)
        )
        past = await db.scalar(
            select(Occurrence).where(Occurrence.start < NOW).order_by(Occurrence.start).limit(1)
        )
        assert today is not None and today.start.astimezone(HUE) == datetime(2026, 12, 8, 7, 30, tzinfo=HUE)
        checks = list(await db.scalars(select(ConnectionCheck).order_by(ConnectionCheck.at)))
        records = list(await db.scalars(select(ConnectionRecord)))
        [issue] = list(await db.scalars(select(Issue).where(Issue.source == FOLLOW_UP_SOURCE)))
        mail = list(
            await db.scalars(select(OutboxMessage.recipient).where(OutboxMessage.kind == "issue_assigned"))
        )
        calendar = await working_calendar(db)
        ranked = await overview(db, thresholds=Thresholds())
    # Today's morning meeting: some centres checked (video, audio only), one could not connect.
    assert {c.occurrence_id for c in checks} == {today.id}
    verdicts = Counter(c.verdict for c in checks)
    assert verdicts[CheckVerdict.VIDEO] >= 5 and verdicts[CheckVerdict.AUDIO] >= 2
    assert verdicts[CheckVerdict.FAILED] == 1
    assert all(today.start - timedelta(hours=1) <= c.at <= NOW for c in checks)
    for c in checks:
        if c.verdict == CheckVerdict.VIDEO:
            assert c.down_kbps is not None and c.down_kbps >= 1500 and c.rtt_ms is not None and c.rtt_ms < 100
        elif c.verdict == CheckVerdict.AUDIO:
            assert c.down_kbps is not None and 100 <= c.down_kbps < 400
        else:
            assert c.down_kbps is None and units["X-ALUOI3"].id == c.unit_id
        assert c.person_id is not None
    # The past meetings: working days only, morning and afternoon, every centre.
    centres = [u for u in units.values() if u.kind == "centre"]
    assert len(records) == 20 * len(centres)
    # Ten working days back from Tuesday 8 December: 24 November is a holiday (Ngày Văn hóa Việt Nam).
    assert past is not None and past.start.astimezone(HUE).date() == datetime(2026, 11, 23).date()
    assert all(calendar.is_working_day(r.meeting_start.astimezone(HUE).date()) for r in records)
    assert all(r.meeting_start < NOW for r in records)
    # One follow-up issue: the mountain centre, assigned to VNPT and mailed to its people.
    assert issue.reported_unit_id == units["X-ALUOI3"].id == ranked[0].unit.id
    assert issue.reported_owner_id == units["VNPT"].id == units["X-ALUOI3"].operator_id
    assert issue.status == IssueStatus.OPEN and issue.reported_category == "connectivity"
    assert sum(1 for r in records if r.follow_up_issue_id == issue.id) == 3
    assert sorted(mail) == ["vnpt.1@hue.example", "vnpt.lanhdao@hue.example"]
    assert ranked[0].follow_up is not None and ranked[1].follow_up is None
    # Loading the demo again adds nothing.
    before = await counts(world)
    async with world.db() as db:
        await load_demo(db, DEMO)
        await db.commit()
    assert await counts(world) == before == (20 * len(centres), len(checks), 1)


async def test_the_demo_keeps_an_operator_the_directory_already_gave(world: World) -> None:
    """Another part assigns operators to centres: a centre given to Viettel stays Viettel's."""
    async with world.db() as db:
        await import_units(db, None, (load_demo.__globals__["UNITS_CSV"]).read_bytes())
        units = {u.code: u for u in await db.scalars(select(Unit))}
        units["X-ALUOI3"].operator_id = units["VIETTEL"].id
        await db.commit()
        await load_demo(db, DEMO)
        await db.commit()
    async with world.db() as db:
        units = {u.code: u for u in await db.scalars(select(Unit))}
        [issue] = list(await db.scalars(select(Issue).where(Issue.source == FOLLOW_UP_SOURCE)))
    assert units["X-ALUOI3"].operator_id == units["VIETTEL"].id
    assert issue.reported_unit_id == units["X-ALUOI2"].id
    assert issue.reported_owner_id == units["VNPT"].id
