"""The register: reports between meetings onto the next agenda, filters, the glance, who reads what."""

from __future__ import annotations

from typing import Any

from meetings.directory.models import Role, UnitKind
from tests.conftest import World
from tests.minutes.helpers import Day, make_day
from tests.minutes.test_day_smtp import minutes_of


async def setup(world: World) -> tuple[Day, Any, Any]:
    day = await make_day(world)
    dost = await world.unit("DOST", UnitKind.SUPPORT, "Sở KH&CN")
    viettel = await world.unit("VIETTEL", UnitKind.TELECOM, "Viettel Huế")
    return day, dost, viettel


async def report(world: World, **data: Any) -> Any:
    return await world.call("POST", "/api/issues", json=data)


async def test_a_centre_reports_between_meetings_and_it_is_on_the_next_agenda(world: World) -> None:
    day, _dost, _viettel = await setup(world)
    await world.login(day.member.email)
    first = await report(world, text="Mất mạng toàn bộ bộ phận một cửa", category="connectivity", key="k1")
    assert first.status == 201, await first.text()
    issue = (await first.json())["issue"]
    assert issue["unit"]["code"] == "P-PHUXUAN" and issue["source"] == "direct" and issue["entry_id"] is None
    # The same submission again (a retry) reports nothing new.
    again = await report(world, text="Mất mạng toàn bộ bộ phận một cửa", category="connectivity", key="k1")
    assert (await again.json())["issue"]["id"] == issue["id"]
    mine = await (await world.client.get("/api/issues")).json()
    assert [i["id"] for i in mine["issues"]] == [issue["id"]]
    # A centre reports for itself only.
    other = await report(world, text="Hộ", unit="P-THUANHOA")
    assert other.status == 403

    await world.logout()
    await world.login(day.secretary.email)
    morning = await minutes_of(world, day.mornings[0].id)
    state = await (await world.client.get(f"/api/minutes/{morning}")).json()
    entries = [e for s in state["sections"] for e in s["entries"]]
    [entry] = [e for e in entries if e["kind"] == "issue"]
    assert entry["text"] == "Mất mạng toàn bộ bộ phận một cửa" and entry["unit"]["code"] == "P-PHUXUAN"
    assert entry["raised_by"] == day.member.name
    detail = await (await world.client.get(f"/api/issues/{issue['id']}")).json()
    assert detail["issue"]["entry_id"] == entry["id"] and detail["issue"]["minutes_id"] == morning
    assert [s["action"] for s in detail["history"]][:2] == ["reported", "agenda"]
    # Opening the minutes again does not add it twice; the next meeting carries it instead.
    state = await (await world.client.get(f"/api/minutes/{morning}")).json()
    assert sum(1 for s in state["sections"] for e in s["entries"] if e["kind"] == "issue") == 1
    afternoon = await minutes_of(world, day.afternoons[0].id)
    state = await (await world.client.get(f"/api/minutes/{afternoon}")).json()
    assert [e["id"] for e in state["carried"]] == [entry["id"]]


async def test_filters_glance_and_load(world: World) -> None:
    day, _dost, _viettel = await setup(world)
    await world.login(day.secretary.email)
    ids = []
    for text, unit, category in (
        ("Lỗi đồng bộ dữ liệu hộ tịch", "P-PHUXUAN", "data_sync"),
        ("Không thu được phí", "P-THUANHOA", "fees"),
        ("Máy in hỏng", "P-PHUXUAN", "equipment"),
    ):
        response = await report(world, text=text, unit=unit, category=category)
        assert response.status == 201, await response.text()
        ids.append((await response.json())["issue"]["id"])
    await world.call("POST", f"/api/issues/{ids[0]}/assign", json={"owner": "DOST"})
    await world.call("POST", f"/api/issues/{ids[1]}/assign", json={"owner": "VIETTEL"})
    await world.call("POST", f"/api/issues/{ids[2]}/assign", json={"owner": "DOST"})
    moved = await world.call("POST", f"/api/issues/{ids[2]}/status", json={"status": "in_progress"})
    assert moved.status == 200, await moved.text()

    async def listed(query: str) -> list[int]:
        body = await (await world.client.get(f"/api/issues?{query}")).json()
        return [i["id"] for i in body["issues"]]

    assert await listed("unit=P-PHUXUAN") == [ids[0], ids[2]]
    assert await listed("owner=DOST") == [ids[0], ids[2]]
    assert await listed("category=fees") == [ids[1]]
    assert await listed("status=in_progress") == [ids[2]]
    assert await listed("status=live") == ids
    assert await listed("age=2") == []  # all reported today
    assert await listed("age=0") == ids
    bad = await world.client.get("/api/issues?status=nonsense&age=-1&category=x")
    assert bad.status == 422
    fields = {f["field"] for f in (await bad.json())["error"]["fields"]}
    assert fields == {"status", "age", "category"}
    page = await world.client.get("/issues?owner=DOST")
    text = await page.text()
    assert (
        page.status == 200
        and "Máy in hỏng" in text
        and "Không thu được phí" not in text.split('id="issues"')[1]
    )
    assert 'id="load"' in text and "DOST" in text
    # Assigning to a centre is refused; an unknown owner too.
    assert (
        await world.call("POST", f"/api/issues/{ids[0]}/assign", json={"owner": "P-THUANHOA"})
    ).status == 422
    assert (await world.call("POST", f"/api/issues/{ids[0]}/assign", json={"owner": "NOPE"})).status == 422


