"""The outbox: mail is added in the transaction of the change that causes it, then delivered.

A message is enqueued with the change that causes it (an invitation with the new series), so
either both are stored or neither is. Delivery claims one row at a time with an atomic
UPDATE, so several server processes on one database never send the same row at once; a
process that dies while sending loses its claim after CLAIM_SECONDS and the row is sent again
(delivery is at least once; the stored Message-ID lets mail clients drop a rare duplicate).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage, Message
from email.utils import format_datetime, getaddresses, make_msgid
from typing import Any

from sqlalchemy import ColumnElement, and_, delete, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import AsyncSession

from meetings import audit
from meetings.accounts.permissions import Actor, Permission
from meetings.db.base import utcnow
from meetings.errors import N_, Conflict, Forbidden, NotFound
from meetings.mail import headers
from meetings.mail.models import OutboxMessage, OutboxStatus

CLAIM_SECONDS = 60
FIRST_RETRY_SECONDS = 30
MAX_RETRY_SECONDS = 3600
MAX_KEY = 255


class Kind:
    """The kinds of mail the outbox carries (free text in the table; these are the known ones)."""

    INVITATION = "invitation"
    UPDATE = "update"
    CANCELLATION = "cancellation"
    REMINDER = "reminder"
    MINUTES_DUE = "minutes_due"
    ANSWER = "answer"
    NOTICE = "notice"
    LINK = "link"  # a personal join link sent again from the readiness board


def idempotency_key(uid: str, recurrence_id: str, sequence: int, recipient: str, kind: str) -> str:
    """A stable key for one mail about one version of one event to one person.

    The same change enqueued twice (a retried request, a job run twice) gives the same key,
    and the outbox keeps one row. Keys longer than the column are replaced by their SHA-256.
    """
    key = f"{kind}:{uid}:{recurrence_id or '-'}:{sequence}:{recipient.strip().casefold()}"
    if len(key) <= MAX_KEY:
        return key
    return "sha256:" + hashlib.sha256(key.encode("utf-8")).hexdigest()


def envelope_of(message: Message) -> tuple[str, list[str]]:
    """The SMTP envelope: the From address and the To addresses."""
    senders = [addr for _name, addr in getaddresses([str(v) for v in message.get_all("From", [])]) if addr]
    recipients = [addr for _name, addr in getaddresses([str(v) for v in message.get_all("To", [])]) if addr]
    if len(senders) != 1:
        raise ValueError("a message needs exactly one From address")
    if not recipients:
        raise ValueError("a message needs at least one To address")
    return senders[0], recipients


def wire_bytes(message: EmailMessage) -> bytes:
    """The message as RFC 5322 bytes with CRLF line ends (non-ASCII headers read back exactly)."""
    return headers.wire_bytes(message)


async def enqueue(
    db: AsyncSession,
    *,
    key: str,
    kind: str,
    message: EmailMessage,
    now: datetime | None = None,
) -> bool:
    """Add a message to the caller's transaction; False when its key is already in the outbox.

    A duplicate is skipped with INSERT … ON CONFLICT DO NOTHING, so it never breaks the
    caller's transaction. Date and Message-ID are added when missing, so that every retry
    sends the same bytes. The caller commits, then may wake the sender.
    """
    if not key or len(key) > MAX_KEY:
        raise ValueError("the idempotency key must have 1 to 255 characters")
    _sender, recipients = envelope_of(message)
    now = now or utcnow()
    if "Date" not in message:
        message["Date"] = format_datetime(now)
    if "Message-ID" not in message:
        sender_domain = _sender.rpartition("@")[2] or "localhost"
        message["Message-ID"] = make_msgid(domain=sender_domain)
    values = _row(
        key=key,
        kind=kind,
        recipient=", ".join(recipients),
        subject=str(message.get("Subject", "")),
        message=wire_bytes(message),
        now=now,
    )
    stmt = _insert(db)(OutboxMessage).values(**values)
    result = await db.execute(stmt.on_conflict_do_nothing(index_elements=["idempotency_key"]))
    return _rowcount(result) == 1


@dataclass(frozen=True)
class Prepared:
    """A message already rendered to its wire bytes, with what the outbox stores beside them."""

    key: str
    kind: str
    recipient: str
    subject: str
    message: bytes


async def enqueue_many(db: AsyncSession, items: Sequence[Prepared], now: datetime | None = None) -> int:
    """Add many prepared messages to the caller's transaction; how many were new.

    The bulk form of `enqueue`: the same rows, the same skip of a key already in the outbox
    (and of the second of two equal keys). The messages must already carry their Date and
    Message-ID.
    """
    now = now or utcnow()
    rows: dict[str, dict[str, object]] = {}
    for item in items:
        if not item.key or len(item.key) > MAX_KEY:
            raise ValueError("the idempotency key must have 1 to 255 characters")
        if not item.recipient:
            raise ValueError("a message needs at least one To address")
        rows.setdefault(
            item.key,
            _row(
                key=item.key,
                kind=item.kind,
                recipient=item.recipient,
                subject=item.subject,
                message=item.message,
                now=now,
            ),
        )
    if not rows:
        return 0
    # One statement compiled once, its rows sent in batches (SQLAlchemy's "insertmanyvalues");
    # RETURNING names the rows that were new, a key already stored returns nothing.
    stmt = (
        _insert(db)(OutboxMessage)
        .on_conflict_do_nothing(index_elements=["idempotency_key"])
        .returning(OutboxMessage.id)
    )
    result = await db.execute(stmt, list(rows.values()))
    return len(result.all())


def _row(
    *, key: str, kind: str, recipient: str, subject: str, message: bytes, now: datetime
) -> dict[str, object]:
    """The outbox row of a message just queued (columns cut to their sizes)."""
    return {
        "idempotency_key": key,
        "kind": kind[:32],
        "recipient": recipient[:254],
        "subject": subject[:300],
        "message": message,
        "status": OutboxStatus.QUEUED.value,
        "attempts": 0,
        "next_attempt_at": now,
        "claimed_until": None,
        "last_error": "",
        "created_at": now,
        "sent_at": None,
    }


def _insert(db: AsyncSession) -> Any:
    """The dialect's INSERT with ON CONFLICT (the two supported databases)."""
    dialect = db.get_bind().dialect.name
    if dialect not in {"postgresql", "sqlite"}:  # pragma: no cover - the two supported databases
        raise RuntimeError(f"unsupported database {dialect}")
    return postgresql.insert if dialect == "postgresql" else sqlite.insert


