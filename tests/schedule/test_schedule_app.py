"""Scheduling through the real app and database: series, moves, cancellations, answers, feeds."""

from __future__ import annotations

import email
import email.policy
import re
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage
from typing import Any
from zoneinfo import ZoneInfo

import icalendar
import recurring_ical_events
from sqlalchemy import func, select

from meetings.cli import CLI_ACTOR
from meetings.directory.models import Person, Role, UnitKind
from meetings.mail.models import OutboxMessage
from meetings.schedule import service
from meetings.schedule.links import JoinLink, make_join_token
from meetings.schedule.models import Occurrence, OccurrenceState, Series
from tests.conftest import World

HCM = ZoneInfo("Asia/Ho_Chi_Minh")
ORGANIZER = "giaoban@hue.example"


def ctx_at(world: World, now: datetime, horizon: int = 60) -> service.Context:
    """A scheduling context with a fixed clock."""
    return service.Context(
        base_url="http://giaoban.test",
        secret=world.settings.secret_key,
        organizer_email=ORGANIZER,
        organizer_name="Văn phòng UBND",
        horizon_days=horizon,
        now=now,
    )


async def city(world: World) -> dict[str, Any]:
    """Two centres with two people each, a department with one, a chair and a secretary."""
    c1 = await world.unit("P-PHONGDIEN", UnitKind.CENTRE, "Phường Phong Điền")
    c2 = await world.unit("P-KIMLONG", UnitKind.CENTRE, "Phường Kim Long")
    dept = await world.unit("SKHCN", UnitKind.DEPARTMENT, "Sở Khoa học và Công nghệ")
    people = [
        await world.person("a1@hue.example", Role.MEMBER, c1, name="Nguyễn Văn An"),
        await world.person("a2@hue.example", Role.MEMBER, c1, name="Trần Thị Bình"),
        await world.person("b1@hue.example", Role.MEMBER, c2, name="Lê Văn Cường"),
        await world.person("b2@hue.example", Role.MEMBER, c2, name="Phạm Thị Dung", language="en"),
        await world.person("d1@hue.example", Role.MEMBER, dept, name="Hoàng Văn Em"),
    ]
    chair = await world.person("chair@hue.example", Role.CHAIR, dept, name="Phan Chủ Trì")
    secretary = await world.person("sec@hue.example", Role.SECRETARY, dept, name="Võ Thư Ký")
    # Someone outside the invited units, and the organiser's own mailbox as a person.
    other = await world.unit("P-OTHER", UnitKind.CENTRE, "Phường Khác")
    await world.person("x@hue.example", Role.MEMBER, other)
    await world.person(ORGANIZER, Role.OBSERVER, dept, name="Hộp thư tổ chức")
    return {"people": people, "chair": chair, "secretary": secretary, "units": [c1, c2, dept]}


async def series_from_tomorrow(world: World, now: datetime) -> Series:
    """The morning series, open-ended, from tomorrow on, created with a clock at `now`."""
    async with world.db() as db:
        series = await service.create_series(
            db,
            CLI_ACTOR,
            morning(start_date=(now + timedelta(days=1)).date().isoformat(), end_date=""),
            ctx_at(world, now),
        )
        await db.commit()
    return series


def morning(**kw: Any) -> service.SeriesInput:
    values: dict[str, Any] = {
        "title": "Họp giao ban sáng",
        "kind": "morning",
        "start_time": "07:30",
        "duration_minutes": "45",
        "start_date": "2027-01-04",
        "end_date": "2027-03-31",
        "chair_email": "chair@hue.example",
        "secretary_email": "sec@hue.example",
        "unit_codes": ["P-PHONGDIEN", "P-KIMLONG", "SKHCN"],
    }
    values.update(kw)
    return service.SeriesInput(**values)


async def outbox(world: World, kind: str | None = None) -> list[tuple[OutboxMessage, EmailMessage]]:
    async with world.db() as db:
        stmt = select(OutboxMessage).order_by(OutboxMessage.id)
        if kind:
            stmt = stmt.where(OutboxMessage.kind == kind)
        rows = list(await db.scalars(stmt))
    return [(r, email.message_from_bytes(r.message, policy=email.policy.default)) for r in rows]


