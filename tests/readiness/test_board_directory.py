"""The directory side of readiness: a unit's contact phone and operator, the support role, the demo."""

from __future__ import annotations

from sqlalchemy import select

from meetings.demo import DEMO_LOGINS, load_demo
from meetings.directory.models import Person, Role, Unit, UnitKind
from tests.conftest import World


async def unit_by_code(world: World, code: str) -> Unit:
    async with world.db() as db:
        unit: Unit | None = await db.scalar(select(Unit).where(Unit.code == code))
        assert unit is not None
        return unit


async def test_phone_and_operator_through_the_form_shown_on_the_unit_page(world: World) -> None:
    await world.unit("VNPT", UnitKind.TELECOM, "VNPT Huế")
    await world.unit("IOC", UnitKind.SUPPORT, "Trung tâm IOC")
    await world.unit("SXD", UnitKind.DEPARTMENT, "Sở Xây dựng")
    await world.person("admin@hue.example", Role.ADMINISTRATOR)
    await world.login("admin@hue.example")
    form = await (await world.client.get("/admin/units/new")).text()
    assert 'name="phone"' in form and 'name="operator_code"' in form
    assert 'value="VNPT"' in form and 'value="SXD"' not in form.split('name="operator_code"')[1]
    fields = {"code": "P-A", "kind": "centre", "name": "Phường A", "parent_code": ""}
    created = await world.post_form(
        "/admin/units/new", {**fields, "phone": "0234 3822 001", "operator_code": "vnpt"}
    )
    assert created.status == 303, await created.text()
    unit = await unit_by_code(world, "P-A")
    vnpt = await unit_by_code(world, "VNPT")
    assert (unit.phone, unit.operator_id) == ("0234 3822 001", vnpt.id)
    page = await (await world.client.get(f"/directory/units/{unit.id}")).text()
    assert "0234 3822 001" in page and 'href="tel:02343822001"' in page and "VNPT Huế" in page
    # Edited: another operator; then bad values, each marked.
    edited = await world.post_form(
        f"/admin/units/{unit.id}/edit", {**fields, "phone": "", "operator_code": "IOC"}
    )
    assert edited.status == 303
    assert (await unit_by_code(world, "P-A")).operator_id == (await unit_by_code(world, "IOC")).id
    for phone, operator, message in (
        ("", "SXD", "phải là nhà mạng hoặc đơn vị hỗ trợ kỹ thuật"),
        ("", "P-A", "không thể tự hỗ trợ kết nối cho chính mình"),
        ("", "NOPE", "NOPE"),
        ("gọi tôi", "", "Số điện thoại không hợp lệ."),
    ):
        bad = await world.post_form(
            f"/admin/units/{unit.id}/edit", {**fields, "phone": phone, "operator_code": operator}
        )
        text = await bad.text()
        assert bad.status == 422 and message in text, (operator, phone, text[-2000:])


async def test_phone_and_operator_through_the_api(world: World) -> None:
    await world.unit("VIETTEL", UnitKind.TELECOM, "Viettel Huế")
    await world.unit("P-B", UnitKind.CENTRE, "Phường B")
    await world.person("admin@hue.example", Role.ADMINISTRATOR)
    await world.login("admin@hue.example")
    created = await world.call(
        "POST",
        "/api/units",
        json={
            "code": "P-C",
            "kind": "centre",
            "name": "Phường C",
            "phone": "0905 000 111",
            "operator_code": "VIETTEL",
        },
    )
    body = await created.json()
    assert created.status == 201, body
    viettel = await unit_by_code(world, "VIETTEL")
    assert (body["phone"], body["operator_id"]) == ("0905 000 111", viettel.id)
    shown = await (await world.client.get(f"/api/units/{body['id']}")).json()
    assert shown["operator_id"] == viettel.id
    bad = await world.call(
        "PUT",
        f"/api/units/{body['id']}",
        json={"code": "P-C", "kind": "centre", "name": "Phường C", "operator_code": "P-B"},
    )
    errors = (await bad.json())["error"]["fields"]
    assert bad.status == 422 and [e["field"] for e in errors] == ["operator_code"]
    wrong_type = await world.call(
        "PUT",
        f"/api/units/{body['id']}",
        json={"code": "P-C", "kind": "centre", "name": "Phường C", "phone": 905},
    )
    assert wrong_type.status == 422