def _rowcount(result: object) -> int:
    assert isinstance(result, CursorResult)
    return int(result.rowcount)


def backoff(attempts: int) -> timedelta:
    """The wait after a failed attempt: 30 s, doubling, at most an hour."""
    exponent = max(0, min(attempts - 1, 20))
    return timedelta(seconds=min(FIRST_RETRY_SECONDS * 2**exponent, MAX_RETRY_SECONDS))


def _due(now: datetime) -> ColumnElement[bool]:
    return or_(
        and_(OutboxMessage.status == OutboxStatus.QUEUED, OutboxMessage.next_attempt_at <= now),
        and_(OutboxMessage.status == OutboxStatus.SENDING, OutboxMessage.claimed_until < now),
    )


async def due_ids(db: AsyncSession, now: datetime, limit: int = 50) -> list[int]:
    """Ids of messages ready to be sent (and of claims that expired), oldest first."""
    rows = await db.scalars(
        select(OutboxMessage.id)
        .where(_due(now))
        .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id)
        .limit(limit)
    )
    return list(rows)


async def claim(db: AsyncSession, message_id: int, now: datetime) -> bool:
    """Claim a due message for sending; True only for the one process whose UPDATE matched."""
    result = await db.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == message_id, _due(now))
        .values(status=OutboxStatus.SENDING, claimed_until=now + timedelta(seconds=CLAIM_SECONDS))
        .execution_options(synchronize_session=False)
    )
    return _rowcount(result) == 1


async def mark_sent(db: AsyncSession, message_id: int, now: datetime, note: str = "") -> None:
    """Record that the SMTP server accepted a claimed message."""
    await db.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == message_id)
        .values(
            status=OutboxStatus.SENT,
            sent_at=now,
            claimed_until=None,
            attempts=OutboxMessage.attempts + 1,
            last_error=note[:2000],
        )
        .execution_options(synchronize_session=False)
    )