async def test_who_reads_and_moves_what(world: World) -> None:
    day, dost, _viettel = await setup(world)
    await world.login(day.member.email)
    mine = (await (await report(world, text="Sự cố của Phú Xuân")).json())["issue"]["id"]
    await world.logout()
    await world.login(day.outsider.email)
    theirs = (await (await report(world, text="Sự cố của đơn vị khác")).json())["issue"]["id"]
    assert (await world.client.get(f"/api/issues/{mine}")).status == 403
    assert (await world.client.get(f"/issues/{mine}")).status == 403
    assert [i["id"] for i in (await (await world.client.get("/api/issues")).json())["issues"]] == [theirs]
    # A centre does not move issues, not even its own (the owner and the meeting do).
    assert (
        await world.call("POST", f"/api/issues/{theirs}/status", json={"status": "resolved"})
    ).status == 403
    assert (await world.call("POST", f"/api/issues/{theirs}/assign", json={"owner": "DOST"})).status == 403
    await world.logout()
    engineer = await world.person("dost@hue.example", Role.MEMBER, dost)
    await world.login(engineer.email)
    # A support team follows issues across centres: it reads the whole register, and moves
    # only the issues its unit owns (none yet).
    assert [i["id"] for i in (await (await world.client.get("/api/issues")).json())["issues"]] == [
        mine,
        theirs,
    ]
    assert (
        await world.call("POST", f"/api/issues/{mine}/status", json={"status": "in_progress"})
    ).status == 403
    await world.logout()
    await world.login(day.secretary.email)
    await world.call("POST", f"/api/issues/{mine}/assign", json={"owner": "DOST"})
    await world.logout()
    await world.login(engineer.email)
    owned = await (await world.client.get("/api/issues?owner=DOST")).json()
    assert [i["id"] for i in owned["issues"]] == [mine]
    assert (
        await world.call("POST", f"/api/issues/{mine}/status", json={"status": "in_progress"})
    ).status == 200


async def test_bad_reports_are_refused_clearly(world: World) -> None:
    day, _dost, _viettel = await setup(world)
    await world.login(day.member.email)
    cases: list[tuple[Any, int]] = [
        ({"text": ""}, 422),
        ({"text": "x" * 4001}, 422),
        ({"text": "ok", "category": "nope"}, 422),
        ({"text": "ok", "severity": "apocalyptic"}, 422),
        ({"text": 5}, 422),
        ({"text": "ok", "unit": "NOPE"}, 422),
        ({"text": "ok", "key": "k" * 81}, 422),
    ]
    for body, status in cases:
        response = await report(world, **body)
        assert response.status == status, (body, await response.text())
    raw = await world.call(
        "POST", "/api/issues", data="not json", headers={"Content-Type": "application/json"}
    )
    assert raw.status == 422
    # The form keeps what was typed and says what is wrong.
    form = await world.post_form("/issues", {"text": "", "category": "fees", "key": "f1"})
    assert form.status == 422
    assert 'aria-invalid="true"' in await form.text()
    ok = await world.post_form(
        "/issues", {"text": "<script>alert(1)</script>", "category": "fees", "key": "f2"}
    )
    assert ok.status == 303
    page = await (await world.client.get(ok.headers["Location"])).text()
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;" in page
