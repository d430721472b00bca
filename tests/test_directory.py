"""The directory: pages, search with and without diacritics, admin forms, JSON API, audit."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select

from meetings.audit import AuditEntry
from meetings.directory.models import Person, Role, Unit, UnitKind
from tests.conftest import World


async def signed_in_admin(world: World) -> Person:
    admin = await world.person("admin@hue.example", Role.ADMINISTRATOR)
    await world.login(admin.email)
    return admin


async def test_search_with_and_without_diacritics(world: World) -> None:
    await world.unit("P-PHONGDIEN", UnitKind.CENTRE, "Phường Phong Điền")
    await world.unit("X-DONGBA", UnitKind.CENTRE, "Phường Đông Ba")
    await signed_in_admin(world)
    for q in ("phong dien", "Phong Điền", "PHONG DIEN"):
        page = await (await world.client.get("/directory", params={"q": q})).text()
        assert "Phường Phong Điền" in page and "Phường Đông Ba" not in page, q
    data = await (await world.client.get("/api/units", params={"q": "dong ba"})).json()
    assert [u["code"] for u in data["units"]] == ["X-DONGBA"]


async def test_people_search_by_unit_name(world: World) -> None:
    unit = await world.unit("P-THUANHOA", UnitKind.CENTRE, "Phường Thuận Hóa")
    await world.person("a@hue.example", Role.MEMBER, unit, name="Lê Thị Ánh")
    await world.person("b@hue.example", Role.MEMBER, None, name="Trần Văn Bình", password=False)
    await signed_in_admin(world)
    data = await (await world.client.get("/api/people", params={"q": "thuan hoa"})).json()
    assert [p["email"] for p in data["people"]] == ["a@hue.example"]
    data = await (await world.client.get("/api/people", params={"q": "anh"})).json()
    assert [p["email"] for p in data["people"]] == ["a@hue.example"]
    assert "password_hash" not in data["people"][0]


async def test_admin_creates_edits_and_deactivates_a_unit(world: World) -> None:
    admin = await signed_in_admin(world)
    bad = await world.post_form("/admin/units/new", {"code": "p x!", "kind": "planet", "name": ""})
    assert bad.status == 422
    text = await bad.text()
    assert text.count('aria-invalid="true"') == 3
    async with world.db() as db:
        assert (await db.scalars(select(Unit))).all() == []
    ok = await world.post_form(
        "/admin/units/new", {"code": "p-huongtra", "kind": "centre", "name": " Phường Hương Trà "}
    )
    assert ok.status == 303
    async with world.db() as db:
        unit = await db.scalar(select(Unit).where(Unit.code == "P-HUONGTRA"))
        assert unit is not None and unit.name == "Phường Hương Trà"
    dup = await world.post_form("/admin/units/new", {"code": "P-HUONGTRA", "kind": "centre", "name": "Again"})
    assert dup.status == 422
    r = await world.post_form(
        f"/admin/units/{unit.id}/edit",
        {"code": "P-HUONGTRA", "kind": "centre", "name": "Phường Hương Trà mới"},
    )
    assert r.status == 303
    r = await world.post_form(f"/admin/units/{unit.id}/active", {"active": "0"})
    assert r.status == 303
    listing = await (await world.client.get("/directory")).text()
    assert "Phường Hương Trà mới" not in listing
    listing = await (await world.client.get("/directory", params={"inactive": "1"})).text()
    assert "Phường Hương Trà mới" in listing
    async with world.db() as db:
        actions = [e.action for e in await db.scalars(select(AuditEntry).order_by(AuditEntry.id))]
        assert actions == ["unit.create", "unit.update", "unit.deactivate"]
        entry = await db.scalar(select(AuditEntry).where(AuditEntry.action == "unit.update"))
        assert entry is not None and entry.actor_id == admin.id
        assert entry.details["before"]["name"] == "Phường Hương Trà"


async def test_admin_creates_a_person_with_account(world: World) -> None:
    await world.unit("P-KIMLONG", UnitKind.CENTRE, "Phường Kim Long")
    await signed_in_admin(world)
    bad = await world.post_form(
        "/admin/people/new",
        {
            "name": "Nguyễn Văn A",
            "email": "not-an-email",
            "unit_code": "",
            "role": "member",
            "language": "vi",
        },
    )
    assert bad.status == 422
    body = await bad.text()
    assert 'id="email-error"' in body and 'id="unit_code-error"' in body
    ok = await world.post_form(
        "/admin/people/new",
        {
            "name": "Nguyễn Văn A",
            "email": "A.Nguyen@Hue.Example",
            "unit_code": "P-KIMLONG",
            "role": "member",
            "language": "vi",
            "password": "mật khẩu dài",
        },
    )
    assert ok.status == 303
    await world.logout()
    await world.login("a.nguyen@hue.example", "mật khẩu dài")


async def test_admin_cannot_deactivate_or_demote_themselves(world: World) -> None:
    admin = await signed_in_admin(world)
    r = await world.post_form(f"/admin/people/{admin.id}/active", {"active": "0"})
    assert r.status == 409
    r = await world.call(
        "PUT",
        f"/api/people/{admin.id}",
        json={"name": "x", "email": admin.email, "role": "observer"},
    )
    assert r.status == 422
    assert (await r.json())["error"]["fields"][0]["field"] == "role"


async def test_json_api_round_trip_and_errors(world: World) -> None:
    await signed_in_admin(world)
    r = await world.call(
        "POST", "/api/units", json={"code": "SXD2", "kind": "department", "name": "Sở Xây dựng 2"}
    )
    assert r.status == 201
    unit = await r.json()
    r = await world.call(
        "POST", "/api/people", json={"name": "Hồ Thị C", "email": "c@hue.example", "unit_code": "SXD2"}
    )
    assert r.status == 201
    person = await r.json()
    assert person["unit_code"] == "SXD2" and person["role"] == "member"
    r = await world.call(
        "PUT", f"/api/units/{unit['id']}", json={"code": "SXD2", "kind": "department", "name": "Sở XD"}
    )
    assert r.status == 200 and (await r.json())["name"] == "Sở XD"
    r = await world.call("DELETE", f"/api/people/{person['id']}")
    assert r.status == 200 and (await r.json())["active"] is False
    # bad input: not JSON, wrong types, unknown unit
    r = await world.call("POST", "/api/units", data="{not json", headers={"Content-Type": "application/json"})
    assert r.status == 422
    r = await world.call("POST", "/api/units", json=["a list"])
    assert r.status == 422
    r = await world.call("POST", "/api/units", json={"code": 12, "kind": "centre", "name": "x"})
    assert r.status == 422 and (await r.json())["error"]["fields"][0]["field"] == "code"
    r = await world.call(
        "POST", "/api/people", json={"name": "D", "email": "d@hue.example", "unit_code": "NOPE"}
    )
    assert r.status == 422
    r = await world.call("GET", "/api/people?limit=abc")
    assert r.status == 422


async def test_member_reads_but_cannot_change(world: World) -> None:
    unit = await world.unit()
    member = await world.person("m@hue.example", Role.MEMBER, unit)
    await world.login(member.email)
    assert (await world.client.get(f"/directory/units/{unit.id}")).status == 200
    page = await (await world.client.get(f"/directory/units/{unit.id}")).text()
    assert "/admin/units/" not in page  # no edit button for members
    r = await world.call("PUT", f"/api/units/{unit.id}", json={"code": "X", "kind": "centre", "name": "X"})
    assert r.status == 403


async def test_people_list_is_paged_and_keeps_the_query(world: World) -> None:
    unit = await world.unit("P-PAGE", UnitKind.CENTRE, "Phường Trang")
    for i in range(55):
        await world.person(f"p{i:02d}@hue.example", Role.MEMBER, unit, name=f"Người {i:02d}", password=False)
    await signed_in_admin(world)
    first = await (await world.client.get("/directory/people", params={"q": "nguoi"})).text()
    assert "?q=nguoi&amp;page=2" in first and first.count("@hue.example</td>") == 50
    second = await (await world.client.get("/directory/people", params={"q": "nguoi", "page": "2"})).text()
    assert second.count("@hue.example</td>") == 6  # 55 + the administrator, "Người administrator"


async def test_the_last_administrator_cannot_be_demoted_or_deactivated(world: World) -> None:
    """The rule is the domain's: any actor (here the command line's) meets it, not only the web."""
    from meetings.cli import CLI_ACTOR
    from meetings.directory import service
    from meetings.errors import Conflict, InvalidInput

    admin = await world.person("admin@hue.example", Role.ADMINISTRATOR)
    demote = service.PersonInput(name="Quản trị", email=admin.email, role="observer")
    async with world.db() as db:
        with pytest.raises(InvalidInput) as invalid:
            await service.update_person(db, CLI_ACTOR, admin.id, demote)
        assert [(e.field, e.message) for e in invalid.value.errors] == [("role", service.LAST_ADMINISTRATOR)]
        with pytest.raises(Conflict) as conflict:
            await service.set_person_active(db, CLI_ACTOR, admin.id, False)
        assert conflict.value.message == service.LAST_ADMINISTRATOR
        await db.rollback()
    # with a second administrator, either may go
    other = await world.person("admin2@hue.example", Role.ADMINISTRATOR)
    async with world.db() as db:
        await service.update_person(db, CLI_ACTOR, admin.id, demote)
        await db.commit()
    async with world.db() as db:
        with pytest.raises(Conflict):
            await service.set_person_active(db, CLI_ACTOR, other.id, False)


async def test_two_administrators_cannot_demote_each_other_at_once(world: World, backend: str) -> None:
    """The active administrators' rows are locked: the second demotion sees the first (PostgreSQL)."""
    if backend != "postgresql":
        pytest.skip("SQLite has one writer at a time; row locks are PostgreSQL's")
    from meetings.accounts.service import actor_of
    from meetings.directory import service
    from meetings.errors import InvalidInput

    one = await world.person("one@hue.example", Role.ADMINISTRATOR)
    two = await world.person("two@hue.example", Role.ADMINISTRATOR)
    async with world.db() as first, world.db() as second:
        await service.update_person(
            first, actor_of(one), two.id, service.PersonInput(name="Hai", email=two.email, role="observer")
        )
        racing = asyncio.create_task(
            service.update_person(
                second,
                actor_of(two),
                one.id,
                service.PersonInput(name="Một", email=one.email, role="observer"),
            )
        )
        await first.commit()  # the racing demotion was waiting for these rows
        with pytest.raises(InvalidInput) as invalid:
            await racing
        assert invalid.value.errors[0].message == service.LAST_ADMINISTRATOR


