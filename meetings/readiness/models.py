"""Connection checks, the board's marks, and each unit's connection record per meeting."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Index, Integer, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from meetings.db.base import Base, UTCDateTime, str_enum, utcnow
from meetings.errors import N_


class CheckVerdict(enum.StrEnum):
    """What a connection check concluded, in the words a centre understands."""

    VIDEO = "video"
    AUDIO = "audio"
    FAILED = "failed"


CHECK_VERDICT_LABELS: dict[CheckVerdict, str] = {
    CheckVerdict.VIDEO: N_("Good enough for a meeting with video"),
    CheckVerdict.AUDIO: N_("Good enough for audio only"),
    CheckVerdict.FAILED: N_("Could not connect"),
}


class ConnectionCheck(Base):
    """One run of the connection check: devices and the network against the media server."""

    __tablename__ = "connection_checks"
    __table_args__ = (Index("ix_connection_checks_unit_at", "unit_id", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    person_id: Mapped[int | None] = mapped_column(ForeignKey("people.id", ondelete="SET NULL"), index=True)
    # The unit at the time of the check (people move between units).
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id", ondelete="SET NULL"))
    # The meeting the check was run for (from its invitation or pre-join screen), if any.
    occurrence_id: Mapped[int | None] = mapped_column(ForeignKey("occurrences.id", ondelete="SET NULL"))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    verdict: Mapped[CheckVerdict] = mapped_column(str_enum(CheckVerdict))
    rtt_ms: Mapped[float | None] = mapped_column(Float, default=None)
    loss_pct: Mapped[float | None] = mapped_column(Float, default=None)
    up_kbps: Mapped[float | None] = mapped_column(Float, default=None)
    down_kbps: Mapped[float | None] = mapped_column(Float, default=None)
    # None: not tested (no such device, or the person skipped it).
    camera_ok: Mapped[bool | None] = mapped_column(Boolean, default=None)
    microphone_ok: Mapped[bool | None] = mapped_column(Boolean, default=None)
    speaker_ok: Mapped[bool | None] = mapped_column(Boolean, default=None)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class ReadinessMark(Base):
    """What the readiness board recorded for one invited unit at one meeting."""

    __tablename__ = "readiness_marks"
    __table_args__ = (
        UniqueConstraint("occurrence_id", "unit_id", name="uq_readiness_marks_occurrence_unit"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    occurrence_id: Mapped[int] = mapped_column(ForeignKey("occurrences.id", ondelete="CASCADE"), index=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id", ondelete="CASCADE"))
    excused: Mapped[bool] = mapped_column(Boolean, default=False)
    excuse_reason: Mapped[str] = mapped_column(Text, default="")
    excused_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("people.id", ondelete="SET NULL"), default=None
    )
    excused_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    # "Đang hỗ trợ": who is helping the unit connect, and their note.
    helper_id: Mapped[int | None] = mapped_column(ForeignKey("people.id", ondelete="SET NULL"), default=None)
    help_note: Mapped[str] = mapped_column(Text, default="")
    help_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class ConnectionOutcome(enum.StrEnum):
    """How a unit's connection went at one meeting."""

    GOOD = "good"
    WEAK = "weak"  # joined, but spent long on a weak link, on audio only, or dropped out
    FAILED = "failed"  # invited, not excused, never connected
    EXCUSED = "excused"


CONNECTION_OUTCOME_LABELS: dict[ConnectionOutcome, str] = {
    ConnectionOutcome.GOOD: N_("Good"),
    ConnectionOutcome.WEAK: N_("Weak"),
    ConnectionOutcome.FAILED: N_("Did not connect"),
    ConnectionOutcome.EXCUSED: N_("Excused"),
}


class ConnectionRecord(Base):
    """One invited unit's connection at one meeting: what the history and the follow-up read."""

    __tablename__ = "connection_records"
    __table_args__ = (
        UniqueConstraint("occurrence_id", "unit_id", name="uq_connection_records_occurrence_unit"),
        Index("ix_connection_records_unit_start", "unit_id", "meeting_start"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    occurrence_id: Mapped[int] = mapped_column(ForeignKey("occurrences.id", ondelete="CASCADE"), index=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id", ondelete="CASCADE"))
    # The meeting's start, so "the unit's last five meetings" is one indexed read.
    meeting_start: Mapped[datetime] = mapped_column(UTCDateTime)
    outcome: Mapped[ConnectionOutcome] = mapped_column(str_enum(ConnectionOutcome))
    # Seconds from the meeting's start to the unit's first connection (0 if it joined early).
    join_delay_s: Mapped[float | None] = mapped_column(Float, default=None)
    connected_s: Mapped[int] = mapped_column(Integer, default=0)
    weak_s: Mapped[int] = mapped_column(Integer, default=0)  # below the top layer it asked for, or paused
    audio_only_s: Mapped[int] = mapped_column(Integer, default=0)
    dropouts: Mapped[int] = mapped_column(Integer, default=0)
    min_down_kbps: Mapped[float | None] = mapped_column(Float, default=None)
    max_loss_pct: Mapped[float | None] = mapped_column(Float, default=None)
    max_rtt_ms: Mapped[float | None] = mapped_column(Float, default=None)
    # The follow-up issue this record led to, if any (meetings.readiness.history).
    follow_up_issue_id: Mapped[int | None] = mapped_column(
        ForeignKey("issues.id", ondelete="SET NULL"), default=None
    )
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class ConnectionProgress(Base):
    """What the live monitoring measured so far of one invited unit at a meeting still running,
    saved every minute so that a restart loses nothing (migration 0010_monitor). The meeting's
    end turns it into the unit's `ConnectionRecord` and deletes it: readers of the records never
    see a meeting half-way (meetings.readiness.monitor)."""

    __tablename__ = "connection_progress"
    __table_args__ = (
        UniqueConstraint("occurrence_id", "unit_id", name="uq_connection_progress_occurrence_unit"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    occurrence_id: Mapped[int] = mapped_column(ForeignKey("occurrences.id", ondelete="CASCADE"), index=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id", ondelete="CASCADE"))
    measured: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
