"""The outbox and its sender against a real SMTP server, on SQLite and PostgreSQL."""

from __future__ import annotations

import email
import email.policy
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from meetings.db import create_engine, create_sessionmaker
from meetings.db.base import utcnow
from meetings.mail import outbox
from meetings.mail.models import OutboxMessage, OutboxStatus
from meetings.mail.sender import OutboxSender, SmtpConfig
from tests.mail.messages import plain
from tests.mail.smtp import SmtpServer

SUBJECTS = [
    "Mời họp giao ban sáng — Thứ Sáu 27/11/2026",
    "Cập nhật: họp giao ban chiều dời sang 16:30",
    "Hủy họp: Thứ Hai 30/11/2026 (nghỉ bù)",
]


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(database_url)
    yield create_sessionmaker(engine)
    await engine.dispose()


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer()
    server.start()
    yield server
    server.stop()


def sender_for(db: async_sessionmaker[AsyncSession], port: int, max_attempts: int = 5) -> OutboxSender:
    return OutboxSender(
        db, SmtpConfig(host="127.0.0.1", port=port, security="none", timeout=5), max_attempts=max_attempts
    )


async def rows(db: async_sessionmaker[AsyncSession]) -> list[OutboxMessage]:
    async with db() as s:
        return list(await s.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


def test_idempotency_key_is_stable_and_bounded() -> None:
    a = outbox.idempotency_key("uid-1@hue.example", "20261127T003000Z", 2, "An@Hue.Example", "invitation")
    b = outbox.idempotency_key("uid-1@hue.example", "20261127T003000Z", 2, "an@hue.example", "invitation")
    assert a == b == "invitation:uid-1@hue.example:20261127T003000Z:2:an@hue.example"
    assert outbox.idempotency_key("u", "", 0, "x@y.z", "update") == "update:u:-:0:x@y.z"
    assert outbox.idempotency_key("u", "r", 3, "x@y.z", "update") != outbox.idempotency_key(
        "u", "r", 4, "x@y.z", "update"
    )
    long = outbox.idempotency_key("u" * 300, "", 0, "x@y.z", "invitation")
    assert long.startswith("sha256:") and len(long) <= 255
    assert long == outbox.idempotency_key("u" * 300, "", 0, "x@y.z", "invitation")


def test_backoff_doubles_up_to_an_hour() -> None:
    assert [outbox.backoff(n).total_seconds() for n in (1, 2, 3, 4)] == [30, 60, 120, 240]
    assert outbox.backoff(8).total_seconds() == 3600
    assert outbox.backoff(50).total_seconds() == 3600


async def test_enqueued_in_one_transaction_and_sent_exactly_once(
    db: async_sessionmaker[AsyncSession], smtp: SmtpServer
) -> None:
    async with db() as s:
        for i, subject in enumerate(SUBJECTS):
            to = f"trung-tam-{i}@hue.example"
            key = outbox.idempotency_key("uid-1@hue.example", "", 0, to, "invitation")
            assert await outbox.enqueue(s, key=key, kind="invitation", message=plain(to, subject))
        # The same change enqueued again (a retried request) adds nothing and breaks nothing.
        again = outbox.idempotency_key("uid-1@hue.example", "", 0, "trung-tam-0@hue.example", "invitation")
        assert not await outbox.enqueue(
            s, key=again, kind="invitation", message=plain("trung-tam-0@hue.example", SUBJECTS[0])
        )
        await s.commit()
    stored = await rows(db)
    assert [r.subject for r in stored] == SUBJECTS  # decoded, for the admin page
    assert [r.recipient for r in stored] == [f"trung-tam-{i}@hue.example" for i in range(3)]
    assert all(r.status is OutboxStatus.QUEUED and b"\r\n" in r.message for r in stored)

    sender = sender_for(db, smtp.port)
    assert await sender.deliver_due() == 3
    assert await sender.deliver_due() == 0
    assert await sender.deliver_due(now=utcnow() + timedelta(hours=2)) == 0
    assert len(smtp.received) == 3
    got = {}
    for r in smtp.received:
        parsed = email.message_from_bytes(r.data, policy=email.policy.default)
        assert r.mail_from == "giaoban@hue.example"
        assert r.rcpt_tos == [parsed["To"].addresses[0].addr_spec]
        assert parsed["Message-ID"] and parsed["Date"]
        got[r.rcpt_tos[0]] = str(parsed["Subject"])
    assert got == {f"trung-tam-{i}@hue.example": SUBJECTS[i] for i in range(3)}
    after = await rows(db)
    assert all(r.status is OutboxStatus.SENT and r.sent_at and r.attempts == 1 for r in after)
    # What was sent is byte for byte what was stored.
    assert sorted(r.data for r in smtp.received) == sorted(r.message for r in after)


async def test_smtp_down_keeps_the_mail_and_sends_it_once_later(db: async_sessionmaker[AsyncSession]) -> None:
    server = SmtpServer()  # a free port, not listening yet
    async with db() as s:
        for i in range(2):
            to = f"p{i}@hue.example"
            await outbox.enqueue(s, key=f"down:{i}", kind="notice", message=plain(to, "Thông báo khẩn"))
        await s.commit()
    queued = await rows(db)
    sender = sender_for(db, server.port)
    t0 = utcnow()
    assert await sender.deliver_due(now=t0) == 0
    first = await rows(db)
    # The server was not reached: no message is charged or put off, each says why it waits.
    assert all(r.status is OutboxStatus.QUEUED and r.attempts == 0 for r in first)
    assert [r.next_attempt_at for r in first] == [r.next_attempt_at for r in queued]
    assert all("Connect" in r.last_error or "refused" in r.last_error for r in first)
    assert sender.unreachable_rounds == 1

    server.start()
    try:
        assert await sender.deliver_due(now=t0 + timedelta(seconds=1)) == 2
        assert await sender.deliver_due(now=t0 + timedelta(hours=3)) == 0
        assert sorted(r.rcpt_tos[0] for r in server.received) == ["p0@hue.example", "p1@hue.example"]
    finally:
        server.stop()
    assert all(r.status is OutboxStatus.SENT and r.attempts == 1 for r in await rows(db))


async def test_a_permanent_refusal_fails_the_message_and_spares_the_others(
    db: async_sessionmaker[AsyncSession], smtp: SmtpServer
) -> None:
    smtp.handler.refuse.add("nobody@hue.example")
    async with db() as s:
        await outbox.enqueue(s, key="k:nobody", kind="notice", message=plain("nobody@hue.example", "A"))
        await outbox.enqueue(s, key="k:somebody", kind="notice", message=plain("somebody@hue.example", "B"))
        await s.commit()
    assert await sender_for(db, smtp.port).deliver_due() == 1
    failed, sent = await rows(db)
    assert failed.status is OutboxStatus.FAILED and "550" in failed.last_error
    assert failed.attempts == 1
    assert sent.status is OutboxStatus.SENT
    assert [r.rcpt_tos for r in smtp.received] == [["somebody@hue.example"]]


async def test_after_max_attempts_a_message_fails(
    db: async_sessionmaker[AsyncSession], smtp: SmtpServer
) -> None:
    smtp.handler.defer.add("x@hue.example")  # a 451 each time: the server answers, and defers
    async with db() as s:
        await outbox.enqueue(s, key="k:max", kind="notice", message=plain("x@hue.example", "C"))
        await s.commit()
    sender = sender_for(db, smtp.port, max_attempts=2)
    now = utcnow()
    await sender.deliver_due(now=now)
    (row,) = await rows(db)
    assert row.status is OutboxStatus.QUEUED and row.attempts == 1 and "451" in row.last_error
    assert row.next_attempt_at == now + outbox.backoff(1)
    await sender.deliver_due(now=now + timedelta(minutes=5))
    (row,) = await rows(db)
    assert row.status is OutboxStatus.FAILED and row.attempts == 2


async def test_a_claim_is_atomic_and_expires(db: async_sessionmaker[AsyncSession]) -> None:
    async with db() as s:
        await outbox.enqueue(s, key="k:claim", kind="notice", message=plain("x@hue.example", "D"))
        await s.commit()
    (row,) = await rows(db)
    now = utcnow()
    async with db() as a, db() as b:
        assert await outbox.claim(a, row.id, now)
        await a.commit()
        assert not await outbox.claim(b, row.id, now)  # another process: already sending
        await b.commit()
        # A process that died while sending loses its claim after a minute.
        later = now + timedelta(seconds=outbox.CLAIM_SECONDS + 1)
        assert await outbox.due_ids(b, later) == [row.id]
        assert await outbox.claim(b, row.id, later)
        await b.commit()


async def test_enqueue_refuses_a_message_without_addresses(db: async_sessionmaker[AsyncSession]) -> None:
    msg = plain("x@hue.example", "E")
    del msg["To"]
    async with db() as s:
        with pytest.raises(ValueError, match="To"):
            await outbox.enqueue(s, key="k:e", kind="notice", message=msg)
        assert await s.scalar(select(func.count()).select_from(OutboxMessage)) == 0