async def mark_failed_attempt(
    db: AsyncSession,
    message_id: int,
    now: datetime,
    error: str,
    *,
    max_attempts: int,
    permanent: bool = False,
    retry_at: datetime | None = None,
) -> OutboxStatus:
    """Count a failed attempt: back to the queue with backoff (or at retry_at), or failed for good."""
    attempts = await db.scalar(select(OutboxMessage.attempts).where(OutboxMessage.id == message_id))
    attempts = int(attempts or 0) + 1
    status = OutboxStatus.FAILED if permanent or attempts >= max_attempts else OutboxStatus.QUEUED
    await db.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == message_id)
        .values(
            status=status,
            attempts=attempts,
            next_attempt_at=retry_at if retry_at is not None else now + backoff(attempts),
            claimed_until=None,
            last_error=error[:2000],
        )
        .execution_options(synchronize_session=False)
    )
    return status


async def release(db: AsyncSession, message_id: int, reason: str) -> None:
    """Give back a claim without counting an attempt: the SMTP server was not reached."""
    await db.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == message_id, OutboxMessage.status == OutboxStatus.SENDING)
        .values(status=OutboxStatus.QUEUED, claimed_until=None, last_error=reason[:2000])
        .execution_options(synchronize_session=False)
    )


async def note_waiting(db: AsyncSession, message_ids: list[int], reason: str) -> None:
    """Say on queued messages why they wait (for the admin page); attempts and times unchanged."""
    if not message_ids:
        return
    await db.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id.in_(message_ids), OutboxMessage.status == OutboxStatus.QUEUED)
        .values(last_error=reason[:2000])
        .execution_options(synchronize_session=False)
    )


async def get_message(db: AsyncSession, message_id: int) -> OutboxMessage:
    """One outbox message; NotFound if there is none."""
    found = await db.get(OutboxMessage, message_id)
    if found is None:
        raise NotFound(N_("This message does not exist."))
    return found


async def retry(
    db: AsyncSession, actor: Actor, message_id: int, now: datetime | None = None
) -> OutboxMessage:
    """Put a failed (or waiting) message back in the queue to be sent now; audited."""
    if not actor.can(Permission.MAIL_ADMIN):
        raise Forbidden(N_("You may not do this."))
    message = await get_message(db, message_id)
    if message.status not in {OutboxStatus.FAILED, OutboxStatus.QUEUED}:
        raise Conflict(N_("Only a failed or waiting message can be sent again."))
    previous = message.status
    message.status = OutboxStatus.QUEUED
    message.next_attempt_at = now or utcnow()
    message.claimed_until = None
    await audit.record(
        db,
        actor_id=actor.id,
        actor_email=actor.email,
        action="mail.retry",
        target_type="outbox",
        target_id=message.id,
        details={
            "recipient": message.recipient,
            "kind": message.kind,
            "was": previous.value,
            "attempts": message.attempts,
        },
    )
    await db.flush()
    return message


@dataclass(frozen=True)
class OutboxPage:
    """A page of the outbox and the count of messages in each status."""

    messages: list[OutboxMessage]
    total: int
    counts: dict[OutboxStatus, int]


async def list_messages(
    db: AsyncSession, status: OutboxStatus | None = None, *, limit: int = 100, offset: int = 0
) -> OutboxPage:
    """The newest messages (optionally of one status) and the counts by status."""
    query = select(OutboxMessage)
    if status is not None:
        query = query.where(OutboxMessage.status == status)
    rows = await db.scalars(
        query.order_by(OutboxMessage.created_at.desc(), OutboxMessage.id.desc()).limit(limit).offset(offset)
    )
    grouped = await db.execute(select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status))
    counts = dict.fromkeys(OutboxStatus, 0)
    for found, n in grouped:
        counts[OutboxStatus(found)] = int(n)
    total = counts[status] if status is not None else sum(counts.values())
    return OutboxPage(messages=list(rows), total=total, counts=counts)


async def purge_sent(db: AsyncSession, before: datetime) -> int:
    """Delete messages sent before a moment; how many were deleted."""
    result = await db.execute(
        delete(OutboxMessage)
        .where(OutboxMessage.status == OutboxStatus.SENT, OutboxMessage.sent_at < before)
        .execution_options(synchronize_session=False)
    )
    return _rowcount(result)
