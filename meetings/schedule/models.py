"""Series, their invitees, occurrences, answers, calendar days and feed tokens."""

from __future__ import annotations

import enum
from datetime import date, datetime, time

from sqlalchemy import (
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    Time,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from meetings.db.base import Base, UTCDateTime, str_enum, utcnow
from meetings.errors import N_


class SeriesKind(enum.StrEnum):
    """What a series is for."""

    MORNING = "morning"
    AFTERNOON = "afternoon"
    ADHOC = "adhoc"


SERIES_KIND_LABELS = {
    SeriesKind.MORNING: N_("Morning meeting"),
    SeriesKind.AFTERNOON: N_("Afternoon meeting"),
    SeriesKind.ADHOC: N_("Ad hoc meeting"),
}


class SeriesStatus(enum.StrEnum):
    """Whether a series still runs."""

    ACTIVE = "active"
    CANCELLED = "cancelled"


class OccurrenceState(enum.StrEnum):
    """Where one meeting stands."""

    PLANNED = "planned"
    OPEN = "open"
    IN_PROGRESS = "in_progress"
    ENDED = "ended"
    CANCELLED = "cancelled"


OCCURRENCE_STATE_LABELS = {
    OccurrenceState.PLANNED: N_("Planned"),
    OccurrenceState.OPEN: N_("Open"),
    OccurrenceState.IN_PROGRESS: N_("In progress"),
    OccurrenceState.ENDED: N_("Ended"),
    OccurrenceState.CANCELLED: N_("Cancelled"),
}


class DayKind(enum.StrEnum):
    """An administrator's change to the working-day calendar."""

    DAY_OFF = "day_off"
    MAKEUP = "makeup"


class AnswerStatus(enum.StrEnum):
    """An invitee's answer."""

    ACCEPTED = "accepted"
    DECLINED = "declined"


class Series(Base):
    """A recurring meeting (or a one-off ad hoc meeting): one iCalendar UID."""

    __tablename__ = "series"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    uid: Mapped[str] = mapped_column(String(200), unique=True)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    kind: Mapped[SeriesKind] = mapped_column(str_enum(SeriesKind))
    status: Mapped[SeriesStatus] = mapped_column(str_enum(SeriesStatus), default=SeriesStatus.ACTIVE)
    start_time: Mapped[time] = mapped_column(Time)
    duration_minutes: Mapped[int] = mapped_column(Integer)
    weekdays: Mapped[str] = mapped_column(String(32))  # "MO,TU,WE,TH,FR": names, never numbers
    start_date: Mapped[date] = mapped_column(Date)
    end_date: Mapped[date | None] = mapped_column(Date)
    timezone: Mapped[str] = mapped_column(String(64))
    chair_id: Mapped[int | None] = mapped_column(ForeignKey("people.id", ondelete="SET NULL"))
    secretary_id: Mapped[int | None] = mapped_column(ForeignKey("people.id", ondelete="SET NULL"))
    organizer_email: Mapped[str] = mapped_column(String(254))
    organizer_name: Mapped[str] = mapped_column(String(200))
    reminder_minutes: Mapped[int] = mapped_column(Integer, default=15)
    sequence: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    invitees: Mapped[list[SeriesInvitee]] = relationship(
        lazy="raise_on_sql", cascade="all, delete-orphan", back_populates="series"
    )

    @property
    def weekday_names(self) -> tuple[str, ...]:
        """The weekdays as iCalendar names."""
        return tuple(w for w in self.weekdays.split(",") if w)


class SeriesInvitee(Base):
    """A unit (meaning its active people) or a person invited to a series."""

    __tablename__ = "series_invitees"
    __table_args__ = (
        UniqueConstraint("series_id", "unit_id", "person_id", name="uq_series_invitees_target"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    series_id: Mapped[int] = mapped_column(ForeignKey("series.id", ondelete="CASCADE"), index=True)
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id", ondelete="CASCADE"))
    person_id: Mapped[int | None] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"))

    series: Mapped[Series] = relationship(lazy="raise_on_sql", back_populates="invitees")


class Occurrence(Base):
    """One meeting of a series, materialised for a rolling window."""

    __tablename__ = "occurrences"
    __table_args__ = (
        UniqueConstraint("series_id", "original_start", name="uq_occurrences_series_original"),
        Index("ix_occurrences_start", "start"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    series_id: Mapped[int] = mapped_column(ForeignKey("series.id", ondelete="CASCADE"), index=True)
    original_start: Mapped[datetime] = mapped_column(UTCDateTime)
    start: Mapped[datetime] = mapped_column(UTCDateTime)
    end: Mapped[datetime] = mapped_column(UTCDateTime)
    state: Mapped[OccurrenceState] = mapped_column(str_enum(OccurrenceState), default=OccurrenceState.PLANNED)
    moved: Mapped[bool] = mapped_column(Boolean, default=False)
    note: Mapped[str] = mapped_column(Text, default="")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    series: Mapped[Series] = relationship(lazy="raise_on_sql")


class CalendarDay(Base):
    """A day off or an official make-up working day added by an administrator."""

    __tablename__ = "calendar_days"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    day: Mapped[date] = mapped_column(Date, unique=True)
    kind: Mapped[DayKind] = mapped_column(str_enum(DayKind))
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Answer(Base):
    """An invitee's answer to a series (occurrence_id None) or to one occurrence."""

    __tablename__ = "answers"
    __table_args__ = (UniqueConstraint("series_id", "occurrence_key", "person_id", name="uq_answers_target"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    series_id: Mapped[int] = mapped_column(ForeignKey("series.id", ondelete="CASCADE"), index=True)
    # 0 for the whole series, else the occurrence id (a plain column so the unique key works).
    occurrence_key: Mapped[int] = mapped_column(Integer, default=0)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"))
    status: Mapped[AnswerStatus] = mapped_column(str_enum(AnswerStatus))
    link_nonce: Mapped[str] = mapped_column(String(64), default="")
    answered_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class FeedToken(Base):
    """A person's secret calendar feed address; revoking makes a new one."""

    __tablename__ = "feed_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"), index=True)
    nonce: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
