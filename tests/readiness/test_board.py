"""The readiness board: one row per invited unit, problems first; its actions; its live socket."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import select

from meetings.accounts.permissions import Actor
from meetings.audit import AuditEntry
from meetings.db.base import utcnow
from meetings.directory.models import Person, Role, Unit, UnitKind
from meetings.errors import Conflict, Forbidden
from meetings.mail.models import OutboxMessage
from meetings.readiness import board as readiness
from meetings.readiness.board import BoardRules, UnitStatus
from meetings.readiness.models import CheckVerdict, ConnectionCheck, ReadinessMark
from meetings.rooms.models import Attendance
from meetings.schedule.links import JoinLink, make_join_token, read_join_token
from meetings.schedule.models import Occurrence, OccurrenceState
from meetings.settings import Settings
from tests.conftest import PASSWORD, World
from tests.rtc.clients import Client, wait_for
from tests.signaling.peers import Peer
from web import csrf, keys

RULES = BoardRules()


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # Checks written by another part of the service reach the watchers at the next reload.
    return dataclasses.replace(settings, readiness_board_refresh_seconds=0.2)


@dataclasses.dataclass
class City:
    """Five centres invited to a meeting whose board is open, the support team, a chair."""

    units: dict[str, Unit]
    people: dict[str, Person]
    occurrence: int
    series_id: int


def actor_of(person: Person) -> Actor:
    return Actor(id=person.id, email=person.email, name=person.name, role=person.role, unit_id=person.unit_id)


async def city(world: World) -> City:
    vnpt = await world.unit("VNPT", UnitKind.TELECOM, "VNPT Huế")
    ioc = await world.unit("IOC", UnitKind.SUPPORT, "Trung tâm IOC")
    dept = await world.unit("VP-UBND", UnitKind.DEPARTMENT, "Văn phòng UBND")
    units = {"vnpt": vnpt, "ioc": ioc, "dept": dept}
    for code, phone in (("P-A", "0234 3822 001"), ("P-B", ""), ("P-C", ""), ("P-D", ""), ("P-E", "")):
        units[code] = await world.unit(
            code, UnitKind.CENTRE, f"Phường {code[-1]}", phone=phone, operator_id=vnpt.id if phone else None
        )
    await world.unit("P-NOT", UnitKind.CENTRE, "Phường Không Mời")
    people = {
        "a": await world.person("a@hue.example", Role.MEMBER, units["P-A"], name="Nguyễn Văn An"),
        "b": await world.person(
            "b@hue.example", Role.MEMBER, units["P-B"], name="Trần Thị Bình", phone="0905 111 222"
        ),
        "c": await world.person("c@hue.example", Role.MEMBER, units["P-C"], name="Lê Văn Cường"),
        "d": await world.person("d@hue.example", Role.MEMBER, units["P-D"], name="Phạm Thị Dung"),
        "e": await world.person("e@hue.example", Role.MEMBER, units["P-E"], name="Hồ Văn Em", language="en"),
        "support": await world.person("hotro@hue.example", Role.SUPPORT, ioc, name="Đặng Quang Huy"),
        "support2": await world.person("hotro2@hue.example", Role.SUPPORT, vnpt, name="Võ Thị Vân"),
        "chair": await world.person("chair@hue.example", Role.CHAIR, dept, name="Phan Chủ Trì"),
        "secretary": await world.person("secretary@hue.example", Role.SECRETARY, dept, name="Trần Thư Ký"),
        "administrator": await world.person("administrator@hue.example", Role.ADMINISTRATOR, dept),
        "observer": await world.person("observer@hue.example", Role.OBSERVER, dept),
    }
    series, occurrence = await world.open_meeting(
        ["P-A", "P-B", "P-C", "P-D", "P-E"], chair_email="chair@hue.example"
    )
    return City(units, people, occurrence.id, series.id)


async def add_check(world: World, unit: Unit, person: Person, verdict: CheckVerdict, ago: timedelta) -> None:
    async with world.db() as db:
        db.add(
            ConnectionCheck(
                person_id=person.id,
                unit_id=unit.id,
                at=utcnow() - ago,
                verdict=verdict,
                rtt_ms=42.0,
                loss_pct=0.5,
                up_kbps=800.0,
                down_kbps=1200.0,
            )
        )
        await db.commit()


async def load(world: World, who: Person, occurrence: int, **kw: Any) -> readiness.Board:
    async with world.db() as db:
        return await readiness.load_board(db, actor_of(who), occurrence, rules=RULES, now=utcnow(), **kw)


# --- domain ------------------------------------------------------------------------------------


async def test_one_row_per_invited_unit_problems_first_with_counts(world: World) -> None:
    c = await city(world)
    support = c.people["support"]
    # A: checked with video an hour ago; B: its check failed; C: nothing; D: in the meeting;
    # E: excused. An old failed check of C (two days ago) does not count.
    await add_check(world, c.units["P-A"], c.people["a"], CheckVerdict.VIDEO, timedelta(hours=1))
    await add_check(world, c.units["P-B"], c.people["b"], CheckVerdict.VIDEO, timedelta(hours=3))
    await add_check(world, c.units["P-B"], c.people["b"], CheckVerdict.FAILED, timedelta(minutes=5))
    await add_check(world, c.units["P-C"], c.people["c"], CheckVerdict.FAILED, timedelta(hours=48))
    now = utcnow()
    async with world.db() as db:
        db.add(
            Attendance(
                occurrence_id=c.occurrence,
                person_id=c.people["d"].id,
                unit_id=c.units["P-D"].id,
                first_joined_at=now,
                last_joined_at=now,
                connected=True,
            )
        )
        await db.commit()
        await readiness.excuse(
            db, actor_of(support), c.occurrence, c.units["P-E"].id, "Mất điện", rules=RULES, now=now
        )
        await db.commit()
    board = await load(world, support, c.occurrence)
    by_code = {r.code: r for r in board.rows}
    # The chair's unit is invited through the chair; the uninvited centre is not on the board.
    assert set(by_code) == {"P-A", "P-B", "P-C", "P-D", "P-E", "VP-UBND"}
    assert by_code["P-A"].status is UnitStatus.CHECKED
    assert by_code["P-B"].status is UnitStatus.FAILED  # the newest check counts
    assert by_code["P-C"].status is UnitStatus.NOT_YET and by_code["P-C"].check is None
    assert by_code["P-D"].status is UnitStatus.JOINED and by_code["P-D"].connected == ("Phạm Thị Dung",)
    assert by_code["P-E"].status is UnitStatus.EXCUSED and by_code["P-E"].excuse_reason == "Mất điện"
    assert by_code["P-E"].excused_by == "Đặng Quang Huy"
    check = by_code["P-A"].check
    assert check is not None and (check.rtt_ms, check.down_kbps, check.person) == (
        42.0,
        1200.0,
        "Nguyễn Văn An",
    )
    # Problems first: failed, not yet (C and the committee's office), checked, joined, excused.
    assert [r.code for r in board.rows] == ["P-B", "P-C", "VP-UBND", "P-A", "P-D", "P-E"]
    assert board.counts == {
        "failed": 1,
        "not_yet": 2,
        "helping": 0,
        "checked": 1,
        "joined": 1,
        "excused": 1,
    }
    # The phone: the unit's own, else its invitees' phones.
    assert by_code["P-A"].phone == "0234 3822 001" and by_code["P-A"].contacts == ()
    assert (by_code["P-A"].operator, by_code["P-B"].operator) == ("VNPT Huế", "")
    assert [(x.name, x.phone) for x in by_code["P-B"].contacts] == [("Trần Thị Bình", "0905 111 222")]
    # The live room, when the node has it, says who is connected (not the records).
    live = await load(world, support, c.occurrence, connected={c.units["P-C"].id: ["Lê Văn Cường"]})
    statuses = {r.code: r.status for r in live.rows}
    assert statuses["P-C"] is UnitStatus.JOINED and statuses["P-D"] is UnitStatus.NOT_YET


async def test_helping_shows_who_and_joining_beats_everything(world: World) -> None:
    c = await city(world)
    support, unit = c.people["support"], c.units["P-C"]
    async with world.db() as db:
        await readiness.start_helping(
            db, actor_of(support), c.occurrence, unit.id, "Đang gọi điện", rules=RULES, now=utcnow()
        )
        await db.commit()
    row = next(r for r in (await load(world, support, c.occurrence)).rows if r.unit_id == unit.id)
    assert (row.status, row.helper, row.help_note) == (UnitStatus.HELPING, "Đặng Quang Huy", "Đang gọi điện")
    joined = await load(world, support, c.occurrence, connected={unit.id: ["Lê Văn Cường"]})
    assert next(r for r in joined.rows if r.unit_id == unit.id).status is UnitStatus.JOINED


async def test_the_board_is_open_from_half_an_hour_before_the_start_until_the_end(world: World) -> None:
    c = await city(world)
    async with world.db() as db:
        occ = await db.get(Occurrence, c.occurrence)
        assert occ is not None
        start = occ.start
        occ.start, occ.end = start + timedelta(hours=2), start + timedelta(hours=3)
        await db.commit()
    with pytest.raises(Conflict) as early:
        await load(world, c.people["support"], c.occurrence)
    assert "30" in str(early.value)
    async with world.db() as db:
        occ = await db.get(Occurrence, c.occurrence)
        assert occ is not None
        occ.start, occ.end, occ.state = start, start + timedelta(minutes=30), OccurrenceState.ENDED
        await db.commit()
    with pytest.raises(Conflict):
        await load(world, c.people["support"], c.occurrence)
    assert readiness.is_open(occ, RULES, occ.start - timedelta(minutes=29)) is False  # ended
    occ.state = OccurrenceState.PLANNED
    assert readiness.is_open(occ, RULES, occ.start - timedelta(minutes=29))
    assert not readiness.is_open(occ, RULES, occ.start - timedelta(minutes=31))
    assert not readiness.is_open(occ, RULES, occ.end)


async def test_members_and_observers_may_not_read_it_and_the_administrator_may_not_act(world: World) -> None:
    c = await city(world)
    for who in ("a", "observer"):
        with pytest.raises(Forbidden):
            await load(world, c.people[who], c.occurrence)
    await load(world, c.people["administrator"], c.occurrence)
    async with world.db() as db:
        with pytest.raises(Forbidden):
            await readiness.excuse(
                db,
                actor_of(c.people["administrator"]),
                c.occurrence,
                c.units["P-A"].id,
                "x",
                rules=RULES,
                now=utcnow(),
            )


# --- web: the page and the actions -----------------------------------------------------------


def path(c: City, unit: Unit | int | str, action: str) -> str:
    unit_id = unit.id if isinstance(unit, Unit) else unit
    return f"/meetings/occurrences/{c.occurrence}/readiness/units/{unit_id}/{action}"


async def test_the_page_and_its_json(world: World) -> None:
    c = await city(world)
    await add_check(world, c.units["P-B"], c.people["b"], CheckVerdict.FAILED, timedelta(minutes=5))
    await world.login("hotro@hue.example")
    page = await world.client.get(f"/meetings/occurrences/{c.occurrence}/readiness")
    html = await page.text()
    assert page.status == 200, html[:500]
    assert "Bảng sẵn sàng" in html and "Kiểm tra không đạt" in html and "Phường B" in html
    assert 'href="tel:02343822001"' in html and "Trần Thị Bình 0905 111 222" in html
    # The actions of a unit that appears later come from a template board.js fills in.
    template = html.split('id="board-actions-template"')[1]
    assert f"/meetings/occurrences/{c.occurrence}/readiness/units/0/excuse" in template
    answer = await world.client.get(
        f"/meetings/occurrences/{c.occurrence}/readiness", headers={"Accept": "application/json"}
    )
    data = await answer.json()
    assert data["rows"][0]["code"] == "P-B" and data["rows"][0]["status"] == "failed"
    assert data["counts"]["failed"] == 1 and data["rows"][0]["check"]["rtt_ms"] == 42.0
    # The home page leads to it; the occurrence page too, for those who see that page (the chair).
    board_url = f"/meetings/occurrences/{c.occurrence}/readiness"
    home = await (await world.client.get("/")).text()
    assert board_url in home
    # Support staff do not read the meeting's page: the home page and the board lead them to its
    # live monitoring and to the units' connection history.
    monitor_url = str(world.app.router["readiness_monitor"].url_for(id=str(c.occurrence)))
    assert monitor_url in home and monitor_url in html and "/readiness/history" in html
    await world.logout()
    await world.login("chair@hue.example")
    assert board_url in await (await world.client.get(f"/meetings/occurrences/{c.occurrence}")).text()
    await world.logout()
    await world.login("a@hue.example")
    home = await (await world.client.get("/")).text()
    assert board_url not in home and '/readiness"' not in home  # (their own unit's history is theirs)
    assert (await world.client.get(f"/meetings/occurrences/{c.occurrence}/readiness")).status == 403


async def test_excuse_help_and_undo_by_form_and_json_audited(world: World) -> None:
    c = await city(world)
    unit = c.units["P-C"]
    await world.login("hotro@hue.example")
    answer = await world.post_form(path(c, unit, "excuse"), {"reason": "  Họp Đảng ủy  "})
    assert answer.status == 303 and answer.headers["Location"].endswith("readiness?done=excused")
    response = await world.call(
        "POST", path(c, unit, "help"), json={"note": "Gọi anh Cường"}, headers={"Accept": "application/json"}
    )
    assert response.status == 200, await response.text()
    row = next(r for r in (await response.json())["board"]["rows"] if r["unit_id"] == unit.id)
    assert (row["status"], row["excuse_reason"], row["helper"], row["help_note"]) == (
        "excused",
        "Họp Đảng ủy",
        "Đặng Quang Huy",
        "Gọi anh Cường",
    )
    # Someone else is named as the helper (by id, as a JSON number).
    other = c.people["support2"].id
    response = await world.call(
        "POST",
        path(c, unit, "help"),
        json={"helper_id": other, "note": ""},
        headers={"Accept": "application/json"},
    )
    row = next(r for r in (await response.json())["board"]["rows"] if r["unit_id"] == unit.id)
    assert (row["helper_id"], row["helper"]) == (other, "Võ Thị Vân")
    assert (await world.post_form(path(c, unit, "unexcuse"))).status == 303
    data = await (
        await world.client.get(
            f"/meetings/occurrences/{c.occurrence}/readiness", headers={"Accept": "application/json"}
        )
    ).json()
    row = next(r for r in data["rows"] if r["unit_id"] == unit.id)
    assert (row["status"], row["excused"]) == ("helping", False)
    assert (await world.post_form(path(c, unit, "unhelp"))).status == 303
    async with world.db() as db:
        mark = await db.scalar(select(ReadinessMark).where(ReadinessMark.unit_id == unit.id))
        assert mark is not None and (mark.excused, mark.helper_id) == (False, None)
        actions = [
            a.action
            for a in await db.scalars(
                select(AuditEntry).where(AuditEntry.action.like("readiness.%")).order_by(AuditEntry.id)
            )
        ]
    assert actions == [
        "readiness.excuse",
        "readiness.help",
        "readiness.help",
        "readiness.unexcuse",
        "readiness.unhelp",
    ]


async def test_resend_queues_each_invitee_of_the_unit_their_link_to_this_meeting(world: World) -> None:
    c = await city(world)
    second = await world.person("a2@hue.example", Role.MEMBER, c.units["P-A"], name="Ngô Thị Hai")
    await world.login("chair@hue.example")
    answer = await world.call(
        "POST", path(c, c.units["P-A"], "resend"), headers={"Accept": "application/json"}
    )
    assert answer.status == 200, await answer.text()
    assert (await answer.json())["queued"] == 2
    # The same minute again queues nothing twice (a double click).
    again = await world.call(
        "POST", path(c, c.units["P-A"], "resend"), headers={"Accept": "application/json"}
    )
    assert (await again.json())["queued"] == 0
    async with world.db() as db:
        rows = list(await db.scalars(select(OutboxMessage).where(OutboxMessage.kind == "link")))
    assert sorted(r.recipient for r in rows) == sorted(["a@hue.example", second.email])
    mail = message_from_bytes(
        next(r for r in rows if r.recipient == "a@hue.example").message, policy=policy.SMTP
    )
    text = mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "Kính gửi Ông/Bà Nguyễn Văn An" in text
    assert "gửi lại" in text and "/join/" in text
    assert str(mail["Subject"]).startswith("[Giao ban] Đường dẫn tham dự của Ông/Bà: Sự cố")
    # The link is this person's, for this meeting only.
    token = text.split("/join/")[1].split()[0]
    link = read_join_token(world.settings.secret_key, token)
    assert (link.person_id, link.occurrence_id) == (c.people["a"].id, c.occurrence)
    async with world.db() as db:
        entry = await db.scalar(select(AuditEntry).where(AuditEntry.action == "readiness.resend"))
        assert entry is not None and entry.details["recipients"] == 2


async def test_bad_input_is_a_clear_4xx(world: World) -> None:
    c = await city(world)
    await world.login("hotro@hue.example")
    json_headers = {"Accept": "application/json"}

    async def post(target: str, **body: Any) -> tuple[int, str]:
        response = await world.call("POST", target, json=body, headers=json_headers)
        data = await response.json()
        return response.status, data["error"]["message"]

    uninvited = await world_unit(world, "P-NOT")
    assert await post(path(c, 999_999, "excuse"), reason="x") == (404, "Không tìm thấy đơn vị này.")
    status, message = await post(path(c, uninvited, "excuse"), reason="x")
    assert status == 404 and "không được mời" in message
    assert (await post(path(c, c.units["P-A"], "excuse"), reason=""))[0] == 422
    assert (await post(path(c, c.units["P-A"], "excuse"), reason="x" * 501))[0] == 422
    assert (await post(path(c, c.units["P-A"], "help"), note="y" * 501))[0] == 422
    assert (await post(path(c, c.units["P-A"], "help"), note="a\nb"))[0] == 422
    assert (await post(path(c, c.units["P-A"], "help"), helper_id=987_654))[0] == 422
    assert (await post(path(c, c.units["P-A"], "help"), helper_id="abc"))[0] == 422
    assert (await post(path(c, c.units["P-A"], "help"), helper_id=[1]))[0] == 422
    assert (await post(path(c, "abc", "excuse"), reason="x"))[0] == 404
    forged = f"/meetings/occurrences/999999/readiness/units/{c.units['P-A'].id}/excuse"
    assert (await post(forged, reason="x"))[0] == 404
    # A form with an over-long reason: the page says why, in Vietnamese.
    answer = await world.post_form(path(c, c.units["P-A"], "excuse"), {"reason": "x" * 501})
    assert answer.status == 422 and "500" in await answer.text()
    async with world.db() as db:
        assert await db.scalar(select(ReadinessMark.id)) is None


async def world_unit(world: World, code: str) -> Unit:
    async with world.db() as db:
        unit: Unit | None = await db.scalar(select(Unit).where(Unit.code == code))
        assert unit is not None
        return unit


# --- the live socket ---------------------------------------------------------------------------


async def open_board(world: World, occurrence: int, session: aiohttp.ClientSession | None = None) -> Any:
    origin = str(world.client.make_url("/")).rstrip("/")
    http = session or world.client.session
    return await http.ws_connect(
        world.client.make_url(f"/meetings/occurrences/{occurrence}/readiness/ws"), headers={"Origin": origin}
    )


async def next_board(ws: Any, where: Any, within: float = 10) -> dict[str, Any]:
    """The first board message matching `where` (earlier ones are skipped)."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        left = deadline - asyncio.get_running_loop().time()
        assert left > 0, "no matching board"
        msg = await ws.receive(timeout=left)
        assert msg.type == aiohttp.WSMsgType.TEXT, msg
        data = json.loads(msg.data)
        assert data["type"] == "board"
        if where(data["board"]):
            return dict(data["board"])


