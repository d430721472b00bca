"""The outbox: every email waits here until an SMTP server has accepted it."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from meetings.db.base import Base, UTCDateTime, str_enum, utcnow
from meetings.errors import N_


class OutboxStatus(enum.StrEnum):
    """Where a message stands."""

    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"


OUTBOX_STATUS_LABELS = {
    OutboxStatus.QUEUED: N_("Queued"),
    OutboxStatus.SENDING: N_("Sending"),
    OutboxStatus.SENT: N_("Sent"),
    OutboxStatus.FAILED: N_("Failed"),
}

# What each kind of mail is, for people reading the outbox (the kind column is free text; an
# unknown kind is shown as it is stored).
OUTBOX_KIND_LABELS = {
    "invitation": N_("Meeting invitation"),
    "update": N_("Meeting update"),
    "moved": N_("Meeting moved"),
    "occurrence_cancel": N_("Meeting cancelled"),
    "series_cancel": N_("Series cancelled"),
    "cancellation": N_("Cancellation"),
    "reminder": N_("Meeting reminder"),
    "minutes_due": N_("Minutes reminder"),
    "minutes": N_("Minutes published"),
    "issue_assigned": N_("Issue assigned"),
    "answer": N_("Reply to an invitation"),
    "notice": N_("Notice"),
    "link": N_("Personal link sent again"),
}


class OutboxMessage(Base):
    """One email to one recipient, stored as the exact bytes that go on the wire."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_status_next_attempt_at", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(255), unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    recipient: Mapped[str] = mapped_column(String(254))
    subject: Mapped[str] = mapped_column(String(300), default="")
    message: Mapped[bytes] = mapped_column(LargeBinary)
    status: Mapped[OutboxStatus] = mapped_column(
        str_enum(OutboxStatus),
        default=OutboxStatus.QUEUED,
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