def calendar_part(msg: EmailMessage) -> Any:
    part = next(p for p in msg.walk() if p.get_content_type() == "text/calendar")
    raw = part.get_payload(decode=True)
    assert isinstance(raw, bytes) and b"\r\n" in raw
    cal = icalendar.Calendar.from_ical(raw)
    for component in cal.walk():
        assert not component.errors, component.errors
    return cal


async def test_series_invites_each_invitee_once_with_a_personal_link(world: World) -> None:
    c = await city(world)
    now = datetime(2027, 1, 1, 2, 0, tzinfo=UTC)
    async with world.db() as db:
        series = await service.create_series(db, CLI_ACTOR, morning(), ctx_at(world, now))
        await db.commit()
    mails = await outbox(world, "invitation")
    expected = {p.email for p in c["people"]} | {"chair@hue.example", "sec@hue.example"}
    assert sorted(r.recipient for r, _ in mails) == sorted(expected)  # not the organiser, nobody outside
    links = set()
    for row, msg in mails:
        assert msg.get_content_type() == "multipart/alternative"
        assert [p.get_content_type() for p in msg.iter_parts()] == [
            "text/plain",
            "text/html",
            "text/calendar",
        ]
        assert msg["From"].addresses[0].addr_spec == ORGANIZER
        cal = calendar_part(msg)
        assert cal["METHOD"] == "REQUEST"
        event = cal.walk("VEVENT")[0]
        assert str(event["UID"]) == series.uid and int(event["SEQUENCE"]) == 0
        assert event["DTSTART"].params["TZID"] == "Asia/Ho_Chi_Minh"
        assert event["DTSTART"].dt == datetime(2027, 1, 4, 7, 30, tzinfo=HCM)
        assert str(event["ORGANIZER"]) == f"mailto:{ORGANIZER}"
        # Each copy lists its own invitee and the chair, never the other invitees (RFC 5546 §2.1.2).
        attendees = {str(a).removeprefix("mailto:"): a.params["ROLE"] for a in _list(event.get("ATTENDEE"))}
        assert attendees == {row.recipient: "REQ-PARTICIPANT", "chair@hue.example": "CHAIR"} or (
            row.recipient == "chair@hue.example" and attendees == {"chair@hue.example": "CHAIR"}
        )
        assert all(
            a.params["PARTSTAT"] == "NEEDS-ACTION" and a.params["RSVP"] == "TRUE"
            for a in _list(event.get("ATTENDEE"))
        )
        location = str(event["LOCATION"])
        assert location == str(event["URL"]) and location.startswith("http://giaoban.test/join/")
        body = msg.get_body(("plain",))
        assert body is not None and location in body.get_content()
        assert "07:30–08:15 (GMT+7)" in body.get_content()
        links.add(location)
        # Tết 2027 and the compensatory day off are EXDATEs of the series.
        exdates = {d.dt.date() for ex in _list(event.get("EXDATE")) for d in ex.dts}
        assert date(2027, 2, 8) in exdates and date(2027, 2, 10) in exdates
    assert len(links) == len(mails)
    english = next(m for r, m in mails if r.recipient == "b2@hue.example")
    assert english["Subject"].startswith("[Giao Ban] Invitation:")
    vietnamese = next(m for r, m in mails if r.recipient == "a1@hue.example")
    assert "Mời họp" in vietnamese["Subject"] or "Họp giao ban sáng" in vietnamese["Subject"]


def _list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


