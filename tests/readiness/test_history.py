"""Connection history and follow-up issues: the rule (3 weak in 5), never twice, no operator, the job."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select

from meetings.accounts.permissions import Actor
from meetings.db import create_engine, create_sessionmaker
from meetings.db.base import utcnow
from meetings.directory.models import Role, Unit, UnitKind
from meetings.issues import service as issues
from meetings.issues.models import Issue, IssueStatus
from meetings.jobs.scheduler import Scheduler
from meetings.mail.models import OutboxMessage
from meetings.readiness.followup import Mailing, Outcome, follow_up_all
from meetings.readiness.history import FOLLOW_UP_SOURCE, Thresholds
from meetings.readiness.history_jobs import FOLLOW_UP_JOB_ID, follow_up_job
from meetings.readiness.models import ConnectionOutcome, ConnectionRecord
from meetings.settings import load_settings
from tests.conftest import World
from tests.readiness.history_helpers import FIRST, record
from web import keys

GOOD, WEAK, FAILED, EXCUSED = (
    ConnectionOutcome.GOOD,
    ConnectionOutcome.WEAK,
    ConnectionOutcome.FAILED,
    ConnectionOutcome.EXCUSED,
)
THRESHOLDS = Thresholds(bad=3, window=5)
MAILING = Mailing("http://giaoban.test", "giaoban@hue.example", "VP")
CHAIR = Actor(id=0, email="chair", name="Chủ trì", role=Role.CHAIR, unit_id=None)
ARTIFACTS = Path(__file__).parent.parent.parent / "test-artifacts"


def day(n: int, hours: int = 2) -> datetime:
    """A moment after the n-th test meeting."""
    return FIRST + timedelta(days=n, hours=hours)


async def centre_with_operator(world: World, code: str = "P-HIST", operator: bool = True) -> Unit:
    vnpt = None
    if operator:
        vnpt = await world.unit("VNPT", UnitKind.TELECOM, name="VNPT Huế")
        await world.person("vnpt@hue.example", Role.MEMBER, vnpt, name="Kỹ thuật VNPT")
    return await world.unit(
        code, UnitKind.CENTRE, name="Phường Phong Điền", operator_id=vnpt.id if vnpt else None
    )


async def add(world: World, unit: Unit, *items: tuple[int, ConnectionOutcome]) -> None:
    async with world.db() as db:
        for n, outcome in items:
            await record(db, unit.id, n, outcome)
        await db.commit()


async def run(world: World, n: int) -> list[Outcome]:
    """The follow-up over every unit, as the job runs it, just after the n-th meeting."""
    return list(
        await follow_up_all(world.app[keys.DB], THRESHOLDS, MAILING, tz=world.settings.tz, now=day(n))
    )


async def follow_up_issues(world: World) -> list[Issue]:
    async with world.db() as db:
        return list(
            await db.scalars(select(Issue).where(Issue.source == FOLLOW_UP_SOURCE).order_by(Issue.id))
        )


async def linked(world: World, unit: Unit) -> dict[int, int | None]:
    """Meeting number → the follow-up issue its record points at."""
    async with world.db() as db:
        rows = await db.execute(
            select(ConnectionRecord.meeting_start, ConnectionRecord.follow_up_issue_id).where(
                ConnectionRecord.unit_id == unit.id
            )
        )
        return {(start - FIRST).days: issue for start, issue in rows.all()}


async def test_follow_up_opens_on_the_third_weak_meeting_in_five_and_not_again(world: World) -> None:
    unit = await centre_with_operator(world)
    await add(world, unit, (0, GOOD), (1, WEAK), (2, GOOD), (3, WEAK))
    await run(world, 3)
    assert await follow_up_issues(world) == []  # two weak meetings: not yet

    await add(world, unit, (4, FAILED))
    await run(world, 4)
    [issue] = await follow_up_issues(world)
    async with world.db() as db:
        row = await issues.get_issue(db, CHAIR, issue.id)
        mail = list(await db.scalars(select(OutboxMessage).where(OutboxMessage.kind == issues.MAIL_KIND)))
    assert row.unit is not None and row.unit.code == "P-HIST"
    assert row.owner is not None and row.owner.code == "VNPT"
    assert (row.category, row.severity, row.status) == ("connectivity", "high", IssueStatus.OPEN)
    # The figures are in its text: dates, outcomes, join delays, drop-outs, weak minutes.
    assert "3 trong 5 cuộc họp" in row.text
    assert "07:30 03/11/2026" in row.text and "07:30 06/11/2026" in row.text
    assert "Yếu" in row.text and "Không vào được" in row.text
    assert "vào muộn 4,2 phút" in row.text and "12,0 phút đường truyền yếu" in row.text
    assert "rớt mạng 2 lần" in row.text
    assert "VNPT Huế (VNPT)" in row.text
    assert "http://giaoban.test/readiness/history/units/" in row.text
    # Mailed to the operator as the register mails an assignment.
    assert [m.recipient for m in mail] == ["vnpt@hue.example"]
    assert await linked(world, unit) == {0: None, 1: issue.id, 2: None, 3: issue.id, 4: issue.id}

    # The fourth bad meeting of five: the same ongoing problem, no new issue (it joins the open one).
    await add(world, unit, (5, WEAK))
    await run(world, 5)
    await run(world, 5)
    assert [i.id for i in await follow_up_issues(world)] == [issue.id]
    assert (await linked(world, unit))[5] == issue.id

    # Resolved by the usual workflow: the old bad meetings do not open a new one.
    async with world.db() as db:
        await issues.set_status(db, CHAIR, issue.id, "resolved", "VNPT thay modem quang.", now=day(5, 5))
        await db.commit()
    await run(world, 5)
    await add(world, unit, (6, WEAK), (7, FAILED))
    await run(world, 7)
    assert len(await follow_up_issues(world)) == 1  # two bad meetings since the resolution
    await add(world, unit, (8, WEAK))
    await run(world, 8)
    first, second = await follow_up_issues(world)
    assert first.id == issue.id and second.reported_owner_id == unit.operator_id
    links = await linked(world, unit)
    assert [links[n] for n in (6, 7, 8)] == [second.id] * 3
    assert [links[n] for n in (1, 3, 4, 5)] == [issue.id] * 4


async def test_excused_meetings_are_left_out_of_the_five(world: World) -> None:
    unit = await centre_with_operator(world)
    await add(world, unit, (0, WEAK), (1, EXCUSED), (2, EXCUSED), (3, GOOD), (4, WEAK), (5, GOOD), (6, WEAK))
    await run(world, 6)
    [issue] = await follow_up_issues(world)  # weak at 0, 4, 6: three of the last five that count
    assert (await linked(world, unit))[0] == issue.id


async def test_a_unit_with_no_operator_gets_an_unassigned_issue_that_says_so(world: World) -> None:
    unit = await centre_with_operator(world, "P-NOOP", operator=False)
    await add(world, unit, (0, FAILED), (1, FAILED), (2, FAILED))
    [outcome] = await run(world, 2)
    assert outcome.unassigned and outcome.opened and outcome.mailed == 0
    [issue] = await follow_up_issues(world)
    assert issue.reported_owner_id is None and issue.reported_severity == "critical"
    assert "chưa có nhà mạng hoặc đội hỗ trợ" in issue.reported_text
    async with world.db() as db:
        assert await db.scalar(select(func.count()).select_from(OutboxMessage)) == 0
    await world.person("chair@hue.example", Role.CHAIR)
    await world.login("chair@hue.example")
    page = await (await world.client.get(f"/readiness/history/units/{unit.id}")).text()
    assert "Không có trong danh bạ" in page and "chưa được giao" in page
    overview = await (await world.client.get("/readiness/history")).text()
    assert "chưa được giao" in overview


async def test_two_nodes_at_once_open_one_issue(world: World) -> None:
    unit = await centre_with_operator(world)
    await add(world, unit, (0, WEAK), (1, WEAK), (2, FAILED))
    engines = [create_engine(world.settings.database_url) for _ in range(2)]
    try:
        await asyncio.gather(
            *(
                follow_up_all(create_sessionmaker(e), THRESHOLDS, MAILING, tz=world.settings.tz, now=day(2))
                for e in engines
            )
        )
    finally:
        for e in engines:
            await e.dispose()
    assert len(await follow_up_issues(world)) == 1
    async with world.db() as db:
        assert await db.scalar(select(func.count()).select_from(OutboxMessage)) == 1


async def until(check: Callable[[], Awaitable[bool]], within: float = 15.0) -> None:
    deadline = time.monotonic() + within
    while not await check():
        assert time.monotonic() < deadline, "not reached in time"
        await asyncio.sleep(0.1)


async def test_the_job_survives_a_restart_and_opens_nothing_twice(world: World) -> None:
    unit = await centre_with_operator(world)
    # Recent meetings, so the job's own clock looks at them.
    ids = []
    async with world.db() as db:
        for n, outcome in enumerate((WEAK, GOOD, WEAK, FAILED)):
            row = await record(db, unit.id, n, outcome)
            row.meeting_start = utcnow() - timedelta(days=4 - n)
            ids.append(row.id)
        await db.commit()
    settings = load_settings(
        environ={}, database_url=world.settings.database_url, scheduler_lease_seconds=1, secret_key="x"
    )
    sessions = world.app[keys.DB]

    async def count_issues() -> int:
        return len(await follow_up_issues(world))

    async def linked_at(record_id: int) -> bool:
        async with world.db() as db:
            found = await db.get(ConnectionRecord, record_id)
            return found is not None and found.follow_up_issue_id is not None

    for restart in range(2):  # the second node starts on the same job table after the first stopped
        if restart:  # a new bad meeting while the first node was down: it joins the open issue
            async with world.db() as db:
                row = await record(db, unit.id, 4, WEAK)
                row.meeting_start = utcnow() - timedelta(hours=1)
                await db.commit()
                ids.append(row.id)
        node = Scheduler(sessions, settings, holder=f"node-{restart}")
        await node.start()
        try:

            async def registered(node: Scheduler = node) -> bool:
                return node.leading and FOLLOW_UP_JOB_ID in await node.job_ids()

            await until(registered)
            assert (await node.job_ids()).count(FOLLOW_UP_JOB_ID) == 1
            # Run the job now through the scheduler (as a run due during a restart would).
            await node.schedule_once(f"test:follow-up-now-{restart}", follow_up_job, utcnow())
            await until(lambda: linked_at(ids[-1]))
        finally:
            await node.close()
        assert await count_issues() == 1


async def test_history_page_draws_the_chart_and_the_checks(world: World) -> None:
    from meetings.readiness.models import CheckVerdict, ConnectionCheck

    unit = await centre_with_operator(world)
    outcomes = [GOOD, WEAK, GOOD, EXCUSED, WEAK, FAILED, GOOD, WEAK, GOOD, GOOD]
    await add(world, unit, *enumerate(outcomes))
    await run(world, 9)
    async with world.db() as db:
        db.add(
            ConnectionCheck(
                unit_id=unit.id,
                at=day(9, 3),
                verdict=CheckVerdict.AUDIO,
                rtt_ms=180.0,
                loss_pct=2.5,
                up_kbps=240.0,
                down_kbps=310.0,
                details={},
            )
        )
        await db.commit()
    await world.person("support@hue.example", Role.SUPPORT)
    await world.login("support@hue.example")
    response = await world.client.get(f"/readiness/history/units/{unit.id}")
    page = await response.text()
    assert response.status == 200
    assert page.count('class="mark" data-outcome=') == len(outcomes)
    assert page.count('data-outcome="weak"') >= 3 and 'data-panel="dropouts"' in page
    assert "Chỉ đủ âm thanh" in page and "310 kbit/s" in page  # the last check
    assert "<script" not in page.split('id="history-chart"')[1].split("</svg>")[0]
    ARTIFACTS.mkdir(exist_ok=True)
    svg = page.split('<svg class="chart history-chart"')[1].split("</svg>")[0]
    (ARTIFACTS / "readiness-history-chart.svg").write_text(
        '<svg class="chart history-chart"' + svg + "</svg>", encoding="utf-8"
    )
    # Fewer meetings on request.
    page = await (await world.client.get(f"/readiness/history/units/{unit.id}?meetings=3")).text()
    assert page.count('class="mark" data-outcome=') == 3
    # In English too: numbers and labels in that language's convention.
    await world.post_form("/language", {"language": "en", "next": "/"})
    page = await (await world.client.get(f"/readiness/history/units/{unit.id}")).text()
    assert "Connection history" in page and "Time on a weak link" in page and "12.0 min" in page
    overview = await world.client.get("/readiness/history")
    assert overview.status == 200 and "Connection history of the units" in await overview.text()


async def test_overview_ranks_by_trouble_and_searches_without_diacritics(world: World) -> None:
    vnpt = await world.unit("VNPT", UnitKind.TELECOM, name="VNPT Huế")
    a = await world.unit("P-PHONGDIEN", UnitKind.CENTRE, name="Phường Phong Điền", operator_id=vnpt.id)
    b = await world.unit("P-THUANHOA", UnitKind.CENTRE, name="Phường Thuận Hóa")
    c = await world.unit("X-ALUOI", UnitKind.CENTRE, name="Xã A Lưới 1")
    await add(world, a, (0, GOOD), (1, WEAK), (2, FAILED), (3, WEAK))
    await add(world, b, (0, GOOD), (1, WEAK), (2, GOOD), (3, GOOD))
    await add(world, c, (0, GOOD), (1, GOOD), (2, GOOD), (3, FAILED), (4, FAILED))
    await world.person("secretary@hue.example", Role.SECRETARY)
    await world.login("secretary@hue.example")
    page = await (await world.client.get("/readiness/history")).text()
    order = [part.split('"')[0] for part in page.split('<tr data-unit="')[1:]]
    assert order == ["P-PHONGDIEN", "X-ALUOI", "P-THUANHOA"]
    for q in ("phong dien", "Phong Điền", "ĐIỀN"):
        page = await (await world.client.get("/readiness/history", params={"q": q})).text()
        assert [part.split('"')[0] for part in page.split('<tr data-unit="')[1:]] == ["P-PHONGDIEN"], q


async def test_bad_input_is_a_clear_4xx(world: World) -> None:
    unit = await centre_with_operator(world)
    await world.person("chair@hue.example", Role.CHAIR)
    await world.login("chair@hue.example")
    for path, status, words in (
        ("/readiness/history/units/999999", 404, "Không tìm thấy đơn vị này"),
        ("/readiness/history/units/abc", 404, ""),
        ("/readiness/history/units/99999999999999999999", 404, ""),
        (f"/readiness/history/units/{unit.id}?meetings=0", 422, "từ 1 đến 200"),
        (f"/readiness/history/units/{unit.id}?meetings=abc", 422, "từ 1 đến 200"),
        (f"/readiness/history/units/{unit.id}?meetings=-5", 422, "từ 1 đến 200"),
        (f"/readiness/history/units/{unit.id}?meetings=99999999999", 422, "từ 1 đến 200"),
        ("/readiness/history?q=" + "a" * 201, 422, "200 ký tự"),
    ):
        response = await world.client.get(path)
        body = await response.text()
        assert response.status == status, (path, response.status, body[:300])
        assert words in body, path


async def test_who_reads_another_units_history(world: World) -> None:
    """Readiness readers see every unit; the unit's own people and its operator's see it; no one else."""
    unit = await centre_with_operator(world)
    own = await world.person("own@hue.example", Role.MEMBER, unit)
    other_centre = await world.unit("P-OTHER", UnitKind.CENTRE)
    for role in Role:
        await world.person(f"{role.value}@hue.example", role, other_centre)
    readers = {Role.ADMINISTRATOR, Role.CHAIR, Role.SECRETARY, Role.SUPPORT}
    for email, allowed in [
        *((f"{role.value}@hue.example", role in readers) for role in Role),
        (own.email, True),
        ("vnpt@hue.example", True),  # the unit's operator
    ]:
        await world.login(email)
        response = await world.client.get(f"/readiness/history/units/{unit.id}", allow_redirects=False)
        overview = await world.client.get("/readiness/history", allow_redirects=False)
        assert response.status == (200 if allowed else 403), email
        reads_all = email.split("@")[0] in {r.value for r in readers}
        assert overview.status == (200 if reads_all else 403), email
        home = await (await world.client.get("/")).text()
        assert ('href="/readiness/history"' in home) == reads_all, email
        directory = await (await world.client.get(f"/directory/units/{unit.id}")).text()
        assert ('id="unit-connection-history"' in directory) == allowed, email
        await world.logout()
