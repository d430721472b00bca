"""A few seconds without an SMTP server cost a few seconds, and charge only the message it broke."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from meetings.db import create_engine, create_sessionmaker
from meetings.mail import outbox
from meetings.mail.models import OutboxMessage, OutboxStatus
from meetings.mail.sender import OutboxSender, SmtpConfig
from tests.mail.messages import plain
from tests.mail.smtp import RecordingHandler, SmtpServer

MESSAGES = 114  # the invitations of the morning that waited 240 s
STALL_AT = 40  # the server goes away while this message's DATA is in flight
DOWN_SECONDS = 3.0


@dataclass
class StallingHandler(RecordingHandler):
    """Holds the n-th message unanswered (never kept) until the server is stopped."""

    stall_at: int = STALL_AT
    seen: int = 0
    stalled: threading.Event = field(default_factory=threading.Event)
    kept_at: list[float] = field(default_factory=list)  # monotonic time of each message kept

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.seen += 1
        if self.seen == self.stall_at:
            self.stalled.set()
            await asyncio.sleep(3600)  # cancelled by stop(): no answer, nothing kept
        self.kept_at.append(time.monotonic())
        return await super().handle_DATA(server, session, envelope)


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(database_url)
    yield create_sessionmaker(engine)
    await engine.dispose()


async def count_sent(db: async_sessionmaker[AsyncSession]) -> int:
    async with db() as s:
        n = await s.scalar(
            select(func.count()).select_from(OutboxMessage).where(OutboxMessage.status == OutboxStatus.SENT)
        )
        return int(n or 0)


async def test_a_server_gone_for_seconds_mid_batch_costs_seconds(
    db: async_sessionmaker[AsyncSession],
) -> None:
    async with db() as s:
        for i in range(MESSAGES):
            to = f"can-bo-{i:03d}@hue.example"
            await outbox.enqueue(s, key=f"blip:{i}", kind="invitation", message=plain(to, "Giấy mời họp"))
        await s.commit()
    server = SmtpServer()
    handler = StallingHandler()
    server.handler = handler
    server.start()
    sender = OutboxSender(
        db,
        SmtpConfig(host="127.0.0.1", port=server.port, security="none", timeout=5),
        poll_seconds=0.2,
        batch_size=50,
    )
    task = asyncio.create_task(sender.run())
    try:
        t_start = time.monotonic()
        assert await asyncio.to_thread(handler.stalled.wait, 30)
        await asyncio.to_thread(server.stop)  # the connection drops mid-batch, then refusals
        t_down = time.monotonic()
        await asyncio.sleep(DOWN_SECONDS)
        await asyncio.to_thread(server.start)
        t_up = time.monotonic()
        deadline = t_up + 60
        while time.monotonic() < deadline:
            if await count_sent(db) >= MESSAGES:
                break
            await asyncio.sleep(0.05)
        t_done = time.monotonic()
    finally:
        sender.stop()
        await asyncio.wait_for(task, 10)
        server.stop()

    # Every message delivered exactly once.
    recipients = Counter(r.rcpt_tos[0] for r in server.received)
    assert set(recipients) == {f"can-bo-{i:03d}@hue.example" for i in range(MESSAGES)}
    assert max(recipients.values()) == 1
    async with db() as s:
        stored = list(await s.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))
    assert all(r.status is OutboxStatus.SENT for r in stored)
    # Only the message whose transaction the blip broke is charged an extra attempt, and it
    # was sent again at once; nobody was put off by a backoff (next attempt before sending).
    attempts = Counter(r.attempts for r in stored)
    assert attempts == {1: MESSAGES - 1, 2: 1}
    (broken,) = [r for r in stored if r.attempts == 2]
    assert broken.idempotency_key == f"blip:{STALL_AT - 1}"
    assert all(r.sent_at is not None and r.next_attempt_at <= r.sent_at for r in stored)
    assert all(r.next_attempt_at == r.created_at for r in stored if r is not broken)
    assert sender.unreachable_rounds >= 1

    # The figures, reported, not asserted: what the blip cost beyond its own length.
    first_after_up = min(t for t in handler.kept_at if t >= t_up) - t_up
    print(
        f"\n{MESSAGES} messages, server away {t_up - t_down:.1f} s (stalled after {t_down - t_start:.1f} s): "
        f"first delivery {first_after_up:.2f} s and the last {t_done - t_up:.2f} s after it came back; "
        f"{sender.unreachable_rounds} round(s) found no server; attempts {dict(attempts)}"
    )
