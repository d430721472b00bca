"""Minutes of an occurrence, their typed entries, every change of an entry, approved versions."""

from __future__ import annotations

import enum
from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Date, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from meetings.db.base import Base, UTCDateTime, str_enum, utcnow
from meetings.errors import N_


class MinutesStatus(enum.StrEnum):
    """Where minutes stand in their workflow."""

    DRAFT = "draft"
    SUBMITTED = "submitted"
    APPROVED = "approved"
    PUBLISHED = "published"


MINUTES_STATUS_LABELS = {
    MinutesStatus.DRAFT: N_("Draft"),
    MinutesStatus.SUBMITTED: N_("Submitted"),
    MinutesStatus.APPROVED: N_("Approved"),
    MinutesStatus.PUBLISHED: N_("Published"),
}


class EntryKind(enum.StrEnum):
    """What an entry records."""

    ISSUE = "issue"
    LESSON = "lesson"
    ADJUSTMENT = "adjustment"
    DECISION = "decision"
    ACTION = "action"
    NOTE = "note"


ENTRY_KIND_LABELS = {
    EntryKind.ISSUE: N_("Issue raised"),
    EntryKind.LESSON: N_("Lesson learned"),
    EntryKind.ADJUSTMENT: N_("Plan adjustment"),
    EntryKind.DECISION: N_("Decision or direction"),
    EntryKind.ACTION: N_("Follow-up action"),
    EntryKind.NOTE: N_("Note"),
}

# Issues and actions live on until closed: they are carried from one meeting to the next.
CARRIED_KINDS = frozenset({EntryKind.ISSUE, EntryKind.ACTION})


class IssueCategory(enum.StrEnum):
    """What an issue is about."""

    CONNECTIVITY = "connectivity"
    DATA_SYNC = "data_sync"
    FEES = "fees"
    SIGNATURE = "signature"
    ACCOUNTS = "accounts"
    PROCEDURE = "procedure"
    EQUIPMENT = "equipment"
    OTHER = "other"


ISSUE_CATEGORY_LABELS = {
    IssueCategory.CONNECTIVITY: N_("Connectivity"),
    IssueCategory.DATA_SYNC: N_("Data synchronisation"),
    IssueCategory.FEES: N_("Fee collection"),
    IssueCategory.SIGNATURE: N_("Digital signature"),
    IssueCategory.ACCOUNTS: N_("Accounts"),
    IssueCategory.PROCEDURE: N_("Procedure"),
    IssueCategory.EQUIPMENT: N_("Equipment"),
    IssueCategory.OTHER: N_("Other"),
}