async def test_unit_form_and_api_refuse_a_parent_cycle(world: World) -> None:
    await signed_in_admin(world)
    top = await world.unit("ZZP1", UnitKind.DEPARTMENT, "Một")
    below = await world.unit("ZZP2", UnitKind.DEPARTMENT, "Hai", parent_id=top.id)
    await world.unit("ZZP3", UnitKind.DEPARTMENT, "Ba", parent_id=below.id)
    r = await world.post_form(
        f"/admin/units/{top.id}/edit",
        {"code": "ZZP1", "kind": "department", "name": "Một", "parent_code": "ZZP3"},
    )
    assert r.status == 422 and "ZZP1 → ZZP3 → ZZP2 → ZZP1" in await r.text()
    r = await world.call(
        "PUT",
        f"/api/units/{top.id}",
        json={"code": "ZZP1", "kind": "department", "name": "Một", "parent_code": "ZZP2"},
    )
    assert r.status == 422
    assert [f["field"] for f in (await r.json())["error"]["fields"]] == ["parent_code"]
    # renaming a unit and putting it under its own old code is a cycle too
    r = await world.call(
        "PUT",
        f"/api/units/{top.id}",
        json={"code": "ZZP9", "kind": "department", "name": "Một", "parent_code": "ZZP1"},
    )
    assert r.status == 422
    # moving a unit elsewhere, out of its own branch, is fine
    r = await world.call(
        "PUT",
        f"/api/units/{below.id}",
        json={"code": "ZZP2", "kind": "department", "name": "Hai", "parent_code": ""},
    )
    assert r.status == 200
    r = await world.call(
        "PUT",
        f"/api/units/{top.id}",
        json={"code": "ZZP1", "kind": "department", "name": "Một", "parent_code": "ZZP3"},
    )
    assert r.status == 200


