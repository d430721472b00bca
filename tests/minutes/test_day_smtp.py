"""A whole day through the app: recorded, carried over, approved, published to a real SMTP server."""

from __future__ import annotations

import asyncio
import email
import email.policy
import io
import re
from email.message import EmailMessage

import docx

from tests.conftest import World
from tests.minutes.helpers import make_day
from tests.schedule.test_invitations_smtp import Inbox, mailing_world, smtp_server

__all__ = ["mailing_world", "smtp_server"]  # the fixtures, used by name


async def minutes_of(world: World, occurrence_id: int) -> int:
    response = await world.client.get(f"/meetings/occurrences/{occurrence_id}/minutes", allow_redirects=False)
    assert response.status == 303
    return int(response.headers["Location"].rsplit("/", 1)[1])


async def test_a_day_recorded_carried_approved_and_mailed(mailing_world: tuple[World, Inbox]) -> None:
    world, inbox = mailing_world
    day = await make_day(world)
    await world.login(day.secretary.email)
    morning = await minutes_of(world, day.mornings[0].id)
    issue = await world.call(
        "POST",
        f"/api/minutes/{morning}/entries",
        json={
            "kind": "issue",
            "text": "Không thu được lệ phí trực tuyến",
            "unit": "P-THUANHOA",
            "category": "fees",
        },
    )
    issue_id = (await issue.json())["entry"]["id"]
    await world.call(
        "POST",
        f"/api/minutes/{morning}/entries",
        json={"kind": "decision", "text": "VNPT hỗ trợ ngay trong sáng nay"},
    )
    assert (await world.post_form(f"/minutes/{morning}/submit")).status == 303

    afternoon = await minutes_of(world, day.afternoons[0].id)
    state = await (await world.client.get(f"/api/minutes/{afternoon}")).json()
    assert [e["id"] for e in state["carried"]] == [issue_id]
    action = await world.call(
        "POST",
        f"/api/minutes/{afternoon}/entries",
        json={
            "kind": "action",
            "text": "Cấu hình lại cổng thanh toán",
            "owner_unit": "VNPT",
            "due_date": "2099-01-08",
            "link_id": issue_id,
        },
    )
    assert action.status == 201, await action.text()
    closed = await world.call(
        "POST", f"/api/minutes/{afternoon}/entries/{issue_id}/status", json={"version": 1, "status": "closed"}
    )
    assert closed.status == 200 and (await closed.json())["entry"]["status"] == "closed"
    history = await (await world.client.get(f"/api/minutes/{afternoon}/entries/{issue_id}/history")).json()
    assert [c["action"] for c in history["changes"]] == ["create", "close"]
    assert history["changes"][1]["minutes_id"] == afternoon

    next_morning = await minutes_of(world, day.mornings[1].id)
    state = await (await world.client.get(f"/api/minutes/{next_morning}")).json()
    assert [e["kind"] for e in state["carried"]] == ["action"]  # the issue is closed; the action lives on

    await world.logout()
    await world.login(day.chair.email)
    assert (await world.post_form(f"/minutes/{morning}/approve")).status == 303
    assert (await world.post_form(f"/minutes/{morning}/publish")).status == 303

    minutes_mail: list[tuple[list[str], bytes]] = []
    for _ in range(100):
        minutes_mail = [(r, raw) for r, raw in inbox.messages if b"bien-ban-2030-01-07" in raw]
        if len(minutes_mail) >= 3:
            break
        await asyncio.sleep(0.1)
    recipients = sorted(r for rcpts, _ in minutes_mail for r in rcpts)
    assert recipients == ["chair@hue.example", "member@hue.example", "secretary@hue.example"]
    msg = email.message_from_bytes(minutes_mail[0][1], policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    assert msg["Subject"].startswith("[Giao ban]") and msg["Subject"].endswith(", 07/01/2030")
    attachments = {part.get_filename(): part.get_payload(decode=True) for part in msg.iter_attachments()}
    docx_bytes = attachments[f"bien-ban-2030-01-07-{morning}-v1.docx"]
    pdf_bytes = attachments[f"bien-ban-2030-01-07-{morning}-v1.pdf"]
    assert isinstance(docx_bytes, bytes) and isinstance(pdf_bytes, bytes) and pdf_bytes.startswith(b"%PDF")
    text = "\n".join(p.text for p in docx.Document(io.BytesIO(docx_bytes)).paragraphs)
    assert "BIÊN BẢN HỌP GIAO BAN BUỔI SÁNG" in text and "Không thu được lệ phí trực tuyến" in text
    assert "Phiên bản 1 đã được phê duyệt bởi" in text and "(GMT+7)" in text and "dự thảo" not in text
    body = msg.get_body(("plain",))
    assert body is not None and f"/minutes/{morning}/versions/1" in body.get_content()
    # A letter to a person: greeted by name, formally; the content hash is in the documents.
    recipient = msg["To"].addresses[0].display_name
    assert body.get_content().startswith(f"Kính gửi Ông/Bà {recipient},\r\n")
    assert re.search(r"[0-9a-f]{64}", body.get_content()) is None and "SHA" not in body.get_content()
    assert "(07/01/2030) đã được phê duyệt" in body.get_content() and msg["Subject"].endswith(", 07/01/2030")
    assert re.search(r"SHA-256: [0-9a-f]{64}", text)