class Severity(enum.StrEnum):
    """How badly an issue hurts the work."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


SEVERITY_LABELS = {
    Severity.LOW: N_("Low"),
    Severity.MEDIUM: N_("Medium"),
    Severity.HIGH: N_("High"),
    Severity.CRITICAL: N_("Critical"),
}


class EntryStatus(enum.StrEnum):
    """Whether an issue or an action is still open."""

    OPEN = "open"
    CLOSED = "closed"


ENTRY_STATUS_LABELS = {EntryStatus.OPEN: N_("Open"), EntryStatus.CLOSED: N_("Closed")}


class Minutes(Base):
    """The minutes of one occurrence: header, workflow state, the version being written."""

    __tablename__ = "minutes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    occurrence_id: Mapped[int] = mapped_column(ForeignKey("occurrences.id", ondelete="CASCADE"), unique=True)
    template: Mapped[str] = mapped_column(String(16))  # the series kind: morning, afternoon, adhoc
    status: Mapped[MinutesStatus] = mapped_column(str_enum(MinutesStatus), default=MinutesStatus.DRAFT)
    # The version being written (1, then 2 after a correction of an approved version...).
    version_no: Mapped[int] = mapped_column(Integer, default=1)
    # Optimistic lock of the header (date, chair, secretary, attendance).
    header_version: Mapped[int] = mapped_column(Integer, default=1)
    header: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    submitted_by_id: Mapped[int | None] = mapped_column(ForeignKey("people.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Entry(Base):
    """One typed item of minutes; issues and actions live on, carried, until closed."""

    __tablename__ = "minutes_entries"
    __table_args__ = (
        Index("ix_minutes_entries_minutes_position", "minutes_id", "position"),
        Index("uq_minutes_entries_minutes_add_key", "minutes_id", "add_key", unique=True),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # The minutes where the entry was raised (its home); carried entries appear on later ones too.
    minutes_id: Mapped[int] = mapped_column(ForeignKey("minutes.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer, default=0)
    kind: Mapped[EntryKind] = mapped_column(str_enum(EntryKind))
    section: Mapped[str] = mapped_column(String(32))
    text: Mapped[str] = mapped_column(Text)
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id", ondelete="SET NULL"))
    category: Mapped[str | None] = mapped_column(String(32), default=None)
    severity: Mapped[str | None] = mapped_column(String(16), default=None)
    owner_unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id", ondelete="SET NULL"))
    owner_person_id: Mapped[int | None] = mapped_column(ForeignKey("people.id", ondelete="SET NULL"))
    due_date: Mapped[date | None] = mapped_column(Date, default=None)
    link_id: Mapped[int | None] = mapped_column(ForeignKey("minutes_entries.id", ondelete="SET NULL"))
    status: Mapped[EntryStatus] = mapped_column(str_enum(EntryStatus), default=EntryStatus.OPEN)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    closed_in_id: Mapped[int | None] = mapped_column(ForeignKey("minutes.id", ondelete="SET NULL"))
    version: Mapped[int] = mapped_column(Integer, default=1)
    deleted: Mapped[bool] = mapped_column(default=False)
    search_text: Mapped[str] = mapped_column(Text, default="")
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("people.id", ondelete="SET NULL"))
    # The editor's idempotency key for the add (one per add, resent unchanged after a reconnect):
    # a repeat finds this entry instead of making a second one. NULL for entries added without one.
    add_key: Mapped[str | None] = mapped_column(String(64), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class EntryChange(Base):
    """One change of one entry: who, when, in which minutes, the fields before and after."""

    __tablename__ = "minutes_entry_changes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    entry_id: Mapped[int] = mapped_column(ForeignKey("minutes_entries.id", ondelete="CASCADE"), index=True)
    minutes_id: Mapped[int] = mapped_column(ForeignKey("minutes.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)  # the entry's version after the change
    action: Mapped[str] = mapped_column(String(16))  # create, update, move, close, reopen, delete
    person_id: Mapped[int | None] = mapped_column(ForeignKey("people.id", ondelete="SET NULL"))
    person_name: Mapped[str] = mapped_column(String(200), default="")
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    before: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    after: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


CHANGE_LABELS = {
    "create": N_("Entry created"),
    "update": N_("Changed"),
    "move": N_("Moved"),
    "close": N_("Closed"),
    "reopen": N_("Reopened"),
    "delete": N_("Deleted"),
}


class CarriedEntry(Base):
    """An open issue or action of earlier minutes, shown on these minutes (one item, not a copy)."""

    __tablename__ = "minutes_carried"
    __table_args__ = (UniqueConstraint("minutes_id", "entry_id", name="uq_minutes_carried_minutes_entry"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    minutes_id: Mapped[int] = mapped_column(ForeignKey("minutes.id", ondelete="CASCADE"), index=True)
    entry_id: Mapped[int] = mapped_column(ForeignKey("minutes_entries.id", ondelete="CASCADE"))


class AttendanceCorrection(Base):
    """The secretary's correction of one person's attendance in minutes (kept as history).

    The room's records are the source; the latest correction of a person overrides them in
    these minutes. An empty `state` hands the person back to the room's records.
    """

    __tablename__ = "minutes_attendance_corrections"
    __table_args__ = (Index("ix_minutes_attendance_corrections_minutes_person", "minutes_id", "person_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    minutes_id: Mapped[int] = mapped_column(ForeignKey("minutes.id", ondelete="CASCADE"))
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"))
    person_name: Mapped[str] = mapped_column(String(200))  # as shown then
    unit_code: Mapped[str] = mapped_column(String(32), default="")
    before: Mapped[str] = mapped_column(String(16))  # the state the minutes showed
    state: Mapped[str] = mapped_column(String(16), default="")  # "" = as the room recorded
    reason: Mapped[str] = mapped_column(Text, default="")
    version_no: Mapped[int] = mapped_column(Integer)  # the minutes version being written
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("people.id", ondelete="SET NULL"))
    actor_name: Mapped[str] = mapped_column(String(200), default="")
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class MinutesVersion(Base):
    """An approved version: its content as canonical JSON and the SHA-256 of that text."""

    __tablename__ = "minutes_versions"
    __table_args__ = (UniqueConstraint("minutes_id", "number", name="uq_minutes_versions_minutes_number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    minutes_id: Mapped[int] = mapped_column(ForeignKey("minutes.id", ondelete="CASCADE"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    content: Mapped[str] = mapped_column(Text)  # canonical JSON (sorted keys, no spaces)
    sha256: Mapped[str] = mapped_column(String(64))
    approved_by_id: Mapped[int | None] = mapped_column(ForeignKey("people.id", ondelete="SET NULL"))
    approved_by_name: Mapped[str] = mapped_column(String(200), default="")
    approved_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    published_by_id: Mapped[int | None] = mapped_column(ForeignKey("people.id", ondelete="SET NULL"))