def status(board: dict[str, Any], unit: Unit) -> str:
    return str(next(r["status"] for r in board["rows"] if r["unit_id"] == unit.id))


@pytest.mark.parametrize(
    "who", ["administrator", "chair", "secretary", "support", "a", "observer", "anonymous"]
)
async def test_the_socket_by_role(world: World, who: str) -> None:
    c = await city(world)
    if who != "anonymous":
        await world.login(c.people[who].email)
    reads = who in {"administrator", "chair", "secretary", "support"}
    if reads:
        ws = await open_board(world, c.occurrence)
        board = await next_board(ws, lambda b: True)
        assert board["occurrence_id"] == c.occurrence and len(board["rows"]) == 6
        await ws.close()
        return
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await open_board(world, c.occurrence)
    if who == "anonymous":  # sent to sign in, never upgraded
        assert refused.value.request_info.url.path == "/login"
    else:
        assert refused.value.status == 403


async def test_the_socket_refuses_other_origins_and_closed_boards(world: World) -> None:
    c = await city(world)
    await world.login("hotro@hue.example")
    with pytest.raises(aiohttp.WSServerHandshakeError) as foreign:
        await world.client.session.ws_connect(
            world.client.make_url(f"/meetings/occurrences/{c.occurrence}/readiness/ws"),
            headers={"Origin": "https://evil.example"},
        )
    assert foreign.value.status == 403
    with pytest.raises(aiohttp.WSServerHandshakeError) as missing:
        await open_board(world, 999_999)
    assert missing.value.status == 404
    async with world.db() as db:
        occ = await db.get(Occurrence, c.occurrence)
        assert occ is not None
        occ.state = OccurrenceState.CANCELLED
        await db.commit()
    with pytest.raises(aiohttp.WSServerHandshakeError) as cancelled:
        await open_board(world, c.occurrence)
    assert cancelled.value.status == 409


