"""CSV import: idempotent, UTF-8 Vietnamese, all or nothing, every bad line named."""

from __future__ import annotations

import io
from pathlib import Path

from sqlalchemy import func, select

from meetings.directory.models import Person, Role, Unit
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