async def test_three_months_expand_the_same_in_an_independent_parser(world: World) -> None:
    await city(world)
    now = datetime(2027, 1, 1, 2, 0, tzinfo=UTC)
    ctx = ctx_at(world, now, horizon=95)
    async with world.db() as db:
        await service.add_calendar_day(db, CLI_ACTOR, "2027-01-30", "makeup", "Làm bù Tết", ctx)
        series = await service.create_series(db, CLI_ACTOR, morning(), ctx)
        occs = list(
            await db.scalars(
                select(Occurrence).where(Occurrence.series_id == series.id).order_by(Occurrence.start)
            )
        )
        moved, cancelled = occs[40], occs[41]
        await service.move_occurrence(
            db,
            CLI_ACTOR,
            moved.id,
            moved.start.astimezone(HCM).replace(hour=9, minute=0).replace(tzinfo=None),
            ctx,
        )
        await service.cancel_occurrence(db, CLI_ACTOR, cancelled.id, ctx)
        await db.commit()
        ours = [
            o.start
            for o in await db.scalars(
                select(Occurrence)
                .where(Occurrence.series_id == series.id, Occurrence.state != OccurrenceState.CANCELLED)
                .order_by(Occurrence.start)
            )
        ]
    assert any(o.astimezone(HCM).date() == date(2027, 1, 30) for o in ours)  # the make-up Saturday
    assert not any(date(2027, 2, 5) <= o.astimezone(HCM).date() <= date(2027, 2, 10) for o in ours)  # Tết
    # A later full update keeps the cancellation as an EXDATE and the move as an override, and an
    # independent parser expands it to exactly our occurrences.
    async with world.db() as db:
        await service.update_series(db, CLI_ACTOR, series.id, morning(description="Thêm mô tả"), ctx)
        await db.commit()
    update = [m for r, m in await outbox(world, "update") if r.recipient == "a1@hue.example"][-1]
    cal = calendar_part(update)
    events = cal.walk("VEVENT")
    assert int(events[0]["SEQUENCE"]) == 3
    theirs = [
        e["DTSTART"].dt for e in recurring_ical_events.of(cal).between(date(2027, 1, 1), date(2027, 4, 1))
    ]
    assert sorted(t.astimezone(UTC) for t in theirs) == sorted(o.astimezone(UTC) for o in ours)


async def test_move_cancel_and_sequence_through_the_pages(world: World) -> None:
    c = await city(world)
    admin = await world.person("admin@hue.example", Role.ADMINISTRATOR)
    await world.login(admin.email)
    start = (datetime.now(HCM) + timedelta(days=3)).date()
    form = {
        "title": "Họp giao ban chiều",
        "kind": "afternoon",
        "start_time": "16:30",
        "duration_minutes": "45",
        "start_date": start.isoformat(),
        "end_date": "",
        "timezone": "Asia/Ho_Chi_Minh",
        "chair_email": "chair@hue.example",
        "secretary_email": "sec@hue.example",
        "reminder_minutes": "15",
        "description": "",
        "weekdays": ["MO", "TU", "WE", "TH", "FR"],
        "unit_codes": ["P-PHONGDIEN"],
        "person_emails": "d1@hue.example",
    }
    r = await world.post_form("/meetings/series/new", form)
    assert r.status == 303, await r.text()
    async with world.db() as db:
        series = await db.scalar(select(Series))
        assert series is not None
        occs = list(
            await db.scalars(
                select(Occurrence).where(Occurrence.series_id == series.id).order_by(Occurrence.start)
            )
        )
    assert occs and all(o.state == OccurrenceState.PLANNED for o in occs)
    invited = {"a1@hue.example", "a2@hue.example", "d1@hue.example", "chair@hue.example", "sec@hue.example"}
    assert {r.recipient for r, _ in await outbox(world, "invitation")} == invited
    first = occs[0]
    # bad moves: into the past, onto a weekend, malformed
    past = first.start.astimezone(HCM) - timedelta(days=30)
    r = await world.post_form(
        f"/meetings/occurrences/{first.id}/move", {"date": past.date().isoformat(), "time": "10:00"}
    )
    assert r.status == 422
    saturday = next(start + timedelta(days=i) for i in range(7) if (start + timedelta(days=i)).weekday() == 5)
    r = await world.post_form(
        f"/meetings/occurrences/{first.id}/move", {"date": saturday.isoformat(), "time": "10:00"}
    )
    assert r.status == 422
    r = await world.post_form(f"/meetings/occurrences/{first.id}/move", {"date": "soon", "time": "10"})
    assert r.status == 422
    assert await outbox(world, "moved") == []
    # a good move
    r = await world.post_form(
        f"/meetings/occurrences/{first.id}/move",
        {"date": first.start.astimezone(HCM).date().isoformat(), "time": "14:00"},
    )
    assert r.status == 303
    moved = await outbox(world, "moved")
    assert {r.recipient for r, _ in moved} == invited
    cal = calendar_part(moved[0][1])
    override = [e for e in cal.walk("VEVENT") if e.get("RECURRENCE-ID") is not None]
    assert len(override) == 1
    assert override[0]["RECURRENCE-ID"].dt == first.original_start.astimezone(HCM)
    assert override[0]["RECURRENCE-ID"].params["TZID"] == "Asia/Ho_Chi_Minh"
    assert override[0]["DTSTART"].dt.astimezone(HCM).hour == 14
    assert int(override[0]["SEQUENCE"]) == 1
    # cancel another occurrence: CANCEL with RECURRENCE-ID and STATUS:CANCELLED
    second = occs[1]
    r = await world.post_form(f"/meetings/occurrences/{second.id}/cancel")
    assert r.status == 303
    cancels = await outbox(world, "occurrence_cancel")
    cal = calendar_part(cancels[0][1])
    assert cal["METHOD"] == "CANCEL"
    event = cal.walk("VEVENT")[0]
    assert event["STATUS"] == "CANCELLED" and int(event["SEQUENCE"]) == 2
    assert event["RECURRENCE-ID"].dt == second.original_start.astimezone(HCM)
    part = next(p for p in cancels[0][1].walk() if p.get_content_type() == "text/calendar")
    assert part.get_param("method") == "CANCEL"
    # editing a cancelled occurrence is refused, nothing sent
    r = await world.post_form(f"/meetings/occurrences/{second.id}/cancel")
    assert r.status == 409
    r = await world.post_form(
        f"/meetings/occurrences/{second.id}/move",
        {"date": second.start.astimezone(HCM).date().isoformat(), "time": "15:00"},
    )
    assert r.status == 409
    # cancel the series: CANCEL of the UID, no RECURRENCE-ID
    r = await world.post_form(f"/meetings/series/{series.id}/cancel")
    assert r.status == 303
    ends = await outbox(world, "series_cancel")
    assert {r.recipient for r, _ in ends} == invited
    event = calendar_part(ends[0][1]).walk("VEVENT")[0]
    assert event.get("RECURRENCE-ID") is None and int(event["SEQUENCE"]) == 3
    # the organiser saw everything on the pages
    page = await (await world.client.get(f"/meetings/series/{series.id}")).text()
    assert "Phường Phong Điền" in page
    del c


