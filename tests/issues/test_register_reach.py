"""Who reads the whole city's register (observers, administrators, the meeting's runners) and
who reads only their centre's; the page says whose issues it shows."""

from __future__ import annotations

from meetings.directory.models import Role
from tests.conftest import World
from tests.minutes.helpers import make_day


async def test_observers_and_administrators_read_the_whole_register(world: World) -> None:
    day = await make_day(world)
    observer = await world.person("observer@hue.example", Role.OBSERVER)
    admin = await world.person("admin@hue.example", Role.ADMINISTRATOR)
    await world.login(day.secretary.email)
    ids: dict[str, list[int]] = {}
    for unit, text in (
        ("P-PHUXUAN", "Mất kết nối một cửa"),
        ("P-PHUXUAN", "Lỗi ký số"),
        ("P-PHUXUAN", "Máy in hỏng"),
        ("P-THUANHOA", "Không thu được phí"),
        ("P-THUANHOA", "Lỗi đồng bộ hộ tịch"),
        ("P-OTHER", "Tài khoản bị khoá"),
    ):
        response = await world.call("POST", "/api/issues", json={"text": text, "unit": unit})
        assert response.status == 201, await response.text()
        ids.setdefault(unit, []).append((await response.json())["issue"]["id"])
    every = sorted(i for found in ids.values() for i in found)
    await world.logout()

    for person in (observer, admin):
        await world.login(person.email)
        listed = await (await world.client.get("/api/issues")).json()
        assert sorted(i["id"] for i in listed["issues"]) == every and listed["scope"] == "all"
        page = await world.client.get("/issues")
        html = await page.text()
        assert page.status == 200 and 'id="register-scope"' in html
        scope = html.split('id="register-scope"')[1].split("</p>")[0]
        assert "every centre" in scope or "mọi trung tâm" in scope
        table = html.split('id="issues"')[1]
        assert all(f'href="/issues/{i}"' in table for i in every)
        by_age = html.split('id="by-age"')[1].split("</div>")[0]
        assert "<strong>6</strong>" in by_age
        for issue_id in every:
            assert (await world.client.get(f"/issues/{issue_id}")).status == 200
            assert (await world.client.get(f"/api/issues/{issue_id}")).status == 200
        home = await (await world.client.get("/")).text()
        assert 'id="home-issues"' in home
        # Reading is not moving: only the secretary and the chair assign and close.
        assert (
            await world.call("POST", f"/api/issues/{every[0]}/status", json={"status": "closed"})
        ).status == 403
        await world.logout()

    await world.login(day.member.email)  # staff of P-PHUXUAN
    listed = await (await world.client.get("/api/issues")).json()
    assert listed["scope"] == "P-PHUXUAN" and [i["id"] for i in listed["issues"]] == ids["P-PHUXUAN"]
    html = await (await world.client.get("/issues")).text()
    scope = html.split('id="register-scope"')[1].split("</p>")[0]
    assert "Phường Phú Xuân" in scope
    table = html.split('id="issues"')[1]
    assert all(f'href="/issues/{i}"' in table for i in ids["P-PHUXUAN"])
    assert not any(f'href="/issues/{i}"' in table for i in ids["P-THUANHOA"] + ids["P-OTHER"])
    assert (await world.client.get(f"/issues/{ids['P-THUANHOA'][0]}")).status == 403
    assert (await world.client.get(f"/issues/{ids['P-PHUXUAN'][0]}")).status == 200
