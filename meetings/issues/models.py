"""The issue register: every "issue raised" entry of minutes, and issues centres report directly."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from meetings.db.base import Base, UTCDateTime, str_enum, utcnow
from meetings.errors import N_

CODE_PREFIX = "VĐ-"


class IssueStatus(enum.StrEnum):
    """Where an issue stands."""

    OPEN = "open"
    IN_PROGRESS = "in_progress"
    RESOLVED = "resolved"
    CLOSED = "closed"


ISSUE_STATUS_LABELS = {
    IssueStatus.OPEN: N_("Open"),
    IssueStatus.IN_PROGRESS: N_("Being handled"),
    IssueStatus.RESOLVED: N_("Resolved"),
    IssueStatus.CLOSED: N_("Closed"),
}
# Statuses in which the minutes entry stays open (carried from meeting to meeting).
LIVE = frozenset({IssueStatus.OPEN, IssueStatus.IN_PROGRESS})


class Issue(Base):
    """One issue of the register.

    Raised in minutes, it points at its entry, which holds the text, unit, category, severity
    and owner (one source, edited in the minutes). Reported directly by a centre, it keeps
    those in its own `reported_*` columns until the next minutes take it (then `entry_id`).
    """

    __tablename__ = "issues"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    entry_id: Mapped[int | None] = mapped_column(
        ForeignKey("minutes_entries.id", ondelete="CASCADE"), unique=True, default=None
    )
    status: Mapped[IssueStatus] = mapped_column(str_enum(IssueStatus), default=IssueStatus.OPEN, index=True)
    resolution: Mapped[str] = mapped_column(Text, default="")
    source: Mapped[str] = mapped_column(String(16), default="minutes")  # minutes, direct
    reported_text: Mapped[str] = mapped_column(Text, default="")
    reported_unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id", ondelete="SET NULL"))
    reported_category: Mapped[str | None] = mapped_column(String(32), default=None)
    reported_severity: Mapped[str | None] = mapped_column(String(16), default=None)
    reported_owner_id: Mapped[int | None] = mapped_column(ForeignKey("units.id", ondelete="SET NULL"))
    reported_by_id: Mapped[int | None] = mapped_column(ForeignKey("people.id", ondelete="SET NULL"))
    key: Mapped[str | None] = mapped_column(String(80), unique=True, default=None)  # idempotent reports
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class IssueEvent(Base):
    """Something the register did to an issue (reported, assigned, status, taken into minutes, article)."""

    __tablename__ = "issue_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    issue_id: Mapped[int] = mapped_column(ForeignKey("issues.id", ondelete="CASCADE"), index=True)
    action: Mapped[str] = mapped_column(String(16))
    minutes_id: Mapped[int | None] = mapped_column(ForeignKey("minutes.id", ondelete="SET NULL"))
    person_id: Mapped[int | None] = mapped_column(ForeignKey("people.id", ondelete="SET NULL"))
    person_name: Mapped[str] = mapped_column(String(200), default="")
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


EVENT_LABELS = {
    "reported": N_("Reported by the centre"),
    "raised": N_("Raised in the minutes"),
    "discussed": N_("Discussed in a meeting"),
    "assigned": N_("Assigned"),
    "status": N_("Status changed"),
    "agenda": N_("Taken onto the meeting's agenda"),
    "article": N_("Turned into a manual article"),
    "closed": N_("Closed in a meeting"),
    "reopened": N_("Reopened in a meeting"),
    "changed": N_("Changed in the minutes"),
}