async def test_bad_series_input_is_refused_and_nothing_saved(world: World) -> None:
    await city(world)
    admin = await world.person("admin@hue.example", Role.ADMINISTRATOR)
    await world.login(admin.email)
    cases: list[tuple[dict[str, Any], str]] = [
        ({"start_date": "2027-03-01", "end_date": "2027-02-01"}, "end_date"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"unit_codes": []}, "unit_codes"),
        ({"start_date": ""}, "start_date"),
        ({"weekdays": []}, "weekdays"),
        ({"start_time": "25:99"}, "start_time"),
        ({"duration_minutes": "0"}, "duration_minutes"),
        ({"chair_email": "nobody@hue.example"}, "chair_email"),
        ({"unit_codes": ["NOPE"]}, "unit_codes"),
    ]
    base = {
        "title": "Họp",
        "kind": "morning",
        "start_time": "07:30",
        "duration_minutes": "45",
        "start_date": "2030-01-07",
        "end_date": "",
        "timezone": "Asia/Ho_Chi_Minh",
        "chair_email": "",
        "secretary_email": "",
        "reminder_minutes": "15",
        "description": "",
        "weekdays": ["MO", "TU"],
        "unit_codes": ["P-PHONGDIEN"],
        "person_emails": "",
    }
    for change, field in cases:
        r = await world.post_form("/meetings/series/new", {**base, **change})
        assert r.status == 422, change
        body = await r.text()
        assert f"{field}-error" in body or 'class="invalid"' in body, (change, body[-2000:])
    async with world.db() as db:
        assert await db.scalar(select(func.count()).select_from(Series)) == 0
        assert await db.scalar(select(func.count()).select_from(OutboxMessage)) == 0


