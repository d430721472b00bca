"""The full loop through the app, with a real SMTP server: raised, assigned, carried, resolved,
turned into a manual article, found without diacritics from another centre's account."""

from __future__ import annotations

import asyncio
import email
import email.policy
from email.message import EmailMessage

from meetings.directory.models import Person, Role, UnitKind
from tests.conftest import World
from tests.minutes.helpers import make_day
from tests.minutes.test_day_smtp import minutes_of
from tests.schedule.test_invitations_smtp import Inbox, mailing_world, smtp_server

__all__ = ["mailing_world", "smtp_server"]  # the fixtures, used by name


async def wait_for(inbox: Inbox, needle: bytes, count: int = 1) -> list[tuple[list[str], bytes]]:
    """The caught messages containing needle, once there are `count` of them (bounded wait)."""
    found: list[tuple[list[str], bytes]] = []
    for _ in range(100):
        found = [(r, raw) for r, raw in inbox.messages if needle in raw]
        if len(found) >= count:
            break
        await asyncio.sleep(0.1)
    return found


async def test_issue_from_afternoon_to_manual(mailing_world: tuple[World, Inbox]) -> None:
    world, inbox = mailing_world
    day = await make_day(world)
    dost = await world.unit("DOST", UnitKind.SUPPORT, "Sở Khoa học và Công nghệ")
    engineer = await world.person("kythuat@hue.example", Role.MEMBER, dost, "Hồ Văn Kỹ Thuật")
    other_centre = await world.person("thuanhoa@hue.example", Role.MEMBER, None, "Cán bộ Thuận Hóa")

    # The afternoon meeting: the secretary records the issue Phú Xuân raises.
    await world.login(day.secretary.email)
    afternoon = await minutes_of(world, day.afternoons[0].id)
    created = await world.call(
        "POST",
        f"/api/minutes/{afternoon}/entries",
        json={
            "kind": "issue",
            "text": "Không ký số được hồ sơ chứng thực bản sao điện tử",
            "unit": "P-PHUXUAN",
            "category": "signature",
            "severity": "high",
        },
    )
    assert created.status == 201, await created.text()
    entry_id = (await created.json())["entry"]["id"]

    # It is in the register, open, with an identifier.
    listed = await (await world.client.get("/api/issues?status=live")).json()
    [issue] = [i for i in listed["issues"] if i["entry_id"] == entry_id]
    assert (
        issue["code"].startswith("VĐ-") and issue["status"] == "open" and issue["unit"]["code"] == "P-PHUXUAN"
    )
    issue_id = issue["id"]

    # Assigned to DOST: its engineer is emailed, once even if the request is repeated.
    for _ in range(2):
        assigned = await world.call("POST", f"/api/issues/{issue_id}/assign", json={"owner": "DOST"})
        assert assigned.status == 200, await assigned.text()
    assert (await assigned.json())["issue"]["owner"]["code"] == "DOST"
    mails = await wait_for(inbox, f"/issues/{issue_id}".encode())
    assert [r for r, _raw in mails] == [[engineer.email]]
    msg = email.message_from_bytes(mails[0][1], policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    body = msg.get_body(("plain",))
    assert body is not None and f"/issues/{issue_id}" in body.get_content()
    assert "chứng thực bản sao" in body.get_content()
    # The owner is the entry's owner: one source, seen in the minutes too.
    state = await (await world.client.get(f"/api/minutes/{afternoon}")).json()
    [entry] = [e for s in state["sections"] for e in s["entries"] if e["id"] == entry_id]
    assert entry["owner_unit"]["code"] == "DOST"

    # Carried to the next morning.
    morning = await minutes_of(world, day.mornings[1].id)
    state = await (await world.client.get(f"/api/minutes/{morning}")).json()
    assert entry_id in [e["id"] for e in state["carried"]]

    # The owner team resolves it, with the resolution.
    await world.logout()
    await world.login(engineer.email)
    home = await (await world.client.get("/")).text()
    assert f"/issues/{issue_id}" in home  # the support team sees the issues it owns
    refused = await world.call("POST", f"/api/issues/{issue_id}/status", json={"status": "closed"})
    assert refused.status == 403  # the owner resolves; the meeting closes
    missing = await world.call("POST", f"/api/issues/{issue_id}/status", json={"status": "resolved"})
    assert missing.status == 422  # a resolution is required
    resolved = await world.call(
        "POST",
        f"/api/issues/{issue_id}/status",
        json={
            "status": "resolved",
            "resolution": "Cập nhật chứng thư số mới và cài lại plugin ký số trên máy trạm.",
        },
    )
    assert resolved.status == 200, await resolved.text()
    # The entry closed with it: the next minutes no longer carry it.
    await world.logout()
    await world.login(day.secretary.email)
    later = await minutes_of(world, day.afternoons[1].id)
    state = await (await world.client.get(f"/api/minutes/{later}")).json()
    assert entry_id not in [e["id"] for e in state["carried"]]

    # History across meetings, with links to the minutes.
    detail = await (await world.client.get(f"/api/issues/{issue_id}")).json()
    actions = [s["action"] for s in detail["history"]]
    assert actions[0] == "raised" and "assigned" in actions and "discussed" in actions and "status" in actions
    assert actions.count("assigned") == 1
    raised = detail["history"][0]
    assert raised["minutes_id"] == afternoon and "Giao ban chiều" in raised["meeting"]
    assert {s["minutes_id"] for s in detail["history"] if s["action"] == "discussed"} >= {morning}

    # One step to a draft article; the editor publishes it.
    drafted = await world.post_form(f"/issues/{issue_id}/article")
    assert drafted.status == 303
    article_id = int(drafted.headers["Location"].split("/")[-2])
    again = await world.post_form(f"/issues/{issue_id}/article")
    assert int(again.headers["Location"].split("/")[-2]) == article_id  # one article per issue
    assert (await world.post_form(f"/manual/{article_id}/publish")).status == 303
    page = await (await world.client.get(f"/manual/{article_id}")).text()
    assert f"/issues/{issue_id}" in page  # links back to its issue

    # Another centre's member finds it without diacritics.
    await world.logout()
    other_unit = await world.unit("P-HUONGTRA", UnitKind.CENTRE, "Phường Hương Trà")
    async with world.db() as db:
        person = await db.get(Person, other_centre.id)
        person.unit_id = other_unit.id
        await db.commit()
    await world.login(other_centre.email)
    found = await (await world.client.get("/api/manual/search?q=ky so chung thuc ban sao")).json()
    assert [a["id"] for a in found["articles"]] == [article_id]
    assert "plugin ký số" in found["articles"][0]["answer"]
    # ...but not the issue itself: a centre reads its own issues only.
    assert (await world.client.get(f"/api/issues/{issue_id}")).status == 403
