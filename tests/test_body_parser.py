"""The cases of issue #14 one by one: each was a 500 and is now a clear 4xx in Vietnamese."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import aiohttp

from meetings.directory.models import Role, UnitKind
from meetings.minutes import service as minutes_service
from meetings.schedule.links import JoinLink, make_join_token
from tests.conftest import World
from web import csrf


async def signed_in_as(world: World, role: Role) -> None:
    unit = await world.unit("P-BODY", UnitKind.CENTRE)
    await world.person(f"{role.value}@hue.example", role, unit)
    await world.login(f"{role.value}@hue.example")


async def test_deeply_nested_json_is_a_422_in_vietnamese(world: World) -> None:
    await signed_in_as(world, Role.ADMINISTRATOR)
    response = await world.call(
        "POST", "/api/units", data="[" * 50_000, headers={"Content-Type": "application/json"}
    )
    assert response.status == 422
    error = (await response.json())["error"]
    assert error["message"] == "Dữ liệu JSON lồng nhau quá nhiều cấp."
    assert error["fields"][0]["field"] == "body"


async def test_broken_multipart_is_a_400_in_vietnamese(world: World) -> None:
    await signed_in_as(world, Role.ADMINISTRATOR)
    # Read by the view (the token in the header), and by the CSRF check (the token in the form).
    for path, token in (
        ("/admin/units/new", world.csrf_token()),
        ("/admin/units/new", ""),
        ("/api/units", ""),
    ):
        response = await world.call(
            "POST",
            path,
            data=b"--zz\r\nbroken",
            headers={"Content-Type": "multipart/form-data; boundary=zz", csrf.HEADER: token},
        )
        assert response.status == 400, path
        body = await response.text()
        shown = json.loads(body)["error"]["message"] if path.startswith("/api/") else body
        assert "Không đọc được biểu mẫu đã gửi." in shown


async def test_a_list_or_an_object_as_the_minutes_op_is_a_422(world: World) -> None:
    await signed_in_as(world, Role.SECRETARY)
    _series, occ = await world.open_meeting(["P-BODY"])
    async with world.db() as db:
        minutes = await minutes_service.ensure_minutes(db, occ)
        await db.commit()
    for op in (["add"], {"a": 1}):
        # The route decides the action (an add): a body's "op" of any type is not looked at, and
        # the add without its text is refused on that field (it was a 500 when the op was read).
        response = await world.call("POST", f"/api/minutes/{minutes.id}/entries", json={"op": op})
        assert response.status == 422
        assert (await response.json())["error"]["fields"][0]["field"] == "text"
        # Where the op is read (the shared edit path of the socket and the API), it must be a known name.
        response = await world.call(
            "POST", f"/api/minutes/{minutes.id}/entries", json={"op": op, "text": "x", "kind": "note"}
        )
        assert response.status == 201


async def test_a_file_sent_as_a_plain_field_on_the_import_is_a_422(world: World) -> None:
    await signed_in_as(world, Role.ADMINISTRATOR)
    form = aiohttp.FormData()
    form.add_field("csrf_token", world.csrf_token())
    form.add_field("what", b"units", filename="what.txt", content_type="text/plain")
    form.add_field("file", b"code,kind,name\n", filename="units.csv", content_type="text/csv")
    response = await world.client.post("/admin/import", data=form, allow_redirects=False)
    assert response.status == 422
    assert "Trường này phải là văn bản." in await response.text()


async def test_an_over_long_timezone_is_a_422(world: World) -> None:
    await signed_in_as(world, Role.ADMINISTRATOR)
    for length in (300, 4000, 100_000):  # 300: the file system refused the name (OSError)
        response = await world.post_form("/meetings/series/new", {"title": "Họp", "timezone": "x" * length})
        assert response.status == 422, length


async def test_the_room_socket_closes_deep_json_before_join_with_the_protocol_error_code(
    world: World,
) -> None:
    unit = await world.unit("P-BODY", UnitKind.CENTRE)
    member = await world.person("member@hue.example", Role.MEMBER, unit)
    series, occ = await world.open_meeting(["P-BODY"])
    origin = str(world.client.make_url("/")).rstrip("/")
    url = world.client.make_url(f"/rooms/{occ.id}/ws")
    ws = await world.client.session.ws_connect(url, headers={"Origin": origin})
    await ws.send_str("[" * 50_000)
    error = json.loads((await ws.receive(timeout=10)).data)
    assert error["type"] == "error" and error["code"] == "bad_message"
    await ws.receive(timeout=10)
    assert ws.close_code == 4000  # docs/signaling.md: bad message (not 4500, internal error)
    # After join the same message also closes with 4000 (not 1000, which the browser takes as final).
    token = make_join_token(
        world.settings.secret_key, JoinLink(member.id, series.id, None, datetime.now(UTC) + timedelta(days=1))
    )
    ws = await world.client.session.ws_connect(url, headers={"Origin": origin})
    await ws.send_str(json.dumps({"type": "join", "occurrence": occ.id, "token": token}))
    assert json.loads((await ws.receive(timeout=10)).data)["type"] == "welcome"
    await ws.send_str("[" * 50_000)
    while not ws.closed:
        await ws.receive(timeout=10)
    assert ws.close_code == 4000


async def test_a_nul_in_the_query_and_a_huge_offset_are_4xx(world: World) -> None:
    """Found by the long fuzz on PostgreSQL: NUL in a search and an offset beyond int64 were 500s."""
    await signed_in_as(world, Role.SECRETARY)
    for path in ("/manual?q=a%00b", "/api/manual/search?q=%00", "/admin/mail?q=%00"):
        response = await world.client.get(path, allow_redirects=False)
        assert response.status == 400, path
    response = await world.client.get("/api/people?offset=99999999999999999999")
    assert response.status == 422


def test_only_the_body_parser_reads_request_bodies() -> None:
    """A view that reads a body itself skips the parser's checks (a broken multipart was a 500)."""
    import re
    from pathlib import Path

    web_dir = Path(__file__).resolve().parents[1] / "web"
    direct = re.compile(r"request\.(post|json|text|multipart|read)\(\)")
    found = [
        f"{path.relative_to(web_dir)}:{number}"
        for path in sorted(web_dir.rglob("*.py"))
        if path.name != "forms.py"
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if direct.search(line)
    ]
    assert found == [], "read bodies through web/forms.py"
