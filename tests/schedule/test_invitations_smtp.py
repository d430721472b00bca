"""Invitations reach a real SMTP server, one mail per invitee, through the app's own outbox sender."""

from __future__ import annotations

import asyncio
import dataclasses
import email
import email.policy
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from email.message import EmailMessage
from typing import Any

import icalendar
import pytest
from aiohttp.test_utils import TestClient
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import Envelope, Session

from meetings.directory.models import Role, UnitKind
from meetings.settings import Settings
from tests.conftest import World
from tests.mail.test_headers import TITLE_200
from web.app import create_app


class Inbox:
    """An aiosmtpd handler that keeps every message it is given."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], bytes]] = []

    async def handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:
        assert isinstance(envelope.content, bytes)
        self.messages.append((list(envelope.rcpt_tos), envelope.content))
        return "250 OK"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def smtp_server() -> Any:
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield controller, inbox
    finally:
        controller.stop()


@pytest.fixture
async def mailing_world(
    settings: Settings, smtp_server: Any, aiohttp_client: Callable[..., Awaitable[TestClient[Any, Any]]]
) -> AsyncIterator[tuple[World, Inbox]]:
    controller, inbox = smtp_server
    configured = dataclasses.replace(
        settings,
        smtp_host="127.0.0.1",
        smtp_port=controller.port,
        smtp_security="none",
        mail_poll_seconds=0.2,
    )
    client = await aiohttp_client(create_app(configured))
    yield World(client=client, settings=configured), inbox


async def test_one_mail_per_invitee_reaches_the_smtp_server(mailing_world: tuple[World, Inbox]) -> None:
    world, inbox = mailing_world
    centre = await world.unit("P-HUONGSO", UnitKind.CENTRE, "Phường Hương Sơ")
    dept = await world.unit("STP", UnitKind.DEPARTMENT, "Sở Tư pháp")
    for i in range(3):
        await world.person(f"c{i}@hue.example", Role.MEMBER, centre, name=f"Cán bộ {i}")
    await world.person("d@hue.example", Role.MEMBER, dept, name="Đặng Thu Hà")
    await world.person("inactive@hue.example", Role.MEMBER, centre, active=False)
    admin = await world.person("admin@hue.example", Role.ADMINISTRATOR)
    await world.login(admin.email)
    form = {
        "title": "Họp giao ban sáng",
        "kind": "morning",
        "start_time": "07:30",
        "duration_minutes": "45",
        "start_date": "2030-01-07",
        "end_date": "",
        "timezone": "Asia/Ho_Chi_Minh",
        "chair_email": "",
        "secretary_email": "",
        "reminder_minutes": "15",
        "description": "",
        "weekdays": ["MO", "TU", "WE", "TH", "FR"],
        "unit_codes": ["P-HUONGSO", "STP"],
        "person_emails": "",
    }
    r = await world.post_form("/meetings/series/new", form)
    assert r.status == 303
    for _ in range(100):
        if len(inbox.messages) >= 4:
            break
        await asyncio.sleep(0.1)
    await asyncio.sleep(0.5)  # nothing more may come
    recipients = sorted(rcpt for rcpts, _ in inbox.messages for rcpt in rcpts)
    assert recipients == ["c0@hue.example", "c1@hue.example", "c2@hue.example", "d@hue.example"]
    for rcpts, raw in inbox.messages:
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        assert msg["To"].addresses[0].addr_spec == rcpts[0]
        assert b"=?utf-8?" in raw.split(b"\r\n\r\n", 1)[0].lower()  # Vietnamese subject, RFC 2047
        assert msg["Subject"].startswith("[Giao ban]")
        assert msg.get_content_type() == "multipart/alternative"
        part = [p for p in msg.iter_parts()][-1]
        assert part.get_content_type() == "text/calendar" and part.get_param("method") == "REQUEST"
        assert part["Content-Transfer-Encoding"] in {"base64", "quoted-printable"}
        payload = part.get_payload(decode=True)
        assert isinstance(payload, bytes)
        cal: Any = icalendar.Calendar.from_ical(payload)
        assert cal["METHOD"] == "REQUEST"
        attendee = cal.walk("VEVENT")[0]["ATTENDEE"]  # one: this invitee (the series has no chair)
        assert str(attendee).removeprefix("mailto:") == rcpts[0]
    page = await (await world.client.get("/admin/mail", params={"status": "sent"})).text()
    assert page.count("c0@hue.example") >= 1


async def test_the_longest_title_arrives_intact_and_the_invitation_is_formal(
    mailing_world: tuple[World, Inbox],
) -> None:
    """A 200-character Vietnamese title (the form's limit), through the outbox and SMTP."""
    world, inbox = mailing_world
    centre = await world.unit(
        "P-THUANAN", UnitKind.CENTRE, "Trung tâm phục vụ hành chính công phường Thuận An"
    )
    await world.person("tho@hue.example", Role.MEMBER, centre, name="Tôn Nữ Hoàng Phương Thảo", language="vi")
    admin = await world.person("admin@hue.example", Role.ADMINISTRATOR)
    await world.login(admin.email)
    form = {
        "title": TITLE_200,
        "kind": "morning",
        "start_time": "07:30",
        "duration_minutes": "45",
        "start_date": "2030-01-07",
        "end_date": "",
        "timezone": "Asia/Ho_Chi_Minh",
        "chair_email": "",
        "secretary_email": "",
        "reminder_minutes": "15",
        "description": "",
        "weekdays": ["MO", "TU", "WE", "TH", "FR"],
        "unit_codes": ["P-THUANAN"],
        "person_emails": "",
    }
    r = await world.post_form("/meetings/series/new", form)
    assert r.status == 303
    for _ in range(100):
        if inbox.messages:
            break
        await asyncio.sleep(0.1)
    assert len(inbox.messages) == 1
    msg = email.message_from_bytes(inbox.messages[0][1], policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    assert msg["Subject"] == f"[Giao ban] Giấy mời: {TITLE_200}"
    assert msg["To"].addresses[0].display_name == "Tôn Nữ Hoàng Phương Thảo"
    body = msg.get_body(("plain",))
    assert body is not None
    text = body.get_content()
    assert text.startswith("Kính gửi Ông/Bà Tôn Nữ Hoàng Phương Thảo,")
    assert "Trân trọng kính mời Ông/Bà tham dự" in text
    assert " bạn" not in text.casefold()