async def test_join_link_tampered_or_expired_is_refused(world: World) -> None:
    await city(world)
    now = datetime.now(UTC)
    series = await series_from_tomorrow(world, now)
    async with world.db() as db:
        person = await db.scalar(select(Person).where(Person.email == "a1@hue.example"))
        assert person is not None
    _, msg = next((r, m) for r, m in await outbox(world, "invitation") if r.recipient == "a1@hue.example")
    link = str(calendar_part(msg).walk("VEVENT")[0]["LOCATION"]).removeprefix("http://giaoban.test")
    ok = await world.client.get(link)
    assert ok.status == 200
    text = await ok.text()
    assert "Nguyễn Văn An" in text and "Phường Phong Điền" in text and "Họp giao ban sáng" in text
    token = link.rsplit("/", 1)[1]
    tampered = token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB")
    assert (await world.client.get(f"/join/{tampered}")).status == 403
    expired = make_join_token(
        world.settings.secret_key, JoinLink(person.id, series.id, None, now - timedelta(hours=1))
    )
    r = await world.client.get(f"/join/{expired}")
    assert r.status == 403 and ("expired" in (await r.text()) or "hết hạn" in (await r.text()))
    other_key = make_join_token(
        "another-secret", JoinLink(person.id, series.id, None, now + timedelta(days=1))
    )
    assert (await world.client.get(f"/join/{other_key}")).status == 403


async def test_answers_are_recorded_once_per_link_and_shown_per_unit(world: World) -> None:
    await city(world)
    now = datetime.now(UTC)
    series = await series_from_tomorrow(world, now)
    _, msg = next((r, m) for r, m in await outbox(world, "invitation") if r.recipient == "b1@hue.example")
    body = msg.get_body(("plain",))
    assert body is not None
    accept = re.search(r"http://giaoban\.test(/answer/\S+)", body.get_content())
    assert accept is not None
    path = accept.group(1)
    page = await world.client.get(path)
    assert page.status == 200  # a confirmation page: GET never answers (mail scanners follow links)
    async with world.db() as db:
        from meetings.schedule.models import Answer

        assert await db.scalar(select(func.count()).select_from(Answer)) == 0
    r = await world.post_form(path)
    assert r.status == 200
    again = await world.post_form(path)
    assert again.status == 409
    admin = await world.person("admin@hue.example", Role.ADMINISTRATOR)
    await world.login(admin.email)
    page_text = await (await world.client.get(f"/meetings/series/{series.id}")).text()
    row = re.search(r'<tr data-unit="P-KIMLONG">(.*?)</tr>', page_text, re.S)
    assert row is not None
    cells = re.findall(r"<td>(.*?)</td>", row.group(1), re.S)
    assert "Lê Văn Cường" in cells[0] and "Lê Văn Cường" not in cells[2]
    assert "Phạm Thị Dung" in cells[2]


async def test_feed_is_personal_revocable_and_has_no_attendees(world: World) -> None:
    await city(world)
    now = datetime.now(UTC)
    series = await series_from_tomorrow(world, now)
    await world.login("a1@hue.example")
    r = await world.post_form("/profile/feed")
    assert r.status == 303
    profile = await (await world.client.get("/profile")).text()
    url = re.search(r"/calendar/[0-9]+\.[0-9a-f]{40}\.ics", profile)
    assert url is not None
    await world.logout()
    feed = await world.client.get(url.group(0))  # no session: the address is the credential
    assert feed.status == 200 and feed.headers["Content-Type"].startswith("text/calendar")
    raw = await feed.read()
    cal = icalendar.Calendar.from_ical(raw)
    assert cal.get("METHOD") is None
    event = cal.walk("VEVENT")[0]
    assert str(event["UID"]) == series.uid and event.get("ATTENDEE") is None
    assert str(event["LOCATION"]).startswith("http://")
    tampered = url.group(0).replace(".ics", "").rstrip("0123456789abcdef") + "0" * 40 + ".ics"
    assert (await world.client.get(tampered)).status == 404
    await world.login("a1@hue.example")
    await world.post_form("/profile/feed")  # a new address; the old one stops
    assert (await world.client.get(url.group(0))).status == 404


