"""The mail admin pages on the running app: retry a refused message, read the caught mail."""

from __future__ import annotations

import asyncio
import dataclasses
import re
import time
from collections.abc import Awaitable, Callable, Iterator
from html import unescape
from typing import Any

import pytest
from sqlalchemy import select

from meetings.audit import AuditEntry
from meetings.directory.models import Role
from meetings.mail import outbox
from meetings.mail.models import OutboxMessage, OutboxStatus
from meetings.settings import Settings
from tests.conftest import World
from tests.mail.messages import invitation, plain
from tests.mail.smtp import SmtpServer
from web import keys


async def eventually(check: Callable[[], Awaitable[Any]], within: float = 10.0) -> Any:
    """Poll until check() returns something truthy; fail after the deadline."""
    deadline = time.monotonic() + within
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {within} s: {check}")
        await asyncio.sleep(0.05)


async def enqueue(world: World, key: str, message: Any) -> None:
    async with world.db() as db:
        assert await outbox.enqueue(db, key=key, kind="notice", message=message)
        await db.commit()
    world.app[keys.OUTBOX].wake()


async def row(world: World, key: str) -> OutboxMessage:
    async with world.db() as db:
        found = await db.scalar(select(OutboxMessage).where(OutboxMessage.idempotency_key == key))
        assert isinstance(found, OutboxMessage)
        return found


class TestWithAnSmtpServer:
    @pytest.fixture
    def smtp(self) -> Iterator[SmtpServer]:
        server = SmtpServer()
        server.start()
        yield server
        server.stop()

    @pytest.fixture
    def settings(self, settings: Settings, smtp: SmtpServer) -> Settings:
        return dataclasses.replace(
            settings, smtp_host="127.0.0.1", smtp_port=smtp.port, smtp_security="none", mail_poll_seconds=0.2
        )

    async def test_a_refused_message_fails_and_the_admin_sends_it_again(
        self, world: World, smtp: SmtpServer
    ) -> None:
        smtp.handler.refuse.add("nobody@hue.example")
        await enqueue(world, "k:refused", plain("nobody@hue.example", "Thông báo lịch họp"))

        async def failed() -> bool:
            return (await row(world, "k:refused")).status is OutboxStatus.FAILED

        await eventually(failed)
        message = await row(world, "k:refused")
        assert "550" in message.last_error and smtp.received == []
        retry_path = f"/admin/mail/{message.id}/retry"

        await world.person("member@hue.example", Role.MEMBER)
        await world.person("admin@hue.example", Role.ADMINISTRATOR)
        await world.login("member@hue.example")
        assert (await world.client.get("/admin/mail")).status == 403
        assert (await world.post_form(retry_path)).status == 403
        await world.logout()

        await world.login("admin@hue.example")
        page = await world.client.get("/admin/mail?status=failed")
        html = await page.text()
        assert page.status == 200
        assert "Thông báo lịch họp" in html and "nobody@hue.example" in html and "550" in html
        assert f'action="{retry_path}"' in html
        # Without the CSRF token the form is refused.
        bare = await world.client.post(retry_path, data={}, allow_redirects=False)
        assert bare.status == 403
        assert (await row(world, "k:refused")).status is OutboxStatus.FAILED

        smtp.handler.refuse.clear()  # the address has been created meanwhile
        response = await world.post_form(retry_path)
        assert response.status == 303
        assert response.headers["Location"] == "/admin/mail?done=retried"

        async def sent() -> bool:
            return (await row(world, "k:refused")).status is OutboxStatus.SENT

        await eventually(sent)
        assert [r.rcpt_tos for r in smtp.received] == [["nobody@hue.example"]]
        async with world.db() as db:
            entry = await db.scalar(select(AuditEntry).where(AuditEntry.action == "mail.retry"))
        assert entry is not None and entry.actor_email == "admin@hue.example"
        assert entry.details["was"] == "failed"
        # A sent message cannot be retried.
        again = await world.post_form(retry_path)
        assert again.status == 409


async def test_the_demo_catcher_keeps_the_mail_and_shows_it(world: World) -> None:
    assert world.settings.smtp_host == "" and world.settings.mail_catcher_port == 0
    await enqueue(world, "k:invite", invitation())
    await world.person("admin@hue.example", Role.ADMINISTRATOR)
    await world.login("admin@hue.example")

    async def caught() -> str:
        html = await (await world.client.get("/admin/mail/caught")).text()
        return html if "Mời họp: Họp giao ban sáng" in html else ""

    listing = await eventually(caught)
    assert "phuong.an.cuu@hue.example" in unescape(listing)
    links = re.findall(r'href="(/admin/mail/caught/[^"]+)"', listing)
    assert len(links) == 1
    page = await world.client.get(links[0])
    html = await page.text()
    assert page.status == 200
    assert "<h1>Mời họp: Họp giao ban sáng — Thứ Sáu 27/11/2026</h1>" in html
    assert "text/calendar; method=REQUEST" in html
    assert "BEGIN:VCALENDAR" in html and "SUMMARY:Họp giao ban sáng" in html
    assert "Kính mời dự họp giao ban sáng." in html
    # Addresses in the text are links; the text around them stays escaped text.
    link = "https://giaoban.hue.example/join/abc?x=1&amp;y=2"
    assert f'<a href="{link}" rel="noopener noreferrer nofollow" target="_blank">{link}</a>.' in html
    evil = "https://evil.example/"
    assert (
        f'&lt;<a href="{evil}" rel="noopener noreferrer nofollow" target="_blank">{evil}</a>&#34;onmouseover'
        in html
    )
    assert 'href="javascript:' not in html and '"onmouseover' not in html
    # The HTML part is shown as escaped source, never as markup.
    assert "&lt;b&gt;dự họp&lt;/b&gt;" in html and "<script>alert(1)</script>" not in html
    assert "text/plain" in html and "text/html" in html
    assert (await row(world, "k:invite")).status is OutboxStatus.SENT

    outbox_page = await (await world.client.get("/admin/mail")).text()
    assert "Mời họp: Họp giao ban sáng" in outbox_page
    missing = await world.client.get("/admin/mail/caught/1234.M5P6Q7.nohost")
    assert missing.status == 404
    bad = await world.client.get("/admin/mail/caught/..%2F..%2Fsecret_key")
    assert bad.status == 404