async def test_phone_and_operator_through_the_csv_import(world: World) -> None:
    await world.person("admin@hue.example", Role.ADMINISTRATOR)
    await world.login("admin@hue.example")
    csv = (
        "code,kind,name,phone,operator\n"
        "P-D,centre,Phường D,0234 1,VNPT\n"  # the operator comes later in the same file
        "VNPT,telecom,VNPT Huế,,\n"
    ).encode()
    answer = await world.call("POST", "/api/import/units", data=csv, headers={"Content-Type": "text/csv"})
    assert answer.status == 200, await answer.text()
    unit = await unit_by_code(world, "P-D")
    assert (unit.phone, unit.operator_id) == ("0234 1", (await unit_by_code(world, "VNPT")).id)
    again = await world.call("POST", "/api/import/units", data=csv, headers={"Content-Type": "text/csv"})
    assert (await again.json())["unchanged"] == 2
    # Without the columns, the phone and operator stay.
    plain = await world.call(
        "POST",
        "/api/import/units",
        data="code,kind,name\nP-D,centre,Phường D\n".encode(),
        headers={"Content-Type": "text/csv"},
    )
    assert plain.status == 200
    assert (await unit_by_code(world, "P-D")).phone == "0234 1"
    bad = (
        "code,kind,name,phone,operator\n"
        "P-E,centre,Phường E,abc,P-D\n"  # a bad phone; a centre as operator
        "P-F,centre,Phường F,,P-F\n"  # itself
    ).encode()
    refused = await world.call("POST", "/api/import/units", data=bad, headers={"Content-Type": "text/csv"})
    fields = [(e["line"], e["field"]) for e in (await refused.json())["error"]["fields"]]
    assert refused.status == 422
    assert fields == [(2, "phone"), (2, "operator_code"), (3, "operator_code")]
    async with world.db() as db:
        assert await db.scalar(select(Unit.id).where(Unit.code == "P-E")) is None


async def test_the_support_role_by_form_api_and_csv_with_its_label(world: World) -> None:
    ioc = await world.unit("IOC", UnitKind.SUPPORT, "Trung tâm IOC")
    await world.person("admin@hue.example", Role.ADMINISTRATOR)
    await world.login("admin@hue.example")
    form = await (await world.client.get("/admin/people/new")).text()
    assert '<option value="support"' in form and "Hỗ trợ kỹ thuật" in form
    created = await world.post_form(
        "/admin/people/new",
        {
            "name": "Đặng Quang Huy",
            "email": "huy@hue.example",
            "unit_code": "IOC",
            "role": "support",
            "language": "vi",
        },
    )
    assert created.status == 303, await created.text()
    api = await world.call(
        "POST",
        "/api/people",
        json={"name": "Võ Vân", "email": "van@hue.example", "unit_code": "IOC", "role": "support"},
    )
    assert api.status == 201 and (await api.json())["role"] == "support"
    csv = "name,email,unit,role\nHồ Hải,hai@hue.example,IOC,support\n".encode()
    assert (
        await world.call("POST", "/api/import/people", data=csv, headers={"Content-Type": "text/csv"})
    ).status == 200
    async with world.db() as db:
        people = list(await db.scalars(select(Person).where(Person.unit_id == ioc.id).order_by(Person.email)))
    assert [(p.email, p.role) for p in people] == [
        ("hai@hue.example", Role.SUPPORT),
        ("huy@hue.example", Role.SUPPORT),
        ("van@hue.example", Role.SUPPORT),
    ]
    page = await (await world.client.get(f"/directory/people/{people[1].id}")).text()
    assert "Hỗ trợ kỹ thuật" in page


async def test_the_demo_city_has_phones_operators_and_a_support_team(world: World) -> None:
    async with world.db() as db:
        await load_demo(db)
        await db.commit()
        await load_demo(db)  # idempotent
        await db.commit()
        units = {u.code: u for u in await db.scalars(select(Unit))}
        people = {p.email: p for p in await db.scalars(select(Person))}
    assert all(u.phone for u in units.values())
    operators = {units["VNPT"].id, units["VIETTEL"].id}
    centres = [u for u in units.values() if u.kind == UnitKind.CENTRE]
    assert len(centres) == 40 and all(u.operator_id in operators for u in centres)
    assert {u.operator_id for u in centres} == operators  # both operators keep centres connected
    for code in ("IOC", "HUECIT", "VNPT", "VIETTEL"):
        staff = [p for p in people.values() if p.unit_id == units[code].id]
        assert staff and all(p.role is Role.SUPPORT for p in staff), code
    assert people["hotro@hue.example"].role is Role.SUPPORT
    assert people["hotro@hue.example"].unit_id == units["IOC"].id
    assert any(login.email == "hotro@hue.example" and login.role is Role.SUPPORT for login in DEMO_LOGINS)
    assert people["p-phongdien.1@hue.example"].role is Role.MEMBER