async def test_ad_hoc_meeting_invites_at_once_and_refuses_the_past(world: World) -> None:
    await city(world)
    admin = await world.person("admin@hue.example", Role.ADMINISTRATOR)
    await world.login(admin.email)
    soon = datetime.now(HCM) + timedelta(minutes=20)
    form = {
        "title": "Sự cố kết nối dịch vụ công",
        "start_date": soon.date().isoformat(),
        "start_time": soon.strftime("%H:%M"),
        "duration_minutes": "30",
        "timezone": "Asia/Ho_Chi_Minh",
        "reminder_minutes": "5",
        "unit_codes": ["SKHCN"],
        "person_emails": "a1@hue.example",
        "chair_email": "chair@hue.example",
        "secretary_email": "",
        "description": "",
        "end_date": "",
    }
    r = await world.post_form("/meetings/adhoc/new", form)
    assert r.status == 303, await r.text()
    mails = await outbox(world, "invitation")
    # SKHCN is d1, the chair and the secretary (the organiser mailbox, also there, gets nothing)
    assert {r.recipient for r, _ in mails} == {
        "a1@hue.example",
        "d1@hue.example",
        "chair@hue.example",
        "sec@hue.example",
    }
    event = calendar_part(mails[0][1]).walk("VEVENT")[0]
    assert event["DTSTART"].dt.strftime("%H:%M") == soon.strftime("%H:%M")
    past = datetime.now(HCM) - timedelta(hours=2)
    r = await world.post_form(
        "/meetings/adhoc/new",
        {**form, "start_date": past.date().isoformat(), "start_time": past.strftime("%H:%M")},
    )
    assert r.status == 422


async def test_makeup_day_and_day_off_update_the_series(world: World) -> None:
    await city(world)
    now = datetime.now(UTC)
    ctx = ctx_at(world, now)
    start = (now + timedelta(days=1)).astimezone(HCM).date()
    async with world.db() as db:
        await service.create_series(db, CLI_ACTOR, morning(start_date=start.isoformat(), end_date=""), ctx)
        await db.commit()
    saturday = next(
        start + timedelta(days=i) for i in range(7, 14) if (start + timedelta(days=i)).weekday() == 5
    )
    tuesday = next(
        start + timedelta(days=i) for i in range(7, 14) if (start + timedelta(days=i)).weekday() == 1
    )
    admin = await world.person("admin@hue.example", Role.ADMINISTRATOR)
    await world.login(admin.email)
    r = await world.post_form(
        "/admin/calendar", {"day": saturday.isoformat(), "kind": "makeup", "name": "Làm bù"}
    )
    assert r.status == 303
    r = await world.post_form(
        "/admin/calendar", {"day": tuesday.isoformat(), "kind": "day_off", "name": "Nghỉ"}
    )
    assert r.status == 303
    r = await world.post_form(
        "/admin/calendar", {"day": tuesday.isoformat(), "kind": "day_off", "name": "Again"}
    )
    assert r.status == 422
    updates = [m for r, m in await outbox(world, "update") if r.recipient == "a1@hue.example"]
    assert len(updates) == 2
    event = calendar_part(updates[-1]).walk("VEVENT")[0]
    rdates = {d.dt.date() for rd in _list(event.get("RDATE")) for d in rd.dts}
    exdates = {d.dt.date() for ex in _list(event.get("EXDATE")) for d in ex.dts}
    assert saturday in rdates and tuesday in exdates
    assert int(event["SEQUENCE"]) == 2
    async with world.db() as db:
        days = {o.start.astimezone(HCM).date(): o.state for o in await db.scalars(select(Occurrence))}
    assert days[saturday] == OccurrenceState.PLANNED
    assert tuesday not in days or days[tuesday] == OccurrenceState.CANCELLED


async def test_members_see_only_their_meetings(world: World) -> None:
    c = await city(world)
    now = datetime.now(UTC)
    series = await series_from_tomorrow(world, now)
    await world.login("x@hue.example")  # a centre that is not invited
    assert (await world.client.get(f"/meetings/series/{series.id}")).status == 403
    home = await (await world.client.get("/")).text()
    assert "Họp giao ban sáng" not in home
    await world.logout()
    await world.login("a1@hue.example")
    assert (await world.client.get(f"/meetings/series/{series.id}")).status == 200
    r = await world.post_form(f"/meetings/series/{series.id}/cancel")
    assert r.status == 403
    del c