async def test_control_characters_are_refused_in_forms_and_the_api(world: World) -> None:
    await signed_in_admin(world)
    await world.unit("P-A", UnitKind.CENTRE, "Phường A")
    # A NUL is refused by the body parser before any domain rule (a 400: no database stores one);
    # other control characters by the directory's own rule, on their field.
    r = await world.post_form("/admin/units/new", {"code": "P-B", "kind": "centre", "name": "Phường\x00B"})
    assert r.status == 400
    r = await world.post_form("/admin/units/new", {"code": "P-B", "kind": "centre", "name": "Phường\x07B"})
    assert r.status == 422 and "ký tự điều khiển" in await r.text()
    r = await world.call(
        "POST", "/api/units", json={"code": "P-B", "kind": "centre", "name": "Phường\u2028B"}
    )
    assert r.status == 422 and (await r.json())["error"]["fields"][0]["field"] == "name"
    for field, value in (
        ("name", "Lê\x00Văn"),
        ("title", "Chuyên\tviên"),
        ("phone", "090\x00"),
        ("name", "\ud800"),
    ):
        person = {"name": "Lê Văn", "email": "lv@hue.example", "unit_code": "P-A", field: value}
        r = await world.call("POST", "/api/people", json=person)
        assert r.status == 422, (field, value)
        fields = (await r.json())["error"]["fields"]
        if "\x00" in value or "\ud800" in value:  # the JSON parser's refusal (NUL, lone surrogate)
            assert [f["field"] for f in fields] == ["body"]
        else:
            assert [(f["field"], "ký tự điều khiển" in f["message"]) for f in fields] == [(field, True)]
    r = await world.post_form(
        "/admin/people/new",
        {
            "name": "Lê Văn",
            "email": "lv@hue.example",
            "unit_code": "P-A",
            "title": "A\x1bB",
            "role": "member",
        },
    )
    assert r.status == 422 and "ký tự điều khiển" in await r.text()
    async with world.db() as db:
        assert (await db.scalars(select(Unit.code).order_by(Unit.code))).all() == ["P-A"]
        assert (await db.scalars(select(Person.email))).all() == ["admin@hue.example"]
