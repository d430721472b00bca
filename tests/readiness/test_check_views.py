"""The connection check's pages and endpoints: every role, an invitee's signed link, bad input."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import select

from meetings.directory.models import Role, Unit, UnitKind
from meetings.readiness import checks
from meetings.readiness.models import CheckVerdict, ConnectionCheck
from meetings.rtc.probe import ProbeConfig, ProbeFigures
from meetings.schedule.emails import MailFacts, render
from meetings.schedule.links import JoinLink, make_join_token
from tests.conftest import World
from tests.readiness.probe_client import run_probe
from web import keys
from web.app import create_app

JSON = {"Accept": "application/json"}


async def centre(world: World, phone: str = "0234 3822 999") -> Unit:
    vnpt = await world.unit("VNPT", UnitKind.TELECOM, "VNPT Huế", phone=phone)
    return await world.unit("P-PHONGDIEN", UnitKind.CENTRE, "Phường Phong Điền", operator_id=vnpt.id)


def seal(world: World, person_id: int, **figures: Any) -> str:
    values = {
        "rtt_ms": 30.0,
        "loss_pct": 0.0,
        "down_kbps": 2000.0,
        "up_kbps": 900.0,
        "complete": True,
        **figures,
    }
    return checks.seal_figures(
        world.settings.secret_key, person_id, ProbeFigures(probe="p1", **values).as_dict()
    )


async def invitee(world: World, unit: Unit, days: int = 1) -> tuple[Any, Any, str]:
    person = await world.person("an@hue.example", Role.MEMBER, unit, name="Nguyễn Văn An", password=False)
    series, occurrence = await world.open_meeting([unit.code])
    expires = datetime.now(UTC) + timedelta(days=days)
    token = make_join_token(world.settings.secret_key, JoinLink(person.id, series.id, None, expires))
    return person, occurrence, token


@pytest.mark.parametrize("role", list(Role))
async def test_every_role_opens_the_check_and_stores_a_result(world: World, role: Role) -> None:
    unit = await centre(world)
    person = await world.person("me@hue.example", role, unit)
    await world.login("me@hue.example")
    page = await world.client.get("/check")
    assert page.status == 200
    text = await page.text()
    assert "Kiểm tra thiết bị và đường truyền" in text and 'id="check-config"' in text
    assert "Lần kiểm tra gần nhất" not in text  # none yet
    body = {"probe": seal(world, person.id), "camera_ok": True, "microphone_ok": True, "speaker_ok": True}
    response = await world.call("POST", "/check/result", json=body, headers=JSON)
    assert response.status == 201, await response.text()
    result = await response.json()
    assert result["verdict"] == "video" and result["headline"] == "Đủ để họp có hình"
    async with world.db() as db:
        check = await db.scalar(select(ConnectionCheck))
    assert check is not None and (check.person_id, check.unit_id) == (person.id, unit.id)
    assert (check.down_kbps, check.up_kbps, check.rtt_ms) == (2000.0, 900.0, 30.0)
    again = await (await world.client.get("/check")).text()
    assert "Lần kiểm tra gần nhất" in again and "Đủ để họp có hình" in again


async def test_anonymous_without_a_link_is_sent_to_sign_in(world: World) -> None:
    for path in ("/check",):
        response = await world.client.get(path, allow_redirects=False)
        assert response.status == 303 and response.headers["Location"].startswith("/login")
    response = await world.call("POST", "/check/result", json={})
    assert response.status == 303 and response.headers["Location"].startswith("/login")
    assert (await world.call("POST", "/check/probe", json={"offer": "x"})).status == 303


async def test_an_invitee_checks_by_the_signed_link_for_the_meeting_it_leads_to(world: World) -> None:
    unit = await centre(world)
    person, occurrence, token = await invitee(world, unit)
    page = await world.client.get(f"/join/{token}/check")
    assert page.status == 200
    text = await page.text()
    assert "Nguyễn Văn An" in text and "Phường Phong Điền" in text
    assert f"/rooms/{occurrence.id}?token={token}" in text  # back to the meeting
    # Weak: 300 kbit/s each way, and the client's own (forged) figures do not count.
    body = {
        "probe": seal(world, person.id, down_kbps=280.0, up_kbps=260.0),
        "client": {"down_kbps": 90000, "up_kbps": 90000},
        "camera_ok": True,
        "microphone_ok": True,
        "speaker_ok": False,
        "occurrence": 999999,  # ignored: the link decides the meeting
    }
    response = await world.call("POST", f"/join/{token}/check/result", json=body, headers=JSON)
    assert response.status == 201, await response.text()
    result = await response.json()
    assert result["verdict"] == "audio" and result["headline"] == "Chỉ đủ âm thanh"
    assert any("camera tắt" in tip for tip in result["advice"])
    assert any("âm thanh thử" in tip for tip in result["advice"])
    async with world.db() as db:
        check = await db.scalar(select(ConnectionCheck))
    assert check is not None and check.occurrence_id == occurrence.id and check.person_id == person.id
    assert check.down_kbps == 280.0 and check.details["client"]["down_kbps"] == 90000


async def test_a_failed_check_says_who_to_call(world: World) -> None:
    unit = await centre(world)
    person, _occurrence, token = await invitee(world, unit)
    body = {"probe": "", "error": "timeout", "camera_ok": True, "microphone_ok": True}
    response = await world.call("POST", f"/join/{token}/check/result", json=body, headers=JSON)
    result = await response.json()
    assert result["verdict"] == "failed"
    assert result["headline"] == "Không kết nối được — gọi hỗ trợ: 0234 3822 999"
    assert result["phone"] == "0234 3822 999"
    async with world.db() as db:
        check = await db.scalar(select(ConnectionCheck))
    assert check is not None and check.verdict is CheckVerdict.FAILED and check.rtt_ms is None
    assert check.details["error"] == "timeout" and check.person_id == person.id


async def test_a_unit_without_an_operator_gets_the_configured_number(
    world: World, aiohttp_client: Callable[..., Awaitable[TestClient[Any, Any]]]
) -> None:
    unit = await world.unit("P-X", UnitKind.CENTRE)
    await world.person("x@hue.example", Role.MEMBER, unit)
    await world.login("x@hue.example")
    response = await world.call("POST", "/check/result", json={"probe": None}, headers=JSON)
    assert (await response.json())["headline"] == "Không kết nối được"  # no number anywhere
    settings = dataclasses.replace(world.settings, check_support_phone="1900 1234")
    other = World(client=await aiohttp_client(create_app(settings)), settings=settings)
    await other.login("x@hue.example")
    response = await other.call("POST", "/check/result", json={}, headers=JSON)
    assert (await response.json())["headline"] == "Không kết nối được — gọi hỗ trợ: 1900 1234"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"probe": "forged.token.here"}, "probe"),
        ({"probe": 17}, "probe"),
        ({"camera_ok": "yes"}, "camera_ok"),
        ({"client": {"rtt_ms": -5}}, "client.rtt_ms"),
        ({"client": {"loss_pct": 250}}, "client.loss_pct"),
        ({"client": {"down_kbps": 1e15}}, "client.down_kbps"),
        ({"client": "fast"}, "client"),
        ({"occurrence": "abc"}, "occurrence"),
        ({"occurrence": 424242}, "occurrence"),
        ({"occurrence": 2**40}, "body"),  # the JSON reader refuses what no database integer holds
    ],
)
async def test_bad_results_are_refused_clearly(world: World, body: dict[str, Any], field: str) -> None:
    unit = await centre(world)
    await world.person("me@hue.example", Role.MEMBER, unit)
    await world.login("me@hue.example")
    response = await world.call("POST", "/check/result", json=body, headers=JSON)
    assert response.status == 422, await response.text()
    error = (await response.json())["error"]
    assert [f["field"] for f in error["fields"]] == [field]
    assert error["fields"][0]["message"]  # in Vietnamese, from the catalog
    async with world.db() as db:
        assert await db.scalar(select(ConnectionCheck)) is None


async def test_another_persons_or_an_old_measurement_is_refused(world: World) -> None:
    unit = await centre(world)
    me = await world.person("me@hue.example", Role.MEMBER, unit)
    other = await world.person("other@hue.example", Role.MEMBER, unit)
    await world.login("me@hue.example")
    response = await world.call("POST", "/check/result", json={"probe": seal(world, other.id)}, headers=JSON)
    assert response.status == 422
    message = (await response.json())["error"]["fields"][0]["message"]
    assert message == "Kết quả đo đường truyền không hợp lệ. Vui lòng kiểm tra lại."
    assert me.id != other.id


async def test_expired_or_forged_links_are_refused(world: World) -> None:
    unit = await centre(world)
    _person, _occurrence, token = await invitee(world, unit, days=-1)
    forged = token[:-2] + ("xx" if not token.endswith("xx") else "yy")
    for path, words in ((f"/join/{token}/check", "đã hết hạn"), (f"/join/{forged}/check", "không hợp lệ")):
        response = await world.client.get(path)
        assert response.status == 403
        assert f"Đường liên kết này {words}" in await response.text()
    for suffix in ("probe", "result"):
        response = await world.call("POST", f"/join/{token}/check/{suffix}", json={}, headers=JSON)
        assert response.status == 403
        assert "hết hạn" in (await response.json())["error"]["message"]


async def test_the_probe_endpoint_refuses_bad_offers_other_sites_and_too_many(world: World) -> None:
    unit = await centre(world)
    await world.person("me@hue.example", Role.MEMBER, unit)
    await world.login("me@hue.example")
    assert (await world.call("POST", "/check/probe", json={}, headers=JSON)).status == 422
    assert (await world.call("POST", "/check/probe", data="offer", headers=JSON)).status == 422
    refused = await world.call("POST", "/check/probe", json={"offer": "v=0 nonsense"}, headers=JSON)
    assert refused.status == 422
    assert (await refused.json())["error"]["fields"][0]["field"] == "offer"
    elsewhere = {**JSON, "Origin": "https://evil.example"}
    assert (await world.call("POST", "/check/probe", json={"offer": "x"}, headers=elsewhere)).status == 403
    assert (await world.call("POST", "/check/result", json={}, headers=elsewhere)).status == 403
    # Three starts a minute: each offer counts, even one that is refused ("v=0 nonsense" did).
    for _ in range(2):
        assert (await world.call("POST", "/check/probe", json={"offer": "v=0"}, headers=JSON)).status == 422
    too_many = await world.call("POST", "/check/probe", json={"offer": "v=0 m=application"}, headers=JSON)
    assert too_many.status == 429
    assert "chờ một phút" in (await too_many.json())["error"]["message"]


async def test_a_busy_node_asks_to_try_again(world: World) -> None:
    unit = await centre(world)
    await world.person("me@hue.example", Role.MEMBER, unit)
    await world.login("me@hue.example")
    world.app[keys.PROBES].config = ProbeConfig(max_probes=0)
    offer = "v=0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n"
    response = await world.call("POST", "/check/probe", json={"offer": offer}, headers=JSON)
    assert response.status == 429
    assert "nhiều đường truyền" in (await response.json())["error"]["message"]


async def test_a_real_probe_through_the_endpoints(world: World) -> None:
    """An aiortc client runs the probe over the endpoint; its sealed figures are what is stored."""
    unit = await centre(world)
    person, occurrence, token = await invitee(world, unit)
    world.app[keys.PROBES].config = ProbeConfig(ping_seconds=0.5, down_seconds=0.8, up_seconds=0.8)

    async def answer_for(offer: str) -> str:
        response = await world.call("POST", f"/join/{token}/check/probe", json={"offer": offer}, headers=JSON)
        assert response.status == 200, await response.text()
        return str((await response.json())["answer"])

    result = await run_probe(answer_for)
    body = {"probe": result["seal"], "camera_ok": None, "microphone_ok": None, "speaker_ok": None}
    response = await world.call("POST", f"/join/{token}/check/result", json=body, headers=JSON)
    assert response.status == 201, await response.text()
    async with world.db() as db:
        check = await db.scalar(select(ConnectionCheck))
    assert check is not None and check.person_id == person.id and check.occurrence_id == occurrence.id
    assert (check.rtt_ms, check.loss_pct, check.down_kbps, check.up_kbps) == (
        result["rtt_ms"],
        result["loss_pct"],
        result["down_kbps"],
        result["up_kbps"],
    )
    assert check.details["probe"] == result["probe"] and check.details["complete"] is True


def test_the_invitation_links_to_the_check() -> None:
    start = datetime(2026, 12, 7, 7, 30, tzinfo=UTC)
    facts = MailFacts(
        kind="invitation",
        title="Giao ban sáng",
        recipient_name="An",
        start=start,
        end=start + timedelta(hours=1),
        join_url="https://giaoban.hue.example/join/TOKEN",
    )
    words = render(facts, "vi")
    assert (
        "Kiểm tra thiết bị và đường truyền trước cuộc họp:\nhttps://giaoban.hue.example/join/TOKEN/check"
        in words.text
    )
    assert (
        'href="https://giaoban.hue.example/join/TOKEN/check">Kiểm tra thiết bị và đường truyền</a>'
        in words.html
    )
    cancelled = render(
        MailFacts(kind="occurrence_cancel", title="x", recipient_name="An", start=start, end=start), "vi"
    )
    assert "/check" not in cancelled.text


async def test_the_home_page_and_the_pre_join_screen_offer_the_check(world: World) -> None:
    unit = await centre(world)
    person, occurrence, token = await invitee(world, unit)
    # The join link's own page, and its pre-join screen, lead to the link's check.
    join = await (await world.client.get(f"/join/{token}")).text()
    assert f'id="join-check" href="/join/{token}/check"' in join
    room = await (await world.client.get(f"/rooms/{occurrence.id}?token={token}")).text()
    assert f'id="prejoin-check" href="/join/{token}/check"' in room
    # Signed in: the home page, and the pre-join screen for this meeting.
    await world.person("me@hue.example", Role.MEMBER, unit)
    await world.login("me@hue.example")
    home = await (await world.client.get("/")).text()
    assert 'id="home-check" href="/check"' in home
    room = await (await world.client.get(f"/rooms/{occurrence.id}")).text()
    assert f'id="prejoin-check" href="/check?occurrence={occurrence.id}"' in room
    page = await (await world.client.get(f"/check?occurrence={occurrence.id}")).text()
    assert f'"occurrence": {occurrence.id}' in page and f'href="/rooms/{occurrence.id}"' in page
    response = await world.call("POST", "/check/result", json={"occurrence": occurrence.id}, headers=JSON)
    assert response.status == 201
    async with world.db() as db:
        check = await db.scalar(select(ConnectionCheck))
    assert check is not None and check.occurrence_id == occurrence.id and check.person_id != person.id
    for bad in ("abc", "0", "424242"):
        assert (await world.client.get(f"/check?occurrence={bad}")).status == 422
