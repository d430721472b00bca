"""Attendance of each person at each occurrence, its events, and the chat kept with a meeting."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from meetings.db.base import Base, UTCDateTime, str_enum


class AttendanceEventKind(enum.StrEnum):
    """What happened to a person's presence."""

    JOIN = "join"
    LEAVE = "leave"
    RECONNECT = "reconnect"  # came back while still connected, or soon after dropping out


class Attendance(Base):
    """One person's presence at one occurrence: every connection merged into one record."""

    __tablename__ = "attendance"
    __table_args__ = (UniqueConstraint("occurrence_id", "person_id", name="uq_attendance_occurrence_person"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    occurrence_id: Mapped[int] = mapped_column(ForeignKey("occurrences.id", ondelete="CASCADE"), index=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"), index=True)
    # The unit at the time of the meeting (people move between units).
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id", ondelete="SET NULL"))
    first_joined_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_joined_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_left_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    connected: Mapped[bool] = mapped_column(Boolean, default=True)
    total_seconds: Mapped[int] = mapped_column(Integer, default=0)
    connections: Mapped[int] = mapped_column(Integer, default=1)
    rtt_ms: Mapped[float | None] = mapped_column(Float, default=None)
    loss_pct: Mapped[float | None] = mapped_column(Float, default=None)
    bitrate_kbps: Mapped[float | None] = mapped_column(Float, default=None)


class AttendanceEvent(Base):
    """A join, leave or reconnect, with the connection summary when it ended."""

    __tablename__ = "attendance_events"
    __table_args__ = (Index("ix_attendance_events_occurrence_person", "occurrence_id", "person_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    occurrence_id: Mapped[int] = mapped_column(ForeignKey("occurrences.id", ondelete="CASCADE"))
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"))
    kind: Mapped[AttendanceEventKind] = mapped_column(str_enum(AttendanceEventKind))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    summary: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class ChatMessage(Base):
    """A chat message of a meeting, kept with its occurrence."""

    __tablename__ = "chat_messages"
    __table_args__ = (Index("ix_chat_messages_occurrence_at", "occurrence_id", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    occurrence_id: Mapped[int] = mapped_column(ForeignKey("occurrences.id", ondelete="CASCADE"))
    person_id: Mapped[int | None] = mapped_column(ForeignKey("people.id", ondelete="SET NULL"))
    name: Mapped[str] = mapped_column(String(200))  # as shown then, kept if the person is deleted
    text: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
