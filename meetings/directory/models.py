"""Units and people."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from meetings.db.base import Base, UTCDateTime, str_enum, utcnow
from meetings.errors import N_


class UnitKind(enum.StrEnum):
    """What kind of body a unit is."""

    COMMITTEE = "committee"
    DEPARTMENT = "department"
    SUPPORT = "support"
    TELECOM = "telecom"
    CENTRE = "centre"


UNIT_KIND_LABELS: dict[UnitKind, str] = {
    UnitKind.COMMITTEE: N_("Committee"),
    UnitKind.DEPARTMENT: N_("Department"),
    UnitKind.SUPPORT: N_("Support team"),
    UnitKind.TELECOM: N_("Telecom operator"),
    UnitKind.CENTRE: N_("Public administration service centre"),
}


class Role(enum.StrEnum):
    """What a person may do; see meetings.accounts.permissions."""

    ADMINISTRATOR = "administrator"
    CHAIR = "chair"
    SECRETARY = "secretary"
    MEMBER = "member"
    OBSERVER = "observer"
    # Technical support (IOC, HueCIT, the telecom operators' teams): readiness board, live
    # monitoring and connection history of every unit; never the minutes' drafts.
    SUPPORT = "support"


ROLE_LABELS: dict[Role, str] = {
    Role.ADMINISTRATOR: N_("Administrator"),
    Role.CHAIR: N_("Chair"),
    Role.SECRETARY: N_("Secretary"),
    Role.MEMBER: N_("Member"),
    Role.OBSERVER: N_("Observer"),
    Role.SUPPORT: N_("Technical support"),
}


class Unit(Base):
    """A body that takes part in meetings."""

    __tablename__ = "units"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    kind: Mapped[UnitKind] = mapped_column(str_enum(UnitKind))
    name: Mapped[str] = mapped_column(String(200))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("units.id", ondelete="SET NULL"))
    # The number the support team calls when the unit has trouble joining (readiness board).
    phone: Mapped[str] = mapped_column(String(32), default="")
    # The telecom operator or support team that keeps this unit connected: connection follow-up
    # issues are assigned to it (meetings.readiness).
    operator_id: Mapped[int | None] = mapped_column(ForeignKey("units.id", ondelete="SET NULL"), default=None)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    search_text: Mapped[str] = mapped_column(String(400), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    parent: Mapped[Unit | None] = relationship(
        remote_side="Unit.id", foreign_keys=[parent_id], lazy="raise_on_sql"
    )
    operator: Mapped[Unit | None] = relationship(
        remote_side="Unit.id", foreign_keys=[operator_id], lazy="raise_on_sql"
    )


class Person(Base):
    """Someone who is invited to meetings; with a password, also an account."""

    __tablename__ = "people"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(254), unique=True)
    phone: Mapped[str] = mapped_column(String(32), default="")
    title: Mapped[str] = mapped_column(String(200), default="")
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id", ondelete="RESTRICT"))
    role: Mapped[Role] = mapped_column(
        str_enum(Role),
        default=Role.MEMBER,
    )
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    password_hash: Mapped[str | None] = mapped_column(String(255), default=None)
    language: Mapped[str] = mapped_column(String(8), default="vi")
    search_text: Mapped[str] = mapped_column(String(600), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    unit: Mapped[Unit | None] = relationship(lazy="raise_on_sql")
