"""CSV import: idempotent, UTF-8 Vietnamese, all or nothing, every bad line named."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from meetings.directory.models import Person, Role, Unit, UnitKind
from tests.conftest import World

UNITS = (
    "code,kind,name,parent\nUBND,committee,Ủy ban nhân dân thành phố Huế,\nP-A,centre,Phường Phú Xuân,UBND\n"
)
DEMO_CSV = Path(__file__).parent.parent / "meetings" / "directory" / "data" / "hue-units.csv"


async def admin_in(world: World) -> None:
    await world.person("admin@hue.example", Role.ADMINISTRATOR)
    await world.login("admin@hue.example")


async def upload(world: World, what: str, data: bytes) -> tuple[int, str]:
    form = {"what": what, "file": io.BytesIO(data), "csrf_token": world.csrf_token()}
    r = await world.client.post("/admin/import", data=form)
    return r.status, await r.text()


async def count(world: World, model: type) -> int:
    async with world.db() as db:
        return int(await db.scalar(select(func.count()).select_from(model)) or 0)


async def test_demo_city_file_imports_and_is_idempotent(world: World) -> None:
    await admin_in(world)
    status, page = await upload(world, "units", DEMO_CSV.read_bytes())
    assert status == 200, page
    assert await count(world, Unit) == 57
    async with world.db() as db:
        centres = await db.scalar(select(func.count()).select_from(Unit).where(Unit.kind == "centre"))
        assert centres == 40
    status, page = await upload(world, "units", DEMO_CSV.read_bytes())
    assert status == 200 and await count(world, Unit) == 57


async def test_a_file_with_bad_lines_imports_nothing_and_names_each(world: World) -> None:
    await admin_in(world)
    data = (
        "code,kind,name\n"
        "P-OK,centre,Phường Tốt\n"
        "P-BAD,planet,Phường Sai\n"  # line 3: unknown kind
        "P-OK,centre,Trùng mã\n"  # line 4: duplicate code
        ",centre,Không mã\n"  # line 5: no code
    ).encode()
    r = await world.call("POST", "/api/import/units", data=data, headers={"Content-Type": "text/csv"})
    assert r.status == 422
    fields = (await r.json())["error"]["fields"]
    assert sorted({f["line"] for f in fields}) == [3, 4, 5]
    assert await count(world, Unit) == 0
    status, page = await upload(world, "units", data)
    assert status == 422 and "3" in page and "P-OK" in page


async def test_wrong_header_and_encoding_are_reported(world: World) -> None:
    await admin_in(world)
    r = await world.call(
        "POST", "/api/import/units", data=b"kode,name\nA,B\n", headers={"Content-Type": "text/csv"}
    )
    assert r.status == 422
    assert "kode" in (await r.json())["error"]["fields"][0]["message"]
    latin1 = "code,kind,name\nP-A,centre,Phường\n".encode("utf-16")
    r = await world.call("POST", "/api/import/units", data=latin1, headers={"Content-Type": "text/csv"})
    assert r.status == 422
    assert "UTF-8" in (await r.json())["error"]["message"]
    r = await world.call("POST", "/api/import/units", data=b"", headers={"Content-Type": "text/csv"})
    assert r.status == 422


async def test_people_import_checks_units_and_emails(world: World) -> None:
    await admin_in(world)
    r = await world.call(
        "POST", "/api/import/units", data=UNITS.encode(), headers={"Content-Type": "text/csv"}
    )
    assert r.status == 200
    bad = (
        "name,email,unit,role\n"
        "Nguyễn Thị Hoa,hoa@hue.example,P-A,member\n"
        "Trần Văn Bảo,not-an-email,P-A,member\n"  # line 3
        "Lê Văn Cường,cuong@hue.example,P-NONE,\n"  # line 4
        "Hoa lần hai,HOA@hue.example,P-A,\n"  # line 5 duplicate email (case-insensitive)
    ).encode()
    r = await world.call("POST", "/api/import/people", data=bad, headers={"Content-Type": "text/csv"})
    assert r.status == 422
    assert sorted({f["line"] for f in (await r.json())["error"]["fields"]}) == [3, 4, 5]
    assert await count(world, Person) == 1  # only the admin
    good = (
        "name,email,unit,role\n"
        "Nguyễn Thị Hoa,hoa@hue.example,P-A,member\n"
        "Phan Chủ Trì,chu@hue.example,UBND,chair\n"
    )
    r = await world.call(
        "POST", "/api/import/people", data=good.encode(), headers={"Content-Type": "text/csv"}
    )
    assert (await r.json()) == {"created": 2, "updated": 0, "unchanged": 0, "lines": 2}
    changed = good.replace("Nguyễn Thị Hoa", "Nguyễn Thị Hoà")
    r = await world.call(
        "POST", "/api/import/people", data=changed.encode(), headers={"Content-Type": "text/csv"}
    )
    assert (await r.json()) == {"created": 0, "updated": 1, "unchanged": 1, "lines": 2}
    async with world.db() as db:
        hoa = await db.scalar(select(Person).where(Person.email == "hoa@hue.example"))
        assert hoa is not None and hoa.name == "Nguyễn Thị Hoà" and hoa.password_hash is None


async def api_import(world: World, what: str, data: bytes) -> tuple[int, dict[str, Any]]:
    r = await world.call("POST", f"/api/import/{what}", data=data, headers={"Content-Type": "text/csv"})
    return r.status, await r.json()


async def test_import_messages_have_their_parameters_filled(world: World) -> None:
    await admin_in(world)
    for data, expected in (
        ("code,kind,name\nP-A,centre,Phường\n".encode("utf-16"), "dòng 1"),
        (b"kode,name\nA,B\n", "code, kind, name, parent"),
        (b"code,kind,name\n" + b"P-A,centre,A\n" * 20_001, "20000"),
    ):
        status, body = await api_import(world, "units", data)
        assert status == 422
        message = body["error"]["message"]
        assert expected in message and "%(" not in message, message
        assert all("%(" not in f["message"] for f in body["error"]["fields"])
    status, body = await api_import(world, "units", b"code,kind,name\nP-A,planet,X\n")
    assert status == 422 and "1" in body["error"]["message"] and "%(" not in body["error"]["message"]


async def test_a_people_file_cannot_demote_the_last_administrator(world: World) -> None:
    await admin_in(world)
    await world.unit("P-PHONGDIEN", UnitKind.CENTRE, "Phường Phong Điền")
    pwned = b"email,name,role,unit\nadmin@hue.example,Pwned,member,P-PHONGDIEN\n"
    status, body = await api_import(world, "people", pwned)
    assert status == 422
    messages = [f["message"] for f in body["error"]["fields"]]
    assert "Phải còn ít nhất một quản trị viên đang hoạt động" in " ".join(messages), messages
    status, page = await upload(world, "people", pwned)
    assert status == 422 and "Phải còn ít nhất một quản trị viên đang hoạt động" in page
    r = await world.call("GET", "/api/me")  # the next administrator request still works
    assert r.status == 200 and (await r.json())["role"] == "administrator"
    # another administrator may be demoted while one remains (the one importing)
    await world.person("admin2@hue.example", Role.ADMINISTRATOR)
    status, body = await api_import(world, "people", b"email,name,role\nadmin2@hue.example,Hai,observer\n")
    assert status == 200, body


async def test_a_units_file_cannot_make_a_parent_cycle(world: World) -> None:
    await admin_in(world)
    cycle = "code,kind,name,parent\nZZP1,department,Một,ZZP2\nZZP2,department,Hai,ZZP1\n".encode()
    status, body = await api_import(world, "units", cycle)
    assert status == 422
    fields = body["error"]["fields"]
    assert [(f["line"], f["field"]) for f in fields] == [(2, "parent")]
    assert "ZZP1 → ZZP2 → ZZP1" in fields[0]["message"]
    status, page = await upload(world, "units", cycle)
    assert status == 422 and "ZZP1 → ZZP2 → ZZP1" in page
    assert await count(world, Unit) == 0
    # through a unit already stored
    status, body = await api_import(world, "units", "code,kind,name,parent\nZZP1,department,Một,\n".encode())
    assert status == 200
    status, body = await api_import(world, "units", b"code,kind,name,parent\nZZP2,department,Hai,ZZP1\n")
    assert status == 200
    status, body = await api_import(
        world, "units", "code,kind,name,parent\nZZP1,department,Một,ZZP2\n".encode()
    )
    assert status == 422 and "ZZP1 → ZZP2 → ZZP1" in body["error"]["fields"][0]["message"]


async def test_control_characters_are_refused_in_imported_text(world: World) -> None:
    await admin_in(world)
    status, body = await api_import(world, "units", b"code,kind,name\nP-NUL,centre,Ph\x00uong\n")
    assert status == 422
    assert [(f["line"], f["field"]) for f in body["error"]["fields"]] == [(2, "name")]
    assert "ký tự điều khiển" in body["error"]["fields"][0]["message"]
    await world.unit("P-A", UnitKind.CENTRE, "Phường A")
    bad_people = (
        "name,email,unit,title,phone\n"
        "Nguyễn\x01Văn,a@hue.example,P-A,,\n"
        'Lê Thị B,b@hue.example,P-A,"Chuyên\nviên",\n'
        "Trần C,c@hue.example,P-A,,090\x00123\n"
    ).encode()
    status, body = await api_import(world, "people", bad_people)
    assert status == 422
    assert [(f["line"], f["field"]) for f in body["error"]["fields"]] == [
        (2, "name"),
        (4, "title"),
        (5, "phone"),
    ]
    status, page = await upload(world, "people", bad_people)
    assert status == 422 and page.count("ký tự điều khiển") == 3
    async with world.db() as db:
        assert await db.scalar(select(func.count()).select_from(Person)) == 1