@pytest.mark.slow
async def test_a_join_a_check_and_another_supporters_action_reach_the_board(world: World) -> None:
    c = await city(world)
    await world.login("hotro@hue.example")
    ws = await open_board(world, c.occurrence)
    first = await next_board(ws, lambda b: True)
    assert status(first, c.units["P-A"]) == "not_yet"
    # A joins from the invitation link (its own session): the board says so, without reload.
    token = make_join_token(
        world.settings.secret_key,
        JoinLink(c.people["a"].id, c.series_id, None, datetime.now(UTC) + timedelta(days=1)),
    )
    peer = Peer(world, Client("a"))
    try:
        assert (await peer.connect(c.occurrence, token=token, session=False))["placement"] == "seated"
        joined = await next_board(ws, lambda b: status(b, c.units["P-A"]) == "joined", within=5)
        assert next(r for r in joined["rows"] if r["unit_id"] == c.units["P-A"].id)["connected"] == [
            "Nguyễn Văn An"
        ]
        # A connection check written by the check's own code reaches the board at the next reload.
        await add_check(world, c.units["P-B"], c.people["b"], CheckVerdict.FAILED, timedelta(seconds=1))
        failed = await next_board(ws, lambda b: status(b, c.units["P-B"]) == "failed", within=5)
        assert failed["rows"][0]["code"] == "P-B"  # problems first
        # Another supporter (another browser) excuses C: this board hears of it.
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as other:
            url = world.client.make_url("/login")
            await other.get(url)
            seed = next(cookie.value for cookie in other.cookie_jar if cookie.key == csrf.COOKIE)
            token_for = csrf.token_for(world.settings.secret_key, seed)
            login = await other.post(
                url,
                data={"email": "hotro2@hue.example", "password": PASSWORD, "csrf_token": token_for},
                allow_redirects=False,
            )
            assert login.status == 303, await login.text()
            excused = await other.post(
                world.client.make_url(path(c, c.units["P-C"], "excuse")),
                data={"reason": "Mất điện", "csrf_token": token_for},
                allow_redirects=False,
            )
            assert excused.status == 303
        pushed = await next_board(ws, lambda b: status(b, c.units["P-C"]) == "excused", within=5)
        assert (
            next(r for r in pushed["rows"] if r["unit_id"] == c.units["P-C"].id)["excused_by"] == "Võ Thị Vân"
        )
        # A leaves: not joined any more.
        await peer.close()
        await next_board(ws, lambda b: status(b, c.units["P-A"]) == "not_yet", within=5)
    finally:
        await peer.close()
        await ws.close()
    assert await wait_for(lambda: not world.app[keys.MEDIA].sfus, 10)
    assert not world.app[keys.BOARD_HUB].watchers


def test_the_board_document_names_every_status_and_field() -> None:
    text = (Path(__file__).parent.parent.parent / "docs" / "readiness" / "board.md").read_text(
        encoding="utf-8"
    )
    for unit_status in UnitStatus:
        assert f"| `{unit_status.value}` |" in text, unit_status
    names = {f.name for cls in (readiness.BoardRow, readiness.CheckFigures) for f in dataclasses.fields(cls)}
    names |= {"occurrence_id", "title", "start", "end", "opens_at", "counts", "rows", "board"}
    missing = sorted(n for n in names if f"`{n}`" not in text)
    assert not missing, missing
    for setting in (
        "readiness_board_open_minutes",
        "readiness_check_hours",
        "readiness_board_refresh_seconds",
    ):
        assert f"`{setting}`" in text


@dataclasses.dataclass(eq=False)
class FakeWatcher:
    occurrence_id: int
    got: list[str] = dataclasses.field(default_factory=list)
    closed: bool = False

    def post(self, text: str) -> None:
        self.got.append(text)

    def close(self) -> None:
        self.closed = True


def test_the_hub_sends_a_board_once_and_a_newcomer_always() -> None:
    hub = readiness.BoardHub()
    first, other = FakeWatcher(7), FakeWatcher(8)
    hub.add(first)
    hub.add(other)
    assert hub.push(7, "a") == 1 and hub.push(7, "a") == 0  # unchanged: not sent again
    late = FakeWatcher(7)
    hub.add(late)
    assert hub.push(7, "a", newcomer=late) == 1  # the newcomer's first board
    assert hub.push(7, "b") == 2
    assert (first.got, late.got, other.got) == (["a", "b"], ["a", "b"], [])
    assert sorted(hub.watched()) == [7, 8]
    for watcher in (first, late):
        hub.remove(watcher)
    assert hub.watched() == [8] and 7 not in hub.last
    hub.close_all()
    assert other.closed
    # A change asks for a reload once until that reload starts; an unwatched meeting asks nothing.
    assert hub.ask(8) and not hub.ask(8) and not hub.ask(7)
    hub.queued.discard(8)
    assert hub.ask(8)


async def test_the_socket_ignores_text_and_closes_on_binary_and_oversized_frames(world: World) -> None:
    c = await city(world)
    await world.login("hotro@hue.example")
    ws = await open_board(world, c.occurrence)
    await next_board(ws, lambda b: True)
    for junk in ("not json", '{"type": "excuse", "unit": 1}', "\u0000", "[" * 2000):
        await ws.send_str(junk)
    # Still open and still pushed to: an action shows.
    await world.post_form(path(c, c.units["P-A"], "excuse"), {"reason": "Nghỉ phép"})
    await next_board(ws, lambda b: status(b, c.units["P-A"]) == "excused", within=5)
    await ws.send_bytes(b"\x00\x01")
    closing = await ws.receive(timeout=5)
    assert closing.type == aiohttp.WSMsgType.CLOSE and closing.data == 4000
    big = await open_board(world, c.occurrence)
    await next_board(big, lambda b: True)
    await big.send_str("x" * 10_000)
    closing = await big.receive(timeout=5)
    assert closing.type == aiohttp.WSMsgType.CLOSE and closing.data == 1009
    assert await wait_for(lambda: not world.app[keys.BOARD_HUB].watchers, 5)
